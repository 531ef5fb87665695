package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/unisched/unisched/internal/pg"
)

const selectProviderAggregates = `SELECT a.uuid::text FROM placement_aggregates a
JOIN resource_provider_aggregates ra ON ra.aggregate_id = a.id
WHERE ra.resource_provider_id = $1 ORDER BY a.id`

// ProviderAggregates returns the aggregate uuids of a provider in the
// order the aggregates were first seen.
func ProviderAggregates(ctx context.Context, db pg.DBTX, providerID int64) ([]string, error) {
	rows, err := db.Query(ctx, selectProviderAggregates, providerID)
	if err != nil {
		return nil, fmt.Errorf("listing aggregates of provider %d: %w", providerID, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("listing aggregates of provider %d: %w", providerID, err)
	}
	if out == nil {
		out = []string{}
	}
	return out, nil
}

const (
	// Aggregates are bare uuids, created on first association; ON
	// CONFLICT lets concurrent writers create the same one.
	ensureAggregates = `INSERT INTO placement_aggregates (uuid) SELECT unnest($1::uuid[]) ON CONFLICT (uuid) DO NOTHING`
	unlinkAggregates = `DELETE FROM resource_provider_aggregates ra USING placement_aggregates a
WHERE ra.aggregate_id = a.id AND ra.resource_provider_id = $1 AND NOT a.uuid = ANY($2::uuid[])`
	linkAggregates = `INSERT INTO resource_provider_aggregates (resource_provider_id, aggregate_id)
SELECT $1, a.id FROM placement_aggregates a WHERE a.uuid = ANY($2::uuid[]) ON CONFLICT DO NOTHING`
)

// SetProviderAggregates makes uuids the provider's exact aggregate set.
// With bump the provider's generation is incremented (compare-and-swap
// from p.Generation, microversion 1.19) and p.Generation updated. One
// round trip. Errors: ErrConcurrentUpdate.
func SetProviderAggregates(ctx context.Context, db pg.DBTX, p *Provider, uuids []string, bump bool) error {
	if uuids == nil {
		uuids = []string{}
	}
	b := &pgx.Batch{}
	if len(uuids) > 0 {
		b.Queue(ensureAggregates, uuids)
	}
	b.Queue(unlinkAggregates, p.ID, uuids)
	if len(uuids) > 0 {
		b.Queue(linkAggregates, p.ID, uuids)
	}
	gen := -1
	if bump {
		b.Queue(bumpGeneration, p.ID, p.Generation).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				if err := rows.Scan(&gen); err != nil {
					return err
				}
			}
			return rows.Err()
		})
	}
	if err := db.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("setting aggregates of provider %s: %w", p.UUID, err)
	}
	if !bump {
		return nil
	}
	if gen < 0 {
		return ErrConcurrentUpdate
	}
	p.Generation = gen
	return nil
}
