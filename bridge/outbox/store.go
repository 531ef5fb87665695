package outbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/unisched/unisched/internal/pg"
)

// keyLockClass is the first half of the two-int advisory lock a writer
// takes per key (the second is hashtext(key)). Two-int locks never collide
// with the one-bigint leader lock, whatever the numbers.
const keyLockClass = 0x6f757462 // "outb"

// DefaultLockKey is the advisory lock (one-bigint form) the relays of one
// database compete for.
const DefaultLockKey int64 = 0x756e6973_72656c61 // "unisrela"

// Every statement of the outbox.
const (
	lockKey = `SELECT pg_advisory_xact_lock($1, hashtext($2))`

	// created_at is the clock at the INSERT, not the column's default
	// now() (the transaction's start): the notify lag is measured from
	// it, and a claim that waited for a provider's row lock or did its
	// ledger work before writing its event is not lag of the outbox. What
	// a transaction does after its insert still counts (the VM claim's
	// hook writes its event last, so there it is the commit alone).
	insertEvent = `INSERT INTO bridge_outbox (topic, key, payload, created_at) VALUES ($1, $2, $3, clock_timestamp()) RETURNING id`

	notify = `SELECT pg_notify($1, '')`

	// The lanes to start: the runnable events of at most $4 keys, in id
	// order, at most $2 events in all. A key is runnable when it is not in
	// flight ($3) and its oldest undelivered event is due; its runnable
	// events are that one and the key's following ones: an event whose key
	// has an earlier event in backoff is not due, since order per key
	// outranks progress. One statement, one snapshot: every key it returns
	// comes with a prefix of its undelivered events (the writers' per-key
	// lock hands a key's ids out in commit order, and the LIMIT cuts the
	// id-ordered list, never a key's middle), so no second look at the
	// keys' heads is needed. The keys chosen are those whose heads come
	// first. No row lock: the leader alone claims, on its session; see
	// Relay.lead.
	claimEvents = `WITH runnable AS (
	SELECT o.id, o.key FROM bridge_outbox o
	WHERE o.delivered_at IS NULL
		AND (o.next_attempt_at IS NULL OR o.next_attempt_at <= $1)
		AND o.key <> ALL ($3::text[])
		AND NOT EXISTS (SELECT 1 FROM bridge_outbox p
			WHERE p.key = o.key AND p.delivered_at IS NULL AND p.id < o.id AND p.next_attempt_at > $1)
	ORDER BY o.id
	LIMIT $2
), lanes AS (
	SELECT key FROM runnable GROUP BY key ORDER BY min(id) LIMIT $4
)
SELECT o.id, o.topic, o.key, o.payload, o.created_at, o.attempts
FROM bridge_outbox o JOIN runnable r ON r.id = o.id
WHERE r.key IN (SELECT key FROM lanes)
ORDER BY o.id`

	// Each event's own delivery time (when its Deliver returned), so that
	// delivered_at - created_at is the lag the relay observed. Every mark
	// leaves an event already settled alone: an outcome recorded by a
	// relay that lost the lead meanwhile (see Relay.lead) never replaces
	// the next leader's, and the first delivery's time is the one kept.
	// RETURNING says which events this relay settled, so that the
	// Delivered hook counts each event once.
	markDelivered = `UPDATE bridge_outbox o SET delivered_at = d.at, attempts = o.attempts + 1, next_attempt_at = NULL
FROM unnest($1::bigint[], $2::timestamptz[]) AS d(id, at) WHERE o.id = d.id AND o.delivered_at IS NULL
RETURNING o.id`

	markFailed = `UPDATE bridge_outbox SET attempts = attempts + 1, last_error = $2, next_attempt_at = $3
WHERE id = $1 AND delivered_at IS NULL`

	markDiscarded = `UPDATE bridge_outbox SET delivered_at = $2, attempts = attempts + 1, last_error = $3,
	next_attempt_at = NULL WHERE id = $1 AND delivered_at IS NULL`

	trimDelivered = `DELETE FROM bridge_outbox WHERE id IN (
	SELECT id FROM bridge_outbox WHERE delivered_at < $1 ORDER BY delivered_at LIMIT $2)`

	selectRow = `SELECT id, topic, key, payload, created_at, attempts, delivered_at, COALESCE(last_error, ''),
	next_attempt_at FROM bridge_outbox`

	countPending = `SELECT count(*) FROM bridge_outbox WHERE delivered_at IS NULL`
)

