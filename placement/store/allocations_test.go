package store

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/unisched/unisched/internal/pg"
)

// TestLockProvidersOrdersGenerationWriters: while a claim holds a
// provider's lock, an inventory writer's compare-and-swap waits, and once
// the claim commits its bump the writer's stale generation fails instead
// of silently interleaving.
func TestLockProvidersOrdersGenerationWriters(t *testing.T) {
	db := testDB(t)
	ctx := context.Background()
	p := mustCreate(t, db, u1, "cn1", nil)

	claim, err := db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = claim.Rollback(ctx) }()
	locked, err := LockProviders(ctx, claim, []string{u1, u2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(locked) != 1 || locked[u1] == nil || locked[u1].Generation != p.Generation {
		t.Fatalf("locked %+v, want only %s at generation %d", locked, u1, p.Generation)
	}

	writerDone := make(chan error, 1)
	go func() {
		writerDone <- pg.WithTx(ctx, db, pgx.TxOptions{}, func(tx pgx.Tx) error {
			_, err := IncrementGeneration(ctx, tx, p.ID, p.Generation)
			return err
		})
	}()
	select {
	case err := <-writerDone:
		t.Fatalf("writer finished while the claim held the lock: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	if _, err := IncrementGeneration(ctx, claim, p.ID, locked[u1].Generation); err != nil {
		t.Fatal(err)
	}
	if err := claim.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-writerDone; !errors.Is(err, ErrConcurrentUpdate) {
		t.Fatalf("writer got %v, want ErrConcurrentUpdate", err)
	}
}

// TestEnsureIDsConcurrently: many transactions creating the same project,
// user and consumer type at once all get the one row's id.
func TestEnsureIDsConcurrently(t *testing.T) {
	db := testDB(t)
	ctx := context.Background()
	const n = 12
	type ids struct {
		project, user int64
		ctype         int
	}
	got := make([]ids, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = pg.WithTx(ctx, db, pgx.TxOptions{}, func(tx pgx.Tx) error {
				var err error
				if got[i].project, err = EnsureProject(ctx, tx, "proj"); err != nil {
					return err
				}
				if got[i].user, err = EnsureUser(ctx, tx, "user"); err != nil {
					return err
				}
				got[i].ctype, err = EnsureConsumerType(ctx, tx, "INSTANCE")
				return err
			})
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("transaction %d: %v", i, errs[i])
		}
		if got[i] != got[0] {
			t.Errorf("transaction %d got %+v, transaction 0 got %+v", i, got[i], got[0])
		}
	}
	var projects int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM projects`).Scan(&projects); err != nil {
		t.Fatal(err)
	}
	if projects != 1 {
		t.Errorf("%d projects, want 1", projects)
	}
}

// TestConsumerLifecycle covers the consumer rows a claim goes through:
// insert at generation 1, a racing insert told ErrExists, the guarded
// write, and removal once the consumer holds nothing.
func TestConsumerLifecycle(t *testing.T) {
	db := testDB(t)
	ctx := context.Background()
	const cu = "cccccccc-0000-0000-0000-000000000001"
	proj, err := EnsureProject(ctx, db, "p")
	if err != nil {
		t.Fatal(err)
	}
	user, err := EnsureUser(ctx, db, "u")
	if err != nil {
		t.Fatal(err)
	}
	c := &Consumer{UUID: cu, ProjectID: proj, UserID: user}
	if err := WriteClaim(ctx, SendOn(db), &ClaimWrite{NewConsumers: []*Consumer{c}}); err != nil {
		t.Fatal(err)
	}
	if c.Generation != 1 {
		t.Errorf("new consumer at generation %d", c.Generation)
	}
	again := &Consumer{UUID: cu, ProjectID: proj, UserID: user}
	if err := WriteClaim(ctx, SendOn(db), &ClaimWrite{NewConsumers: []*Consumer{again}}); !errors.Is(err, ErrExists) {
		t.Errorf("second insert: %v, want ErrExists", err)
	}
	locked, err := LockConsumers(ctx, db, []string{cu})
	if err != nil {
		t.Fatal(err)
	}
	c = locked[cu]
	cases := []struct {
		name     string
		expected int
		want     error
	}{
		{"stale", 5, ErrConcurrentUpdate},
		{"current", 1, nil},
		{"now stale", 1, ErrConcurrentUpdate},
		{"next", 2, nil},
	}
	for _, tc := range cases {
		if err := WriteConsumer(ctx, db, c, tc.expected); !errors.Is(err, tc.want) {
			t.Errorf("%s: WriteConsumer(%d) = %v, want %v", tc.name, tc.expected, err, tc.want)
		}
	}
	locked, err = LockConsumers(ctx, db, []string{cu})
	if err != nil {
		t.Fatal(err)
	}
	if got := locked[cu]; got == nil || got.Generation != 3 || got.ProjectID != proj {
		t.Fatalf("locked consumer %+v, want generation 3 of project p", got)
	}
	if err := DeleteConsumersWithoutAllocations(ctx, db, []int64{c.ID}); err != nil {
		t.Fatal(err)
	}
	if err := DeleteAllAllocationsOfConsumer(ctx, db, cu); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleting allocations of a removed consumer: %v, want ErrNotFound", err)
	}
}

// TestEnsureOwnersRace: transactions that find the same new project, user
// and consumer type missing all end with the one row's ids, whichever
// inserted it, and no duplicate rows.
func TestEnsureOwnersRace(t *testing.T) {
	db := testDB(t)
	ctx := context.Background()
	const n = 10
	got := make([]ClaimState, n)
	errs := make([]error, n)
	var start, done sync.WaitGroup
	start.Add(1)
	for i := range n {
		done.Add(1)
		go func() {
			defer done.Done()
			start.Wait()
			errs[i] = pg.WithBatchTx(ctx, db, func(tx *pg.BatchTx) error {
				r := ClaimRead{Projects: []string{"proj"}, Users: []string{"user", "other"}, ConsumerTypes: []string{"INSTANCE"}}
				if err := ReadClaim(ctx, tx.Send, r, &got[i]); err != nil {
					return err
				}
				conn, err := tx.DB(ctx)
				if err != nil {
					return err
				}
				return EnsureOwners(ctx, conn, r.Projects, r.Users, r.ConsumerTypes, &got[i])
			})
		}()
	}
	start.Done()
	done.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("transaction %d: %v", i, errs[i])
		}
		g, w := got[i], got[0]
		if g.ProjectIDs["proj"] != w.ProjectIDs["proj"] || g.UserIDs["user"] != w.UserIDs["user"] ||
			g.UserIDs["other"] != w.UserIDs["other"] || g.TypeIDs["INSTANCE"] != w.TypeIDs["INSTANCE"] || g.ProjectIDs["proj"] == 0 {
			t.Errorf("transaction %d resolved %v %v %v, transaction 0 %v %v %v", i,
				g.ProjectIDs, g.UserIDs, g.TypeIDs, w.ProjectIDs, w.UserIDs, w.TypeIDs)
		}
	}
	var projects, users, types int
	if err := db.QueryRow(ctx, `SELECT (SELECT count(*) FROM projects), (SELECT count(*) FROM users),
		(SELECT count(*) FROM consumer_types)`).Scan(&projects, &users, &types); err != nil {
		t.Fatal(err)
	}
	if projects != 1 || users != 2 || types != 1 {
		t.Errorf("%d projects, %d users, %d consumer types; want 1, 2, 1", projects, users, types)
	}
}

// TestReadClaimForms: the one-element and list forms of the claim's reads
// find the same rows; usage leaves out the consumers being replaced.
func TestReadClaimForms(t *testing.T) {
	db := testDB(t)
	ctx := context.Background()
	p1 := mustCreate(t, db, u1, "cn1", nil)
	p2 := mustCreate(t, db, u2, "cn2", nil)
	for _, p := range []*Provider{p1, p2} {
		if _, err := ReplaceInventories(ctx, db, p, []Inventory{NewInventory("VCPU", 8), NewInventory("DISK_GB", 100)}); err != nil {
			t.Fatal(err)
		}
	}
	const c1, c2 = "cccccccc-0000-0000-0000-000000000001", "cccccccc-0000-0000-0000-000000000002"
	allocate(t, db, p1.ID, c1, "VCPU", 3)
	allocate(t, db, p1.ID, c2, "VCPU", 2)
	cases := []struct {
		name      string
		consumers []string
		providers []string
		replacing []string
		wantUsed  int64 // VCPU on cn1
	}{
		{"one of each", []string{c1}, []string{u1}, []string{c1}, 2},
		{"lists", []string{c1, c2}, []string{u1, u2}, []string{c1, c2}, 0},
		{"one replaced, two providers", []string{c2}, []string{u1, u2}, []string{c2}, 3},
		{"unknown provider and consumer", []string{"cccccccc-0000-0000-0000-00000000000f"}, []string{u1, u4},
			[]string{"cccccccc-0000-0000-0000-00000000000f"}, 5},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var st ClaimState
			err := pg.WithBatchTx(ctx, db, func(tx *pg.BatchTx) error {
				return ReadClaim(ctx, tx.Send, ClaimRead{Consumers: tc.consumers, LockProviders: true, Providers: tc.providers,
					Classes: []string{"VCPU", "DISK_GB", "NOPE"}, Usage: true, Replacing: tc.replacing}, &st)
			})
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range tc.consumers {
				if c != "cccccccc-0000-0000-0000-00000000000f" && st.Consumers[c] == nil {
					t.Errorf("consumer %s not loaded", c)
				}
			}
			if len(st.Consumers) != len(tc.consumers) && tc.name != "unknown provider and consumer" {
				t.Errorf("loaded %d consumers, want %d", len(st.Consumers), len(tc.consumers))
			}
			if st.Providers[u1] == nil || st.Providers[u1].ID != p1.ID || st.Providers[u4] != nil {
				t.Errorf("locked providers %v", st.Providers)
			}
			if len(st.ClassIDs) != 2 {
				t.Errorf("class ids %v, want VCPU and DISK_GB", st.ClassIDs)
			}
			found := false
			for _, u := range st.Usages {
				if u.ProviderID == p1.ID && u.ClassID == st.ClassIDs["VCPU"] {
					found = true
					if u.Used != tc.wantUsed || u.Total != 8 {
						t.Errorf("VCPU on cn1: used %d of %d, want %d of 8", u.Used, u.Total, tc.wantUsed)
					}
				}
			}
			if !found {
				t.Errorf("no VCPU usage of cn1 in %+v", st.Usages)
			}
		})
	}
}

// TestWriteClaimFailures: each failure of a claim's write is an SQL error
// that stops the COMMIT sent with it, and is reported as the claim's
// retryable error.
func TestWriteClaimFailures(t *testing.T) {
	db := testDB(t)
	ctx := context.Background()
	p := mustCreate(t, db, u1, "cn1", nil)
	if _, err := ReplaceInventories(ctx, db, p, []Inventory{NewInventory("VCPU", 8)}); err != nil {
		t.Fatal(err)
	}
	const existing = "cccccccc-0000-0000-0000-000000000001"
	allocate(t, db, p.ID, existing, "VCPU", 1)
	proj, err := EnsureProject(ctx, db, "p")
	if err != nil {
		t.Fatal(err)
	}
	user, err := EnsureUser(ctx, db, "u")
	if err != nil {
		t.Fatal(err)
	}
	locked, err := LockConsumers(ctx, db, []string{existing})
	if err != nil {
		t.Fatal(err)
	}
	cur := locked[existing]
	vcpu := 0
	newAlloc := func(consumer string) []NewAllocation {
		return []NewAllocation{{ProviderID: p.ID, ConsumerUUID: consumer, ClassID: vcpu, Used: 1}}
	}
	const fresh = "cccccccc-0000-0000-0000-000000000002"
	cases := []struct {
		name string
		w    ClaimWrite
		want error
	}{
		{"consumer created meanwhile", ClaimWrite{NewConsumers: []*Consumer{{UUID: existing, ProjectID: proj, UserID: user}},
			Allocations: newAlloc(existing)}, ErrExists},
		{"stale provider generation", ClaimWrite{NewConsumers: []*Consumer{{UUID: fresh, ProjectID: proj, UserID: user}},
			Allocations: newAlloc(fresh), Providers: []*LockedProvider{{ID: p.ID, UUID: p.UUID, Generation: p.Generation + 5}}},
			ErrProviderGeneration},
		{"stale provider generation, list form", ClaimWrite{NewConsumers: []*Consumer{{UUID: fresh, ProjectID: proj, UserID: user}},
			Allocations: newAlloc(fresh), Providers: []*LockedProvider{{ID: p.ID, UUID: p.UUID, Generation: p.Generation + 5},
				{ID: p.ID + 100, UUID: u2}}}, ErrProviderGeneration},
		{"stale consumer generation", ClaimWrite{Replaced: []int64{cur.ID}, Allocations: newAlloc(existing),
			Consumers: []*Consumer{{ID: cur.ID, UUID: existing, ProjectID: proj, UserID: user, Generation: cur.Generation + 1}}},
			ErrConcurrentUpdate},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := pg.WithBatchTx(ctx, db, func(tx *pg.BatchTx) error {
				if err := tx.Send(ctx, &pgx.Batch{QueuedQueries: []*pgx.QueuedQuery{{SQL: "SELECT 1"}}}); err != nil {
					return err
				}
				return WriteClaim(ctx, tx.Commit, &tc.w)
			})
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if errors.Is(tc.want, ErrConcurrentUpdate) && !errors.Is(err, ErrConcurrentUpdate) {
				t.Errorf("%v does not match ErrConcurrentUpdate", err)
			}
			var allocs, consumers int
			if err := db.QueryRow(ctx, `SELECT (SELECT count(*) FROM allocations), (SELECT count(*) FROM consumers)`).
				Scan(&allocs, &consumers); err != nil {
				t.Fatal(err)
			}
			if allocs != 1 || consumers != 1 {
				t.Errorf("%d allocations and %d consumers after a failed write, want 1 and 1", allocs, consumers)
			}
		})
	}
}
