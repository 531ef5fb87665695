package reconcile_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/unisched/unisched/bridge"
	"github.com/unisched/unisched/bridge/agentproto"
	"github.com/unisched/unisched/bridge/bridgetest"
	"github.com/unisched/unisched/bridge/outbox"
	"github.com/unisched/unisched/bridge/reconcile"
	"github.com/unisched/unisched/bridge/scheduler"
	"github.com/unisched/unisched/internal/pg"
	"github.com/unisched/unisched/internal/pgtest"
	"github.com/unisched/unisched/placement/claims"
	"github.com/unisched/unisched/placement/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const grace = 10 * time.Minute

type fixture struct {
	t    *testing.T
	ctx  context.Context
	pool *pgxpool.Pool
	c    *bridge.Coordinator
	prov string // provider of host h1
}

func setup(t *testing.T) *fixture {
	t.Helper()
	c, pool := bridgetest.Coordinator(t)
	res := bridgetest.Register(t, c, bridgetest.TwoCells("h1"))
	return &fixture{t: t, ctx: context.Background(), pool: pool, c: c, prov: res.ProviderUUID}
}

// age makes everything recorded so far an hour old: past the grace period.
func (f *fixture) age() {
	f.t.Helper()
	for _, q := range []string{
		`UPDATE bridge_workloads SET created_at = created_at - interval '1 hour', updated_at = updated_at - interval '1 hour'`,
		`UPDATE allocations SET created_at = created_at - interval '1 hour', updated_at = updated_at - interval '1 hour'`,
		`UPDATE consumers SET created_at = created_at - interval '1 hour', updated_at = updated_at - interval '1 hour'`,
	} {
		if _, err := f.pool.Exec(f.ctx, q); err != nil {
			f.t.Fatal(err)
		}
	}
}

