package containers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/unisched/unisched/internal/proctest"
)

// burst posts n creates (run=true, sleep) from a few clients at once,
// every gap, and returns their uuids through the channel when all are
// accepted. A create that is not accepted fails the test.
func burst(t *testing.T, env *Env, ctx context.Context, prefix string, n int, gap time.Duration) <-chan []string {
	t.Helper()
	out := make(chan []string, 1)
	zun := NewZun(env.ContainerURL, AdminToken)
	zun.HTTP = &http.Client{Timeout: time.Minute}
	go func() {
		ids := make([]string, n)
		var wg sync.WaitGroup
		var mu sync.Mutex
		var failures []error
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := zun.Create(ctx, map[string]any{"image": env.Image, "name": fmt.Sprintf("%s-%02d", prefix, i),
					"command": []string{"sleep", "3600"}, "cpu": 0.1, "memory": 16}, true)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					failures = append(failures, fmt.Errorf("create %s-%02d: %w", prefix, i, err))
					return
				}
				ids[i] = c.UUID
			}()
			time.Sleep(gap)
		}
		wg.Wait()
		for _, err := range failures {
			t.Error(err)
		}
		out <- ids
	}()
	return out
}

// waitMidway waits until the burst is midway on host ("" any host): at
// least one container of it runs and at least one is still being
// created there, so a fault now interrupts creates in flight. It returns
// the running containers' uuids (all hosts).
func waitMidway(t *testing.T, env *Env, ctx context.Context, host string) []string {
	t.Helper()
	var running []string
	if err := Eventually(ctx, 2*time.Minute, func(ctx context.Context) error {
		list, err := env.Zun.List(ctx, "limit=1000")
		if err != nil {
			return err
		}
		running = running[:0]
		run, creating := 0, 0
		for _, c := range list {
			on := host == "" || c.HostName() == host
			switch {
			case c.Status == "Running":
				running = append(running, c.UUID)
				if on {
					run++
				}
			case c.Status == "Creating" || c.Status == "Created":
				if on {
					creating++
				}
			}
		}
		if run < 1 || creating < 1 {
			return fmt.Errorf("%d running and %d being created on %q", run, creating, host)
		}
		return nil
	}); err != nil {
		t.Fatalf("%v\n%s", err, env.Logs(30))
	}
	return running
}

// failedDeliveries counts the outbox events to host that failed at least
// once: the proof that the fault hit work in flight.
func failedDeliveries(ctx context.Context, env *Env, host string) (int, error) {
	var n int
	err := env.DB.QueryRow(ctx, `SELECT count(*) FROM bridge_outbox WHERE attempts > 0 AND payload->>'host' = $1`, host).Scan(&n)
	return n, err
}

