package store

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/unisched/unisched/internal/pg"
)

// LockedProvider is a resource provider row held FOR NO KEY UPDATE by the
// current transaction, with the generation read under that lock.
type LockedProvider struct {
	ID         int64
	UUID       string
	Generation int
}

// Every writer of a provider's allocations or inventory takes this row lock
// (claims here, generation bumps elsewhere through IncrementGeneration's
// UPDATE), so whoever holds it sees all committed usage of the provider and
// no other claim can change it before commit. Locks are taken in id order so
// that claims naming overlapping providers cannot deadlock. NO KEY UPDATE
// (rather than UPDATE) leaves foreign-key checks of other tables, such as a
// child provider being created, unblocked.
// (The UNION keeps both lookups on their indexes; an OR of the two scans
// every provider.) $2 names consumers whose allocations all go: the
// providers they hold get their generations bumped too.
const lockProviders = `SELECT id, uuid::text, generation FROM resource_providers
WHERE id IN (SELECT id FROM resource_providers WHERE uuid = ANY($1::uuid[])
             UNION
             SELECT a.resource_provider_id FROM allocations a JOIN consumers c ON c.id = a.consumer_id
             WHERE c.uuid = ANY($2::uuid[]))
ORDER BY id FOR NO KEY UPDATE`

// lockNamedProviders is lockProviders when no consumer is emptied, the
// common case: simpler to plan, and its generic plan is as good.
const lockNamedProviders = `SELECT id, uuid::text, generation FROM resource_providers
WHERE uuid = ANY($1::uuid[]) ORDER BY id FOR NO KEY UPDATE`

// lockNamedProvider is lockNamedProviders for one provider.
const lockNamedProvider = `SELECT id, uuid::text, generation FROM resource_providers
WHERE uuid = $1::uuid FOR NO KEY UPDATE`

func queueLockProviders(b *pgx.Batch, uuids, emptied []string, out map[string]*LockedProvider) {
	var q *pgx.QueuedQuery
	switch {
	case len(emptied) == 0 && len(uuids) == 1:
		q = b.Queue(lockNamedProvider, uuids[0])
	case len(emptied) == 0:
		q = b.Queue(lockNamedProviders, nonNil(uuids))
	default:
		q = b.Queue(lockProviders, nonNil(uuids), emptied)
	}
	q.Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var p LockedProvider
			if err := rows.Scan(&p.ID, &p.UUID, &p.Generation); err != nil {
				return fmt.Errorf("reading resource provider: %w", err)
			}
			out[p.UUID] = &p
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("locking resource providers: %w", err)
		}
		return nil
	})
}

// LockProviders locks the providers named by uuid (canonical form) plus
// those holding allocations of the emptied consumers (uuids), and returns
// them keyed by uuid. Missing uuids are simply absent from the result.
func LockProviders(ctx context.Context, db pg.DBTX, uuids, emptied []string) (map[string]*LockedProvider, error) {
	out := make(map[string]*LockedProvider)
	b := &pgx.Batch{}
	queueLockProviders(b, uuids, emptied, out)
	if err := db.SendBatch(ctx, b).Close(); err != nil {
		return nil, err
	}
	return out, nil
}

// ConsumerProviderAllocation is one existing allocation row of a consumer,
// as a claim that empties the consumer needs it.
type ConsumerProviderAllocation struct {
	ConsumerID int64
	ProviderID int64
	ClassID    int
	ClassName  string
}

const selectConsumerAllocationKeys = `SELECT a.consumer_id, a.resource_provider_id, a.resource_class_id, rc.name
FROM allocations a JOIN consumers c ON c.id = a.consumer_id
JOIN resource_classes rc ON rc.id = a.resource_class_id
WHERE c.uuid = ANY($1::uuid[]) ORDER BY a.id`

