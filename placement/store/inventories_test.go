package store

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/unisched/unisched/internal/pg"
)

// inTx runs fn in its own committed transaction.
func inTx(db *pgxpool.Pool, fn func(tx pgx.Tx) error) error {
	return pg.WithTx(context.Background(), db, pgx.TxOptions{}, fn)
}

// allocate records used units of class on the provider for a new consumer.
func allocate(t *testing.T, db *pgxpool.Pool, providerID int64, consumer, class string, used int) {
	t.Helper()
	ctx := context.Background()
	_, err := db.Exec(ctx, `INSERT INTO projects (external_id) VALUES ('p') ON CONFLICT DO NOTHING`)
	if err == nil {
		_, err = db.Exec(ctx, `INSERT INTO users (external_id) VALUES ('u') ON CONFLICT DO NOTHING`)
	}
	if err == nil {
		_, err = db.Exec(ctx, `INSERT INTO consumers (uuid, project_id, user_id)
			SELECT $1, p.id, u.id FROM projects p, users u ON CONFLICT (uuid) DO NOTHING`, consumer)
	}
	if err == nil {
		_, err = db.Exec(ctx, `INSERT INTO allocations (resource_provider_id, consumer_id, resource_class_id, used)
			SELECT $1, c.id, rc.id, $4 FROM consumers c, resource_classes rc WHERE c.uuid = $2 AND rc.name = $3`,
			providerID, consumer, class, used)
	}
	if err != nil {
		t.Fatal(err)
	}
}

func TestReplaceInventories(t *testing.T) {
	db := testDB(t)
	ctx := context.Background()
	p := mustCreate(t, db, u1, "rp", nil)
	inv := func(class string, total int) Inventory { return NewInventory(class, total) }

	cases := []struct {
		name    string
		invs    []Inventory
		before  func()
		wantErr func(error) bool
		want    map[string]int // class -> total afterwards
		wantGen int
	}{
		{name: "add two", invs: []Inventory{inv("VCPU", 8), inv("DISK_GB", 100)},
			want: map[string]int{"VCPU": 8, "DISK_GB": 100}, wantGen: 1},
		{name: "update one, drop one, add one", invs: []Inventory{inv("VCPU", 16), inv("MEMORY_MB", 512)},
			want: map[string]int{"VCPU": 16, "MEMORY_MB": 512}, wantGen: 2},
		{name: "unknown class", invs: []Inventory{inv("HOUSE", 1)},
			wantErr: func(err error) bool {
				var u *UnknownClassError
				return errors.As(err, &u) && u.Name == "HOUSE"
			},
			want: map[string]int{"VCPU": 16, "MEMORY_MB": 512}, wantGen: 2},
		{name: "removing used classes", invs: []Inventory{inv("MEMORY_MB", 512)},
			before: func() { allocate(t, db, p.ID, u2, "VCPU", 3) },
			wantErr: func(err error) bool {
				var e *InventoryInUseError
				return errors.As(err, &e) && e.Error() == "Inventory for 'VCPU' on resource provider '"+u1+"' in use."
			},
			want: map[string]int{"VCPU": 16, "MEMORY_MB": 512}, wantGen: 2},
		{name: "shrinking under usage is allowed", invs: []Inventory{inv("VCPU", 2), inv("MEMORY_MB", 512)},
			want: map[string]int{"VCPU": 2, "MEMORY_MB": 512}, wantGen: 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.before != nil {
				tc.before()
			}
			cur, err := GetProvider(ctx, db, u1)
			if err != nil {
				t.Fatal(err)
			}
			var over []OverCapacity
			err = inTx(db, func(tx pgx.Tx) error {
				var err error
				over, err = ReplaceInventories(ctx, tx, cur, tc.invs)
				return err
			})
			switch {
			case tc.wantErr == nil && err != nil:
				t.Fatalf("unexpected error %v", err)
			case tc.wantErr != nil && !tc.wantErr(err):
				t.Fatalf("error %v is not the expected one", err)
			}
			if tc.name == "shrinking under usage is allowed" && (len(over) != 1 || over[0].ResourceClass != "VCPU" || over[0].Used != 3) {
				t.Errorf("over capacity = %+v, want VCPU used 3", over)
			}
			got, err := ListInventories(ctx, db, p.ID)
			if err != nil {
				t.Fatal(err)
			}
			totals := map[string]int{}
			for _, i := range got {
				totals[i.ResourceClass] = i.Total
			}
			if len(totals) != len(tc.want) {
				t.Errorf("inventories %v, want %v", totals, tc.want)
			}
			for c, n := range tc.want {
				if totals[c] != n {
					t.Errorf("%s total %d, want %d", c, totals[c], n)
				}
			}
			after, err := GetProvider(ctx, db, u1)
			if err != nil {
				t.Fatal(err)
			}
			if after.Generation != tc.wantGen {
				t.Errorf("generation %d, want %d", after.Generation, tc.wantGen)
			}
		})
	}
}

