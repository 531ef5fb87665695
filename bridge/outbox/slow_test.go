package outbox_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/unisched/unisched/bridge/outbox"
	"github.com/unisched/unisched/internal/pgtest"
)

// syncBuffer is a log sink the relay's lanes may write to at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) lines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, l := range bytes.Split(bytes.TrimSpace(b.buf.Bytes()), []byte("\n")) {
		var m map[string]any
		if len(l) == 0 {
			continue
		}
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// A delivery slower than SlowDelivery is logged with where its lag went,
// the parts adding up to the lag.
func TestRelayLogsSlowDeliveries(t *testing.T) {
	pool := pgtest.Pool(t)
	ctx := context.Background()
	var logs syncBuffer
	const slow = 150 * time.Millisecond
	rec := newRecorder(func(ev outbox.Event) error {
		if ev.Key == "slow" {
			time.Sleep(slow)
		}
		return nil
	})
	startRelay(t, pool, outbox.Config{Deliverer: rec, SlowDelivery: 100 * time.Millisecond,
		Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	slowID := insert(t, ctx, pool, "t", "slow")
	fastID := insert(t, ctx, pool, "t", "fast")
	eventually(t, 10*time.Second, "both delivered", func() bool { return rec.delivered(slowID, fastID) })
	var got []map[string]any
	eventually(t, 5*time.Second, "the slow delivery logged", func() bool {
		got = logs.lines(t, "outbox relay: slow delivery")
		return len(got) > 0
	})
	// The fast one may be logged too on a loaded machine; the slow one
	// must be, with its parts.
	var line map[string]any
	for _, l := range got {
		if l["id"] == float64(slowID) {
			line = l
		}
	}
	if line == nil {
		t.Fatalf("no slow-delivery line for event %d: %v", slowID, got)
	}
	num := func(k string) float64 {
		v, ok := line[k].(float64)
		if !ok {
			t.Fatalf("%s: %v in %v", k, line[k], line)
		}
		return v
	}
	if d := num("deliver_ms"); d < float64(slow.Milliseconds()) {
		t.Errorf("deliver_ms %v, the deliverer took %s", d, slow)
	}
	sum := num("to_claim_ms") + num("claim_ms") + num("in_lane_ms") + num("deliver_ms")
	if lag := num("lag_ms"); lag < sum-1 || lag > sum+1 {
		t.Errorf("lag_ms %v is not the sum of its parts %v: %v", lag, sum, line)
	}
	if line["key"] != "slow" || line["topic"] != "t" || num("attempt") != 1 || num("record_ms") < 0 {
		t.Errorf("line %v", line)
	}
}
