package api

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/unisched/unisched/bridge/bridgetest"
	"github.com/unisched/unisched/bridge/ledger"
	"github.com/unisched/unisched/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// realHandler is the handler over the real coordinator on a fresh
// database, as serve wires it.
func realHandler(t *testing.T) (*Handler, *pgxpool.Pool) {
	t.Helper()
	c, pool := bridgetest.Coordinator(t)
	h := New(Config{
		Service: c,
		LatestDecision: func(ctx context.Context, id string) (ledger.Decision, error) {
			return ledger.LatestDecision(ctx, pool, id)
		},
	})
	return h, pool
}

// registerHost registers a two-cell host through the agent route: CPUs
// 0-3 in cell 0 and 4-7 in cell 1; 2,3,6,7 dedicated, 0,1,4,5 shared.
func registerHost(t *testing.T, h http.Handler, name string) {
	t.Helper()
	body := `{"agent_url": "http://127.0.0.1:1", "cells": [{"id": 0, "cpus": "0-3", "memory_mb": 4096}, {"id": 1, "cpus": "4-7", "memory_mb": 4096}],
		"dedicated_cpus": "2,3,6,7", "shared_cpus": "0,1,4,5", "disk_gb": 100}`
	r := do(t, h, "PUT", "/v1/agents/"+name, adminToken, body)
	if r.status != http.StatusOK || r.body["provider_uuid"] == "" || r.body["owns_inventory"] != true {
		t.Fatalf("registering %s: %d %s", name, r.status, r.raw)
	}
}

func workloads(t *testing.T, r response) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, w := range r.body["workloads"].([]any) {
		out = append(out, w.(map[string]any))
	}
	return out
}

