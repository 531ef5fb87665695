package migrations

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/golang-migrate/migrate/v4"
	"github.com/jackc/pgx/v5"
)

// golang-migrate records one number, the last version applied, and moves
// up from it: a migration merged with a lower number than one a database
// already has (000007 landing after a dev database got 000009, 000011 after
// 000012) is skipped for ever, silently. unisched does not keep a second
// history table (it would not know about the databases migrated before
// it); instead every migration has a probe below, a query true once its
// objects exist, and a database at version V must pass the probe of every
// known migration up to V. A test walks the chain and checks each probe is
// false before its migration and true after it, and that every embedded
// migration has one.
var probes = map[uint]string{
	1:  `SELECT to_regclass('allocations') IS NOT NULL AND to_regclass('consumers') IS NOT NULL`,
	2:  `SELECT to_regclass('placement_changes') IS NOT NULL AND to_regproc('placement_note_reset') IS NOT NULL`,
	3:  `SELECT to_regclass('bridge_outbox') IS NOT NULL AND to_regclass('bridge_workload_cpus') IS NOT NULL`,
	4:  `SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'placement_changes_trunc' AND tgrelid = to_regclass('placement_aggregates'))`,
	5:  `SELECT count(*) = 2 FROM information_schema.columns WHERE table_schema = current_schema() AND (table_name, column_name) IN (('bridge_workloads', 'runtime_at'), ('bridge_hosts', 'architecture'))`,
	6:  `SELECT to_regclass('imagesec_packages') IS NOT NULL`,
	7:  `SELECT to_regclass('bridge_vm_intent_aliases') IS NOT NULL`,
	9:  `SELECT to_regclass('bridge_reconcile_divergences') IS NOT NULL`,
	11: `SELECT to_regclass('imagesec_upgrades') IS NOT NULL AND to_regclass('imagesec_advice') IS NOT NULL`,
	12: `SELECT to_regclass('imagesec_lineage') IS NOT NULL AND to_regclass('imagesec_jobs') IS NOT NULL`,
	13: `SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'imagesec_jobs_kind_check' AND conrelid = to_regclass('imagesec_jobs') AND pg_get_constraintdef(oid) LIKE '%advise%')`,
}

// Status is where a database stands against this binary's migrations.
type Status struct {
	// Current is the version golang-migrate recorded (0: none); Dirty says
	// the last one failed half-way.
	Current uint
	Dirty   bool
	// Known are this binary's migrations, ascending; Latest the last.
	Known  []uint
	Latest uint
	// Pending are known migrations above Current: `migrate` applies them.
	Pending []uint
	// Missing are known migrations at or below Current whose objects are
	// absent: merged out of order, golang-migrate will never apply them.
	Missing []uint
	// Unprobed are known migrations without a probe (a test forbids it).
	Unprobed []uint
}

// Ahead says the database was migrated by a newer binary.
func (s Status) Ahead() bool { return s.Current > s.Latest }

// Err says why migrating up or serving on this database is refused; nil
// when it is consistent (pending migrations or a newer schema are not
// errors here).
func (s Status) Err() error {
	switch {
	case s.Dirty:
		return fmt.Errorf("database migration %06d failed half-way (schema_migrations is dirty): inspect what it left and finish or undo it by hand, then record that with `unisched migrate force %d` (finished) or `unisched migrate force %d` (undone), and migrate again", s.Current, s.Current, s.previous(s.Current))
	case len(s.Missing) > 0:
		return fmt.Errorf("database is at migration %06d but migration(s) %s were never applied (merged with a lower number after the database got a higher one; golang-migrate skips them): back up the database, then run `unisched migrate repair`, which applies each in its own transaction", s.Current, versions(s.Missing))
	}
	return nil
}

// previous is the known version before v (0 for none).
func (s Status) previous(v uint) uint {
	var p uint
	for _, k := range s.Known {
		if k < v {
			p = k
		}
	}
	return p
}

func versions(vs []uint) string {
	var out []string
	for _, v := range vs {
		out = append(out, fmt.Sprintf("%06d", v))
	}
	return strings.Join(out, ", ")
}

var fileName = regexp.MustCompile(`^(\d+)_(.+)\.(up|down)\.sql$`)

