package outbox_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/unisched/unisched/bridge/outbox"
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
