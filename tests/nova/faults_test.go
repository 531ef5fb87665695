package nova

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// reconciliation is GET /v1/reconciliation: the latest run's report.
type reconciliation struct {
	RunID       int64     `json:"run_id"`
	Total       int       `json:"total"`
	StartedAt   time.Time `json:"started_at"`
	FinishedAt  *time.Time
	Errors      []string          `json:"errors"`
	Divergences []json.RawMessage `json:"divergences"`
}

// cleanReconciliation waits for a finished reconciliation run started
// after since that found no divergence and had no error.
func cleanReconciliation(t *testing.T, since time.Time, timeout time.Duration) reconciliation {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		r, err := zun().Do(ctx, http.MethodGet, "/v1/reconciliation", nil)
		cancel()
		if err == nil && r.Status == http.StatusOK {
			var rep reconciliation
			var raw struct {
				FinishedAt *time.Time `json:"finished_at"`
			}
			if err := json.Unmarshal(r.Body, &rep); err != nil {
				t.Fatalf("GET /v1/reconciliation: %v: %s", err, r.Body)
			}
			_ = json.Unmarshal(r.Body, &raw)
			rep.FinishedAt = raw.FinishedAt
			if rep.StartedAt.After(since) && rep.FinishedAt != nil && rep.Total == 0 && len(rep.Divergences) == 0 && len(rep.Errors) == 0 {
				return rep
			}
			last = string(r.Body)
		} else if err != nil {
			last = err.Error()
		} else {
			last = fmt.Sprintf("%d %s", r.Status, r.Body)
		}
		if time.Now().After(deadline) {
			if len(last) > 4000 {
				last = last[:4000] + "..."
			}
			t.Fatalf("no clean reconciliation run after %s within %s; the latest: %s\n%s", since.Format(time.RFC3339), timeout, last, env.Logs(20))
		}
		time.Sleep(time.Second)
	}
}

// TestFaults: unisched serve killed during boots and restarted, RabbitMQ
// stopped for 30 s, PostgreSQL restarted; afterwards nothing is lost or
// leaked: every request ended cleanly, the four views agree and the
// reconciliation report shows zero divergences.
func TestFaults(t *testing.T) {
	start(t)
	need(t, partSched, partReconcile)
	ensureFlavors(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	t.Cleanup(func() { deleteAll(t) })
	agree(t, "before", time.Minute)

	// 1. serve killed (SIGKILL) while 4 boots and 2 containers are under way
	var wg sync.WaitGroup
	var mu sync.Mutex
	var vms []server
	var errs []error
	posted := make(chan struct{}, 4)
	for i := range 4 {
		wg.Go(func() {
			s, _, err := env.BootServer(ctx, fmt.Sprintf("fault-vm-%d", i), "c512")
			posted <- struct{}{}
			mu.Lock()
			defer mu.Unlock()
			if err != nil && s.Status != "ERROR" {
				errs = append(errs, err)
				return
			}
			vms = append(vms, s)
		})
	}
	<-posted
	t0 := time.Now()
	if err := env.KillServe(); err != nil {
		t.Fatal(err)
	}
	if err := env.StartServe(ctx); err != nil {
		t.Fatal(err)
	}
	outage(t0, time.Now())
	t.Logf("serve killed and restarted in %.1fs during the boots", time.Since(t0).Seconds())
	wg.Wait()
	for _, err := range errs {
		t.Errorf("boot during serve's restart: %v", err)
	}
	for _, s := range vms {
		t.Logf("boot during the restart: %s %s on %q %v", s.Name, s.Status, s.Hypervisor, s.Fault)
	}
	agree(t, "after serve's restart", 3*time.Minute)

	// 2. RabbitMQ stopped for 30 s; containers created meanwhile (their
	// notifications wait in the outbox)
	t1 := time.Now()
	if err := env.StopRabbit(); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		c, err := runContainer(ctx, map[string]any{"image": env.Image, "name": fmt.Sprintf("fault-ctr-%d", i),
			"command": []string{"sleep", "3600"}, "cpu": 1, "memory": 512})
		if err != nil {
			t.Fatal(err)
		}
		if c.Status != "Running" {
			t.Fatalf("container created while RabbitMQ is down: %s (%s), want Running", c.Status, c.StatusReason)
		}
	}
	time.Sleep(time.Until(t1.Add(30 * time.Second))) // the outage's length, not an assertion
	if err := env.StartRabbit(ctx); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	if err := env.WaitRPC(ctx, 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := env.WaitComputesUp(ctx, back, 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	t.Logf("RabbitMQ stopped for 30 s; Nova's RPC consumers and compute heartbeats back %.1fs after the stop", time.Since(t1).Seconds())
	s, err := apiBoot(ctx, "fault-vm-after-rabbit", "c512")
	if err != nil || s.Status != "ACTIVE" {
		t.Fatalf("boot after RabbitMQ's return: %s %v %v\n%s", s.Status, s.Fault, err, env.Logs(20))
	}
	pendingDelivered(t, 2*time.Minute)
	agree(t, "after RabbitMQ's return", 2*time.Minute)

	// 3. PostgreSQL restarted under everything
	t2 := time.Now()
	if err := env.RestartPostgres(ctx); err != nil {
		t.Fatal(err)
	}
	if err := env.WaitComputesUp(ctx, time.Now(), 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	t.Logf("PostgreSQL restarted; compute heartbeats back %.1fs after the restart began", time.Since(t2).Seconds())
	s, err = apiBoot(ctx, "fault-vm-after-pg", "c512")
	if err != nil || s.Status != "ACTIVE" {
		t.Fatalf("boot after PostgreSQL's restart: %s %v %v\n%s", s.Status, s.Fault, err, env.Logs(20))
	}
	c, err := runContainer(ctx, map[string]any{"image": env.Image, "name": "fault-ctr-after-pg",
		"command": []string{"sleep", "3600"}, "cpu": 1, "memory": 512})
	if err != nil || c.Status != "Running" {
		t.Fatalf("container after PostgreSQL's restart: %s (%s) %v", c.Status, c.StatusReason, err)
	}
	agree(t, "after PostgreSQL's restart", 2*time.Minute)

	// nothing lost or leaked: a reconciliation run after all this finds
	// nothing to repair
	rep := cleanReconciliation(t, time.Now(), 3*time.Minute)
	t.Logf("reconciliation run %d: zero divergences", rep.RunID)
}

// pendingDelivered waits until the outbox has nothing left to deliver.
func pendingDelivered(t *testing.T, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var n int
		var topics string
		err := env.DB.QueryRow(context.Background(), `SELECT count(*), COALESCE(string_agg(DISTINCT topic, ' '), '')
FROM bridge_outbox WHERE delivered_at IS NULL`).Scan(&n, &topics)
		if err == nil && n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("outbox: %d events undelivered after %s (%s) %v", n, timeout, strings.TrimSpace(topics), err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
