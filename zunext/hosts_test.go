package zunext

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/unisched/unisched/bridge/agentproto"
	"github.com/unisched/unisched/bridge/bridgetest"
	"github.com/unisched/unisched/bridge/ledger"
)

// TestHostsAndServices shows registered hosts as Zun's compute nodes and
// their agents as zun-compute services: topology from the registration,
// usage from Placement's allocations of the containers placed there, up or
// down by the agents' heartbeats.
func TestHostsAndServices(t *testing.T) {
	tb := newBareTestbed(t)
	h, ctx := tb.h, context.Background()
	host1 := bridgetest.Register(t, tb.c, agentproto.Registration{Host: "host1", AgentURL: "http://127.0.0.1:1", AvailabilityZone: "az1",
		Cells: []agentproto.Cell{{ID: 0, CPUs: "0-3", MemoryMB: 4096}}, DedicatedCPUs: "2,3", SharedCPUs: "0,1", DiskGB: 100,
		OS: "Debian GNU/Linux 12", KernelVersion: "6.1.0", Architecture: "x86_64"})
	// three containers on it: VCPU 1, PCPU 2, 768 MB and 10 GB in use
	for _, body := range []string{
		`{"image": "busybox", "cpu": 1, "memory": 256, "disk": 10}`,
		`{"image": "busybox", "cpu": 1, "memory": 256, "cpu_policy": "dedicated"}`,
		`{"image": "busybox", "cpu": 1, "memory": 256, "cpu_policy": "dedicated"}`,
	} {
		if c := create(t, h, "demo:demo", body); c["status"] != "Creating" {
			t.Fatalf("%s: %v %v", body, c["status"], c["status_reason"])
		}
	}
	// a second host, without dedicated CPUs, whose agent stopped
	// heartbeating ten minutes ago
	host2 := bridgetest.Register(t, tb.c, agentproto.Registration{Host: "host2", AgentURL: "http://127.0.0.1:1",
		Cells: []agentproto.Cell{{ID: 0, CPUs: "0-1", MemoryMB: 2048}}, SharedCPUs: "0,1"})
	hosts, err := tb.c.ListHosts(ctx)
	if err != nil || len(hosts) != 2 || hosts[0].Name != "host1" {
		t.Fatalf("hosts %+v (%v)", hosts, err)
	}
	now := hosts[0].HeartbeatAt.Add(5 * time.Second)
	tb.now = func() time.Time { return now }
	if err := ledger.Heartbeat(ctx, tb.pool, "host2", now.Add(-10*time.Minute)); err != nil {
		t.Fatal(err)
	}

	res := do(t, h, apiCall{method: "GET", path: "/v1/hosts/", version: latest})
	if res.status != 200 {
		t.Fatalf("hosts: %d %s", res.status, res.body)
	}
	views := res.json(t)["hosts"].([]any)
	if len(views) != 2 || views[0].(map[string]any)["hostname"] != "host1" {
		t.Fatalf("hosts %v", views)
	}
	h1 := views[0].(map[string]any)
	want := map[string]any{"uuid": host1.ProviderUUID, "mem_total": 4096.0, "mem_used": 768.0,
		"cpus": 4.0, "cpu_used": 3.0, "disk_total": 100.0, "disk_used": 10.0, "total_containers": 3.0,
		"os": "Debian GNU/Linux 12", "kernel_version": "6.1.0", "architecture": "x86_64", "enable_cpu_pinning": true,
		"os_type": "linux"}
	for k, v := range want {
		if h1[k] != v {
			t.Errorf("host1 %s = %v, want %v", k, h1[k], v)
		}
	}
	if h2 := views[1].(map[string]any); h2["os"] != nil || h2["enable_cpu_pinning"] != false || h2["cpus"] != 2.0 ||
		h2["mem_total"] != 2048.0 || h2["total_containers"] != 0.0 {
		t.Errorf("host2 %v", h2)
	}
	for _, ident := range []string{"host2", host2.ProviderUUID, strings.ReplaceAll(host2.ProviderUUID, "-", "")} {
		res = do(t, h, apiCall{method: "GET", path: "/v1/hosts/" + ident, version: latest})
		if res.status != 200 || res.json(t)["hostname"] != "host2" {
			t.Errorf("host %s: %d %s", ident, res.status, res.body)
		}
	}
	res = do(t, h, apiCall{method: "GET", path: "/v1/hosts/host9", version: latest})
	if e := res.errorOf(t); res.status != 404 || e["code"] != "container.compute-node-not-found" || e["title"] != "Compute node host9 could not be found." {
		t.Errorf("unknown host: %d %s", res.status, res.body)
	}
	res = do(t, h, apiCall{method: "GET", path: "/v1/hosts?limit=1", version: latest})
	if m := res.json(t); len(m["hosts"].([]any)) != 1 || m["next"] != "http://zun.test/v1/hosts?sort_key=hostname&sort_dir=asc&limit=1&marker="+host1.ProviderUUID {
		t.Errorf("hosts page: %s", res.body)
	}

	res = do(t, h, apiCall{method: "GET", path: "/v1/services", version: latest})
	if res.status != 200 {
		t.Fatalf("services: %d %s", res.status, res.body)
	}
	m := res.json(t)
	if _, ok := m["next"]; ok {
		t.Errorf("services carry no next: %v", m)
	}
	services := m["services"].([]any)
	if len(services) != 2 {
		t.Fatalf("services %v", services)
	}
	s1, s2 := services[0].(map[string]any), services[1].(map[string]any)
	if s1["host"] != "host1" || s1["state"] != "up" || s1["binary"] != "zun-compute" || s1["id"] != 1.0 || s1["availability_zone"] != "az1" ||
		s1["last_seen_up"] != now.Add(-5*time.Second).UTC().Format("2006-01-02T15:04:05.000000") {
		t.Errorf("service 1 %v", s1)
	}
	if s2["host"] != "host2" || s2["state"] != "down" || s2["availability_zone"] != "nova" || s2["id"] != 2.0 {
		t.Errorf("service 2 %v", s2)
	}
}

