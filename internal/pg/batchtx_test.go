package pg_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/unisched/unisched/internal/pg"
	"github.com/unisched/unisched/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// scratch is a pool of one connection on a database with one table of
// integers.
func scratch(t *testing.T) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 1
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, err := pool.Exec(context.Background(), `CREATE TABLE t (v integer NOT NULL UNIQUE)`); err != nil {
		t.Fatal(err)
	}
	return pool
}

func backend(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var pid int
	if err := pool.QueryRow(context.Background(), `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	return pid
}

func values(t *testing.T, pool *pgxpool.Pool) []int {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT v FROM t ORDER BY v`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func insert(vs ...int) *pgx.Batch {
	b := &pgx.Batch{}
	for _, v := range vs {
		b.Queue(`INSERT INTO t (v) VALUES ($1)`, v)
	}
	return b
}

var errStop = errors.New("stop")

// TestBatchTx: what a BatchTx commits and what it rolls back, and that the
// connection goes back to the pool idle either way.
func TestBatchTx(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name    string
		fn      func(tx *pg.BatchTx) error
		wantErr bool
		want    []int
	}{
		{"send then commit batch", func(tx *pg.BatchTx) error {
			if err := tx.Send(ctx, insert(1)); err != nil {
				return err
			}
			return tx.Commit(ctx, insert(2))
		}, false, []int{1, 2}},
		{"send only, committed on return", func(tx *pg.BatchTx) error {
			return tx.Send(ctx, insert(3))
		}, false, []int{3}},
		{"nothing sent", func(tx *pg.BatchTx) error { return nil }, false, nil},
		{"error after send rolls back", func(tx *pg.BatchTx) error {
			if err := tx.Send(ctx, insert(4)); err != nil {
				return err
			}
			return errStop
		}, true, nil},
		{"failing statement skips the commit", func(tx *pg.BatchTx) error {
			if err := tx.Send(ctx, insert(5)); err != nil {
				return err
			}
			return tx.Commit(ctx, insert(6, 6, 7))
		}, true, nil},
		{"failing statement in the first batch", func(tx *pg.BatchTx) error {
			return tx.Send(ctx, insert(8, 8))
		}, true, nil},
		{"single statements through DB", func(tx *pg.BatchTx) error {
			db, err := tx.DB(ctx)
			if err != nil {
				return err
			}
			if _, err := db.Exec(ctx, `INSERT INTO t (v) VALUES (9)`); err != nil {
				return err
			}
			return tx.Commit(ctx, insert(10))
		}, false, []int{9, 10}},
		{"single statements rolled back", func(tx *pg.BatchTx) error {
			db, err := tx.DB(ctx)
			if err != nil {
				return err
			}
			if _, err := db.Exec(ctx, `INSERT INTO t (v) VALUES (11)`); err != nil {
				return err
			}
			return errStop
		}, true, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pool := scratch(t)
			before := backend(t, pool)
			err := pg.WithBatchTx(ctx, pool, tc.fn)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if got := values(t, pool); !equal(got, tc.want) {
				t.Errorf("table holds %v, want %v", got, tc.want)
			}
			// The connection went back to the pool idle: a connection
			// left inside a transaction would have been closed.
			if after := backend(t, pool); after != before {
				t.Errorf("connection replaced (backend %d, then %d): it was not left idle", before, after)
			}
		})
	}
}

// TestBatchTxClosed: a committed BatchTx refuses more work.
func TestBatchTxClosed(t *testing.T) {
	ctx := context.Background()
	pool := scratch(t)
	err := pg.WithBatchTx(ctx, pool, func(tx *pg.BatchTx) error {
		if err := tx.Commit(ctx, insert(1)); err != nil {
			return err
		}
		if err := tx.Send(ctx, insert(2)); !errors.Is(err, pgx.ErrTxClosed) {
			t.Errorf("Send after Commit: %v, want ErrTxClosed", err)
		}
		if _, err := tx.DB(ctx); !errors.Is(err, pgx.ErrTxClosed) {
			t.Errorf("DB after Commit: %v, want ErrTxClosed", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := values(t, pool); !equal(got, []int{1}) {
		t.Errorf("table holds %v, want [1]", got)
	}
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
