package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

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

// bumpGenerations is IncrementGeneration for several providers at once. A
// provider no longer at its expected generation gets NULL, which the NOT
// NULL column refuses: the failure is an SQL error, so it also stops a
// COMMIT sent in the same batch (see pg.BatchTx). casError turns it into
// ErrProviderGeneration.
const bumpGenerations = `UPDATE resource_providers rp
SET generation = CASE WHEN rp.generation = x.expected THEN rp.generation + 1 END, updated_at = now()
FROM unnest($1::bigint[], $2::integer[]) AS x(id, expected)
WHERE rp.id = x.id`

// queueBumpGenerations queues the bump of every provider from its
// Generation; the caller advances Generation once the batch succeeded.
// bumpOneGeneration is bumpGenerations for one provider.
const bumpOneGeneration = `UPDATE resource_providers
SET generation = CASE WHEN generation = $2::integer THEN generation + 1 END, updated_at = now()
WHERE id = $1::bigint`

func queueBumpGenerations(b *pgx.Batch, ps []*LockedProvider) {
	if len(ps) == 0 {
		return
	}
	if len(ps) == 1 {
		b.Queue(bumpOneGeneration, ps[0].ID, int32(ps[0].Generation))
		return
	}
	ids := make([]int64, len(ps))
	expected := make([]int32, len(ps))
	for i, p := range ps {
		ids[i], expected[i] = p.ID, int32(p.Generation)
	}
	b.Queue(bumpGenerations, ids, expected)
}

// ErrProviderGeneration: a provider's generation compare-and-swap failed.
// It matches ErrConcurrentUpdate.
var ErrProviderGeneration = fmt.Errorf("provider generation changed: %w", ErrConcurrentUpdate)

// casError recognizes the failure of a generation compare-and-swap done
// by setting the generation NULL (bumpGenerations, writeConsumers); nil
// for any other error.
func casError(err error) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != pg.CodeNotNullViolation || pgErr.ColumnName != "generation" {
		return nil
	}
	if pgErr.TableName == "resource_providers" {
		return ErrProviderGeneration
	}
	return ErrConcurrentUpdate
}

var (
	// ErrParentNotFound: the parent named for a provider does not exist.
	ErrParentNotFound = errors.New("parent provider not found")
	// ErrProviderInUse: the provider still has allocations.
	ErrProviderInUse = errors.New("resource provider has allocations")
	// ErrProviderHasChildren: the provider is the parent of others.
	ErrProviderHasChildren = errors.New("resource provider has children")
	// ErrReparent: moving a provider that already has a parent is not
	// allowed at the caller's microversion.
	ErrReparent = errors.New("re-parenting not allowed")
	// ErrUnparent: making a child a root is not allowed at the caller's
	// microversion.
	ErrUnparent = errors.New("un-parenting not allowed")
	// ErrProviderLoop: the new parent is the provider or one of its
	// descendants.
	ErrProviderLoop = errors.New("provider tree loop")
)

// DuplicateProviderError names the unique column a create or rename
// collided on ("uuid" or "name"); it matches ErrExists.
type DuplicateProviderError struct{ Column string }

func (e *DuplicateProviderError) Error() string { return "duplicate resource provider " + e.Column }

// Is makes errors.Is(err, ErrExists) true.
func (e *DuplicateProviderError) Is(target error) bool { return target == ErrExists }

func duplicateProvider(err error) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != pg.CodeUniqueViolation {
		return nil
	}
	if strings.Contains(pgErr.ConstraintName, "uuid") {
		return &DuplicateProviderError{Column: "uuid"}
	}
	return &DuplicateProviderError{Column: "name"}
}

const nameTaken = `SELECT EXISTS (SELECT 1 FROM resource_providers WHERE name = $1)`

