package ledger_test

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/unisched/unisched/bridge/bridgetest"
	"github.com/unisched/unisched/bridge/ledger"
	"github.com/unisched/unisched/bridge/scheduler"
	"github.com/unisched/unisched/internal/pg"
)

// snapshotFixture: ledger host h1 (provider rp1, two cells) running a
// pinned VM and a shared container of group g1; ledger host h2 whose
// provider Placement does not have; a Nova-only compute; and providers the
// scheduler must not see as hosts (a sharing disk pool, a nested child, a
// provider named like h2).
type snapshotFixture struct {
	h1, h2    ledger.Host
	rp1       int64
	vm, ct    *ledger.Workload
	novaOnly  string
	aggregate string
}

func newSnapshotFixture(t *testing.T, ctx context.Context, pool *pgxpool.Pool) snapshotFixture {
	t.Helper()
	f := snapshotFixture{h1: twoCellHost(t, "h1"), h2: twoCellHost(t, "h2"), novaOnly: uuid.NewString(), aggregate: uuid.NewString()}
	f.h2.AvailabilityZone = "az2"
	seed := placementSeed{t, ctx, pool}
	f.rp1 = seed.provider(f.h1.ProviderUUID, "compute-h1", 0)
	seed.inventory(f.rp1, "VCPU", 4, 0, 4.0)
	seed.inventory(f.rp1, "PCPU", 4, 0, 1.0)
	seed.inventory(f.rp1, "MEMORY_MB", 8192, 512, 1.0)
	seed.inventory(f.rp1, "DISK_GB", 100, 0, 1.0)
	seed.trait(f.rp1, "HW_CPU_X86_AVX2")
	seed.trait(f.rp1, "CUSTOM_FAST")
	seed.aggregate(f.rp1, f.aggregate)
	nova := seed.provider(f.novaOnly, "nova-only", 0)
	seed.inventory(nova, "VCPU", 8, 0, 16.0)
	seed.inventory(nova, "MEMORY_MB", 16384, 0, 1.5)
	seed.trait(nova, "COMPUTE_STATUS_DISABLED")
	seed.aggregate(nova, f.aggregate)
	disk := seed.provider(uuid.NewString(), "shared-disk", 0)
	seed.inventory(disk, "DISK_GB", 1000, 0, 1.0)
	child := seed.provider(uuid.NewString(), "h1-child", f.rp1)
	seed.inventory(child, "VCPU", 2, 0, 1.0)
	seed.trait(child, "CUSTOM_CHILD")
	impostor := seed.provider(uuid.NewString(), "h2", 0)
	seed.inventory(impostor, "VCPU", 2, 0, 1.0)

	for _, h := range []ledger.Host{f.h1, f.h2} {
		if _, err := ledger.RegisterHost(ctx, pool, h); err != nil {
			t.Fatal(err)
		}
	}
	f.vm = newWorkload(scheduler.KindVM, scheduler.CPUDedicated, scheduler.Resources{PCPU: 2, MemoryMB: 1024})
	f.ct = newWorkload(scheduler.KindContainer, scheduler.CPUShared, scheduler.Resources{VCPU: 1, MemoryMB: 256})
	f.ct.ServerGroup = "g1"
	f.ct.ProjectID = "p2"
	claims := []struct {
		w     *ledger.Workload
		cells []ledger.CellAssignment
		alloc map[string]int
	}{
		{f.vm, []ledger.CellAssignment{{Cell: 0, CPUs: set(t, "4,5"), MemoryMB: 1024}}, map[string]int{"PCPU": 2, "MEMORY_MB": 1024}},
		{f.ct, []ledger.CellAssignment{{Cell: 1, MemoryMB: 256}}, map[string]int{"VCPU": 1, "MEMORY_MB": 256}},
	}
	for _, c := range claims {
		if err := ledger.CreateWorkload(ctx, pool, c.w); err != nil {
			t.Fatal(err)
		}
		if err := ledger.Assign(ctx, pool, c.w.ID, "h1", c.cells); err != nil {
			t.Fatal(err)
		}
		seed.allocate(f.rp1, c.w.ID, c.alloc)
	}
	// A workload that holds nothing is not on any host.
	if err := ledger.CreateWorkload(ctx, pool, newWorkload(scheduler.KindVM, scheduler.CPUShared, scheduler.Resources{VCPU: 1})); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestSnapshotRoundTrip(t *testing.T) {
	ctx, pool := setup(t)
	f := newSnapshotFixture(t, ctx, pool)
	snap, err := ledger.Snapshot(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, h := range snap.Hosts() {
		names = append(names, h.Name)
	}
	if want := []string{"h1", "h2", "nova-only"}; !reflect.DeepEqual(names, want) {
		t.Fatalf("hosts %v, want %v", names, want)
	}

	h1 := snap.Host("h1")
	if h1.ProviderUUID != f.h1.ProviderUUID || h1.AvailabilityZone != "az1" {
		t.Errorf("h1: provider %s zone %q", h1.ProviderUUID, h1.AvailabilityZone)
	}
	wantInv := map[scheduler.ResourceClass]scheduler.Inventory{
		"VCPU":      {Total: 4, AllocationRatio: 4, MinUnit: 1, MaxUnit: 4, StepSize: 1, Used: 1},
		"PCPU":      {Total: 4, AllocationRatio: 1, MinUnit: 1, MaxUnit: 4, StepSize: 1, Used: 2},
		"MEMORY_MB": {Total: 8192, Reserved: 512, AllocationRatio: 1, MinUnit: 1, MaxUnit: 8192, StepSize: 1, Used: 1280},
		"DISK_GB":   {Total: 100, AllocationRatio: 1, MinUnit: 1, MaxUnit: 100, StepSize: 1},
	}
	if !reflect.DeepEqual(h1.Inventories, wantInv) {
		t.Errorf("h1 inventories:\n got %+v\nwant %+v", h1.Inventories, wantInv)
	}
	if want := []string{"CUSTOM_FAST", "HW_CPU_X86_AVX2"}; !reflect.DeepEqual(h1.Traits, want) {
		t.Errorf("h1 traits %v, want %v (the child's are not the host's)", h1.Traits, want)
	}
	if !reflect.DeepEqual(h1.Aggregates, []string{f.aggregate}) {
		t.Errorf("h1 aggregates %v", h1.Aggregates)
	}
	if !h1.DedicatedCPUs.Equals(set(t, "4-7")) || !h1.SharedCPUs.Equals(set(t, "0-3")) {
		t.Errorf("h1 pools %s %s", h1.DedicatedCPUs, h1.SharedCPUs)
	}
	if len(h1.Cells) != 2 {
		t.Fatalf("h1 cells %+v", h1.Cells)
	}
	c0, c1 := h1.Cells[0], h1.Cells[1]
	if c0.MemoryMB != 4096 || c0.MemoryUsedMB != 1024 || len(c0.Pinned) != 1 || c0.Pinned[0].Workload != f.vm.ID || !c0.Pinned[0].CPUs.Equals(set(t, "4,5")) {
		t.Errorf("cell 0: %+v", c0)
	}
	if c1.MemoryUsedMB != 256 || len(c1.Pinned) != 0 || len(c1.Siblings) != 2 || !c1.Siblings[0].Equals(set(t, "2,6")) {
		t.Errorf("cell 1: %+v", c1)
	}
	if !h1.Pinned().Equals(set(t, "4,5")) || !h1.SharedFree().Equals(set(t, "0-3")) {
		t.Errorf("h1 pinned %s shared free %s", h1.Pinned(), h1.SharedFree())
	}
	wantWl := []scheduler.Workload{
		{ID: f.vm.ID, Kind: scheduler.KindVM, Project: "proj", CPUPolicy: scheduler.CPUDedicated},
		{ID: f.ct.ID, Kind: scheduler.KindContainer, Project: "p2", Group: "g1", CPUPolicy: scheduler.CPUShared},
	}
	if !reflect.DeepEqual(h1.Workloads, wantWl) {
		t.Errorf("h1 workloads:\n got %+v\nwant %+v", h1.Workloads, wantWl)
	}
	if got := snap.GroupHosts("g1"); !reflect.DeepEqual(got, []string{"h1"}) {
		t.Errorf("group g1 on %v", got)
	}

	h2 := snap.Host("h2")
	if h2.ProviderUUID != f.h2.ProviderUUID || len(h2.Inventories) != 0 || len(h2.Cells) != 2 || h2.AvailabilityZone != "az2" {
		t.Errorf("h2 (provider gone): %+v", h2)
	}
	nova := snap.Host("nova-only")
	if nova.ProviderUUID != f.novaOnly || len(nova.Cells) != 0 || !nova.DedicatedCPUs.IsEmpty() ||
		nova.Inventories["VCPU"].AllocationRatio != 16 || !nova.HasTrait("COMPUTE_STATUS_DISABLED") || !nova.InAggregate(f.aggregate) {
		t.Errorf("nova-only host: %+v", nova)
	}

	// The scheduler sees the VM's pins: a dedicated container goes to the
	// other cell of h1, the only host with free pCPUs.
	eng := bridgetest.Engine(t)
	req := &scheduler.Request{ID: "req-1", Kind: scheduler.KindContainer, Project: "proj", CPUPolicy: scheduler.CPUDedicated,
		Resources: scheduler.Resources{PCPU: 2, MemoryMB: 512}}
	req.WorkloadID = uuid.NewString()
	dec, err := eng.Schedule(ctx, snap, req)
	if err != nil {
		t.Fatal(err)
	}
	if dec.Host != "h1" || !dec.Placement.CPUs.Equals(set(t, "6,7")) || dec.Placement.Cells[0].Cell != 1 {
		t.Fatalf("decision: %s %+v", dec.Host, dec.Placement)
	}

	// Record the claim the way the coordinator will: workload, assignment
	// and decision in one transaction (and Placement's allocation).
	rec := ledger.NewDecision(req, dec, nil)
	err = pg.WithTx(ctx, pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		w := &ledger.Workload{ID: req.WorkloadID, Kind: req.Kind, ProjectID: req.Project, UserID: "u",
			State: ledger.StateClaimed, CPUPolicy: req.CPUPolicy, Resources: req.Resources, RequestID: req.ID}
		if err := ledger.CreateWorkload(ctx, tx, w); err != nil {
			return err
		}
		if err := ledger.Assign(ctx, tx, w.ID, dec.Host, ledger.FromPlacement(dec.Placement)); err != nil {
			return err
		}
		return ledger.RecordDecision(ctx, tx, &rec)
	})
	if err != nil {
		t.Fatal(err)
	}
	placementSeed{t, ctx, pool}.allocate(f.rp1, req.WorkloadID, map[string]int{"PCPU": 2, "MEMORY_MB": 512})

	// Reading back gives what the scheduler's own Claim predicted.
	predicted, err := snap.Claim(req, dec.Choice, req.WorkloadID)
	if err != nil {
		t.Fatal(err)
	}
	again, err := ledger.Snapshot(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	p, g := predicted.Host("h1"), again.Host("h1")
	if !reflect.DeepEqual(p.Inventories, g.Inventories) {
		t.Errorf("inventories: predicted %+v, read %+v", p.Inventories, g.Inventories)
	}
	for i := range p.Cells {
		if p.Cells[i].MemoryUsedMB != g.Cells[i].MemoryUsedMB || !reflect.DeepEqual(pinsOf(p.Cells[i]), pinsOf(g.Cells[i])) {
			t.Errorf("cell %d: predicted %+v, read %+v", i, p.Cells[i], g.Cells[i])
		}
	}
	if !g.Pinned().Equals(set(t, "4-7")) || len(g.Workloads) != 3 {
		t.Errorf("after the claim: pinned %s, %d workloads", g.Pinned(), len(g.Workloads))
	}

	// A third dedicated request has no room anywhere: NoValidHost, logged
	// with the filters' reasons.
	req3 := &scheduler.Request{ID: "req-3", WorkloadID: uuid.NewString(), Kind: scheduler.KindVM, CPUPolicy: scheduler.CPUDedicated,
		Resources: scheduler.Resources{PCPU: 2, MemoryMB: 512}}
	_, err = eng.Schedule(ctx, again, req3)
	if !errors.Is(err, scheduler.ErrNoValidHost) {
		t.Fatalf("third request: %v", err)
	}
	rec3 := ledger.NewDecision(req3, scheduler.Decision{}, err)
	if err := ledger.RecordDecision(ctx, pool, &rec3); err != nil {
		t.Fatal(err)
	}

	got, err := ledger.LatestDecision(ctx, pool, req.WorkloadID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Host != "h1" || got.RequestID != "req-1" || got.ProviderUUID != f.h1.ProviderUUID || got.Placement == nil ||
		got.Placement.CPUs != "6-7" || !got.Placement.Dedicated || got.Placement.Cells[0].Cell != 1 || got.Error != "" ||
		got.Stats.Hosts != 3 || got.Kind != scheduler.KindContainer {
		t.Errorf("logged decision: %+v %+v", got, got.Placement)
	}
	rejected := 0
	for _, fr := range got.Filters {
		rejected += fr.NoFitNow + fr.NeverFits
	}
	if rejected != 2 {
		t.Errorf("decision says %d hosts rejected, want 2: %+v", rejected, got.Filters)
	}
	ds, err := ledger.DecisionsForRequest(ctx, pool, "req-3")
	if err != nil || len(ds) != 1 {
		t.Fatalf("decisions for req-3: %v %+v", err, ds)
	}
	d3 := ds[0]
	if d3.Host != "" || d3.Placement != nil || d3.Error == "" || d3.Stats.Hosts != 3 || d3.ReasonCounts()[string(scheduler.ReasonPCPU)] == 0 {
		t.Errorf("no-valid-host decision: %+v reasons %v", d3, d3.ReasonCounts())
	}
}

func pinsOf(c scheduler.NUMACell) map[string]string {
	out := map[string]string{}
	for _, p := range c.Pinned {
		out[p.Workload] = p.CPUs.String()
	}
	return out
}

func TestSnapshotEmpty(t *testing.T) {
	ctx, pool := setup(t)
	snap, err := ledger.Snapshot(ctx, pool)
	if err != nil || snap.Len() != 0 {
		t.Fatalf("empty database: %v, %d hosts", err, snap.Len())
	}
}

func TestDecisionLog(t *testing.T) {
	ctx, pool := setup(t)
	req := &scheduler.Request{ID: "r1", Kind: scheduler.KindVM}
	dec := scheduler.Decision{
		Choice:     scheduler.Choice{Host: "a", ProviderUUID: uuid.NewString(), Score: 1.5, Placement: scheduler.Placement{CPUs: set(t, "0-3")}},
		Alternates: []scheduler.Choice{{Host: "b", ProviderUUID: uuid.NewString(), Score: 0.5, Avoided: true}},
		Stats: scheduler.Stats{Hosts: 5, Examined: 5, Candidates: 2, Scored: 2, Filters: []scheduler.FilterStats{
			{Name: "resources", NoFitNow: 3, Reasons: map[scheduler.Reason]int{scheduler.ReasonVCPU: 2, scheduler.ReasonMemoryMB: 1}},
			{Name: "traits"},
		}},
	}
	first := ledger.NewDecision(req, dec, nil)
	if err := ledger.RecordDecision(ctx, pool, &first); err != nil {
		t.Fatal(err)
	}
	second := ledger.NewDecision(req, scheduler.Decision{}, errors.New("snapshot failed"))
	if err := ledger.RecordDecision(ctx, pool, &second); err != nil {
		t.Fatal(err)
	}
	ds, err := ledger.DecisionsForRequest(ctx, pool, "r1")
	if err != nil || len(ds) != 2 {
		t.Fatalf("%v %+v", err, ds)
	}
	d := ds[0]
	if d.ID != first.ID || d.WorkloadID != "" || d.Host != "a" || d.Score != 1.5 || d.Placement.CPUs != "0-3" || d.Placement.Dedicated ||
		len(d.Alternates) != 1 || d.Alternates[0] != (ledger.AlternateRecord{Host: "b", ProviderUUID: dec.Alternates[0].ProviderUUID, Score: 0.5, Avoided: true}) ||
		d.Stats != (ledger.StatsRecord{Hosts: 5, Examined: 5, Candidates: 2, Scored: 2}) || len(d.Filters) != 2 ||
		d.Filters[0].Reasons[string(scheduler.ReasonVCPU)] != 2 || d.Filters[1].Reasons != nil {
		t.Errorf("first decision read back as %+v", d)
	}
	if ds[1].Host != "" || ds[1].Error != "snapshot failed" || ds[1].Filters != nil || ds[1].Alternates != nil {
		t.Errorf("second decision read back as %+v", ds[1])
	}
	if _, err := ledger.LatestDecision(ctx, pool, uuid.NewString()); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("latest decision of an unknown workload: %v", err)
	}
	n, err := ledger.TrimDecisions(ctx, pool, time.Now().Add(time.Hour))
	if err != nil || n != 2 {
		t.Errorf("trim: %d %v", n, err)
	}
}