func queueAllocationKeys(b *pgx.Batch, consumers []string, out *[]ConsumerProviderAllocation) {
	b.Queue(selectConsumerAllocationKeys, consumers).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var a ConsumerProviderAllocation
			var classID int32
			if err := rows.Scan(&a.ConsumerID, &a.ProviderID, &classID, &a.ClassName); err != nil {
				return fmt.Errorf("reading allocation: %w", err)
			}
			a.ClassID = int(classID)
			*out = append(*out, a)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("listing allocations of consumers: %w", err)
		}
		return nil
	})
}

const deleteAllocationsOfConsumers = `DELETE FROM allocations WHERE consumer_id = ANY($1)`

// InventoryUsage is one inventory record with the sum of the allocations
// against it.
type InventoryUsage struct {
	ProviderID      int64
	ClassID         int
	Total           int
	Reserved        int
	MinUnit         int
	MaxUnit         int
	StepSize        int
	AllocationRatio float64
	Used            int64
}

// Capacity is what may be allocated in all: (total - reserved) * ratio,
// unrounded, as the claim compares it.
func (u InventoryUsage) Capacity() float64 {
	return float64(u.Total-u.Reserved) * u.AllocationRatio
}

// selectClaimUsage reads the inventories a claim draws on: of the named
// providers ($1) and those holding allocations of emptied consumers ($2),
// in the named classes ($3) and those of the emptied consumers'
// allocations. Usage leaves out the allocations of the consumers being
// written ($4), which the claim replaces. Read under the provider locks,
// the figures cannot change before the transaction ends.
const selectClaimUsage = `SELECT i.resource_provider_id, i.resource_class_id, i.total, i.reserved,
	i.min_unit, i.max_unit, i.step_size, i.allocation_ratio,
	COALESCE((SELECT sum(a.used) FROM allocations a
		WHERE a.resource_provider_id = i.resource_provider_id
		  AND a.resource_class_id = i.resource_class_id
		  AND a.consumer_id <> ALL (ARRAY(SELECT id FROM consumers WHERE uuid = ANY($4::uuid[])))), 0)
FROM inventories i
WHERE i.resource_provider_id IN (SELECT id FROM resource_providers WHERE uuid = ANY($1::uuid[])
		UNION SELECT a.resource_provider_id FROM allocations a JOIN consumers c ON c.id = a.consumer_id
		WHERE c.uuid = ANY($2::uuid[]))
  AND i.resource_class_id IN (SELECT id FROM resource_classes WHERE name = ANY($3::text[])
		UNION SELECT a.resource_class_id FROM allocations a JOIN consumers c ON c.id = a.consumer_id
		WHERE c.uuid = ANY($2::uuid[]))`

// selectNamedUsage is selectClaimUsage when no consumer is emptied, the
// common case: simpler to plan, and its generic plan is as good.
const selectNamedUsage = `SELECT i.resource_provider_id, i.resource_class_id, i.total, i.reserved,
	i.min_unit, i.max_unit, i.step_size, i.allocation_ratio,
	COALESCE((SELECT sum(a.used) FROM allocations a
		WHERE a.resource_provider_id = i.resource_provider_id
		  AND a.resource_class_id = i.resource_class_id
		  AND a.consumer_id <> ALL (ARRAY(SELECT id FROM consumers WHERE uuid = ANY($3::uuid[])))), 0)
FROM resource_providers rp JOIN inventories i ON i.resource_provider_id = rp.id
WHERE rp.uuid = ANY($1::uuid[])
  AND i.resource_class_id IN (SELECT id FROM resource_classes WHERE name = ANY($2::text[]))`

// selectOneUsage is selectNamedUsage for one provider and one consumer.
const selectOneUsage = `SELECT i.resource_provider_id, i.resource_class_id, i.total, i.reserved,
	i.min_unit, i.max_unit, i.step_size, i.allocation_ratio,
	COALESCE((SELECT sum(a.used) FROM allocations a
		WHERE a.resource_provider_id = i.resource_provider_id
		  AND a.resource_class_id = i.resource_class_id
		  AND a.consumer_id <> ALL (ARRAY(SELECT id FROM consumers WHERE uuid = $3::uuid))), 0)
FROM resource_providers rp JOIN inventories i ON i.resource_provider_id = rp.id
WHERE rp.uuid = $1::uuid
  AND i.resource_class_id IN (SELECT id FROM resource_classes WHERE name = ANY($2::text[]))`

