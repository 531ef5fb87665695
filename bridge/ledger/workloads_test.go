package ledger_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/unisched/unisched/bridge/ledger"
	"github.com/unisched/unisched/bridge/scheduler"
)

func TestWorkloadLifecycle(t *testing.T) {
	ctx, pool := setup(t)
	if _, err := ledger.RegisterHost(ctx, pool, twoCellHost(t, "h1")); err != nil {
		t.Fatal(err)
	}
	vm := newWorkload(scheduler.KindVM, scheduler.CPUDedicated, scheduler.Resources{PCPU: 2, MemoryMB: 1024, DiskGB: 10})
	vm.RequestID = "req-a"
	vm.ServerGroup = "g1"
	vm.Spec = json.RawMessage(`{"flavor": "m1.pinned"}`)
	if err := ledger.CreateWorkload(ctx, pool, vm); err != nil {
		t.Fatal(err)
	}
	if vm.State != ledger.StatePending || vm.CreatedAt.IsZero() {
		t.Errorf("after create: %+v", vm)
	}
	ct := newWorkload(scheduler.KindContainer, "", scheduler.Resources{VCPU: 1, MemoryMB: 256})
	ct.ProjectID = "other"
	if err := ledger.CreateWorkload(ctx, pool, ct); err != nil {
		t.Fatal(err)
	}
	if ct.CPUPolicy != scheduler.CPUShared || string(ct.Spec) != `{}` {
		t.Errorf("defaults: policy %q spec %s", ct.CPUPolicy, ct.Spec)
	}
	if err := ledger.CreateWorkload(ctx, pool, vm); !errors.Is(err, ledger.ErrExists) {
		t.Errorf("duplicate id: %v", err)
	}

	got, err := ledger.GetWorkload(ctx, pool, vm.ID)
	if err != nil {
		t.Fatal(err)
	}
	var spec map[string]string
	if err := json.Unmarshal(got.Spec, &spec); err != nil || spec["flavor"] != "m1.pinned" {
		t.Errorf("spec %s (%v)", got.Spec, err)
	}
	if got.Kind != scheduler.KindVM || got.Resources != vm.Resources || got.ServerGroup != "g1" || got.RequestID != "req-a" || got.Host != "" {
		t.Errorf("got %+v", got)
	}

	if err := ledger.Assign(ctx, pool, vm.ID, "h1", []ledger.CellAssignment{{Cell: 0, CPUs: set(t, "4,5"), MemoryMB: 1024}}); err != nil {
		t.Fatal(err)
	}
	if err := ledger.SetState(ctx, pool, vm.ID, ledger.StateActive, ""); err != nil {
		t.Fatal(err)
	}
	if err := ledger.SetState(ctx, pool, ct.ID, ledger.StateError, "image missing"); err != nil {
		t.Fatal(err)
	}
	if err := ledger.SetState(ctx, pool, ct.ID, "running", ""); !errors.Is(err, ledger.ErrInvalid) {
		t.Errorf("unknown state: %v", err)
	}
	if err := ledger.SetState(ctx, pool, "00000000-0000-0000-0000-000000000000", ledger.StateActive, ""); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("unknown workload: %v", err)
	}

	ids := func(f ledger.WorkloadFilter) []string {
		t.Helper()
		ws, err := ledger.ListWorkloads(ctx, pool, f)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, w := range ws {
			out = append(out, w.ID)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		f    ledger.WorkloadFilter
		want []string
	}{
		{"all", ledger.WorkloadFilter{}, []string{vm.ID, ct.ID}},
		{"host", ledger.WorkloadFilter{Host: "h1"}, []string{vm.ID}},
		{"project", ledger.WorkloadFilter{ProjectID: "other"}, []string{ct.ID}},
		{"kind", ledger.WorkloadFilter{Kind: scheduler.KindContainer}, []string{ct.ID}},
		{"states", ledger.WorkloadFilter{States: []ledger.State{ledger.StateActive, ledger.StatePending}}, []string{vm.ID}},
		{"request", ledger.WorkloadFilter{RequestID: "req-a"}, []string{vm.ID}},
		{"none", ledger.WorkloadFilter{Host: "h1", Kind: scheduler.KindContainer}, nil},
	} {
		if got := ids(tc.f); len(got) != len(tc.want) || (len(got) > 0 && got[0] != tc.want[0]) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
	got, _ = ledger.GetWorkload(ctx, pool, ct.ID)
	if got.State != ledger.StateError || got.StatusReason != "image missing" {
		t.Errorf("container: %+v", got)
	}

	if err := ledger.DeleteWorkload(ctx, pool, vm.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := ledger.GetWorkload(ctx, pool, vm.ID); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("after delete: %v", err)
	}
	if err := ledger.DeleteWorkload(ctx, pool, vm.ID); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("second delete: %v", err)
	}
	// The assignment went with it: the pCPUs are free for another.
	other := newWorkload(scheduler.KindContainer, scheduler.CPUDedicated, scheduler.Resources{PCPU: 2})
	if err := ledger.CreateWorkload(ctx, pool, other); err != nil {
		t.Fatal(err)
	}
	if err := ledger.Assign(ctx, pool, other.ID, "h1", []ledger.CellAssignment{{Cell: 0, CPUs: set(t, "4,5")}}); err != nil {
		t.Errorf("pCPUs of a deleted workload: %v", err)
	}
}

func TestWorkloadValidation(t *testing.T) {
	ctx, pool := setup(t)
	for _, tc := range []struct {
		name string
		edit func(w *ledger.Workload)
	}{
		{"kind", func(w *ledger.Workload) { w.Kind = "pod" }},
		{"state", func(w *ledger.Workload) { w.State = "running" }},
		{"policy", func(w *ledger.Workload) { w.CPUPolicy = "mixed" }},
	} {
		w := newWorkload(scheduler.KindVM, scheduler.CPUShared, scheduler.Resources{VCPU: 1})
		tc.edit(w)
		if err := ledger.CreateWorkload(ctx, pool, w); !errors.Is(err, ledger.ErrInvalid) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	w := newWorkload(scheduler.KindVM, scheduler.CPUShared, scheduler.Resources{VCPU: 1})
	w.Spec = json.RawMessage(`{not json`)
	if err := ledger.CreateWorkload(ctx, pool, w); err == nil {
		t.Error("invalid spec JSON accepted")
	}
	w = newWorkload(scheduler.KindVM, scheduler.CPUShared, scheduler.Resources{VCPU: -1})
	if err := ledger.CreateWorkload(ctx, pool, w); err == nil {
		t.Error("negative resources accepted")
	}
}
