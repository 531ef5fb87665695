package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/unisched/unisched/internal/pg"
	"github.com/unisched/unisched/placement/candidates"
)

// Queries for the allocation-candidates snapshot. Run them in one
// REPEATABLE READ transaction so usage, inventory and trees are from the
// same instant.
const (
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

// LoadSnapshotData reads everything the candidates engine needs: every
// provider with its inventories (and their current usage), traits and
// aggregates, plus all resource class and trait names. Call it inside a
// REPEATABLE READ transaction.
func LoadSnapshotData(ctx context.Context, db pg.DBTX) (candidates.Data, error) {
	var d candidates.Data
	rows, err := db.Query(ctx, snapshotClasses)
	if err != nil {
		return d, fmt.Errorf("reading resource classes: %w", err)
	}
	className := map[int32]string{}
	for rows.Next() {
		var id int32
		var name string
		if err := rows.Scan(&id, &name); err != nil {
			rows.Close()
			return d, fmt.Errorf("reading resource classes: %w", err)
		}
		className[id] = name
		d.Classes = append(d.Classes, name)
	}
	if err := rows.Err(); err != nil {
		return d, fmt.Errorf("reading resource classes: %w", err)
	}

	traitName := map[int32]string{}
	rows, err = db.Query(ctx, snapshotTraits)
	if err != nil {
		return d, fmt.Errorf("reading traits: %w", err)
	}
	for rows.Next() {
		var id int32
		var name string
		if err := rows.Scan(&id, &name); err != nil {
			rows.Close()
			return d, fmt.Errorf("reading traits: %w", err)
		}
		traitName[id] = name
		d.Traits = append(d.Traits, name)
	}
	if err := rows.Err(); err != nil {
		return d, fmt.Errorf("reading traits: %w", err)
	}

	index := map[int64]int{}
	var parents []*int64
	rows, err = db.Query(ctx, snapshotProviders)
	if err != nil {
		return d, fmt.Errorf("reading resource providers: %w", err)
	}
	for rows.Next() {
		var id int64
		var parent *int64
		var p candidates.ProviderData
		if err := rows.Scan(&id, &p.UUID, &p.Name, &parent); err != nil {
			rows.Close()
			return d, fmt.Errorf("reading resource providers: %w", err)
		}
		p.ID = id
		index[id] = len(d.Providers)
		d.Providers = append(d.Providers, p)
		parents = append(parents, parent)
	}
	if err := rows.Err(); err != nil {
		return d, fmt.Errorf("reading resource providers: %w", err)
	}
	for i, parent := range parents {
		if parent != nil {
			j, ok := index[*parent]
			if !ok {
				return d, fmt.Errorf("provider %s: parent id %d missing", d.Providers[i].UUID, *parent)
			}
			d.Providers[i].ParentUUID = d.Providers[j].UUID
		}
	}

	type key struct {
		rp    int64
		class int32
	}
	used := map[key]int64{}
	rows, err = db.Query(ctx, snapshotUsages)
	if err != nil {
		return d, fmt.Errorf("reading usages: %w", err)
	}
	for rows.Next() {
		var k key
		var n int64
		if err := rows.Scan(&k.rp, &k.class, &n); err != nil {
			rows.Close()
			return d, fmt.Errorf("reading usages: %w", err)
		}
		used[k] = n
	}
	if err := rows.Err(); err != nil {
		return d, fmt.Errorf("reading usages: %w", err)
	}

	rows, err = db.Query(ctx, snapshotInventories)
	if err != nil {
		return d, fmt.Errorf("reading inventories: %w", err)
	}
	for rows.Next() {
		var k key
		var inv candidates.InventoryData
		if err := rows.Scan(&k.rp, &k.class, &inv.Total, &inv.Reserved, &inv.MinUnit, &inv.MaxUnit,
			&inv.StepSize, &inv.AllocationRatio); err != nil {
			rows.Close()
			return d, fmt.Errorf("reading inventories: %w", err)
		}
		inv.Class = className[k.class]
		inv.Used = used[k]
		if i, ok := index[k.rp]; ok {
			d.Providers[i].Inventories = append(d.Providers[i].Inventories, inv)
		}
	}
	if err := rows.Err(); err != nil {
		return d, fmt.Errorf("reading inventories: %w", err)
	}

	rows, err = db.Query(ctx, snapshotProviderTraits)
	if err != nil {
		return d, fmt.Errorf("reading provider traits: %w", err)
	}
	for rows.Next() {
		var rp int64
		var trait int32
		if err := rows.Scan(&rp, &trait); err != nil {
			rows.Close()
			return d, fmt.Errorf("reading provider traits: %w", err)
		}
		if i, ok := index[rp]; ok {
			d.Providers[i].Traits = append(d.Providers[i].Traits, traitName[trait])
		}
	}
	if err := rows.Err(); err != nil {
		return d, fmt.Errorf("reading provider traits: %w", err)
	}

	rows, err = db.Query(ctx, snapshotProviderAggregates)
	if err != nil {
		return d, fmt.Errorf("reading provider aggregates: %w", err)
	}
	for rows.Next() {
		var rp int64
		var agg string
		if err := rows.Scan(&rp, &agg); err != nil {
			rows.Close()
			return d, fmt.Errorf("reading provider aggregates: %w", err)
		}
		if i, ok := index[rp]; ok {
			d.Providers[i].Aggregates = append(d.Providers[i].Aggregates, agg)
		}
	}
	if err := rows.Err(); err != nil {
		return d, fmt.Errorf("reading provider aggregates: %w", err)
	}
	return d, nil
}

// Queries for a catch-up: the named providers only, names joined in.
const (
	changedProviders = `SELECT rp.id, rp.uuid::text, rp.name, parent.uuid::text
FROM resource_providers rp LEFT JOIN resource_providers parent ON parent.id = rp.parent_provider_id
WHERE rp.id = ANY($1) ORDER BY rp.id`
	changedInventories = `SELECT i.resource_provider_id, i.resource_class_id, rc.name, i.total, i.reserved,
	i.min_unit, i.max_unit, i.step_size, i.allocation_ratio
FROM inventories i JOIN resource_classes rc ON rc.id = i.resource_class_id
WHERE i.resource_provider_id = ANY($1)`
	changedUsages = `SELECT resource_provider_id, resource_class_id, sum(used) FROM allocations
WHERE resource_provider_id = ANY($1) GROUP BY resource_provider_id, resource_class_id`
	changedTraits = `SELECT rpt.resource_provider_id, t.name
FROM resource_provider_traits rpt JOIN traits t ON t.id = rpt.trait_id
WHERE rpt.resource_provider_id = ANY($1)`
	changedAggregates = `SELECT rpa.resource_provider_id, a.uuid::text
FROM resource_provider_aggregates rpa JOIN placement_aggregates a ON a.id = rpa.aggregate_id
WHERE rpa.resource_provider_id = ANY($1)`
)

// LoadProviders reads the providers with the given ids the way
// LoadSnapshotData reads all of them, in one round trip, ordered by id. Ids
// that no longer exist are simply absent. Call it in the REPEATABLE READ
// transaction whose snapshot the change feed was read under.
func LoadProviders(ctx context.Context, db pg.DBTX, ids []int64) ([]candidates.ProviderData, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	type key struct {
		rp    int64
		class int32
	}
	var out []candidates.ProviderData
	index := make(map[int64]int, len(ids))
	used := map[key]int64{}
	var b pgx.Batch
	b.Queue(changedProviders, ids).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var p candidates.ProviderData
			var parent *string
			if err := rows.Scan(&p.ID, &p.UUID, &p.Name, &parent); err != nil {
				return fmt.Errorf("reading resource providers: %w", err)
			}
			if parent != nil {
				p.ParentUUID = *parent
			}
			index[p.ID] = len(out)
			out = append(out, p)
		}
		return rows.Err()
	})
	b.Queue(changedUsages, ids).Query(func(rows pgx.Rows) error {
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
	b.Queue(changedInventories, ids).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var k key
			var inv candidates.InventoryData
			if err := rows.Scan(&k.rp, &k.class, &inv.Class, &inv.Total, &inv.Reserved, &inv.MinUnit, &inv.MaxUnit,
				&inv.StepSize, &inv.AllocationRatio); err != nil {
				return fmt.Errorf("reading inventories: %w", err)
			}
			inv.Used = used[k]
			if i, ok := index[k.rp]; ok {
				out[i].Inventories = append(out[i].Inventories, inv)
			}
		}
		return rows.Err()
	})
	b.Queue(changedTraits, ids).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var rp int64
			var name string
			if err := rows.Scan(&rp, &name); err != nil {
				return fmt.Errorf("reading provider traits: %w", err)
			}
			if i, ok := index[rp]; ok {
				out[i].Traits = append(out[i].Traits, name)
			}
		}
		return rows.Err()
	})
	b.Queue(changedAggregates, ids).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var rp int64
			var agg string
			if err := rows.Scan(&rp, &agg); err != nil {
				return fmt.Errorf("reading provider aggregates: %w", err)
			}
			if i, ok := index[rp]; ok {
				out[i].Aggregates = append(out[i].Aggregates, agg)
			}
		}
		return rows.Err()
	})
	if err := db.SendBatch(ctx, &b).Close(); err != nil {
		return nil, fmt.Errorf("reading changed providers: %w", err)
	}
	return out, nil
}

