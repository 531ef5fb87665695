package store

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestResourceClassStore(t *testing.T) {
	db := testDB(t)
	ctx := context.Background()
	all, err := ListResourceClasses(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 21 || all[0].Name != "VCPU" || !all[0].Standard() {
		t.Fatalf("standard classes: %d, first %+v", len(all), all[0])
	}
	a, err := CreateResourceClass(ctx, db, "CUSTOM_A")
	if err != nil {
		t.Fatal(err)
	}
	b, err := CreateResourceClass(ctx, db, "CUSTOM_B")
	if err != nil {
		t.Fatal(err)
	}
	if a.ID != MinCustomClassID || b.ID != MinCustomClassID+1 || a.Standard() {
		t.Errorf("custom ids %d, %d; want %d, %d", a.ID, b.ID, MinCustomClassID, MinCustomClassID+1)
	}
	if _, err := CreateResourceClass(ctx, db, "CUSTOM_A"); !errors.Is(err, ErrExists) {
		t.Errorf("duplicate create: %v, want ErrExists", err)
	}
	if _, err := RenameResourceClass(ctx, db, b.ID, "CUSTOM_A"); !errors.Is(err, ErrExists) {
		t.Errorf("rename onto existing: %v, want ErrExists", err)
	}
	renamed, err := RenameResourceClass(ctx, db, b.ID, "CUSTOM_C")
	if err != nil || renamed.Name != "CUSTOM_C" || renamed.UpdatedAt == nil {
		t.Errorf("rename: %+v, %v", renamed, err)
	}
	ids, err := ResourceClassIDs(ctx, db, []string{"VCPU", "CUSTOM_C", "NOPE"})
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 2 || ids["VCPU"] != 0 || ids["CUSTOM_C"] != b.ID {
		t.Errorf("ids %v", ids)
	}

	p := mustCreate(t, db, u1, "rp", nil)
	gold := NewInventory("CUSTOM_A", 5)
	if err := inTx(db, func(tx pgx.Tx) error { return AddInventory(ctx, tx, p, &gold) }); err != nil {
		t.Fatal(err)
	}
	if err := DeleteResourceClass(ctx, db, a.ID); !errors.Is(err, ErrClassInUse) {
		t.Errorf("deleting class with inventory: %v, want ErrClassInUse", err)
	}
	if err := DeleteResourceClass(ctx, db, b.ID); err != nil {
		t.Errorf("deleting unused class: %v", err)
	}
	if err := DeleteResourceClass(ctx, db, b.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleting twice: %v, want ErrNotFound", err)
	}
	if _, err := GetResourceClass(ctx, db, "CUSTOM_C"); !errors.Is(err, ErrNotFound) {
		t.Errorf("get deleted: %v, want ErrNotFound", err)
	}
}
