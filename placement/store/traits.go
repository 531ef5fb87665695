package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/unisched/unisched/internal/pg"
)

// ErrTraitInUse: a trait to delete is still set on some provider.
var ErrTraitInUse = errors.New("trait in use")

// Trait is a row of the traits table.
type Trait struct {
	ID        int64
	Name      string
	CreatedAt time.Time
	UpdatedAt *time.Time
}

// LastModified is the trait's updated_at, or created_at when never updated.
func (t *Trait) LastModified() time.Time {
	if t.UpdatedAt != nil {
		return *t.UpdatedAt
	}
	return t.CreatedAt
}

// TraitFilter narrows ListTraits; nil fields do not filter.
type TraitFilter struct {
	NameIn []string
	Prefix *string
	// Associated: only traits set on some provider (true) or on none (false).
	Associated *bool
}

const selectTraitColumns = `SELECT t.id, t.name, t.created_at, t.updated_at FROM traits t`

func scanTraits(rows pgx.Rows) ([]Trait, error) {
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (Trait, error) {
		var t Trait
		err := row.Scan(&t.ID, &t.Name, &t.CreatedAt, &t.UpdatedAt)
		return t, err
	})
}

// ListTraits returns the traits matching f in id (creation) order, the
// order upstream's unsorted queries give.
func ListTraits(ctx context.Context, db pg.DBTX, f TraitFilter) ([]Trait, error) {
	var q query
	if f.NameIn != nil {
		q.where("t.name = ANY(" + q.arg(f.NameIn) + ")")
	}
	if f.Prefix != nil {
		// A LIKE pattern as upstream builds it: '%' and '_' in the prefix
		// keep their wildcard meaning.
		q.where("t.name LIKE " + q.arg(*f.Prefix+"%"))
	}
	if f.Associated != nil {
		cond := "EXISTS (SELECT 1 FROM resource_provider_traits rpt WHERE rpt.trait_id = t.id)"
		if !*f.Associated {
			cond = "NOT " + cond
		}
		q.where(cond)
	}
	rows, err := db.Query(ctx, selectTraitColumns+q.sql()+" ORDER BY t.id", q.args...)
	if err != nil {
		return nil, fmt.Errorf("listing traits: %w", err)
	}
	out, err := scanTraits(rows)
	if err != nil {
		return nil, fmt.Errorf("listing traits: %w", err)
	}
	return out, nil
}

// GetTrait loads a trait by name; ErrNotFound when there is none.
func GetTrait(ctx context.Context, db pg.DBTX, name string) (*Trait, error) {
	rows, err := db.Query(ctx, selectTraitColumns+" WHERE t.name = $1", name)
	if err != nil {
		return nil, fmt.Errorf("loading trait %s: %w", name, err)
	}
	ts, err := scanTraits(rows)
	if err != nil {
		return nil, fmt.Errorf("loading trait %s: %w", name, err)
	}
	if len(ts) == 0 {
		return nil, ErrNotFound
	}
	return &ts[0], nil
}

const insertTrait = `INSERT INTO traits (name) VALUES ($1) ON CONFLICT (name) DO NOTHING
RETURNING id, name, created_at, updated_at`

// EnsureTrait creates the trait unless it exists; created tells which.
func EnsureTrait(ctx context.Context, db pg.DBTX, name string) (t *Trait, created bool, err error) {
	rows, err := db.Query(ctx, insertTrait, name)
	if err != nil {
		return nil, false, fmt.Errorf("creating trait %s: %w", name, err)
	}
	ts, err := scanTraits(rows)
	if err != nil {
		return nil, false, fmt.Errorf("creating trait %s: %w", name, err)
	}
	if len(ts) == 1 {
		return &ts[0], true, nil
	}
	t, err = GetTrait(ctx, db, name)
	return t, false, err
}

const deleteTraitUnused = `WITH tr AS (SELECT id FROM traits WHERE name = $1),
used AS (SELECT EXISTS (SELECT 1 FROM resource_provider_traits WHERE trait_id = (SELECT id FROM tr)) AS yes),
del AS (DELETE FROM traits WHERE id = (SELECT id FROM tr) AND NOT (SELECT yes FROM used) RETURNING id)
SELECT (SELECT id FROM tr), (SELECT yes FROM used), (SELECT count(*) FROM del)`

