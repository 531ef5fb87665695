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
// from p.Generation, microversion 1.19) and p.Generation updated.
// Errors: ErrConcurrentUpdate.
func SetProviderAggregates(ctx context.Context, db pg.DBTX, p *Provider, uuids []string, bump bool) error {
	if uuids == nil {
		uuids = []string{}
	}
	if len(uuids) > 0 {
		if _, err := db.Exec(ctx, ensureAggregates, uuids); err != nil {
			return fmt.Errorf("creating aggregates: %w", err)
		}
	}
	if _, err := db.Exec(ctx, unlinkAggregates, p.ID, uuids); err != nil {
		return fmt.Errorf("removing aggregates of provider %s: %w", p.UUID, err)
	}
	if len(uuids) > 0 {
		if _, err := db.Exec(ctx, linkAggregates, p.ID, uuids); err != nil {
			return fmt.Errorf("adding aggregates to provider %s: %w", p.UUID, err)
		}
	}
	if !bump {
		return nil
	}
	gen, err := IncrementGeneration(ctx, db, p.ID, p.Generation)
	if err != nil {
		return err
	}
	p.Generation = gen
	return nil
}
