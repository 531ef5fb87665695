package outbox_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/unisched/unisched/bridge/outbox"
	"github.com/unisched/unisched/internal/pgtest"
)

// flight tracks deliveries in progress: overall, and per key, so a test
// can tell whether two events of one key were ever delivered at once.
type flight struct {
	mu      sync.Mutex
	now     int
	max     int
	perKey  map[string]int
	overlap []string // keys seen with two deliveries at once
}

func newFlight() *flight { return &flight{perKey: map[string]int{}} }

// enter returns how many deliveries are in flight with this one.
func (f *flight) enter(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now++
	f.max = max(f.max, f.now)
	f.perKey[key]++
	if f.perKey[key] > 1 {
		f.overlap = append(f.overlap, key)
	}
	return f.now
}

func (f *flight) leave(key string) {
	f.mu.Lock()
	f.now--
	f.perKey[key]--
	f.mu.Unlock()
}

func (f *flight) stats() (peak int, overlap []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.max, append([]string(nil), f.overlap...)
}

// checkKeyOrder fails the test unless each key's first deliveries (in the
// order the deliverer saw them) come in id order.
func checkKeyOrder(t *testing.T, evs []outbox.Event) {
	t.Helper()
	seen := map[int64]bool{}
	last := map[string]int64{}
	for _, ev := range evs {
		if seen[ev.ID] {
			continue
		}
		seen[ev.ID] = true
		if ev.ID < last[ev.Key] {
			t.Errorf("key %s: event %d first delivered after %d", ev.Key, ev.ID, last[ev.Key])
		}
		last[ev.Key] = ev.ID
	}
}

func insertMany(t *testing.T, ctx context.Context, pool *pgxpool.Pool, keys, perKey int) []int64 {
	t.Helper()
	var ids []int64
	// Interleaved, so that every batch holds many keys.
	for range perKey {
		for k := range keys {
			ids = append(ids, insert(t, ctx, pool, "t", fmt.Sprintf("k%02d", k)))
		}
	}
	return ids
}

// Many keys under Parallelism 8, with random delivery times and some
// failed first attempts: every event arrives, no key ever has two events
// in flight, each key's events first arrive in id order, and more than one
// key was in flight at a time.
func TestRelayParallelKeyOrder(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Pool(t)
	fl := newFlight()
	rec := newRecorder(func(ev outbox.Event) error {
		fl.enter(ev.Key)
		defer fl.leave(ev.Key)
		time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
		if ev.ID%11 == 0 && ev.Attempts == 0 {
			return errors.New("transient")
		}
		return nil
	})
	ids := insertMany(t, ctx, pool, 24, 10)
	startRelay(t, pool, outbox.Config{
		Deliverer: rec, Parallelism: 8, BatchSize: 50, PollInterval: 50 * time.Millisecond,
		BackoffMin: 10 * time.Millisecond, BackoffMax: 20 * time.Millisecond,
	})
	eventually(t, 60*time.Second, "every event delivered", func() bool {
		n, err := outbox.Pending(ctx, pool)
		return err == nil && n == 0
	})
	if !rec.delivered(ids...) {
		t.Fatal("the outbox is empty but some events never reached the deliverer")
	}
	checkKeyOrder(t, rec.events())
	peak, overlap := fl.stats()
	if len(overlap) > 0 {
		t.Errorf("keys with two deliveries at once: %v", overlap)
	}
	if peak < 2 || peak > 8 {
		t.Errorf("peak deliveries in flight %d, want 2..8", peak)
	}
	t.Logf("%d events over 24 keys, peak %d in flight", len(ids), peak)
}

