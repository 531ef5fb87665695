package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/unisched/unisched/internal/pg"
)

// MaxInt is the largest inventory amount Placement stores (a signed 32-bit
// column upstream) and the default max_unit.
const MaxInt = 2147483647

// Inventory is one resource class's inventory on a provider.
type Inventory struct {
	ResourceClassID int
	ResourceClass   string
	Total           int
	Reserved        int
	MinUnit         int
	MaxUnit         int
	StepSize        int
	AllocationRatio float64
	CreatedAt       time.Time
	UpdatedAt       *time.Time
}

// NewInventory is an inventory of total with upstream's API defaults for
// everything else (the handlers' defaults, not the object's: max_unit is
// unbounded, not 1).
func NewInventory(class string, total int) Inventory {
	return Inventory{ResourceClass: class, Total: total, MinUnit: 1, MaxUnit: MaxInt, StepSize: 1, AllocationRatio: 1}
}

// Capacity is what allocations may use: (total - reserved) * ratio,
// truncated as Python's int() does.
func (inv *Inventory) Capacity() int {
	return int(float64(inv.Total-inv.Reserved) * inv.AllocationRatio)
}

// LastModified is updated_at, or created_at when never updated.
func (inv *Inventory) LastModified() time.Time {
	if inv.UpdatedAt != nil {
		return *inv.UpdatedAt
	}
	return inv.CreatedAt
}

// InventoryInUseError: removing inventory that allocations still consume.
// Classes are in class-id order, as upstream lists them.
type InventoryInUseError struct {
	Classes      []string
	ProviderUUID string
}

func (e *InventoryInUseError) Error() string {
	return fmt.Sprintf("Inventory for '%s' on resource provider '%s' in use.", strings.Join(e.Classes, ", "), e.ProviderUUID)
}

// UnknownClassError: an inventory names a resource class that does not exist.
type UnknownClassError struct{ Name string }

func (e *UnknownClassError) Error() string { return fmt.Sprintf("No such resource class %s.", e.Name) }

// OverCapacity names a class whose allocations now exceed its capacity;
// upstream allows that and only logs it.
type OverCapacity struct {
	ResourceClass string
	Used          int64
	Capacity      int
}

const (
	selectInventories = `SELECT i.resource_class_id, rc.name, i.total, i.reserved, i.min_unit, i.max_unit,
	i.step_size, i.allocation_ratio, i.created_at, i.updated_at
FROM inventories i JOIN resource_classes rc ON rc.id = i.resource_class_id
WHERE i.resource_provider_id = $1 ORDER BY i.resource_class_id`

	insertInventory = `INSERT INTO inventories (resource_provider_id, resource_class_id, total, reserved,
	min_unit, max_unit, step_size, allocation_ratio)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING created_at`

	updateInventory = `UPDATE inventories SET total = $3, reserved = $4, min_unit = $5, max_unit = $6,
	step_size = $7, allocation_ratio = $8, updated_at = now()
WHERE resource_provider_id = $1 AND resource_class_id = $2 RETURNING created_at, updated_at`

	deleteInventories = `DELETE FROM inventories WHERE resource_provider_id = $1 AND resource_class_id = ANY($2)`

	selectClassesInUse = `SELECT DISTINCT a.resource_class_id, rc.name
FROM allocations a JOIN resource_classes rc ON rc.id = a.resource_class_id
WHERE a.resource_provider_id = $1 AND a.resource_class_id = ANY($2)
ORDER BY a.resource_class_id`

	selectUsedByClass = `SELECT resource_class_id, sum(used) FROM allocations
WHERE resource_provider_id = $1 AND resource_class_id = ANY($2) GROUP BY resource_class_id`
)