// ProviderNameTaken reports whether a provider has the name. Upstream's
// database checks the name before the uuid, so a create colliding on both
// reports the name; the caller asks this after its transaction failed.
func ProviderNameTaken(ctx context.Context, db pg.DBTX, name string) (bool, error) {
	var taken bool
	if err := db.QueryRow(ctx, nameTaken, name).Scan(&taken); err != nil {
		return false, fmt.Errorf("looking up provider name %q: %w", name, err)
	}
	return taken, nil
}

const lockProviderByUUID = selectProviderByUUID + ` FOR UPDATE OF rp`

// LockProvider loads a provider like GetProvider and locks its row until
// the transaction ends, so that writers checking a client's generation
// are serialized and the loser sees the winner's generation.
func LockProvider(ctx context.Context, db pg.DBTX, uuid string) (*Provider, error) {
	p, err := scanProvider(db.QueryRow(ctx, lockProviderByUUID, uuid))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("locking resource provider %s: %w", uuid, err)
	}
	return p, nil
}

// providerIDs are the internal ids of a provider, its parent and root.
type providerIDs struct {
	id, root int64
	parent   *int64
}

const selectProviderIDs = `SELECT id, root_provider_id, parent_provider_id FROM resource_providers WHERE uuid = $1`

func lookupProviderIDs(ctx context.Context, db pg.DBTX, uuid string) (*providerIDs, error) {
	if !IsStoredUUID(uuid) {
		return nil, nil
	}
	var ids providerIDs
	var root *int64
	err := db.QueryRow(ctx, selectProviderIDs, uuid).Scan(&ids.id, &root, &ids.parent)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("looking up provider %s: %w", uuid, err)
	}
	ids.root = ids.id
	if root != nil {
		ids.root = *root
	}
	return &ids, nil
}

// insertRootProvider takes its id first so that the provider can point
// root_provider_id at itself in the same statement. A root gets an
// updated_at, as upstream writes it twice (insert, then its root id)
// while a child is only inserted; the PUT response shows the difference.
const insertRootProvider = `WITH new AS (SELECT nextval(pg_get_serial_sequence('resource_providers', 'id')) AS id)
INSERT INTO resource_providers (id, uuid, name, root_provider_id, updated_at)
SELECT new.id, $1, $2, new.id, now() FROM new
RETURNING id, uuid::text, name, generation, NULL::text, uuid::text, created_at, updated_at`

// insertChildProvider inserts under the parent with the uuid $3 and
// inserts nothing when there is none.
const insertChildProvider = `INSERT INTO resource_providers AS rp (uuid, name, parent_provider_id, root_provider_id)
SELECT $1, $2, parent.id, COALESCE(parent.root_provider_id, parent.id)
FROM resource_providers parent WHERE parent.uuid = $3
RETURNING rp.id, rp.uuid::text, rp.name, rp.generation,
	(SELECT p.uuid::text FROM resource_providers p WHERE p.id = rp.parent_provider_id),
	(SELECT r.uuid::text FROM resource_providers r WHERE r.id = rp.root_provider_id),
	rp.created_at, rp.updated_at`

// treeLock serializes changes of tree shape (a provider created under a
// parent, a provider moved): without it two concurrent moves could make a
// loop, or a child created while its parent moves could get a stale root.
const treeLock = `SELECT pg_advisory_xact_lock(7311580612401)`

func lockTrees(ctx context.Context, db pg.DBTX) error {
	if _, err := db.Exec(ctx, treeLock); err != nil {
		return fmt.Errorf("locking provider trees: %w", err)
	}
	return nil
}

