package replicas

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/unisched/unisched/tests/containers"
)

// failoverBound is how long a role may take to move after its leader was
// killed: generous, the measured figure (a fraction of a second with
// leader.retry_interval 250ms) is logged and documented.
const failoverBound = 30 * time.Second

// TestLeadership: of three replicas exactly one holds each role's lock
// (pg_locks) and says so (unisched_leader{role} 1, the others 0); killing
// a leader with SIGKILL moves its role to another replica, and the
// balancer keeps answering. Run over the unix socket and over TCP: a
// killed process's sockets are closed by its kernel either way, so
// PostgreSQL ends the session (and frees the lock) at once, and the
// failover is the standby's retry interval.
func TestLeadership(t *testing.T) {
	for _, tcp := range []bool{false, true} {
		name := "unix"
		if tcp {
			name = "tcp"
		}
		t.Run(name, func(t *testing.T) {
			c := Start(t, Options{Replicas: 3, TCP: tcp})
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			for _, role := range []string{RoleRelay, RoleReconciler} {
				first := c.checkOneLeader(ctx, t, role, nil)
				if role == RoleReconciler {
					c.checkRunsBy(ctx, t, first, time.Now())
				}
				killedAt := time.Now()
				took := c.killAndWait(ctx, t, role, first)
				t.Logf("FAILOVER %s over %s: %s from SIGKILL of %s to another replica holding the lock and its gauge at 1", role, name, took.Round(time.Millisecond), first.Name)
				if role == RoleReconciler {
					next := c.checkOneLeader(ctx, t, role, first)
					c.checkRunsBy(ctx, t, next, killedAt)
				}
				// the balancer has taken the dead replica out and answers
				if err := c.WaitBackends(ctx, len(c.Replicas)-1, 10*time.Second); err != nil {
					t.Fatal(err)
				}
				for i := range 10 {
					if err := get(ctx, c.PlacementURL+"/", http.StatusOK); err != nil {
						t.Fatalf("request %d through the balancer after the kill: %v", i, err)
					}
				}
				// the killed replica comes back as a standby
				if err := c.StartReplica(ctx, first); err != nil {
					t.Fatal(err)
				}
				if err := c.WaitBackends(ctx, len(c.Replicas), 30*time.Second); err != nil {
					t.Fatal(err)
				}
				if again := c.checkOneLeader(ctx, t, role, nil); again == first {
					t.Errorf("%s: the restarted %s took the lead back from a healthy leader", role, first.Name)
				}
			}
		})
	}
}

// checkRunsBy waits for a finished reconciliation run started after since
// and checks that every run since then was the leader's (the stored
// runs name the process: host:pid).
func (c *Cluster) checkRunsBy(ctx context.Context, t *testing.T, leader *Replica, since time.Time) {
	t.Helper()
	suffix := fmt.Sprintf(":%d", leader.Pid())
	err := containers.Eventually(ctx, failoverBound, func(ctx context.Context) error {
		rows, err := c.DB.Query(ctx, `SELECT leader FROM bridge_reconcile_runs WHERE started_at > $1 AND finished_at IS NOT NULL`, since)
		if err != nil {
			return err
		}
		by, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		if len(by) == 0 {
			return fmt.Errorf("no reconciliation run since %s", since.Format(time.RFC3339Nano))
		}
		for _, b := range by {
			if !strings.HasSuffix(b, suffix) {
				t.Fatalf("a reconciliation run by %s since %s; only the leader %s (pid %d) runs them", b, since.Format(time.RFC3339Nano), leader.Name, leader.Pid())
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, c.Logs(20))
	}
}

// checkOneLeader waits until exactly one replica holds role's lock and is
// the only one whose gauge says 1 (not skip), and returns it.
func (c *Cluster) checkOneLeader(ctx context.Context, t *testing.T, role string, skip *Replica) *Replica {
	t.Helper()
	var leader *Replica
	err := containers.Eventually(ctx, failoverBound, func(ctx context.Context) error {
		var err error
		if leader, err = c.oneLeader(ctx, role, skip); err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%s: %v\n%s", role, err, c.Logs(20))
	}
	return leader
}

// oneLeader is the replica that holds role's lock and is the only live one
// whose gauge says 1; an error until that is so.
func (c *Cluster) oneLeader(ctx context.Context, role string, dead *Replica) (*Replica, error) {
	leader, err := c.Leader(ctx, role)
	if err != nil {
		return nil, err
	}
	if leader == nil {
		return nil, fmt.Errorf("no replica holds the %s lock", role)
	}
	var saying []string
	for _, r := range c.Replicas {
		if r == dead || r.Process == nil || r.Exited() {
			continue
		}
		g, err := c.LeaderGauges(ctx, r)
		if err != nil {
			return nil, err
		}
		v, ok := g[role]
		if !ok {
			return nil, fmt.Errorf("%s exports no unisched_leader{role=%q}", r.Name, role)
		}
		if v == 1 {
			saying = append(saying, r.Name)
		}
	}
	if !slices.Equal(saying, []string{leader.Name}) {
		return nil, fmt.Errorf("%s: %s holds the lock, the gauges of %v say 1", role, leader.Name, saying)
	}
	return leader, nil
}

// killAndWait SIGKILLs role's leader and returns how long until another
// replica held the lock with its gauge at 1.
func (c *Cluster) killAndWait(ctx context.Context, t *testing.T, role string, leader *Replica) time.Duration {
	t.Helper()
	killed := time.Now()
	if err := leader.Kill(); err != nil {
		t.Fatal(err)
	}
	deadline := killed.Add(failoverBound)
	for {
		next, err := c.oneLeader(ctx, role, leader)
		if err == nil && next != leader {
			return time.Since(killed)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no failover within %s of killing %s (last: %v)\n%s", role, failoverBound, leader.Name, err, c.Logs(20))
		}
		time.Sleep(10 * time.Millisecond)
	}
}