// ListInventories returns a provider's inventories in class-id order.
func ListInventories(ctx context.Context, db pg.DBTX, providerID int64) ([]Inventory, error) {
	rows, err := db.Query(ctx, selectInventories, providerID)
	if err != nil {
		return nil, fmt.Errorf("listing inventories of provider %d: %w", providerID, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Inventory, error) {
		var inv Inventory
		err := r.Scan(&inv.ResourceClassID, &inv.ResourceClass, &inv.Total, &inv.Reserved, &inv.MinUnit,
			&inv.MaxUnit, &inv.StepSize, &inv.AllocationRatio, &inv.CreatedAt, &inv.UpdatedAt)
		return inv, err
	})
	if err != nil {
		return nil, fmt.Errorf("listing inventories of provider %d: %w", providerID, err)
	}
	return out, nil
}

// resolveClasses fills in ResourceClassID from ResourceClass for each
// inventory; an unknown name is an *UnknownClassError (the first one in
// the given order).
func resolveClasses(ctx context.Context, db pg.DBTX, invs []Inventory) error {
	names := make([]string, len(invs))
	for i := range invs {
		names[i] = invs[i].ResourceClass
	}
	ids, err := ResourceClassIDs(ctx, db, names)
	if err != nil {
		return err
	}
	for i := range invs {
		id, ok := ids[invs[i].ResourceClass]
		if !ok {
			return &UnknownClassError{Name: invs[i].ResourceClass}
		}
		invs[i].ResourceClassID = id
	}
	return nil
}

// classesInUse returns the names of the given classes that have
// allocations on the provider, in class-id order.
func classesInUse(ctx context.Context, db pg.DBTX, providerID int64, classIDs []int) ([]string, error) {
	rows, err := db.Query(ctx, selectClassesInUse, providerID, classIDs)
	if err != nil {
		return nil, fmt.Errorf("checking allocations against inventory of provider %d: %w", providerID, err)
	}
	names, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (string, error) {
		var id int
		var name string
		err := r.Scan(&id, &name)
		return name, err
	})
	if err != nil {
		return nil, fmt.Errorf("checking allocations against inventory of provider %d: %w", providerID, err)
	}
	return names, nil
}

// lockProvider is the generation compare-and-swap, done first so that the
// provider row is locked for the rest of the transaction: concurrent
// inventory and allocation writers then queue on it instead of
// interleaving, and the loser sees ErrConcurrentUpdate. p.Generation is
// advanced at once, so it is only meaningful once the transaction commits;
// a caller that retries must reload the provider.
func lockProvider(ctx context.Context, db pg.DBTX, p *Provider) error {
	gen, err := IncrementGeneration(ctx, db, p.ID, p.Generation)
	if err != nil {
		return err
	}
	p.Generation = gen
	return nil
}

// AddInventory adds one inventory that the provider must not have yet and
// bumps the provider's generation from p.Generation (updated in place).
// Errors: *UnknownClassError, ErrExists, ErrConcurrentUpdate.
func AddInventory(ctx context.Context, db pg.DBTX, p *Provider, inv *Inventory) error {
	one := []Inventory{*inv}
	if err := resolveClasses(ctx, db, one); err != nil {
		return err
	}
	if err := lockProvider(ctx, db, p); err != nil {
		return err
	}
	*inv = one[0]
	err := db.QueryRow(ctx, insertInventory, p.ID, inv.ResourceClassID, inv.Total, inv.Reserved,
		inv.MinUnit, inv.MaxUnit, inv.StepSize, inv.AllocationRatio).Scan(&inv.CreatedAt)
	if pg.HasCode(err, pg.CodeUniqueViolation) {
		return ErrExists
	}
	if err != nil {
		return fmt.Errorf("adding %s inventory to provider %s: %w", inv.ResourceClass, p.UUID, err)
	}
	return nil
}

