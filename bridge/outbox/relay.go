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
	// BatchSize bounds the events one claim takes (100): with Parallelism
	// 1 the events delivered between two claims, otherwise a key's events
	// one lane delivers before the key goes back to be claimed again.
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
	// Parallelism is how many keys are delivered at once (8): an agent
	// slow to start one workload's container holds up that workload's
	// events only; the leader keeps claiming and delivering the other
	// keys' meanwhile. Each key's events still go one at a time, in id
	// order; 1 delivers one event at a time, in id order across keys.
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
	// transaction) to the consumer's answer. Each lane calls it once its
	// own outcome is committed, so several may call it at once; an event
	// is reported once by the relay that recorded its delivery.
	Delivered func(ev Event, at time.Time)
	// SlowDelivery: a delivery whose notify lag exceeds it is logged with
	// where the time went (waiting to be claimed, for a lane, in the
	// consumer; 100ms, the lag the notify loop aims to stay under).
	SlowDelivery time.Duration
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
	def(&c.SlowDelivery, 100*time.Millisecond)
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

// lead relays while this replica holds the lock, without head-of-line
// blocking across keys: it keeps the set of keys in flight (a lane being
// delivered, or its outcome being recorded), claims the runnable events of
// keys not in flight, hands each key's events to a lane of its own (at most
// Parallelism lanes at once) and goes straight back to waiting. A NOTIFY, a
// Wake, a finished lane or the poll brings it back to claim. Each lane
// records its outcomes in a short transaction of its own as soon as it
// ends, so a fast consumer's event is neither delivered nor recorded behind
// a slow consumer's. With Parallelism 1 one lane takes every claimed event,
// in id order across keys.
//
// The lanes run on a context derived from ctx: when lead returns (its
// session failed, ctx ended, a claim failed) it cancels them and waits for
// them, so that no lane of this lead delivers or records anything once lead
// has returned. A lane cancelled records nothing, not even the deliveries
// it completed: the next claim delivers them again.
//
// Claiming takes no row lock. Only the leader claims, and it claims on its
// session, the one whose advisory lock makes it the leader: once that
// session is gone its claims fail, and while it lives no other relay
// claims. Inside the leader the in-flight set keeps two lanes of one key
// apart, which FOR UPDATE SKIP LOCKED did while the rows stayed locked for
// a whole batch's transaction; and unlike a lock held on the session, the
// set costs no transaction open for as long as the slowest delivery.
//
// Outcomes go through the pool, so they are not fenced by the session: in
// the window between the session's death and lead noticing it (at once
// when the server ends the session, up to the keepalive bound when the
// host vanished), a lane of the old leader may still finish and record its
// outcome while the new leader delivers. That cannot reorder a key. A lane
// delivers an event only after the previous event of its key was
// delivered: by the lane itself, earlier on, or by anyone, when the claim
// saw it marked; and an event is marked delivered (or discarded) only after
// a Deliver of it returned. So the first delivery of every event follows a
// completed delivery of each earlier event of its key, whichever relay made
// them, and a late mark only records what did happen. The marks also leave
// events already settled alone: a late outcome never replaces the new
// leader's, nor puts a delivered event back into backoff (a late failure of
// an event still pending only delays it). What the window costs is
// duplicates: the new leader may deliver again, even at the same time,
// what the old one delivered and had not recorded. Delivery is at least
// once and consumers dedupe by event id, as after any failover.
func (r *Relay) lead(ctx context.Context, conn *pgx.Conn) error {
	if err := listen(ctx, conn); err != nil {
		return err
	}
	lctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	// finished receives each lane's keys once its outcome is recorded (or
	// given up); never more sends than lanes running, so never blocking.
	finished := make(chan []string, r.cfg.Parallelism)
	inFlight := map[string]bool{}
	running := 0
	nextTrim := r.cfg.Now()
	for {
	drain:
		for {
			select {
			case keys := <-finished:
				running--
				for _, k := range keys {
					delete(inFlight, k)
				}
			default:
				break drain
			}
		}
		for running < r.cfg.Parallelism {
			lanes, err := r.claim(ctx, conn, inFlight, running)
			if err != nil {
				return err
			}
			if len(lanes) == 0 {
				break
			}
			for _, l := range lanes {
				running++
				for _, k := range l.keys {
					inFlight[k] = true
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					r.runLane(lctx, l)
					finished <- l.keys
					r.Wake()
				}()
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

// lane is what one worker delivers, in id order: one key's events, or
// with Parallelism 1 every event claimed, of several keys.
type lane struct {
	keys  []string
	evs   []Event
	claim claimStamp
}

// claimStamp is when the claim that made a lane was sent and returned, and
// how many lanes were running then: where a slow delivery's time went.
type claimStamp struct {
	asked, claimed time.Time
	busy           int
}

// claim reads the runnable events of at most free keys not in flight and
// splits them into lanes.
func (r *Relay) claim(ctx context.Context, conn *pgx.Conn, inFlight map[string]bool, running int) ([]lane, error) {
	free := r.cfg.Parallelism - running
	busy := make([]string, 0, len(inFlight))
	for k := range inFlight {
		busy = append(busy, k)
	}
	keys := free
	if r.cfg.Parallelism == 1 {
		keys = r.cfg.BatchSize
	}
	asked := r.cfg.Now()
	evs, err := claim(ctx, conn, asked, r.cfg.BatchSize, keys, busy)
	if err != nil || len(evs) == 0 {
		return nil, err
	}
	stamp := claimStamp{asked: asked, claimed: r.cfg.Now(), busy: running}
	if r.cfg.Parallelism == 1 {
		// One lane of every claimed event in id order: the batch goes out
		// exactly as it was claimed, one event at a time.
		l := lane{evs: evs, claim: stamp}
		seen := map[string]bool{}
		for _, ev := range evs {
			if !seen[ev.Key] {
				seen[ev.Key] = true
				l.keys = append(l.keys, ev.Key)
			}
		}
		return []lane{l}, nil
	}
	var lanes []lane
	at := map[string]int{} // key -> index into lanes
	for _, ev := range evs {
		i, ok := at[ev.Key]
		if !ok {
			i = len(lanes)
			at[ev.Key] = i
			lanes = append(lanes, lane{keys: []string{ev.Key}, claim: stamp})
		}
		lanes[i].evs = append(lanes[i].evs, ev)
	}
	return lanes, nil
}

// outcome is one event's delivery: err nil when delivered, at when its
// Deliver returned; claim and started when it was claimed and when its
// Deliver was called, to tell where a slow delivery's time went.
type outcome struct {
	ev      Event
	err     error
	claim   claimStamp
	started time.Time
	at      time.Time
}

// runLane delivers a lane's events in id order, skipping the rest of a
// key after its first failure (a failed event holds back the later events
// of its key), then records the outcomes. Once ctx ends it stops and
// records nothing: a delivery cut short is no outcome, and the lead is
// being given up.
func (r *Relay) runLane(ctx context.Context, l lane) {
	outs := make([]outcome, 0, len(l.evs))
	failed := map[string]bool{}
	for _, ev := range l.evs {
		if failed[ev.Key] {
			continue
		}
		started := r.cfg.Now()
		derr := r.deliver(ctx, ev)
		if ctx.Err() != nil {
			return
		}
		outs = append(outs, outcome{ev: ev, err: derr, claim: l.claim, started: started, at: r.cfg.Now()})
		if derr != nil && !isDiscard(derr) {
			failed[ev.Key] = true
		}
	}
	r.settle(ctx, outs)
}

// settle records a lane's outcomes on the pool (in one statement when all
// were delivered, else in one short transaction), then tells the Delivered
// hook about the deliveries it recorded. Should that fail, nothing is
// recorded and the events are delivered again: at least once.
func (r *Relay) settle(ctx context.Context, outs []outcome) {
	var ids []int64
	var ats []time.Time
	for _, o := range outs {
		switch {
		case o.err == nil:
			ids = append(ids, o.ev.ID)
			ats = append(ats, o.at)
		case isDiscard(o.err):
			r.cfg.Logger.Error("outbox relay: event discarded", "id", o.ev.ID, "topic", o.ev.Topic, "key", o.ev.Key, "error", o.err)
		default:
			r.cfg.Logger.Warn("outbox relay: delivery failed", "id", o.ev.ID, "topic", o.ev.Topic, "key", o.ev.Key,
				"attempt", o.ev.Attempts+1, "retry_at", o.at.Add(r.backoff(o.ev.Attempts+1)), "error", o.err)
		}
	}
	var marked []int64
	var err error
	if len(ids) == len(outs) {
		// Every event delivered: one statement, no transaction around it.
		// The lane's keys stay in flight until it is recorded, so this is
		// on the path of each key's next event.
		marked, err = setDelivered(ctx, r.pool, ids, ats)
	} else {
		marked, err = r.settleMixed(ctx, outs, ids, ats)
	}
	if err != nil {
		if ctx.Err() == nil {
			r.cfg.Logger.Error("outbox relay: recording a lane's outcomes failed; its events will be delivered again",
				"events", len(outs), "error", err)
		}
		return
	}
	if len(marked) == 0 {
		return
	}
	recorded := r.cfg.Now()
	mine := make(map[int64]bool, len(marked))
	for _, id := range marked {
		mine[id] = true
	}
	for _, o := range outs {
		if o.err != nil || !mine[o.ev.ID] {
			continue
		}
		if lag := o.at.Sub(o.ev.CreatedAt); lag > r.cfg.SlowDelivery {
			r.logSlow(o, lag, recorded)
		}
		if r.cfg.Delivered != nil {
			r.cfg.Delivered(o.ev, o.at)
		}
	}
}

// settleMixed records outcomes some of which failed or were discarded, in
// one transaction, and returns the events it marked delivered.
func (r *Relay) settleMixed(ctx context.Context, outs []outcome, ids []int64, ats []time.Time) ([]int64, error) {
	var marked []int64
	err := pg.WithTx(ctx, r.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		for _, o := range outs {
			switch {
			case o.err == nil:
			case isDiscard(o.err):
				if err := setDiscarded(ctx, tx, o.ev.ID, o.at, o.err.Error()); err != nil {
					return err
				}
			default:
				if err := setFailed(ctx, tx, o.ev.ID, o.err.Error(), o.at.Add(r.backoff(o.ev.Attempts+1))); err != nil {
					return err
				}
			}
		}
		var err error
		marked, err = setDelivered(ctx, tx, ids, ats)
		return err
	})
	return marked, err
}

// logSlow says where a slow delivery's lag went: until the claim (the
// writing transaction's remainder and commit, the NOTIFY, the leader's
// wake-up and claim query), in the lane (a lane slot, the key's earlier
// events), in the consumer; and how long recording it took after.
func (r *Relay) logSlow(o outcome, lag time.Duration, recorded time.Time) {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	r.cfg.Logger.Warn("outbox relay: slow delivery", "id", o.ev.ID, "topic", o.ev.Topic, "key", o.ev.Key,
		"attempt", o.ev.Attempts+1, "lag_ms", ms(lag),
		"to_claim_ms", ms(o.claim.asked.Sub(o.ev.CreatedAt)), "claim_ms", ms(o.claim.claimed.Sub(o.claim.asked)),
		"lanes_busy", o.claim.busy, "in_lane_ms", ms(o.started.Sub(o.claim.claimed)),
		"deliver_ms", ms(o.at.Sub(o.started)), "record_ms", ms(recorded.Sub(o.at)))
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
