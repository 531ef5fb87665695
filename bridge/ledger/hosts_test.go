package ledger_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"k8s.io/utils/cpuset"

	"github.com/unisched/unisched/bridge/ledger"
	"github.com/unisched/unisched/bridge/scheduler"
	"github.com/unisched/unisched/internal/pg"
)

func sameTopology(t *testing.T, got, want ledger.Topology) {
	t.Helper()
	if !got.DedicatedCPUs.Equals(want.DedicatedCPUs) || !got.SharedCPUs.Equals(want.SharedCPUs) {
		t.Errorf("pools: got dedicated %s shared %s, want %s %s", got.DedicatedCPUs, got.SharedCPUs, want.DedicatedCPUs, want.SharedCPUs)
	}
	if len(got.Cells) != len(want.Cells) {
		t.Fatalf("cells: got %d, want %d", len(got.Cells), len(want.Cells))
	}
	for i := range want.Cells {
		g, w := got.Cells[i], want.Cells[i]
		if g.ID != w.ID || !g.CPUs.Equals(w.CPUs) || g.MemoryMB != w.MemoryMB {
			t.Errorf("cell %d: got %d %s %d MB, want %d %s %d MB", i, g.ID, g.CPUs, g.MemoryMB, w.ID, w.CPUs, w.MemoryMB)
		}
		var gs, ws []string
		for _, s := range g.Siblings {
			gs = append(gs, s.String())
		}
		for _, s := range w.Siblings {
			if s.Size() > 1 {
				ws = append(ws, s.String())
			}
		}
		if !reflect.DeepEqual(gs, ws) {
			t.Errorf("cell %d siblings: got %v, want %v", w.ID, gs, ws)
		}
	}
}

func TestHostRegistration(t *testing.T) {
	ctx, pool := setup(t)
	h := twoCellHost(t, "host1")
	id, err := ledger.RegisterHost(ctx, pool, h)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ledger.GetHost(ctx, pool, "host1")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != id || got.ProviderUUID != h.ProviderUUID || got.AvailabilityZone != "az1" || !got.HeartbeatAt.IsZero() {
		t.Errorf("got %+v", got)
	}
	sameTopology(t, got.Topology, h.Topology)

	// Re-registering updates in place: same id, new pools and a cell that
	// grew a CPU, a singleton sibling set (no sibling) is dropped.
	h.AvailabilityZone = ""
	h.Cells[1].CPUs = set(t, "2,3,6-8")
	h.Cells[1].Siblings = append(h.Cells[1].Siblings, set(t, "8"))
	h.DedicatedCPUs = set(t, "2-8")
	h.SharedCPUs = set(t, "0,1")
	id2, err := ledger.RegisterHost(ctx, pool, h)
	if err != nil || id2 != id {
		t.Fatalf("re-register: id %d (was %d), %v", id2, id, err)
	}
	got, err = ledger.GetHost(ctx, pool, "host1")
	if err != nil {
		t.Fatal(err)
	}
	if got.AvailabilityZone != "" {
		t.Errorf("zone not cleared: %q", got.AvailabilityZone)
	}
	sameTopology(t, got.Topology, h.Topology)

	// Shrinking drops the CPU and the cell.
	h.Cells = h.Cells[:1]
	h.DedicatedCPUs, h.SharedCPUs = set(t, "4,5"), set(t, "0,1")
	if err := pg.WithTx(ctx, pool, pgx.TxOptions{}, func(tx pgx.Tx) error { return ledger.SetTopology(ctx, tx, "host1", h.Topology) }); err != nil {
		t.Fatal(err)
	}
	got, _ = ledger.GetHost(ctx, pool, "host1")
	sameTopology(t, got.Topology, h.Topology)

	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := ledger.Heartbeat(ctx, pool, "host1", at); err != nil {
		t.Fatal(err)
	}
	got, _ = ledger.GetHost(ctx, pool, "host1")
	if !got.HeartbeatAt.Equal(at) {
		t.Errorf("heartbeat %v, want %v", got.HeartbeatAt, at)
	}
	if err := ledger.Heartbeat(ctx, pool, "nohost", at); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("heartbeat of unknown host: %v", err)
	}
	if _, err := ledger.GetHost(ctx, pool, "nohost"); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("get unknown host: %v", err)
	}

	// A second host may not claim the first one's provider.
	other := twoCellHost(t, "host2")
	other.ProviderUUID = h.ProviderUUID
	if _, err := ledger.RegisterHost(ctx, pool, other); !errors.Is(err, ledger.ErrExists) {
		t.Errorf("duplicate provider: %v", err)
	}
	other.ProviderUUID = uuid.NewString()
	if _, err := ledger.RegisterHost(ctx, pool, other); err != nil {
		t.Fatal(err)
	}
	hosts, err := ledger.ListHosts(ctx, pool)
	if err != nil || len(hosts) != 2 || hosts[0].Name != "host1" || hosts[1].Name != "host2" {
		t.Fatalf("list: %v %+v", err, hosts)
	}
	sameTopology(t, hosts[1].Topology, other.Topology)

	if err := ledger.DeleteHost(ctx, pool, "host2"); err != nil {
		t.Fatal(err)
	}
	if err := ledger.DeleteHost(ctx, pool, "host2"); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("second delete: %v", err)
	}
}

