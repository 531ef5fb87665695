package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/unisched/unisched/internal/pg"
)

// Config tunes a Relay. Zero fields take the defaults in parentheses.
type Config struct {
	Deliverer Deliverer
	Logger    *slog.Logger
	// Now is the clock for due times, delivery stamps and trimming
	// (time.Now); tests move it to skip backoff.
	Now func() time.Time
	// LockKey is the advisory lock the relays of one database compete for
	// (DefaultLockKey).
	LockKey int64
	// BatchSize is how many events one claim takes (100).
	BatchSize int
	// PollInterval is how long the leader waits for a NOTIFY before
	// looking anyway (1s): the fallback for a lost notification and the
	// pace of retries.
	PollInterval time.Duration
	// LeaderRetry is how often a replica that does not lead tries the lock
	// (1s): the bound on how long the events wait after the leader died.
	LeaderRetry time.Duration
	// Keepalive bounds how long a leader whose host vanished keeps the
	// lock (pg.Keepalive's defaults).
	Keepalive pg.Keepalive
	// BackoffMin and BackoffMax bound the wait before retrying a failed
	// event, doubling per attempt (1s, 5m).
	BackoffMin, BackoffMax time.Duration
	// DeliverTimeout bounds one Deliver call (30s).
	DeliverTimeout time.Duration
	// Parallelism is how many keys of one batch are delivered at once (8):
	// an agent slow to start one workload's container must not hold up
	// the others. Each key's events still go one at a time, in id order;
	// 1 delivers the whole batch in order.
	Parallelism int
	// Retention is how long delivered events stay for inspection (24h);
	// the leader trims older ones every TrimInterval (1m).
	Retention, TrimInterval time.Duration
	// OnLeader, when set, is called with true when this relay starts
	// leading and false when it stops (metrics; tests wait on it).
	OnLeader func(leader bool)
	// Delivered, when set, is called for every event delivered, once the
	// outcome is committed, with the time its delivery returned (also
	// stored as its delivered_at): the notify lag is at.Sub(ev.CreatedAt),
	// from the event's INSERT (clock_timestamp(), not the start of its
	// transaction) to the consumer's answer.
	Delivered func(ev Event, at time.Time)
}

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.LockKey == 0 {
		c.LockKey = DefaultLockKey
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 100
	}
	if c.Parallelism <= 0 {
		c.Parallelism = 8
	}
	def(&c.PollInterval, time.Second)
	def(&c.LeaderRetry, time.Second)
	def(&c.BackoffMin, time.Second)
	def(&c.BackoffMax, 5*time.Minute)
	def(&c.DeliverTimeout, 30*time.Second)
	def(&c.Retention, 24*time.Hour)
	def(&c.TrimInterval, time.Minute)
}

// Relay delivers outbox events while it leads. Run one per replica: they
// elect their leader among themselves.
type Relay struct {
	pool    *pgxpool.Pool
	cfg     Config
	elector *pg.Leader

	wake chan struct{}

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// NewRelay makes a relay over the pool's database; Start runs it.
func NewRelay(pool *pgxpool.Pool, cfg Config) (*Relay, error) {
	if pool == nil || cfg.Deliverer == nil {
		return nil, errors.New("outbox relay: a pool and a Deliverer are required")
	}
	if cfg.BackoffMax > 0 && cfg.BackoffMin > cfg.BackoffMax {
		return nil, fmt.Errorf("outbox relay: BackoffMin %s exceeds BackoffMax %s", cfg.BackoffMin, cfg.BackoffMax)
	}
	cfg.setDefaults()
	elector, err := pg.NewLeader(pool, pg.LeaderConfig{Role: "outbox relay", Key: cfg.LockKey, Retry: cfg.LeaderRetry,
		Keepalive: cfg.Keepalive, Logger: cfg.Logger, OnChange: cfg.OnLeader})
	if err != nil {
		return nil, err
	}
	return &Relay{pool: pool, cfg: cfg, elector: elector, wake: make(chan struct{}, 1)}, nil
}

// Start runs the relay in the background until ctx ends or Stop is called.
func (r *Relay) Start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done != nil {
		return errors.New("outbox relay: already started")
	}
	ctx, r.cancel = context.WithCancel(ctx)
	r.done = make(chan struct{})
	go func() {
		defer close(r.done)
		r.run(ctx)
	}()
	return nil
}