func TestZonesAndUnofferedResources(t *testing.T) {
	tb := newBareTestbed(t)
	h := tb.h
	for name, az := range map[string]string{"a": "az2", "b": "", "c": "az2"} {
		reg := bridgetest.TwoCells(name)
		reg.AvailabilityZone = az
		bridgetest.Register(t, tb.c, reg)
	}
	res := do(t, h, apiCall{method: "GET", path: "/v1/availability_zones", token: "demo:demo", version: latest})
	if res.status != 200 || !jsonEqual(res.json(t)["availability_zones"], []map[string]string{{"availability_zone": "az2"}, {"availability_zone": "nova"}}) {
		t.Errorf("zones: %d %s", res.status, res.body)
	}
	for _, p := range []string{"/v1/images", "/v1/images/busybox", "/v1/networks/x", "/v1/capsules", "/v1/quotas/p1", "/v1/registries"} {
		res := do(t, h, apiCall{method: "GET", path: p, version: latest})
		if res.status != 400 || res.errorOf(t)["code"] != "container.operation-not-supported" {
			t.Errorf("%s: %d %s", p, res.status, res.body)
		}
	}
}

func TestServiceChangesRefused(t *testing.T) {
	h, _ := newTestHandler(t)
	for _, c := range []apiCall{
		{method: "PUT", path: "/v1/services/disable?host=a&binary=zun-compute"},
		{method: "PUT", path: "/v1/services/force_down"},
		{method: "DELETE", path: "/v1/services?host=a&binary=zun-compute"},
		{method: "GET", path: "/v1/containers/x/container_actions/req-1"},
	} {
		c.version = latest
		if res := do(t, h, c); res.status != 400 || res.errorOf(t)["code"] != "container.operation-not-supported" {
			t.Errorf("%s %s: %d %s", c.method, c.path, res.status, res.body)
		}
	}
}
