package containers

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"

	"github.com/unisched/unisched/bridge/agentproto"
)

// numaHost is one host of two NUMA cells of one CPU each, both CPUs
// dedicated: room for exactly two single-pCPU dedicated containers, one
// per cell.
func numaHost() AgentSpec {
	return AgentSpec{
		Host: "numa-host",
		Cells: []agentproto.Cell{
			{ID: 0, CPUs: "0", MemoryMB: 1024},
			{ID: 1, CPUs: "1", MemoryMB: 1024},
		},
		DedicatedCPUs: "0,1",
		DiskGB:        10,
	}
}

// dockerMems is what Docker shows as CpusetMems for a cell: the agent
// drops memory nodes this machine lacks (a one-node machine simulating two
// cells), so cell 1 becomes "no constraint" here and "1" on a real
// two-node host.
func dockerMems(cell int) string {
	if _, err := os.Stat(fmt.Sprintf("/sys/devices/system/node/node%d", cell)); err != nil {
		return ""
	}
	return fmt.Sprint(cell)
}

// The NUMA scenario of the issue, on one host with two cells: the first
// dedicated container takes cell 0, the second cell 1 (cpuset and mems as
// docker inspect shows them), the third is refused with Zun's Error status
// and holds nothing, and deleting the first makes room on cell 0 again. At
// every step the ledger, Placement and Docker agree.
func TestNUMAScenario(t *testing.T) {
	NeedAgent(t)
	env := Start(t, Options{Agents: []AgentSpec{numaHost()}})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const host = "numa-host"
	const memMB = 256

	inv, err := env.Placement.Inventories(ctx, host)
	if err != nil {
		t.Fatal(err)
	}
	if inv["PCPU"].Total != 2 || inv["MEMORY_MB"].Total != 2048 || inv["VCPU"].Total != 0 {
		t.Fatalf("inventory of %s: %+v; want PCPU 2, MEMORY_MB 2048, no VCPU", host, inv)
	}

	dedicated := func(name string) map[string]any {
		return map[string]any{"image": env.Image, "name": name, "command": []string{"sleep", "3600"},
			"cpu": 1, "memory": memMB, "cpu_policy": "dedicated"}
	}
	// agree waits until the three records agree and returns what they say.
	agree := func(step string) Agreement {
		t.Helper()
		var a Agreement
		if err := Eventually(ctx, 30*time.Second, func(ctx context.Context) error {
			var err error
			a, err = env.Agree(ctx)
			return err
		}); err != nil {
			t.Fatalf("%s: %v\n%s", step, err, env.Logs(30))
		}
		return a
	}
	// onCell checks a running dedicated container against its cell in
	// the ledger, Placement and Docker.
	onCell := func(c Container, cell int) {
		t.Helper()
		if c.Status != "Running" || c.HostName() != host || c.CPUPolicy != "dedicated" {
			t.Fatalf("%s: status %s (%s) on %q, policy %s; want Running on %s, dedicated", c.Name, c.Status, c.StatusReason, c.HostName(), c.CPUPolicy, host)
		}
		w, err := env.Workload(ctx, c.UUID)
		if err != nil {
			t.Fatal(err)
		}
		cpu := numaHost().Cells[cell].CPUs
		if !slices.Equal(w.Cells, []int{cell}) || len(w.PinnedCPUs) != 1 || fmt.Sprint(w.PinnedCPUs[0]) != cpu || w.PCPU != 1 || w.VCPU != 0 {
			t.Fatalf("%s in the ledger: cells %v, pinned %v, PCPU %d, VCPU %d; want cell %d, cpu %s, PCPU 1, VCPU 0",
				c.Name, w.Cells, w.PinnedCPUs, w.PCPU, w.VCPU, cell, cpu)
		}
		if w.Container == nil || w.Container.CpusetCpus != cpu || w.Container.CpusetMems != fmt.Sprint(cell) {
			t.Fatalf("%s: desired container %+v; want cpuset %s, mems %d", c.Name, w.Container, cpu, cell)
		}
		allocs, ctype, err := env.Placement.Allocations(ctx, c.UUID)
		if err != nil {
			t.Fatal(err)
		}
		rp, err := env.Placement.ProviderUUID(ctx, host)
		if err != nil {
			t.Fatal(err)
		}
		if ctype != "CONTAINER" || len(allocs) != 1 || !maps.Equal(allocs[rp], map[string]int{"PCPU": 1, "MEMORY_MB": memMB}) {
			t.Fatalf("%s: allocations %v (consumer type %q); want %s: PCPU 1, MEMORY_MB %d, CONTAINER", c.Name, allocs, ctype, rp, memMB)
		}
		ins, err := env.Inspect(ctx, c.UUID)
		if err != nil {
			t.Fatal(err)
		}
		if !ins.State.Running || ins.HostConfig.CpusetCpus != cpu || ins.HostConfig.CpusetMems != dockerMems(cell) ||
			ins.HostConfig.Memory != memMB<<20 || ins.HostConfig.NanoCPUs != 0 {
			t.Fatalf("%s: docker inspect running=%v CpusetCpus %q CpusetMems %q Memory %d NanoCPUs %d; want running, %q, %q, %d, 0",
				c.Name, ins.State.Running, ins.HostConfig.CpusetCpus, ins.HostConfig.CpusetMems, ins.HostConfig.Memory, ins.HostConfig.NanoCPUs,
				cpu, dockerMems(cell), memMB<<20)
		}
		if ins.Config.Labels[agentproto.LabelWorkload] != c.UUID || ins.Config.Labels[agentproto.LabelHost] != host {
			t.Fatalf("%s: labels %v", c.Name, ins.Config.Labels)
		}
	}
	usage := func(step string, pcpu int) {
		t.Helper()
		u, err := env.Placement.Usages(ctx, host)
		if err != nil {
			t.Fatal(err)
		}
		if u["PCPU"] != pcpu || u["MEMORY_MB"] != pcpu*memMB {
			t.Fatalf("%s: usages %v; want PCPU %d, MEMORY_MB %d", step, u, pcpu, pcpu*memMB)
		}
		pinned, err := env.HostPinned(ctx, host)
		if err != nil || len(pinned) != pcpu {
			t.Fatalf("%s: pinned pCPUs of %s %v (%v); want %d", step, host, pinned, err, pcpu)
		}
	}

	first := env.Zun.MustRun(t, dedicated("numa-first"))
	onCell(first, 0)
	usage("first", 1)
	agree("after the first")

	second := env.Zun.MustRun(t, dedicated("numa-second"))
	onCell(second, 1)
	usage("second", 2)
	if a := agree("after the second"); !slices.Equal(a.Running[host], sorted(first.UUID, second.UUID)) {
		t.Fatalf("running on %s: %v; want the first two", host, a.Running[host])
	}

	// The host is full: Zun's Error status with the scheduler's reason,
	// and nothing held.
	third, err := env.Zun.Create(ctx, dedicated("numa-third"), true)
	if err != nil {
		t.Fatal(err)
	}
	got, err := env.Zun.WaitStatus(ctx, third.UUID, "Error")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(got.StatusReason, "There are not enough hosts available.") || !strings.Contains(got.StatusReason, "PCPU") {
		t.Fatalf("third: status_reason %q; want Zun's no-host reason naming PCPU", got.StatusReason)
	}
	if got.HostName() != "" {
		t.Fatalf("third: host %q; want none", got.HostName())
	}
	if allocs, _, err := env.Placement.Allocations(ctx, third.UUID); err != nil || len(allocs) != 0 {
		t.Fatalf("third: allocations %v (%v); want none", allocs, err)
	}
	w, err := env.Workload(ctx, third.UUID)
	if err != nil || w.State != "error" || w.Host != "" || len(w.PinnedCPUs) != 0 || len(w.Cells) != 0 {
		t.Fatalf("third in the ledger: state %s, host %q, pinned %v, cells %v (%v); want error, nothing held", w.State, w.Host, w.PinnedCPUs, w.Cells, err)
	}
	if _, err := env.Inspect(ctx, third.UUID); !cerrdefs.IsNotFound(err) {
		t.Fatalf("third: docker inspect %v; want no such container", err)
	}
	usage("third refused", 2)
	if a := agree("after the third"); !slices.Equal(a.Errored, []string{third.UUID}) {
		t.Fatalf("workloads in error %v; want only the third", a.Errored)
	}
	// Zun's delete of a container in Error works without force.
	if err := env.Zun.Delete(ctx, third.UUID, ""); err != nil {
		t.Fatal(err)
	}

	// A running container needs stop or force to go (Zun's rule).
	if err := env.Zun.Delete(ctx, first.UUID, ""); StatusOf(err) != http.StatusConflict {
		t.Fatalf("delete of a running container without stop/force: %v; want 409", err)
	}
	env.Zun.MustDelete(t, first.UUID)
	if _, err := env.Inspect(ctx, first.UUID); !cerrdefs.IsNotFound(err) {
		t.Fatalf("first after delete: docker inspect %v; want no such container", err)
	}
	if allocs, _, err := env.Placement.Allocations(ctx, first.UUID); err != nil || len(allocs) != 0 {
		t.Fatalf("first after delete: allocations %v (%v); want none", allocs, err)
	}
	usage("first deleted", 1)
	agree("after the delete")

	fourth := env.Zun.MustRun(t, dedicated("numa-fourth"))
	onCell(fourth, 0)
	onCell(second, 1)
	usage("fourth", 2)
	if a := agree("after the fourth"); !slices.Equal(a.Running[host], sorted(second.UUID, fourth.UUID)) || len(a.Errored) != 0 {
		t.Fatalf("running on %s: %v, errored %v; want the second and the fourth, none", host, a.Running[host], a.Errored)
	}
}

func sorted(s ...string) []string {
	slices.Sort(s)
	return s
}