// DeleteTrait removes an unused trait. Errors: ErrNotFound, ErrTraitInUse.
// The caller refuses standard traits.
func DeleteTrait(ctx context.Context, db pg.DBTX, name string) error {
	var id *int64
	var used bool
	var deleted int64
	if err := db.QueryRow(ctx, deleteTraitUnused, name).Scan(&id, &used, &deleted); err != nil {
		if pg.HasCode(err, pg.CodeForeignKeyViolation) {
			// A provider took the trait meanwhile.
			return ErrTraitInUse
		}
		return fmt.Errorf("deleting trait %s: %w", name, err)
	}
	switch {
	case id == nil:
		return ErrNotFound
	case used:
		return ErrTraitInUse
	case deleted == 0:
		return ErrNotFound
	}
	return nil
}

const selectProviderTraits = selectTraitColumns + `
JOIN resource_provider_traits rpt ON rpt.trait_id = t.id WHERE rpt.resource_provider_id = $1 ORDER BY t.id`

// ProviderTraits returns the traits set on a provider in id order.
func ProviderTraits(ctx context.Context, db pg.DBTX, providerID int64) ([]Trait, error) {
	rows, err := db.Query(ctx, selectProviderTraits, providerID)
	if err != nil {
		return nil, fmt.Errorf("listing traits of provider %d: %w", providerID, err)
	}
	out, err := scanTraits(rows)
	if err != nil {
		return nil, fmt.Errorf("listing traits of provider %d: %w", providerID, err)
	}
	return out, nil
}

// syncProviderTraits makes $2 the provider's trait set and, if that
// changed anything, bumps its generation from $3 (a mismatch sets it NULL,
// which the NOT NULL column refuses: see casError). It returns the new
// generation, or no row when nothing changed.
const syncProviderTraits = `WITH del AS (DELETE FROM resource_provider_traits
	WHERE resource_provider_id = $1 AND NOT trait_id = ANY($2::integer[]) RETURNING 1),
ins AS (INSERT INTO resource_provider_traits (resource_provider_id, trait_id)
	SELECT $1, unnest($2::integer[]) ON CONFLICT DO NOTHING RETURNING 1)
UPDATE resource_providers SET generation = CASE WHEN generation = $3 THEN generation + 1 END, updated_at = now()
WHERE id = $1 AND (EXISTS (SELECT 1 FROM del) OR EXISTS (SELECT 1 FROM ins))
RETURNING generation`

// SetProviderTraits makes traitIDs the provider's exact trait set and
// bumps its generation (compare-and-swap from p.Generation) if the set
// changed; p.Generation is updated. Errors: ErrConcurrentUpdate.
func SetProviderTraits(ctx context.Context, db pg.DBTX, p *Provider, traitIDs []int64) error {
	return SetProviderTraitsIn(ctx, SendOn(db), p, traitIDs)
}

// SetProviderTraitsIn is SetProviderTraits in one batch sent through send,
// which may commit it (its only failures are SQL errors).
func SetProviderTraitsIn(ctx context.Context, send Send, p *Provider, traitIDs []int64) error {
	ids := make([]int32, len(traitIDs))
	for i, id := range traitIDs {
		ids[i] = int32(id)
	}
	gen := p.Generation
	b := &pgx.Batch{}
	b.Queue(syncProviderTraits, p.ID, ids, p.Generation).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			if err := rows.Scan(&gen); err != nil {
				return err
			}
		}
		return rows.Err()
	})
	if err := send(ctx, b); err != nil {
		if e := casError(err); e != nil {
			return ErrConcurrentUpdate
		}
		return fmt.Errorf("setting traits of provider %s: %w", p.UUID, err)
	}
	p.Generation = gen
	return nil
}

