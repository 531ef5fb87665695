package health_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/unisched/unisched/internal/health"
	"github.com/unisched/unisched/internal/pgtest"
	"github.com/unisched/unisched/migrations"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func probe(t *testing.T, h http.Handler, method, path string) (int, health.Report, http.Header) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	res := rec.Result()
	body, _ := io.ReadAll(res.Body)
	var rep health.Report
	if method == http.MethodGet && res.StatusCode != http.StatusMethodNotAllowed {
		if err := json.Unmarshal(body, &rep); err != nil {
			t.Fatalf("%s %s: %d, body not JSON: %v\n%s", method, path, res.StatusCode, err, body)
		}
	}
	return res.StatusCode, rep, res.Header
}

func TestLatestMigration(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files []string
		want  uint
		err   bool
	}{
		{"ordered", []string{"000001_a.up.sql", "000001_a.down.sql", "000002_b.up.sql"}, 2, false},
		{"landed out of order", []string{"000012_x.up.sql", "000011_y.up.sql", "000003_z.up.sql"}, 12, false},
		{"down only ignored", []string{"000001_a.up.sql", "000009_b.down.sql"}, 1, false},
		{"junk ignored", []string{"README.up.sql", "x_y.up.sql", "000004_ok.up.sql"}, 4, false},
		{"none", []string{"notes.txt"}, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fsys := fstest.MapFS{}
			for _, f := range tc.files {
				fsys[f] = &fstest.MapFile{Data: []byte("--")}
			}
			got, err := health.LatestMigration(fsys)
			if (err != nil) != tc.err || got != tc.want {
				t.Errorf("LatestMigration = %d, %v; want %d (error %v)", got, err, tc.want, tc.err)
			}
		})
	}
	// the embedded migrations have one
	if v, err := health.LatestMigration(migrations.FS); err != nil || v < 12 {
		t.Errorf("LatestMigration(migrations.FS) = %d, %v", v, err)
	}
}

// readyz follows the database: 200 with every check ok on a migrated
// database; 503 naming the failing check when the schema is behind or
// dirty, when the database is gone, and once draining. healthz stays 200
// throughout: it must never depend on the database.
func TestReadiness(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Pool(t)
	hc, err := health.NewChecker(pool, migrations.FS, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	h := hc.Handler()
	latest, _ := health.LatestMigration(migrations.FS)

	code, rep, hdr := probe(t, h, "GET", "/readyz")
	if code != 200 || rep.Status != "ok" {
		t.Fatalf("readyz on a migrated database: %d %+v", code, rep)
	}
	if ct := hdr.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	for _, name := range []string{"database", "migrations", "listener"} {
		if rep.Checks[name].Status != "ok" {
			t.Errorf("check %s: %+v", name, rep.Checks[name])
		}
	}
	if m := rep.Checks["migrations"]; m.Version == nil || *m.Version != latest || m.Expected == nil || *m.Expected != latest {
		t.Errorf("migrations check: %+v, want version and expected %d", m, latest)
	}
	if code, _, _ := probe(t, h, "HEAD", "/readyz"); code != 200 {
		t.Errorf("HEAD /readyz: %d", code)
	}
	if code, _, hdr := probe(t, h, "POST", "/readyz"); code != 405 || hdr.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /readyz: %d Allow %q", code, hdr.Get("Allow"))
	}

	set := func(sql string, args ...any) {
		t.Helper()
		if _, err := pool.Exec(ctx, sql, args...); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name   string
		sql    string
		args   []any
		status int
	}{
		{"behind", `UPDATE schema_migrations SET version = $1`, []any{latest - 1}, 503},
		{"dirty", `UPDATE schema_migrations SET version = $1, dirty = true`, []any{latest}, 503},
		{"ahead (a newer replica migrated)", `UPDATE schema_migrations SET version = $1, dirty = false`, []any{latest + 1}, 200},
		{"back at latest", `UPDATE schema_migrations SET version = $1, dirty = false`, []any{latest}, 200},
		{"never migrated", `DELETE FROM schema_migrations`, nil, 503},
	} {
		t.Run(tc.name, func(t *testing.T) {
			set(tc.sql, tc.args...)
			code, rep, _ := probe(t, h, "GET", "/readyz")
			if code != tc.status {
				t.Errorf("readyz: %d, want %d: %+v", code, tc.status, rep)
			}
			m := rep.Checks["migrations"]
			if (tc.status == 503) != (m.Status == "fail") || (tc.status == 503 && m.Error == "") {
				t.Errorf("migrations check %+v", m)
			}
			if rep.Checks["database"].Status != "ok" {
				t.Errorf("database check %+v", rep.Checks["database"])
			}
		})
	}
	set(`INSERT INTO schema_migrations (version, dirty) VALUES ($1, false)`, latest)

	hc.Drain()
	code, rep, _ = probe(t, h, "GET", "/readyz")
	if code != 503 || rep.Checks["listener"].Status != "fail" || rep.Checks["database"].Status != "ok" {
		t.Errorf("readyz while draining: %d %+v", code, rep)
	}
	if code, rep, _ := probe(t, h, "GET", "/healthz"); code != 200 || rep.Status != "ok" {
		t.Errorf("healthz while draining: %d %+v", code, rep)
	}
}

// A database that cannot be reached makes readyz a 503 within the
// timeout, not a hang; healthz does not notice.
func TestReadinessDatabaseDown(t *testing.T) {
	u := pgtest.URL(t)
	for _, tc := range []struct {
		name string
		pool func(t *testing.T) *pgxpool.Pool
	}{
		{"closed pool", func(t *testing.T) *pgxpool.Pool {
			p, err := pgxpool.New(context.Background(), u)
			if err != nil {
				t.Fatal(err)
			}
			p.Close()
			return p
		}},
		{"database that does not exist", func(t *testing.T) *pgxpool.Pool {
			p, err := pgxpool.New(context.Background(), "postgres://postgres@/unisched_no_such_db?host=/var/run/postgresql")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(p.Close)
			return p
		}},
		{"server that does not answer", func(t *testing.T) *pgxpool.Pool {
			// a TCP listener that accepts and never speaks: only the
			// timeout ends the check
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
			addr := srv.Listener.Addr().String()
			t.Cleanup(func() { srv.Listener.Close() })
			p, err := pgxpool.New(context.Background(), "postgres://postgres@"+addr+"/x?sslmode=disable&connect_timeout=10")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(p.Close)
			return p
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hc, err := health.NewChecker(tc.pool(t), migrations.FS, 500*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			code, rep, _ := probe(t, hc.Handler(), "GET", "/readyz")
			if took := time.Since(start); took > 3*time.Second {
				t.Errorf("readyz took %v with a 500ms timeout", took)
			}
			if code != 503 || rep.Status != "unavailable" {
				t.Errorf("readyz: %d %+v", code, rep)
			}
			if d := rep.Checks["database"]; d.Status != "fail" || d.Error == "" {
				t.Errorf("database check %+v", d)
			}
			if rep.Checks["migrations"].Status != "fail" || rep.Checks["listener"].Status != "ok" {
				t.Errorf("checks %+v", rep.Checks)
			}
			if code, _, _ := probe(t, hc.Handler(), "GET", "/healthz"); code != 200 {
				t.Errorf("healthz: %d", code)
			}
		})
	}
}
