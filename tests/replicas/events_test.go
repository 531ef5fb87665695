package replicas

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/unisched/unisched/bridge/agentproto"
	"github.com/unisched/unisched/tests/containers"
)

// gatedZun is a Zun client whose calls the test can hold back for a
// moment: the kill of a leader waits until no API request is in flight,
// so that the test's own requests never die with the replica answering
// them (that would be a 502 for the client, a matter for its retries, not
// for the outbox). The kill still lands mid-stream for the events: they
// are relayed asynchronously, while the outbox holds undelivered ones.
type gatedZun struct {
	z    *containers.Zun
	gate sync.RWMutex
}

func (g *gatedZun) call(f func() error) error {
	g.gate.RLock()
	defer g.gate.RUnlock()
	return f()
}

// waitStatus polls the container until its status is want.
func (g *gatedZun) waitStatus(ctx context.Context, id, want string) error {
	var last containers.Container
	for {
		var ct containers.Container
		err := g.call(func() (err error) { ct, err = g.z.Get(ctx, id); return })
		if err != nil && containers.StatusOf(err) != http.StatusNotFound {
			return err
		}
		if err == nil {
			last = ct
			if ct.Status == want {
				return nil
			}
			if ct.Status == "Error" {
				return fmt.Errorf("container %s in Error (%s) waiting for %s", id, ct.StatusReason, want)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("container %s: %q (%s) waiting for %s: %w", id, last.Status, last.StatusReason, want, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (g *gatedZun) waitGone(ctx context.Context, id string) error {
	for {
		err := g.call(func() error { _, err := g.z.Get(ctx, id); return err })
		if containers.StatusOf(err) == http.StatusNotFound {
			return nil
		}
		if err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("container %s still there: %w", id, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// lifecycle drives one container through create, start, stop, start,
// stop and delete, each step once the previous one was applied.
func (g *gatedZun) lifecycle(ctx context.Context, image, name string) (string, error) {
	var ct containers.Container
	err := g.call(func() (err error) {
		ct, err = g.z.Create(ctx, map[string]any{"image": image, "name": name,
			"command": []string{"sleep", "3600"}, "cpu": 0.1, "memory": 16}, false)
		return
	})
	if err != nil {
		return "", fmt.Errorf("creating %s: %w", name, err)
	}
	id := ct.UUID
	steps := []struct{ action, want string }{
		{"", "Created"}, {"start", "Running"}, {"stop", "Stopped"}, {"start", "Running"}, {"stop", "Stopped"},
	}
	for _, s := range steps {
		if s.action != "" {
			if err := g.call(func() error { return g.z.Action(ctx, id, s.action, "") }); err != nil {
				return id, fmt.Errorf("%s %s: %w", s.action, name, err)
			}
		}
		if err := g.waitStatus(ctx, id, s.want); err != nil {
			return id, err
		}
	}
	if err := g.call(func() error { return g.z.Delete(ctx, id, "") }); err != nil {
		return id, fmt.Errorf("deleting %s: %w", name, err)
	}
	return id, g.waitGone(ctx, id)
}

// outboxRow is one agent event of the outbox.
type outboxRow struct {
	ID          int64
	Key         string
	Delivered   *time.Time
	Attempts    int
	LastError   *string
	EventType   string
	EventAction string
}

func (c *Cluster) agentEvents(ctx context.Context) ([]outboxRow, error) {
	rows, err := c.DB.Query(ctx, `SELECT id, key, delivered_at, attempts, last_error,
		coalesce(payload->>'type', ''), coalesce(payload->>'action', '')
		FROM bridge_outbox WHERE topic = 'agent' ORDER BY id`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (outboxRow, error) {
		var o outboxRow
		err := r.Scan(&o.ID, &o.Key, &o.Delivered, &o.Attempts, &o.LastError, &o.EventType, &o.EventAction)
		return o, err
	})
}

// TestEventsAcrossFailover: a stream of container lifecycles (create,
// start, stop, start, stop, delete) through the balancer over three
// replicas and two real agents on a private dockerd, while the relay's
// leader is SIGKILLed twice mid-stream (each time with events waiting in
// the outbox). Every workload's events are delivered — all of them, each
// applied by its agent, in id order per workload — as the outbox table
// (delivered_at, ids per key) and the agents' logs ("event applied", in
// the order applied) both show. A delivery the dead leader made but could
// not record is made again by the next one (at least once); the agent
// knows the event id (held, applying or applied) and answers it without
// acting twice: every event is applied exactly once.
func TestEventsAcrossFailover(t *testing.T) {
	const workloads = 12
	hosts := []containers.AgentSpec{}
	for _, h := range []string{"ev-a", "ev-b"} {
		hosts = append(hosts, containers.AgentSpec{Host: h,
			Cells:      []agentproto.Cell{{ID: 0, CPUs: "0", MemoryMB: 1024}, {ID: 1, CPUs: "1", MemoryMB: 1024}},
			SharedCPUs: "0,1", DiskGB: 10, CPUAllocationRatio: 32})
	}
	c := Start(t, Options{Replicas: 3, Agents: hosts})
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	g := &gatedZun{z: containers.NewZun(c.ContainerURL, containers.AdminToken)}
	g.z.HTTP = &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 2 * workloads}}

	ids := make([]string, workloads)
	errs := make([]error, workloads)
	var wg sync.WaitGroup
	began := time.Now()
	for i := range workloads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// staggered, so that the stream lasts across both kills
			select {
			case <-time.After(time.Duration(i) * 700 * time.Millisecond):
			case <-ctx.Done():
			}
			ids[i], errs[i] = g.lifecycle(ctx, c.Image, fmt.Sprintf("ev-%02d", i))
		}()
	}
	streamDone := make(chan struct{})
	go func() { wg.Wait(); close(streamDone) }()

	// Two kills of the relay's leader, each while events wait undelivered
	// and after some were delivered; the killed replica comes back as a
	// standby before the next.
	var failovers []time.Duration
	for kill := range 2 {
		var pending, delivered int
		err := containers.Eventually(ctx, 3*time.Minute, func(ctx context.Context) error {
			if err := c.DB.QueryRow(ctx, `SELECT count(*) FILTER (WHERE delivered_at IS NULL), count(*) FILTER (WHERE delivered_at IS NOT NULL)
				FROM bridge_outbox WHERE topic = 'agent' AND key NOT LIKE 'host:%'`).Scan(&pending, &delivered); err != nil {
				return err
			}
			if pending == 0 || delivered < 4*(kill+1) {
				return fmt.Errorf("%d pending, %d delivered", pending, delivered)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("kill %d: the stream never had events waiting: %v\n%s", kill+1, err, c.Logs(20))
		}
		leader := c.checkOneLeader(ctx, t, RoleRelay, nil)
		g.gate.Lock()
		took := c.killAndWait(ctx, t, RoleRelay, leader)
		g.gate.Unlock()
		failovers = append(failovers, took)
		t.Logf("FAILOVER relay under load (kill %d): %s from SIGKILL of %s with %d events pending, %d delivered",
			kill+1, took.Round(time.Millisecond), leader.Name, pending, delivered)
		if err := c.WaitBackends(ctx, len(c.Replicas)-1, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		if err := c.StartReplica(ctx, leader); err != nil {
			t.Fatal(err)
		}
		if err := c.WaitBackends(ctx, len(c.Replicas), 30*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-streamDone:
	case <-ctx.Done():
		t.Fatalf("the lifecycles did not finish\n%s", c.Logs(30))
	}
	for i, err := range errs {
		if err != nil {
			t.Errorf("workload %d: %v", i, err)
		}
	}
	if t.Failed() {
		t.Fatal(c.Logs(40))
	}
	t.Logf("%d lifecycles done in %s; relay failovers %v", workloads, time.Since(began).Round(time.Millisecond), failovers)

	// The outbox: every agent event delivered, none discarded, and per
	// key delivered in id order.
	var evs []outboxRow
	if err := containers.Eventually(ctx, time.Minute, func(ctx context.Context) error {
		var err error
		if evs, err = c.agentEvents(ctx); err != nil {
			return err
		}
		for _, e := range evs {
			if e.Delivered == nil {
				return fmt.Errorf("event %d (%s) undelivered", e.ID, e.Key)
			}
		}
		return nil
	}); err != nil {
		t.Fatalf("%v\n%s", err, c.Logs(30))
	}
	byKey := map[string][]outboxRow{}
	keyOf := map[int64]string{}
	for _, e := range evs {
		byKey[e.Key] = append(byKey[e.Key], e)
		keyOf[e.ID] = e.Key
		if e.LastError != nil && e.Attempts > 0 && e.Delivered != nil && *e.LastError != "" {
			// a failed attempt before the delivery: allowed (retried), noted
			t.Logf("event %d (%s %s of %s) delivered after %d attempts; last error %q", e.ID, e.EventType, e.EventAction, e.Key, e.Attempts, *e.LastError)
		}
	}
	for _, id := range ids {
		list := byKey[id]
		// create, start, stop, start, stop, delete
		if len(list) < 6 {
			t.Errorf("workload %s: %d agent events in the outbox, want at least 6", id, len(list))
		}
		for i := 1; i < len(list); i++ {
			if list[i].Delivered.Before(*list[i-1].Delivered) {
				t.Errorf("workload %s: event %d delivered at %s, before event %d (%s)", id, list[i].ID, list[i].Delivered, list[i-1].ID, list[i-1].Delivered)
			}
		}
	}

	// The agents: each event of the outbox applied, per key in id order.
	applied, err := c.Applied()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int64]int{}
	order := map[string][]int64{}
	last := map[string]int64{}
	for _, a := range applied {
		k := keyOf[a.ID]
		if k == "" {
			t.Errorf("the agent on %s applied event %d, which the outbox does not hold", a.Host, a.ID)
			continue
		}
		// an older event applied after a newer one is out of order
		if a.ID < last[k] {
			t.Errorf("key %s: event %d applied after event %d", k, a.ID, last[k])
		}
		last[k] = max(last[k], a.ID)
		seen[a.ID]++
		if seen[a.ID] > 1 {
			continue // applied again: counted below
		}
		order[k] = append(order[k], a.ID)
	}
	// The agent holds an event from its answer on and drops a redelivery
	// of one it holds, applies or applied: delivered at least once,
	// applied exactly once.
	dups := 0
	for id, n := range seen {
		if n > 1 {
			dups++
			t.Errorf("event %d (%s) applied %d times", id, keyOf[id], n)
		}
	}
	redelivered, err := c.redeliveries()
	if err != nil {
		t.Fatal(err)
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		var want []int64
		for _, e := range byKey[k] {
			want = append(want, e.ID)
		}
		if got := order[k]; !slices.Equal(got, want) {
			t.Errorf("key %s: the agents applied %v, the outbox holds %v (in id order)", k, got, want)
		}
	}
	t.Logf("%d agent events over %d keys delivered and applied in order per key; %d applied more than once; %d redeliveries dropped by the agents; relay failovers under load %v",
		len(evs), len(byKey), dups, redelivered, failovers)
	if t.Failed() {
		t.Log(c.Logs(40))
	}
}

// redeliveries counts the events the agents were sent again while they
// held them (their "event redelivered" log lines).
func (c *Cluster) redeliveries() (int, error) {
	n := 0
	for _, a := range c.Agents {
		b, err := os.ReadFile(a.LogPath)
		if err != nil {
			return 0, err
		}
		n += strings.Count(string(b), `"msg":"event redelivered; already held, dropped"`)
	}
	return n, nil
}