// LockProviderTraits locks the provider with the uuid as LockProvider
// does and reads the traits among names, in one batch sent through send.
// Errors: ErrNotFound (no such provider).
func LockProviderTraits(ctx context.Context, send Send, uuid string, names []string) (*Provider, []Trait, error) {
	var p *Provider
	var traits []Trait
	b := &pgx.Batch{}
	b.Queue(lockProviderByUUID, uuid).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var err error
			if p, err = scanProvider(rows); err != nil {
				return err
			}
		}
		return rows.Err()
	})
	b.Queue(selectTraitColumns+" WHERE t.name = ANY($1) ORDER BY t.id", names).Query(func(rows pgx.Rows) error {
		var err error
		traits, err = scanTraits(rows)
		return err
	})
	if err := send(ctx, b); err != nil {
		return nil, nil, fmt.Errorf("locking resource provider %s and reading traits: %w", uuid, err)
	}
	if p == nil {
		return nil, nil, ErrNotFound
	}
	return p, traits, nil
}

// ErrFallBack: a one-round-trip write found its assumptions wrong (no
// such provider, another generation, an unknown name, inventory in use)
// and wrote nothing; the caller takes the step-by-step path, which tells
// exactly what is wrong.
var ErrFallBack = errors.New("optimistic write refused")

// fallBack reports whether an error of a one-round-trip write is one of
// its own refusals: an integrity error (its checks make the generation
// NULL, see casError) rather than a failure of the database.
func fallBack(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && strings.HasPrefix(pgErr.Code, "23")
}

// syncProviderTraitsChecked is syncProviderTraits for the one-round-trip
// write: by uuid, and refusing (a NULL generation) unless the provider is
// at $3 and every one of the $4 distinct names $2 is a trait. The row is
// rewritten even when the set did not change, with its generation and
// updated_at unchanged.
const syncProviderTraitsChecked = `WITH rp AS (SELECT id FROM resource_providers WHERE uuid = $1::uuid),
t AS (SELECT id FROM traits WHERE name = ANY($2::text[])),
del AS (DELETE FROM resource_provider_traits
	WHERE resource_provider_id = (SELECT id FROM rp) AND trait_id NOT IN (SELECT id FROM t) RETURNING 1),
ins AS (INSERT INTO resource_provider_traits (resource_provider_id, trait_id)
	SELECT (SELECT id FROM rp), id FROM t ON CONFLICT DO NOTHING RETURNING 1),
changed AS (SELECT EXISTS (SELECT 1 FROM del) OR EXISTS (SELECT 1 FROM ins) AS yes)
UPDATE resource_providers SET
	generation = CASE WHEN generation = $3::integer AND (SELECT count(*) FROM t) = $4::bigint
		THEN generation + CASE WHEN (SELECT yes FROM changed) THEN 1 ELSE 0 END END,
	updated_at = CASE WHEN (SELECT yes FROM changed) THEN now() ELSE updated_at END
WHERE id = (SELECT id FROM rp)
RETURNING generation`

// SetProviderTraitsAt makes names the trait set of the provider with the
// uuid if it is at generation expected, in one batch sent through send
// (a pg.BatchTx's Commit): lock, read the traits, write. It returns the
// traits and the provider's generation after the write. ErrFallBack
// when the provider, its generation or a trait is not as assumed.
func SetProviderTraitsAt(ctx context.Context, send Send, uuid string, expected int, names []string) ([]Trait, int, error) {
	distinct := map[string]bool{}
	for _, n := range names {
		distinct[n] = true
	}
	var traits []Trait
	gen := -1
	b := &pgx.Batch{}
	b.Queue(lockProviderByUUID, uuid)
	b.Queue(selectTraitColumns+" WHERE t.name = ANY($1) ORDER BY t.id", names).Query(func(rows pgx.Rows) error {
		var err error
		traits, err = scanTraits(rows)
		return err
	})
	b.Queue(syncProviderTraitsChecked, uuid, names, expected, len(distinct)).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			if err := rows.Scan(&gen); err != nil {
				return err
			}
		}
		return rows.Err()
	})
	err := send(ctx, b)
	if fallBack(err) {
		return nil, 0, ErrFallBack
	}
	if err != nil {
		return nil, 0, fmt.Errorf("setting traits of provider %s: %w", uuid, err)
	}
	if gen < 0 {
		return nil, 0, ErrFallBack
	}
	return traits, gen, nil
}
