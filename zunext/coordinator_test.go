package zunext

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/unisched/unisched/bridge/agentproto"
	"github.com/unisched/unisched/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestOverCoordinator drives the container life cycle through the API
// over the real coordinator: create (claim), the agent's reports, an
// action, a resize, delete with stop, and a create no host can take.
func TestOverCoordinator(t *testing.T) {
	h, tb := newTestHandler(t)
	c, ctx := tb.c, context.Background()

	res := do(t, h, apiCall{method: "POST", path: "/v1/containers?run=true", token: "alice:demo", version: latest,
		body: `{"name": "web", "image": "busybox", "command": ["sleep", "600"], "cpu": 1.5, "memory": 256,
		"labels": {"app": "web"}, "restart_policy": {"Name": "no"}}`})
	if res.status != 202 {
		t.Fatalf("create: %d %s", res.status, res.body)
	}
	v := res.json(t)
	id := v["uuid"].(string)
	if v["status"] != "Creating" || v["memory"] != "256" || v["cpu"] != 1.5 || v["name"] != "web" {
		t.Fatalf("created view %v", v)
	}
	w, err := c.Get(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if w.Host != "host1" || w.Resources.VCPU != 2 || w.Resources.MemoryMB != 256 || w.Container == nil ||
		!w.Container.Running || strings.Join(w.Container.Command, " ") != "sleep 600" || w.Container.Labels["app"] != "web" {
		t.Fatalf("workload %+v container %+v", w, w.Container)
	}

	// the admin sees the host; the member does not
	if v := do(t, h, apiCall{method: "GET", path: "/v1/containers/" + id, version: latest}).json(t); v["host"] != "host1" {
		t.Errorf("admin view host %v", v["host"])
	}
	if v := do(t, h, apiCall{method: "GET", path: "/v1/containers/web", token: "alice:demo", version: latest}).json(t); v["host"] != nil {
		t.Errorf("member sees host %v", v["host"])
	}
	if res := do(t, h, apiCall{method: "GET", path: "/v1/containers/web", token: "bob:other", version: latest}); res.status != 404 {
		t.Errorf("other project by name: %d", res.status)
	}

	report := func(status string) {
		t.Helper()
		if err := c.Report(ctx, "host1", agentproto.Report{WorkloadID: id, Status: status, ObservedAt: time.Now()}); err != nil {
			t.Fatalf("report %s: %v", status, err)
		}
	}
	report(agentproto.StatusRunning)
	v = do(t, h, apiCall{method: "GET", path: "/v1/containers/" + id, token: "alice:demo", version: latest}).json(t)
	if v["status"] != "Running" || v["task_state"] != nil {
		t.Fatalf("after the report: %v %v", v["status"], v["task_state"])
	}
	if res := do(t, h, apiCall{method: "DELETE", path: "/v1/containers/" + id, token: "alice:demo", version: latest}); res.status != 409 {
		t.Errorf("delete running: %d %s", res.status, res.body)
	}

	// hosts and services over the real ledger and Placement usage
	hv := do(t, h, apiCall{method: "GET", path: "/v1/hosts/host1", version: latest}).json(t)
	if hv["mem_total"] != 8192.0 || hv["mem_used"] != 256.0 || hv["cpu_used"] != 2.0 || hv["cpus"] != 8.0 ||
		hv["total_containers"] != 1.0 || hv["enable_cpu_pinning"] != true {
		t.Errorf("host view %v", hv)
	}
	if s := do(t, h, apiCall{method: "GET", path: "/v1/services", version: latest}).json(t)["services"].([]any); len(s) != 1 ||
		s[0].(map[string]any)["host"] != "host1" {
		t.Errorf("services %v", s)
	}

	// stop, then resize on the host
	if res := do(t, h, apiCall{method: "POST", path: "/v1/containers/" + id + "/stop", token: "alice:demo", version: latest}); res.status != 202 {
		t.Fatalf("stop: %d %s", res.status, res.body)
	}
	v = do(t, h, apiCall{method: "GET", path: "/v1/containers/" + id, token: "alice:demo", version: latest}).json(t)
	if v["task_state"] != "container_stopping" {
		t.Errorf("after stop: %v %v", v["status"], v["task_state"])
	}
	report(agentproto.StatusStopped)
	res = do(t, h, apiCall{method: "PATCH", path: "/v1/containers/" + id, token: "alice:demo", version: latest, body: `{"memory": 512, "name": "web2"}`})
	if res.status != 200 {
		t.Fatalf("resize: %d %s", res.status, res.body)
	}
	if v = res.json(t); v["memory"] != "512" || v["name"] != "web2" || v["status"] != "Stopped" {
		t.Errorf("resized view %v", v)
	}
	if w, _ = c.Get(ctx, id); w.Resources.MemoryMB != 512 {
		t.Errorf("resized workload %+v", w.Resources)
	}

	// a resize the host cannot hold is refused, the claim unchanged
	other := create(t, h, "alice:demo", `{"image": "busybox", "memory": 4096}`)["uuid"].(string)
	res = do(t, h, apiCall{method: "PATCH", path: "/v1/containers/" + id, token: "alice:demo", version: latest, body: `{"memory": 8192}`})
	if res.status != 409 {
		t.Errorf("resize beyond the host: %d %s", res.status, res.body)
	}
	if w, _ = c.Get(ctx, id); w.Resources.MemoryMB != 512 {
		t.Errorf("failed resize changed the workload: %+v", w.Resources)
	}
	if res := do(t, h, apiCall{method: "DELETE", path: "/v1/containers/" + other + "?force=true", version: latest}); res.status != 204 {
		t.Fatalf("force delete as admin: %d %s", res.status, res.body)
	}
	if err := c.Report(ctx, "host1", agentproto.Report{WorkloadID: other, Status: agentproto.StatusDeleted, ObservedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}

	// delete: deleting until the agent reports it gone
	if res := do(t, h, apiCall{method: "DELETE", path: "/v1/containers/web2", token: "alice:demo", version: latest}); res.status != 204 {
		t.Fatalf("delete: %d %s", res.status, res.body)
	}
	if v = do(t, h, apiCall{method: "GET", path: "/v1/containers/" + id, token: "alice:demo", version: latest}).json(t); v["status"] != "Deleting" {
		t.Errorf("after delete: %v", v["status"])
	}
	report(agentproto.StatusDeleted)
	if res := do(t, h, apiCall{method: "GET", path: "/v1/containers/" + id, token: "alice:demo", version: latest}); res.status != 404 {
		t.Errorf("after the agent removed it: %d %s", res.status, res.body)
	}

	// no host can take it: 202, status Error with Zun's reason
	res = do(t, h, apiCall{method: "POST", path: "/v1/containers", token: "alice:demo", version: latest,
		body: `{"image": "busybox", "memory": 8192, "cpu": 16}`})
	if res.status != 202 {
		t.Fatalf("unschedulable create: %d %s", res.status, res.body)
	}
	v = res.json(t)
	if reason, _ := v["status_reason"].(string); v["status"] != "Error" || !strings.HasPrefix(reason, "There are not enough hosts available.") {
		t.Errorf("unschedulable view: %v %v", v["status"], v["status_reason"])
	}
	if res := do(t, h, apiCall{method: "DELETE", path: "/v1/containers/" + v["uuid"].(string), token: "alice:demo", version: latest}); res.status != 204 {
		t.Errorf("delete the failed one: %d %s", res.status, res.body)
	}
	if res := do(t, h, apiCall{method: "GET", path: "/v1/containers", token: "alice:demo", version: latest}); len(res.json(t)["containers"].([]any)) != 0 {
		t.Errorf("containers left: %s", res.body)
	}
	// a dedicated container with a fractional cpu is refused by the coordinator
	res = do(t, h, apiCall{method: "POST", path: "/v1/containers", token: "alice:demo", version: latest,
		body: `{"image": "busybox", "cpu_policy": "dedicated", "cpu": 1.5}`})
	if res.status != 400 || !strings.HasPrefix(res.errorOf(t)["detail"].(string), "a dedicated workload needs a whole number of CPUs") {
		t.Errorf("fractional dedicated: %d %s", res.status, res.body)
	}
}
