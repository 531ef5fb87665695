package api

import (
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/unisched/unisched/bridge/reconcile"
)

// GET /v1/reconciliation serves the stored reports to admins only.
func TestReconciliationReport(t *testing.T) {
	tb := newTestbed(t, Config{})
	tb.h = New(Config{Service: tb.c, Reconciliation: reconcile.Reports{DB: tb.pool}})
	h := tb.h
	if r := do(t, h, "GET", "/v1/reconciliation", adminToken, ""); r.status != http.StatusNotFound {
		t.Fatalf("before any run: %d %s", r.status, r.raw)
	}
	// a container whose allocation vanished: one divergence
	id := createOne(t, h, adminToken, "c1")
	if _, err := tb.pool.Exec(context.Background(), `DELETE FROM allocations`); err != nil {
		t.Fatal(err)
	}
	rec := reconcile.New(tb.pool, reconcile.Config{Grace: time.Nanosecond, DryRun: true})
	time.Sleep(time.Millisecond)
	rep, err := rec.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Total != 1 {
		t.Fatalf("run found %+v", rep.Divergences)
	}
	for _, tc := range []struct {
		path, token string
		want        int
	}{
		{"/v1/reconciliation", aliceToken, http.StatusForbidden},
		{"/v1/reconciliation", adminToken, http.StatusOK},
		{"/v1/reconciliation?run=" + strconv.FormatInt(rep.RunID, 10), adminToken, http.StatusOK},
		{"/v1/reconciliation?run=999999", adminToken, http.StatusNotFound},
		{"/v1/reconciliation?run=abc", adminToken, http.StatusBadRequest},
		{"/v1/reconciliation?run=0", adminToken, http.StatusBadRequest},
		{"/v1/reconciliation?kind=x", adminToken, http.StatusBadRequest},
	} {
		r := do(t, h, "GET", tc.path, tc.token, "")
		if r.status != tc.want {
			t.Errorf("%s as %s: %d, want %d (%s)", tc.path, tc.token, r.status, tc.want, r.raw)
			continue
		}
		if r.status != http.StatusOK {
			continue
		}
		divs, _ := r.body["divergences"].([]any)
		if r.body["run_id"] != float64(rep.RunID) || r.body["total"] != float64(1) || len(divs) != 1 {
			t.Errorf("%s: %s", tc.path, r.raw)
			continue
		}
		d := divs[0].(map[string]any)
		if d["kind"] != reconcile.KindLedgerOrphan || d["workload_id"] != id || d["result"] != reconcile.ResultDryRun {
			t.Errorf("%s: divergence %v", tc.path, d)
		}
	}
	if r := do(t, h, "POST", "/v1/reconciliation", adminToken, ""); r.status != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d", r.status)
	}
}
