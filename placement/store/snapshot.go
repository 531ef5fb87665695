package store

import (
	"context"
	"fmt"

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
