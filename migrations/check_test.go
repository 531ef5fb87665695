package migrations_test

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/unisched/unisched/internal/pgtest"
	"github.com/unisched/unisched/migrations"
)

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(ctx) })
	return conn
}

func probe(t *testing.T, conn *pgx.Conn, v uint) bool {
	t.Helper()
	present, ok, err := migrations.Probe(context.Background(), conn, v)
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		t.Fatalf("migration %06d has no probe: add one to migrations/check.go (a query true once its objects exist)", v)
	}
	return present
}

// Every migration has a probe, false before the migration is applied and
// true after it; at the head all of them hold (no later migration undoes
// an earlier one's marker) and the status is clean.
func TestProbesFollowTheChain(t *testing.T) {
	ctx := context.Background()
	url := pgtest.URL(t)
	if err := migrations.Down(url); err != nil {
		t.Fatal(err)
	}
	conn := connect(t, url)
	known, err := migrations.Known()
	if err != nil {
		t.Fatal(err)
	}
	if len(known) < 10 {
		t.Fatalf("only %d migrations found", len(known))
	}
	for _, v := range known {
		if probe(t, conn, v) {
			t.Errorf("probe of %06d is true before it is applied", v)
		}
		if err := migrations.To(url, v); err != nil {
			t.Fatal(err)
		}
		if !probe(t, conn, v) {
			t.Errorf("probe of %06d is false after it is applied", v)
		}
	}
	for _, v := range known {
		if !probe(t, conn, v) {
			t.Errorf("probe of %06d is false at the head", v)
		}
	}
	s, err := migrations.GetStatus(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	if s.Current != known[len(known)-1] || s.Latest != s.Current || s.Dirty || len(s.Pending)+len(s.Missing)+len(s.Unprobed) != 0 || s.Err() != nil {
		t.Errorf("status at the head: %+v", s)
	}
}

// The histories main has seen: a migration applied by hand (as a
// development database got it from a branch) before a lower-numbered one
// landed. golang-migrate alone would skip the lower one; Up refuses,
// naming it, status lists it, and repair applies it.
func TestOutOfOrderMigrations(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		base    uint   // migrated normally up to here
		early   []uint // then applied by hand, and the version forced to the last
		missing []uint
	}{
		{base: 6, early: []uint{9}, missing: []uint{7}},
		{base: 9, early: []uint{12}, missing: []uint{11}},
		{base: 9, early: []uint{11, 12, 13}, missing: nil},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%d+%v", tc.base, tc.early), func(t *testing.T) {
			url := pgtest.URL(t)
			if err := migrations.Down(url); err != nil {
				t.Fatal(err)
			}
			if err := migrations.To(url, tc.base); err != nil {
				t.Fatal(err)
			}
			conn := connect(t, url)
			for _, v := range tc.early {
				_, sql, err := migrations.UpSQL(v)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := conn.Exec(ctx, sql); err != nil {
					t.Fatalf("applying %06d by hand: %v", v, err)
				}
			}
			last := tc.early[len(tc.early)-1]
			if err := migrations.Force(url, int(last)); err != nil {
				t.Fatal(err)
			}
			s, err := migrations.GetStatus(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(s.Missing, tc.missing) || s.Current != last {
				t.Fatalf("status: current %d missing %v, want %d %v", s.Current, s.Missing, last, tc.missing)
			}
			err = migrations.Up(url)
			if len(tc.missing) == 0 {
				if err != nil {
					t.Fatalf("up on a consistent database: %v", err)
				}
				return
			}
			want := fmt.Sprintf("migration(s) %06d were never applied", tc.missing[0])
			if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "unisched migrate repair") {
				t.Fatalf("up: %v, want an error with %q", err, want)
			}
			if _, err := migrations.Ready(ctx, url); err == nil {
				t.Error("Ready accepted a database with a missing migration")
			}
			done, err := migrations.Repair(ctx, url)
			if err != nil || !reflect.DeepEqual(done, tc.missing) {
				t.Fatalf("repair: %v %v", done, err)
			}
			if err := migrations.Up(url); err != nil {
				t.Fatalf("up after repair: %v", err)
			}
			s, err = migrations.Ready(ctx, url)
			if err != nil || len(s.Missing) != 0 || s.Current != s.Latest {
				t.Fatalf("after repair and up: %+v %v", s, err)
			}
			for _, v := range s.Known {
				if !probe(t, conn, v) {
					t.Errorf("%06d absent after repair and up", v)
				}
			}
		})
	}
}

// Dirty, newer and behind databases: what Up and Ready say.
func TestStatusRefusals(t *testing.T) {
	ctx := context.Background()
	url := pgtest.URL(t)
	conn := connect(t, url)
	s, err := migrations.Ready(ctx, url)
	if err != nil || s.Current != s.Latest {
		t.Fatalf("fresh database: %+v %v", s, err)
	}
	known := s.Known
	prev := known[len(known)-2]

	// a newer binary migrated it: serve runs (rolling upgrade), up refuses
	if _, err := conn.Exec(ctx, `UPDATE schema_migrations SET version = 999`); err != nil {
		t.Fatal(err)
	}
	if s, err := migrations.Ready(ctx, url); err != nil || !s.Ahead() {
		t.Errorf("newer database: Ready %+v %v, want ahead and no error", s, err)
	}
	if err := migrations.Up(url); err == nil || !strings.Contains(err.Error(), "newer than this binary") {
		t.Errorf("up on a newer database: %v", err)
	}

	// dirty: both refuse, naming force
	if _, err := conn.Exec(ctx, `UPDATE schema_migrations SET version = $1, dirty = true`, int64(s.Latest)); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{"up": migrations.Up(url), "ready": func() error { _, err := migrations.Ready(ctx, url); return err }()} {
		if err == nil || !strings.Contains(err.Error(), "dirty") || !strings.Contains(err.Error(), fmt.Sprintf("unisched migrate force %d", prev)) {
			t.Errorf("%s on a dirty database: %v", name, err)
		}
	}
	if err := migrations.Force(url, int(s.Latest)); err != nil {
		t.Fatal(err)
	}

	// one step down: Ready says pending, up brings it back
	if err := migrations.Steps(url, -1); err != nil {
		t.Fatal(err)
	}
	s, err = migrations.Ready(ctx, url)
	if err == nil || !reflect.DeepEqual(s.Pending, []uint{s.Latest}) || !strings.Contains(err.Error(), "run `unisched migrate` first") {
		t.Errorf("one step behind: %+v %v", s, err)
	}
	if err := migrations.Up(url); err != nil {
		t.Fatal(err)
	}
	if _, err := migrations.Ready(ctx, url); err != nil {
		t.Error(err)
	}
}

// Replicas starting together on an empty database all migrate it without
// one seeing another's migration in flight (dirty) and refusing.
func TestConcurrentUp(t *testing.T) {
	url := pgtest.URL(t)
	if err := migrations.Down(url); err != nil {
		t.Fatal(err)
	}
	// staggered, so that later ones check while an earlier one migrates
	const n = 8
	errs := make(chan error, n)
	for i := range n {
		go func() {
			time.Sleep(time.Duration(i) * 40 * time.Millisecond)
			errs <- migrations.Up(url)
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("concurrent up: %v", err)
		}
	}
	if s, err := migrations.Ready(context.Background(), url); err != nil || s.Current != s.Latest {
		t.Errorf("after concurrent ups: %+v %v", s, err)
	}
}