// UpdateInventory changes one existing inventory and bumps the provider's
// generation. Errors: *UnknownClassError, ErrNotFound (no inventory of
// that class), ErrConcurrentUpdate. Shrinking below current usage is
// allowed; the classes left over capacity are returned.
func UpdateInventory(ctx context.Context, db pg.DBTX, p *Provider, inv *Inventory) ([]OverCapacity, error) {
	one := []Inventory{*inv}
	if err := resolveClasses(ctx, db, one); err != nil {
		return nil, err
	}
	if err := lockProvider(ctx, db, p); err != nil {
		return nil, err
	}
	*inv = one[0]
	if err := updateOne(ctx, db, p, inv); err != nil {
		return nil, err
	}
	return overCapacity(ctx, db, p.ID, one)
}

func updateOne(ctx context.Context, db pg.DBTX, p *Provider, inv *Inventory) error {
	err := db.QueryRow(ctx, updateInventory, p.ID, inv.ResourceClassID, inv.Total, inv.Reserved,
		inv.MinUnit, inv.MaxUnit, inv.StepSize, inv.AllocationRatio).Scan(&inv.CreatedAt, &inv.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("updating %s inventory of provider %s: %w", inv.ResourceClass, p.UUID, err)
	}
	return nil
}

// DeleteInventory removes the inventory of one class and bumps the
// provider's generation. Errors: *UnknownClassError, ErrNotFound (no such
// inventory), *InventoryInUseError, ErrConcurrentUpdate.
func DeleteInventory(ctx context.Context, db pg.DBTX, p *Provider, class string) error {
	one := []Inventory{{ResourceClass: class}}
	if err := resolveClasses(ctx, db, one); err != nil {
		return err
	}
	if err := lockProvider(ctx, db, p); err != nil {
		return err
	}
	n, err := deleteClasses(ctx, db, p, []int{one[0].ResourceClassID})
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

func deleteClasses(ctx context.Context, db pg.DBTX, p *Provider, classIDs []int) (int64, error) {
	inUse, err := classesInUse(ctx, db, p.ID, classIDs)
	if err != nil {
		return 0, err
	}
	if len(inUse) > 0 {
		return 0, &InventoryInUseError{Classes: inUse, ProviderUUID: p.UUID}
	}
	tag, err := db.Exec(ctx, deleteInventories, p.ID, classIDs)
	if err != nil {
		return 0, fmt.Errorf("deleting inventory of provider %s: %w", p.UUID, err)
	}
	return tag.RowsAffected(), nil
}

// ReplaceInventories makes invs the provider's whole inventory (adding,
// updating and deleting as needed) and bumps its generation from
// p.Generation, even when nothing changed. invs get their class ids and
// timestamps filled in. Errors: *UnknownClassError, *InventoryInUseError
// (a removed class still has allocations), ErrConcurrentUpdate. The
// classes left over capacity by shrunk inventories are returned.
func ReplaceInventories(ctx context.Context, db pg.DBTX, p *Provider, invs []Inventory) ([]OverCapacity, error) {
	return ReplaceInventoriesIn(ctx, SendOn(db), SendOn(db), p, invs)
}

// selectInventoryUse lists a provider's inventories in class-id order with
// the number and sum of the allocations against each.
const selectInventoryUse = `SELECT i.resource_class_id, rc.name, i.total, i.reserved, i.min_unit, i.max_unit,
	i.step_size, i.allocation_ratio, i.created_at, i.updated_at, u.n, u.used
FROM inventories i JOIN resource_classes rc ON rc.id = i.resource_class_id
CROSS JOIN LATERAL (SELECT count(*) AS n, COALESCE(sum(a.used), 0) AS used FROM allocations a
	WHERE a.resource_provider_id = i.resource_provider_id AND a.resource_class_id = i.resource_class_id) u
WHERE i.resource_provider_id = $1 ORDER BY i.resource_class_id`

// selectInventoryUseByUUID is selectInventoryUse by provider uuid.
const selectInventoryUseByUUID = `SELECT i.resource_class_id, rc.name, i.total, i.reserved, i.min_unit, i.max_unit,
	i.step_size, i.allocation_ratio, i.created_at, i.updated_at, u.n, u.used
FROM resource_providers rp JOIN inventories i ON i.resource_provider_id = rp.id
JOIN resource_classes rc ON rc.id = i.resource_class_id
CROSS JOIN LATERAL (SELECT count(*) AS n, COALESCE(sum(a.used), 0) AS used FROM allocations a
	WHERE a.resource_provider_id = i.resource_provider_id AND a.resource_class_id = i.resource_class_id) u
WHERE rp.uuid = $1 ORDER BY i.resource_class_id`

// inventoryUse is an existing inventory with its allocations.
type inventoryUse struct {
	Inventory
	allocations int64
	used        int64
}

const (
	deleteInventoryClasses = `DELETE FROM inventories WHERE resource_provider_id = $1 AND resource_class_id = ANY($2)`
	updateInventories      = `UPDATE inventories i SET total = x.total, reserved = x.reserved, min_unit = x.min_unit,
	max_unit = x.max_unit, step_size = x.step_size, allocation_ratio = x.ratio, updated_at = now()
FROM unnest($2::integer[], $3::integer[], $4::integer[], $5::integer[], $6::integer[], $7::integer[], $8::double precision[])
	AS x(rc, total, reserved, min_unit, max_unit, step_size, ratio)
WHERE i.resource_provider_id = $1 AND i.resource_class_id = x.rc
RETURNING i.resource_class_id, i.created_at, i.updated_at`
	insertInventories = `INSERT INTO inventories (resource_provider_id, resource_class_id, total, reserved,
	min_unit, max_unit, step_size, allocation_ratio)
SELECT $1, x.rc, x.total, x.reserved, x.min_unit, x.max_unit, x.step_size, x.ratio
FROM unnest($2::integer[], $3::integer[], $4::integer[], $5::integer[], $6::integer[], $7::integer[], $8::double precision[])
	AS x(rc, total, reserved, min_unit, max_unit, step_size, ratio)
ORDER BY x.rc
RETURNING resource_class_id, created_at`
)

// ReplaceInventoriesIn is ReplaceInventories in two batches: read sends
// the first (the generation bump, which locks the provider, and what the
// decision needs), write the second (the changes), so that a pg.BatchTx
// can commit with it. The write batch fails only with SQL errors.
func ReplaceInventoriesIn(ctx context.Context, read, write Send, p *Provider, invs []Inventory) ([]OverCapacity, error) {
	st := &InventoryLock{Provider: p, ids: map[string]int{}}
	bumped := false
	b := &pgx.Batch{}
	st.queueClassIDs(b, invs)
	b.Queue(bumpGeneration, p.ID, p.Generation).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			bumped = true
		}
		return rows.Err()
	})
	st.queueUse(b, p.ID)
	if err := read(ctx, b); err != nil {
		return nil, fmt.Errorf("reading inventories of provider %s: %w", p.UUID, err)
	}
	if err := st.resolve(invs); err != nil {
		return nil, err
	}
	if !bumped {
		return nil, ErrConcurrentUpdate
	}
	p.Generation++
	return st.write(ctx, write, invs, false)
}

