package pg

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Keepalive is the server-side TCP keepalive of a leader's session: how
// soon PostgreSQL notices that the replica holding a lock is gone without
// having closed its connection (its host powered off, a network partition)
// and ends the session, which frees the lock for a standby. A process that
// dies (even by SIGKILL) has its sockets closed by the kernel, which
// PostgreSQL sees at once; keepalives only matter when nothing is left to
// close them. Unix-socket sessions ignore them.
type Keepalive struct {
	// Idle is the silence before the first probe (5s), Interval the wait
	// between probes (2s), Count the probes lost before the session ends
	// (3): a vanished host loses its locks after about Idle+Interval*Count.
	Idle, Interval time.Duration
	Count          int
}

func (k *Keepalive) setDefaults() {
	if k.Idle <= 0 {
		k.Idle = 5 * time.Second
	}
	if k.Interval <= 0 {
		k.Interval = 2 * time.Second
	}
	if k.Count <= 0 {
		k.Count = 3
	}
}

// LeaderConfig configures one role only one replica of a database holds at
// a time. Zero fields take the defaults in parentheses.
type LeaderConfig struct {
	// Role names it in logs ("outbox relay").
	Role string
	// Key is the session advisory lock (one-bigint form) whose holder
	// leads; required.
	Key int64
	// Retry is how often a standby tries the lock (1s): with the time
	// PostgreSQL takes to end a dead leader's session, the bound on a
	// failover. A replica that just lost the lead waits twice as long, so
	// that a healthy standby takes over rather than it reconnecting into
	// the same trouble.
	Retry     time.Duration
	Keepalive Keepalive
	Logger    *slog.Logger
	// OnChange, when set, is called with true when this replica starts
	// leading and false when it stops (metrics, tests).
	OnChange func(leading bool)
}

// Leader campaigns for one role over a dedicated connection: a session
// advisory lock, held for as long as the session lives, so that the lock
// goes with the leader's process or connection and never outlives them.
// Several replicas each run one Leader per role; PostgreSQL picks the
// holder.
type Leader struct {
	pool    *pgxpool.Pool
	cfg     LeaderConfig
	leading atomic.Bool
}

// NewLeader makes a candidate; Run campaigns.
func NewLeader(pool *pgxpool.Pool, cfg LeaderConfig) (*Leader, error) {
	if pool == nil || cfg.Key == 0 {
		return nil, errors.New("leader: a pool and a lock key are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Retry <= 0 {
		cfg.Retry = time.Second
	}
	if cfg.Role == "" {
		cfg.Role = fmt.Sprintf("leader %#x", cfg.Key)
	}
	cfg.Keepalive.setDefaults()
	return &Leader{pool: pool, cfg: cfg}, nil
}

// Leading reports whether this replica holds the lock now.
func (l *Leader) Leading() bool { return l.leading.Load() }

// Run campaigns until ctx ends. While this replica holds the lock it runs
// lead on the session's connection (the caller's work may use it, e.g.
// LISTEN, but must not return it to a pool); lead returns when that
// connection fails or ctx ends, and the campaign starts over on a new
// connection.
func (l *Leader) Run(ctx context.Context, lead func(ctx context.Context, conn *pgx.Conn) error) {
	for {
		led, err := l.session(ctx, lead)
		if ctx.Err() != nil {
			return
		}
		l.cfg.Logger.Warn(l.cfg.Role+": leader session ended", "led", led, "error", err)
		wait := l.cfg.Retry
		if led {
			wait = 2 * l.cfg.Retry
		}
		if !Sleep(ctx, wait) {
			return
		}
	}
}

func (l *Leader) set(v bool) {
	if l.leading.Swap(v) != v && l.cfg.OnChange != nil {
		l.cfg.OnChange(v)
	}
}

// session holds one dedicated connection: it tries the lock until it gets
// it, then leads until the connection fails or ctx ends. led says whether
// it got to lead.
func (l *Leader) session(ctx context.Context, lead func(context.Context, *pgx.Conn) error) (led bool, err error) {
	pc, err := l.pool.Acquire(ctx)
	if err != nil {
		return false, fmt.Errorf("%s: acquiring the leader connection: %w", l.cfg.Role, err)
	}
	// Out of the pool for good: the session's lock must never reach
	// another user of the pool, so the connection is closed, not returned.
	conn := pc.Hijack()
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	k := l.cfg.Keepalive
	if _, err := conn.Exec(ctx, fmt.Sprintf("SET tcp_keepalives_idle = %d; SET tcp_keepalives_interval = %d; SET tcp_keepalives_count = %d",
		max(1, int(k.Idle.Seconds())), max(1, int(k.Interval.Seconds())), k.Count)); err != nil {
		return false, fmt.Errorf("%s: setting the session's keepalives: %w", l.cfg.Role, err)
	}
	for {
		var ok bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, l.cfg.Key).Scan(&ok); err != nil {
			return false, fmt.Errorf("%s: trying the leader lock: %w", l.cfg.Role, err)
		}
		if ok {
			break
		}
		if !Sleep(ctx, l.cfg.Retry) {
			return false, ctx.Err()
		}
	}
	l.set(true)
	defer l.set(false)
	l.cfg.Logger.Info(l.cfg.Role+": leading", "lock", l.cfg.Key)
	return true, lead(ctx, conn)
}

// Hold waits d on a leader's connection, watching it: nil after d, an
// error as soon as the connection fails (the lock is gone with it) or ctx
// ends. It consumes notifications, so it is for sessions that LISTEN to
// nothing.
func Hold(ctx context.Context, conn *pgx.Conn, d time.Duration) error {
	wctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for {
		_, err := conn.WaitForNotification(wctx)
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if wctx.Err() != nil && !conn.IsClosed() {
			return nil
		}
		return fmt.Errorf("leader connection lost: %w", err)
	}
}

// Sleep waits d or until ctx ends; false when ctx ended.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
