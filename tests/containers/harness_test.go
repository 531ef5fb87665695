package containers

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/unisched/unisched/bridge/agentproto"
	"github.com/unisched/unisched/internal/proctest"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

// The harness itself: serve starts with both listeners on a migrated
// database, and stops by its pid; an environment may have a dockerd of
// its own.
func TestServeStarts(t *testing.T) {
	env := Start(t, Options{Agents: []AgentSpec{}, OwnDocker: true})
	if env.Daemon == nil || env.Daemon.Pid() == 0 || env.DockerHost != env.Daemon.Host {
		t.Fatalf("own dockerd: %+v at %s", env.Daemon, env.DockerHost)
	}
	if _, err := env.Docker.ImageInspect(context.Background(), env.Image); err != nil {
		t.Fatalf("%s on the own dockerd: %v", env.Image, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var root struct {
		Versions []struct {
			ID         string `json:"id"`
			MaxVersion string `json:"max_version"`
		} `json:"versions"`
	}
	if err := env.Placement.Get(ctx, "/", &root); err != nil || len(root.Versions) != 1 || root.Versions[0].MaxVersion != "1.39" {
		t.Fatalf("placement root: %+v, %v", root, err)
	}
	r, err := env.Zun.Do(ctx, http.MethodGet, "/", nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != http.StatusOK || !strings.Contains(string(r.Body), `"max_version": "1.40"`) && !strings.Contains(string(r.Body), `"max_version":"1.40"`) {
		t.Fatalf("container API root: %d %s", r.Status, r.Body)
	}
	var n int
	if err := env.DB.QueryRow(ctx, `SELECT count(*) FROM bridge_hosts`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("bridge_hosts: %d rows, %v; want a migrated, empty table", n, err)
	}
	list, err := env.Zun.List(ctx, "")
	if err != nil || len(list) != 0 {
		t.Fatalf("GET /v1/containers on an empty database: %v, %v", list, err)
	}
	pid := env.Serve.Pid()
	if err := env.Serve.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	if left, _ := proctest.GroupMembers(pid); len(left) > 0 {
		t.Fatalf("serve's processes left after Stop: %v", left)
	}
	if err := env.StartServe(ctx); err != nil {
		t.Fatalf("serve does not start again on the same database: %v", err)
	}
}

// Both agents register: their hosts are in the ledger with their topology,
// Placement has a provider per host with the agent-owned inventory, and
// Zun's host list shows them.
func TestAgentsRegister(t *testing.T) {
	NeedAgent(t)
	env := Start(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, spec := range DefaultHosts() {
		inv, err := env.Placement.Inventories(ctx, spec.Host)
		if err != nil {
			t.Fatalf("%s: %v\n%s", spec.Host, err, env.Logs(30))
		}
		if inv["PCPU"].Total != 1 || inv["VCPU"].Total != 1 || inv["MEMORY_MB"].Total != 8192 || inv["DISK_GB"].Total != 100 {
			t.Errorf("%s inventory %+v: want PCPU 1, VCPU 1, MEMORY_MB 8192, DISK_GB 100", spec.Host, inv)
		}
		traits, err := env.Placement.Traits(ctx, spec.Host)
		if err != nil || !slices.Contains(traits, "CUSTOM_UNISCHED_AGENT_MANAGED") {
			t.Errorf("%s traits %v, %v: want CUSTOM_UNISCHED_AGENT_MANAGED", spec.Host, traits, err)
		}
		var cells, dedicated, shared int
		err = env.DB.QueryRow(ctx, `SELECT (SELECT count(*) FROM bridge_host_cells c WHERE c.host_id = h.id),
	(SELECT count(*) FROM bridge_host_cpus c WHERE c.host_id = h.id AND c.dedicated),
	(SELECT count(*) FROM bridge_host_cpus c WHERE c.host_id = h.id AND c.shared)
FROM bridge_hosts h WHERE h.name = $1`, spec.Host).Scan(&cells, &dedicated, &shared)
		if err != nil || cells != 2 || dedicated != 1 || shared != 1 {
			t.Errorf("%s in the ledger: %d cells, %d dedicated, %d shared cpus (%v); want 2, 1, 1", spec.Host, cells, dedicated, shared, err)
		}
	}
	hosts, err := env.Zun.Hosts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, h := range hosts {
		names = append(names, fmt.Sprint(h["hostname"]))
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"host-a", "host-b"}) {
		t.Fatalf("GET /v1/hosts hostnames %v, want [host-a host-b]", names)
	}
}

// A shared container from run to delete: Zun status, logs, the Placement
// claim (VCPU = ceil(cpu), consumer type CONTAINER), the Docker container
// (name, labels, cpuset = shared pool, NanoCPUs, memory), then stop,
// start, the 409 of a delete while running, and the claim released.
func TestSharedContainerLifecycle(t *testing.T) {
	NeedAgent(t)
	env := Start(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	echo := env.Zun.MustRun(t, map[string]any{"image": env.Image, "command": []string{"echo", "hello"},
		"cpu": 0.5, "memory": "64", "name": "echoer"})
	if echo.Status != "Stopped" {
		echo, _ = env.Zun.WaitStatus(ctx, echo.UUID, "Stopped")
	}
	if err := Eventually(ctx, 30*time.Second, func(ctx context.Context) error {
		logs, err := env.Zun.Logs(ctx, echo.UUID)
		if err != nil {
			return err
		}
		if !strings.Contains(logs, "hello") {
			return fmt.Errorf("logs %q lack hello", logs)
		}
		return nil
	}); err != nil {
		t.Fatalf("logs of %s: %v\n%s", echo.UUID, err, env.Logs(40))
	}

	c := env.Zun.MustRun(t, map[string]any{"image": env.Image, "command": []string{"sleep", "300"},
		"cpu": 0.5, "memory": "64", "cpu_policy": "shared", "name": "sleeper"})
	if c.Status != "Running" {
		t.Fatalf("sleeper: status %s (%s)", c.Status, c.StatusReason)
	}
	host := c.HostName()
	spec := specOf(t, host)

	allocs, ctype, err := env.Placement.Allocations(ctx, c.UUID)
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "CONTAINER" || len(allocs) != 1 {
		t.Fatalf("allocations of %s: %v, consumer type %q; want one provider, CONTAINER", c.UUID, allocs, ctype)
	}
	for _, res := range allocs {
		if res["VCPU"] != 1 || res["MEMORY_MB"] != 64 || res["PCPU"] != 0 {
			t.Fatalf("allocation %v: want VCPU 1 (ceil 0.5), MEMORY_MB 64", res)
		}
	}

	ins, err := env.Inspect(ctx, c.UUID)
	if err != nil {
		t.Fatal(err)
	}
	if ins.Name != "/"+DockerName(c.UUID) || ins.Config.Labels[agentproto.LabelWorkload] != c.UUID ||
		ins.Config.Labels[agentproto.LabelHost] != host || !ins.State.Running {
		t.Fatalf("docker inspect: name %s labels %v running %v", ins.Name, ins.Config.Labels, ins.State.Running)
	}
	hc := ins.HostConfig
	if hc.CpusetCpus != spec.SharedCPUs || hc.NanoCPUs != 500_000_000 || hc.Memory != 64<<20 {
		t.Fatalf("docker resources: cpuset %q nanocpus %d memory %d; want %q, 5e8, %d", hc.CpusetCpus, hc.NanoCPUs, hc.Memory, spec.SharedCPUs, 64<<20)
	}

	if err := env.Zun.Delete(ctx, c.UUID, ""); StatusOf(err) != http.StatusConflict {
		t.Fatalf("delete of a running container without stop/force: %v, want 409", err)
	}
	if err := env.Zun.Action(ctx, c.UUID, "stop", "timeout=1"); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Zun.WaitStatus(ctx, c.UUID, "Stopped"); err != nil {
		t.Fatalf("%v\n%s", err, env.Logs(40))
	}
	if err := env.Zun.Action(ctx, c.UUID, "start", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Zun.WaitStatus(ctx, c.UUID, "Running"); err != nil {
		t.Fatalf("%v\n%s", err, env.Logs(40))
	}

	for _, id := range []string{c.UUID, echo.UUID} {
		if err := env.Zun.Delete(ctx, id, "stop=true"); err != nil {
			t.Fatal(err)
		}
		if err := env.Zun.WaitGone(ctx, id); err != nil {
			t.Fatalf("%v\n%s", err, env.Logs(40))
		}
	}
	if err := Eventually(ctx, 30*time.Second, func(ctx context.Context) error {
		left, err := env.HostContainers(ctx, host)
		if err != nil || len(left) > 0 {
			return fmt.Errorf("docker containers of %s: %d, %v", host, len(left), err)
		}
		u, err := env.Placement.Usages(ctx, host)
		if err != nil || u["VCPU"] != 0 || u["MEMORY_MB"] != 0 {
			return fmt.Errorf("usages of %s: %v, %v", host, u, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Workload(ctx, c.UUID); err == nil {
		t.Fatalf("workload %s still in the ledger after the delete", c.UUID)
	}
}

// Dedicated containers pin the dedicated pCPU of a host (cpuset = that
// CPU, mems = its cell) and claim PCPU; with both hosts' single dedicated
// CPU taken, a third one finds no host.
func TestDedicatedPinning(t *testing.T) {
	NeedAgent(t)
	env := Start(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	seen := map[string]bool{}
	for i := 0; i < 2; i++ {
		c := env.Zun.MustRun(t, map[string]any{"image": env.Image, "command": []string{"sleep", "300"},
			"cpu": 1, "memory": 32, "cpu_policy": "dedicated"})
		host := c.HostName()
		if seen[host] {
			t.Fatalf("two dedicated containers on %s, which has one dedicated CPU", host)
		}
		seen[host] = true
		spec := specOf(t, host)
		w, err := env.Workload(ctx, c.UUID)
		if err != nil {
			t.Fatal(err)
		}
		wantCPU := spec.DedicatedCPUs
		wantCell := cellOf(spec, wantCPU)
		if len(w.PinnedCPUs) != 1 || fmt.Sprint(w.PinnedCPUs[0]) != wantCPU || w.PCPU != 1 || w.VCPU != 0 {
			t.Fatalf("ledger: pinned %v pcpu %d vcpu %d; want [%s], 1, 0", w.PinnedCPUs, w.PCPU, w.VCPU, wantCPU)
		}
		ins, err := env.Inspect(ctx, c.UUID)
		if err != nil {
			t.Fatal(err)
		}
		if w.Container == nil || w.Container.CpusetCpus != wantCPU || w.Container.CpusetMems != fmt.Sprint(wantCell) {
			t.Fatalf("desired container %+v: want cpuset %s, mems %d", w.Container, wantCPU, wantCell)
		}
		// The agent clamps the mems to the nodes this machine has (the
		// simulated cell 1 has no node of its own here).
		wantMems := fmt.Sprint(wantCell)
		if _, err := os.Stat(fmt.Sprintf("/sys/devices/system/node/node%d", wantCell)); err != nil {
			wantMems = ""
		}
		if ins.HostConfig.CpusetCpus != wantCPU || ins.HostConfig.CpusetMems != wantMems {
			t.Fatalf("docker cpuset %q mems %q; want %s, %q", ins.HostConfig.CpusetCpus, ins.HostConfig.CpusetMems, wantCPU, wantMems)
		}
		u, err := env.Placement.Usages(ctx, host)
		if err != nil || u["PCPU"] != 1 || u["MEMORY_MB"] != 32 {
			t.Fatalf("usages of %s: %v, %v; want PCPU 1, MEMORY_MB 32", host, u, err)
		}
	}
	third, err := env.Zun.Create(ctx, map[string]any{"image": env.Image, "command": []string{"sleep", "300"},
		"cpu": 1, "memory": 32, "cpu_policy": "dedicated"}, true)
	if err != nil {
		t.Fatal(err)
	}
	got, err := env.Zun.WaitStatus(ctx, third.UUID, "Error")
	// Zun's reason, then the scheduler's details.
	if err != nil || !strings.HasPrefix(got.StatusReason, "There are not enough hosts available.") || !strings.Contains(got.StatusReason, "PCPU") {
		t.Fatalf("third dedicated container: %s %q (%v); want Error, There are not enough hosts available. (+ why: PCPU)", got.Status, got.StatusReason, err)
	}
	// It holds nothing.
	for _, h := range []string{"host-a", "host-b"} {
		if u, err := env.Placement.Usages(ctx, h); err != nil || u["PCPU"] != 1 {
			t.Fatalf("usages of %s after the failed create: %v, %v; want PCPU 1", h, u, err)
		}
	}
}

func specOf(t *testing.T, host string) AgentSpec {
	t.Helper()
	for _, s := range DefaultHosts() {
		if s.Host == host {
			return s
		}
	}
	t.Fatalf("container placed on %q, not one of the default hosts", host)
	return AgentSpec{}
}

func cellOf(spec AgentSpec, cpu string) int {
	for _, c := range spec.Cells {
		if c.CPUs == cpu {
			return c.ID
		}
	}
	return -1
}

func TestAgentConfig(t *testing.T) {
	env := &Env{Dir: "/tmp/x", ContainerURL: "http://127.0.0.1:1", DockerHost: "unix:///tmp/d.sock", opts: Options{LogLevel: "info"}}
	spec := DefaultHosts()[0]
	spec.CPUAllocationRatio = 2
	spec.Extra = map[string]any{"clamp_cpusets": true}
	b, err := json.Marshal(env.agentConfig(spec, "127.0.0.1:2"))
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Agent map[string]any `json:"agent"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"host": "host-a", "listen": "127.0.0.1:2", "serve_url": "http://127.0.0.1:1", "docker_host": "unix:///tmp/d.sock",
		"dedicated_cpus": "1", "shared_cpus": "0", "cpu_allocation_ratio": 2.0, "clamp_cpusets": true, "disk_gb": 100.0, "token": AdminToken}
	for k, v := range want {
		if got.Agent[k] != v {
			t.Errorf("agent.%s = %v, want %v", k, got.Agent[k], v)
		}
	}
	if _, ok := got.Agent["ram_allocation_ratio"]; ok {
		t.Error("a zero ratio is written; it should be left to the default")
	}
	cells, _ := got.Agent["cells"].([]any)
	if len(cells) != 2 || math.Abs(cells[1].(map[string]any)["memory_mb"].(float64)-4096) > 0 {
		t.Errorf("cells %v", got.Agent["cells"])
	}
}
