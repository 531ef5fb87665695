package placement

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/unisched/unisched/internal/pgtest"
	"github.com/unisched/unisched/placement/store"
)

// indexEnv is a database with one placement server (a replica) on it.
type indexEnv struct {
	pool *pgxpool.Pool
	api  *Server
	srv  *httptest.Server
}

func newIndexEnv(t *testing.T) *indexEnv {
	t.Helper()
	pool := pgtest.Pool(t)
	if err := store.EnsureStandard(context.Background(), pool); err != nil {
		t.Fatal(err)
	}
	return replicaOn(t, pool)
}

// replicaOn starts another server with its own pool on pool's database.
func replicaOn(t *testing.T, pool *pgxpool.Pool) *indexEnv {
	t.Helper()
	own, err := pgxpool.New(context.Background(), pool.Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(own.Close)
	api := New(Config{Pool: own})
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	return &indexEnv{pool: own, api: api, srv: srv}
}

func (e *indexEnv) exec(t *testing.T, sql string, args ...any) {
	t.Helper()
	if _, err := e.pool.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func ixUUID(n int) string { return fmt.Sprintf("d0000000-0000-4000-8000-%012d", n) }

// addRP inserts provider n (uuid ixUUID(n)) with VCPU inventory, under
// parent (0 for a root), in SQL, as any writer might.
func (e *indexEnv) addRP(t *testing.T, n, parent, vcpus int) {
	t.Helper()
	if parent == 0 {
		e.exec(t, `INSERT INTO resource_providers (uuid, name) VALUES ($1, $2)`, ixUUID(n), fmt.Sprint("rp", n))
		e.exec(t, `UPDATE resource_providers SET root_provider_id = id WHERE uuid = $1`, ixUUID(n))
	} else {
		e.exec(t, `INSERT INTO resource_providers (uuid, name, parent_provider_id, root_provider_id)
			SELECT $1, $2, id, root_provider_id FROM resource_providers WHERE uuid = $3`, ixUUID(n), fmt.Sprint("rp", n), ixUUID(parent))
	}
	if vcpus > 0 {
		e.exec(t, `INSERT INTO inventories (resource_provider_id, resource_class_id, total, reserved, min_unit, max_unit, step_size, allocation_ratio)
			SELECT id, 0, $2, 0, 1, $2, 1, 1 FROM resource_providers WHERE uuid = $1`, ixUUID(n), vcpus)
	}
}

var ixConsumers = 0

// claim allocates VCPU on provider n for a new consumer, in SQL.
func (e *indexEnv) claim(t *testing.T, n, vcpus int) {
	t.Helper()
	ixConsumers++
	e.exec(t, `INSERT INTO projects (external_id) VALUES ('p') ON CONFLICT DO NOTHING`)
	e.exec(t, `INSERT INTO users (external_id) VALUES ('u') ON CONFLICT DO NOTHING`)
	e.exec(t, `INSERT INTO consumers (uuid, project_id, user_id)
		SELECT $1, p.id, u.id FROM projects p, users u WHERE p.external_id = 'p' AND u.external_id = 'u'`,
		fmt.Sprintf("e0000000-0000-4000-8000-%012d", ixConsumers))
	e.exec(t, `INSERT INTO allocations (resource_provider_id, consumer_id, resource_class_id, used)
		SELECT rp.id, c.id, 0, $2 FROM resource_providers rp, consumers c WHERE rp.uuid = $1 AND c.uuid = $3`,
		ixUUID(n), vcpus, fmt.Sprintf("e0000000-0000-4000-8000-%012d", ixConsumers))
}

// view is what GET /allocation_candidates shows of each provider:
// "capacity/used" of VCPU, plus the root.
type view map[string]string

func (e *indexEnv) view(t *testing.T, query string) view {
	t.Helper()
	resp, body := do(t, e.srv, "GET", "/allocation_candidates?"+query, "1.39", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", query, resp.StatusCode, body)
	}
	var out struct {
		Summaries map[string]struct {
			Resources map[string]struct {
				Capacity int64 `json:"capacity"`
				Used     int64 `json:"used"`
			} `json:"resources"`
			Root string `json:"root_provider_uuid"`
		} `json:"provider_summaries"`
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatal(err)
	}
	v := view{}
	for u, s := range out.Summaries {
		r := s.Resources["VCPU"]
		v[u] = fmt.Sprintf("%d/%d", r.Capacity, r.Used)
		if s.Root != u {
			v[u] += " under " + s.Root
		}
	}
	return v
}

func (e *indexEnv) counts() (reloads, applied int64) {
	return e.api.candidates.reloads.Load(), e.api.candidates.applied.Load()
}

// TestIndexCatchUp: whatever another connection commits is in the answer
// to the next request, applied incrementally unless noted.
func TestIndexCatchUp(t *testing.T) {
	tests := []struct {
		name   string
		change func(t *testing.T, e *indexEnv)
		query  string
		want   view
		reload bool
	}{
		{
			name:   "claim",
			change: func(t *testing.T, e *indexEnv) { e.claim(t, 1, 3) },
			want:   view{ixUUID(1): "8/3", ixUUID(2): "8/0"},
		},
		{
			name: "claim removed",
			change: func(t *testing.T, e *indexEnv) {
				e.claim(t, 1, 3)
				e.exec(t, `DELETE FROM consumers`)
			},
			want: view{ixUUID(1): "8/0", ixUUID(2): "8/0"},
		},
		{
			name: "inventory changed",
			change: func(t *testing.T, e *indexEnv) {
				e.exec(t, `UPDATE inventories SET total = 16, max_unit = 16 WHERE resource_provider_id =
					(SELECT id FROM resource_providers WHERE uuid = $1)`, ixUUID(2))
			},
			want: view{ixUUID(1): "8/0", ixUUID(2): "16/0"},
		},
		{
			name:   "new provider",
			change: func(t *testing.T, e *indexEnv) { e.addRP(t, 3, 0, 4) },
			want:   view{ixUUID(1): "8/0", ixUUID(2): "8/0", ixUUID(3): "4/0"},
		},
		{
			name:   "new child",
			change: func(t *testing.T, e *indexEnv) { e.addRP(t, 3, 1, 4) },
			want:   view{ixUUID(1): "8/0", ixUUID(2): "8/0", ixUUID(3): "4/0 under " + ixUUID(1)},
		},
		{
			name: "provider deleted",
			change: func(t *testing.T, e *indexEnv) {
				e.exec(t, `DELETE FROM resource_providers WHERE uuid = $1`, ixUUID(2))
			},
			want: view{ixUUID(1): "8/0"},
		},
		{
			name: "re-parented",
			change: func(t *testing.T, e *indexEnv) {
				e.exec(t, `UPDATE resource_providers SET parent_provider_id = (SELECT id FROM resource_providers WHERE uuid = $2),
					root_provider_id = (SELECT id FROM resource_providers WHERE uuid = $2) WHERE uuid = $1`, ixUUID(2), ixUUID(1))
			},
			want: view{ixUUID(1): "8/0", ixUUID(2): "8/0 under " + ixUUID(1)},
		},
		{
			name: "new custom trait",
			change: func(t *testing.T, e *indexEnv) {
				e.exec(t, `INSERT INTO traits (name) VALUES ('CUSTOM_FAST')`)
				e.exec(t, `INSERT INTO resource_provider_traits (resource_provider_id, trait_id)
					SELECT rp.id, t.id FROM resource_providers rp, traits t WHERE rp.uuid = $1 AND t.name = 'CUSTOM_FAST'`, ixUUID(2))
			},
			query: "resources=VCPU:1&required=CUSTOM_FAST",
			want:  view{ixUUID(2): "8/0"},
		},
		{
			name: "sharing provider joins an aggregate",
			change: func(t *testing.T, e *indexEnv) {
				e.exec(t, `INSERT INTO placement_aggregates (uuid) VALUES ($1)`, ixUUID(99))
				e.addRP(t, 3, 0, 0)
				e.exec(t, `INSERT INTO inventories (resource_provider_id, resource_class_id, total, reserved, min_unit, max_unit, step_size, allocation_ratio)
					SELECT id, 2, 100, 0, 1, 100, 1, 1 FROM resource_providers WHERE uuid = $1`, ixUUID(3))
				e.exec(t, `INSERT INTO resource_provider_traits (resource_provider_id, trait_id)
					SELECT rp.id, t.id FROM resource_providers rp, traits t WHERE rp.uuid = $1 AND t.name = 'MISC_SHARES_VIA_AGGREGATE'`, ixUUID(3))
				e.exec(t, `INSERT INTO resource_provider_aggregates (resource_provider_id, aggregate_id)
					SELECT rp.id, a.id FROM resource_providers rp, placement_aggregates a WHERE rp.uuid IN ($1, $2) AND a.uuid = $3`,
					ixUUID(1), ixUUID(3), ixUUID(99))
			},
			query: "resources=VCPU:1,DISK_GB:10",
			want:  view{ixUUID(1): "8/0", ixUUID(3): "0/0"},
		},
		{
			name: "truncated (test reset)",
			change: func(t *testing.T, e *indexEnv) {
				if err := store.Reset(context.Background(), e.pool); err != nil {
					t.Fatal(err)
				}
				e.addRP(t, 5, 0, 2)
			},
			want:   view{ixUUID(5): "2/0"},
			reload: true,
		},
		{
			name: "feed trimmed past the index",
			change: func(t *testing.T, e *indexEnv) {
				e.claim(t, 2, 1)
				// Past every transaction so far, whatever other databases
				// of the cluster hold open (which keeps xmin back).
				var x string
				if err := e.pool.QueryRow(context.Background(),
					`SELECT pg_snapshot_xmax(pg_current_snapshot())::text`).Scan(&x); err != nil {
					t.Fatal(err)
				}
				if _, err := store.TrimChanges(context.Background(), e.pool, x); err != nil {
					t.Fatal(err)
				}
			},
			want:   view{ixUUID(1): "8/0", ixUUID(2): "8/1"},
			reload: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newIndexEnv(t)
			e.addRP(t, 1, 0, 8)
			e.addRP(t, 2, 0, 8)
			query := "resources=VCPU:1"
			if got, want := e.view(t, query), (view{ixUUID(1): "8/0", ixUUID(2): "8/0"}); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("before: got %v, want %v", got, want)
			}
			reloads, applied := e.counts()
			tt.change(t, e)
			if tt.query != "" {
				query = tt.query
			}
			if got := e.view(t, query); fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("after: got %v, want %v", got, tt.want)
			}
			r2, a2 := e.counts()
			if tt.reload && r2 == reloads {
				t.Error("the index did not reload")
			}
			if !tt.reload && (r2 != reloads || a2 == applied) {
				t.Errorf("reloads %d -> %d, applied %d -> %d: want an incremental catch-up", reloads, r2, applied, a2)
			}
		})
	}
}

