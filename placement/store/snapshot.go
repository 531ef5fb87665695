package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/unisched/unisched/internal/pg"
	"github.com/unisched/unisched/placement/candidates"
)

// The allocation-candidates index reads under one REPEATABLE READ snapshot,
// and in one round trip: the transaction's statements go out as one
// pipeline, BEGIN to COMMIT. Round trips are what a catch-up costs when the
// machine is busy with claims, so it makes exactly one.
const (
	beginSnapshotRead = `BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY`
	// TRUNCATE (the test reset) is not MVCC-safe: a transaction whose
	// snapshot predates it would read the emptied tables. Locking them
	// before the first query (which fixes the snapshot) orders the read
	// wholly before or after any truncation. The order is truncateAll's,
	// so a reader and a truncation never each hold a lock the other wants.
	lockSnapshotTables = `LOCK TABLE allocations, resource_provider_aggregates, placement_aggregates,
	resource_provider_traits, inventories, resource_providers, traits, resource_classes IN ACCESS SHARE MODE`
	commitSnapshotRead = `COMMIT`
)

// Queries for a complete snapshot; no joins or sorts beyond what the
// name lists need.
const (
	snapshotNow     = `SELECT pg_current_snapshot()::text`
	snapshotClasses = `SELECT id, name FROM resource_classes ORDER BY id`
	snapshotTraits  = `SELECT id, name FROM traits ORDER BY id`
	// Providers in id order; parent ids are resolved in Go.
	snapshotProviders = `SELECT id, uuid::text, name, parent_provider_id
FROM resource_providers ORDER BY id`
	snapshotInventories = `SELECT resource_provider_id, resource_class_id, total, reserved, min_unit, max_unit,
	step_size, allocation_ratio FROM inventories`
	snapshotUsages = `SELECT resource_provider_id, resource_class_id, SUM(used) FROM allocations
GROUP BY resource_provider_id, resource_class_id`
	snapshotProviderTraits     = `SELECT resource_provider_id, trait_id FROM resource_provider_traits`
	snapshotProviderAggregates = `SELECT rpa.resource_provider_id, a.uuid::text
FROM resource_provider_aggregates rpa JOIN placement_aggregates a ON a.id = rpa.aggregate_id`
)

// ReadSnapshot reads everything the candidates engine needs (every
// provider with its inventories and their usage, traits and aggregates, and
// all class and trait names) under one snapshot, which it returns as
// pg_current_snapshot text. db must not be inside a transaction.
func ReadSnapshot(ctx context.Context, db pg.DBTX) (string, candidates.Data, error) {
	var snap string
	var d candidates.Data
	className := map[int32]string{}
	traitName := map[int32]string{}
	index := map[int64]int{}
	var parents []*int64
	type key struct {
		rp    int64
		class int32
	}
	used := map[key]int64{}

	var b pgx.Batch
	b.Queue(beginSnapshotRead)
	b.Queue(lockSnapshotTables)
	b.Queue(snapshotNow).QueryRow(func(row pgx.Row) error { return row.Scan(&snap) })
	b.Queue(snapshotClasses).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var id int32
			var name string
			if err := rows.Scan(&id, &name); err != nil {
				return fmt.Errorf("reading resource classes: %w", err)
			}
			className[id] = name
			d.Classes = append(d.Classes, name)
		}
		return rows.Err()
	})
	b.Queue(snapshotTraits).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var id int32
			var name string
			if err := rows.Scan(&id, &name); err != nil {
				return fmt.Errorf("reading traits: %w", err)
			}
			traitName[id] = name
			d.Traits = append(d.Traits, name)
		}
		return rows.Err()
	})
	b.Queue(snapshotProviders).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var parent *int64
			var p candidates.ProviderData
			if err := rows.Scan(&p.ID, &p.UUID, &p.Name, &parent); err != nil {
				return fmt.Errorf("reading resource providers: %w", err)
			}
			index[p.ID] = len(d.Providers)
			d.Providers = append(d.Providers, p)
			parents = append(parents, parent)
		}
		return rows.Err()
	})
	b.Queue(snapshotUsages).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var k key
			var n int64
			if err := rows.Scan(&k.rp, &k.class, &n); err != nil {
				return fmt.Errorf("reading usages: %w", err)
			}
			used[k] = n
		}
		return rows.Err()
	})
	b.Queue(snapshotInventories).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var k key
			var inv candidates.InventoryData
			if err := rows.Scan(&k.rp, &k.class, &inv.Total, &inv.Reserved, &inv.MinUnit, &inv.MaxUnit,
				&inv.StepSize, &inv.AllocationRatio); err != nil {
				return fmt.Errorf("reading inventories: %w", err)
			}
			inv.Class = className[k.class]
			inv.Used = used[k]
			if i, ok := index[k.rp]; ok {
				d.Providers[i].Inventories = append(d.Providers[i].Inventories, inv)
			}
		}
		return rows.Err()
	})
	b.Queue(snapshotProviderTraits).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var rp int64
			var trait int32
			if err := rows.Scan(&rp, &trait); err != nil {
				return fmt.Errorf("reading provider traits: %w", err)
			}
			if i, ok := index[rp]; ok {
				d.Providers[i].Traits = append(d.Providers[i].Traits, traitName[trait])
			}
		}
		return rows.Err()
	})
	b.Queue(snapshotProviderAggregates).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var rp int64
			var agg string
			if err := rows.Scan(&rp, &agg); err != nil {
				return fmt.Errorf("reading provider aggregates: %w", err)
			}
			if i, ok := index[rp]; ok {
				d.Providers[i].Aggregates = append(d.Providers[i].Aggregates, agg)
			}
		}
		return rows.Err()
	})
	b.Queue(commitSnapshotRead)
	if err := db.SendBatch(ctx, &b).Close(); err != nil {
		return "", d, fmt.Errorf("reading the allocation candidates snapshot: %w", err)
	}
	for i, parent := range parents {
		if parent != nil {
			j, ok := index[*parent]
			if !ok {
				return "", d, fmt.Errorf("provider %s: parent id %d missing", d.Providers[i].UUID, *parent)
			}
			d.Providers[i].ParentUUID = d.Providers[j].UUID
		}
	}
	return snap, d, nil
}

