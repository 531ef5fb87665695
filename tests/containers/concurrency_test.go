package containers

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unisched/unisched/bridge/agentproto"
)

// memoryHosts are n hosts whose capacity for containers of memMB is
// exactly perHost each: memory binds (two cells of perHost*memMB/2 MB),
// CPU does not (both CPUs shared, overcommitted 32 times: 64 VCPU).
func memoryHosts(n, perHost int, memMB int64) []AgentSpec {
	half := int64(perHost) * memMB / 2
	var out []AgentSpec
	for i := 0; i < n; i++ {
		out = append(out, AgentSpec{
			Host:               fmt.Sprintf("mem-%c", 'a'+i),
			Cells:              []agentproto.Cell{{ID: 0, CPUs: "0", MemoryMB: half}, {ID: 1, CPUs: "1", MemoryMB: half}},
			SharedCPUs:         "0,1",
			DiskGB:             10,
			CPUAllocationRatio: 32,
		})
	}
	return out
}

// 100 concurrent creates (run=true) against room for 60: exactly 60 run,
// 40 end in Error with Zun's reason, Placement's usage is the running
// containers' and Docker runs exactly those 60.
func TestConcurrentCreates(t *testing.T) {
	NeedAgent(t)
	const (
		creates = 100
		perHost = 30
		memMB   = 16
	)
	hosts := memoryHosts(2, perHost, memMB)
	env := Start(t, Options{Agents: hosts, LogLevel: "info"})
	ctx, cancel := context.WithTimeout(context.Background(), 9*time.Minute)
	defer cancel()
	for _, h := range hosts {
		inv, err := env.Placement.Inventories(ctx, h.Host)
		if err != nil {
			t.Fatal(err)
		}
		if inv["MEMORY_MB"].Total != perHost*memMB || inv["VCPU"].Total != 2 || inv["VCPU"].AllocationRatio != 32 {
			t.Fatalf("inventory of %s: %+v; want MEMORY_MB %d, VCPU 2 ratio 32", h.Host, inv, perHost*memMB)
		}
	}

	// Every create in flight at once (one connection each).
	zun := NewZun(env.ContainerURL, AdminToken)
	zun.HTTP = &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: creates}}
	start := make(chan struct{})
	var wg sync.WaitGroup
	ids := make([]string, creates)
	errs := make([]error, creates)
	for i := range creates {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			c, err := zun.Create(ctx, map[string]any{"image": env.Image, "name": fmt.Sprintf("burst-%03d", i),
				"command": []string{"sleep", "3600"}, "cpu": 0.1, "memory": memMB}, true)
			ids[i], errs[i] = c.UUID, err
			if err == nil && c.Status != "Creating" && c.Status != "Error" {
				errs[i] = fmt.Errorf("create answered status %s", c.Status)
			}
		}()
	}
	began := time.Now()
	close(start)
	wg.Wait()
	accepted := time.Since(began)
	for i, err := range errs {
		if err != nil {
			t.Fatalf("create %d: %v\n%s", i, err, env.Logs(30))
		}
	}

	// Wait until every container is settled: Running or Error.
	var list []Container
	// The relay delivers one event at a time and Docker takes a second or
	// two per start on a loaded 2-core machine: minutes, not seconds.
	if err := Eventually(ctx, 7*time.Minute, func(ctx context.Context) error {
		var err error
		if list, err = env.Zun.List(ctx, "limit=1000"); err != nil {
			return err
		}
		if len(list) != creates {
			return fmt.Errorf("%d containers listed, want %d", len(list), creates)
		}
		counts := map[string]int{}
		for _, c := range list {
			counts[c.Status]++
		}
		if counts["Running"]+counts["Error"] != creates {
			return fmt.Errorf("not settled: %v", counts)
		}
		return nil
	}); err != nil {
		t.Fatalf("%v\n%s", err, env.Logs(30))
	}
	settled := time.Since(began)

	running := map[string][]string{}
	var errored []string
	for _, c := range list {
		if !slices.Contains(ids, c.UUID) {
			t.Fatalf("listed container %s (%s) was not created by the test", c.UUID, c.Name)
		}
		switch c.Status {
		case "Running":
			running[c.HostName()] = append(running[c.HostName()], c.UUID)
		case "Error":
			if !strings.HasPrefix(c.StatusReason, "There are not enough hosts available.") {
				t.Errorf("%s in Error with reason %q; want Zun's no-host reason", c.Name, c.StatusReason)
			}
			if c.HostName() != "" {
				t.Errorf("%s in Error on host %q", c.Name, c.HostName())
			}
			errored = append(errored, c.UUID)
		}
	}
	if total(running) != 60 || len(errored) != 40 {
		t.Fatalf("%d running (%v per host), %d in Error; want exactly 60 and 40\n%s", total(running), perHostCount(running), len(errored), env.Logs(30))
	}
	for _, h := range hosts {
		if len(running[h.Host]) != perHost {
			t.Errorf("%d running on %s; want %d (its room)", len(running[h.Host]), h.Host, perHost)
		}
	}

	// Placement, the ledger and Docker say the same.
	var a Agreement
	if err := Eventually(ctx, 30*time.Second, func(ctx context.Context) error {
		var err error
		a, err = env.Agree(ctx)
		return err
	}); err != nil {
		t.Fatalf("%v\n%s", err, env.Logs(30))
	}
	for _, h := range hosts {
		slices.Sort(running[h.Host])
		if !slices.Equal(a.Running[h.Host], running[h.Host]) || !slices.Equal(a.Holding[h.Host], running[h.Host]) {
			t.Errorf("%s: Zun says %d running, Docker runs %d, the ledger holds %d", h.Host, len(running[h.Host]), len(a.Running[h.Host]), len(a.Holding[h.Host]))
		}
		u := a.Usages[h.Host]
		if u["MEMORY_MB"] != perHost*memMB || u["VCPU"] != perHost {
			t.Errorf("usages of %s: %v; want MEMORY_MB %d, VCPU %d", h.Host, u, perHost*memMB, perHost)
		}
	}
	slices.Sort(errored)
	if !slices.Equal(a.Errored, errored) {
		t.Errorf("the ledger has %d workloads in error, Zun shows %d", len(a.Errored), len(errored))
	}
	for _, id := range errored[:5] {
		if allocs, _, err := env.Placement.Allocations(ctx, id); err != nil || len(allocs) != 0 {
			t.Errorf("refused %s: allocations %v (%v); want none", id, allocs, err)
		}
	}
	n := 0
	for _, h := range hosts {
		list, err := env.HostContainers(ctx, h.Host)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range list {
			if c.State != "running" {
				t.Errorf("container %s is %s", c.Names, c.State)
			}
			n++
		}
	}
	if n != 60 {
		t.Errorf("docker has %d unisched containers; want 60", n)
	}
	t.Logf("%d creates accepted in %s, all settled in %s", creates, accepted.Round(time.Millisecond), settled.Round(time.Millisecond))
}

func perHostCount(m map[string][]string) map[string]int {
	out := map[string]int{}
	for h, l := range m {
		out[h] = len(l)
	}
	return out
}
