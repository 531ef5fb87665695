package store

import (
	"context"
	"errors"
	"testing"
)

func TestSetProviderAggregates(t *testing.T) {
	db := testDB(t)
	ctx := context.Background()
	p := mustCreate(t, db, u1, "rp", nil)
	q := mustCreate(t, db, u2, "other", nil)
	if err := SetProviderAggregates(ctx, db, q, []string{a1}, false); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		aggs    []string
		bump    bool
		gen     int
		wantGen int
		wantErr error
	}{
		{"before 1.19 no bump", []string{a1, a2}, false, 0, 0, nil},
		{"bump", []string{a2}, true, 0, 1, nil},
		{"stale generation", []string{}, true, 0, 0, ErrConcurrentUpdate},
		{"non-canonical uuid", []string{"AAAAAAAA000000000000000000000001"}, true, 1, 2, nil},
		{"clear", nil, true, 2, 3, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p.Generation = tc.gen
			err := SetProviderAggregates(ctx, db, p, tc.aggs, tc.bump)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if p.Generation != tc.wantGen {
				t.Errorf("generation %d, want %d", p.Generation, tc.wantGen)
			}
			got, err := ProviderAggregates(ctx, db, p.ID)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.aggs) {
				t.Errorf("aggregates %v, want %d of them", got, len(tc.aggs))
			}
		})
	}
	// The other provider's link is untouched by p's changes.
	got, err := ProviderAggregates(ctx, db, q.ID)
	if err != nil || len(got) != 1 || got[0] != a1 {
		t.Errorf("other provider's aggregates %v, %v", got, err)
	}
}