// CatchUp is what an index current as of one snapshot needs to become
// current as of a newer one.
type CatchUp struct {
	// Snapshot is the newer snapshot (pg_current_snapshot text).
	Snapshot string
	// Behind: the change feed was trimmed past what the index needs;
	// reload everything.
	Behind bool
	// Reset: tables were truncated (ids restart); reload everything.
	Reset bool
	// Names: traits or resource classes changed; Classes and Traits are
	// then the complete lists, each ordered by id.
	Names           bool
	Classes, Traits []string
	// Changed lists the providers touched, ascending; Providers holds the
	// current state of those that still exist, in id order.
	Changed   []int64
	Providers []candidates.ProviderData
}

// Empty reports whether nothing happened since the older snapshot.
func (c *CatchUp) Empty() bool { return !c.Behind && !c.Reset && !c.Names && len(c.Changed) == 0 }

// The transactions an index current as of snapshot $1 has not seen are
// exactly those visible now but not in $1, whatever order they committed
// in: those at or above $1's xmax, and those still running when $1 was
// taken (its xip list), which are picked up once they commit. Both are
// index lookups; bounding by $1's xmin instead would scan every change
// since the oldest transaction running anywhere in the cluster. The feed is
// written by the triggers of migration 000002. Read as one statement (or
// first in a REPEATABLE READ transaction), pg_current_snapshot() is the
// snapshot the rows are read under.
const (
	pendingWhere = `(xid >= pg_snapshot_xmax($1::pg_snapshot)
	OR xid = ANY(ARRAY(SELECT pg_snapshot_xip($1::pg_snapshot))))`
	catchUpChanges = `WITH c AS (SELECT kind, provider_ids FROM placement_changes WHERE ` + pendingWhere + `)
SELECT pg_current_snapshot()::text,
	(SELECT horizon FROM placement_changes_horizon) > pg_snapshot_xmin($1::pg_snapshot),
	EXISTS (SELECT FROM c WHERE kind = 'reset'),
	EXISTS (SELECT FROM c WHERE kind = 'names'),
	ARRAY(SELECT DISTINCT unnest(provider_ids) FROM c WHERE kind = 'providers' ORDER BY 1)`
	catchUpClasses   = `SELECT name FROM resource_classes ORDER BY id`
	catchUpTraits    = `SELECT name FROM traits ORDER BY id`
	catchUpProviders = `SELECT rp.id, rp.uuid::text, rp.name, parent.uuid::text
FROM resource_providers rp LEFT JOIN resource_providers parent ON parent.id = rp.parent_provider_id
WHERE rp.id = ANY($1) ORDER BY rp.id`
	catchUpUsages = `SELECT resource_provider_id, resource_class_id, sum(used) FROM allocations
WHERE resource_provider_id = ANY($1) GROUP BY resource_provider_id, resource_class_id`
	catchUpInventories = `SELECT i.resource_provider_id, i.resource_class_id, rc.name, i.total, i.reserved,
	i.min_unit, i.max_unit, i.step_size, i.allocation_ratio
FROM inventories i JOIN resource_classes rc ON rc.id = i.resource_class_id
WHERE i.resource_provider_id = ANY($1)`
	catchUpTraitsOf = `SELECT rpt.resource_provider_id, t.name
FROM resource_provider_traits rpt JOIN traits t ON t.id = rpt.trait_id
WHERE rpt.resource_provider_id = ANY($1)`
	catchUpAggregatesOf = `SELECT rpa.resource_provider_id, a.uuid::text
FROM resource_provider_aggregates rpa JOIN placement_aggregates a ON a.id = rpa.aggregate_id
WHERE rpa.resource_provider_id = ANY($1)`
)

// PeekCatchUp reads only what changed since snapshot since, in one
// statement: enough to tell that there is nothing to do, the common case
// of an idle index.
func PeekCatchUp(ctx context.Context, db pg.DBTX, since string) (CatchUp, error) {
	var c CatchUp
	if err := db.QueryRow(ctx, catchUpChanges, since).Scan(&c.Snapshot, &c.Behind, &c.Reset, &c.Names, &c.Changed); err != nil {
		return c, fmt.Errorf("reading the change feed: %w", err)
	}
	return c, nil
}