// One instruction with a dedicated container and a VM: both placed,
// claimed and explained; the agent's reports move the container to
// running; deletes follow Zun's rules and release the claims.
func TestWorkloadLifecycle(t *testing.T) {
	h, pool := realHandler(t)
	ctx := context.Background()
	registerHost(t, h, "h1")

	r := do(t, h, "POST", "/v1/workloads", aliceToken, `{"workloads": [
	  {"kind": "container", "name": "web", "cpu_policy": "dedicated", "cpu": 2, "memory_mb": 512, "image": "busybox", "command": ["sleep", "60"]},
	  {"kind": "vm", "name": "db", "cpu": 2, "memory_mb": 1024, "disk_gb": 10, "flavor": "m1.small"}
	]}`)
	if r.status != http.StatusAccepted {
		t.Fatalf("create: %d %s", r.status, r.raw)
	}
	ws := workloads(t, r)
	if len(ws) != 2 {
		t.Fatalf("%d workloads", len(ws))
	}
	web, db := ws[0], ws[1]
	webID, dbID := web["id"].(string), db["id"].(string)
	checks := []struct {
		name      string
		got, want any
	}{
		{"web host", web["host"], "h1"},
		{"web state", web["state"], "claimed"},
		{"web kind", web["kind"], "container"},
		{"web resources", fmt.Sprint(web["resources"]), "map[MEMORY_MB:512 PCPU:2]"},
		{"web pinned", len(strings.Split(web["pinned_cpus"].(string), ",")) + strings.Count(web["pinned_cpus"].(string), "-"), 2},
		{"web one cell", len(web["numa_cells"].([]any)), 1},
		{"web decision host", web["decision"].(map[string]any)["host"], "h1"},
		{"web container image", web["container"].(map[string]any)["image"], "busybox"},
		{"web cpuset = pinned", web["container"].(map[string]any)["cpuset_cpus"], web["pinned_cpus"]},
		{"web runtime", web["runtime"], nil},
		{"web project", web["project_id"], "projA"},
		{"db host", db["host"], "h1"},
		{"db state", db["state"], "claimed"},
		{"db resources", fmt.Sprint(db["resources"]), "map[DISK_GB:10 MEMORY_MB:1024 VCPU:2]"},
		{"db no pins", db["pinned_cpus"], ""},
		{"db no container", db["container"], nil},
	}
	for _, c := range checks {
		if fmt.Sprint(c.got) != fmt.Sprint(c.want) {
			t.Errorf("%s: %v, want %v", c.name, c.got, c.want)
		}
	}

	// Placement holds the claims, consumer = workload id
	for id, want := range map[string]int64{webID: 512, dbID: 1024} {
		var used int64
		if err := pool.QueryRow(ctx, `SELECT COALESCE(sum(a.used), 0) FROM allocations a JOIN consumers c ON c.id = a.consumer_id
			JOIN resource_classes rc ON rc.id = a.resource_class_id WHERE c.uuid = $1 AND rc.name = 'MEMORY_MB'`, id).Scan(&used); err != nil {
			t.Fatal(err)
		}
		if used != want {
			t.Errorf("placement MEMORY_MB of %s: %d, want %d", id, used, want)
		}
	}

	// the agent's view and reports
	r = do(t, h, "GET", "/v1/agents/h1/desired", adminToken, "")
	if cs := r.body["containers"].([]any); r.status != 200 || len(cs) != 1 || cs[0].(map[string]any)["workload_id"] != webID {
		t.Errorf("desired: %d %s", r.status, r.raw)
	}
	if r := do(t, h, "POST", "/v1/agents/h1/reports", adminToken, `{"workload_id": "`+webID+`", "status": "Running", "container_id": "abc123"}`); r.status != http.StatusNoContent {
		t.Fatalf("report: %d %s", r.status, r.raw)
	}
	r = do(t, h, "GET", "/v1/workloads/"+webID, aliceToken, "")
	rt, _ := r.body["runtime"].(map[string]any)
	if r.status != 200 || rt["status"] != "Running" || rt["container_id"] != "abc123" || r.body["state"] != "active" {
		t.Errorf("after the Running report: %d %s", r.status, r.raw)
	}
	if r.body["decision"] == nil {
		t.Errorf("GET without the decision: %s", r.raw)
	}
	if r := do(t, h, "POST", "/v1/agents/h1/reports", adminToken, `{"workload_id": "00000000-0000-0000-0000-000000000009", "status": "Running"}`); r.status != http.StatusNotFound {
		t.Errorf("report of an unknown workload: %d, want 404", r.status)
	}
	if r := do(t, h, "GET", "/v1/agents/nohost/desired", adminToken, ""); r.status != http.StatusNotFound {
		t.Errorf("desired of an unknown host: %d, want 404: %s", r.status, r.raw)
	}

	// lists
	if names, r := listNames(t, h, aliceToken, ""); strings.Join(names, ",") != "web,db" {
		t.Errorf("alice lists %v (%d %s)", names, r.status, r.raw)
	}
	if names, _ := listNames(t, h, aliceToken, "?kind=vm"); strings.Join(names, ",") != "db" {
		t.Errorf("alice lists VMs: %v", names)
	}
	if names, _ := listNames(t, h, bobToken, ""); len(names) != 0 {
		t.Errorf("bob lists %v", names)
	}
	if names, _ := listNames(t, h, adminToken, "?host=h1"); len(names) != 2 {
		t.Errorf("admin lists h1: %v", names)
	}
	r = do(t, h, "GET", "/v1/workloads?limit=1", aliceToken, "")
	next, _ := r.body["next"].(string)
	if len(workloads(t, r)) != 1 || next == "" {
		t.Fatalf("first page: %s", r.raw)
	}
	if names, _ := listNames(t, h, aliceToken, strings.TrimPrefix(next, "/v1/workloads")); strings.Join(names, ",") != "db" {
		t.Errorf("second page: %v", names)
	}
	if r := do(t, h, "GET", "/v1/workloads?marker=00000000-0000-0000-0000-000000000009", aliceToken, ""); r.status != http.StatusBadRequest {
		t.Errorf("unknown marker: %d, want 400", r.status)
	}
	if r := do(t, h, "GET", "/v1/workloads/"+webID, bobToken, ""); r.status != http.StatusNotFound {
		t.Errorf("bob reads alice's: %d, want 404", r.status)
	}

	// deletes: a running container needs stop or force
	r = do(t, h, "DELETE", "/v1/workloads/"+webID, aliceToken, "")
	if r.status != http.StatusConflict || !strings.Contains(errorDetail(t, r), "status Running") {
		t.Errorf("delete of a running container: %d %s", r.status, r.raw)
	}
	if r := do(t, h, "DELETE", "/v1/workloads/"+webID+"?stop=true", bobToken, ""); r.status != http.StatusNotFound {
		t.Errorf("bob deletes alice's: %d, want 404", r.status)
	}
	if r := do(t, h, "DELETE", "/v1/workloads/"+webID+"?stop=true", aliceToken, ""); r.status != http.StatusNoContent {
		t.Fatalf("delete with stop: %d %s", r.status, r.raw)
	}
	if r := do(t, h, "GET", "/v1/workloads/"+webID, aliceToken, ""); r.body["state"] != "deleting" {
		t.Errorf("after delete: %s", r.raw)
	}
	if r := do(t, h, "POST", "/v1/agents/h1/reports", adminToken, `{"workload_id": "`+webID+`", "status": "Deleted"}`); r.status != http.StatusNoContent {
		t.Fatalf("Deleted report: %d %s", r.status, r.raw)
	}
	if r := do(t, h, "GET", "/v1/workloads/"+webID, aliceToken, ""); r.status != http.StatusNotFound {
		t.Errorf("after the agent removed it: %d %s", r.status, r.raw)
	}
	// a VM goes at once (nothing boots it yet)
	if r := do(t, h, "DELETE", "/v1/workloads/"+dbID, aliceToken, ""); r.status != http.StatusNoContent {
		t.Fatalf("delete VM: %d %s", r.status, r.raw)
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM allocations`).Scan(&n); err != nil || n != 0 {
		t.Errorf("allocations left after both deletes: %d (%v)", n, err)
	}
	if r := do(t, h, "GET", "/v1/workloads/"+dbID, aliceToken, ""); r.status != http.StatusNotFound {
		t.Errorf("deleted VM still there: %d", r.status)
	}
}

// An entry no host can take is reported in state error with the
// scheduler's reasons; the other entries keep their claims.
func TestNoValidHostEntry(t *testing.T) {
	h, pool := realHandler(t)
	registerHost(t, h, "h1")
	r := do(t, h, "POST", "/v1/workloads", aliceToken, `{"workloads": [
	  {"kind": "container", "name": "small", "cpu": 1, "memory_mb": 64, "image": "busybox"},
	  {"kind": "container", "name": "huge", "cpu_policy": "dedicated", "cpu": 16, "memory_mb": 64, "image": "busybox"}
	]}`)
	if r.status != http.StatusAccepted {
		t.Fatalf("create: %d %s", r.status, r.raw)
	}
	ws := workloads(t, r)
	small, huge := ws[0], ws[1]
	if small["state"] != "claimed" || small["host"] != "h1" {
		t.Errorf("small: %v", small)
	}
	d, _ := huge["decision"].(map[string]any)
	if huge["state"] != "error" || huge["host"] != nil || !strings.Contains(huge["status_reason"].(string), "not enough hosts") ||
		d == nil || d["host"] != nil || d["error"] == "" {
		t.Errorf("huge: %v", huge)
	}
	r = do(t, h, "GET", "/v1/workloads/"+huge["id"].(string), aliceToken, "")
	if r.status != 200 || r.body["state"] != "error" {
		t.Errorf("GET huge: %d %s", r.status, r.raw)
	}
	// it holds nothing and can be deleted without stop or force
	if r := do(t, h, "DELETE", "/v1/workloads/"+huge["id"].(string), aliceToken, ""); r.status != http.StatusNoContent {
		t.Errorf("delete the failed one: %d %s", r.status, r.raw)
	}
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(DISTINCT consumer_id) FROM allocations`).Scan(&n); err != nil || n != 1 {
		t.Errorf("consumers holding allocations: %d (%v), want 1 (small)", n, err)
	}
}