// Row is an outbox row with its delivery state, for tests and operators.
type Row struct {
	Event
	DeliveredAt   *time.Time
	LastError     string
	NextAttemptAt *time.Time
}

// ErrNotFound: no event has the id.
var ErrNotFound = errors.New("outbox event not found")

func scanRow(row pgx.CollectableRow) (Row, error) {
	var r Row
	err := row.Scan(&r.ID, &r.Topic, &r.Key, &r.Payload, &r.CreatedAt, &r.Attempts, &r.DeliveredAt, &r.LastError, &r.NextAttemptAt)
	return r, err
}

// Get loads one event with its delivery state.
func Get(ctx context.Context, db pg.DBTX, id int64) (Row, error) {
	rows, err := db.Query(ctx, selectRow+` WHERE id = $1`, id)
	if err != nil {
		return Row{}, fmt.Errorf("loading outbox event %d: %w", id, err)
	}
	r, err := pgx.CollectExactlyOneRow(rows, scanRow)
	if errors.Is(err, pgx.ErrNoRows) {
		return Row{}, fmt.Errorf("loading outbox event %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Row{}, fmt.Errorf("loading outbox event %d: %w", id, err)
	}
	return r, nil
}

// ListKey loads the events of a key in id order.
func ListKey(ctx context.Context, db pg.DBTX, key string) ([]Row, error) {
	rows, err := db.Query(ctx, selectRow+` WHERE key = $1 ORDER BY id`, key)
	if err != nil {
		return nil, fmt.Errorf("listing outbox events of %s: %w", key, err)
	}
	rs, err := pgx.CollectRows(rows, scanRow)
	if err != nil {
		return nil, fmt.Errorf("listing outbox events of %s: %w", key, err)
	}
	return rs, nil
}

// Pending counts the events not yet delivered.
func Pending(ctx context.Context, db pg.DBTX) (int64, error) {
	var n int64
	if err := db.QueryRow(ctx, countPending).Scan(&n); err != nil {
		return 0, fmt.Errorf("counting pending outbox events: %w", err)
	}
	return n, nil
}

// Trim deletes events delivered before the cutoff, at most limit at a time
// so that a large backlog does not hold one long transaction; it returns how
// many it deleted.
func Trim(ctx context.Context, db pg.DBTX, before time.Time, limit int) (int64, error) {
	tag, err := db.Exec(ctx, trimDelivered, before, limit)
	if err != nil {
		return 0, fmt.Errorf("trimming delivered outbox events: %w", err)
	}
	return tag.RowsAffected(), nil
}

// claim reads the events of the lanes to start (claimEvents): at most
// limit events of at most keys keys, none of the busy ones.
func claim(ctx context.Context, db pg.DBTX, now time.Time, limit, keys int, busy []string) ([]Event, error) {
	if busy == nil {
		busy = []string{} // NULL would make key <> ALL (...) exclude every key
	}
	rows, err := db.Query(ctx, claimEvents, now, limit, busy, keys)
	if err != nil {
		return nil, fmt.Errorf("claiming outbox events: %w", err)
	}
	evs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Event, error) {
		var e Event
		err := row.Scan(&e.ID, &e.Topic, &e.Key, &e.Payload, &e.CreatedAt, &e.Attempts)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("claiming outbox events: %w", err)
	}
	return evs, nil
}

// setDelivered marks events delivered, each at its own time, and returns
// those it marked (not the ones already settled).
func setDelivered(ctx context.Context, db pg.DBTX, ids []int64, at []time.Time) ([]int64, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	rows, err := db.Query(ctx, markDelivered, ids, at)
	if err != nil {
		return nil, fmt.Errorf("marking outbox events delivered: %w", err)
	}
	marked, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("marking outbox events delivered: %w", err)
	}
	return marked, nil
}

func setFailed(ctx context.Context, tx pgx.Tx, id int64, reason string, next time.Time) error {
	if _, err := tx.Exec(ctx, markFailed, id, reason, next); err != nil {
		return fmt.Errorf("recording the failed delivery of outbox event %d: %w", id, err)
	}
	return nil
}

func setDiscarded(ctx context.Context, tx pgx.Tx, id int64, at time.Time, reason string) error {
	if _, err := tx.Exec(ctx, markDiscarded, id, at, reason); err != nil {
		return fmt.Errorf("discarding outbox event %d: %w", id, err)
	}
	return nil
}

func listen(ctx context.Context, conn *pgx.Conn) error {
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{Channel}.Sanitize()); err != nil {
		return fmt.Errorf("listening on %s: %w", Channel, err)
	}
	return nil
}