// Distinct keys are delivered at the same time: each delivery waits until
// as many keys as the relay's Parallelism are in flight together, which
// only a concurrent relay reaches (a sequential one would time out every
// delivery), and no more than Parallelism ever are.
func TestRelayParallelOverlap(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Pool(t)
	const par = 4
	fl := newFlight()
	all := make(chan struct{})
	var once sync.Once
	var timedOut atomic.Int32
	rec := newRecorder(func(ev outbox.Event) error {
		if fl.enter(ev.Key) >= par {
			once.Do(func() { close(all) })
		}
		defer fl.leave(ev.Key)
		select {
		case <-all:
			return nil
		case <-time.After(5 * time.Second):
			timedOut.Add(1)
			return errors.New("alone in flight")
		}
	})
	ids := insertMany(t, ctx, pool, 2*par, 1)
	startRelay(t, pool, outbox.Config{Deliverer: rec, Parallelism: par, PollInterval: 50 * time.Millisecond})
	eventually(t, 30*time.Second, "every event delivered", func() bool {
		n, err := outbox.Pending(ctx, pool)
		return err == nil && n == 0
	})
	if n := timedOut.Load(); n > 0 {
		t.Errorf("%d deliveries never saw %d keys in flight together", n, par)
	}
	if !rec.delivered(ids...) {
		t.Error("some events never reached the deliverer")
	}
	if peak, _ := fl.stats(); peak != par {
		t.Errorf("peak deliveries in flight %d, want exactly Parallelism %d", peak, par)
	}
}