// agentRetries is how many times the agent of host has retried applying
// an event it had taken (its /v1/health): since an agent answers an event
// once it holds it, a fault of Docker shows there, not in the outbox.
func agentRetries(ctx context.Context, env *Env, host string) (int64, error) {
	a := env.Agents[host]
	if a == nil {
		return 0, fmt.Errorf("no agent %s", host)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.URL+"/v1/health", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var h struct {
		Retries *int64 `json:"event_retries"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil || h.Retries == nil {
		return 0, fmt.Errorf("health of agent %s: %d, %v", host, resp.StatusCode, err)
	}
	return *h.Retries, nil
}

// settle waits until every container is Running or Error and the ledger,
// Placement and Docker agree; it fails the test with the disagreement.
func settle(t *testing.T, env *Env, ctx context.Context, timeout time.Duration) ([]Container, Agreement) {
	t.Helper()
	var list []Container
	var a Agreement
	if err := Eventually(ctx, timeout, func(ctx context.Context) error {
		var err error
		if list, err = env.Zun.List(ctx, "limit=1000"); err != nil {
			return err
		}
		for _, c := range list {
			if c.Status != "Running" && c.Status != "Error" {
				return fmt.Errorf("%s is %s (%s)", c.Name, c.Status, c.StatusReason)
			}
		}
		a, err = env.Agree(ctx)
		return err
	}); err != nil {
		t.Fatalf("not settled: %v\n%s", err, env.Logs(40))
	}
	return list, a
}

// snapshot is how many containers are in each status on each host, for
// the log: it shows what a fault interrupted.
func snapshot(env *Env, ctx context.Context) map[string]int {
	out := map[string]int{}
	list, err := env.Zun.List(ctx, "limit=1000")
	if err != nil {
		return map[string]int{err.Error(): 1}
	}
	for _, c := range list {
		out[c.HostName()+"/"+c.Status]++
	}
	return out
}

// dockerIDs maps workload ids to their Docker container ids.
func dockerIDs(t *testing.T, env *Env, ctx context.Context, ids []string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, id := range ids {
		ins, err := env.Inspect(ctx, id)
		if err != nil {
			t.Fatalf("inspecting the container of %s: %v", id, err)
		}
		out[id] = ins.ID
	}
	return out
}

// The agent of one host dies (SIGKILL) during a burst of creates, and a
// running container is deleted while it is away. Once it is back every
// container runs (events are delivered again, the restarted agent
// converges), the deleted one is gone with its claim, the containers that
// ran before keep their Docker container, and the ledger, Placement and
// Docker agree: no orphan container, no leaked allocation.
func TestAgentKilledDuringCreates(t *testing.T) {
	NeedAgent(t)
	hosts := memoryHosts(2, 10, 16)
	env := Start(t, Options{Agents: hosts})
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()

	const n = 16
	done := burst(t, env, ctx, "ak", n, 150*time.Millisecond)
	before := waitMidway(t, env, ctx, "mem-a")
	victim := env.Agents["mem-a"]
	pid := victim.Pid()
	if err := victim.Kill(); err != nil {
		t.Fatal(err)
	}
	if left, _ := proctest.GroupMembers(pid); len(left) > 0 || victim.Pid() != 0 {
		t.Fatalf("agent mem-a (pid %d) still runs after SIGKILL", pid)
	}
	t.Logf("killed agent mem-a (pid %d) with %d containers running; now %v", pid, len(before), snapshot(env, ctx))
	ids := <-done
	if t.Failed() {
		t.FailNow()
	}

	// Delete, while the agent is away, a container it runs.
	var gone string
	for _, id := range before {
		c, err := env.Zun.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if c.HostName() == "mem-a" {
			gone = id
			break
		}
	}
	if gone != "" {
		if err := env.Zun.Delete(ctx, gone, "force=true"); err != nil {
			t.Fatal(err)
		}
	}
	before = slices.DeleteFunc(before, func(id string) bool { return id == gone })
	kept := dockerIDs(t, env, ctx, before)

	// Stay away until serve has failed to reach the agent.
	if err := Eventually(ctx, 30*time.Second, func(ctx context.Context) error {
		n, err := failedDeliveries(ctx, env, "mem-a")
		if err == nil && n == 0 {
			err = errors.New("no delivery to mem-a has failed yet")
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.StartAgent(ctx, victim.Spec); err != nil {
		t.Fatal(err)
	}
	list, a := settle(t, env, ctx, 4*time.Minute)

	want := n
	if gone != "" {
		want--
		if slices.ContainsFunc(list, func(c Container) bool { return c.UUID == gone }) {
			t.Errorf("container %s deleted during the outage is still listed", gone)
		}
		if allocs, _, err := env.Placement.Allocations(ctx, gone); err != nil || len(allocs) != 0 {
			t.Errorf("container %s deleted during the outage: allocations %v (%v); want none", gone, allocs, err)
		}
	}
	if len(list) != want || total(a.Running) != want || len(a.Errored) != 0 {
		t.Fatalf("%d containers listed, %d running, %d in error; want %d, %d, 0 (room for 20)", len(list), total(a.Running), len(a.Errored), want, want)
	}
	for _, id := range ids {
		if id != gone && !slices.Contains(a.Running["mem-a"], id) && !slices.Contains(a.Running["mem-b"], id) {
			t.Errorf("created container %s does not run", id)
		}
	}
	for id, cid := range dockerIDs(t, env, ctx, before) {
		if kept[id] != cid {
			t.Errorf("container of %s was replaced across the agent restart (%s -> %s)", id, kept[id][:12], cid[:12])
		}
	}
	for _, h := range hosts {
		if u := a.Usages[h.Host]; u["MEMORY_MB"] != 16*len(a.Running[h.Host]) {
			t.Errorf("usages of %s %v for %d running", h.Host, u, len(a.Running[h.Host]))
		}
	}
}

// The Docker daemon dies (SIGKILL) during a burst of creates and comes
// back a few seconds later: creates accepted meanwhile wait for it, the
// agents reconnect and converge, and in the end every container runs and
// the ledger, Placement and Docker agree.
func TestDockerKilledDuringCreates(t *testing.T) {
	NeedAgent(t)
	hosts := memoryHosts(2, 10, 16)
	env := Start(t, Options{Agents: hosts, OwnDocker: true})
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()

	const n = 16
	done := burst(t, env, ctx, "dk", n, 150*time.Millisecond)
	before := waitMidway(t, env, ctx, "")
	if err := env.Daemon.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed dockerd with %d containers running; now %v", len(before), snapshot(env, ctx))
	ids := <-done
	if t.Failed() {
		t.FailNow()
	}
	// Stay away until the agents have failed to apply events (they hold
	// them and retry).
	if err := Eventually(ctx, 30*time.Second, func(ctx context.Context) error {
		a, err := agentRetries(ctx, env, "mem-a")
		b, err2 := agentRetries(ctx, env, "mem-b")
		if err == nil && err2 == nil && a+b == 0 {
			err = errors.New("no agent has failed to apply an event yet")
		}
		return errors.Join(err, err2)
	}); err != nil {
		t.Fatal(err)
	}
	for _, a := range env.Agents {
		if a.Exited() {
			t.Fatalf("agent %s exited while Docker was away: %v\n%s", a.Spec.Host, a.Err(), a.Log(20))
		}
	}
	if err := env.Daemon.Start(ctx); err != nil {
		t.Fatal(err)
	}
	list, a := settle(t, env, ctx, 4*time.Minute)
	if len(list) != n || total(a.Running) != n || len(a.Errored) != 0 {
		for _, c := range list {
			if c.Status == "Error" {
				t.Logf("%s (%s) in error: %s", c.Name, c.UUID, c.StatusReason)
			}
		}
		t.Fatalf("%d containers listed, %d running, %d in error; want %d, %d, 0 (room for 20)\n%s", len(list), total(a.Running), len(a.Errored), n, n, env.Logs(60))
	}
	for _, id := range ids {
		if !slices.Contains(a.Running["mem-a"], id) && !slices.Contains(a.Running["mem-b"], id) {
			t.Errorf("created container %s does not run", id)
		}
	}
	for _, h := range hosts {
		if u := a.Usages[h.Host]; u["MEMORY_MB"] != 16*len(a.Running[h.Host]) {
			t.Errorf("usages of %s %v for %d running", h.Host, u, len(a.Running[h.Host]))
		}
	}
}
