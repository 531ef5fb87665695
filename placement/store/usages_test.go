package store

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestUsageQueries(t *testing.T) {
	db := testDB(t)
	ctx := context.Background()
	p := mustCreate(t, db, u1, "rp", nil)
	if err := inTx(db, func(tx pgx.Tx) error {
		_, err := ReplaceInventories(ctx, tx, p, []Inventory{NewInventory("VCPU", 8), NewInventory("DISK_GB", 100)})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	allocate(t, db, p.ID, u2, "VCPU", 2)
	allocate(t, db, p.ID, u3, "VCPU", 1)
	allocate(t, db, p.ID, u3, "DISK_GB", 10)

	usages, err := ProviderUsages(ctx, db, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(usages) != 2 || usages[0] != (Usage{"VCPU", 3}) || usages[1] != (Usage{"DISK_GB", 10}) {
		t.Errorf("provider usages %+v", usages)
	}
	byType, err := ProjectUsagesByType(ctx, db, "p", "", ConsumerTypeAll)
	if err != nil {
		t.Fatal(err)
	}
	want := []TypedUsage{{"all", "VCPU", 3, 2}, {"all", "DISK_GB", 10, 2}}
	if len(byType) != len(want) {
		t.Fatalf("typed usages %+v, want %+v", byType, want)
	}
	for i := range want {
		if byType[i] != want[i] {
			t.Errorf("typed usage %d = %+v, want %+v", i, byType[i], want[i])
		}
	}
	none, err := ProjectUsages(ctx, db, "p", "someone-else")
	if err != nil || len(none) != 0 {
		t.Errorf("usages of another user: %+v, %v", none, err)
	}
}