// TestIndexOutOfOrderCommits: a transaction that started first but commits
// after the index caught up with a later one is not missed (a high-water
// mark over ids or xids would skip it).
func TestIndexOutOfOrderCommits(t *testing.T) {
	e := newIndexEnv(t)
	e.addRP(t, 1, 0, 8)
	e.addRP(t, 2, 0, 8)
	e.view(t, "resources=VCPU:1")
	ctx := context.Background()

	txA, err := e.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = txA.Rollback(ctx) }()
	if _, err := txA.Exec(ctx, `UPDATE inventories SET total = 6, max_unit = 6 WHERE resource_provider_id =
		(SELECT id FROM resource_providers WHERE uuid = $1)`, ixUUID(1)); err != nil {
		t.Fatal(err)
	}
	e.claim(t, 2, 5) // B: starts after A, commits first
	if got, want := e.view(t, "resources=VCPU:1"), (view{ixUUID(1): "8/0", ixUUID(2): "8/5"}); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after B: got %v, want %v", got, want)
	}
	if err := txA.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	reloads, _ := e.counts()
	if got, want := e.view(t, "resources=VCPU:1"), (view{ixUUID(1): "6/0", ixUUID(2): "8/5"}); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after A: got %v, want %v", got, want)
	}
	if r, _ := e.counts(); r != reloads {
		t.Error("the late commit was found by a reload, not the feed")
	}
}

