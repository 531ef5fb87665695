package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/unisched/unisched/internal/config"
	"github.com/unisched/unisched/internal/pgtest"
	"github.com/unisched/unisched/migrations"
)

// `unisched migrate` subcommands on a real database: status, a rollback
// with down N, the out-of-order history main has had (000009 applied by
// hand before 000007 landed) refused by up and fixed by repair, and
// serve's start with and without database.migrate.
func TestMigrateCommand(t *testing.T) {
	ctx := context.Background()
	url := pgtest.URL(t)
	t.Setenv("UNISCHED_DATABASE_URL", url)
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		err := runMigrate(ctx, args, &out)
		return out.String(), err
	}
	steps := []struct {
		args    []string
		wantOut string // "" checks nothing
		wantErr string // "" means success
	}{
		{[]string{"status"}, "state:     up to date", ""},
		{[]string{"down"}, "", "one number expected"},
		{[]string{"down", "x"}, "", `"x" is not a number`},
		{[]string{"down", "2"}, "database at migration", ""},
		{[]string{"status"}, "state:     behind", ""},
		{[]string{}, "database at migration", ""},
		{[]string{"status"}, "pending:   none", ""},
		{[]string{"frobnicate"}, "", "unknown subcommand"},
	}
	for _, s := range steps {
		out, err := run(s.args...)
		if s.wantErr == "" && err != nil || s.wantErr != "" && (err == nil || !strings.Contains(err.Error(), s.wantErr)) {
			t.Fatalf("migrate %v: error %v, want %q", s.args, err, s.wantErr)
		}
		if !strings.Contains(out, s.wantOut) {
			t.Fatalf("migrate %v printed %q, want %q", s.args, out, s.wantOut)
		}
	}
	status, _ := migrations.GetStatus(ctx, url)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	// serve without database.migrate on a database one step behind: refused
	if _, err := run("down", "1"); err != nil {
		t.Fatal(err)
	}
	if err := prepareSchema(ctx, config.Database{URL: url, Migrate: false}, log); err == nil || !strings.Contains(err.Error(), "run `unisched migrate` first") {
		t.Errorf("serve without migrate on an old schema: %v", err)
	}
	if err := prepareSchema(ctx, config.Database{URL: url, Migrate: true}, log); err != nil {
		t.Errorf("serve with migrate: %v", err)
	}
	if err := prepareSchema(ctx, config.Database{URL: url, Migrate: false}, log); err != nil {
		t.Errorf("serve without migrate on the current schema: %v", err)
	}

	// the out-of-order history
	if _, err := run("down", "--all"); err != nil {
		t.Fatal(err)
	}
	if err := migrations.To(url, 6); err != nil {
		t.Fatal(err)
	}
	_, sql, err := migrations.UpSQL(9)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatal(err)
	}
	if _, err := run("force", "9"); err != nil {
		t.Fatal(err)
	}
	out, err := run("status")
	if err == nil || !strings.Contains(out, "missing:   7\n") || !strings.Contains(err.Error(), "unisched migrate repair") {
		t.Fatalf("status of the out-of-order database: %q %v", out, err)
	}
	for _, migrate := range []bool{true, false} {
		if err := prepareSchema(ctx, config.Database{URL: url, Migrate: migrate}, log); err == nil || !strings.Contains(err.Error(), "000007") {
			t.Errorf("serve (migrate %v) on the out-of-order database: %v", migrate, err)
		}
	}
	if _, err := run(); err == nil || !strings.Contains(err.Error(), "000007") {
		t.Fatalf("migrate up on the out-of-order database: %v", err)
	}
	if out, err := run("repair"); err != nil || out != "applied 000007\n" {
		t.Fatalf("repair: %q %v", out, err)
	}
	if _, err := run(); err != nil {
		t.Fatal(err)
	}
	if out, err := run("status"); err != nil || !strings.Contains(out, "up to date") {
		t.Fatalf("status after repair: %q %v", out, err)
	}

	// a newer release migrated it: serve runs on it, migrate up refuses
	if _, err := conn.Exec(ctx, `UPDATE schema_migrations SET version = $1`, int64(status.Latest+1)); err != nil {
		t.Fatal(err)
	}
	if err := prepareSchema(ctx, config.Database{URL: url, Migrate: true}, log); err != nil {
		t.Errorf("serve on a newer schema: %v", err)
	}
	if _, err := run(); err == nil || !strings.Contains(err.Error(), "newer than this binary") {
		t.Errorf("migrate up on a newer schema: %v", err)
	}
}