// InventoryLock is a provider locked for an inventory write, with what the
// write needs to know.
type InventoryLock struct {
	// Provider is nil when there is no such provider.
	Provider *Provider
	ids      map[string]int
	existing []inventoryUse
}

// lockProviderForInventory locks as the generation bump that follows
// will: NO KEY UPDATE leaves foreign-key checks (a child being created)
// alone.
const lockProviderForInventory = selectProviderByUUID + ` FOR NO KEY UPDATE OF rp`

// LockInventories locks the provider with the (canonical) uuid and reads
// its inventories with their use and the ids of the classes of invs, in
// one batch sent through send. The caller checks the generation it was
// given against Provider.Generation, then calls Replace.
func LockInventories(ctx context.Context, send Send, uuid string, invs []Inventory) (*InventoryLock, error) {
	st := &InventoryLock{ids: map[string]int{}}
	b := &pgx.Batch{}
	b.Queue(lockProviderForInventory, uuid).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var err error
			if st.Provider, err = scanProvider(rows); err != nil {
				return err
			}
		}
		return rows.Err()
	})
	st.queueClassIDs(b, invs)
	// By uuid: the id is not known before the batch returns.
	st.queueUseByUUID(b, uuid)
	if err := send(ctx, b); err != nil {
		return nil, fmt.Errorf("locking inventories of provider %s: %w", uuid, err)
	}
	return st, nil
}