// Stop ends the relay and waits for it: the leader's connection closes,
// which releases the lock at once for another replica.
func (r *Relay) Stop() {
	r.mu.Lock()
	cancel, done := r.cancel, r.done
	r.mu.Unlock()
	if done == nil {
		return
	}
	cancel()
	<-done
}

// IsLeader reports whether this relay currently leads.
func (r *Relay) IsLeader() bool { return r.elector.Leading() }

// Wake makes the leader look for events now rather than at its next poll
// or notification.
func (r *Relay) Wake() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// run campaigns for the lead (internal/pg.Leader: the session advisory
// lock LockKey) and relays while it holds it.
func (r *Relay) run(ctx context.Context) {
	r.elector.Run(ctx, r.lead)
}

func (r *Relay) lead(ctx context.Context, conn *pgx.Conn) error {
	if err := listen(ctx, conn); err != nil {
		return err
	}
	nextTrim := r.cfg.Now()
	for {
		// Claim until a batch comes back short. A batch with events held
		// back (their key's head is elsewhere) is short too, so a relay
		// never spins on events it may not deliver yet.
		for {
			n, err := r.pass(ctx, conn)
			if err != nil {
				return err
			}
			if n < r.cfg.BatchSize {
				break
			}
		}
		if now := r.cfg.Now(); !now.Before(nextTrim) {
			if err := r.trim(ctx, conn, now); err != nil {
				return err
			}
			nextTrim = now.Add(r.cfg.TrimInterval)
		}
		if err := r.wait(ctx, conn); err != nil {
			return err
		}
	}
}

// wait returns on a notification, a Wake, or after PollInterval; an error
// means the connection is gone (or ctx ended).
func (r *Relay) wait(ctx context.Context, conn *pgx.Conn) error {
	wctx, cancel := context.WithTimeout(ctx, r.cfg.PollInterval)
	defer cancel()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-r.wake:
			cancel()
		case <-stop:
		}
	}()
	_, err := conn.WaitForNotification(wctx)
	if err == nil || (wctx.Err() != nil && ctx.Err() == nil && !conn.IsClosed()) {
		// Notifications that queued up meanwhile are all answered by the
		// pass that follows: drain them without blocking.
		done, c := context.WithCancel(ctx)
		c()
		for {
			if _, err := conn.WaitForNotification(done); err != nil {
				break
			}
		}
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("waiting for outbox notifications: %w", err)
}

// pass claims one batch, delivers it and records the outcome in one
// transaction on the leader's connection: if the connection dies, nothing
// is marked and the next leader delivers the batch again. It returns how
// many events it settled (delivered, failed or discarded).
//
// The batch is split into one lane per key (a single lane with
// Parallelism 1). Lanes run concurrently, up to Parallelism at once; a lane
// delivers its events in id order and skips the rest of a key after its
// first failure, so a failed event still holds back the later events of
// its key. The transaction is not safe for concurrent use: the
// outcomes are collected and written on it only after every lane ended.
func (r *Relay) pass(ctx context.Context, conn *pgx.Conn) (int, error) {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("beginning the outbox claim: %w", err)
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = tx.Rollback(rctx)
	}()
	evs, err := claim(ctx, tx, r.cfg.Now(), r.cfg.BatchSize)
	if err != nil || len(evs) == 0 {
		return 0, err
	}
	var keys []string
	lanes := map[string][]int{} // key -> indexes into evs, in id order
	for i, ev := range evs {
		if _, ok := lanes[ev.Key]; !ok {
			keys = append(keys, ev.Key)
		}
		lanes[ev.Key] = append(lanes[ev.Key], i)
	}
	head, err := heads(ctx, tx, keys)
	if err != nil {
		return 0, err
	}
	// A key whose oldest undelivered event is not in this batch (held by
	// another transaction, or waiting for its backoff) is blocked.
	var runnable [][]int
	for _, k := range keys {
		if lane := lanes[k]; head[k] == evs[lane[0]].ID {
			runnable = append(runnable, lane)
		}
	}
	if r.cfg.Parallelism == 1 && len(runnable) > 1 {
		// One lane of every runnable event in id order: the batch goes
		// out exactly as it was claimed.
		var all []int
		for i, ev := range evs {
			if head[ev.Key] == evs[lanes[ev.Key][0]].ID {
				all = append(all, i)
			}
		}
		runnable = [][]int{all}
	}

	// outcome[i] is evs[i]'s result; attempted[i] says whether it was
	// delivered at all (not after its key failed, nor once ctx ended).
	outcome := make([]error, len(evs))
	attempted := make([]bool, len(evs))
	doneAt := make([]time.Time, len(evs))
	work := make(chan []int)
	var wg sync.WaitGroup
	for range min(r.cfg.Parallelism, len(runnable)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for lane := range work {
				failed := map[string]bool{}
				for _, i := range lane {
					if ctx.Err() != nil {
						break
					}
					if failed[evs[i].Key] {
						continue
					}
					derr := r.deliver(ctx, evs[i])
					outcome[i], attempted[i], doneAt[i] = derr, true, r.cfg.Now()
					if derr != nil && !isDiscard(derr) {
						failed[evs[i].Key] = true
					}
				}
			}
		}()
	}