// CreateProvider inserts a provider, under parentUUID when it is not nil,
// in one round trip. Outside a transaction the statements of a batch form
// one implicit transaction, so the tree lock taken for a child is held
// until the insert (a later statement, with a snapshot taken after the
// lock) has committed.
// Errors: ErrParentNotFound, *DuplicateProviderError (ErrExists).
func CreateProvider(ctx context.Context, db pg.DBTX, uuid, name string, parentUUID *string) (*Provider, error) {
	if parentUUID != nil && !IsStoredUUID(*parentUUID) {
		return nil, ErrParentNotFound
	}
	var p *Provider
	b := &pgx.Batch{}
	var q *pgx.QueuedQuery
	if parentUUID == nil {
		q = b.Queue(insertRootProvider, uuid, name)
	} else {
		b.Queue(treeLock)
		q = b.Queue(insertChildProvider, uuid, name, *parentUUID)
	}
	q.Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var err error
			if p, err = scanProvider(rows); err != nil {
				return err
			}
		}
		return rows.Err()
	})
	if err := db.SendBatch(ctx, b).Close(); err != nil {
		if dup := duplicateProvider(err); dup != nil {
			return nil, dup
		}
		if pg.HasCode(err, pg.CodeForeignKeyViolation) {
			// The parent went away between the lookup and the insert.
			return nil, ErrParentNotFound
		}
		return nil, fmt.Errorf("creating resource provider %s: %w", uuid, err)
	}
	if p == nil {
		return nil, ErrParentNotFound
	}
	return p, nil
}

// ProviderUpdate is a PUT of a provider: a new name and, when SetParent,
// a new parent (nil: none).
type ProviderUpdate struct {
	Name       string
	SetParent  bool
	ParentUUID *string
	// AllowReparent permits moving a provider that has a parent and
	// making a child a root (microversion 1.37).
	AllowReparent bool
}

const (
	renameProvider = `UPDATE resource_providers SET name = $2, updated_at = now() WHERE id = $1`
	moveProvider   = `UPDATE resource_providers SET name = $2, parent_provider_id = $3, root_provider_id = $4,
	updated_at = now() WHERE id = $1`
	// subtreeIDs lists a provider and all its descendants.
	subtreeIDs = `WITH RECURSIVE sub(id) AS (
	SELECT id FROM resource_providers WHERE id = $1
	UNION SELECT rp.id FROM resource_providers rp JOIN sub ON rp.parent_provider_id = sub.id)
SELECT id FROM sub`
	setSubtreeRoot = `UPDATE resource_providers SET root_provider_id = $2 WHERE id = ANY($1)`
)

// UpdateProvider renames and possibly re-parents the provider, returning
// it as it was and as it is now; the generation does not change. The descendants of a moved provider follow
// it into its new tree. db must be a transaction: the tree lock (see
// treeLock) is taken before any row lock, so that it cannot be part of a
// deadlock. Errors: ErrNotFound, ErrParentNotFound, ErrReparent,
// ErrUnparent, ErrProviderLoop, *DuplicateProviderError.
func UpdateProvider(ctx context.Context, db pg.DBTX, uuid string, u ProviderUpdate) (before, after *Provider, err error) {
	if err := lockTrees(ctx, db); err != nil {
		return nil, nil, err
	}
	p, err := GetProvider(ctx, db, uuid)
	if err != nil {
		return nil, nil, err
	}
	me, err := lookupProviderIDs(ctx, db, p.UUID)
	if err != nil {
		return nil, nil, err
	}
	if me == nil {
		return nil, nil, ErrNotFound
	}
	parent := p.ParentUUID
	if u.SetParent {
		parent = u.ParentUUID
	}
	var newParent *int64
	newRoot := me.id
	if parent != nil {
		pids, err := lookupProviderIDs(ctx, db, *parent)
		if err != nil {
			return nil, nil, err
		}
		if pids == nil {
			return nil, nil, ErrParentNotFound
		}
		if me.parent != nil && *me.parent != pids.id && !u.AllowReparent {
			return nil, nil, ErrReparent
		}
		newParent, newRoot = &pids.id, pids.root
	} else if me.parent != nil && !u.AllowReparent {
		return nil, nil, ErrUnparent
	}
	move := (newParent == nil) != (me.parent == nil) || newParent != nil && *newParent != *me.parent
	// Like upstream's ORM, write nothing (and so keep updated_at) when
	// nothing changes.
	if !move && u.Name == p.Name {
		return p, p, nil
	}
	if !move {
		if _, err := db.Exec(ctx, renameProvider, me.id, u.Name); err != nil {
			if dup := duplicateProvider(err); dup != nil {
				return nil, nil, dup
			}
			return nil, nil, fmt.Errorf("renaming resource provider %s: %w", p.UUID, err)
		}
		after, err := GetProvider(ctx, db, p.UUID)
		return p, after, err
	}
	sub, err := collectIDs(ctx, db, subtreeIDs, me.id)
	if err != nil {
		return nil, nil, fmt.Errorf("listing the subtree of %s: %w", p.UUID, err)
	}
	if newParent != nil {
		for _, id := range sub {
			if id == *newParent {
				return nil, nil, ErrProviderLoop
			}
		}
	}
	if _, err := db.Exec(ctx, moveProvider, me.id, u.Name, newParent, newRoot); err != nil {
		if dup := duplicateProvider(err); dup != nil {
			return nil, nil, dup
		}
		if pg.HasCode(err, pg.CodeForeignKeyViolation) {
			return nil, nil, ErrParentNotFound
		}
		return nil, nil, fmt.Errorf("moving resource provider %s: %w", p.UUID, err)
	}
	if _, err := db.Exec(ctx, setSubtreeRoot, sub, newRoot); err != nil {
		return nil, nil, fmt.Errorf("updating the tree root below %s: %w", p.UUID, err)
	}
	after, err = GetProvider(ctx, db, p.UUID)
	return p, after, err
}

