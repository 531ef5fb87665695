// Package health answers the liveness and readiness probes of serve's
// listeners: GET /healthz says the process is alive (it touches nothing,
// so a slow database never gets a healthy process restarted), GET /readyz
// says this replica should be sent requests (database reachable, schema at
// the version the binary expects, not shutting down). Balancers (haproxy's
// httpchk) and systemd/Kubernetes probes call them without a token.
package health

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// Paths of the probes; none is a Placement, Zun or Nova route.
const (
	LivePath  = "/healthz"
	ReadyPath = "/readyz"
)

// DB is what readiness needs of the database: *pgxpool.Pool has it.
type DB interface {
	Ping(ctx context.Context) error
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Checker runs the readiness checks. One Checker serves every listener of
// a process: they share the pool, and draining ends them together.
type Checker struct {
	db DB
	// expected is the newest migration this binary carries.
	expected uint
	timeout  time.Duration
	draining atomic.Bool
}

// NewChecker checks db against the migrations in migrationsFS (their
// NNNNNN_ prefixes give the version the binary expects). timeout bounds
// the whole readiness check (1 s when <= 0): a probe must answer fast,
// and a database that takes longer is not one to send traffic through.
func NewChecker(db DB, migrationsFS fs.FS, timeout time.Duration) (*Checker, error) {
	v, err := LatestMigration(migrationsFS)
	if err != nil {
		return nil, err
	}
	if timeout <= 0 {
		timeout = time.Second
	}
	return &Checker{db: db, expected: v, timeout: timeout}, nil
}

// LatestMigration is the highest NNNNNN_*.up.sql version in fsys.
func LatestMigration(fsys fs.FS) (uint, error) {
	names, err := fs.Glob(fsys, "*.up.sql")
	if err != nil {
		return 0, fmt.Errorf("listing migrations: %w", err)
	}
	var latest uint
	for _, n := range names {
		num, _, ok := strings.Cut(n, "_")
		if !ok {
			continue
		}
		v, err := strconv.ParseUint(num, 10, 64)
		if err != nil {
			continue
		}
		latest = max(latest, uint(v))
	}
	if latest == 0 {
		return 0, errors.New("no migrations found")
	}
	return latest, nil
}

// Drain marks the process as shutting down: /readyz answers 503 from now
// on, so balancers stop sending new requests while in-flight ones finish.
func (c *Checker) Drain() { c.draining.Store(true) }

// Check is one readiness check's outcome.
type Check struct {
	Status string `json:"status"` // "ok" or "fail"
	Error  string `json:"error,omitempty"`
	// DurationMS is how long the check took.
	DurationMS float64 `json:"duration_ms"`
	// Version and Expected: the migrations check's database and binary
	// versions.
	Version  *uint `json:"version,omitempty"`
	Expected *uint `json:"expected,omitempty"`
	Dirty    bool  `json:"dirty,omitempty"`
}

// Report is the body of /readyz (and, with no checks, of /healthz).
type Report struct {
	Status string           `json:"status"` // "ok" or "unavailable"
	Checks map[string]Check `json:"checks,omitempty"`
}

// Ready runs the checks: database, migrations, listener.
func (c *Checker) Ready(ctx context.Context) Report {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	rep := Report{Status: "ok", Checks: map[string]Check{}}
	put := func(name string, ch Check) {
		if ch.Status != "ok" {
			rep.Status = "unavailable"
		}
		rep.Checks[name] = ch
	}

	start := time.Now()
	err := c.db.Ping(ctx)
	put("database", result(err, start))

	if err != nil {
		put("migrations", Check{Status: "fail", Error: "database unreachable"})
	} else {
		put("migrations", c.migrations(ctx))
	}

	if c.draining.Load() {
		put("listener", Check{Status: "fail", Error: "shutting down"})
	} else {
		put("listener", Check{Status: "ok"})
	}
	return rep
}

func result(err error, start time.Time) Check {
	ch := Check{Status: "ok", DurationMS: ms(time.Since(start))}
	if err != nil {
		ch.Status, ch.Error = "fail", err.Error()
	}
	return ch
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// migrations compares golang-migrate's schema_migrations row with the
// binary's newest migration. A database behind the binary is not ready (a
// query may need a table it lacks). One ahead of it is: during a rolling
// upgrade the new replicas migrate first, and migrations are additive (see
// docs/operations.md), so the old replicas keep serving until replaced.
func (c *Checker) migrations(ctx context.Context) Check {
	start := time.Now()
	var v int64
	var dirty bool
	err := c.db.QueryRow(ctx, `SELECT version, dirty FROM schema_migrations LIMIT 1`).Scan(&v, &dirty)
	ch := result(err, start)
	exp := c.expected
	ch.Expected = &exp
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		ch.Status, ch.Error = "fail", "no migration applied"
	case err != nil:
		ch.Error = "reading schema_migrations: " + err.Error()
	default:
		got := uint(v)
		ch.Version, ch.Dirty = &got, dirty
		switch {
		case dirty:
			ch.Status, ch.Error = "fail", fmt.Sprintf("migration %d failed half-way (dirty)", got)
		case got < exp:
			ch.Status, ch.Error = "fail", fmt.Sprintf("database at migration %d, this binary needs %d: run unisched migrate", got, exp)
		}
	}
	return ch
}

// Handler serves LivePath and ReadyPath (GET and HEAD) and answers 404
// for anything else; Wrap puts it in front of an API.
func (c *Checker) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case LivePath:
			c.serve(w, r, func() Report { return Report{Status: "ok"} })
		case ReadyPath:
			c.serve(w, r, func() Report { return c.Ready(r.Context()) })
		default:
			http.NotFound(w, r)
		}
	})
}

func (c *Checker) serve(w http.ResponseWriter, r *http.Request, report func() Report) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	WriteReport(w, r, report())
}

// WriteReport answers a probe with rep: 200, or 503 unless its status is
// "ok"; the JSON body for GET, none for HEAD.
func WriteReport(w http.ResponseWriter, r *http.Request, rep Report) {
	body, _ := json.Marshal(rep)
	body = append(body, '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	if rep.Status != "ok" {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	if r.Method == http.MethodGet {
		w.Write(body)
	}
}

// Owns says whether path is one of the probes.
func Owns(path string) bool { return path == LivePath || path == ReadyPath }