feed:
	for _, lane := range runnable {
		select {
		case work <- lane:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	if ctx.Err() != nil {
		return 0, ctx.Err()
	}

	var delivered []int64
	var deliveredAt []time.Time
	settled := 0
	for i, ev := range evs {
		if !attempted[i] {
			continue
		}
		settled++
		derr := outcome[i]
		switch {
		case derr == nil:
			delivered = append(delivered, ev.ID)
			deliveredAt = append(deliveredAt, doneAt[i])
		case isDiscard(derr):
			r.cfg.Logger.Error("outbox relay: event discarded", "id", ev.ID, "topic", ev.Topic, "key", ev.Key, "error", derr)
			if err := setDiscarded(ctx, tx, ev.ID, r.cfg.Now(), derr.Error()); err != nil {
				return 0, err
			}
		default:
			next := r.cfg.Now().Add(r.backoff(ev.Attempts + 1))
			r.cfg.Logger.Warn("outbox relay: delivery failed", "id", ev.ID, "topic", ev.Topic, "key", ev.Key,
				"attempt", ev.Attempts+1, "retry_at", next, "error", derr)
			if err := setFailed(ctx, tx, ev.ID, derr.Error(), next); err != nil {
				return 0, err
			}
		}
	}
	if err := setDelivered(ctx, tx, delivered, deliveredAt); err != nil {
		return 0, err
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("committing the outbox claim: %w", err)
	}
	if r.cfg.Delivered != nil {
		for i, ev := range evs {
			if attempted[i] && outcome[i] == nil {
				r.cfg.Delivered(ev, doneAt[i])
			}
		}
	}
	return settled, nil
}

// deliver calls the Deliverer with a timeout; a panic is a failed delivery.
func (r *Relay) deliver(ctx context.Context, ev Event) (err error) {
	dctx, cancel := context.WithTimeout(ctx, r.cfg.DeliverTimeout)
	defer cancel()
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("deliverer panicked: %v", p)
		}
	}()
	return r.cfg.Deliverer.Deliver(dctx, ev)
}

// backoff is the wait before the given attempt (2 = the first retry).
func (r *Relay) backoff(attempt int) time.Duration {
	d := r.cfg.BackoffMin
	for i := 1; i < attempt && d < r.cfg.BackoffMax; i++ {
		d *= 2
	}
	return min(d, r.cfg.BackoffMax)
}

func (r *Relay) trim(ctx context.Context, conn *pgx.Conn, now time.Time) error {
	const limit = 1000
	cutoff := now.Add(-r.cfg.Retention)
	for {
		n, err := Trim(ctx, conn, cutoff, limit)
		if err != nil {
			return err
		}
		if n < limit {
			return nil
		}
	}
}
