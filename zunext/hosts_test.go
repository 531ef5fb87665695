package zunext

import (
	"testing"
	"time"

	"k8s.io/utils/cpuset"

	"github.com/unisched/unisched/bridge"
	"github.com/unisched/unisched/bridge/ledger"
)

func TestHostsAndServices(t *testing.T) {
	h, svc := newTestHandler(t)
	now := svc.clock
	svc.hosts = []bridge.HostInfo{
		{Host: ledger.Host{Name: "host2", ProviderUUID: "22222222-2222-2222-2222-222222222222", HeartbeatAt: now.Add(-10 * time.Minute),
			CreatedAt: now.Add(-time.Hour), Topology: ledger.Topology{Cells: []ledger.Cell{{ID: 0, CPUs: cpuset.New(0, 1), MemoryMB: 2048}},
				SharedCPUs: cpuset.New(0, 1)}},
			Resources: map[string]bridge.HostResource{"MEMORY_MB": {Total: 2048}, "VCPU": {Total: 2, AllocationRatio: 4}}},
		{Host: ledger.Host{Name: "host1", ProviderUUID: "11111111-1111-1111-1111-111111111111", HeartbeatAt: now.Add(-5 * time.Second),
			CreatedAt: now.Add(-2 * time.Hour), AvailabilityZone: "az1",
			Topology: ledger.Topology{Cells: []ledger.Cell{{ID: 0, CPUs: cpuset.New(0, 1, 2, 3), MemoryMB: 4096}},
				SharedCPUs: cpuset.New(0, 1), DedicatedCPUs: cpuset.New(2, 3)}},
			Resources: map[string]bridge.HostResource{"MEMORY_MB": {Total: 4096, Used: 768}, "VCPU": {Total: 2, Used: 1},
				"PCPU": {Total: 2, Used: 2}, "DISK_GB": {Total: 100, Used: 10}},
			Workloads: 3, OS: "Debian GNU/Linux 12", KernelVersion: "6.1.0", Architecture: "x86_64"},
	}
	res := do(t, h, apiCall{method: "GET", path: "/v1/hosts/", version: latest})
	if res.status != 200 {
		t.Fatalf("hosts: %d %s", res.status, res.body)
	}
	hosts := res.json(t)["hosts"].([]any)
	if len(hosts) != 2 || hosts[0].(map[string]any)["hostname"] != "host1" {
		t.Fatalf("hosts %v", hosts)
	}
	h1 := hosts[0].(map[string]any)
	want := map[string]any{"uuid": "11111111-1111-1111-1111-111111111111", "mem_total": 4096.0, "mem_used": 768.0,
		"cpus": 4.0, "cpu_used": 3.0, "disk_total": 100.0, "disk_used": 10.0, "total_containers": 3.0,
		"os": "Debian GNU/Linux 12", "kernel_version": "6.1.0", "architecture": "x86_64", "enable_cpu_pinning": true,
		"os_type": "linux"}
	for k, v := range want {
		if h1[k] != v {
			t.Errorf("host1 %s = %v, want %v", k, h1[k], v)
		}
	}
	if h2 := hosts[1].(map[string]any); h2["os"] != nil || h2["enable_cpu_pinning"] != false || h2["cpus"] != 2.0 {
		t.Errorf("host2 %v", h2)
	}
	for _, ident := range []string{"host2", "22222222-2222-2222-2222-222222222222", "22222222222222222222222222222222"} {
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
	if m := res.json(t); len(m["hosts"].([]any)) != 1 || m["next"] != "http://zun.test/v1/hosts?sort_key=hostname&sort_dir=asc&limit=1&marker=11111111-1111-1111-1111-111111111111" {
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
	s1, s2 := services[0].(map[string]any), services[1].(map[string]any)
	if s1["host"] != "host1" || s1["state"] != "up" || s1["binary"] != "zun-compute" || s1["id"] != 1.0 || s1["availability_zone"] != "az1" ||
		s1["last_seen_up"] != now.Add(-5*time.Second).Format("2006-01-02T15:04:05.000000") {
		t.Errorf("service 1 %v", s1)
	}
	if s2["host"] != "host2" || s2["state"] != "down" || s2["availability_zone"] != "nova" {
		t.Errorf("service 2 %v", s2)
	}
}

func TestZonesAndUnofferedResources(t *testing.T) {
	h, svc := newTestHandler(t)
	svc.hosts = []bridge.HostInfo{{Host: ledger.Host{Name: "a", AvailabilityZone: "az2"}}, {Host: ledger.Host{Name: "b"}},
		{Host: ledger.Host{Name: "c", AvailabilityZone: "az2"}}}
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
