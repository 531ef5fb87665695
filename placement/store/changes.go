package store

import (
	"context"
	"fmt"

	"github.com/unisched/unisched/internal/pg"
)

// PendingChanges is what the change feed (placement_changes, written by the
// triggers of migration 000002) holds for an index current as of one
// PostgreSQL snapshot.
type PendingChanges struct {
	// Snapshot is the snapshot the feed was read under (pg_current_snapshot
	// text); once the changes are applied the index is current as of it.
	Snapshot string
	// Behind: the feed was trimmed past what the index needs; reload all.
	Behind bool
	// Reset: tables were truncated (ids restart); reload all.
	Reset bool
	// Names: traits or resource classes were added, changed or removed.
	Names bool
	// Providers touched, ascending.
	Providers []int64
}

// The transactions an index current as of snapshot $1 has not seen are
// exactly those visible now but not in $1, whatever order they committed
// in: a transaction still running when $1 was taken is in its xip list and
// is picked up once it commits. Everything below $1's xmin had finished by
// then, which bounds the index scan. Read as one statement (or inside a
// REPEATABLE READ transaction) pg_current_snapshot() is the very snapshot
// the rows are read under.
const selectPendingChanges = `WITH c AS (
	SELECT kind, provider_ids FROM placement_changes
	WHERE xid >= pg_snapshot_xmin($1::pg_snapshot) AND NOT pg_visible_in_snapshot(xid, $1::pg_snapshot))
SELECT pg_current_snapshot()::text,
	(SELECT horizon FROM placement_changes_horizon) > pg_snapshot_xmin($1::pg_snapshot),
	EXISTS (SELECT FROM c WHERE kind = 'reset'),
	EXISTS (SELECT FROM c WHERE kind = 'names'),
	ARRAY(SELECT DISTINCT unnest(provider_ids) FROM c WHERE kind = 'providers' ORDER BY 1)`

// ReadPendingChanges reads the changes committed since snapshot since.
// Outside a transaction it is one statement with one snapshot; to load the
// changed rows under the same snapshot, call it inside a REPEATABLE READ
// transaction and load there.
func ReadPendingChanges(ctx context.Context, db pg.DBTX, since string) (PendingChanges, error) {
	var c PendingChanges
	err := db.QueryRow(ctx, selectPendingChanges, since).Scan(&c.Snapshot, &c.Behind, &c.Reset, &c.Names, &c.Providers)
	if err != nil {
		return c, fmt.Errorf("reading the change feed: %w", err)
	}
	return c, nil
}

// CurrentSnapshot returns pg_current_snapshot() as text: inside a
// REPEATABLE READ transaction, the transaction's snapshot.
func CurrentSnapshot(ctx context.Context, db pg.DBTX) (string, error) {
	var s string
	if err := db.QueryRow(ctx, `SELECT pg_current_snapshot()::text`).Scan(&s); err != nil {
		return "", fmt.Errorf("reading the database snapshot: %w", err)
	}
	return s, nil
}

// CurrentXmin returns the xmin of the current snapshot: every transaction
// below it has finished, so it is a safe trimming horizon once every index
// has moved past it.
func CurrentXmin(ctx context.Context, db pg.DBTX) (string, error) {
	var x string
	if err := db.QueryRow(ctx, `SELECT pg_snapshot_xmin(pg_current_snapshot())::text`).Scan(&x); err != nil {
		return "", fmt.Errorf("reading the database snapshot: %w", err)
	}
	return x, nil
}

// Raising the horizon and deleting below it commit together, so a reader
// sees either the old horizon with the old rows or the new one without.
const trimChanges = `WITH h AS (
	UPDATE placement_changes_horizon SET horizon = greatest(horizon, $1::xid8) RETURNING horizon)
DELETE FROM placement_changes WHERE xid < (SELECT horizon FROM h)`

// TrimChanges deletes the feed rows of transactions below horizon (an xid8
// as text, from CurrentXmin) and records the horizon, so an index that still
// needed them notices and reloads. It returns how many rows went.
func TrimChanges(ctx context.Context, db pg.DBTX, horizon string) (int64, error) {
	tag, err := db.Exec(ctx, trimChanges, horizon)
	if err != nil {
		return 0, fmt.Errorf("trimming the change feed: %w", err)
	}
	return tag.RowsAffected(), nil
}
