package store

// The change feed of the allocation-candidates index: placement_changes is
// written by the triggers of migration 000002 and read by ReadCatchUp
// (snapshot.go); here is its upkeep.

import (
	"context"
	"fmt"

	"github.com/unisched/unisched/internal/pg"
)

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
