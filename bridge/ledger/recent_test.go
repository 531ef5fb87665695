package ledger_test

import (
	"testing"

	"github.com/unisched/unisched/bridge/ledger"
	"github.com/unisched/unisched/bridge/scheduler"
)

// RecentDecisions lists the newest decisions first, at most limit, with
// what RecordDecision stored (the rejected hosts included).
func TestRecentDecisions(t *testing.T) {
	ctx, pool := setup(t)
	for i, host := range []string{"h1", "", "h3"} {
		d := ledger.Decision{RequestID: "req-" + string(rune('a'+i)), Kind: scheduler.KindContainer, Host: host}
		if host == "" {
			d.Error = "no valid host"
			d.Rejected = []ledger.RejectedRecord{{Host: "h1", Filter: "resources", Reason: string(scheduler.ReasonMemoryMB)}}
		}
		if err := ledger.RecordDecision(ctx, pool, &d); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		limit int
		want  []string
	}{
		{0, nil},
		{-1, nil},
		{2, []string{"req-c", "req-b"}},
		{10, []string{"req-c", "req-b", "req-a"}},
	}
	for _, tc := range cases {
		ds, err := ledger.RecentDecisions(ctx, pool, tc.limit)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, d := range ds {
			got = append(got, d.RequestID)
		}
		if len(got) != len(tc.want) {
			t.Errorf("limit %d: %v, want %v", tc.limit, got, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("limit %d: %v, want %v", tc.limit, got, tc.want)
				break
			}
		}
	}
	ds, err := ledger.RecentDecisions(ctx, pool, 2)
	if err != nil || len(ds) != 2 || len(ds[1].Rejected) != 1 || ds[1].Rejected[0].Reason != string(scheduler.ReasonMemoryMB) || ds[1].Error == "" {
		t.Errorf("refused decision read back: %+v (%v)", ds, err)
	}
}