func queueClaimUsage(b *pgx.Batch, providers, emptied, classes, consumers []string, out *[]InventoryUsage) {
	var q *pgx.QueuedQuery
	switch {
	case len(emptied) == 0 && len(providers) == 1 && len(consumers) == 1:
		q = b.Queue(selectOneUsage, providers[0], classes, consumers[0])
	case len(emptied) == 0:
		q = b.Queue(selectNamedUsage, providers, classes, consumers)
	default:
		q = b.Queue(selectClaimUsage, providers, emptied, classes, consumers)
	}
	q.Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var u InventoryUsage
			var classID, total, reserved, minUnit, maxUnit, step int32
			if err := rows.Scan(&u.ProviderID, &classID, &total, &reserved, &minUnit, &maxUnit, &step,
				&u.AllocationRatio, &u.Used); err != nil {
				return fmt.Errorf("reading inventory usage: %w", err)
			}
			u.ClassID, u.Total, u.Reserved = int(classID), int(total), int(reserved)
			u.MinUnit, u.MaxUnit, u.StepSize = int(minUnit), int(maxUnit), int(step)
			*out = append(*out, u)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("reading inventory usage: %w", err)
		}
		return nil
	})
}

// ClaimRead names what a claim reads before it decides. A claim reads it
// all in its first round trip; the reshaper, which changes inventories in
// between, in parts. Empty parts are not read.
type ClaimRead struct {
	// Consumers are the consumers written (canonical uuids): the existing
	// ones are locked and loaded.
	Consumers []string
	// Projects, Users and ConsumerTypes are looked up; EnsureOwners
	// creates the missing ones.
	Projects, Users, ConsumerTypes []string
	// LockProviders locks Providers and those holding allocations of
	// Emptied, in id order.
	LockProviders bool
	Providers     []string
	// Emptied consumers lose all their allocations.
	Emptied []string
	// Removed reads the allocation keys of Emptied.
	Removed bool
	// Classes are resolved to ids.
	Classes []string
	// Usage reads the inventories and usage the claim draws on (see
	// selectClaimUsage), without the allocations of Replacing.
	Usage     bool
	Replacing []string
}

// ClaimState is what a claim has read. ReadClaim creates its maps.
type ClaimState struct {
	Consumers  map[string]*Consumer
	ProjectIDs map[string]int64
	UserIDs    map[string]int64
	TypeIDs    map[string]int64
	Providers  map[string]*LockedProvider
	ClassIDs   map[string]int
	Removed    []ConsumerProviderAllocation
	Usages     []InventoryUsage
}

// ReadClaim reads the parts of r into st with one batch sent through
// send, in the order that keeps claims from deadlocking: consumers, then
// providers, then what the locks protect.
func ReadClaim(ctx context.Context, send Send, r ClaimRead, st *ClaimState) error {
	if st.Consumers == nil {
		st.Consumers = map[string]*Consumer{}
		st.ProjectIDs, st.UserIDs, st.TypeIDs = map[string]int64{}, map[string]int64{}, map[string]int64{}
		st.Providers = map[string]*LockedProvider{}
		st.ClassIDs = map[string]int{}
	}
	b := &pgx.Batch{}
	if len(r.Consumers) > 0 {
		queueLockConsumers(b, r.Consumers, st.Consumers)
	}
	if len(r.Projects)+len(r.Users)+len(r.ConsumerTypes) > 0 {
		queueOwnerIDs(b, r.Projects, r.Users, r.ConsumerTypes, st)
	}
	if r.LockProviders {
		queueLockProviders(b, r.Providers, r.Emptied, st.Providers)
	}
	if r.Removed && len(r.Emptied) > 0 {
		queueAllocationKeys(b, r.Emptied, &st.Removed)
	}
	if len(r.Classes) > 0 {
		queueClassIDs(b, r.Classes, st.ClassIDs)
	}
	if r.Usage {
		queueClaimUsage(b, nonNil(r.Providers), nonNil(r.Emptied), nonNil(r.Classes), nonNil(r.Replacing), &st.Usages)
	}
	return send(ctx, b)
}

