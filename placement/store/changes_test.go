package store

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
)

func currentSnapshot(t *testing.T, db *pgxpool.Pool) string {
	t.Helper()
	var s string
	if err := db.QueryRow(context.Background(), `SELECT pg_current_snapshot()::text`).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

func providerID(t *testing.T, db *pgxpool.Pool, name string) int64 {
	t.Helper()
	var id int64
	if err := db.QueryRow(context.Background(), `SELECT id FROM resource_providers WHERE name = $1`, name).Scan(&id); err != nil {
		t.Fatalf("provider %s: %v", name, err)
	}
	return id
}

// TestChangeFeed checks that the triggers record every kind of write the
// index cares about, and only those, and that ReadCatchUp returns the
// touched providers' current state.
func TestChangeFeed(t *testing.T) {
	ctx := context.Background()
	db := testDB(t)
	mustCreate(t, db, u1, "p1", nil)
	mustCreate(t, db, u2, "p2", strp(u1))
	mustCreate(t, db, u3, "p3", nil)
	for _, s := range []string{
		`INSERT INTO inventories (resource_provider_id, resource_class_id, total, reserved, min_unit, max_unit, step_size, allocation_ratio)
			SELECT id, 0, 8, 0, 1, 8, 1, 2 FROM resource_providers WHERE name = 'p1'`,
		`INSERT INTO projects (external_id) VALUES ('p')`,
		`INSERT INTO users (external_id) VALUES ('u')`,
		`INSERT INTO consumers (uuid, project_id, user_id) VALUES ('` + u4 + `', 1, 1)`,
	} {
		if _, err := db.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	p1, p2, p3 := providerID(t, db, "p1"), providerID(t, db, "p2"), providerID(t, db, "p3")

	tests := []struct {
		name    string
		sql     []string
		changed []string // provider names; "new" for a provider the case creates
		names   bool
		reset   bool
		check   func(t *testing.T, c CatchUp)
	}{
		{name: "nothing"},
		{name: "claim", sql: []string{`INSERT INTO allocations (resource_provider_id, consumer_id, resource_class_id, used)
			SELECT id, 1, 0, 3 FROM resource_providers WHERE name = 'p1'`}, changed: []string{"p1"},
			check: func(t *testing.T, c CatchUp) {
				if len(c.Providers) != 1 || len(c.Providers[0].Inventories) != 1 || c.Providers[0].Inventories[0].Used != 3 ||
					c.Providers[0].Inventories[0].AllocationRatio != 2 {
					t.Errorf("providers = %+v, want p1 with VCPU 3 used", c.Providers)
				}
			}},
		{name: "allocation changed", sql: []string{`UPDATE allocations SET used = 4`}, changed: []string{"p1"}},
		{name: "generation bump only", sql: []string{`UPDATE resource_providers SET generation = generation + 1`}},
		{name: "allocations deleted with the consumer", sql: []string{`DELETE FROM consumers`}, changed: []string{"p1"}},
		{name: "inventory added", sql: []string{`INSERT INTO inventories (resource_provider_id, resource_class_id, total, reserved, min_unit, max_unit, step_size, allocation_ratio)
			SELECT id, 2, 100, 0, 1, 100, 1, 1 FROM resource_providers WHERE name = 'p3'`}, changed: []string{"p3"}},
		{name: "inventory changed", sql: []string{`UPDATE inventories SET reserved = 1 WHERE resource_class_id = 2`}, changed: []string{"p3"}},
		{name: "trait added to a provider", sql: []string{`INSERT INTO resource_provider_traits (resource_provider_id, trait_id)
			SELECT rp.id, t.id FROM resource_providers rp, traits t WHERE rp.name = 'p2' AND t.name = 'HW_CPU_X86_AVX2'`},
			changed: []string{"p2"}, check: func(t *testing.T, c CatchUp) {
				if len(c.Providers) != 1 || !reflect.DeepEqual(c.Providers[0].Traits, []string{"HW_CPU_X86_AVX2"}) ||
					c.Providers[0].ParentUUID != u1 {
					t.Errorf("providers = %+v, want p2 under p1 with its trait", c.Providers)
				}
			}},
		{name: "aggregate", sql: []string{`INSERT INTO placement_aggregates (uuid) VALUES ('` + a1 + `')`,
			`INSERT INTO resource_provider_aggregates (resource_provider_id, aggregate_id)
			SELECT rp.id, a.id FROM resource_providers rp, placement_aggregates a WHERE rp.name IN ('p1', 'p3')`},
			changed: []string{"p1", "p3"}},
		{name: "renamed", sql: []string{`UPDATE resource_providers SET name = 'p2b' WHERE name = 'p2'`,
			`UPDATE resource_providers SET name = 'p2' WHERE name = 'p2b'`}, changed: []string{"p2"}},
		{name: "re-parented", sql: []string{`UPDATE resource_providers SET parent_provider_id = NULL, root_provider_id = id WHERE name = 'p2'`},
			changed: []string{"p2"}},
		{name: "new provider", sql: []string{`INSERT INTO resource_providers (uuid, name) VALUES ('` + u4 + `', 'p4')`},
			changed: []string{"new"}},
		{name: "provider deleted", sql: []string{`DELETE FROM resource_provider_aggregates WHERE resource_provider_id = ` + fmt.Sprint(p3),
			`DELETE FROM resource_providers WHERE name = 'p3'`}, changed: []string{"p3"},
			check: func(t *testing.T, c CatchUp) {
				if len(c.Providers) != 0 {
					t.Errorf("providers = %+v, want none (deleted)", c.Providers)
				}
			}},
		{name: "rolled back", sql: []string{`BEGIN`, `UPDATE inventories SET total = 9`, `ROLLBACK`}},
		{name: "new trait", sql: []string{`INSERT INTO traits (name) VALUES ('CUSTOM_X')`}, names: true,
			check: func(t *testing.T, c CatchUp) {
				if len(c.Traits) == 0 || c.Traits[len(c.Traits)-1] != "CUSTOM_X" || len(c.Classes) == 0 {
					t.Errorf("traits end with %v, want CUSTOM_X; %d classes", c.Traits[max(0, len(c.Traits)-2):], len(c.Classes))
				}
			}},
		{name: "new resource class", sql: []string{`INSERT INTO resource_classes (id, name) VALUES (10000, 'CUSTOM_Y')`}, names: true},
		{name: "truncated", sql: []string{`TRUNCATE allocations, consumers`}, reset: true},
	}
	ids := map[string]int64{"p1": p1, "p2": p2, "p3": p3}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			since := currentSnapshot(t, db)
			conn, err := db.Acquire(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range tt.sql {
				if _, err := conn.Exec(ctx, s); err != nil {
					conn.Release()
					t.Fatalf("%s: %v", s, err)
				}
			}
			conn.Release()
			var want []int64
			for _, n := range tt.changed {
				if n == "new" {
					want = append(want, providerID(t, db, "p4"))
				} else {
					want = append(want, ids[n])
				}
			}
			peek, err := PeekCatchUp(ctx, db, since)
			if err != nil {
				t.Fatal(err)
			}
			c, err := ReadCatchUp(ctx, db, since)
			if err != nil {
				t.Fatal(err)
			}
			for _, got := range []CatchUp{peek, c} {
				if fmt.Sprint(got.Changed) != fmt.Sprint(want) || got.Names != tt.names || got.Reset != tt.reset || got.Behind {
					t.Errorf("changed %v names %v reset %v behind %v; want changed %v names %v reset %v",
						got.Changed, got.Names, got.Reset, got.Behind, want, tt.names, tt.reset)
				}
			}
			if got, want := c.Empty(), len(tt.changed) == 0 && !tt.names && !tt.reset; got != want {
				t.Errorf("Empty() = %v, want %v", got, want)
			}
			if !tt.reset && len(c.Providers) != len(want) && tt.name != "provider deleted" {
				t.Errorf("%d providers loaded, want %d", len(c.Providers), len(want))
			}
			if tt.check != nil {
				tt.check(t, c)
			}
			// Caught up, nothing is pending any more.
			again, err := PeekCatchUp(ctx, db, c.Snapshot)
			if err != nil {
				t.Fatal(err)
			}
			if !again.Empty() {
				t.Errorf("after catching up: %+v still pending", again)
			}
		})
	}
}

