package outbox_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/unisched/unisched/bridge/outbox"
	"github.com/unisched/unisched/internal/pg"
	"github.com/unisched/unisched/internal/pgtest"
)

// gate is a deliverer's hold on one key's deliveries: they announce
// themselves on started and return once the gate opens (or their context
// ends).
type gate struct {
	started  chan int64
	open     chan struct{}
	returned atomic.Int32
}

func newGate() *gate { return &gate{started: make(chan int64, 16), open: make(chan struct{})} }

func (g *gate) hold(ctx context.Context, ev outbox.Event) error {
	g.started <- ev.ID
	defer g.returned.Add(1)
	select {
	case <-g.open:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *gate) waitStarted(t *testing.T, want int64) {
	t.Helper()
	select {
	case id := <-g.started:
		if id != want {
			t.Fatalf("slow delivery of event %d started, want %d", id, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the slow delivery of event %d never started", want)
	}
}

func delivered(t *testing.T, ctx context.Context, pool *pgxpool.Pool, ids ...int64) bool {
	t.Helper()
	for _, id := range ids {
		row, err := outbox.Get(ctx, pool, id)
		if err != nil {
			t.Fatal(err)
		}
		if row.DeliveredAt == nil {
			return false
		}
	}
	return true
}

// A key whose consumer is slow (an agent in Docker) holds up its own
// events only: events of other keys written while it is in flight are
// delivered and committed, with their own lag, while its delivery is still
// blocked; a failure of another key is recorded, waits its backoff and is
// retried meanwhile too; the slow key's next event waits for the first.
func TestRelaySlowKeyDoesNotBlockOthers(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Pool(t)
	clk := &clock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	slow := newGate()
	var failOnce atomic.Bool
	rec := newRecorder(nil)
	deliverer := outbox.DelivererFunc(func(ctx context.Context, ev outbox.Event) error {
		switch {
		case ev.Key == "slow":
			if err := slow.hold(ctx, ev); err != nil {
				return err
			}
		case ev.Key == "fail" && failOnce.CompareAndSwap(false, true):
			return errors.New("agent unreachable")
		}
		return rec.Deliver(ctx, ev)
	})
	var mu sync.Mutex
	reported := map[int64]bool{}
	// The poll is far away: the relay must wake on the writers' NOTIFY
	// and on its own finished lanes.
	r := startRelay(t, pool, outbox.Config{
		Deliverer: deliverer, Now: clk.Now, Parallelism: 4, PollInterval: time.Minute,
		BackoffMin: time.Minute, BackoffMax: time.Hour,
		Delivered: func(ev outbox.Event, at time.Time) {
			mu.Lock()
			reported[ev.ID] = true
			mu.Unlock()
		},
	})
	s1 := insert(t, ctx, pool, "agent", "slow")
	slow.waitStarted(t, s1)
	t0 := time.Now()
	s2 := insert(t, ctx, pool, "agent", "slow")

	// Written while the slow delivery is in flight: an agent event of
	// another workload, a bus notification, then a second event of the
	// first key once its first is committed (its key is free again).
	f1 := insert(t, ctx, pool, "agent", "fast")
	n1 := insert(t, ctx, pool, "notification.container.create.end", "bus")
	eventually(t, 10*time.Second, "the fast events committed while the slow one is blocked", func() bool {
		return delivered(t, ctx, pool, f1, n1)
	})
	t.Logf("fast events written and committed %s after the slow delivery started", time.Since(t0))
	f2 := insert(t, ctx, pool, "agent", "fast")
	eventually(t, 10*time.Second, "the fast key's next event committed", func() bool {
		return delivered(t, ctx, pool, f2)
	})
	// A failure is recorded with its backoff and holds its key back.
	x1 := insert(t, ctx, pool, "agent", "fail")
	x2 := insert(t, ctx, pool, "agent", "fail")
	eventually(t, 10*time.Second, "the failed attempt recorded", func() bool {
		row, _ := outbox.Get(ctx, pool, x1)
		return row.Attempts == 1
	})
	row, _ := outbox.Get(ctx, pool, x1)
	if row.DeliveredAt != nil || row.NextAttemptAt == nil || !row.NextAttemptAt.Equal(clk.Now().Add(time.Minute)) {
		t.Errorf("failed event: %+v", row)
	}
	r.Wake()
	time.Sleep(100 * time.Millisecond)
	if row, _ := outbox.Get(ctx, pool, x2); row.Attempts != 0 || row.DeliveredAt != nil {
		t.Errorf("the event behind a failure was attempted: %+v", row)
	}
	clk.Add(2 * time.Minute)
	r.Wake()
	eventually(t, 10*time.Second, "the failed key after its backoff", func() bool {
		return delivered(t, ctx, pool, x1, x2)
	})

	// All of that while the slow key's first delivery never returned.
	if n := slow.returned.Load(); n != 0 {
		t.Fatalf("%d slow deliveries returned before the gate opened", n)
	}
	if delivered(t, ctx, pool, s1) || delivered(t, ctx, pool, s2) || rec.delivered(s1) {
		t.Fatal("the slow key's events are marked delivered before their delivery returned")
	}
	mu.Lock()
	for _, id := range []int64{f1, n1, f2, x1, x2} {
		if !reported[id] {
			t.Errorf("event %d committed but not reported to the Delivered hook", id)
		}
	}
	mu.Unlock()

	close(slow.open)
	slow.waitStarted(t, s2)
	eventually(t, 10*time.Second, "the slow key's events", func() bool {
		n, err := outbox.Pending(ctx, pool)
		return err == nil && n == 0
	})
	var got []int64
	for _, ev := range rec.events() {
		if ev.Key == "slow" || ev.Key == "fail" {
			got = append(got, ev.ID)
		}
	}
	want := []int64{x1, x2, s1, s2}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("slow and failed keys delivered as %v, want %v", got, want)
	}
}

// Writers keep adding events to many keys while the relay delivers them
// with random delays (a few slow ones) and some failed first attempts:
// every event arrives exactly once (one relay, no failover, so no
// redelivery), never two of one key at once, each key's in id order, and
// never more than Parallelism keys at once.
func TestRelayKeyOrderWithConcurrentWriters(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Pool(t)
	const par, keys, writers, perWriter = 6, 30, 4, 40
	fl := newFlight()
	rec := newRecorder(func(ev outbox.Event) error {
		fl.enter(ev.Key)
		defer fl.leave(ev.Key)
		d := time.Duration(rand.IntN(5000)) * time.Microsecond
		if rand.IntN(20) == 0 {
			d = time.Duration(100+rand.IntN(200)) * time.Millisecond
		}
		time.Sleep(d)
		if ev.ID%9 == 0 && ev.Attempts == 0 {
			return errors.New("transient")
		}
		return nil
	})
	startRelay(t, pool, outbox.Config{
		Deliverer: rec, Parallelism: par, BatchSize: 20, PollInterval: 100 * time.Millisecond,
		BackoffMin: 10 * time.Millisecond, BackoffMax: 20 * time.Millisecond,
	})
	var mu sync.Mutex
	var ids []int64
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				key := fmt.Sprintf("k%02d", rand.IntN(keys))
				var id int64
				err := pg.WithTx(ctx, pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
					var err error
					id, err = outbox.Insert(ctx, tx, outbox.Message{Topic: "t", Key: key, Payload: map[string]int{"w": w, "i": i}})
					return err
				})
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				ids = append(ids, id)
				mu.Unlock()
				time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "every event delivered", func() bool {
		n, err := outbox.Pending(ctx, pool)
		return err == nil && n == 0
	})
	evs := rec.events()
	if !rec.delivered(ids...) {
		t.Fatal("the outbox is empty but some events never reached the deliverer")
	}
	if len(evs) != len(ids) {
		t.Errorf("%d successful deliveries of %d events: a single relay delivered some twice", len(evs), len(ids))
	}
	checkKeyOrder(t, evs)
	peak, overlap := fl.stats()
	if len(overlap) > 0 {
		t.Errorf("keys with two deliveries at once: %v", overlap)
	}
	if peak < 2 || peak > par {
		t.Errorf("peak deliveries in flight %d, want 2..%d", peak, par)
	}
	t.Logf("%d events over %d keys, peak %d in flight", len(ids), keys, peak)
}

