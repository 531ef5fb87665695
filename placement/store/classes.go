package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/unisched/unisched/internal/pg"
)

// MinCustomClassID is the first id of a custom resource class; every id
// below it belongs to os-resource-classes and is never renamed or deleted.
const MinCustomClassID = 10000

// ErrClassInUse: a resource class still has inventory (or allocations)
// and cannot be deleted.
var ErrClassInUse = errors.New("resource class in use")

// ResourceClass is a resource_classes row.
type ResourceClass struct {
	ID        int
	Name      string
	CreatedAt time.Time
	UpdatedAt *time.Time
}

// Standard reports whether the class comes from os-resource-classes.
func (rc *ResourceClass) Standard() bool { return rc.ID < MinCustomClassID }

// LastModified is updated_at, or created_at when never updated.
func (rc *ResourceClass) LastModified() time.Time {
	if rc.UpdatedAt != nil {
		return *rc.UpdatedAt
	}
	return rc.CreatedAt
}

const (
	selectClasses      = `SELECT id, name, created_at, updated_at FROM resource_classes ORDER BY id`
	selectClassByName  = `SELECT id, name, created_at, updated_at FROM resource_classes WHERE name = $1`
	classIDsByName     = `SELECT name, id FROM resource_classes WHERE name = ANY($1)`
	insertCustomClass  = `INSERT INTO resource_classes (id, name) VALUES (nextval('resource_classes_custom_id_seq'), $1) RETURNING id, name, created_at, updated_at`
	renameCustomClass  = `UPDATE resource_classes SET name = $2, updated_at = now() WHERE id = $1 RETURNING id, name, created_at, updated_at`
	classHasInventory  = `SELECT EXISTS (SELECT 1 FROM inventories WHERE resource_class_id = $1)`
	deleteCustomClass  = `DELETE FROM resource_classes WHERE id = $1`
	classHasAllocation = `SELECT EXISTS (SELECT 1 FROM allocations WHERE resource_class_id = $1)`
)

func scanClass(row pgx.Row) (*ResourceClass, error) {
	var rc ResourceClass
	if err := row.Scan(&rc.ID, &rc.Name, &rc.CreatedAt, &rc.UpdatedAt); err != nil {
		return nil, err
	}
	return &rc, nil
}

// ListResourceClasses returns every class, standard ones first (id order).
func ListResourceClasses(ctx context.Context, db pg.DBTX) ([]ResourceClass, error) {
	rows, err := db.Query(ctx, selectClasses)
	if err != nil {
		return nil, fmt.Errorf("listing resource classes: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ResourceClass, error) {
		rc, err := scanClass(r)
		if err != nil {
			return ResourceClass{}, err
		}
		return *rc, nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing resource classes: %w", err)
	}
	return out, nil
}

// GetResourceClass loads a class by name; ErrNotFound when there is none.
func GetResourceClass(ctx context.Context, db pg.DBTX, name string) (*ResourceClass, error) {
	rc, err := scanClass(db.QueryRow(ctx, selectClassByName, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("loading resource class %s: %w", name, err)
	}
	return rc, nil
}

// ResourceClassIDs maps the given names to class ids; names that are not
// classes are simply absent from the result, so callers can name the
// first unknown one in their own words.
func ResourceClassIDs(ctx context.Context, db pg.DBTX, names []string) (map[string]int, error) {
	out := make(map[string]int, len(names))
	if len(names) == 0 {
		return out, nil
	}
	rows, err := db.Query(ctx, classIDsByName, names)
	if err != nil {
		return nil, fmt.Errorf("looking up resource classes: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var id int
		if err := rows.Scan(&name, &id); err != nil {
			return nil, fmt.Errorf("looking up resource classes: %w", err)
		}
		out[name] = id
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("looking up resource classes: %w", err)
	}
	return out, nil
}

// CreateResourceClass adds a custom class with the next custom id;
// ErrExists when the name is taken.
func CreateResourceClass(ctx context.Context, db pg.DBTX, name string) (*ResourceClass, error) {
	rc, err := scanClass(db.QueryRow(ctx, insertCustomClass, name))
	if pg.HasCode(err, pg.CodeUniqueViolation) {
		return nil, ErrExists
	}
	if err != nil {
		return nil, fmt.Errorf("creating resource class %s: %w", name, err)
	}
	return rc, nil
}

// RenameResourceClass renames the class with the given id; ErrExists when
// newName is taken, ErrNotFound when the class is gone. Callers refuse
// standard classes before calling.
func RenameResourceClass(ctx context.Context, db pg.DBTX, id int, newName string) (*ResourceClass, error) {
	rc, err := scanClass(db.QueryRow(ctx, renameCustomClass, id, newName))
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, ErrNotFound
	case pg.HasCode(err, pg.CodeUniqueViolation):
		return nil, ErrExists
	case err != nil:
		return nil, fmt.Errorf("renaming resource class %d to %s: %w", id, newName, err)
	}
	return rc, nil
}

// DeleteResourceClass removes the class with the given id. A class that
// any provider has inventory of is ErrClassInUse (upstream's rule);
// allocations without inventory cannot normally exist, but the foreign key
// would refuse them too, and that is reported the same way.
func DeleteResourceClass(ctx context.Context, db pg.DBTX, id int) error {
	var used bool
	if err := db.QueryRow(ctx, classHasInventory, id).Scan(&used); err != nil {
		return fmt.Errorf("checking inventory of resource class %d: %w", id, err)
	}
	if !used {
		if err := db.QueryRow(ctx, classHasAllocation, id).Scan(&used); err != nil {
			return fmt.Errorf("checking allocations of resource class %d: %w", id, err)
		}
	}
	if used {
		return ErrClassInUse
	}
	tag, err := db.Exec(ctx, deleteCustomClass, id)
	if pg.HasCode(err, pg.CodeForeignKeyViolation) {
		return ErrClassInUse
	}
	if err != nil {
		return fmt.Errorf("deleting resource class %d: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return ErrNotFound
	}
	return nil
}