func collectIDs(ctx context.Context, db pg.DBTX, sql string, args ...any) ([]int64, error) {
	rows, err := db.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[int64])
}

const (
	hasChildren    = `SELECT EXISTS (SELECT 1 FROM resource_providers WHERE parent_provider_id = $1)`
	hasAllocations = `SELECT EXISTS (SELECT 1 FROM allocations WHERE resource_provider_id = $1)`
	// Inventories, trait and aggregate links go by ON DELETE CASCADE.
	deleteProviderRow = `DELETE FROM resource_providers WHERE id = $1`
)

// DeleteProvider removes a provider with its inventories, trait and
// aggregate links. The caller should hold the provider's row lock
// (LockProvider) so no allocation slips in. Errors: ErrProviderHasChildren,
// ErrProviderInUse, ErrNotFound.
func DeleteProvider(ctx context.Context, db pg.DBTX, id int64) error {
	var yes bool
	if err := db.QueryRow(ctx, hasChildren, id).Scan(&yes); err != nil {
		return fmt.Errorf("checking children of provider %d: %w", id, err)
	}
	if yes {
		return ErrProviderHasChildren
	}
	if err := db.QueryRow(ctx, hasAllocations, id).Scan(&yes); err != nil {
		return fmt.Errorf("checking allocations of provider %d: %w", id, err)
	}
	if yes {
		return ErrProviderInUse
	}
	tag, err := db.Exec(ctx, deleteProviderRow, id)
	if err != nil {
		if pg.HasCode(err, pg.CodeForeignKeyViolation) {
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && strings.Contains(pgErr.TableName, "allocations") {
				return ErrProviderInUse
			}
			return ErrProviderHasChildren
		}
		return fmt.Errorf("deleting provider %d: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}

// IsStoredUUID reports whether s is a uuid in the form providers are
// stored and compared in (lowercase, dashed). Upstream matches provider
// uuids as text, so any other spelling names no provider.
func IsStoredUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
	}
	return true
}

// ProviderFilter selects providers for GET /resource_providers. Every set
// field narrows the result (AND). UUID and InTree match the stored text.
type ProviderFilter struct {
	Name   *string
	UUID   *string
	InTree *string
	// MemberOf: the provider is in at least one aggregate of every inner
	// list.
	MemberOf      [][]string
	ForbiddenAggs []string
	// RequiredTraits: the provider has at least one trait of every inner
	// list.
	RequiredTraits  [][]string
	ForbiddenTraits []string
	// Resources: the provider alone can supply each amount, within its
	// capacity, min_unit, max_unit and step_size.
	Resources []ResourceAmount
}

// ResourceAmount is a requested amount of one resource class.
type ResourceAmount struct {
	Class  string
	Amount int64
}

// TraitNotFoundError names traits that do not exist; it matches ErrNotFound.
type TraitNotFoundError struct{ Names []string }

func (e *TraitNotFoundError) Error() string {
	return "No such trait(s): " + strings.Join(e.Names, ", ") + "."
}

// Is makes errors.Is(err, ErrNotFound) true.
func (e *TraitNotFoundError) Is(target error) bool { return target == ErrNotFound }

// ResourceClassNotFoundError names a resource class that does not exist;
// it matches ErrNotFound.
type ResourceClassNotFoundError struct{ Name string }

func (e *ResourceClassNotFoundError) Error() string { return "No such resource class " + e.Name + "." }

// Is makes errors.Is(err, ErrNotFound) true.
func (e *ResourceClassNotFoundError) Is(target error) bool { return target == ErrNotFound }

const (
	selectTraitIDsByName = `SELECT name, id FROM traits WHERE name = ANY($1)`
	selectClassIDsByName = `SELECT name, id FROM resource_classes WHERE name = ANY($1)`
	selectTreeRoot       = `SELECT COALESCE(root_provider_id, id) FROM resource_providers WHERE uuid = $1`
)

func idsByName(ctx context.Context, db pg.DBTX, sql string, names []string) (map[string]int64, error) {
	rows, err := db.Query(ctx, sql, names)
	if err != nil {
		return nil, err
	}
	out := make(map[string]int64, len(names))
	var name string
	var id int64
	_, err = pgx.ForEachRow(rows, []any{&name, &id}, func() error {
		out[name] = id
		return nil
	})
	return out, err
}

// query is a WHERE clause under construction.
type query struct {
	conds []string
	args  []any
}

func (q *query) arg(v any) string {
	q.args = append(q.args, v)
	return "$" + strconv.Itoa(len(q.args))
}

func (q *query) where(cond string) { q.conds = append(q.conds, cond) }

func (q *query) sql() string {
	if len(q.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(q.conds, " AND ")
}

const (
	condTraitsAny = `EXISTS (SELECT 1 FROM resource_provider_traits t WHERE t.resource_provider_id = rp.id AND t.trait_id = ANY(%s))`
	condAggsAny   = `EXISTS (SELECT 1 FROM resource_provider_aggregates ra JOIN placement_aggregates a ON a.id = ra.aggregate_id
	WHERE ra.resource_provider_id = rp.id AND a.uuid = ANY(%s::uuid[]))`
	condResource = `EXISTS (SELECT 1 FROM inventories inv
	WHERE inv.resource_provider_id = rp.id AND inv.resource_class_id = %[1]s
	AND COALESCE((SELECT SUM(al.used) FROM allocations al
		WHERE al.resource_provider_id = rp.id AND al.resource_class_id = %[1]s), 0)::numeric + %[2]s
		<= (inv.total - inv.reserved) * inv.allocation_ratio
	AND inv.min_unit <= %[2]s AND inv.max_unit >= %[2]s AND %[2]s %% inv.step_size = 0)`
)

// ListProviders returns the providers matching f in id order. It checks
// the filters in upstream's order, returning an empty list as soon as one
// cannot match, so an unknown trait or class named after such a filter is
// not reported (as upstream). Errors: *TraitNotFoundError,
// *ResourceClassNotFoundError.
func ListProviders(ctx context.Context, db pg.DBTX, f ProviderFilter) ([]*Provider, error) {
	var q query
	if f.Name != nil {
		q.where("rp.name = " + q.arg(*f.Name))
	}
	if f.UUID != nil {
		if IsStoredUUID(*f.UUID) {
			q.where("rp.uuid = " + q.arg(*f.UUID))
		} else {
			q.where("FALSE")
		}
	}
	if f.InTree != nil {
		if !IsStoredUUID(*f.InTree) {
			return nil, nil
		}
		var root int64
		err := db.QueryRow(ctx, selectTreeRoot, *f.InTree).Scan(&root)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("looking up tree of %s: %w", *f.InTree, err)
		}
		q.where("COALESCE(rp.root_provider_id, rp.id) = " + q.arg(root))
	}
	if len(f.RequiredTraits) > 0 {
		var all []string
		for _, anyOf := range f.RequiredTraits {
			all = append(all, anyOf...)
		}
		ids, err := idsByName(ctx, db, selectTraitIDsByName, all)
		if err != nil {
			return nil, fmt.Errorf("looking up required traits: %w", err)
		}
		var only query
		for _, anyOf := range f.RequiredTraits {
			set := make([]int64, 0, len(anyOf))
			for _, n := range anyOf {
				id, ok := ids[n]
				if !ok {
					return nil, &TraitNotFoundError{Names: []string{n}}
				}
				set = append(set, id)
			}
			q.where(fmt.Sprintf(condTraitsAny, q.arg(set)))
			only.where(fmt.Sprintf(condTraitsAny, only.arg(set)))
		}
		if ok, err := anyProvider(ctx, db, &only); err != nil || !ok {
			return nil, err
		}
	}
	if len(f.ForbiddenTraits) > 0 {
		ids, err := idsByName(ctx, db, selectTraitIDsByName, f.ForbiddenTraits)
		if err != nil {
			return nil, fmt.Errorf("looking up forbidden traits: %w", err)
		}
		set := make([]int64, 0, len(f.ForbiddenTraits))
		for _, n := range f.ForbiddenTraits {
			id, ok := ids[n]
			if !ok {
				return nil, &TraitNotFoundError{Names: []string{n}}
			}
			set = append(set, id)
		}
		q.where("NOT " + fmt.Sprintf(condTraitsAny, q.arg(set)))
	}
	if len(f.MemberOf) > 0 {
		var only query
		for _, anyOf := range f.MemberOf {
			q.where(fmt.Sprintf(condAggsAny, q.arg(anyOf)))
			only.where(fmt.Sprintf(condAggsAny, only.arg(anyOf)))
		}
		if ok, err := anyProvider(ctx, db, &only); err != nil || !ok {
			return nil, err
		}
	}
	if len(f.ForbiddenAggs) > 0 {
		q.where("NOT " + fmt.Sprintf(condAggsAny, q.arg(f.ForbiddenAggs)))
	}
	if len(f.Resources) > 0 {
		names := make([]string, len(f.Resources))
		for i, ra := range f.Resources {
			names[i] = ra.Class
		}
		ids, err := idsByName(ctx, db, selectClassIDsByName, names)
		if err != nil {
			return nil, fmt.Errorf("looking up resource classes: %w", err)
		}
		for _, ra := range f.Resources {
			id, ok := ids[ra.Class]
			if !ok {
				return nil, &ResourceClassNotFoundError{Name: ra.Class}
			}
			q.where(fmt.Sprintf(condResource, q.arg(id), q.arg(ra.Amount)+"::bigint"))
		}
	}
	rows, err := db.Query(ctx, selectProviderColumns+q.sql()+" ORDER BY rp.id", q.args...)
	if err != nil {
		return nil, fmt.Errorf("listing resource providers: %w", err)
	}
	defer rows.Close()
	var out []*Provider
	for rows.Next() {
		p, err := scanProvider(rows)
		if err != nil {
			return nil, fmt.Errorf("listing resource providers: %w", err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing resource providers: %w", err)
	}
	return out, nil
}

// anyProvider reports whether some provider matches q alone.
func anyProvider(ctx context.Context, db pg.DBTX, q *query) (bool, error) {
	var ok bool
	err := db.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM resource_providers rp"+q.sql()+")", q.args...).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("matching resource providers: %w", err)
	}
	return ok, nil
}
