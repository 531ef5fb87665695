package bridge_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"k8s.io/utils/cpuset"

	"github.com/unisched/unisched/bridge"
	"github.com/unisched/unisched/bridge/agentproto"
	"github.com/unisched/unisched/bridge/bridgetest"
	"github.com/unisched/unisched/bridge/ledger"
	"github.com/unisched/unisched/bridge/scheduler"
	"github.com/unisched/unisched/internal/pg"
	"github.com/unisched/unisched/placement/claims"
	"github.com/unisched/unisched/placement/store"
)

// vmClaim is what Nova's PUT /allocations/{instance} does with the hook:
// the allocation and the ledger's record in one transaction.
func (f *fixture) vmClaim(id, rp, requestID string, pcpu, vcpu, mem int64) error {
	f.t.Helper()
	return pg.WithTx(f.ctx, f.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		return f.vmClaimIn(tx, id, rp, requestID, pcpu, vcpu, mem)
	})
}

func (f *fixture) vmClaimIn(tx pgx.Tx, id, rp, requestID string, pcpu, vcpu, mem int64) error {
	rs := map[string]int64{}
	var amounts []claims.Amount
	for class, n := range map[string]int64{"PCPU": pcpu, "VCPU": vcpu, "MEMORY_MB": mem} {
		if n > 0 {
			rs[class] = n
			amounts = append(amounts, claims.Amount{ProviderUUID: rp, Class: class, Used: n})
		}
	}
	if err := claims.Replace(f.ctx, tx, claims.Claim{ConsumerUUID: id, ProjectID: "p1", UserID: "u1",
		ConsumerType: bridge.ConsumerTypeInstance, Allocations: amounts}); err != nil {
		return err
	}
	return f.c.RecordVMAllocations(f.ctx, tx, requestID, bridge.VMAllocations{ConsumerUUID: id, ProjectID: "p1", UserID: "u1",
		Allocations: map[string]map[string]int64{rp: rs}})
}

func (f *fixture) assignment(id string) ledger.Assignment {
	f.t.Helper()
	a, err := ledger.GetAssignment(f.ctx, f.pool, id)
	if err != nil {
		f.t.Fatal(err)
	}
	return a
}

func (f *fixture) workload(id string) (ledger.Workload, bool) {
	f.t.Helper()
	w, err := ledger.GetWorkload(f.ctx, f.pool, id)
	if errors.Is(err, ledger.ErrNotFound) {
		return w, false
	}
	if err != nil {
		f.t.Fatal(err)
	}
	return w, true
}

func TestVMClaimRecordsLedgerAndEvent(t *testing.T) {
	cases := []struct {
		name      string
		pcpu      int64
		vcpu      int64
		mem       int64
		wantPins  int
		wantCells int
		policy    scheduler.CPUPolicy
		// overlap registers a host whose shared pool holds its dedicated
		// pCPUs: a pin shrinks the pool, and the agent is told its new
		// value; otherwise the pool stays and no event is written.
		overlap  bool
		wantPool string
	}{
		{"dedicated two pCPUs in one cell", 2, 0, 1024, 2, 1, scheduler.CPUDedicated, false, ""},
		{"dedicated one pCPU", 1, 0, 512, 1, 1, scheduler.CPUDedicated, false, ""},
		{"shared floats, holds no pCPU", 0, 2, 1024, 0, 0, scheduler.CPUShared, false, ""},
		{"dedicated pins from the shared pool", 2, 0, 1024, 2, 1, scheduler.CPUDedicated, true, "0-1,4-7"},
		{"shared on a host whose pools overlap", 0, 2, 1024, 0, 0, scheduler.CPUShared, true, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := setup(t)
			reg := bridgetest.TwoCells("h1")
			if tc.overlap {
				reg.SharedCPUs = "0-7"
			}
			rp := f.register(reg).ProviderUUID
			id := uuid.NewString()
			before := len(f.events("host:h1"))
			if err := f.vmClaim(id, rp, "req-"+uuid.NewString(), tc.pcpu, tc.vcpu, tc.mem); err != nil {
				t.Fatal(err)
			}
			w, ok := f.workload(id)
			if !ok || w.Kind != scheduler.KindVM || w.State != ledger.StateClaimed || w.Host != "h1" || w.CPUPolicy != tc.policy {
				t.Fatalf("workload %+v (found %v)", w, ok)
			}
			a := f.assignment(id)
			if a.Pinned().Size() != tc.wantPins || len(a.Cells) != tc.wantCells {
				t.Fatalf("assignment %+v", a)
			}
			if tc.wantCells == 1 && a.Cells[0].MemoryMB != tc.mem {
				t.Fatalf("cell memory %d, want %d", a.Cells[0].MemoryMB, tc.mem)
			}
			if !a.Pinned().IsSubsetOf(cpuset.New(2, 3, 6, 7)) {
				t.Fatalf("pins %s outside the dedicated pool", a.Pinned())
			}
			evs := f.events("host:h1")[before:]
			switch {
			case tc.wantPool == "" && len(evs) != 0:
				t.Fatalf("host events %+v for a claim that left the shared pool alone", evs)
			case tc.wantPool != "" && (len(evs) != 1 || evs[0].Type != agentproto.EventHostCPUs || evs[0].SharedCPUs != tc.wantPool):
				t.Fatalf("host events %+v, want one with shared cpus %s", evs, tc.wantPool)
			}
		})
	}
}