// Under Parallelism 8 a failed event holds back the later events of its
// key only; a panicking deliverer is a failure too; a discarded event is
// recorded and its key goes on. Once the backoff ends, the held key is
// delivered in order.
func TestRelayParallelFailureBlocksItsKey(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Pool(t)
	clk := &clock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	var healed atomic.Bool
	var failID, panicID, discardID atomic.Int64
	rec := newRecorder(func(ev outbox.Event) error {
		switch {
		case ev.ID == failID.Load() && !healed.Load():
			return errors.New("agent unreachable")
		case ev.ID == panicID.Load() && !healed.Load():
			panic("deliverer bug")
		case ev.ID == discardID.Load():
			return outbox.Discard(errors.New("cannot parse"))
		}
		return nil
	})
	ids := map[string][]int64{}
	for range 3 {
		for _, k := range []string{"fail", "panic", "discard", "ok"} {
			ids[k] = append(ids[k], insert(t, ctx, pool, "t", k))
		}
	}
	failID.Store(ids["fail"][0])
	panicID.Store(ids["panic"][1])
	discardID.Store(ids["discard"][0])

	r := startRelay(t, pool, outbox.Config{
		Deliverer: rec, Now: clk.Now, Parallelism: 8, PollInterval: 50 * time.Millisecond,
		BackoffMin: time.Minute, BackoffMax: time.Hour,
	})
	eventually(t, 10*time.Second, "the healthy keys delivered and the failures recorded", func() bool {
		for _, id := range append(append([]int64{}, ids["ok"]...), ids["discard"]...) {
			if row, _ := outbox.Get(ctx, pool, id); row.DeliveredAt == nil {
				return false
			}
		}
		f, _ := outbox.Get(ctx, pool, ids["fail"][0])
		p, _ := outbox.Get(ctx, pool, ids["panic"][1])
		return f.Attempts == 1 && p.Attempts == 1
	})
	row, _ := outbox.Get(ctx, pool, ids["discard"][0])
	if !strings.Contains(row.LastError, "discarded: cannot parse") || row.Attempts != 1 {
		t.Errorf("discarded event: %+v", row)
	}
	row, _ = outbox.Get(ctx, pool, ids["fail"][0])
	if row.DeliveredAt != nil || row.LastError != "agent unreachable" || row.NextAttemptAt == nil ||
		!row.NextAttemptAt.Equal(clk.Now().Add(time.Minute)) {
		t.Errorf("failed event: %+v", row)
	}
	row, _ = outbox.Get(ctx, pool, ids["panic"][1])
	if row.DeliveredAt != nil || !strings.Contains(row.LastError, "deliverer panicked: deliverer bug") {
		t.Errorf("panicked event: %+v", row)
	}
	if row, _ := outbox.Get(ctx, pool, ids["panic"][0]); row.DeliveredAt == nil {
		t.Errorf("the panicking key's event before the panic: %+v", row)
	}
	// Nothing after a failure went out, and it stays held while more
	// passes run.
	r.Wake()
	time.Sleep(200 * time.Millisecond)
	held := append(append([]int64{}, ids["fail"]...), ids["panic"][1:]...)
	for _, id := range held {
		if rec.delivered(id) {
			t.Errorf("event %d delivered while its key is held", id)
		}
		if row, _ := outbox.Get(ctx, pool, id); row.DeliveredAt != nil {
			t.Errorf("held event marked delivered: %+v", row)
		}
	}
	for _, id := range append(ids["fail"][1:], ids["panic"][2:]...) {
		if row, _ := outbox.Get(ctx, pool, id); row.Attempts != 0 {
			t.Errorf("event behind a failure was attempted: %+v", row)
		}
	}

	healed.Store(true)
	clk.Add(2 * time.Minute)
	r.Wake()
	eventually(t, 10*time.Second, "the held keys after the backoff", func() bool {
		n, err := outbox.Pending(ctx, pool)
		return err == nil && n == 0
	})
	for _, k := range []string{"fail", "panic"} {
		var got []int64
		for _, ev := range rec.events() {
			if ev.Key == k {
				got = append(got, ev.ID)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(ids[k]) {
			t.Errorf("key %s delivered as %v, want %v", k, got, ids[k])
		}
	}
}

// Parallelism 1 delivers one event at a time, in id order across keys as
// before, and a failure still holds back only its key.
func TestRelayParallelismOne(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Pool(t)
	clk := &clock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	fl := newFlight()
	var failID atomic.Int64
	rec := newRecorder(func(ev outbox.Event) error {
		fl.enter(ev.Key)
		defer fl.leave(ev.Key)
		time.Sleep(time.Millisecond)
		if ev.ID == failID.Load() && ev.Attempts == 0 {
			return errors.New("agent unreachable")
		}
		return nil
	})
	ids := insertMany(t, ctx, pool, 5, 4)
	failID.Store(ids[1]) // k01's first event
	r := startRelay(t, pool, outbox.Config{
		Deliverer: rec, Now: clk.Now, Parallelism: 1, PollInterval: 50 * time.Millisecond,
		BackoffMin: time.Minute, BackoffMax: time.Hour,
	})
	var want []int64
	for i, id := range ids {
		if i%5 != 1 {
			want = append(want, id)
		}
	}
	eventually(t, 10*time.Second, "every key but k01 delivered", func() bool { return rec.delivered(want...) })
	var got []int64
	for _, ev := range rec.events() {
		got = append(got, ev.ID)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("delivered %v, want %v", got, want)
	}
	clk.Add(2 * time.Minute)
	r.Wake()
	eventually(t, 10*time.Second, "k01 after its backoff", func() bool {
		n, err := outbox.Pending(ctx, pool)
		return err == nil && n == 0
	})
	checkKeyOrder(t, rec.events())
	if peak, _ := fl.stats(); peak != 1 {
		t.Errorf("peak deliveries in flight %d with Parallelism 1", peak)
	}
}

// Stopping the relay mid-batch cancels the deliveries in flight and
// records nothing: the next leader delivers the batch again.
func TestRelayParallelStopMidBatch(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Pool(t)
	var started atomic.Int32
	// Written before the relay starts, so that one batch holds all three.
	ids := insertMany(t, ctx, pool, 3, 1)
	r := startRelay(t, pool, outbox.Config{
		Deliverer: outbox.DelivererFunc(func(ctx context.Context, ev outbox.Event) error {
			started.Add(1)
			<-ctx.Done()
			return ctx.Err()
		}),
		PollInterval: 50 * time.Millisecond,
	})
	eventually(t, 10*time.Second, "three deliveries in flight", func() bool { return started.Load() == 3 })
	stopped := make(chan struct{})
	go func() { r.Stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("Stop did not return while deliveries were in flight")
	}
	for _, id := range ids {
		if row, _ := outbox.Get(ctx, pool, id); row.Attempts != 0 || row.DeliveredAt != nil || row.LastError != "" {
			t.Errorf("event recorded by a stopped relay: %+v", row)
		}
	}
}
