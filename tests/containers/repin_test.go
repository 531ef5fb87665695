package containers

import (
	"context"
	"fmt"
	"testing"
	"time"

	"k8s.io/utils/cpuset"
)

// The notify loop on one host (ARCHITECTURE.md sections 3 and 6): when a
// dedicated container pins a pCPU that the host's shared pool also holds,
// the relay tells the host's agent, and the agent moves the shared
// containers off it (docker update --cpuset-cpus); when the pin goes, they
// get it back. Docker, the ledger's desired containers and the pins agree
// at each step.
func TestRepinSharedWhenDedicatedTakesCPU(t *testing.T) {
	NeedAgent(t)
	host := AgentSpec{
		Host: "host-r",
		// Both CPUs are in both pools: what a pin takes, the shared
		// containers must give up.
		DedicatedCPUs: "0-1", SharedCPUs: "0-1", DiskGB: 100,
	}
	host.Cells = DefaultHosts()[0].Cells
	env := Start(t, Options{Agents: []AgentSpec{host}})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	// cpusetOf is the shared container's cpuset in Docker and in the
	// ledger's desired state; it fails while they differ.
	cpusetOf := func(ctx context.Context, id string) (cpuset.CPUSet, error) {
		ins, err := env.Inspect(ctx, id)
		if err != nil {
			return cpuset.New(), err
		}
		docker, err := cpuset.Parse(ins.HostConfig.CpusetCpus)
		if err != nil {
			return cpuset.New(), fmt.Errorf("docker cpuset %q: %w", ins.HostConfig.CpusetCpus, err)
		}
		w, err := env.Workload(ctx, id)
		if err != nil {
			return cpuset.New(), err
		}
		if w.Container == nil {
			return cpuset.New(), fmt.Errorf("workload %s has no desired container", id)
		}
		desired, err := cpuset.Parse(w.Container.CpusetCpus)
		if err != nil {
			return cpuset.New(), fmt.Errorf("desired cpuset %q: %w", w.Container.CpusetCpus, err)
		}
		if !docker.Equals(desired) {
			return docker, fmt.Errorf("docker has cpuset %s, the ledger wants %s", docker, desired)
		}
		return docker, nil
	}
	waitCPUs := func(id string, want cpuset.CPUSet) {
		t.Helper()
		var got cpuset.CPUSet
		if err := Eventually(ctx, time.Minute, func(ctx context.Context) error {
			var err error
			if got, err = cpusetOf(ctx, id); err != nil {
				return err
			}
			if !got.Equals(want) {
				return fmt.Errorf("shared container on cpus %s, want %s", got, want)
			}
			return nil
		}); err != nil {
			t.Fatalf("%v\n%s", err, env.Logs(30))
		}
	}

	shared := env.Zun.MustRun(t, map[string]any{"image": env.Image, "command": []string{"sleep", "600"},
		"cpu": 0.5, "memory": 16})
	if shared.Status != "Running" {
		t.Fatalf("shared container is %s (%s)", shared.Status, shared.StatusReason)
	}
	all := cpuset.New(0, 1)
	waitCPUs(shared.UUID, all)

	dedicated := env.Zun.MustRun(t, map[string]any{"image": env.Image, "command": []string{"sleep", "600"},
		"cpu": 1, "memory": 16, "cpu_policy": "dedicated"})
	w, err := env.Workload(ctx, dedicated.UUID)
	if err != nil {
		t.Fatal(err)
	}
	if len(w.PinnedCPUs) != 1 {
		t.Fatalf("dedicated container pins %v, want one CPU", w.PinnedCPUs)
	}
	pinned := cpuset.New(w.PinnedCPUs...)
	ins, err := env.Inspect(ctx, dedicated.UUID)
	if err != nil {
		t.Fatal(err)
	}
	if ins.HostConfig.CpusetCpus != pinned.String() {
		t.Fatalf("dedicated container runs on %q, the ledger pinned %s", ins.HostConfig.CpusetCpus, pinned)
	}
	// The shared container leaves the pinned CPU.
	waitCPUs(shared.UUID, all.Difference(pinned))

	// The pin goes with its container; the shared container gets the CPU back.
	env.Zun.MustDelete(t, dedicated.UUID)
	waitCPUs(shared.UUID, all)

	if _, err := env.Agree(ctx); err != nil {
		t.Fatalf("ledger, Placement and Docker disagree: %v", err)
	}
}