// standardClassIDs maps the os-resource-classes names to their ids. They
// are fixed: the standard classes are seeded with these ids at start and
// can be neither renamed nor deleted.
var standardClassIDs = sync.OnceValue(func() map[string]int {
	out := map[string]int{}
	for _, rc := range StandardResourceClasses() {
		out[rc.Name] = rc.ID
	}
	return out
})

// queueClassIDs is ResourceClassIDs for a batch: the classes among names
// go into out. Standard classes need no lookup; only custom names are
// sent to the database, if any.
func queueClassIDs(b *pgx.Batch, names []string, out map[string]int) {
	std := standardClassIDs()
	var custom []string
	for _, n := range names {
		if id, ok := std[n]; ok {
			out[n] = id
		} else {
			custom = append(custom, n)
		}
	}
	if len(custom) == 0 {
		return
	}
	b.Queue(classIDsByName, custom).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var name string
			var id int
			if err := rows.Scan(&name, &id); err != nil {
				return fmt.Errorf("looking up resource classes: %w", err)
			}
			out[name] = id
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("looking up resource classes: %w", err)
		}
		return nil
	})
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// NewAllocation is an allocation row to insert.
type NewAllocation struct {
	ProviderID   int64
	ConsumerUUID string
	ClassID      int
	Used         int
}

// Allocations are inserted in the order given (GET lists them by id);
// their consumers are found by uuid, as the claim creates new consumers in
// the same batch.
const insertAllocations = `INSERT INTO allocations (resource_provider_id, consumer_id, resource_class_id, used)
SELECT x.rp, c.id, x.rc, x.used
FROM unnest($1::bigint[], $2::uuid[], $3::integer[], $4::integer[]) WITH ORDINALITY AS x(rp, consumer, rc, used, n)
JOIN consumers c ON c.uuid = x.consumer
ORDER BY x.n`

// insertConsumerAllocations is insertAllocations for one consumer.
const insertConsumerAllocations = `INSERT INTO allocations (resource_provider_id, consumer_id, resource_class_id, used)
SELECT x.rp, c.id, x.rc, x.used
FROM unnest($1::bigint[], $3::integer[], $4::integer[]) WITH ORDINALITY AS x(rp, rc, used, n), consumers c
WHERE c.uuid = $2::uuid
ORDER BY x.n`

func queueInsertAllocations(b *pgx.Batch, allocs []NewAllocation) {
	if len(allocs) == 0 {
		return
	}
	oneConsumer := true
	for _, a := range allocs {
		oneConsumer = oneConsumer && a.ConsumerUUID == allocs[0].ConsumerUUID
	}
	rps := make([]int64, len(allocs))
	cons := make([]string, len(allocs))
	rcs := make([]int32, len(allocs))
	used := make([]int32, len(allocs))
	for i, a := range allocs {
		rps[i], cons[i], rcs[i], used[i] = a.ProviderID, a.ConsumerUUID, int32(a.ClassID), int32(a.Used)
	}
	if oneConsumer {
		b.Queue(insertConsumerAllocations, rps, cons[0], rcs, used)
		return
	}
	b.Queue(insertAllocations, rps, cons, rcs, used)
}

// ClaimWrite is what a claim decided to write.
type ClaimWrite struct {
	// Replaced are existing consumers whose allocations all go first.
	Replaced []int64
	// NewConsumers are created (at generation 1).
	NewConsumers []*Consumer
	// Allocations are the new rows.
	Allocations []NewAllocation
	// Providers get their generations bumped from Generation (updated).
	Providers []*LockedProvider
	// Consumers (existing) are written with their project, user and type,
	// and their generations bumped from Generation (updated).
	Consumers []*Consumer
	// Emptied consumers are removed if left without allocations.
	Emptied []int64
}

