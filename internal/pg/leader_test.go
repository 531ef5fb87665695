package pg_test

import (
	"context"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

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

// TestLeaderKeepalives: the leader's session carries the configured TCP
// keepalives, so PostgreSQL ends the session of a leader whose host
// vanished. Over TCP only (a unix socket has none): skipped when the test
// database is not reachable on 127.0.0.1.
func TestLeaderKeepalives(t *testing.T) {
	u, err := url.Parse(pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Del("host")
	u.RawQuery = q.Encode()
	u.Host = "127.0.0.1:5432"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool, err := pgxpool.New(ctx, u.String())
	if err == nil {
		err = pool.Ping(ctx)
	}
	if err != nil {
		t.Skipf("no TCP connection to the test database: %v", err)
	}
	defer pool.Close()
	l, err := pg.NewLeader(pool, pg.LeaderConfig{Key: 0x7465737400000002, Retry: 50 * time.Millisecond,
		Keepalive: pg.Keepalive{Idle: 7 * time.Second, Interval: 3 * time.Second, Count: 4}})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan []string, 1)
	lctx, stop := context.WithCancel(ctx)
	defer stop()
	go l.Run(lctx, func(ctx context.Context, conn *pgx.Conn) error {
		var v []string
		for _, k := range []string{"tcp_keepalives_idle", "tcp_keepalives_interval", "tcp_keepalives_count"} {
			var s string
			if err := conn.QueryRow(ctx, "SHOW "+k).Scan(&s); err != nil {
				return err
			}
			v = append(v, s)
		}
		got <- v
		<-ctx.Done()
		return ctx.Err()
	})
	select {
	case v := <-got:
		if want := []string{"7", "3", "4"}; !slices.Equal(v, want) {
			t.Fatalf("leader session keepalives %v, want %v", v, want)
		}
	case <-ctx.Done():
		t.Fatal("never led")
	}
}