// ReadCatchUp reads, under one snapshot and in two round trips, the
// changes committed since snapshot since and the current state of every
// provider they touched. With Behind or Reset set the rest is missing. db
// must not be inside a transaction.
func ReadCatchUp(ctx context.Context, db pg.DBTX, since string) (CatchUp, error) {
	var c CatchUp
	// The statements are pipelined through one connection; a pool's
	// connection that fails half-way is closed rather than reused.
	conn, release, err := dedicated(ctx, db)
	if err != nil {
		return c, err
	}
	defer release()
	var b pgx.Batch
	b.Queue(beginSnapshotRead)
	b.Queue(lockSnapshotTables)
	b.Queue(catchUpChanges, since).QueryRow(func(row pgx.Row) error {
		return row.Scan(&c.Snapshot, &c.Behind, &c.Reset, &c.Names, &c.Changed)
	})
	if err := conn.SendBatch(ctx, &b).Close(); err != nil {
		return c, fmt.Errorf("reading the change feed: %w", err)
	}
	if c.Behind || c.Reset || (!c.Names && len(c.Changed) == 0) {
		_, err := conn.Exec(ctx, commitSnapshotRead)
		return c, err
	}

	type key struct {
		rp    int64
		class int32
	}
	index := map[int64]int{}
	used := map[key]int64{}
	b = pgx.Batch{}
	if c.Names {
		names := func(list *[]string) func(pgx.Rows) error {
			return func(rows pgx.Rows) error {
				for rows.Next() {
					var name string
					if err := rows.Scan(&name); err != nil {
						return fmt.Errorf("reading names: %w", err)
					}
					*list = append(*list, name)
				}
				return rows.Err()
			}
		}
		b.Queue(catchUpClasses).Query(names(&c.Classes))
		b.Queue(catchUpTraits).Query(names(&c.Traits))
	}
	ids := c.Changed
	b.Queue(catchUpProviders, ids).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var p candidates.ProviderData
			var parent *string
			if err := rows.Scan(&p.ID, &p.UUID, &p.Name, &parent); err != nil {
				return fmt.Errorf("reading resource providers: %w", err)
			}
			if parent != nil {
				p.ParentUUID = *parent
			}
			index[p.ID] = len(c.Providers)
			c.Providers = append(c.Providers, p)
		}
		return rows.Err()
	})
	b.Queue(catchUpUsages, ids).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var k key
			var n int64
			if err := rows.Scan(&k.rp, &k.class, &n); err != nil {
				return fmt.Errorf("reading usages: %w", err)
			}
			used[k] = n
		}
		return rows.Err()
	})
	b.Queue(catchUpInventories, ids).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var k key
			var inv candidates.InventoryData
			if err := rows.Scan(&k.rp, &k.class, &inv.Class, &inv.Total, &inv.Reserved, &inv.MinUnit, &inv.MaxUnit,
				&inv.StepSize, &inv.AllocationRatio); err != nil {
				return fmt.Errorf("reading inventories: %w", err)
			}
			inv.Used = used[k]
			if i, ok := index[k.rp]; ok {
				c.Providers[i].Inventories = append(c.Providers[i].Inventories, inv)
			}
		}
		return rows.Err()
	})
	b.Queue(catchUpTraitsOf, ids).Query(namesByProvider("provider traits", index, func(i int, name string) {
		c.Providers[i].Traits = append(c.Providers[i].Traits, name)
	}))
	b.Queue(catchUpAggregatesOf, ids).Query(namesByProvider("provider aggregates", index, func(i int, agg string) {
		c.Providers[i].Aggregates = append(c.Providers[i].Aggregates, agg)
	}))
	b.Queue(commitSnapshotRead)
	if err := conn.SendBatch(ctx, &b).Close(); err != nil {
		return c, fmt.Errorf("reading changed providers: %w", err)
	}
	return c, nil
}

// dedicated returns one connection of db for several round trips of one
// transaction, and its release. A pool's connection is acquired (and, if
// a transaction was left open by a failure, closed on release by the pool);
// anything else is used as it is.
func dedicated(ctx context.Context, db pg.DBTX) (pg.DBTX, func(), error) {
	p, ok := db.(*pgxpool.Pool)
	if !ok {
		return db, func() {}, nil
	}
	c, err := p.Acquire(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("acquiring a connection: %w", err)
	}
	return c, c.Release, nil
}

// namesByProvider reads (provider id, name) rows, handing each name to add
// with the provider's position in index; rows of providers not in index
// are skipped.
func namesByProvider(what string, index map[int64]int, add func(i int, name string)) func(pgx.Rows) error {
	return func(rows pgx.Rows) error {
		for rows.Next() {
			var rp int64
			var name string
			if err := rows.Scan(&rp, &name); err != nil {
				return fmt.Errorf("reading %s: %w", what, err)
			}
			if i, ok := index[rp]; ok {
				add(i, name)
			}
		}
		return rows.Err()
	}
}
