package outbox_test

import (
	"context"
	"errors"
	"fmt"
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

func insert(t *testing.T, ctx context.Context, pool *pgxpool.Pool, topic, key string) int64 {
	t.Helper()
	var id int64
	err := pg.WithTx(ctx, pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		var err error
		id, err = outbox.Insert(ctx, tx, outbox.Message{Topic: topic, Key: key, Payload: map[string]string{"key": key}})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func startRelay(t *testing.T, pool *pgxpool.Pool, cfg outbox.Config) *outbox.Relay {
	t.Helper()
	r, err := outbox.NewRelay(pool, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	return r
}

// One relay with a frozen clock: a failed event waits for its backoff and
// holds back the later events of its key, other keys go on; a discarded
// event is recorded and passed; old delivered events are trimmed.
func TestRelayRetryBackoffDiscardTrim(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Pool(t)
	clk := &clock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	var failedOnce atomic.Bool
	var e1 int64
	rec := newRecorder(func(ev outbox.Event) error {
		if ev.Topic == "poison" {
			return outbox.Discard(errors.New("cannot parse"))
		}
		if ev.ID == atomic.LoadInt64(&e1) && failedOnce.CompareAndSwap(false, true) {
			return errors.New("agent unreachable")
		}
		return nil
	})
	atomic.StoreInt64(&e1, insert(t, ctx, pool, "t", "k1"))
	e2 := insert(t, ctx, pool, "t", "k1")
	e3 := insert(t, ctx, pool, "t", "k2")
	e4 := insert(t, ctx, pool, "poison", "k3")

	r := startRelay(t, pool, outbox.Config{
		Deliverer: rec, Now: clk.Now, PollInterval: 50 * time.Millisecond, LeaderRetry: 50 * time.Millisecond,
		BackoffMin: time.Minute, BackoffMax: time.Hour, Retention: time.Hour, TrimInterval: time.Minute,
	})
	// The deliverer sees an event before its transaction commits: wait for
	// the database to say it.
	eventually(t, 10*time.Second, "k2's event delivered and k1's first attempt recorded", func() bool {
		row1, _ := outbox.Get(ctx, pool, e1)
		row3, _ := outbox.Get(ctx, pool, e3)
		return row3.DeliveredAt != nil && row1.Attempts == 1
	})
	if !r.IsLeader() {
		t.Error("the only relay does not lead")
	}
	row1, _ := outbox.Get(ctx, pool, e1)
	if row1.DeliveredAt != nil || row1.Attempts != 1 || row1.LastError != "agent unreachable" || row1.NextAttemptAt == nil ||
		!row1.NextAttemptAt.Equal(clk.Now().Add(time.Minute)) {
		t.Errorf("failed event: %+v", row1)
	}
	eventually(t, 10*time.Second, "the poison event discarded", func() bool {
		row4, _ := outbox.Get(ctx, pool, e4)
		return row4.DeliveredAt != nil
	})
	row4, _ := outbox.Get(ctx, pool, e4)
	if !strings.Contains(row4.LastError, "discarded: cannot parse") || row4.Attempts != 1 {
		t.Errorf("discarded event: %+v", row4)
	}

	// A later event of another key gets through while k1 stays held.
	e5 := insert(t, ctx, pool, "t", "k4")
	eventually(t, 10*time.Second, "k4's event", func() bool {
		row5, _ := outbox.Get(ctx, pool, e5)
		return row5.DeliveredAt != nil
	})
	if rec.delivered(e1) || rec.delivered(e2) {
		t.Fatal("k1 went on before its backoff ended")
	}
	row2, _ := outbox.Get(ctx, pool, e2)
	if row2.Attempts != 0 || row2.DeliveredAt != nil {
		t.Errorf("held event: %+v", row2)
	}

	clk.Add(2 * time.Minute)
	r.Wake()
	eventually(t, 10*time.Second, "k1's events after the backoff", func() bool {
		n, err := outbox.Pending(ctx, pool)
		return err == nil && n == 0
	})
	var k1 []int64
	for _, ev := range rec.events() {
		if ev.Key == "k1" {
			k1 = append(k1, ev.ID)
		}
	}
	if len(k1) != 2 || k1[0] != e1 || k1[1] != e2 {
		t.Errorf("k1 delivered as %v, want [%d %d]", k1, e1, e2)
	}
	row1, _ = outbox.Get(ctx, pool, e1)
	if row1.Attempts != 2 || row1.DeliveredAt == nil || !row1.DeliveredAt.Equal(clk.Now()) || row1.NextAttemptAt != nil {
		t.Errorf("retried event: %+v", row1)
	}

	clk.Add(2 * time.Hour)
	r.Wake()
	eventually(t, 10*time.Second, "delivered events trimmed", func() bool {
		var n int
		_ = pool.QueryRow(ctx, `SELECT count(*) FROM bridge_outbox`).Scan(&n)
		return n == 0
	})
}

// Two relays on one database: one leads; killing its connection moves the
// lead to the other within the retry interval; under concurrent writers no
// event is lost and each key's events first arrive in id order.
func TestRelayFailover(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Pool(t)
	rec := newRecorder(func(ev outbox.Event) error {
		// Some first attempts fail, so retries interleave with new events.
		if ev.ID%13 == 0 && ev.Attempts == 0 {
			return errors.New("transient")
		}
		return nil
	})
	type change struct {
		relay  string
		leader bool
		at     time.Time
	}
	changes := make(chan change, 16)
	const retry = 100 * time.Millisecond
	cfg := func(name string) outbox.Config {
		return outbox.Config{
			Deliverer: rec, PollInterval: 200 * time.Millisecond, LeaderRetry: retry,
			BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond, BatchSize: 20,
			OnLeader: func(l bool) { changes <- change{name, l, time.Now()} },
		}
	}
	relays := map[string]*outbox.Relay{"a": startRelay(t, pool, cfg("a")), "b": startRelay(t, pool, cfg("b"))}

	var first change
	select {
	case first = <-changes:
	case <-time.After(10 * time.Second):
		t.Fatal("no relay took the lead")
	}
	if !first.leader {
		t.Fatalf("first change %+v", first)
	}
	other := map[string]string{"a": "b", "b": "a"}[first.relay]
	if !relays[first.relay].IsLeader() || relays[other].IsLeader() {
		t.Fatalf("leaders: a=%v b=%v", relays["a"].IsLeader(), relays["b"].IsLeader())
	}

	const writers, perWriter, keys = 4, 60, 6
	var mu sync.Mutex
	var inserted []int64
	keyOf := map[int64]string{}
	halfway := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				key := fmt.Sprintf("k%d", (w+i)%keys)
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
				inserted = append(inserted, id)
				keyOf[id] = key
				if len(inserted) == writers*perWriter/2 {
					once.Do(func() { close(halfway) })
				}
				mu.Unlock()
			}
		}()
	}

	<-halfway
	var pid int32
	err := pool.QueryRow(ctx, `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1
	AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
	AND classid::bigint = $1 AND objid::bigint = $2`,
		int64(uint64(outbox.DefaultLockKey)>>32), int64(uint64(outbox.DefaultLockKey)&0xffffffff)).Scan(&pid)
	if err != nil {
		t.Fatalf("finding the leader's backend: %v", err)
	}
	killed := time.Now()
	var ok bool
	if err := pool.QueryRow(ctx, `SELECT pg_terminate_backend($1)`, pid).Scan(&ok); err != nil || !ok {
		t.Fatalf("terminating the leader's backend %d: %v %v", pid, ok, err)
	}
	var took time.Duration
	deadline := time.After(10 * time.Second)
	for took == 0 {
		select {
		case c := <-changes:
			if c.relay == other && c.leader {
				took = c.at.Sub(killed)
			}
		case <-deadline:
			t.Fatal("no relay took over within 10s of the leader's connection dying")
		}
	}
	t.Logf("leadership moved from %s to %s %s after its connection was killed (retry interval %s)", first.relay, other, took, retry)
	if took > 5*retry {
		t.Errorf("takeover took %s, more than 5 retry intervals", took)
	}
	if relays[first.relay].IsLeader() {
		t.Error("the old leader still says it leads")
	}

	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "every event delivered", func() bool {
		n, err := outbox.Pending(ctx, pool)
		return err == nil && n == 0
	})
	if !rec.delivered(inserted...) {
		t.Fatal("the outbox is empty but some events never reached the deliverer")
	}
	// Per key, first deliveries come in id order: a consumer that dedupes
	// by id sees each key's events in the order they were written.
	seen := map[int64]bool{}
	last := map[string]int64{}
	dups := 0
	for _, ev := range rec.events() {
		if seen[ev.ID] {
			dups++
			continue
		}
		seen[ev.ID] = true
		if ev.Key != keyOf[ev.ID] {
			t.Fatalf("event %d delivered with key %s, written with %s", ev.ID, ev.Key, keyOf[ev.ID])
		}
		if ev.ID < last[ev.Key] {
			t.Errorf("key %s: event %d first delivered after %d", ev.Key, ev.ID, last[ev.Key])
		}
		last[ev.Key] = ev.ID
	}
	if len(seen) != len(inserted) {
		t.Errorf("%d distinct events delivered, %d written", len(seen), len(inserted))
	}
	t.Logf("%d events, %d redelivered", len(inserted), dups)
}

func TestRelayConfig(t *testing.T) {
	pool := pgtest.Pool(t)
	if _, err := outbox.NewRelay(pool, outbox.Config{}); err == nil {
		t.Error("a relay without a Deliverer")
	}
	if _, err := outbox.NewRelay(nil, outbox.Config{Deliverer: newRecorder(nil)}); err == nil {
		t.Error("a relay without a pool")
	}
	if _, err := outbox.NewRelay(pool, outbox.Config{Deliverer: newRecorder(nil), BackoffMin: time.Hour, BackoffMax: time.Minute}); err == nil {
		t.Error("backoff min above max")
	}
	r, err := outbox.NewRelay(pool, outbox.Config{Deliverer: newRecorder(nil)})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err == nil {
		t.Error("started twice")
	}
	r.Stop()
	r.Stop()
}
