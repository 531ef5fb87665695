package claims_test

import (
	"context"
	"errors"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/unisched/unisched/internal/pg"
	"github.com/unisched/unisched/internal/pgtest"
	"github.com/unisched/unisched/placement/claims"
	"github.com/unisched/unisched/placement/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestReplace(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Pool(t)
	if err := store.EnsureStandard(ctx, pool); err != nil {
		t.Fatal(err)
	}
	rp := uuid.NewString()
	p, err := store.CreateProvider(ctx, pool, rp, "cn1", nil)
	if err != nil {
		t.Fatal(err)
	}
	vcpu := store.NewInventory("VCPU", 4)
	vcpu.AllocationRatio = 2
	mem := store.NewInventory("MEMORY_MB", 1024)
	mem.StepSize = 64
	if _, err := store.ReplaceInventories(ctx, pool, p, []store.Inventory{vcpu, mem}); err != nil {
		t.Fatal(err)
	}
	a, b := uuid.NewString(), uuid.NewString()
	gen := func(n int) *int { return &n }
	claim := func(consumer string, g *int, v, m int64) claims.Claim {
		c := claims.Claim{ConsumerUUID: consumer, ProjectID: "p", UserID: "u", ConsumerType: "CONTAINER", Generation: g}
		if v > 0 {
			c.Allocations = append(c.Allocations, claims.Amount{ProviderUUID: rp, Class: "VCPU", Used: v})
		}
		if m > 0 {
			c.Allocations = append(c.Allocations, claims.Amount{ProviderUUID: rp, Class: "MEMORY_MB", Used: m})
		}
		return c
	}
	for _, tc := range []struct {
		name  string
		claim claims.Claim
		want  error // nil: success
	}{
		{"new consumer", claim(a, nil, 6, 512), nil},
		{"exists but expected new", claim(a, nil, 1, 64), claims.ErrConsumerGeneration},
		{"stale generation", claim(a, gen(7), 1, 64), claims.ErrConsumerGeneration},
		{"over capacity", claim(b, nil, 3, 64), claims.ErrInvalidInventory},
		{"step size", claim(b, nil, 1, 100), claims.ErrInvalidInventory},
		{"no such inventory", claims.Claim{ConsumerUUID: b, ProjectID: "p", UserID: "u",
			Allocations: []claims.Amount{{ProviderUUID: rp, Class: "DISK_GB", Used: 1}}}, claims.ErrInvalidInventory},
		{"no such class", claims.Claim{ConsumerUUID: b, ProjectID: "p", UserID: "u",
			Allocations: []claims.Amount{{ProviderUUID: rp, Class: "CUSTOM_NOPE", Used: 1}}}, claims.ErrClassNotFound},
		{"no such provider", claims.Claim{ConsumerUUID: b, ProjectID: "p", UserID: "u",
			Allocations: []claims.Amount{{ProviderUUID: uuid.NewString(), Class: "VCPU", Used: 1}}}, claims.ErrProviderNotFound},
		// replacing its own allocation does not count it twice
		{"resize in place", claim(a, gen(1), 8, 1024), nil},
		{"second consumer fits nothing", claim(b, nil, 1, 64), claims.ErrInvalidInventory},
		{"shrink", claim(a, gen(2), 2, 512), nil},
		{"second consumer fits now", claim(b, nil, 6, 512), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, err := store.GetProvider(ctx, pool, rp)
			if err != nil {
				t.Fatal(err)
			}
			err = pg.WithTx(ctx, pool, pgx.TxOptions{}, func(tx pgx.Tx) error { return claims.Replace(ctx, tx, tc.claim) })
			after, err2 := store.GetProvider(ctx, pool, rp)
			if err2 != nil {
				t.Fatal(err2)
			}
			if tc.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				if after.Generation != before.Generation+1 {
					t.Fatalf("provider generation %d -> %d", before.Generation, after.Generation)
				}
				ca, err := store.GetConsumerAllocations(ctx, pool, tc.claim.ConsumerUUID)
				if err != nil {
					t.Fatal(err)
				}
				if len(ca.Allocations) != len(tc.claim.Allocations) || ca.ConsumerType == nil || *ca.ConsumerType != "CONTAINER" {
					t.Fatalf("allocations %+v", ca)
				}
				for _, al := range ca.Allocations {
					for _, want := range tc.claim.Allocations {
						if want.Class == al.ResourceClass && int64(al.Used) != want.Used {
							t.Fatalf("%s used %d, want %d", al.ResourceClass, al.Used, want.Used)
						}
					}
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if after.Generation != before.Generation {
				t.Fatal("a refused claim moved the provider generation")
			}
		})
	}
}