// LoadNames reads every resource class and trait name, each ordered by id.
func LoadNames(ctx context.Context, db pg.DBTX) (classes, traits []string, err error) {
	var b pgx.Batch
	b.Queue(snapshotClasses).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var id int32
			var name string
			if err := rows.Scan(&id, &name); err != nil {
				return fmt.Errorf("reading resource classes: %w", err)
			}
			classes = append(classes, name)
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
			traits = append(traits, name)
		}
		return rows.Err()
	})
	if err := db.SendBatch(ctx, &b).Close(); err != nil {
		return nil, nil, fmt.Errorf("reading names: %w", err)
	}
	if classes == nil {
		classes = []string{}
	}
	if traits == nil {
		traits = []string{}
	}
	return classes, traits, nil
}

// TRUNCATE (the test reset) is not MVCC-safe: a REPEATABLE READ transaction
// whose snapshot predates it would read the emptied tables. Locking them
// before the first query (which fixes the snapshot) orders the read wholly
// before or after any truncation. The order is truncateAll's, so a reader
// and a truncation can never each hold a lock the other waits for.
const lockSnapshotTables = `LOCK TABLE allocations, resource_provider_aggregates, placement_aggregates,
	resource_provider_traits, inventories, resource_providers, traits, resource_classes IN ACCESS SHARE MODE`

// LockSnapshotTables must be the first statement of a REPEATABLE READ
// transaction that reads snapshot data (see lockSnapshotTables).
func LockSnapshotTables(ctx context.Context, tx pg.DBTX) error {
	if _, err := tx.Exec(ctx, lockSnapshotTables); err != nil {
		return fmt.Errorf("locking the placement tables: %w", err)
	}
	return nil
}