func TestSingleInventoryOps(t *testing.T) {
	db := testDB(t)
	ctx := context.Background()
	mustCreate(t, db, u1, "rp", nil)
	load := func() *Provider {
		p, err := GetProvider(ctx, db, u1)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	disk := NewInventory("DISK_GB", 100)
	if err := inTx(db, func(tx pgx.Tx) error { return AddInventory(ctx, tx, load(), &disk) }); err != nil {
		t.Fatal(err)
	}
	again := NewInventory("DISK_GB", 5)
	if err := inTx(db, func(tx pgx.Tx) error { return AddInventory(ctx, tx, load(), &again) }); !errors.Is(err, ErrExists) {
		t.Fatalf("adding twice: %v, want ErrExists", err)
	}
	stale := load()
	stale.Generation--
	bigger := NewInventory("DISK_GB", 200)
	if err := inTx(db, func(tx pgx.Tx) error { _, err := UpdateInventory(ctx, tx, stale, &bigger); return err }); !errors.Is(err, ErrConcurrentUpdate) {
		t.Fatalf("stale update: %v, want ErrConcurrentUpdate", err)
	}
	if err := inTx(db, func(tx pgx.Tx) error { _, err := UpdateInventory(ctx, tx, load(), &bigger); return err }); err != nil {
		t.Fatal(err)
	}
	if bigger.UpdatedAt == nil {
		t.Error("update did not set updated_at")
	}
	mem := NewInventory("MEMORY_MB", 1)
	if err := inTx(db, func(tx pgx.Tx) error { _, err := UpdateInventory(ctx, tx, load(), &mem); return err }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("updating absent inventory: %v, want ErrNotFound", err)
	}
	if err := inTx(db, func(tx pgx.Tx) error { return DeleteInventory(ctx, tx, load(), "MEMORY_MB") }); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleting absent inventory: %v, want ErrNotFound", err)
	}
	if err := inTx(db, func(tx pgx.Tx) error { return DeleteInventory(ctx, tx, load(), "DISK_GB") }); err != nil {
		t.Fatal(err)
	}
	if g := load().Generation; g != 3 {
		t.Errorf("generation %d after add, update, delete; want 3", g)
	}
}

// TestReplaceInventoriesRace: writers holding the same generation race;
// exactly one commits and the others see ErrConcurrentUpdate.
func TestReplaceInventoriesRace(t *testing.T) {
	db := testDB(t)
	ctx := context.Background()
	p := mustCreate(t, db, u1, "rp", nil)
	const writers = 10
	errs := make([]error, writers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			mine := *p
			<-start
			errs[i] = inTx(db, func(tx pgx.Tx) error {
				_, err := ReplaceInventories(ctx, tx, &mine, []Inventory{NewInventory("VCPU", i+1), NewInventory("DISK_GB", 10)})
				return err
			})
		})
	}
	close(start)
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, ErrConcurrentUpdate):
			t.Errorf("writer %d: %v", i, err)
		}
	}
	if won != 1 {
		t.Fatalf("%d writers won, want 1", won)
	}
	after, err := GetProvider(ctx, db, u1)
	if err != nil {
		t.Fatal(err)
	}
	if after.Generation != 1 {
		t.Errorf("generation %d, want 1", after.Generation)
	}
}
