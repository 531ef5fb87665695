package ledger_test

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"k8s.io/utils/cpuset"

	"github.com/unisched/unisched/bridge/ledger"
	"github.com/unisched/unisched/bridge/scheduler"
	"github.com/unisched/unisched/internal/pgtest"
	"github.com/unisched/unisched/placement/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// setup gives a test a fresh migrated database with Placement's standard
// resource classes and traits.
func setup(t *testing.T) (context.Context, *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	pool := pgtest.Pool(t)
	if err := store.EnsureStandard(ctx, pool); err != nil {
		t.Fatal(err)
	}
	return ctx, pool
}

func set(t testing.TB, list string) cpuset.CPUSet {
	t.Helper()
	s, err := cpuset.Parse(list)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// twoCellHost is a host with two cells of four CPUs, hyperthreads paired
// (0,4) (1,5) in cell 0 and (2,6) (3,7) in cell 1; CPUs 0-1 and 2-3 shared,
// the rest dedicated.
func twoCellHost(t testing.TB, name string) ledger.Host {
	return ledger.Host{
		Name:             name,
		ProviderUUID:     uuid.NewString(),
		AvailabilityZone: "az1",
		Topology: ledger.Topology{
			Cells: []ledger.Cell{
				{ID: 0, CPUs: set(t, "0,1,4,5"), Siblings: []cpuset.CPUSet{set(t, "0,4"), set(t, "1,5")}, MemoryMB: 4096},
				{ID: 1, CPUs: set(t, "2,3,6,7"), Siblings: []cpuset.CPUSet{set(t, "2,6"), set(t, "3,7")}, MemoryMB: 4096},
			},
			DedicatedCPUs: set(t, "4-7"),
			SharedCPUs:    set(t, "0-3"),
		},
	}
}

func mustExec(t testing.TB, ctx context.Context, pool *pgxpool.Pool, sql string, args ...any) {
	t.Helper()
	if _, err := pool.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// placementSeed writes Placement rows directly: the ledger reads the
// tables, not the API, so the test does too.
type placementSeed struct {
	t    testing.TB
	ctx  context.Context
	pool *pgxpool.Pool
}

func (s placementSeed) provider(uuid, name string, parent int64) int64 {
	s.t.Helper()
	var id int64
	var p any
	if parent != 0 {
		p = parent
	}
	err := s.pool.QueryRow(s.ctx, `INSERT INTO resource_providers (uuid, name, parent_provider_id) VALUES ($1, $2, $3) RETURNING id`,
		uuid, name, p).Scan(&id)
	if err != nil {
		s.t.Fatal(err)
	}
	mustExec(s.t, s.ctx, s.pool, `UPDATE resource_providers SET root_provider_id = COALESCE((SELECT root_provider_id FROM resource_providers WHERE id = $2), $1) WHERE id = $1`, id, p)
	return id
}

func (s placementSeed) inventory(rp int64, rc string, total, reserved int, ratio float64) {
	s.t.Helper()
	mustExec(s.t, s.ctx, s.pool, `INSERT INTO inventories (resource_provider_id, resource_class_id, total, reserved, min_unit, max_unit, step_size, allocation_ratio)
SELECT $1, id, $3, $4, 1, $3, 1, $5 FROM resource_classes WHERE name = $2`, rp, rc, total, reserved, ratio)
}

func (s placementSeed) allocate(rp int64, consumer string, used map[string]int) {
	s.t.Helper()
	mustExec(s.t, s.ctx, s.pool, `INSERT INTO projects (external_id) VALUES ('p') ON CONFLICT DO NOTHING`)
	mustExec(s.t, s.ctx, s.pool, `INSERT INTO users (external_id) VALUES ('u') ON CONFLICT DO NOTHING`)
	mustExec(s.t, s.ctx, s.pool, `INSERT INTO consumers (uuid, project_id, user_id)
SELECT $1, p.id, u.id FROM projects p, users u WHERE p.external_id = 'p' AND u.external_id = 'u' ON CONFLICT DO NOTHING`, consumer)
	for rc, n := range used {
		mustExec(s.t, s.ctx, s.pool, `INSERT INTO allocations (resource_provider_id, consumer_id, resource_class_id, used)
SELECT $1, c.id, rc.id, $4 FROM consumers c, resource_classes rc WHERE c.uuid = $2 AND rc.name = $3`, rp, consumer, rc, n)
	}
}

func (s placementSeed) trait(rp int64, name string) {
	s.t.Helper()
	mustExec(s.t, s.ctx, s.pool, `INSERT INTO traits (name) VALUES ($1) ON CONFLICT DO NOTHING`, name)
	mustExec(s.t, s.ctx, s.pool, `INSERT INTO resource_provider_traits (resource_provider_id, trait_id) SELECT $1, id FROM traits WHERE name = $2`, rp, name)
}

func (s placementSeed) aggregate(rp int64, agg string) {
	s.t.Helper()
	mustExec(s.t, s.ctx, s.pool, `INSERT INTO placement_aggregates (uuid) VALUES ($1) ON CONFLICT DO NOTHING`, agg)
	mustExec(s.t, s.ctx, s.pool, `INSERT INTO resource_provider_aggregates (resource_provider_id, aggregate_id) SELECT $1, id FROM placement_aggregates WHERE uuid = $2`, rp, agg)
}

func newWorkload(kind scheduler.Kind, policy scheduler.CPUPolicy, res scheduler.Resources) *ledger.Workload {
	return &ledger.Workload{
		ID: uuid.NewString(), Kind: kind, Name: "w", ProjectID: "proj", UserID: "user",
		CPUPolicy: policy, Resources: res,
	}
}
