package pg_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/unisched/unisched/internal/pg"
	"github.com/unisched/unisched/internal/pgtest"
)

// TestLeaderFailover: of two candidates one leads; when its connection is
// terminated by the server (as when its process dies) the other takes
// over within a few retries, and the first does not lead again meanwhile.
func TestLeaderFailover(t *testing.T) {
	pool := pgtest.Pool(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const key = 0x7465737400000001
	type change struct {
		who     string
		leading bool
		at      time.Time
	}
	changes := make(chan change, 16)
	var wg sync.WaitGroup
	pids := map[string]chan uint32{"a": make(chan uint32, 4), "b": make(chan uint32, 4)}
	for _, who := range []string{"a", "b"} {
		l, err := pg.NewLeader(pool, pg.LeaderConfig{Role: who, Key: key, Retry: 100 * time.Millisecond,
			OnChange: func(v bool) { changes <- change{who, v, time.Now()} }})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.Run(ctx, func(ctx context.Context, conn *pgx.Conn) error {
				pids[who] <- conn.PgConn().PID()
				for {
					if err := pg.Hold(ctx, conn, time.Hour); err != nil {
						return err
					}
				}
			})
		}()
	}
	defer wg.Wait()
	defer cancel()

	first := <-changes
	if !first.leading {
		t.Fatalf("first change %+v is not a start", first)
	}
	var holders int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted
		AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
		AND ((classid::bigint << 32) | objid::bigint) = $1`, int64(key)).Scan(&holders); err != nil {
		t.Fatal(err)
	}
	if holders != 1 {
		t.Fatalf("%d sessions hold the lock, want 1", holders)
	}
	pid := <-pids[first.who]
	killed := time.Now()
	if _, err := pool.Exec(ctx, `SELECT pg_terminate_backend($1)`, pid); err != nil {
		t.Fatal(err)
	}
	var took time.Duration
	for took == 0 {
		select {
		case c := <-changes:
			switch {
			case c.who == first.who && c.leading:
				t.Fatalf("%s led again before the other took over", c.who)
			case c.who != first.who && c.leading:
				took = c.at.Sub(killed)
			}
		case <-ctx.Done():
			t.Fatal("no failover within a minute")
		}
	}
	t.Logf("failover after the leader's session was terminated: %s", took)
	if took > 10*time.Second {
		t.Errorf("failover took %s with a 100ms retry", took)
	}
}

// TestNewLeaderRefusesNoKey: a zero key would be a lock every caller
// without configuration shares.
func TestNewLeaderRefusesNoKey(t *testing.T) {
	if _, err := pg.NewLeader(nil, pg.LeaderConfig{}); err == nil {
		t.Fatal("NewLeader accepted no pool and no key")
	}
}
