package ledger_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"k8s.io/utils/cpuset"

	"github.com/unisched/unisched/bridge/ledger"
	"github.com/unisched/unisched/bridge/scheduler"
	"github.com/unisched/unisched/internal/pg"
)

func TestAssignments(t *testing.T) {
	ctx, pool := setup(t)
	for _, name := range []string{"h1", "h2"} {
		if _, err := ledger.RegisterHost(ctx, pool, twoCellHost(t, name)); err != nil {
			t.Fatal(err)
		}
	}
	a := newWorkload(scheduler.KindVM, scheduler.CPUDedicated, scheduler.Resources{PCPU: 2, MemoryMB: 1024})
	b := newWorkload(scheduler.KindContainer, scheduler.CPUDedicated, scheduler.Resources{PCPU: 2, MemoryMB: 512})
	s := newWorkload(scheduler.KindContainer, scheduler.CPUShared, scheduler.Resources{VCPU: 1, MemoryMB: 256})
	for _, w := range []*ledger.Workload{a, b, s} {
		if err := ledger.CreateWorkload(ctx, pool, w); err != nil {
			t.Fatal(err)
		}
	}
	assign := func(id, host string, cells ...ledger.CellAssignment) error {
		return pg.WithTx(ctx, pool, pgx.TxOptions{}, func(tx pgx.Tx) error { return ledger.Assign(ctx, tx, id, host, cells) })
	}
	cell := func(c int, cpus string, mem int64) ledger.CellAssignment {
		return ledger.CellAssignment{Cell: c, CPUs: set(t, cpus), MemoryMB: mem}
	}
	if err := assign(a.ID, "h1", cell(0, "4,5", 1024)); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name  string
		id    string
		host  string
		cells []ledger.CellAssignment
		want  error
	}{
		{"double pin", b.ID, "h1", []ledger.CellAssignment{cell(0, "5", 0)}, ledger.ErrCPUTaken},
		{"pin in the wrong cell", b.ID, "h1", []ledger.CellAssignment{cell(0, "6", 0)}, ledger.ErrInvalid},
		{"CPU the host lacks", b.ID, "h1", []ledger.CellAssignment{cell(1, "9", 0)}, ledger.ErrInvalid},
		{"cell the host lacks", b.ID, "h1", []ledger.CellAssignment{cell(3, "", 0)}, ledger.ErrInvalid},
		{"cell twice", b.ID, "h1", []ledger.CellAssignment{cell(1, "6", 0), cell(1, "7", 0)}, ledger.ErrInvalid},
		{"unknown host", b.ID, "h9", []ledger.CellAssignment{cell(1, "6", 0)}, ledger.ErrNotFound},
		{"unknown workload", "00000000-0000-0000-0000-000000000001", "h1", nil, ledger.ErrNotFound},
		{"workload on another host", a.ID, "h2", []ledger.CellAssignment{cell(0, "4", 0)}, ledger.ErrOtherHost},
	} {
		if err := assign(tc.id, tc.host, tc.cells...); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
	// Failed assignments left nothing behind: b holds nothing, on no host.
	got, _ := ledger.GetWorkload(ctx, pool, b.ID)
	if got.Host != "" {
		t.Errorf("b after failed claims is on %q", got.Host)
	}

	// The same pCPU id on another host is another pCPU.
	if err := assign(b.ID, "h2", cell(0, "4,5", 512)); err != nil {
		t.Fatal(err)
	}
	if err := assign(s.ID, "h1", cell(1, "", 256)); err != nil {
		t.Fatal(err)
	}
	asg, err := ledger.GetAssignment(ctx, pool, s.ID)
	if err != nil || asg.Host != "h1" || len(asg.Cells) != 1 || !asg.Cells[0].CPUs.IsEmpty() || asg.Cells[0].MemoryMB != 256 {
		t.Errorf("shared assignment: %+v %v", asg, err)
	}

	// A re-pin replaces what a held: the released CPU is free again.
	if err := assign(a.ID, "h1", cell(1, "6,7", 1024)); err != nil {
		t.Fatal(err)
	}
	asg, _ = ledger.GetAssignment(ctx, pool, a.ID)
	if !asg.Pinned().Equals(set(t, "6,7")) || asg.Cells[0].Cell != 1 {
		t.Errorf("after re-pin: %+v", asg)
	}
	c := newWorkload(scheduler.KindContainer, scheduler.CPUDedicated, scheduler.Resources{PCPU: 1})
	if err := ledger.CreateWorkload(ctx, pool, c); err != nil {
		t.Fatal(err)
	}
	if err := assign(c.ID, "h1", cell(0, "4", 0)); err != nil {
		t.Errorf("pCPU freed by a re-pin: %v", err)
	}

	if err := ledger.Release(ctx, pool, a.ID); err != nil {
		t.Fatal(err)
	}
	got, _ = ledger.GetWorkload(ctx, pool, a.ID)
	asg, _ = ledger.GetAssignment(ctx, pool, a.ID)
	if got.Host != "" || len(asg.Cells) != 0 {
		t.Errorf("after release: host %q, cells %+v", got.Host, asg.Cells)
	}
	if err := ledger.Release(ctx, pool, a.ID); err != nil {
		t.Errorf("releasing twice: %v", err)
	}
	// Released, a may go to another host.
	if err := assign(a.ID, "h2", cell(1, "6,7", 1024)); err != nil {
		t.Errorf("after release, to h2: %v", err)
	}
}