// TestIndexReplicas: two servers on one database each see the other's
// claims, made through the API, in their next answer.
func TestIndexReplicas(t *testing.T) {
	a := newIndexEnv(t)
	b := replicaOn(t, a.pool)
	a.addRP(t, 1, 0, 64)
	for i, e := range []*indexEnv{a, b} {
		e.api.Start(context.Background())
		t.Cleanup(e.api.Stop)
		_ = i
	}
	claim := func(e *indexEnv, consumer int) {
		body := fmt.Sprintf(`{"allocations": {%q: {"resources": {"VCPU": 1}}}, "consumer_generation": null,
			"project_id": "p", "user_id": "u", "consumer_type": "INSTANCE"}`, ixUUID(1))
		resp, out := do(t, e.srv, "PUT", fmt.Sprintf("/allocations/f0000000-0000-4000-8000-%012d", consumer), "1.39", body)
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("claim: %d %s", resp.StatusCode, out)
		}
	}
	for i := 1; i <= 6; i++ {
		writer, reader := a, b
		if i%2 == 0 {
			writer, reader = b, a
		}
		claim(writer, i)
		want := view{ixUUID(1): fmt.Sprintf("64/%d", i)}
		for _, e := range []*indexEnv{reader, writer} {
			if got := e.view(t, "resources=VCPU:1"); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("after claim %d: got %v, want %v", i, got, want)
			}
		}
	}

	// Concurrent claims and queries on both replicas; afterwards both agree
	// with the database.
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			e := []*indexEnv{a, b}[w%2]
			for i := 0; i < 8; i++ {
				body := fmt.Sprintf(`{"allocations": {%q: {"resources": {"VCPU": 1}}}, "consumer_generation": null,
					"project_id": "p", "user_id": "u", "consumer_type": "INSTANCE"}`, ixUUID(1))
				resp, out := do(t, e.srv, "PUT", fmt.Sprintf("/allocations/f0000000-0000-4000-8000-%06d%06d", w+1, i), "1.39", body)
				if resp.StatusCode != http.StatusNoContent {
					t.Errorf("claim: %d %s", resp.StatusCode, out)
					return
				}
				resp, out = do(t, e.srv, "GET", "/allocation_candidates?resources=VCPU:1", "1.39", "")
				if resp.StatusCode != http.StatusOK {
					t.Errorf("candidates: %d %s", resp.StatusCode, out)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	want := view{ixUUID(1): "64/38"}
	for _, e := range []*indexEnv{a, b} {
		if got := e.view(t, "resources=VCPU:1"); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("after the concurrent claims: got %v, want %v", got, want)
		}
		if r, _ := e.counts(); r > 1 {
			t.Errorf("%d full reloads, want only the first load", r)
		}
	}
}