// Replace makes invs the provider's whole inventory and bumps its
// generation, in one batch sent through write, which may commit it.
// Errors: *UnknownClassError, *InventoryInUseError; the classes left over
// capacity by shrunk inventories are returned.
func (st *InventoryLock) Replace(ctx context.Context, write Send, invs []Inventory) ([]OverCapacity, error) {
	if err := st.resolve(invs); err != nil {
		return nil, err
	}
	return st.write(ctx, write, invs, true)
}

func (st *InventoryLock) queueClassIDs(b *pgx.Batch, invs []Inventory) {
	if len(invs) == 0 {
		return
	}
	names := make([]string, len(invs))
	for i := range invs {
		names[i] = invs[i].ResourceClass
	}
	queueClassIDs(b, names, st.ids)
}

func (st *InventoryLock) scanUse(rows pgx.Rows) error {
	for rows.Next() {
		var u inventoryUse
		if err := rows.Scan(&u.ResourceClassID, &u.ResourceClass, &u.Total, &u.Reserved, &u.MinUnit, &u.MaxUnit,
			&u.StepSize, &u.AllocationRatio, &u.CreatedAt, &u.UpdatedAt, &u.allocations, &u.used); err != nil {
			return err
		}
		st.existing = append(st.existing, u)
	}
	return rows.Err()
}

func (st *InventoryLock) queueUse(b *pgx.Batch, providerID int64) {
	b.Queue(selectInventoryUse, providerID).Query(st.scanUse)
}

func (st *InventoryLock) queueUseByUUID(b *pgx.Batch, uuid string) {
	b.Queue(selectInventoryUseByUUID, uuid).Query(st.scanUse)
}

// resolve fills in the class ids of invs; an unknown class is an
// *UnknownClassError (the first one in the given order).
func (st *InventoryLock) resolve(invs []Inventory) error {
	for i := range invs {
		id, ok := st.ids[invs[i].ResourceClass]
		if !ok {
			return &UnknownClassError{Name: invs[i].ResourceClass}
		}
		invs[i].ResourceClassID = id
	}
	return nil
}