// known lists the embedded migrations' versions, ascending.
func known() ([]uint, error) {
	entries, err := fs.ReadDir(FS, ".")
	if err != nil {
		return nil, fmt.Errorf("reading embedded migrations: %w", err)
	}
	seen := map[uint]bool{}
	var out []uint
	for _, e := range entries {
		m := fileName.FindStringSubmatch(e.Name())
		if m == nil || m[3] != "up" {
			continue
		}
		v, err := strconv.ParseUint(m[1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("migration %s: %w", e.Name(), err)
		}
		if !seen[uint(v)] {
			seen[uint(v)] = true
			out = append(out, uint(v))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}

// upSQL returns the up migration of version v.
func upSQL(v uint) (string, string, error) {
	entries, err := fs.ReadDir(FS, ".")
	if err != nil {
		return "", "", err
	}
	for _, e := range entries {
		m := fileName.FindStringSubmatch(e.Name())
		if m != nil && m[3] == "up" {
			if n, _ := strconv.ParseUint(m[1], 10, 64); uint(n) == v {
				b, err := fs.ReadFile(FS, e.Name())
				return e.Name(), string(b), err
			}
		}
	}
	return "", "", fmt.Errorf("no migration %06d in this binary", v)
}

// pgURL is the URL for pgx (golang-migrate's pgx5:// scheme undone).
func pgURL(databaseURL string) string {
	if strings.HasPrefix(databaseURL, "pgx5://") {
		return "postgres://" + strings.TrimPrefix(databaseURL, "pgx5://")
	}
	return databaseURL
}

// Querier is what Probe needs: a pgx.Conn, pgx.Tx or pgxpool.Pool.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Probe says whether migration v's objects exist in the database conn is
// connected to; ok is false when v has no probe.
func Probe(ctx context.Context, conn Querier, v uint) (present, ok bool, err error) {
	q, ok := probes[v]
	if !ok {
		return false, false, nil
	}
	if err := conn.QueryRow(ctx, q).Scan(&present); err != nil {
		return false, true, fmt.Errorf("probing migration %06d: %w", v, err)
	}
	return present, true, nil
}

// GetStatus reads the database's version and probes every known migration
// up to it.
func GetStatus(ctx context.Context, databaseURL string) (Status, error) {
	var s Status
	ks, err := known()
	if err != nil {
		return s, err
	}
	s.Known = ks
	if len(ks) > 0 {
		s.Latest = ks[len(ks)-1]
	}
	conn, err := pgx.Connect(ctx, pgURL(databaseURL))
	if err != nil {
		return s, fmt.Errorf("connecting to the database: %w", err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass('schema_migrations') IS NOT NULL`).Scan(&exists); err != nil {
		return s, fmt.Errorf("reading the schema version: %w", err)
	}
	if exists {
		var v int64
		err := conn.QueryRow(ctx, `SELECT version, dirty FROM schema_migrations LIMIT 1`).Scan(&v, &s.Dirty)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return s, fmt.Errorf("reading the schema version: %w", err)
		}
		if v > 0 {
			s.Current = uint(v)
		}
	}
	// probes read only; a read-only transaction makes sure of it
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return s, fmt.Errorf("probing migrations: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	for _, k := range ks {
		if k > s.Current {
			s.Pending = append(s.Pending, k)
			continue
		}
		if s.Dirty && k == s.Current {
			continue // half-applied: its probe says nothing useful
		}
		present, ok, err := Probe(ctx, tx, k)
		if err != nil {
			return s, err
		}
		if !ok {
			s.Unprobed = append(s.Unprobed, k)
		} else if !present {
			s.Missing = append(s.Missing, k)
		}
	}
	return s, nil
}

// Ready is what serve checks when it does not migrate itself: the
// database is consistent and has every migration this binary knows. A
// newer database (migrated by a newer binary in a rolling upgrade) is
// accepted: migrations are written expand/contract, so the previous
// release runs on the next one's schema.
func Ready(ctx context.Context, databaseURL string) (Status, error) {
	s, err := GetStatus(ctx, databaseURL)
	if err != nil {
		return s, err
	}
	if err := s.Err(); err != nil {
		return s, err
	}
	if len(s.Pending) > 0 {
		return s, fmt.Errorf("database is at migration %06d, this binary needs %06d (pending: %s): run `unisched migrate` first (database.migrate is off)", s.Current, s.Latest, versions(s.Pending))
	}
	return s, nil
}

// lockKey is the session advisory lock every unisched migrator holds
// around its check and its migrations: replicas starting together would
// otherwise see each other's migration in flight (golang-migrate marks the
// version dirty while it runs) and refuse to start.
const lockKey = 7316002

// lock takes the migrators' lock on its own connection (waiting up to a
// few minutes for another migrator) and returns its release.
func lock(databaseURL string) (func(), error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, pgURL(databaseURL))
	if err != nil {
		return nil, fmt.Errorf("connecting to the database: %w", err)
	}
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, int64(lockKey)); err != nil {
		conn.Close(context.Background())
		return nil, fmt.Errorf("waiting for other migrators: %w", err)
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = conn.Exec(ctx, `SELECT pg_advisory_unlock($1)`, int64(lockKey))
		conn.Close(ctx)
	}, nil
}

// checkBeforeUp refuses to migrate a database golang-migrate would
// migrate wrongly: dirty, missing a lower migration, or newer than this
// binary (whose Up would fail on the unknown version with a less helpful
// message).
func checkBeforeUp(databaseURL string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := GetStatus(ctx, databaseURL)
	if err != nil {
		return err
	}
	if err := s.Err(); err != nil {
		return err
	}
	if s.Ahead() {
		return fmt.Errorf("database is at migration %06d, newer than this binary's latest %06d: it was migrated by a newer unisched; run that one (or revert with its `unisched migrate down N`)", s.Current, s.Latest)
	}
	if s.Current > 0 && !contains(s.Known, s.Current) {
		return fmt.Errorf("database is at migration %06d, which this binary does not have (a development build's?): migrate it down with the binary that applied it", s.Current)
	}
	return nil
}

func contains(vs []uint, v uint) bool {
	for _, x := range vs {
		if x == v {
			return true
		}
	}
	return false
}

// Repair applies the missing migrations (Status.Missing), lowest first,
// each in its own transaction with its probe checked before the commit,
// under the migrators' lock. The recorded
// version is left as it is: it was already past them.
func Repair(ctx context.Context, databaseURL string) ([]uint, error) {
	unlock, err := lock(databaseURL)
	if err != nil {
		return nil, err
	}
	defer unlock()
	s, err := GetStatus(ctx, databaseURL)
	if err != nil {
		return nil, err
	}
	if s.Dirty {
		return nil, s.Err()
	}
	conn, err := pgx.Connect(ctx, pgURL(databaseURL))
	if err != nil {
		return nil, fmt.Errorf("connecting to the database: %w", err)
	}
	defer conn.Close(ctx)
	var done []uint
	for _, v := range s.Missing {
		name, sql, err := upSQL(v)
		if err != nil {
			return done, err
		}
		err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if present, _, err := Probe(ctx, tx, v); err != nil || present {
				return err // applied meanwhile by another repair
			}
			if _, err := tx.Exec(ctx, sql); err != nil {
				return err
			}
			present, _, err := Probe(ctx, tx, v)
			if err == nil && !present {
				err = errors.New("its objects are still absent after it ran")
			}
			return err
		})
		if err != nil {
			return done, fmt.Errorf("applying %s out of order (rolled back; the database is as before it): %w", name, err)
		}
		done = append(done, v)
	}
	return done, nil
}

// Steps reverts (n < 0) or applies (n > 0) n migrations.
func Steps(databaseURL string, n int) error {
	m, err := open(databaseURL)
	if err != nil {
		return err
	}
	defer m.Close()
	if err := m.Steps(n); err != nil && !errors.Is(err, migrate.ErrNoChange) {
		return fmt.Errorf("migrating %d steps: %w", n, err)
	}
	return nil
}

// Force records version v as applied and clean without running anything:
// the way out of a dirty database once it was repaired by hand.
func Force(databaseURL string, v int) error {
	m, err := open(databaseURL)
	if err != nil {
		return err
	}
	defer m.Close()
	if err := m.Force(v); err != nil {
		return fmt.Errorf("forcing version %d: %w", v, err)
	}
	return nil
}

// To migrates up or down to version v exactly (tests walk the chain with
// it).
func To(databaseURL string, v uint) error {
	m, err := open(databaseURL)
	if err != nil {
		return err
	}
	defer m.Close()
	if err := m.Migrate(v); err != nil && !errors.Is(err, migrate.ErrNoChange) {
		return fmt.Errorf("migrating to %d: %w", v, err)
	}
	return nil
}

// Known lists this binary's migration versions, ascending.
func Known() ([]uint, error) { return known() }

// UpSQL returns the file name and text of migration v's up half.
func UpSQL(v uint) (name, sql string, err error) { return upSQL(v) }
