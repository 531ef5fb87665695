package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

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
// every provider.)
const lockProviders = `SELECT id, uuid::text, generation FROM resource_providers
WHERE id IN (SELECT id FROM resource_providers WHERE uuid = ANY($1::uuid[])
             UNION
             SELECT resource_provider_id FROM allocations WHERE consumer_id = ANY($2))
ORDER BY id FOR NO KEY UPDATE`

// LockProviders locks the providers named by uuid (canonical form) plus
// those holding allocations of the given consumers, and returns them keyed by
// uuid. Missing uuids are simply absent from the result.
func LockProviders(ctx context.Context, db pg.DBTX, uuids []string, consumerIDs []int64) (map[string]*LockedProvider, error) {
	if uuids == nil {
		uuids = []string{}
	}
	if consumerIDs == nil {
		consumerIDs = []int64{}
	}
	rows, err := db.Query(ctx, lockProviders, uuids, consumerIDs)
	if err != nil {
		return nil, fmt.Errorf("locking resource providers: %w", err)
	}
	defer rows.Close()
	out := make(map[string]*LockedProvider)
	for rows.Next() {
		var p LockedProvider
		if err := rows.Scan(&p.ID, &p.UUID, &p.Generation); err != nil {
			return nil, fmt.Errorf("reading resource provider: %w", err)
		}
		out[p.UUID] = &p
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("locking resource providers: %w", err)
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
FROM allocations a JOIN resource_classes rc ON rc.id = a.resource_class_id
WHERE a.consumer_id = ANY($1) ORDER BY a.id`

// AllocationKeysOfConsumers lists the (provider, class) pairs the consumers
// currently hold, in insertion order.
func AllocationKeysOfConsumers(ctx context.Context, db pg.DBTX, consumerIDs []int64) ([]ConsumerProviderAllocation, error) {
	rows, err := db.Query(ctx, selectConsumerAllocationKeys, consumerIDs)
	if err != nil {
		return nil, fmt.Errorf("listing allocations of consumers: %w", err)
	}
	defer rows.Close()
	var out []ConsumerProviderAllocation
	for rows.Next() {
		var a ConsumerProviderAllocation
		var classID int32
		if err := rows.Scan(&a.ConsumerID, &a.ProviderID, &classID, &a.ClassName); err != nil {
			return nil, fmt.Errorf("reading allocation: %w", err)
		}
		a.ClassID = int(classID)
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing allocations of consumers: %w", err)
	}
	return out, nil
}

const deleteAllocationsOfConsumers = `DELETE FROM allocations WHERE consumer_id = ANY($1)`

// DeleteAllocationsOfConsumers removes every allocation of the consumers and
// returns how many rows went.
func DeleteAllocationsOfConsumers(ctx context.Context, db pg.DBTX, consumerIDs []int64) (int64, error) {
	if len(consumerIDs) == 0 {
		return 0, nil
	}
	tag, err := db.Exec(ctx, deleteAllocationsOfConsumers, consumerIDs)
	if err != nil {
		return 0, fmt.Errorf("deleting allocations of consumers: %w", err)
	}
	return tag.RowsAffected(), nil
}

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

const selectInventoryUsage = `SELECT i.resource_provider_id, i.resource_class_id, i.total, i.reserved,
	i.min_unit, i.max_unit, i.step_size, i.allocation_ratio,
	COALESCE((SELECT sum(a.used) FROM allocations a
		WHERE a.resource_provider_id = i.resource_provider_id
		  AND a.resource_class_id = i.resource_class_id), 0)
FROM inventories i
WHERE i.resource_provider_id = ANY($1) AND i.resource_class_id = ANY($2)`

// InventoryUsages returns the inventories of the providers in the classes,
// with current usage. Under the provider locks of LockProviders the figures
// cannot change before the transaction ends.
func InventoryUsages(ctx context.Context, db pg.DBTX, providerIDs []int64, classIDs []int) ([]InventoryUsage, error) {
	rows, err := db.Query(ctx, selectInventoryUsage, providerIDs, classIDs)
	if err != nil {
		return nil, fmt.Errorf("reading inventory usage: %w", err)
	}
	defer rows.Close()
	var out []InventoryUsage
	for rows.Next() {
		var u InventoryUsage
		var classID, total, reserved, minUnit, maxUnit, step int32
		if err := rows.Scan(&u.ProviderID, &classID, &total, &reserved, &minUnit, &maxUnit, &step,
			&u.AllocationRatio, &u.Used); err != nil {
			return nil, fmt.Errorf("reading inventory usage: %w", err)
		}
		u.ClassID, u.Total, u.Reserved = int(classID), int(total), int(reserved)
		u.MinUnit, u.MaxUnit, u.StepSize = int(minUnit), int(maxUnit), int(step)
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading inventory usage: %w", err)
	}
	return out, nil
}

// NewAllocation is an allocation row to insert.
type NewAllocation struct {
	ProviderID int64
	ConsumerID int64
	ClassID    int
	Used       int
}

const insertAllocations = `INSERT INTO allocations (resource_provider_id, consumer_id, resource_class_id, used)
SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::integer[], $4::integer[])`

// InsertAllocations writes the rows in one statement.
func InsertAllocations(ctx context.Context, db pg.DBTX, allocs []NewAllocation) error {
	if len(allocs) == 0 {
		return nil
	}
	rps := make([]int64, len(allocs))
	cons := make([]int64, len(allocs))
	rcs := make([]int32, len(allocs))
	used := make([]int32, len(allocs))
	for i, a := range allocs {
		rps[i], cons[i], rcs[i], used[i] = a.ProviderID, a.ConsumerID, int32(a.ClassID), int32(a.Used)
	}
	if _, err := db.Exec(ctx, insertAllocations, rps, cons, rcs, used); err != nil {
		return fmt.Errorf("inserting allocations: %w", err)
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

const lockConsumerID = `SELECT id FROM consumers WHERE uuid = $1 FOR UPDATE`

// DeleteAllAllocationsOfConsumer removes the consumer's allocations and the
// consumer itself, reporting ErrNotFound when it holds no allocations. The
// consumer row is locked first so the delete orders with concurrent claims
// for the same consumer instead of interleaving with them.
func DeleteAllAllocationsOfConsumer(ctx context.Context, db pg.DBTX, consumerUUID string) error {
	var id int64
	err := db.QueryRow(ctx, lockConsumerID, consumerUUID).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("locking consumer %s: %w", consumerUUID, err)
	}
	n, err := DeleteAllocationsOfConsumers(ctx, db, []int64{id})
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return DeleteConsumersWithoutAllocations(ctx, db, []int64{id})
}
