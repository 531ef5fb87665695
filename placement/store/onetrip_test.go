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
