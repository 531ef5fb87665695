package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/unisched/unisched/internal/pg"
)

// Provider is a resource provider row with its tree links resolved to uuids.
type Provider struct {
	ID         int64
	UUID       string
	Name       string
	Generation int
	ParentUUID *string
	RootUUID   string
	CreatedAt  time.Time
	UpdatedAt  *time.Time
}

// LastModified is the provider's updated_at, or created_at when never updated.
func (p *Provider) LastModified() time.Time {
	if p.UpdatedAt != nil {
		return *p.UpdatedAt
	}
	return p.CreatedAt
}

const selectProviderColumns = `SELECT rp.id, rp.uuid::text, rp.name, rp.generation, parent.uuid::text, root.uuid::text,
	rp.created_at, rp.updated_at
FROM resource_providers rp
LEFT JOIN resource_providers parent ON parent.id = rp.parent_provider_id
LEFT JOIN resource_providers root ON root.id = rp.root_provider_id`

const selectProviderByUUID = selectProviderColumns + ` WHERE rp.uuid = $1`

func scanProvider(row pgx.Row) (*Provider, error) {
	var p Provider
	var root *string
	if err := row.Scan(&p.ID, &p.UUID, &p.Name, &p.Generation, &p.ParentUUID, &root, &p.CreatedAt, &p.UpdatedAt); err != nil {
		return nil, err
	}
	if root != nil {
		p.RootUUID = *root
	} else {
		p.RootUUID = p.UUID
	}
	return &p, nil
}

// GetProvider loads a provider by uuid; ErrNotFound when there is none.
// The uuid must already be validated (callers turn bad uuids into 400/404).
func GetProvider(ctx context.Context, db pg.DBTX, uuid string) (*Provider, error) {
	p, err := scanProvider(db.QueryRow(ctx, selectProviderByUUID, uuid))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("loading resource provider %s: %w", uuid, err)
	}
	return p, nil
}

const bumpGeneration = `UPDATE resource_providers SET generation = generation + 1, updated_at = now()
WHERE id = $1 AND generation = $2 RETURNING generation`

// IncrementGeneration is the compare-and-swap every provider change goes
// through: it fails with ErrConcurrentUpdate unless the provider is still
// at expected, which is how concurrent writers are told apart.
func IncrementGeneration(ctx context.Context, db pg.DBTX, providerID int64, expected int) (int, error) {
	var gen int
	err := db.QueryRow(ctx, bumpGeneration, providerID, expected).Scan(&gen)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, ErrConcurrentUpdate
	}
	if err != nil {
		return 0, fmt.Errorf("incrementing generation of provider %d: %w", providerID, err)
	}
	return gen, nil
}