// leaderPID is the backend holding the relays' leader lock.
func leaderPID(t *testing.T, ctx context.Context, pool *pgxpool.Pool) int32 {
	t.Helper()
	var pid int32
	err := pool.QueryRow(ctx, `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1
	AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
	AND classid::bigint = $1 AND objid::bigint = $2`,
		int64(uint64(outbox.DefaultLockKey)>>32), int64(uint64(outbox.DefaultLockKey)&0xffffffff)).Scan(&pid)
	if err != nil {
		t.Fatalf("finding the leader's backend: %v", err)
	}
	return pid
}

// payloadN is the n a test wrote into an event's payload.
func payloadN(t *testing.T, ev outbox.Event) int {
	var p struct{ N int }
	if err := json.Unmarshal(ev.Payload, &p); err != nil {
		t.Errorf("event %d: payload %s: %v", ev.ID, ev.Payload, err)
	}
	return p.N
}

// delivery is one successful Deliver, by which relay.
type delivery struct {
	relay string
	ev    outbox.Event
}

// When the leader's session dies, its lanes in flight are cancelled and
// waited for before it stops leading, and it records nothing more; the
// next leader delivers everything in per-key order, again only what the
// old one delivered and had not recorded (the cancelled lanes' first
// events), never what it recorded.
func TestRelayLeadLostCancelsLanes(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Pool(t)
	var mu sync.Mutex
	var log []delivery
	committedByA := map[int64]bool{}
	var aInFlight, aCancelled atomic.Int32
	var aLost atomic.Bool
	var lateA []string
	slowStarted := make(chan int64, 8)

	deliverer := func(name string) outbox.Deliverer {
		return outbox.DelivererFunc(func(ctx context.Context, ev outbox.Event) error {
			if name == "a" {
				aInFlight.Add(1)
				defer aInFlight.Add(-1)
				if aLost.Load() {
					mu.Lock()
					lateA = append(lateA, fmt.Sprintf("delivery of %d", ev.ID))
					mu.Unlock()
				}
				// The slow keys' second events never return by themselves.
				if strings.HasPrefix(ev.Key, "slow") && payloadN(t, ev) == 1 {
					slowStarted <- ev.ID
					<-ctx.Done()
					aCancelled.Add(1)
					return ctx.Err()
				}
			}
			mu.Lock()
			log = append(log, delivery{name, ev})
			mu.Unlock()
			return nil
		})
	}
	write := func(key string, n int) int64 {
		var id int64
		err := pg.WithTx(ctx, pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
			var err error
			id, err = outbox.Insert(ctx, tx, outbox.Message{Topic: "agent", Key: key, Payload: map[string]int{"n": n}})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	keys := []string{"slow0", "slow1", "fast0", "fast1", "fast2"}
	var ids []int64
	firstOfSlow := map[int64]bool{}
	for n := range 3 {
		for _, k := range keys {
			id := write(k, n)
			ids = append(ids, id)
			if n == 0 && strings.HasPrefix(k, "slow") {
				firstOfSlow[id] = true
			}
		}
	}

	// a, having lost the lead, waits 2s before it campaigns again; b
	// retries every 20ms: b takes over even on a loaded machine.
	leadA := make(chan bool, 4)
	a := startRelay(t, pool, outbox.Config{
		Deliverer: deliverer("a"), Parallelism: 4, PollInterval: 100 * time.Millisecond, LeaderRetry: time.Second,
		OnLeader: func(l bool) {
			if !l {
				// Called once lead returned: every lane must be gone.
				if n := aInFlight.Load(); n != 0 {
					mu.Lock()
					lateA = append(lateA, fmt.Sprintf("%d deliveries still in flight when the lead ended", n))
					mu.Unlock()
				}
				aLost.Store(true)
			}
			leadA <- l
		},
		Delivered: func(ev outbox.Event, at time.Time) {
			mu.Lock()
			defer mu.Unlock()
			if aLost.Load() {
				lateA = append(lateA, fmt.Sprintf("recorded %d", ev.ID))
			}
			committedByA[ev.ID] = true
		},
	})
	if !<-leadA {
		t.Fatal("a did not lead")
	}
	for range 2 {
		select {
		case <-slowStarted:
		case <-time.After(10 * time.Second):
			t.Fatal("the slow keys' second events never reached a")
		}
	}
	// Everything else a can do, it has done and recorded.
	eventually(t, 10*time.Second, "a's fast keys recorded", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(committedByA) == 9
	})

	leadB := make(chan bool, 4)
	b := startRelay(t, pool, outbox.Config{
		Deliverer: deliverer("b"), Parallelism: 4, PollInterval: 100 * time.Millisecond, LeaderRetry: 20 * time.Millisecond,
		OnLeader: func(l bool) { leadB <- l },
	})
	pid := leaderPID(t, ctx, pool)
	var ok bool
	if err := pool.QueryRow(ctx, `SELECT pg_terminate_backend($1)`, pid).Scan(&ok); err != nil || !ok {
		t.Fatalf("terminating the leader's backend %d: %v %v", pid, ok, err)
	}
	select {
	case l := <-leadA:
		if l {
			t.Fatal("a led again")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a did not notice it lost the lead")
	}
	if n := aCancelled.Load(); n != 2 {
		t.Errorf("%d of a's 2 blocked deliveries were cancelled", n)
	}
	select {
	case l := <-leadB:
		if !l {
			t.Fatal("b's first change is not leading")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("b did not take over")
	}
	if a.IsLeader() || !b.IsLeader() {
		t.Fatalf("leaders: a=%v b=%v", a.IsLeader(), b.IsLeader())
	}
	// More events for every key, after the failover.
	for n := 3; n < 5; n++ {
		for _, k := range keys {
			ids = append(ids, write(k, n))
		}
	}
	eventually(t, 20*time.Second, "every event delivered", func() bool {
		n, err := outbox.Pending(ctx, pool)
		return err == nil && n == 0
	})

	mu.Lock()
	defer mu.Unlock()
	if len(lateA) > 0 {
		t.Errorf("a acted after it lost the lead: %v", lateA)
	}
	var evs []outbox.Event
	count := map[int64]int{}
	for _, d := range log {
		evs = append(evs, d.ev)
		count[d.ev.ID]++
		if d.relay == "b" && committedByA[d.ev.ID] {
			t.Errorf("b delivered event %d again, which a had recorded", d.ev.ID)
		}
	}
	checkKeyOrder(t, evs)
	var dups []int64
	for _, id := range ids {
		switch {
		case count[id] == 0:
			t.Errorf("event %d never delivered", id)
		case count[id] > 1:
			dups = append(dups, id)
			if !firstOfSlow[id] {
				t.Errorf("event %d delivered %d times; only the cancelled lanes' delivered events may be", id, count[id])
			}
		}
	}
	if len(dups) != len(firstOfSlow) {
		t.Errorf("redelivered %v, want the cancelled lanes' first events %v", dups, firstOfSlow)
	}
	for id := range firstOfSlow {
		// Recorded once, by b: a recorded nothing of its cancelled lanes.
		if row, _ := outbox.Get(ctx, pool, id); row.Attempts != 1 || row.DeliveredAt == nil {
			t.Errorf("event %d of a cancelled lane: %+v", id, row)
		}
	}
}

// relayFrames counts the goroutines running a Relay's code.
func relayFrames() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.Contains(g, "bridge/outbox.(*Relay)") {
			count++
		}
	}
	return count
}

// Stop returns only once every lane has ended: no goroutine of the relay
// is left, no delivery is in flight, and none starts or is reported later.
func TestRelayStopLeavesNothingRunning(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Pool(t)
	if n := relayFrames(); n != 0 {
		t.Fatalf("%d relay goroutines before the test", n)
	}
	var inFlight, calls, reports atomic.Int32
	blocked := make(chan struct{}, 16)
	r, err := outbox.NewRelay(pool, outbox.Config{
		Deliverer: outbox.DelivererFunc(func(ctx context.Context, ev outbox.Event) error {
			inFlight.Add(1)
			defer inFlight.Add(-1)
			calls.Add(1)
			if strings.HasPrefix(ev.Key, "slow") {
				blocked <- struct{}{}
				<-ctx.Done()
				return ctx.Err()
			}
			time.Sleep(time.Millisecond)
			return nil
		}),
		Delivered:    func(outbox.Event, time.Time) { reports.Add(1) },
		Parallelism:  4,
		PollInterval: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	insert(t, ctx, pool, "t", "slow0")
	insert(t, ctx, pool, "t", "slow1")
	for range 2 {
		select {
		case <-blocked:
		case <-time.After(10 * time.Second):
			t.Fatal("the slow deliveries never started")
		}
	}
	// Fast keys keep the other lanes busy while Stop runs.
	stopWriting := make(chan struct{})
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		for i := 0; ; i++ {
			select {
			case <-stopWriting:
				return
			default:
			}
			_ = pg.WithTx(ctx, pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
				_, err := outbox.Insert(ctx, tx, outbox.Message{Topic: "t", Key: fmt.Sprintf("fast%d", i%5), Payload: i})
				return err
			})
		}
	}()
	eventually(t, 10*time.Second, "fast deliveries reported", func() bool { return reports.Load() >= 10 })
	r.Stop()
	close(stopWriting)
	<-wrote
	if n := inFlight.Load(); n != 0 {
		t.Errorf("%d deliveries in flight after Stop returned", n)
	}
	c, rep := calls.Load(), reports.Load()
	time.Sleep(300 * time.Millisecond)
	if calls.Load() != c || reports.Load() != rep {
		t.Errorf("after Stop: deliveries %d -> %d, reports %d -> %d", c, calls.Load(), rep, reports.Load())
	}
	if n := relayFrames(); n != 0 {
		t.Errorf("%d relay goroutines left after Stop", n)
	}
}
