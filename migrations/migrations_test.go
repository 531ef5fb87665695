package migrations_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/unisched/unisched/internal/pgtest"
	"github.com/unisched/unisched/migrations"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// TestUpDownUp walks the whole chain both ways on a real database, so a
// down migration that forgets an object is caught.
func TestUpDownUp(t *testing.T) {
	url := pgtest.URL(t)
	if err := migrations.Down(url); err != nil {
		t.Fatalf("down: %v", err)
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public' AND table_name <> 'schema_migrations'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("after down, %d tables remain", n)
	}
	if err := migrations.Up(url); err != nil {
		t.Fatalf("up again: %v", err)
	}
	v, dirty, err := migrations.Version(url)
	if err != nil || dirty || v == 0 {
		t.Fatalf("version after up: %d dirty=%v err=%v", v, dirty, err)
	}
}