// TestChangeFeedOutOfOrder: a transaction that began before a snapshot
// and commits after it is pending against that snapshot, although a later
// transaction committed (and was seen) first.
func TestChangeFeedOutOfOrder(t *testing.T) {
	ctx := context.Background()
	db := testDB(t)
	mustCreate(t, db, u1, "p1", nil)
	mustCreate(t, db, u2, "p2", nil)
	p1, p2 := providerID(t, db, "p1"), providerID(t, db, "p2")
	a, err := db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = a.Rollback(ctx) }()
	if _, err := a.Exec(ctx, `UPDATE resource_providers SET name = 'p1a' WHERE id = $1`, p1); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(ctx, `UPDATE resource_providers SET name = 'p2b' WHERE id = $1`, p2); err != nil {
		t.Fatal(err)
	}
	mid, err := ReadCatchUp(ctx, db, currentSnapshot(t, db))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := ReadCatchUp(ctx, db, mid.Snapshot)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(c.Changed) != fmt.Sprint([]int64{p1}) || len(c.Providers) != 1 || c.Providers[0].Name != "p1a" {
		t.Errorf("after the late commit: changed %v providers %+v, want p1 renamed p1a", c.Changed, c.Providers)
	}
}

// TestTrimChanges: trimming past a snapshot's xmin makes a catch-up from it
// report Behind; trimming keeps what a newer snapshot needs. Snapshots are
// written by hand around the creations' xids: the cluster's real xmin may
// be held back by any other database's transactions.
func TestTrimChanges(t *testing.T) {
	ctx := context.Background()
	db := testDB(t)
	lastXid := func() string {
		var x string
		if err := db.QueryRow(ctx, `SELECT max(xid)::text FROM placement_changes`).Scan(&x); err != nil {
			t.Fatal(err)
		}
		return x
	}
	mustCreate(t, db, u1, "p1", nil)
	x1 := lastXid()
	mustCreate(t, db, u2, "p2", nil)
	x2 := lastXid()
	old := x1 + ":" + x1 + ":"    // sees neither creation
	recent := x2 + ":" + x2 + ":" // sees p1's, not p2's
	n, err := TrimChanges(ctx, db, x2)
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Error("nothing trimmed")
	}
	if c, err := PeekCatchUp(ctx, db, old); err != nil || !c.Behind {
		t.Errorf("from before the horizon: behind = %v, err %v; want behind", c.Behind, err)
	}
	c, err := ReadCatchUp(ctx, db, recent)
	if err != nil || c.Behind || len(c.Changed) != 1 || len(c.Providers) != 1 || c.Providers[0].Name != "p2" {
		t.Errorf("from the horizon: %+v, err %v; want p2 pending", c, err)
	}
	// A lower horizon never moves it back.
	if _, err := TrimChanges(ctx, db, "1"); err != nil {
		t.Fatal(err)
	}
	if c, _ := PeekCatchUp(ctx, db, old); !c.Behind {
		t.Error("the horizon moved back")
	}
}