func (f *fixture) scalar(sql string, args ...any) int64 {
	f.t.Helper()
	var n int64
	if err := f.pool.QueryRow(f.ctx, sql, args...).Scan(&n); err != nil {
		f.t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func (f *fixture) allocations(consumer string) int64 {
	return f.scalar(`SELECT count(*) FROM allocations a JOIN consumers c ON c.id = a.consumer_id WHERE c.uuid = $1`, consumer)
}

func (f *fixture) workloadExists(id string) bool {
	return f.scalar(`SELECT count(*) FROM bridge_workloads WHERE id = $1`, id) == 1
}

func (f *fixture) deleteEvents(id string) int {
	f.t.Helper()
	rows, err := outbox.ListKey(f.ctx, f.pool, id)
	if err != nil {
		f.t.Fatal(err)
	}
	n := 0
	for _, r := range rows {
		if r.Topic == bridge.AgentTopic && string(r.Payload) != "" && contains(string(r.Payload), agentproto.EventDelete) {
			n++
		}
	}
	return n
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// claim writes a Placement consumer on h1 straight through the store, as
// Nova (or an operator) would through the Placement API.
func (f *fixture) claim(consumerType string, vcpu, mem int64) string {
	f.t.Helper()
	id := uuid.NewString()
	err := pg.WithTx(f.ctx, f.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		return claims.Replace(f.ctx, tx, claims.Claim{ConsumerUUID: id, ProjectID: "p1", UserID: "u1", ConsumerType: consumerType,
			Allocations: []claims.Amount{{ProviderUUID: f.prov, Class: "VCPU", Used: vcpu}, {ProviderUUID: f.prov, Class: "MEMORY_MB", Used: mem}}})
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return id
}

func (f *fixture) container(policy scheduler.CPUPolicy) string {
	f.t.Helper()
	w, err := f.c.Create(f.ctx, bridge.CreateRequest{Kind: scheduler.KindContainer, Name: "c", ProjectID: "p1", UserID: "u1",
		CPUPolicy: policy, CPU: 1, MemoryMB: 256, Container: &agentproto.Container{Image: "busybox", Running: true}})
	if err != nil {
		f.t.Fatal(err)
	}
	return w.ID
}

func (f *fixture) vm() string {
	f.t.Helper()
	w, err := f.c.Create(f.ctx, bridge.CreateRequest{Kind: scheduler.KindVM, Name: "v", ProjectID: "p1", UserID: "u1",
		CPUPolicy: scheduler.CPUShared, CPU: 1, MemoryMB: 512})
	if err != nil {
		f.t.Fatal(err)
	}
	return w.ID
}

func (f *fixture) reconciler(cfg reconcile.Config) *reconcile.Reconciler {
	if cfg.Grace == 0 {
		cfg.Grace = grace
	}
	return reconcile.New(f.pool, cfg)
}

func (f *fixture) run(r *reconcile.Reconciler) *reconcile.Report {
	f.t.Helper()
	rep, err := r.Run(f.ctx)
	if err != nil {
		f.t.Fatal(err)
	}
	return rep
}

// novaServers is a Servers source over a fixed list (or an error).
type novaServers struct {
	mu   sync.Mutex
	list []reconcile.Server
	err  error
	// block, when set, is waited on by ListServers.
	block chan struct{}
}

func (n *novaServers) ListServers(ctx context.Context) ([]reconcile.Server, error) {
	if n.block != nil {
		select {
		case <-n.block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.list, n.err
}

func only(t *testing.T, rep *reconcile.Report, kind string) reconcile.Divergence {
	t.Helper()
	if rep.Total != 1 || len(rep.Divergences) != 1 || rep.Counts[kind] != 1 {
		t.Fatalf("want one %s, got %d: %+v", kind, rep.Total, rep.Divergences)
	}
	d := rep.Divergences[0]
	if d.Kind != kind {
		t.Fatalf("want a %s, got %+v", kind, d)
	}
	return d
}

// TestDivergences seeds one divergence of each kind, finds it once,
// repairs it, and finds nothing on the next run.
func TestDivergences(t *testing.T) {
	tests := []struct {
		name    string
		servers *novaServers
		// seed makes the divergence and returns the id the report names
		// and a check of the repair.
		seed     func(f *fixture, srv *novaServers) (string, func())
		kind     string
		action   string
		createVM bool
	}{
		{name: "container consumer leak", kind: reconcile.KindAllocationLeak, action: reconcile.ActionDeleteAllocation,
			seed: func(f *fixture, _ *novaServers) (string, func()) {
				id := f.claim(bridge.ConsumerTypeContainer, 1, 128)
				return id, func() {
					if n := f.allocations(id); n != 0 {
						t.Errorf("leaked allocations left: %d", n)
					}
				}
			}},
		{name: "nova consumer leak", servers: &novaServers{}, kind: reconcile.KindAllocationLeak, action: reconcile.ActionDeleteAllocation,
			seed: func(f *fixture, _ *novaServers) (string, func()) {
				id := f.claim(bridge.ConsumerTypeInstance, 1, 128)
				return id, func() {
					if n := f.allocations(id); n != 0 {
						t.Errorf("leaked allocations left: %d", n)
					}
				}
			}},
		{name: "container without allocation", kind: reconcile.KindLedgerOrphan, action: reconcile.ActionReleaseDelete,
			seed: func(f *fixture, _ *novaServers) (string, func()) {
				id := f.container(scheduler.CPUDedicated)
				if err := store.DeleteAllAllocationsOfConsumer(f.ctx, f.pool, id); err != nil {
					t.Fatal(err)
				}
				return id, func() {
					if f.workloadExists(id) {
						t.Error("orphan workload still in the ledger")
					}
					if n := f.scalar(`SELECT count(*) FROM bridge_workload_cpus`); n != 0 {
						t.Errorf("orphan's pins left: %d", n)
					}
					if f.deleteEvents(id) != 1 {
						t.Error("the agent was not told to remove the container")
					}
				}
			}},
		{name: "vm without nova server", servers: &novaServers{}, kind: reconcile.KindLedgerOrphan, action: reconcile.ActionReleaseDelete,
			seed: func(f *fixture, _ *novaServers) (string, func()) {
				id := f.vm()
				return id, func() {
					if f.workloadExists(id) || f.allocations(id) != 0 {
						t.Error("orphan VM or its allocation still there")
					}
				}
			}},
		{name: "failed vm without nova server", servers: &novaServers{}, kind: reconcile.KindLedgerOrphan, action: reconcile.ActionReleaseDelete,
			seed: func(f *fixture, _ *novaServers) (string, func()) {
				id := f.vm()
				if err := f.c.VMFailed(f.ctx, id, "spawn failed"); err != nil {
					t.Fatal(err)
				}
				return id, func() {
					if f.workloadExists(id) || f.allocations(id) != 0 {
						t.Error("failed VM or its allocation still there")
					}
				}
			}},
		{name: "nova server missing from the ledger", servers: &novaServers{}, kind: reconcile.KindMissingVM, action: reconcile.ActionCreateVM, createVM: true,
			seed: func(f *fixture, srv *novaServers) (string, func()) {
				id := f.claim(bridge.ConsumerTypeInstance, 1, 512)
				srv.list = []reconcile.Server{{ID: id, Host: "h1", Status: "ACTIVE"}}
				return id, func() {
					w, err := f.c.Get(f.ctx, id)
					if err != nil || w.Kind != scheduler.KindVM || w.Host != "h1" || w.Resources.MemoryMB != 512 {
						t.Errorf("missing VM recorded as %+v (%v)", w, err)
					}
				}
			}},
		{name: "container stuck deleting", kind: reconcile.KindStuckDeleting, action: reconcile.ActionResendDelete,
			seed: func(f *fixture, _ *novaServers) (string, func()) {
				id := f.container(scheduler.CPUShared)
				if err := f.c.Delete(f.ctx, id, true, false); err != nil {
					t.Fatal(err)
				}
				return id, func() {
					if n := f.deleteEvents(id); n != 2 {
						t.Errorf("delete events: %d, want 2 (the first and the one sent again)", n)
					}
					if !f.workloadExists(id) || f.allocations(id) == 0 {
						t.Error("a resent delete must not release yet")
					}
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := setup(t)
			srv := tc.servers
			cfg := reconcile.Config{}
			if srv != nil {
				cfg.Servers = srv
			}
			if tc.createVM {
				cfg.CreateVM = f.c.VMMoved
			}
			r := f.reconciler(cfg)
			if rep := f.run(r); rep.Total != 0 {
				t.Fatalf("a clean start reports %+v", rep.Divergences)
			}
			id, check := tc.seed(f, srv)
			if rep := f.run(r); rep.Total != 0 {
				t.Fatalf("a divergence within the grace period was reported: %+v", rep.Divergences)
			}
			f.age()
			rep := f.run(r)
			d := only(t, rep, tc.kind)
			if d.WorkloadID != id && d.ConsumerUUID != id {
				t.Errorf("divergence names %s/%s, want %s", d.WorkloadID, d.ConsumerUUID, id)
			}
			if d.Action != tc.action || d.Result != reconcile.ResultRepaired || rep.Repaired != 1 {
				t.Fatalf("action %s result %s (%s), want %s repaired", d.Action, d.Result, d.Error, tc.action)
			}
			check()
			if rep := f.run(r); rep.Total != 0 {
				t.Fatalf("second run still finds %+v", rep.Divergences)
			}
			stored, err := reconcile.Load(f.ctx, f.pool, rep.RunID)
			if err != nil {
				t.Fatal(err)
			}
			if stored.Total != 1 || stored.Divergences[0].Kind != tc.kind || stored.Divergences[0].Result != reconcile.ResultRepaired {
				t.Errorf("stored report: %+v", stored)
			}
		})
	}
}

// TestStuckDeletingReaped: a delete sent again and still unconfirmed a
// grace period later is reaped: released and forgotten.
func TestStuckDeletingReaped(t *testing.T) {
	f := setup(t)
	r := f.reconciler(reconcile.Config{})
	id := f.container(scheduler.CPUDedicated)
	if err := f.c.Delete(f.ctx, id, true, false); err != nil {
		t.Fatal(err)
	}
	f.age()
	if d := only(t, f.run(r), reconcile.KindStuckDeleting); d.Action != reconcile.ActionResendDelete {
		t.Fatalf("first: %+v", d)
	}
	f.age()
	d := only(t, f.run(r), reconcile.KindStuckDeleting)
	if d.Action != reconcile.ActionReap || d.Result != reconcile.ResultRepaired {
		t.Fatalf("second: %+v", d)
	}
	if f.workloadExists(id) || f.allocations(id) != 0 || f.scalar(`SELECT count(*) FROM bridge_workload_cpus`) != 0 {
		t.Error("reaped container still holds something")
	}
	if rep := f.run(r); rep.Total != 0 {
		t.Fatalf("after the reap: %+v", rep.Divergences)
	}
}

// TestMismatchReported: amounts that differ are reported, never changed.
func TestMismatchReported(t *testing.T) {
	f := setup(t)
	r := f.reconciler(reconcile.Config{})
	id := f.container(scheduler.CPUShared)
	if _, err := f.pool.Exec(f.ctx, `UPDATE allocations SET used = used + 64 WHERE consumer_id = (SELECT id FROM consumers WHERE uuid = $1)
	AND resource_class_id = (SELECT id FROM resource_classes WHERE name = 'MEMORY_MB')`, id); err != nil {
		t.Fatal(err)
	}
	f.age()
	for range 2 {
		d := only(t, f.run(r), reconcile.KindAllocationMismatch)
		if d.Result != reconcile.ResultSkipped || !contains(d.Detail, "MEMORY_MB: Placement 320, ledger 256") {
			t.Fatalf("%+v", d)
		}
	}
	if !f.workloadExists(id) || f.allocations(id) == 0 {
		t.Error("a mismatch was repaired")
	}
}

// TestDryRun finds everything and changes nothing.
func TestDryRun(t *testing.T) {
	f := setup(t)
	leak := f.claim(bridge.ConsumerTypeContainer, 1, 128)
	orphan := f.container(scheduler.CPUShared)
	if err := store.DeleteAllAllocationsOfConsumer(f.ctx, f.pool, orphan); err != nil {
		t.Fatal(err)
	}
	f.age()
	r := f.reconciler(reconcile.Config{DryRun: true})
	for range 2 {
		rep := f.run(r)
		if rep.Total != 2 || rep.Repaired != 0 || !rep.DryRun {
			t.Fatalf("dry run: %+v", rep)
		}
		for _, d := range rep.Divergences {
			if d.Result != reconcile.ResultDryRun {
				t.Errorf("%+v", d)
			}
		}
	}
	if f.allocations(leak) == 0 || !f.workloadExists(orphan) {
		t.Fatal("the dry run repaired")
	}
	if rep := f.run(f.reconciler(reconcile.Config{})); rep.Repaired != 2 {
		t.Fatalf("the real run: %+v", rep)
	}
}

// TestServersFailing: Nova's list failing is recorded; what depends on it
// is skipped, what does not is still repaired.
func TestServersFailing(t *testing.T) {
	f := setup(t)
	nova := f.claim(bridge.ConsumerTypeInstance, 1, 128)
	ours := f.claim(bridge.ConsumerTypeContainer, 1, 128)
	vm := f.vm()
	f.age()
	srv := &novaServers{err: errors.New("nova-api: 503")}
	rep := f.run(f.reconciler(reconcile.Config{Servers: srv}))
	if len(rep.Errors) != 1 || !contains(rep.Errors[0], "503") || rep.Stats.Servers != -1 {
		t.Fatalf("errors %v, servers %d", rep.Errors, rep.Stats.Servers)
	}
	if rep.Total != 2 || rep.Repaired != 1 {
		t.Fatalf("%+v", rep.Divergences)
	}
	for _, d := range rep.Divergences {
		switch d.ConsumerUUID {
		case ours:
			if d.Result != reconcile.ResultRepaired {
				t.Errorf("our leak: %+v", d)
			}
		case nova:
			if d.Result != reconcile.ResultSkipped || d.Action != reconcile.ActionNone {
				t.Errorf("Nova's leak: %+v", d)
			}
		default:
			t.Errorf("unexpected %+v", d)
		}
	}
	if f.allocations(nova) == 0 || !f.workloadExists(vm) || f.allocations(vm) == 0 {
		t.Fatal("something depending on Nova was repaired")
	}
	stored, err := reconcile.Load(f.ctx, f.pool, 0)
	if err != nil || stored.RunID != rep.RunID || len(stored.Errors) != 1 {
		t.Fatalf("latest stored: %+v %v", stored, err)
	}
}

// TestOneLeader: two reconcilers at once, one runs, the other is told
// another one is running.
func TestOneLeader(t *testing.T) {
	f := setup(t)
	srv := &novaServers{block: make(chan struct{})}
	r1 := f.reconciler(reconcile.Config{Servers: srv, Leader: "one"})
	r2 := f.reconciler(reconcile.Config{Servers: &novaServers{}, Leader: "two"})
	done := make(chan error, 1)
	go func() {
		_, err := r1.Run(f.ctx)
		done <- err
	}()
	// r1 holds the lock once it waits on Nova.
	deadline := time.Now().Add(10 * time.Second)
	for f.scalar(`SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted
	AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the first reconciler never took the lock")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := r2.Run(f.ctx); !errors.Is(err, reconcile.ErrNotLeader) {
		t.Fatalf("second reconciler: %v, want ErrNotLeader", err)
	}
	close(srv.block)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	rep, err := r2.Run(f.ctx)
	if err != nil || rep.Leader != "two" {
		t.Fatalf("after the first finished: %+v %v", rep, err)
	}
	if n := f.scalar(`SELECT count(*) FROM bridge_reconcile_runs`); n != 2 {
		t.Fatalf("%d runs stored, want 2", n)
	}
}

// TestLoadNotFound: no run yet, or an unknown id.
func TestLoadNotFound(t *testing.T) {
	f := setup(t)
	if _, err := reconcile.Load(f.ctx, f.pool, 0); !errors.Is(err, reconcile.ErrNotFound) {
		t.Fatalf("latest before any run: %v", err)
	}
	if _, err := reconcile.Load(f.ctx, f.pool, 42); !errors.Is(err, reconcile.ErrNotFound) {
		t.Fatalf("unknown run: %v", err)
	}
}

// TestMigrationConsumers: while a Nova server is being resized, the
// migration's consumer holds the source host's allocation without being a
// server; it is neither an orphan nor a leak until the move is over.
func TestMigrationConsumers(t *testing.T) {
	f := setup(t)
	server := f.claim(bridge.ConsumerTypeInstance, 1, 512)
	recorded := f.claim("MIGRATION", 1, 512) // the ledger followed it
	if err := f.c.VMMoved(f.ctx, server); err != nil {
		t.Fatal(err)
	}
	if err := f.c.VMMoved(f.ctx, recorded); err != nil {
		t.Fatal(err)
	}
	unrecorded := f.claim("MIGRATION", 1, 256) // the ledger did not
	f.age()
	srv := &novaServers{list: []reconcile.Server{{ID: server, Host: "h1", Status: "VERIFY_RESIZE"}}}
	r := f.reconciler(reconcile.Config{Servers: srv})
	rep := f.run(r)
	if rep.Total != 1 || rep.Divergences[0].ConsumerUUID != unrecorded || rep.Divergences[0].Result != reconcile.ResultSkipped {
		t.Fatalf("during the resize: %+v", rep.Divergences)
	}
	if !f.workloadExists(recorded) || f.allocations(unrecorded) == 0 {
		t.Fatal("a migration's allocation was touched during the resize")
	}
	srv.list[0].Status = "ACTIVE" // confirmed, but the migration's allocations stayed
	rep = f.run(r)
	if rep.Total != 2 || rep.Repaired != 2 || rep.Counts[reconcile.KindLedgerOrphan] != 1 || rep.Counts[reconcile.KindAllocationLeak] != 1 {
		t.Fatalf("after the resize: %+v", rep.Divergences)
	}
	if f.workloadExists(recorded) || f.allocations(recorded) != 0 || f.allocations(unrecorded) != 0 || !f.workloadExists(server) {
		t.Fatal("the migration's leftovers were not cleaned, or the server's VM went with them")
	}
	if rep := f.run(r); rep.Total != 0 {
		t.Fatalf("third run: %+v", rep.Divergences)
	}
}

// TestStartRunsAtOnce: the periodic reconciler runs when it starts, then
// every interval, and Stop waits for it.
func TestStartRunsAtOnce(t *testing.T) {
	f := setup(t)
	r := f.reconciler(reconcile.Config{Interval: 200 * time.Millisecond})
	if err := r.Start(f.ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for f.scalar(`SELECT count(*) FROM bridge_reconcile_runs WHERE finished_at IS NOT NULL`) < 2 {
		if time.Now().After(deadline) {
			r.Stop()
			t.Fatal("fewer than two runs in 20s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.Stop()
	if err := r.Start(f.ctx); err == nil {
		t.Error("a stopped reconciler started again")
	}
}

// TestMetrics: a run's counts reach the registry.
func TestMetrics(t *testing.T) {
	f := setup(t)
	reg := prometheus.NewRegistry()
	m, err := reconcile.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reconcile.NewMetrics(reg); err == nil {
		t.Error("the metrics registered twice on one registry")
	}
	f.claim(bridge.ConsumerTypeContainer, 1, 128)
	f.age()
	r := f.reconciler(reconcile.Config{Metrics: m})
	f.run(r)
	f.run(r)
	want := map[string]float64{
		`unisched_reconcile_divergences_total{kind="allocation_leak"}`:               1,
		`unisched_reconcile_divergences_total{kind="ledger_orphan"}`:                 0,
		`unisched_reconcile_repairs_total{kind="allocation_leak",result="repaired"}`: 1,
		`unisched_reconcile_last_run_divergences{kind="allocation_leak"}`:            0,
		`unisched_reconcile_runs_total`:                                              2,
	}
	got := map[string]float64{}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, fam := range fams {
		for _, m := range fam.GetMetric() {
			name := fam.GetName()
			if len(m.GetLabel()) > 0 {
				name += "{"
				for i, l := range m.GetLabel() {
					if i > 0 {
						name += ","
					}
					name += l.GetName() + `="` + l.GetValue() + `"`
				}
				name += "}"
			}
			switch {
			case m.GetCounter() != nil:
				got[name] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				got[name] = m.GetGauge().GetValue()
			}
		}
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	if got["unisched_reconcile_last_run_timestamp_seconds"] < float64(time.Now().Add(-time.Hour).Unix()) {
		t.Errorf("last run timestamp %v", got["unisched_reconcile_last_run_timestamp_seconds"])
	}
}
