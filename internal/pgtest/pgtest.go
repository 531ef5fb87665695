// Package pgtest gives tests their own database on the real PostgreSQL
// named by UNISCHED_TEST_DATABASE_URL. A migrated template is built once per
// test binary, and each test gets a copy of it, dropped at cleanup; an
// unreachable server fails the test, it never skips.
package pgtest

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"github.com/unisched/unisched/migrations"
)

// DefaultURL is used when UNISCHED_TEST_DATABASE_URL is unset: the local
// server's postgres superuser over the unix socket.
const DefaultURL = "postgres://postgres@/postgres?host=/var/run/postgresql"

// AdminURL is the maintenance connection tests create databases through.
func AdminURL() string {
	if u := os.Getenv("UNISCHED_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultURL
}

// withDatabase returns the admin URL pointed at another database.
func withDatabase(admin, name string) (string, error) {
	u, err := url.Parse(admin)
	if err != nil {
		return "", fmt.Errorf("parsing %s: %w", admin, err)
	}
	u.Path = "/" + name
	return u.String(), nil
}

var (
	templateOnce sync.Once
	templateName string
	templateErr  error
)

// template builds the migrated template database once per test binary.
func template(ctx context.Context) (string, error) {
	templateOnce.Do(func() {
		templateName = "unisched_tpl_" + strings.ReplaceAll(uuid.NewString(), "-", "")[:12]
		templateErr = createDatabase(ctx, templateName, "")
		if templateErr != nil {
			return
		}
		var u string
		u, templateErr = withDatabase(AdminURL(), templateName)
		if templateErr != nil {
			return
		}
		templateErr = migrations.Up(u)
	})
	return templateName, templateErr
}

func createDatabase(ctx context.Context, name, tpl string) error {
	conn, err := pgx.Connect(ctx, AdminURL())
	if err != nil {
		return fmt.Errorf("connecting to test PostgreSQL at %s (set UNISCHED_TEST_DATABASE_URL): %w", AdminURL(), err)
	}
	defer conn.Close(ctx)
	stmt := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize()
	if tpl != "" {
		stmt += " TEMPLATE " + pgx.Identifier{tpl}.Sanitize()
	}
	if _, err := conn.Exec(ctx, stmt); err != nil {
		return fmt.Errorf("creating test database %s: %w", name, err)
	}
	return nil
}

func dropDatabase(name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, AdminURL())
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	return err
}

// URL creates a fresh migrated database for t and returns its URL; the
// database is dropped when t ends.
func URL(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	tpl, err := template(ctx)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	name := "unisched_test_" + strings.ReplaceAll(uuid.NewString(), "-", "")[:16]
	if err := createDatabase(ctx, name, tpl); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		if err := dropDatabase(name); err != nil {
			t.Logf("pgtest: dropping %s: %v", name, err)
		}
	})
	u, err := withDatabase(AdminURL(), name)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return u
}

// Pool opens a pool on a fresh migrated database for t.
func Pool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	u := URL(t)
	pool, err := pgxpool.New(context.Background(), u)
	if err != nil {
		t.Fatalf("pgtest: connecting to %s: %v", u, err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// DropTemplate removes the template database; call it from TestMain after
// m.Run so test runs leave nothing behind.
func DropTemplate() {
	if templateName != "" {
		_ = dropDatabase(templateName)
	}
}

// Main is a package's TestMain: it runs the tests, drops the template
// database, and, when they passed, fails the run on goroutines left
// behind, so a leak shows in the package that leaked it.
func Main(m *testing.M) {
	code := m.Run()
	DropTemplate()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}
