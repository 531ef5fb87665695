package outbox_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/unisched/unisched/bridge/outbox"
	"github.com/unisched/unisched/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// recorder is a Deliverer that remembers every delivery, in order, and can
// be told to fail some.
type recorder struct {
	mu   sync.Mutex
	got  []outbox.Event
	fail func(ev outbox.Event) error
	// seen is signalled (without blocking) after every delivery attempt.
	seen chan struct{}
}

func newRecorder(fail func(outbox.Event) error) *recorder {
	return &recorder{fail: fail, seen: make(chan struct{}, 1)}
}

func (r *recorder) Deliver(ctx context.Context, ev outbox.Event) error {
	var err error
	if r.fail != nil {
		err = r.fail(ev)
	}
	r.mu.Lock()
	if err == nil {
		r.got = append(r.got, ev)
	}
	r.mu.Unlock()
	select {
	case r.seen <- struct{}{}:
	default:
	}
	return err
}

func (r *recorder) events() []outbox.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]outbox.Event(nil), r.got...)
}

// delivered reports whether every id has been delivered at least once.
func (r *recorder) delivered(ids ...int64) bool {
	have := map[int64]bool{}
	for _, ev := range r.events() {
		have[ev.ID] = true
	}
	for _, id := range ids {
		if !have[id] {
			return false
		}
	}
	return true
}

// eventually polls cond until it holds or the timeout passes. The relay
// runs in the background; the database is the only place its progress
// shows, so tests look there rather than sleep for a guessed time.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// clock is a settable Now for the relay.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}
