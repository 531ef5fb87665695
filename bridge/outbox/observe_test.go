package outbox_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/unisched/unisched/bridge/outbox"
	"github.com/unisched/unisched/internal/pg"
	"github.com/unisched/unisched/internal/pgtest"
)

// The Delivered hook sees every delivered event once its outcome is
// committed, with a delivery time not before the event was written; a
// failed delivery is not reported until its retry succeeds, a discarded
// one never.
func TestRelayDeliveredHook(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Pool(t)
	var mu sync.Mutex
	seen := map[int64]time.Duration{}
	failed := map[int64]bool{}
	rec := newRecorder(func(ev outbox.Event) error {
		mu.Lock()
		defer mu.Unlock()
		if ev.Topic == "poison" {
			return outbox.Discard(errors.New("never"))
		}
		if ev.Key == "k2" && !failed[ev.ID] {
			failed[ev.ID] = true
			return errors.New("once")
		}
		return nil
	})
	e1 := insert(t, ctx, pool, "notification.container.create.end", "k1")
	e2 := insert(t, ctx, pool, "agent", "k2")
	e3 := insert(t, ctx, pool, "poison", "k3")
	startRelay(t, pool, outbox.Config{
		Deliverer: rec, PollInterval: 50 * time.Millisecond, LeaderRetry: 50 * time.Millisecond,
		BackoffMin: 100 * time.Millisecond, BackoffMax: time.Second,
		Delivered: func(ev outbox.Event, at time.Time) {
			mu.Lock()
			defer mu.Unlock()
			if _, dup := seen[ev.ID]; dup {
				t.Errorf("event %d reported twice", ev.ID)
			}
			seen[ev.ID] = at.Sub(ev.CreatedAt)
		},
	})
	eventually(t, 20*time.Second, "every event settled", func() bool {
		n, err := outbox.Pending(ctx, pool)
		mu.Lock()
		defer mu.Unlock()
		return err == nil && n == 0 && len(seen) == 2
	})
	mu.Lock()
	defer mu.Unlock()
	for _, id := range []int64{e1, e2} {
		lag, ok := seen[id]
		if !ok || lag < 0 || lag > 20*time.Second {
			t.Errorf("event %d: lag %s (reported %v)", id, lag, ok)
		}
	}
	if _, ok := seen[e3]; ok {
		t.Error("a discarded event was reported delivered")
	}
}

// The notify lag starts at the event's INSERT, not at the start of its
// transaction: a writer that spent 1.5 s before writing its event (as a
// Nova claim waiting for a provider's row lock behind another claim does)
// shows a lag of the relay's own making only. And each event's
// delivered_at is when its own delivery returned, so that delivered_at -
// created_at in the table is the lag the hook observed, even for an event
// whose batch had a slow delivery on another key.
func TestNotifyLagFromInsert(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Pool(t)
	// before: the writer's time before its insert; slow: one delivery's.
	const before, slow = 1500 * time.Millisecond, 300 * time.Millisecond
	rec := newRecorder(func(ev outbox.Event) error {
		if ev.Key == "slow" {
			time.Sleep(slow)
		}
		return nil
	})
	var mu sync.Mutex
	lags := map[int64]time.Duration{}
	leading := make(chan struct{})
	var once sync.Once
	startRelay(t, pool, outbox.Config{
		Deliverer: rec, PollInterval: 5 * time.Second, LeaderRetry: 50 * time.Millisecond,
		OnLeader: func(l bool) {
			if l {
				once.Do(func() { close(leading) })
			}
		},
		Delivered: func(ev outbox.Event, at time.Time) {
			mu.Lock()
			defer mu.Unlock()
			lags[ev.ID] = at.Sub(ev.CreatedAt)
		},
	})
	select {
	case <-leading:
	case <-time.After(10 * time.Second):
		t.Fatal("the relay did not lead")
	}
	// The relay waits for a NOTIFY (its poll is 5 s away): the events of
	// one transaction reach it at commit, in one batch.
	var ids []int64
	err := pg.WithTx(ctx, pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_sleep($1)`, before.Seconds()); err != nil {
			return err
		}
		var err error
		ids, err = outbox.InsertMany(ctx, tx,
			outbox.Message{Topic: "agent", Key: "slow", Payload: map[string]int{"n": 1}},
			outbox.Message{Topic: "agent", Key: "fast", Payload: map[string]int{"n": 2}})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "both events observed", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(lags) == 2
	})
	mu.Lock()
	defer mu.Unlock()
	slowLag, fastLag := lags[ids[0]], lags[ids[1]]
	t.Logf("lags: slow %s, fast %s", slowLag, fastLag)
	// Notified at commit, the fast event is out in well under the time its
	// transaction spent before the insert (the bound leaves a loaded
	// machine room: the relay's own part is milliseconds when quiet).
	if fastLag < 0 || fastLag >= before {
		t.Errorf("fast event: lag %s, want under %s (measured from its insert, not its transaction's start)", fastLag, before)
	}
	if slowLag < slow {
		t.Errorf("slow event: lag %s, want at least its delivery's %s", slowLag, slow)
	}
	for i, id := range ids {
		row, err := outbox.Get(ctx, pool, id)
		if err != nil {
			t.Fatal(err)
		}
		if row.DeliveredAt == nil {
			t.Fatalf("event %d: not marked delivered", id)
		}
		stored := row.DeliveredAt.Sub(row.CreatedAt)
		if d := stored - lags[id]; d < -time.Millisecond || d > time.Millisecond {
			t.Errorf("event %d (%d): delivered_at - created_at = %s in the table, the hook observed %s", id, i, stored, lags[id])
		}
	}
}