// write refuses to remove inventory still allocated, then sends the
// changes (with the generation bump when bump, a compare-and-swap that
// cannot fail under the lock but is checked all the same).
func (st *InventoryLock) write(ctx context.Context, write Send, invs []Inventory, bump bool) ([]OverCapacity, error) {
	p := st.Provider
	want := make(map[int]bool, len(invs))
	for _, inv := range invs {
		want[inv.ResourceClassID] = true
	}
	have := make(map[int]inventoryUse, len(st.existing))
	var toDelete []int
	var inUse []string
	for _, u := range st.existing {
		have[u.ResourceClassID] = u
		if !want[u.ResourceClassID] {
			toDelete = append(toDelete, u.ResourceClassID)
			if u.allocations > 0 {
				inUse = append(inUse, u.ResourceClass)
			}
		}
	}
	if len(inUse) > 0 {
		return nil, &InventoryInUseError{Classes: inUse, ProviderUUID: p.UUID}
	}
	// Written in class-id order, as concurrent writers of the rows would.
	order := make([]int, len(invs))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return invs[order[a]].ResourceClassID < invs[order[b]].ResourceClassID })
	var upd, ins inventoryColumns
	var over []OverCapacity
	for _, i := range order {
		inv := &invs[i]
		if u, ok := have[inv.ResourceClassID]; ok {
			upd.add(inv)
			if u.allocations > 0 && u.used > int64(inv.Capacity()) {
				over = append(over, OverCapacity{ResourceClass: inv.ResourceClass, Used: u.used, Capacity: inv.Capacity()})
			}
			continue
		}
		ins.add(inv)
	}
	byClass := make(map[int]*Inventory, len(invs))
	for i := range invs {
		byClass[invs[i].ResourceClassID] = &invs[i]
	}
	b := &pgx.Batch{}
	if bump {
		queueBumpGenerations(b, []*LockedProvider{{ID: p.ID, UUID: p.UUID, Generation: p.Generation}})
	}
	if len(toDelete) > 0 {
		b.Queue(deleteInventoryClasses, p.ID, toDelete)
	}
	if len(upd.rc) > 0 {
		b.Queue(updateInventories, upd.args(p.ID)...).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var rc int
				var created time.Time
				var updated *time.Time
				if err := rows.Scan(&rc, &created, &updated); err != nil {
					return err
				}
				if inv := byClass[rc]; inv != nil {
					inv.CreatedAt, inv.UpdatedAt = created, updated
				}
			}
			return rows.Err()
		})
	}
	if len(ins.rc) > 0 {
		b.Queue(insertInventories, ins.args(p.ID)...).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var rc int
				var created time.Time
				if err := rows.Scan(&rc, &created); err != nil {
					return err
				}
				if inv := byClass[rc]; inv != nil {
					inv.CreatedAt = created
				}
			}
			return rows.Err()
		})
	}
	if err := write(ctx, b); err != nil {
		if casError(err) != nil || pg.HasCode(err, pg.CodeUniqueViolation) {
			return nil, ErrConcurrentUpdate
		}
		return nil, fmt.Errorf("writing inventories of provider %s: %w", p.UUID, err)
	}
	if bump {
		p.Generation++
	}
	return over, nil
}

// inventoryColumns are inventories as the unnest arrays of
// updateInventories and insertInventories.
type inventoryColumns struct {
	rc, total, reserved, minUnit, maxUnit, step []int32
	ratio                                       []float64
}

func (c *inventoryColumns) add(inv *Inventory) {
	c.rc = append(c.rc, int32(inv.ResourceClassID))
	c.total = append(c.total, int32(inv.Total))
	c.reserved = append(c.reserved, int32(inv.Reserved))
	c.minUnit = append(c.minUnit, int32(inv.MinUnit))
	c.maxUnit = append(c.maxUnit, int32(inv.MaxUnit))
	c.step = append(c.step, int32(inv.StepSize))
	c.ratio = append(c.ratio, inv.AllocationRatio)
}

func (c *inventoryColumns) args(providerID int64) []any {
	return []any{providerID, c.rc, c.total, c.reserved, c.minUnit, c.maxUnit, c.step, c.ratio}
}

// overCapacity reports which of the updated inventories now have more
// allocated than their capacity.
func overCapacity(ctx context.Context, db pg.DBTX, providerID int64, updated []Inventory) ([]OverCapacity, error) {
	if len(updated) == 0 {
		return nil, nil
	}
	ids := make([]int, len(updated))
	for i := range updated {
		ids[i] = updated[i].ResourceClassID
	}
	rows, err := db.Query(ctx, selectUsedByClass, providerID, ids)
	if err != nil {
		return nil, fmt.Errorf("summing allocations of provider %d: %w", providerID, err)
	}
	used := map[int]int64{}
	defer rows.Close()
	for rows.Next() {
		var id int
		var n int64
		if err := rows.Scan(&id, &n); err != nil {
			return nil, fmt.Errorf("summing allocations of provider %d: %w", providerID, err)
		}
		used[id] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("summing allocations of provider %d: %w", providerID, err)
	}
	var out []OverCapacity
	for i := range updated {
		inv := &updated[i]
		if u, ok := used[inv.ResourceClassID]; ok && u > int64(inv.Capacity()) {
			out = append(out, OverCapacity{ResourceClass: inv.ResourceClass, Used: u, Capacity: inv.Capacity()})
		}
	}
	return out, nil
}
