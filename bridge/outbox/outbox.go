// Package outbox is the bridge's transactional outbox: every ledger change
// writes its event in the same transaction (Insert takes only a pgx.Tx, so
// the compiler enforces it), and the Relay delivers the events at least
// once to a Deliverer (the host agents, the Nova side), in id order per key.
//
// Only one replica relays at a time: the one holding a PostgreSQL advisory
// lock on its own dedicated connection. When that connection dies, the
// server drops the lock and another replica takes over within its retry
// interval. The leader wakes on a NOTIFY sent by the writing transaction
// and polls as a fallback. Consumers dedupe by event id: a delivery whose
// acknowledgement was lost is made again.
package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// Channel is the NOTIFY channel the writers signal and the relay listens on.
const Channel = "bridge_outbox"

// Message is an event to write.
type Message struct {
	// Topic says what happened ("workload.claimed", ...); the Deliverer
	// routes on it.
	Topic string
	// Key orders the events: those of one key (a workload id) are
	// delivered in the order they were written.
	Key string
	// Payload is marshalled to JSON; json.RawMessage and []byte are taken
	// as they are and must be valid JSON.
	Payload any
}

// Event is a written message as the relay hands it to a Deliverer.
type Event struct {
	ID      int64
	Topic   string
	Key     string
	Payload json.RawMessage
	// CreatedAt is when the event was inserted (the database's clock at
	// the INSERT): the start of its notify lag.
	CreatedAt time.Time
	// Attempts is how many deliveries failed before this one.
	Attempts int
}

// Insert writes one event in the caller's transaction; see InsertMany.
func Insert(ctx context.Context, tx pgx.Tx, m Message) (int64, error) {
	ids, err := InsertMany(ctx, tx, m)
	if err != nil {
		return 0, err
	}
	return ids[0], nil
}

// InsertMany writes events in the caller's transaction and returns their
// ids, in order. The events become visible to the relay when the
// transaction commits, and the NOTIFY that wakes the relay is sent then too
// (PostgreSQL delivers a transaction's notifications at commit, once per
// channel and payload).
//
// To keep the promise of per-key order, it first takes a transaction-scoped
// advisory lock per key (in key order, so two writers cannot deadlock on
// them): the ids of one key are then handed out in commit order, and the
// relay never sees a later event of a key while an earlier one is still
// uncommitted. Writers of different keys do not wait for each other.
func InsertMany(ctx context.Context, tx pgx.Tx, ms ...Message) ([]int64, error) {
	if len(ms) == 0 {
		return nil, nil
	}
	payloads := make([][]byte, len(ms))
	keys := make([]string, 0, len(ms))
	for i, m := range ms {
		if m.Topic == "" || m.Key == "" {
			return nil, fmt.Errorf("outbox: message %d has an empty topic or key", i)
		}
		p, err := marshalPayload(m.Payload)
		if err != nil {
			return nil, fmt.Errorf("outbox: message %d (%s %s): %w", i, m.Topic, m.Key, err)
		}
		payloads[i] = p
		keys = append(keys, m.Key)
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)

	b := &pgx.Batch{}
	for _, k := range keys {
		b.Queue(lockKey, keyLockClass, k)
	}
	for i, m := range ms {
		b.Queue(insertEvent, m.Topic, m.Key, payloads[i])
	}
	b.Queue(notify, Channel)
	res := tx.SendBatch(ctx, b)
	defer res.Close()
	for range keys {
		if _, err := res.Exec(); err != nil {
			return nil, fmt.Errorf("outbox: locking event keys: %w", err)
		}
	}
	ids := make([]int64, len(ms))
	for i := range ms {
		if err := res.QueryRow().Scan(&ids[i]); err != nil {
			return nil, fmt.Errorf("outbox: inserting event %s %s: %w", ms[i].Topic, ms[i].Key, err)
		}
	}
	if _, err := res.Exec(); err != nil {
		return nil, fmt.Errorf("outbox: notifying: %w", err)
	}
	if err := res.Close(); err != nil {
		return nil, fmt.Errorf("outbox: inserting events: %w", err)
	}
	return ids, nil
}

func marshalPayload(p any) ([]byte, error) {
	var raw []byte
	switch v := p.(type) {
	case json.RawMessage:
		raw = v
	case []byte:
		raw = v
	default:
		return json.Marshal(p)
	}
	if !json.Valid(raw) {
		return nil, errors.New("payload is not valid JSON")
	}
	return raw, nil
}

// Deliverer hands an event to its consumer. It returns nil once the
// consumer has it; an error makes the relay retry the event later (with
// backoff) and hold back the later events of its key meanwhile. Wrap an
// error in Discard when retrying can never help.
type Deliverer interface {
	Deliver(ctx context.Context, ev Event) error
}

// DelivererFunc adapts a function to Deliverer.
type DelivererFunc func(ctx context.Context, ev Event) error

// Deliver calls f.
func (f DelivererFunc) Deliver(ctx context.Context, ev Event) error { return f(ctx, ev) }

// Discard marks a delivery error as permanent: the relay records it on the
// event and moves on, so that one poisoned event does not block its key
// forever.
func Discard(err error) error { return &discardError{err: err} }

type discardError struct{ err error }

func (e *discardError) Error() string { return "discarded: " + e.err.Error() }
func (e *discardError) Unwrap() error { return e.err }

func isDiscard(err error) bool {
	var d *discardError
	return errors.As(err, &d)
}