// The constraint holds whatever the Go code does: a raw double insert fails.
func TestUniquePCPUConstraint(t *testing.T) {
	ctx, pool := setup(t)
	if _, err := ledger.RegisterHost(ctx, pool, twoCellHost(t, "h1")); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for range 2 {
		w := newWorkload(scheduler.KindVM, scheduler.CPUDedicated, scheduler.Resources{PCPU: 1})
		if err := ledger.CreateWorkload(ctx, pool, w); err != nil {
			t.Fatal(err)
		}
		if err := ledger.Assign(ctx, pool, w.ID, "h1", []ledger.CellAssignment{{Cell: 1, CPUs: cpuset.New()}}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, w.ID)
	}
	const pin = `INSERT INTO bridge_workload_cpus (host_id, cpu, workload_id, cell)
SELECT id, 6, $1, 1 FROM bridge_hosts WHERE name = 'h1'`
	if _, err := pool.Exec(ctx, pin, ids[0]); err != nil {
		t.Fatal(err)
	}
	_, err := pool.Exec(ctx, pin, ids[1])
	if !pg.HasCode(err, pg.CodeUniqueViolation) {
		t.Fatalf("second workload pinning pCPU 6: %v, want a unique violation", err)
	}
}

// Racing claims for one pCPU: exactly one transaction wins, the others get
// ErrCPUTaken, and the ledger shows the winner only.
func TestConcurrentPinsOneWinner(t *testing.T) {
	ctx, pool := setup(t)
	if _, err := ledger.RegisterHost(ctx, pool, twoCellHost(t, "h1")); err != nil {
		t.Fatal(err)
	}
	const n = 6
	ws := make([]*ledger.Workload, n)
	for i := range ws {
		ws[i] = newWorkload(scheduler.KindContainer, scheduler.CPUDedicated, scheduler.Resources{PCPU: 2})
		if err := ledger.CreateWorkload(ctx, pool, ws[i]); err != nil {
			t.Fatal(err)
		}
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = pg.WithTx(ctx, pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
				return ledger.Assign(context.Background(), tx, ws[i].ID, "h1", []ledger.CellAssignment{{Cell: 1, CPUs: set(t, "6,7"), MemoryMB: 1}})
			})
		}()
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Fatalf("workloads %d and %d both pinned 6,7", winner, i)
			}
			winner = i
		case !errors.Is(err, ledger.ErrCPUTaken):
			t.Errorf("loser %d: %v", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no winner")
	}
	for i, w := range ws {
		got, _ := ledger.GetWorkload(ctx, pool, w.ID)
		if (got.Host == "h1") != (i == winner) {
			t.Errorf("workload %d host %q (winner %d)", i, got.Host, winner)
		}
	}
}