// WriteClaim writes w with one batch sent through send, which may commit
// it (every failure is an SQL error, see pg.BatchTx). Errors: ErrExists (a
// new consumer was created concurrently), ErrProviderGeneration, and
// ErrConcurrentUpdate for a consumer's generation.
func WriteClaim(ctx context.Context, send Send, w *ClaimWrite) error {
	b := &pgx.Batch{}
	if len(w.Replaced) > 0 {
		b.Queue(deleteAllocationsOfConsumers, w.Replaced)
	}
	queueInsertConsumers(b, w.NewConsumers)
	queueInsertAllocations(b, w.Allocations)
	queueBumpGenerations(b, w.Providers)
	queueWriteConsumers(b, w.Consumers)
	if len(w.Emptied) > 0 {
		b.Queue(deleteConsumersWithoutAllocations, w.Emptied)
	}
	if err := send(ctx, b); err != nil {
		if e := casError(err); e != nil {
			return e
		}
		if pg.HasCode(err, pg.CodeUniqueViolation) {
			return ErrExists
		}
		return fmt.Errorf("writing allocations: %w", err)
	}
	for _, p := range w.Providers {
		p.Generation++
	}
	for _, c := range w.Consumers {
		c.Generation++
	}
	for _, c := range w.NewConsumers {
		c.Generation = 1
	}
	return nil
}

// ConsumerAllocation is one allocation of a consumer as GET
// /allocations/{consumer} shows it.
type ConsumerAllocation struct {
	ProviderUUID       string
	ProviderGeneration int
	ResourceClass      string
	Used               int
	CreatedAt          time.Time
	UpdatedAt          *time.Time
}

// ConsumerAllocations is a consumer with its allocations.
type ConsumerAllocations struct {
	Consumer
	// ConsumerType is the type's name, or nil for none.
	ConsumerType *string
	Allocations  []ConsumerAllocation
}

const selectConsumerAllocations = `SELECT c.id, c.uuid::text, c.generation, c.project_id, c.user_id,
	p.external_id, u.external_id, c.consumer_type_id, ct.name,
	rp.uuid::text, rp.generation, rc.name, a.used, a.created_at, a.updated_at
FROM consumers c
JOIN projects p ON p.id = c.project_id
JOIN users u ON u.id = c.user_id
LEFT JOIN consumer_types ct ON ct.id = c.consumer_type_id
JOIN allocations a ON a.consumer_id = c.id
JOIN resource_providers rp ON rp.id = a.resource_provider_id
JOIN resource_classes rc ON rc.id = a.resource_class_id
WHERE c.uuid = $1
ORDER BY a.id`

