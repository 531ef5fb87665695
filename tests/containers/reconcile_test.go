package containers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// The agents' Docker view in serve's reconciliation: a container deleted
// while its agent is away stays deleting; the reconciler sends its delete
// again after the grace period, then reaps it (claim released) after a
// second one; the agent, back, removes the Docker container (serve no
// longer wants it); the latest report (GET /v1/reconciliation) ends with
// no divergence, and the history shows both repairs.
func TestReconcileAgentAway(t *testing.T) {
	NeedAgent(t)
	env := Start(t, Options{Agents: DefaultHosts()[:1],
		ServeEnv: []string{"UNISCHED_RECONCILE_GRACE=3s", "UNISCHED_RECONCILE_INTERVAL=1s"}})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	c := env.Zun.MustRun(t, map[string]any{"image": env.Image, "command": []string{"sleep", "3600"}, "cpu": 0.1, "memory": 16})
	agent := env.Agents["host-a"]
	if err := agent.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := env.Zun.Delete(ctx, c.UUID, "force=true"); err != nil {
		t.Fatal(err)
	}
	if w, err := env.Workload(ctx, c.UUID); err != nil || w.State != "deleting" {
		t.Fatalf("after the delete: %+v %v", w, err)
	}
	if err := Eventually(ctx, time.Minute, func(ctx context.Context) error {
		_, err := env.Workload(ctx, c.UUID)
		if errors.Is(err, ErrNoWorkload) {
			return nil
		}
		return fmt.Errorf("still in the ledger (%v)", err)
	}); err != nil {
		t.Fatalf("the stuck delete was not reaped: %v\n%s", err, env.Logs(40))
	}
	if allocs, _, err := env.Placement.Allocations(ctx, c.UUID); err != nil || len(allocs) != 0 {
		t.Fatalf("reaped container's allocations %v (%v)", allocs, err)
	}
	if _, err := env.Inspect(ctx, c.UUID); err != nil {
		t.Fatalf("the container went without its agent? %v", err)
	}
	if _, err := env.StartAgent(ctx, agent.Spec); err != nil {
		t.Fatal(err)
	}
	if err := Eventually(ctx, time.Minute, func(ctx context.Context) error {
		if _, err := env.Inspect(ctx, c.UUID); err == nil {
			return errors.New("its Docker container is still there")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	type report struct {
		RunID       int64 `json:"run_id"`
		Total       int   `json:"total"`
		Divergences []struct {
			Kind       string `json:"kind"`
			WorkloadID string `json:"workload_id"`
			Action     string `json:"action"`
			Result     string `json:"result"`
		} `json:"divergences"`
	}
	var latest report
	if err := Eventually(ctx, 30*time.Second, func(ctx context.Context) error {
		r, err := env.Zun.Do(ctx, http.MethodGet, "/v1/reconciliation", nil)
		if err != nil {
			return err
		}
		if err := r.JSON(&latest); err != nil {
			return err
		}
		if latest.Total != 0 {
			return fmt.Errorf("latest run %d: %+v", latest.RunID, latest.Divergences)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	actions := map[string]string{}
	rows, err := env.DB.Query(ctx, `SELECT action, result FROM bridge_reconcile_divergences
	WHERE kind = 'stuck_deleting' AND workload_id = $1 ORDER BY id`, c.UUID)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var a, r string
		if err := rows.Scan(&a, &r); err != nil {
			t.Fatal(err)
		}
		actions[a] = r
	}
	if rows.Err() != nil || actions["resend_delete"] != "repaired" || actions["reap"] != "repaired" {
		t.Fatalf("stuck_deleting repairs recorded: %v (%v)", actions, rows.Err())
	}
}
