package placement

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/unisched/unisched/internal/pg"
	"github.com/unisched/unisched/placement/candidates"
	"github.com/unisched/unisched/placement/store"
)

// snapshotCache keeps the last allocation-candidates snapshot with the
// PostgreSQL snapshot (pg_current_snapshot) it was read under. Two equal
// PostgreSQL snapshots see exactly the same committed transactions, so while
// the current one equals the cached tag nothing has been written anywhere
// and the cached snapshot is exact; any commit (here or on another replica)
// changes it and forces a reload. Loads are serialized so that a burst of
// requests after a write reads the database once.
type snapshotCache struct {
	mu   sync.Mutex // guards tag, snap, takenAt
	tag  string
	snap *candidates.Snapshot
	// takenAt is when the cached snapshot's transaction started: a request
	// that began checking before it may use it, as it is at least as fresh.
	takenAt time.Time

	loadMu sync.Mutex
}

const currentSnapshot = `SELECT pg_current_snapshot()::text`

// get returns a snapshot that includes every transaction committed before
// the call.
func (c *snapshotCache) get(ctx context.Context, db *pgxpool.Pool) (*candidates.Snapshot, error) {
	start := time.Now()
	var cur string
	if err := db.QueryRow(ctx, currentSnapshot).Scan(&cur); err != nil {
		return nil, fmt.Errorf("reading the database snapshot: %w", err)
	}
	if snap := c.lookup(cur, start); snap != nil {
		return snap, nil
	}
	c.loadMu.Lock()
	defer c.loadMu.Unlock()
	if snap := c.lookup(cur, start); snap != nil {
		return snap, nil
	}
	taken := time.Now()
	var tag string
	var data candidates.Data
	err := pg.WithTx(ctx, db, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly},
		func(tx pgx.Tx) error {
			if err := tx.QueryRow(ctx, currentSnapshot).Scan(&tag); err != nil {
				return fmt.Errorf("reading the database snapshot: %w", err)
			}
			var err error
			data, err = store.LoadSnapshotData(ctx, tx)
			return err
		})
	if err != nil {
		return nil, err
	}
	snap, err := candidates.NewSnapshot(data)
	if err != nil {
		return nil, fmt.Errorf("indexing providers: %w", err)
	}
	c.mu.Lock()
	c.tag, c.snap, c.takenAt = tag, snap, taken
	c.mu.Unlock()
	return snap, nil
}

func (c *snapshotCache) lookup(cur string, start time.Time) *candidates.Snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.snap != nil && (c.tag == cur || c.takenAt.After(start)) {
		return c.snap
	}
	return nil
}
