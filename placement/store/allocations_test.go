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