func TestVMClaimRollbackLeavesNothing(t *testing.T) {
	f := setup(t)
	rp := f.register(bridgetest.TwoCells("h1")).ProviderUUID
	id := uuid.NewString()
	before := f.scalar(`SELECT count(*) FROM bridge_outbox`)
	boom := errors.New("boom")
	err := pg.WithTx(f.ctx, f.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		if err := f.vmClaimIn(tx, id, rp, "", 2, 0, 1024); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if _, ok := f.workload(id); ok {
		t.Fatal("workload survived the rollback")
	}
	if f.pins() != 0 || f.used("PCPU") != 0 || f.scalar(`SELECT count(*) FROM bridge_outbox`) != before {
		t.Fatal("rollback left pins, allocations or events")
	}
}

func TestVMClaimPrefersDecidedCell(t *testing.T) {
	f := setup(t)
	rp := f.register(bridgetest.TwoCells("h1")).ProviderUUID
	req := "req-" + uuid.NewString()
	rec := ledger.Decision{RequestID: req, Kind: scheduler.KindVM, Host: "h1", ProviderUUID: rp,
		Placement: &ledger.PlacementRecord{Dedicated: true, CPUs: "6-7", Cells: []ledger.CellRecord{{Cell: 1, CPUs: "6-7", MemoryMB: 1024}}}}
	if err := ledger.RecordDecision(f.ctx, f.pool, &rec); err != nil {
		t.Fatal(err)
	}
	id := uuid.NewString()
	if err := f.vmClaim(id, rp, req, 2, 0, 1024); err != nil {
		t.Fatal(err)
	}
	a := f.assignment(id)
	if len(a.Cells) != 1 || a.Cells[0].Cell != 1 || !a.Pinned().Equals(cpuset.New(6, 7)) {
		t.Fatalf("assignment %+v, want cell 1 pins 6-7", a)
	}
}

// A claim Placement accepted stands even when the ledger has no room: the
// VM is recorded with what fits.
func TestVMClaimBeyondLedgerRoomIsRecorded(t *testing.T) {
	f := setup(t)
	rp := f.register(bridgetest.TwoCells("h1")).ProviderUUID
	// A pin Placement does not know of: 3 of the 4 dedicated pCPUs.
	ghost := uuid.NewString()
	if err := ledger.CreateWorkload(f.ctx, f.pool, &ledger.Workload{ID: ghost, Kind: scheduler.KindContainer, ProjectID: "p", UserID: "u",
		CPUPolicy: scheduler.CPUDedicated, Resources: scheduler.Resources{PCPU: 3}}); err != nil {
		t.Fatal(err)
	}
	err := ledger.Assign(f.ctx, f.pool, ghost, "h1", []ledger.CellAssignment{
		{Cell: 0, CPUs: cpuset.New(2, 3)}, {Cell: 1, CPUs: cpuset.New(6)}})
	if err != nil {
		t.Fatal(err)
	}
	id := uuid.NewString()
	if err := f.vmClaim(id, rp, "", 2, 0, 1024); err != nil {
		t.Fatalf("claim refused: %v", err)
	}
	if f.consumerUsed(id, "PCPU") != 2 {
		t.Fatal("Placement's claim is missing")
	}
	a := f.assignment(id)
	if !a.Pinned().Equals(cpuset.New(7)) {
		t.Fatalf("VM pins %s, want the one free pCPU 7", a.Pinned())
	}
}

func TestVMReleasedWhenAllocationsRemoved(t *testing.T) {
	f := setup(t)
	rp := f.register(bridgetest.TwoCells("h1")).ProviderUUID
	id := uuid.NewString()
	if err := f.vmClaim(id, rp, "", 2, 0, 1024); err != nil {
		t.Fatal(err)
	}
	err := pg.WithTx(f.ctx, f.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		if err := store.DeleteAllAllocationsOfConsumer(f.ctx, tx, id); err != nil {
			return err
		}
		return f.c.RecordVMAllocations(f.ctx, tx, "", bridge.VMAllocations{ConsumerUUID: id})
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := f.workload(id); ok || f.pins() != 0 {
		t.Fatal("VM still in the ledger")
	}
}

func TestVMLifecycle(t *testing.T) {
	f := setup(t)
	rp := f.register(bridgetest.TwoCells("h1")).ProviderUUID
	id := uuid.NewString()
	if err := f.vmClaim(id, rp, "", 2, 0, 1024); err != nil {
		t.Fatal(err)
	}
	// created without topology: keeps its expected pins
	exp := f.assignment(id).Pinned()
	if err := f.c.VMCreated(f.ctx, id, "h1", nil); err != nil {
		t.Fatal(err)
	}
	if w, _ := f.workload(id); w.State != ledger.StateActive || !f.assignment(id).Pinned().Equals(exp) {
		t.Fatalf("after VMCreated: %+v %s", w, f.assignment(id).Pinned())
	}
	// real pins replace the expected ones
	other := cpuset.New(2, 3)
	if exp.Equals(other) {
		other = cpuset.New(6, 7)
	}
	cell := 0
	if other.Contains(6) {
		cell = 1
	}
	if err := f.c.VMCreated(f.ctx, id, "h1", &bridge.VMTopology{Cells: []bridge.VMCell{{Cell: cell, CPUs: other.List(), MemoryMB: 1024}}}); err != nil {
		t.Fatal(err)
	}
	if got := f.assignment(id); !got.Pinned().Equals(other) || got.Cells[0].Cell != cell {
		t.Fatalf("real pins not applied: %+v", got)
	}
	// bad topology: refused, nothing changed
	if err := f.c.VMCreated(f.ctx, id, "h1", &bridge.VMTopology{Cells: []bridge.VMCell{{Cell: 5, CPUs: []int{1}}}}); !errors.Is(err, bridge.ErrInvalid) {
		t.Fatalf("bad cell: %v", err)
	}
	if err := f.c.VMCreated(f.ctx, id, "h1", &bridge.VMTopology{Cells: []bridge.VMCell{{Cell: 0, CPUs: []int{6}}}}); !errors.Is(err, bridge.ErrInvalid) {
		t.Fatalf("CPU outside its cell: %v", err)
	}
	if err := f.c.VMCreated(f.ctx, "not-a-uuid", "h1", nil); !errors.Is(err, bridge.ErrInvalid) {
		t.Fatalf("bad id: %v", err)
	}
	// failed: state error, nothing held
	if err := f.c.VMFailed(f.ctx, id, "boom"); err != nil {
		t.Fatal(err)
	}
	if w, _ := f.workload(id); w.State != ledger.StateError || w.StatusReason != "boom" || w.Host != "" || f.pins() != 0 {
		t.Fatalf("after VMFailed: %+v pins %d", w, f.pins())
	}
	// deleted, twice
	for range 2 {
		if err := f.c.VMDeleted(f.ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := f.workload(id); ok {
		t.Fatal("VM not deleted")
	}
	if err := f.c.VMFailed(f.ctx, uuid.NewString(), "x"); err != nil {
		t.Fatalf("unknown VM failed: %v", err)
	}
}

// Nova's real pins win: a dedicated container holding one of them moves,
// in its cell when there is room, and its agent is told.
func TestVMRealPinsMoveContainer(t *testing.T) {
	f := setup(t)
	reg := bridgetest.TwoCells("h1")
	reg.Cells = []agentproto.Cell{{ID: 0, CPUs: "0-5", MemoryMB: 4096}, {ID: 1, CPUs: "6-11", MemoryMB: 4096}}
	reg.DedicatedCPUs, reg.SharedCPUs = "2-5,8-11", "0,1,6,7"
	rp := f.register(reg).ProviderUUID
	ct, err := f.c.Create(f.ctx, dedicated(1, 256))
	if err != nil {
		t.Fatal(err)
	}
	ctPin := ct.Assignment.Pinned()
	ctCell := ct.Assignment.Cells[0].Cell
	id := uuid.NewString()
	if err := f.vmClaim(id, rp, "", 2, 0, 1024); err != nil {
		t.Fatal(err)
	}
	// Nova pinned the VM on the container's pCPU and one more of that cell.
	var cellCPUs cpuset.CPUSet
	if ctCell == 0 {
		cellCPUs = cpuset.New(2, 3, 4, 5)
	} else {
		cellCPUs = cpuset.New(8, 9, 10, 11)
	}
	real := ctPin.Union(cpuset.New(cellCPUs.Difference(ctPin).List()[0]))
	before := len(f.events(ct.ID))
	if err := f.c.VMCreated(f.ctx, id, "h1", &bridge.VMTopology{Cells: []bridge.VMCell{{Cell: ctCell, CPUs: real.List(), MemoryMB: 1024}}}); err != nil {
		t.Fatal(err)
	}
	if got := f.assignment(id).Pinned(); !got.Equals(real) {
		t.Fatalf("VM pins %s, want %s", got, real)
	}
	moved := f.assignment(ct.ID)
	if moved.Pinned().Size() != 1 || !moved.Pinned().Intersection(real).IsEmpty() || moved.Cells[0].Cell != ctCell {
		t.Fatalf("container not re-pinned in its cell: %+v (VM %s)", moved, real)
	}
	evs := f.events(ct.ID)
	if len(evs) != before+1 || evs[len(evs)-1].Type != agentproto.EventUpdate || evs[len(evs)-1].Container.CpusetCpus != moved.Pinned().String() {
		t.Fatalf("container events %+v", evs)
	}
}

func TestVMMovedFollowsAllocations(t *testing.T) {
	f := setup(t)
	rp1 := f.register(bridgetest.TwoCells("h1")).ProviderUUID
	rp2 := f.register(bridgetest.TwoCells("h2")).ProviderUUID
	id := uuid.NewString()
	if err := f.vmClaim(id, rp1, "", 2, 0, 1024); err != nil {
		t.Fatal(err)
	}
	// Nova moved the instance's allocation without the hook (a resize
	// confirmed elsewhere): VMMoved reads it back.
	err := pg.WithTx(f.ctx, f.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		if err := store.DeleteAllAllocationsOfConsumer(f.ctx, tx, id); err != nil {
			return err
		}
		return claims.Replace(f.ctx, tx, claims.Claim{ConsumerUUID: id, ProjectID: "p1", UserID: "u1",
			Allocations: []claims.Amount{{ProviderUUID: rp2, Class: "PCPU", Used: 1}, {ProviderUUID: rp2, Class: "MEMORY_MB", Used: 512}}})
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.c.VMMoved(f.ctx, id); err != nil {
		t.Fatal(err)
	}
	w, _ := f.workload(id)
	if a := f.assignment(id); w.Host != "h2" || a.Pinned().Size() != 1 || w.Resources.PCPU != 1 {
		t.Fatalf("after move: %+v %+v", w, a)
	}
	if f.scalar(`SELECT count(*) FROM bridge_workload_cpus p JOIN bridge_hosts h ON h.id = p.host_id WHERE h.name = 'h1'`) != 0 {
		t.Fatal("pins left on the source host")
	}
	// allocations gone: the VM is forgotten
	err = store.DeleteAllAllocationsOfConsumer(f.ctx, f.pool, id)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.c.VMMoved(f.ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.workload(id); ok {
		t.Fatal("VM without allocations kept")
	}
	if err := f.c.VMMoved(f.ctx, "nope"); !errors.Is(err, bridge.ErrInvalid) {
		t.Fatalf("bad id: %v", err)
	}
}

// Many VM claims at once on one host: Placement serializes them on the
// provider, the ledger never holds a pCPU twice and agrees with Placement.
func TestVMClaimsConcurrent(t *testing.T) {
	f := setup(t)
	reg := bridgetest.TwoCells("h1")
	reg.Cells = []agentproto.Cell{{ID: 0, CPUs: "0-9", MemoryMB: 65536}, {ID: 1, CPUs: "10-19", MemoryMB: 65536}}
	reg.DedicatedCPUs, reg.SharedCPUs = "2-9,12-19", "0,1,10,11"
	rp := f.register(reg).ProviderUUID
	const n = 12 // 16 pCPUs, 12 claims of 2: some fail in Placement
	var wg sync.WaitGroup
	errs := make([]error, n)
	ids := make([]string, n)
	for i := range n {
		ids[i] = uuid.NewString()
		wg.Go(func() {
			for attempt := 0; ; attempt++ {
				errs[i] = f.vmClaim(ids[i], rp, fmt.Sprintf("req-%d", i), 2, 0, 512)
				if errs[i] == nil || !claims.Retryable(errs[i]) || attempt > 20 {
					return
				}
			}
		})
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
		} else if !errors.Is(err, claims.ErrInvalidInventory) {
			t.Errorf("unexpected claim error: %v", err)
		}
	}
	if ok != 8 {
		t.Fatalf("%d claims succeeded, want 8", ok)
	}
	if f.used("PCPU") != 16 || f.pins() != 16 {
		t.Fatalf("Placement PCPU %d, ledger pins %d, want 16 and 16", f.used("PCPU"), f.pins())
	}
	if got := f.scalar(`SELECT count(*) FROM bridge_workloads WHERE kind = 'vm'`); got != 8 {
		t.Fatalf("%d VM workloads, want 8", got)
	}
	// every VM's pins are in one cell
	if got := f.scalar(`SELECT count(*) FROM (SELECT workload_id FROM bridge_workload_cpus GROUP BY workload_id HAVING count(DISTINCT cell) > 1) x`); got != 0 {
		t.Fatalf("%d VMs span cells", got)
	}
}

// A decision over two cells (a flavor with hw:numa_nodes=2) gives the
// claim one pCPU and half the memory in each.
func TestVMClaimFollowsDecidedSpread(t *testing.T) {
	f := setup(t)
	rp := f.register(bridgetest.TwoCells("h1")).ProviderUUID
	req := "req-" + uuid.NewString()
	rec := ledger.Decision{RequestID: req, Kind: scheduler.KindVM, Host: "h1", ProviderUUID: rp,
		Placement: &ledger.PlacementRecord{Dedicated: true, Cells: []ledger.CellRecord{{Cell: 0, MemoryMB: 512}, {Cell: 1, MemoryMB: 512}}}}
	if err := ledger.RecordDecision(f.ctx, f.pool, &rec); err != nil {
		t.Fatal(err)
	}
	id := uuid.NewString()
	if err := f.vmClaim(id, rp, req, 2, 0, 1024); err != nil {
		t.Fatal(err)
	}
	a := f.assignment(id)
	if len(a.Cells) != 2 || a.Cells[0].CPUs.Size() != 1 || a.Cells[1].CPUs.Size() != 1 || a.Cells[0].MemoryMB != 512 {
		t.Fatalf("assignment %+v, want one pCPU and 512 MB in each cell", a)
	}
	if d, err := ledger.LatestDecision(f.ctx, f.pool, id); err != nil || d.RequestID != req {
		t.Fatalf("decision not linked: %+v %v", d, err)
	}
}

// When the container's cell has no room left beside the VM's real pins,
// it moves to another cell (cpus and mems), and its agent is told.
func TestVMRealPinsMoveContainerToOtherCell(t *testing.T) {
	f := setup(t)
	rp := f.register(bridgetest.TwoCells("h1")).ProviderUUID
	ct, err := f.c.Create(f.ctx, dedicated(1, 256))
	if err != nil {
		t.Fatal(err)
	}
	ctCell := ct.Assignment.Cells[0].Cell
	id := uuid.NewString()
	if err := f.vmClaim(id, rp, "", 2, 0, 1024); err != nil {
		t.Fatal(err)
	}
	cellCPUs := map[int][]int{0: {2, 3}, 1: {6, 7}}
	// Nova pinned the VM on both dedicated pCPUs of the container's cell.
	if err := f.c.VMCreated(f.ctx, id, "h1", &bridge.VMTopology{Cells: []bridge.VMCell{{Cell: ctCell, CPUs: cellCPUs[ctCell], MemoryMB: 1024}}}); err != nil {
		t.Fatal(err)
	}
	moved := f.assignment(ct.ID)
	if len(moved.Cells) != 1 || moved.Cells[0].Cell != 1-ctCell || moved.Pinned().Size() != 1 || moved.Cells[0].MemoryMB != 256 {
		t.Fatalf("container not moved to the other cell: %+v", moved)
	}
	evs := f.events(ct.ID)
	last := evs[len(evs)-1]
	if last.Type != agentproto.EventUpdate || last.Container.CpusetCpus != moved.Pinned().String() || last.Container.CpusetMems != fmt.Sprint(1-ctCell) {
		t.Fatalf("last event %+v", last)
	}
	if f.pins() != 3 {
		t.Fatalf("%d pins, want 3", f.pins())
	}
}
