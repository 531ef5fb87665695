package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/unisched/unisched/internal/config"
	"github.com/unisched/unisched/migrations"
)

const migrateUsage = `usage: unisched migrate [--config FILE] [up|status|down N|down --all|force N|repair]

  up (default)  apply pending migrations, print the schema version
  status        print the database's version, this binary's latest, what is
                pending and what is missing; exits 1 when the database is dirty or
                misses a migration
  down N        revert the last N migrations (rollback of an upgrade)
  down --all    revert every migration: DROPS ALL DATA
  force N       record version N as applied and clean without running anything
                (after repairing a half-applied migration by hand)
  repair        apply migrations skipped because they were merged with a lower
                number than one the database already had (each in a transaction)
`

// runMigrate is `unisched migrate`: the schema, by hand, before replicas
// of a new release start (docs/operations.md#upgrading).
func runMigrate(ctx context.Context, args []string, stdout io.Writer) error {
	cfg, rest, err := loadConfig("migrate", args)
	if err != nil {
		return err
	}
	url := cfg.Database.URL
	sub := "up"
	if len(rest) > 0 {
		sub, rest = rest[0], rest[1:]
	}
	count := func() (int, error) {
		if len(rest) != 1 {
			return 0, fmt.Errorf("migrate %s: one number expected\n\n%s", sub, migrateUsage)
		}
		n, err := strconv.Atoi(rest[0])
		if err != nil || n < 0 {
			return 0, fmt.Errorf("migrate %s: %q is not a number", sub, rest[0])
		}
		return n, nil
	}
	switch sub {
	case "up":
		if err := migrations.Up(url); err != nil {
			return err
		}
		s, err := migrations.GetStatus(ctx, url)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, "database at migration", s.Current)
		return nil
	case "status":
		s, err := migrations.GetStatus(ctx, url)
		if err != nil {
			return err
		}
		printStatus(stdout, s)
		return s.Err()
	case "down":
		if len(rest) == 1 && rest[0] == "--all" {
			return migrations.Down(url)
		}
		n, err := count()
		if err != nil {
			return fmt.Errorf("%w (or --all to revert everything)", err)
		}
		if n == 0 {
			return nil
		}
		if err := migrations.Steps(url, -n); err != nil {
			return err
		}
		s, err := migrations.GetStatus(ctx, url)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, "database at migration", s.Current)
		return nil
	case "force":
		n, err := count()
		if err != nil {
			return err
		}
		if err := migrations.Force(url, n); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "database recorded at migration", n)
		return nil
	case "repair":
		done, err := migrations.Repair(ctx, url)
		for _, v := range done {
			fmt.Fprintf(stdout, "applied %06d\n", v)
		}
		if err != nil {
			return err
		}
		if len(done) == 0 {
			fmt.Fprintln(stdout, "nothing to repair")
		}
		return nil
	case "-h", "--help", "help":
		fmt.Fprint(stdout, migrateUsage)
		return nil
	}
	return fmt.Errorf("migrate: unknown subcommand %q\n\n%s", sub, migrateUsage)
}

func printStatus(w io.Writer, s migrations.Status) {
	state := "clean"
	if s.Dirty {
		state = "DIRTY (the last migration failed half-way)"
	}
	fmt.Fprintf(w, "database:  migration %d (%s)\n", s.Current, state)
	fmt.Fprintf(w, "binary:    latest migration %d (%d known)\n", s.Latest, len(s.Known))
	list := func(vs []uint) string {
		if len(vs) == 0 {
			return "none"
		}
		var out []string
		for _, v := range vs {
			out = append(out, strconv.FormatUint(uint64(v), 10))
		}
		return strings.Join(out, ", ")
	}
	fmt.Fprintf(w, "pending:   %s\n", list(s.Pending))
	fmt.Fprintf(w, "missing:   %s\n", list(s.Missing))
	if len(s.Unprobed) > 0 {
		fmt.Fprintf(w, "unchecked: %s (no probe in this binary)\n", list(s.Unprobed))
	}
	switch {
	case s.Err() != nil:
		fmt.Fprintln(w, "state:     needs attention (below)")
	case s.Ahead():
		fmt.Fprintln(w, "state:     newer than this binary (a newer unisched migrated it)")
	case len(s.Pending) > 0:
		fmt.Fprintln(w, "state:     behind: run `unisched migrate`")
	default:
		fmt.Fprintln(w, "state:     up to date")
	}
}

// prepareSchema is serve's start: with database.migrate it migrates up;
// without, it checks that someone did. Either way a database migrated by
// a newer release (a rolling upgrade under way) is served with a warning
// instead of refused, since migrations are expand/contract.
func prepareSchema(ctx context.Context, db config.Database, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	s, err := migrations.GetStatus(ctx, db.URL)
	if err != nil {
		return err
	}
	if s.Ahead() && s.Err() == nil {
		log.Warn("database schema is newer than this binary (a newer release migrated it); serving on it", "database_migration", s.Current, "binary_latest", s.Latest)
		return nil
	}
	if db.Migrate {
		return migrations.Up(db.URL)
	}
	_, err = migrations.Ready(ctx, db.URL)
	if err != nil {
		return fmt.Errorf("database.migrate is false and the schema is not ready: %w", err)
	}
	return nil
}
