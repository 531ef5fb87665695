package store

import (
	"context"
	"errors"
	"testing"

	"github.com/unisched/unisched/internal/pg"
)

// TestSetProviderTraitsAt: the one-round-trip trait write commits only
// what it was asked to, and refuses (writing nothing) whenever the
// step-by-step path would answer an error.
func TestSetProviderTraitsAt(t *testing.T) {
	db := testDB(t)
	ctx := context.Background()
	p := mustCreate(t, db, u1, "cn1", nil)
	if _, _, err := EnsureTrait(ctx, db, "CUSTOM_X"); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		uuid     string
		expected int
		traits   []string
		wantErr  error
		wantGen  int
		wantHave []string
	}{
		{"first set", u1, 0, []string{"HW_CPU_X86_AVX2", "CUSTOM_X"}, nil, 1, []string{"CUSTOM_X", "HW_CPU_X86_AVX2"}},
		{"same set keeps the generation", u1, 1, []string{"CUSTOM_X", "HW_CPU_X86_AVX2", "CUSTOM_X"}, nil, 1, []string{"CUSTOM_X", "HW_CPU_X86_AVX2"}},
		{"stale generation", u1, 0, []string{"CUSTOM_X"}, ErrFallBack, 0, []string{"CUSTOM_X", "HW_CPU_X86_AVX2"}},
		{"unknown trait", u1, 1, []string{"CUSTOM_X", "CUSTOM_NOPE"}, ErrFallBack, 0, []string{"CUSTOM_X", "HW_CPU_X86_AVX2"}},
		{"no such provider", u2, 0, []string{"CUSTOM_X"}, ErrFallBack, 0, nil},
		{"no such provider, no traits", u2, 0, nil, ErrFallBack, 0, nil},
		{"replace", u1, 1, []string{"HW_CPU_X86_SSE42"}, nil, 2, []string{"HW_CPU_X86_SSE42"}},
		{"clear", u1, 2, []string{}, nil, 3, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var gen int
			err := pg.WithBatchTx(ctx, db, func(tx *pg.BatchTx) error {
				var err error
				_, gen, err = SetProviderTraitsAt(ctx, tx.Commit, tc.uuid, tc.expected, tc.traits)
				return err
			})
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err == nil && gen != tc.wantGen {
				t.Errorf("generation %d, want %d", gen, tc.wantGen)
			}
			if tc.uuid != u1 {
				return
			}
			have, err := ProviderTraits(ctx, db, p.ID)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, tr := range have {
				names = append(names, tr.Name)
			}
			if !sameNames(names, tc.wantHave) {
				t.Errorf("provider has %v, want %v", names, tc.wantHave)
			}
		})
	}
}

// TestReplaceInventoriesAt: the one-round-trip inventory write, likewise.
func TestReplaceInventoriesAt(t *testing.T) {
	db := testDB(t)
	ctx := context.Background()
	p := mustCreate(t, db, u1, "cn1", nil)
	big := NewInventory("VCPU", 8)
	big.AllocationRatio = 2
	cases := []struct {
		name     string
		uuid     string
		expected int
		invs     []Inventory
		prepare  func()
		wantErr  error
		wantGen  int
		wantHave map[string]int // class: total
		wantOver []string
	}{
		{"create", u1, 0, []Inventory{big, NewInventory("DISK_GB", 100)}, nil, nil, 1, map[string]int{"VCPU": 8, "DISK_GB": 100}, nil},
		{"stale generation", u1, 0, []Inventory{NewInventory("VCPU", 4)}, nil, ErrFallBack, 0, map[string]int{"VCPU": 8, "DISK_GB": 100}, nil},
		{"unknown class", u1, 1, []Inventory{NewInventory("VCPU", 4), NewInventory("CUSTOM_NOPE", 1)}, nil, ErrFallBack, 0,
			map[string]int{"VCPU": 8, "DISK_GB": 100}, nil},
		{"no such provider", u2, 0, []Inventory{NewInventory("VCPU", 4)}, nil, ErrFallBack, 0, map[string]int{"VCPU": 8, "DISK_GB": 100}, nil},
		{"removing an allocated class", u1, 1, []Inventory{NewInventory("VCPU", 8)},
			func() { allocate(t, db, p.ID, "cccccccc-0000-0000-0000-000000000001", "DISK_GB", 60) }, ErrFallBack, 0,
			map[string]int{"VCPU": 8, "DISK_GB": 100}, nil},
		{"shrinking below use", u1, 1, []Inventory{NewInventory("VCPU", 8), NewInventory("DISK_GB", 50), NewInventory("MEMORY_MB", 512)},
			nil, nil, 2, map[string]int{"VCPU": 8, "DISK_GB": 50, "MEMORY_MB": 512}, []string{"DISK_GB"}},
		{"removing unallocated classes", u1, 2, []Inventory{NewInventory("DISK_GB", 70)}, nil, nil, 3, map[string]int{"DISK_GB": 70}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.prepare != nil {
				tc.prepare()
			}
			var gen int
			var over []OverCapacity
			err := pg.WithBatchTx(ctx, db, func(tx *pg.BatchTx) error {
				var err error
				gen, over, err = ReplaceInventoriesAt(ctx, tx.Commit, tc.uuid, tc.expected, append([]Inventory{}, tc.invs...))
				return err
			})
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err == nil && gen != tc.wantGen {
				t.Errorf("generation %d, want %d", gen, tc.wantGen)
			}
			var overNames []string
			for _, o := range over {
				overNames = append(overNames, o.ResourceClass)
			}
			if !sameNames(overNames, tc.wantOver) {
				t.Errorf("over capacity %v, want %v", overNames, tc.wantOver)
			}
			have, err := ListInventories(ctx, db, p.ID)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]int{}
			for _, inv := range have {
				got[inv.ResourceClass] = inv.Total
			}
			if len(got) != len(tc.wantHave) {
				t.Errorf("provider has %v, want %v", got, tc.wantHave)
			}
			for class, total := range tc.wantHave {
				if got[class] != total {
					t.Errorf("provider has %v, want %v", got, tc.wantHave)
				}
			}
			cur, err := GetProvider(ctx, db, u1)
			if err != nil {
				t.Fatal(err)
			}
			if err == nil && tc.wantErr == nil && cur.Generation != tc.wantGen {
				t.Errorf("stored generation %d, want %d", cur.Generation, tc.wantGen)
			}
		})
	}
}

func sameNames(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]int{}
	for _, s := range a {
		seen[s]++
	}
	for _, s := range b {
		seen[s]--
	}
	for _, n := range seen {
		if n != 0 {
			return false
		}
	}
	return true
}
