package placement

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/unisched/unisched/internal/pgtest"
	"github.com/unisched/unisched/placement/store"
)

// Allocation refusals are counted by reason, and every candidates query
// is timed by the engine; the index's catch-ups are timed by kind.
func TestPlacementMetrics(t *testing.T) {
	pool := pgtest.Pool(t)
	if err := store.EnsureStandard(context.Background(), pool); err != nil {
		t.Fatal(err)
	}
	api := New(Config{Pool: pool})
	reg := prometheus.NewRegistry()
	if err := api.RegisterMetrics(reg); err != nil {
		t.Fatal(err)
	}
	if err := api.RegisterMetrics(reg); err == nil {
		t.Error("registering twice on one registry succeeded")
	}
	srv := httptest.NewServer(api)
	defer srv.Close()

	const rp = "c0ffee00-0000-4000-8000-000000000001"
	const consumer = "c0ffee00-0000-4000-8000-0000000000c1"
	const project = "c0ffee00-0000-4000-8000-0000000000a1"
	steps := []struct {
		method, path, mv, body string
		status                 int
	}{
		{"POST", "/resource_providers", "1.20", `{"name": "cn1", "uuid": "` + rp + `"}`, 200},
		{"PUT", "/resource_providers/" + rp + "/inventories", "1.20",
			`{"resource_provider_generation": 0, "inventories": {"VCPU": {"total": 4}}}`, 200},
		// does not fit: capacity
		{"PUT", "/allocations/" + consumer, "1.28", `{"allocations": {"` + rp + `": {"resources": {"VCPU": 8}}},
			"project_id": "` + project + `", "user_id": "` + project + `", "consumer_generation": null}`, 409},
		{"PUT", "/allocations/" + consumer, "1.28", `{"allocations": {"` + rp + `": {"resources": {"VCPU": 2}}},
			"project_id": "` + project + `", "user_id": "` + project + `", "consumer_generation": null}`, 204},
		// the consumer exists now: a null generation is stale
		{"PUT", "/allocations/" + consumer, "1.28", `{"allocations": {"` + rp + `": {"resources": {"VCPU": 1}}},
			"project_id": "` + project + `", "user_id": "` + project + `", "consumer_generation": null}`, 409},
		{"GET", "/allocation_candidates?resources=VCPU:1", "1.20", "", 200},
		{"GET", "/allocation_candidates?resources=VCPU:1", "1.20", "", 200},
		{"GET", "/allocation_candidates?resources=VCPU:3", "1.20", "", 200}, // 2 of 4 used: none
	}
	for _, s := range steps {
		if res, body := do(t, srv, s.method, s.path, s.mv, s.body); res.StatusCode != s.status {
			t.Fatalf("%s %s: %d, want %d: %s", s.method, s.path, res.StatusCode, s.status, body)
		}
	}
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"unisched_placement_allocation_conflicts_total", map[string]string{"reason": conflictCapacity}, 1},
		{"unisched_placement_allocation_conflicts_total", map[string]string{"reason": conflictConsumerGeneration}, 1},
		{"unisched_placement_allocation_conflicts_total", map[string]string{"reason": conflictRetry}, 0},
		{"unisched_placement_allocation_conflicts_total", map[string]string{"reason": conflictRetriesExhausted}, 0},
		{"unisched_placement_candidates_engine_seconds", map[string]string{"result": "found"}, 2},
		{"unisched_placement_candidates_engine_seconds", map[string]string{"result": "none"}, 1},
		{"unisched_placement_candidates_index_wait_seconds", nil, 3},
		{"unisched_placement_candidates_returned", nil, 3},
		{"unisched_placement_candidates_index_providers", nil, 1},
	} {
		if got := gathered(t, reg, tc.name, tc.labels); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	if got := gathered(t, reg, "unisched_placement_candidates_index_build_seconds", map[string]string{"kind": "reload"}); got < 1 {
		t.Errorf("index reloads timed: %v, want at least the first load", got)
	}
}

// gathered is the value of the one series of name with labels (a
// histogram's sample count).
func gathered(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, mt := range mf.GetMetric() {
			for _, lp := range mt.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue next
				}
			}
			switch {
			case mt.Histogram != nil:
				return float64(mt.GetHistogram().GetSampleCount())
			case mt.Counter != nil:
				return mt.GetCounter().GetValue()
			default:
				return mt.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("%s%v not gathered", name, labels)
	return 0
}