// GetConsumerAllocations returns the consumer and its allocations, or
// ErrNotFound when it holds none.
func GetConsumerAllocations(ctx context.Context, db pg.DBTX, consumerUUID string) (*ConsumerAllocations, error) {
	rows, err := db.Query(ctx, selectConsumerAllocations, consumerUUID)
	if err != nil {
		return nil, fmt.Errorf("listing allocations of consumer %s: %w", consumerUUID, err)
	}
	defer rows.Close()
	var out *ConsumerAllocations
	for rows.Next() {
		var c ConsumerAllocations
		var typeID *int32
		var a ConsumerAllocation
		var used int32
		if err := rows.Scan(&c.ID, &c.UUID, &c.Generation, &c.ProjectID, &c.UserID,
			&c.ProjectExternalID, &c.UserExternalID, &typeID, &c.ConsumerType,
			&a.ProviderUUID, &a.ProviderGeneration, &a.ResourceClass, &used, &a.CreatedAt, &a.UpdatedAt); err != nil {
			return nil, fmt.Errorf("reading allocation of consumer %s: %w", consumerUUID, err)
		}
		a.Used = int(used)
		if out == nil {
			if typeID != nil {
				t := int(*typeID)
				c.ConsumerTypeID = &t
			}
			out = &c
		}
		out.Allocations = append(out.Allocations, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing allocations of consumer %s: %w", consumerUUID, err)
	}
	if out == nil {
		return nil, ErrNotFound
	}
	return out, nil
}

// ProviderAllocation is one allocation against a provider as GET
// /resource_providers/{uuid}/allocations shows it.
type ProviderAllocation struct {
	ConsumerUUID       string
	ConsumerGeneration int
	ResourceClass      string
	Used               int
	CreatedAt          time.Time
	UpdatedAt          *time.Time
}

const selectProviderAllocations = `SELECT c.uuid::text, c.generation, rc.name, a.used, a.created_at, a.updated_at
FROM allocations a
JOIN consumers c ON c.id = a.consumer_id
JOIN resource_classes rc ON rc.id = a.resource_class_id
WHERE a.resource_provider_id = $1
ORDER BY a.id`

// ListProviderAllocations returns every allocation against the provider.
func ListProviderAllocations(ctx context.Context, db pg.DBTX, providerID int64) ([]ProviderAllocation, error) {
	rows, err := db.Query(ctx, selectProviderAllocations, providerID)
	if err != nil {
		return nil, fmt.Errorf("listing allocations of provider %d: %w", providerID, err)
	}
	defer rows.Close()
	var out []ProviderAllocation
	for rows.Next() {
		var a ProviderAllocation
		var used int32
		if err := rows.Scan(&a.ConsumerUUID, &a.ConsumerGeneration, &a.ResourceClass, &used, &a.CreatedAt, &a.UpdatedAt); err != nil {
			return nil, fmt.Errorf("reading allocation of provider %d: %w", providerID, err)
		}
		a.Used = int(used)
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing allocations of provider %d: %w", providerID, err)
	}
	return out, nil
}

// deleteConsumerAllocations locks the consumer row first, so the delete
// orders with concurrent claims for the same consumer instead of
// interleaving with them, then removes its allocations.
const (
	lockConsumerID            = `SELECT id FROM consumers WHERE uuid = $1 FOR UPDATE`
	deleteConsumerAllocations = `DELETE FROM allocations WHERE consumer_id = (SELECT id FROM consumers WHERE uuid = $1)`
	deleteConsumerByID        = `DELETE FROM consumers WHERE uuid = $1`
)

// DeleteAllAllocationsOfConsumer removes the consumer's allocations and the
// consumer itself, reporting ErrNotFound when it holds no allocations.
func DeleteAllAllocationsOfConsumer(ctx context.Context, db pg.DBTX, consumerUUID string) error {
	return DeleteAllAllocationsOfConsumerIn(ctx, SendOn(db), SendOn(db), consumerUUID)
}

// DeleteAllAllocationsOfConsumerIn is DeleteAllAllocationsOfConsumer in two
// batches: read sends the lock and the delete of the allocations, write the
// removal of the consumer (with a pg.BatchTx's Commit, in the same round
// trip as the commit). On ErrNotFound the caller rolls back.
func DeleteAllAllocationsOfConsumerIn(ctx context.Context, read, write Send, consumerUUID string) error {
	found := false
	var deleted int64
	b := &pgx.Batch{}
	b.Queue(lockConsumerID, consumerUUID).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			found = true
		}
		return rows.Err()
	})
	b.Queue(deleteConsumerAllocations, consumerUUID).Exec(func(ct pgconn.CommandTag) error {
		deleted = ct.RowsAffected()
		return nil
	})
	if err := read(ctx, b); err != nil {
		return fmt.Errorf("deleting allocations of consumer %s: %w", consumerUUID, err)
	}
	if !found || deleted == 0 {
		return ErrNotFound
	}
	b = &pgx.Batch{}
	b.Queue(deleteConsumerByID, consumerUUID)
	if err := write(ctx, b); err != nil {
		return fmt.Errorf("deleting consumer %s: %w", consumerUUID, err)
	}
	return nil
}
