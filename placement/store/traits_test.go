package store

import (
	"context"
	"errors"
	"testing"
)

func TestEnsureAndDeleteTrait(t *testing.T) {
	db := testDB(t)
	ctx := context.Background()
	if _, created, err := EnsureTrait(ctx, db, "CUSTOM_A"); err != nil || !created {
		t.Fatalf("first ensure: created=%v err=%v", created, err)
	}
	if tr, created, err := EnsureTrait(ctx, db, "CUSTOM_A"); err != nil || created || tr.Name != "CUSTOM_A" {
		t.Fatalf("second ensure: %+v created=%v err=%v", tr, created, err)
	}
	p := mustCreate(t, db, u1, "rp", nil)
	used, _, err := EnsureTrait(ctx, db, "CUSTOM_USED")
	if err != nil {
		t.Fatal(err)
	}
	if err := SetProviderTraits(ctx, db, p, []int64{used.ID}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		trait   string
		wantErr error
	}{
		{"in use", "CUSTOM_USED", ErrTraitInUse},
		{"unused", "CUSTOM_A", nil},
		{"gone", "CUSTOM_A", ErrNotFound},
		{"never existed", "CUSTOM_NOPE", ErrNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := DeleteTrait(ctx, db, tc.trait); !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
		})
	}
	if _, err := GetTrait(ctx, db, "CUSTOM_A"); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted trait still there: %v", err)
	}
}

func TestListTraits(t *testing.T) {
	db := testDB(t)
	ctx := context.Background()
	for _, n := range []string{"CUSTOM_A1", "CUSTOM_A2", "CUSTOM_B"} {
		if _, _, err := EnsureTrait(ctx, db, n); err != nil {
			t.Fatal(err)
		}
	}
	p := mustCreate(t, db, u1, "rp", nil)
	b, err := GetTrait(ctx, db, "CUSTOM_B")
	if err != nil {
		t.Fatal(err)
	}
	if err := SetProviderTraits(ctx, db, p, []int64{b.ID}); err != nil {
		t.Fatal(err)
	}
	yes, no := true, false
	cases := []struct {
		name   string
		filter TraitFilter
		want   []string
	}{
		{"in", TraitFilter{NameIn: []string{"CUSTOM_B", "CUSTOM_A1", "CUSTOM_NOPE"}}, []string{"CUSTOM_A1", "CUSTOM_B"}},
		{"prefix", TraitFilter{Prefix: strp("CUSTOM_A")}, []string{"CUSTOM_A1", "CUSTOM_A2"}},
		{"associated", TraitFilter{Associated: &yes}, []string{"CUSTOM_B"}},
		{"custom not associated", TraitFilter{Prefix: strp("CUSTOM_"), Associated: &no}, []string{"CUSTOM_A1", "CUSTOM_A2"}},
		{"empty in", TraitFilter{NameIn: []string{""}}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ListTraits(ctx, db, tc.filter)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, tr := range got {
				names = append(names, tr.Name)
			}
			if !equalStrings(names, tc.want) {
				t.Errorf("got %v, want %v", names, tc.want)
			}
		})
	}
	all, err := ListTraits(ctx, db, TraitFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != len(StandardTraits())+3 {
		t.Errorf("%d traits, want %d standard + 3", len(all), len(StandardTraits()))
	}
}

func TestSetProviderTraits(t *testing.T) {
	db := testDB(t)
	ctx := context.Background()
	p := mustCreate(t, db, u1, "rp", nil)
	cases := []struct {
		name    string
		ids     []int64
		gen     int // generation the caller believes in
		wantGen int
		wantErr error
	}{
		{"add", []int64{1, 2}, 0, 1, nil},
		{"same set does not bump", []int64{2, 1}, 1, 1, nil},
		{"replace", []int64{3}, 1, 2, nil},
		{"stale generation", []int64{4}, 1, 0, ErrConcurrentUpdate},
		{"clear", nil, 2, 3, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p.Generation = tc.gen
			err := SetProviderTraits(ctx, db, p, tc.ids)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if p.Generation != tc.wantGen {
				t.Errorf("generation %d, want %d", p.Generation, tc.wantGen)
			}
			got, err := ProviderTraits(ctx, db, p.ID)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.ids) {
				t.Errorf("provider has %d traits, want %d", len(got), len(tc.ids))
			}
		})
	}
}