// A refused entry fails the instruction and undoes the entries created
// before it; a member may not pick the host, an admin may.
func TestRefusedInstructionUndone(t *testing.T) {
	h, pool := realHandler(t)
	registerHost(t, h, "h1")
	registerHost(t, h, "h2")
	id := createOne(t, h, aliceToken, "first")
	r := do(t, h, "POST", "/v1/workloads", aliceToken, `{"workloads": [
	  {"kind": "container", "name": "a", "cpu": 1, "memory_mb": 64, "image": "busybox"},
	  {"kind": "container", "name": "b", "cpu": 1, "memory_mb": 64, "image": "busybox", "id": "`+id+`"}
	]}`)
	if r.status != http.StatusConflict {
		t.Fatalf("duplicate id: %d %s", r.status, r.raw)
	}
	if d := errorDetail(t, r); !strings.Contains(d, "workloads[1]: ") {
		t.Errorf("detail %q does not name the entry", d)
	}
	if names, _ := listNames(t, h, aliceToken, ""); strings.Join(names, ",") != "first" {
		t.Errorf("after the refused instruction alice has %v", names)
	}
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(DISTINCT consumer_id) FROM allocations`).Scan(&n); err != nil || n != 1 {
		t.Errorf("consumers holding allocations: %d (%v), want 1", n, err)
	}

	r = do(t, h, "POST", "/v1/workloads", adminToken, `{"workloads": [{"kind": "container", "cpu": 1, "memory_mb": 64, "image": "busybox", "host": "h2"}]}`)
	if r.status != http.StatusAccepted || workloads(t, r)[0]["host"] != "h2" {
		t.Errorf("admin on h2: %d %s", r.status, r.raw)
	}
	r = do(t, h, "POST", "/v1/workloads", adminToken, `{"workloads": [{"kind": "container", "cpu": 1, "memory_mb": 64, "image": "busybox", "host": "h9"}]}`)
	if r.status != http.StatusAccepted || workloads(t, r)[0]["state"] != "error" {
		t.Errorf("admin on an unknown host: %d %s, want 202 in state error", r.status, r.raw)
	}
}