func TestTopologyValidation(t *testing.T) {
	ctx, pool := setup(t)
	tests := []struct {
		name string
		edit func(h *ledger.Host)
	}{
		{"cpu in two cells", func(h *ledger.Host) { h.Cells[1].CPUs = set(t, "1,2,3,6,7") }},
		{"sibling outside its cell", func(h *ledger.Host) { h.Cells[0].Siblings[0] = set(t, "0,2") }},
		{"sibling sets overlap", func(h *ledger.Host) { h.Cells[0].Siblings[1] = set(t, "0,5") }},
		{"empty sibling set", func(h *ledger.Host) { h.Cells[0].Siblings[1] = cpuset.New() }},
		{"pool outside the cells", func(h *ledger.Host) { h.DedicatedCPUs = set(t, "4-9") }},
		{"pools without cells", func(h *ledger.Host) { h.Cells = nil }},
		{"cell listed twice", func(h *ledger.Host) { h.Cells[1].ID = 0 }},
		{"negative cell", func(h *ledger.Host) { h.Cells[1].ID = -1 }},
		{"negative memory", func(h *ledger.Host) { h.Cells[1].MemoryMB = -1 }},
		{"no name", func(h *ledger.Host) { h.Name = "" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := twoCellHost(t, "h")
			tc.edit(&h)
			if _, err := ledger.RegisterHost(ctx, pool, h); !errors.Is(err, ledger.ErrInvalid) {
				t.Errorf("got %v, want ErrInvalid", err)
			}
		})
	}
	hosts, err := ledger.ListHosts(ctx, pool)
	if err != nil || len(hosts) != 0 {
		t.Errorf("invalid registrations left %d hosts (%v)", len(hosts), err)
	}
}

// A topology change may not take away what a workload holds.
func TestTopologyInUse(t *testing.T) {
	ctx, pool := setup(t)
	h := twoCellHost(t, "h")
	if _, err := ledger.RegisterHost(ctx, pool, h); err != nil {
		t.Fatal(err)
	}
	w := newWorkload(scheduler.KindVM, scheduler.CPUDedicated, scheduler.Resources{PCPU: 2, MemoryMB: 512})
	if err := ledger.CreateWorkload(ctx, pool, w); err != nil {
		t.Fatal(err)
	}
	if err := ledger.Assign(ctx, pool, w.ID, "h", []ledger.CellAssignment{{Cell: 1, CPUs: set(t, "6,7"), MemoryMB: 512}}); err != nil {
		t.Fatal(err)
	}
	inTx := func(topo ledger.Topology) error {
		return pg.WithTx(ctx, pool, pgx.TxOptions{}, func(tx pgx.Tx) error { return ledger.SetTopology(ctx, tx, "h", topo) })
	}
	dropCell := h.Topology
	dropCell.Cells = dropCell.Cells[:1]
	dropCell.DedicatedCPUs, dropCell.SharedCPUs = set(t, "4,5"), set(t, "0,1")
	if err := inTx(dropCell); !errors.Is(err, ledger.ErrInUse) {
		t.Errorf("dropping a held cell: %v", err)
	}
	moveCPU := twoCellHost(t, "h").Topology
	moveCPU.Cells[0].CPUs = set(t, "0,1,4,5,7")
	moveCPU.Cells[1].CPUs = set(t, "2,3,6")
	moveCPU.Cells[1].Siblings = moveCPU.Cells[1].Siblings[:1]
	if err := inTx(moveCPU); !errors.Is(err, ledger.ErrInUse) {
		t.Errorf("moving a pinned CPU to another cell: %v", err)
	}
	// Changing pools only is fine even for a pinned CPU (the scheduler
	// sees it pinned either way).
	pools := twoCellHost(t, "h").Topology
	pools.DedicatedCPUs = set(t, "5-7")
	if err := inTx(pools); err != nil {
		t.Errorf("changing pools: %v", err)
	}
	if err := ledger.DeleteHost(ctx, pool, "h"); !errors.Is(err, ledger.ErrInUse) {
		t.Errorf("deleting a host with workloads: %v", err)
	}
}
