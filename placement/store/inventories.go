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
	if err := resolveClasses(ctx, db, invs); err != nil {
		return nil, err
	}
	if err := lockProvider(ctx, db, p); err != nil {
		return nil, err
	}
	existing, err := ListInventories(ctx, db, p.ID)
	if err != nil {
		return nil, err
	}
	have := make(map[int]bool, len(existing))
	for _, inv := range existing {
		have[inv.ResourceClassID] = true
	}
	want := make(map[int]bool, len(invs))
	for _, inv := range invs {
		want[inv.ResourceClassID] = true
	}
	var toDelete []int
	for _, inv := range existing {
		if !want[inv.ResourceClassID] {
			toDelete = append(toDelete, inv.ResourceClassID)
		}
	}
	if len(toDelete) > 0 {
		if _, err := deleteClasses(ctx, db, p, toDelete); err != nil {
			return nil, err
		}
	}
	// Write in class-id order so concurrent writers touch rows in the
	// same order.
	order := make([]int, len(invs))
	for i := range order {
		order[i] = i
	}
	sort.Slice(order, func(a, b int) bool { return invs[order[a]].ResourceClassID < invs[order[b]].ResourceClassID })
	var updated []Inventory
	for _, i := range order {
		inv := &invs[i]
		if have[inv.ResourceClassID] {
			if err := updateOne(ctx, db, p, inv); err != nil {
				return nil, err
			}
			updated = append(updated, *inv)
			continue
		}
		err := db.QueryRow(ctx, insertInventory, p.ID, inv.ResourceClassID, inv.Total, inv.Reserved,
			inv.MinUnit, inv.MaxUnit, inv.StepSize, inv.AllocationRatio).Scan(&inv.CreatedAt)
		if pg.HasCode(err, pg.CodeUniqueViolation) {
			return nil, ErrConcurrentUpdate
		}
		if err != nil {
			return nil, fmt.Errorf("adding %s inventory to provider %s: %w", inv.ResourceClass, p.UUID, err)
		}
	}
	return overCapacity(ctx, db, p.ID, updated)
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