// TestIndexBackground: a started index follows commits without requests,
// trims the feed, and an index that was left behind by the trimming
// reloads instead of missing changes.
func TestIndexBackground(t *testing.T) {
	a := newIndexEnv(t)
	a.addRP(t, 1, 0, 8)
	idle := replicaOn(t, a.pool) // never started: no poller
	if got := idle.view(t, "resources=VCPU:1"); fmt.Sprint(got) != fmt.Sprint(view{ixUUID(1): "8/0"}) {
		t.Fatalf("idle replica: %v", got)
	}
	ix := a.api.candidates
	ix.pollEvery, ix.trimEvery, ix.retention = 5*time.Millisecond, 20*time.Millisecond, 60*time.Millisecond
	a.api.Start(context.Background())
	t.Cleanup(a.api.Stop)

	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	// The poller applies a claim before anyone asks.
	a.view(t, "resources=VCPU:1") // the first load is done
	_, applied := a.counts()
	a.claim(t, 1, 2)
	waitFor("the poller to apply the claim", func() bool { _, n := a.counts(); return n > applied })
	// The trimmer empties the feed once the retention has passed (and no
	// transaction anywhere in the cluster holds xmin back).
	count := func() int {
		var n int
		if err := a.pool.QueryRow(context.Background(), `SELECT count(*) FROM placement_changes`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	waitFor("the trimmer", func() bool { return count() == 0 })
	// The idle replica's snapshot predates the trimmed rows: it must
	// reload and see the claim.
	reloads, _ := idle.counts()
	if got := idle.view(t, "resources=VCPU:1"); fmt.Sprint(got) != fmt.Sprint(view{ixUUID(1): "8/2"}) {
		t.Errorf("idle replica after trimming: %v, want the claim", got)
	}
	if r, _ := idle.counts(); r == reloads {
		t.Error("the idle replica did not reload")
	}
	if got := a.view(t, "resources=VCPU:1"); fmt.Sprint(got) != fmt.Sprint(view{ixUUID(1): "8/2"}) {
		t.Errorf("started replica: %v", got)
	}
}
