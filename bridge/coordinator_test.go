package bridge_test

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/unisched/unisched/bridge"
	"github.com/unisched/unisched/bridge/agentproto"
	"github.com/unisched/unisched/bridge/bridgetest"
	"github.com/unisched/unisched/bridge/ledger"
	"github.com/unisched/unisched/bridge/scheduler"
)

func TestCreateInvalid(t *testing.T) {
	f := setup(t)
	f.register(bridgetest.TwoCells("h1"))
	for _, tc := range []struct {
		name string
		mod  func(*bridge.CreateRequest)
		want string
	}{
		{"fractional dedicated", func(r *bridge.CreateRequest) { r.CPUPolicy = scheduler.CPUDedicated; r.CPU = 1.5 }, "whole number"},
		{"zero cpu", func(r *bridge.CreateRequest) { r.CPU = 0 }, "positive"},
		{"no memory", func(r *bridge.CreateRequest) { r.MemoryMB = 0 }, "memory"},
		{"bad policy", func(r *bridge.CreateRequest) { r.CPUPolicy = "mixed" }, "cpu policy"},
		{"bad id", func(r *bridge.CreateRequest) { r.ID = "nope" }, "not a uuid"},
		{"no container", func(r *bridge.CreateRequest) { r.Container = nil }, "container"},
		{"no project", func(r *bridge.CreateRequest) { r.ProjectID = "" }, "project"},
		{"bad numa", func(r *bridge.CreateRequest) { r.NUMA.Cells = -1 }, "NUMA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := shared(1, 128)
			tc.mod(&req)
			_, err := f.c.Create(f.ctx, req)
			if !errors.Is(err, bridge.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrInvalid mentioning %q", err, tc.want)
			}
		})
	}
	if n := f.scalar(`SELECT count(*) FROM bridge_workloads`); n != 0 {
		t.Fatalf("%d workloads recorded for invalid requests", n)
	}
}

// Dedicated containers take one cell each, then nothing is left: the third
// fails with NoValidHost holding nothing.
func TestCreateDedicatedFillsCellsThenNoValidHost(t *testing.T) {
	f := setup(t)
	f.register(bridgetest.TwoCells("h1"))
	cells := map[int]bool{}
	for i := range 2 {
		w, err := f.c.Create(f.ctx, dedicated(2, 1024))
		if err != nil {
			t.Fatalf("create %d: %v", i, err)
		}
		if w.State != ledger.StateClaimed || w.Host != "h1" {
			t.Fatalf("create %d: state %s host %q", i, w.State, w.Host)
		}
		if len(w.Assignment.Cells) != 1 || w.Assignment.Pinned().Size() != 2 {
			t.Fatalf("create %d: assignment %+v", i, w.Assignment)
		}
		cell := w.Assignment.Cells[0].Cell
		cells[cell] = true
		want := map[int]string{0: "2-3", 1: "6-7"}[cell]
		if w.Container.CpusetCpus != want || w.Container.CpusetMems != map[int]string{0: "0", 1: "1"}[cell] {
			t.Fatalf("create %d: cpusets %q/%q, want %q in cell %d", i, w.Container.CpusetCpus, w.Container.CpusetMems, want, cell)
		}
		ev := f.events(w.ID)
		if len(ev) != 1 || ev[0].Type != agentproto.EventCreate || ev[0].Host != "h1" || ev[0].Container.CpusetCpus != want {
			t.Fatalf("create %d: events %+v", i, ev)
		}
		if got := f.consumerUsed(w.ID, "PCPU"); got != 2 {
			t.Fatalf("create %d: PCPU allocation %d", i, got)
		}
		if ct := f.scalar(`SELECT count(*) FROM consumers c JOIN consumer_types t ON t.id = c.consumer_type_id WHERE c.uuid = $1 AND t.name = 'CONTAINER'`, w.ID); ct != 1 {
			t.Fatalf("create %d: consumer type not CONTAINER", i)
		}
		d, err := ledger.LatestDecision(f.ctx, f.pool, w.ID)
		if err != nil || d.Host != "h1" {
			t.Fatalf("create %d: decision %+v, %v", i, d, err)
		}
	}
	if !cells[0] || !cells[1] {
		t.Fatalf("cells used %v, want 0 and 1", cells)
	}
	w, err := f.c.Create(f.ctx, dedicated(2, 1024))
	if !errors.Is(err, bridge.ErrNoValidHost) {
		t.Fatalf("third create: %v, want ErrNoValidHost", err)
	}
	if w.ID == "" || w.State != ledger.StateError || !strings.HasPrefix(w.StatusReason, bridge.NoHostsReason) || w.Host != "" {
		t.Fatalf("third create: workload %+v", w.Workload)
	}
	if got := f.used("PCPU"); got != 4 {
		t.Fatalf("PCPU used %d, want 4", got)
	}
	if got := f.used("MEMORY_MB"); got != 2048 {
		t.Fatalf("MEMORY_MB used %d, want 2048", got)
	}
	if got := f.pins(); got != 4 {
		t.Fatalf("%d pins, want 4", got)
	}
	if got := f.consumerUsed(w.ID, "PCPU") + f.consumerUsed(w.ID, "MEMORY_MB"); got != 0 {
		t.Fatalf("failed workload holds %d in Placement", got)
	}
	if len(f.events(w.ID)) != 0 {
		t.Fatal("failed workload has agent events")
	}
	d, err := ledger.LatestDecision(f.ctx, f.pool, w.ID)
	if err != nil || d.Host != "" || d.Error == "" {
		t.Fatalf("failed decision %+v, %v", d, err)
	}
}

// A dedicated claim on pCPUs of the shared pool shrinks the shared
// containers' cpuset and tells the host.
func TestCreateDedicatedInSharedPool(t *testing.T) {
	f := setup(t)
	reg := bridgetest.TwoCells("h1")
	reg.Cells = reg.Cells[:1]
	reg.DedicatedCPUs, reg.SharedCPUs = "2-3", "0-3"
	f.register(reg)
	s, err := f.c.Create(f.ctx, shared(0.5, 128))
	if err != nil {
		t.Fatal(err)
	}
	if s.Container.CpusetCpus != "0-3" || s.Container.CpusetMems != "" || f.consumerUsed(s.ID, "VCPU") != 1 {
		t.Fatalf("shared: cpuset %q mems %q VCPU %d", s.Container.CpusetCpus, s.Container.CpusetMems, f.consumerUsed(s.ID, "VCPU"))
	}
	d, err := f.c.Create(f.ctx, dedicated(2, 128))
	if err != nil {
		t.Fatal(err)
	}
	if d.Container.CpusetCpus != "2-3" {
		t.Fatalf("dedicated cpuset %q", d.Container.CpusetCpus)
	}
	ev := f.events("host:h1")
	if len(ev) != 1 || ev[0].Type != agentproto.EventHostCPUs || ev[0].SharedCPUs != "0-1" {
		t.Fatalf("host events %+v", ev)
	}
	// The ledger records the move of the shared container, not only the event.
	if got, err := f.c.Get(f.ctx, s.ID); err != nil || got.Container.CpusetCpus != "0-1" {
		t.Fatalf("shared container recorded on %q after the pin (%v), want 0-1", got.Container.CpusetCpus, err)
	}
	des, err := f.c.Desired(f.ctx, "h1")
	if err != nil {
		t.Fatal(err)
	}
	if des.SharedCPUs != "0-1" || len(des.Containers) != 2 {
		t.Fatalf("desired %+v", des)
	}
	for _, ct := range des.Containers {
		want := map[string]string{s.ID: "0-1", d.ID: "2-3"}[ct.WorkloadID]
		if ct.CpusetCpus != want {
			t.Fatalf("desired %s cpuset %q, want %q", ct.WorkloadID, ct.CpusetCpus, want)
		}
	}
	// The agent reports the dedicated one failed: its pCPUs go back.
	if err := f.c.Report(f.ctx, "h1", agentproto.Report{WorkloadID: d.ID, Status: agentproto.StatusError, Reason: "image busybox not found"}); err != nil {
		t.Fatal(err)
	}
	ev = f.events("host:h1")
	if len(ev) != 2 || ev[1].SharedCPUs != "0-3" {
		t.Fatalf("host events after release %+v", ev)
	}
	// The ledger's record of the shared container moved back too.
	if got, err := f.c.Get(f.ctx, s.ID); err != nil || got.Container.CpusetCpus != "0-3" {
		t.Fatalf("shared container recorded on %q after the release (%v), want 0-3", got.Container.CpusetCpus, err)
	}
}

// Thirty creates race for twelve pCPUs on two hosts: exactly twelve claim,
// the others fail holding nothing, and Placement agrees with the ledger.
func TestCreateConcurrent(t *testing.T) {
	f := setup(t)
	for _, h := range []string{"h1", "h2"} {
		reg := bridgetest.TwoCells(h)
		reg.DedicatedCPUs, reg.SharedCPUs = "1-3,5-7", "0,4"
		f.register(reg)
	}
	const n = 30
	var wg sync.WaitGroup
	errs := make([]error, n)
	ws := make([]bridge.Workload, n)
	for i := range n {
		wg.Go(func() { ws[i], errs[i] = f.c.Create(f.ctx, dedicated(1, 64)) })
	}
	wg.Wait()
	claimed := 0
	for i := range n {
		switch {
		case errs[i] == nil:
			claimed++
			if ws[i].State != ledger.StateClaimed {
				t.Errorf("create %d: state %s", i, ws[i].State)
			}
			// The decision logged is where the workload is.
			d, err := ledger.LatestDecision(f.ctx, f.pool, ws[i].ID)
			if err != nil || d.Host != ws[i].Host || d.Placement == nil || d.Placement.CPUs != ws[i].Assignment.Pinned().String() {
				t.Errorf("create %d: decision %+v (%v) for assignment %+v", i, d.Placement, err, ws[i].Assignment)
			}
		case errors.Is(errs[i], bridge.ErrNoValidHost):
			if ws[i].State != ledger.StateError {
				t.Errorf("create %d: failed in state %s", i, ws[i].State)
			}
		default:
			t.Errorf("create %d: %v", i, errs[i])
		}
	}
	if claimed != 12 {
		t.Fatalf("%d claimed, want 12", claimed)
	}
	if got := f.used("PCPU"); got != 12 {
		t.Fatalf("PCPU used %d, want 12", got)
	}
	if got := f.used("MEMORY_MB"); got != 12*64 {
		t.Fatalf("MEMORY_MB used %d", got)
	}
	if got := f.pins(); got != 12 {
		t.Fatalf("%d pins, want 12", got)
	}
	if got := f.scalar(`SELECT count(*) FROM bridge_workloads WHERE state = 'claimed'`); got != 12 {
		t.Fatalf("%d claimed in the ledger", got)
	}
	if got := f.scalar(`SELECT count(*) FROM bridge_workloads WHERE state = 'error' AND host_id IS NULL`); got != n-12 {
		t.Fatalf("%d errored without host", got)
	}
}

func TestReportFlows(t *testing.T) {
	f := setup(t)
	for _, h := range []string{"h1", "h2"} {
		reg := bridgetest.TwoCells(h)
		reg.DedicatedCPUs, reg.SharedCPUs = "1-3,5-7", "0,4"
		f.register(reg)
	}
	now := time.Now()
	type step struct {
		report  agentproto.Report
		host    string
		wantErr error
		state   ledger.State // "" : the workload is gone
		runtime string
		held    bool
	}
	for _, tc := range []struct {
		name  string
		del   bool
		steps []step
	}{
		{"running then stopped", false, []step{
			{report: agentproto.Report{Status: agentproto.StatusRunning, ContainerID: "abc", ObservedAt: now}, state: ledger.StateActive, runtime: "Running", held: true},
			{report: agentproto.Report{Status: agentproto.StatusRunning, ObservedAt: now}, state: ledger.StateActive, runtime: "Running", held: true},
			{report: agentproto.Report{Status: agentproto.StatusStopped, ObservedAt: now.Add(time.Second)}, state: ledger.StateStopped, runtime: "Stopped", held: true},
			// an older report arriving late changes nothing
			{report: agentproto.Report{Status: agentproto.StatusRunning, ObservedAt: now.Add(-time.Second)}, state: ledger.StateStopped, runtime: "Stopped", held: true},
		}},
		{"create error releases", false, []step{
			{report: agentproto.Report{Status: agentproto.StatusError, Reason: "image nope not found"}, state: ledger.StateError, runtime: "Error", held: false},
			{report: agentproto.Report{Status: agentproto.StatusError, Reason: "image nope not found"}, state: ledger.StateError, runtime: "Error", held: false},
		}},
		{"error after running keeps the claim", false, []step{
			{report: agentproto.Report{Status: agentproto.StatusRunning}, state: ledger.StateActive, runtime: "Running", held: true},
			{report: agentproto.Report{Status: agentproto.StatusError, Reason: "oom"}, state: ledger.StateStopped, runtime: "Error", held: true},
		}},
		{"wrong host", false, []step{
			{report: agentproto.Report{Status: agentproto.StatusRunning}, host: "h2", wantErr: bridge.ErrConflict, state: ledger.StateClaimed, held: true},
		}},
		{"bad status", false, []step{
			{report: agentproto.Report{Status: "Sleeping"}, wantErr: bridge.ErrInvalid, state: ledger.StateClaimed, held: true},
		}},
		{"deleted releases and forgets", true, []step{
			{report: agentproto.Report{Status: agentproto.StatusRunning}, state: ledger.StateDeleting, runtime: "Running", held: true},
			{report: agentproto.Report{Status: agentproto.StatusDeleted}},
			{report: agentproto.Report{Status: agentproto.StatusDeleted}},
		}},
		{"deleted stamped before the dying container's report still releases", true, []step{
			{report: agentproto.Report{Status: agentproto.StatusStopped, ObservedAt: now.Add(time.Second)}, state: ledger.StateDeleting, runtime: "Stopped", held: true},
			{report: agentproto.Report{Status: agentproto.StatusDeleted, ObservedAt: now}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := dedicated(1, 256)
			req.Host = "h1"
			w, err := f.c.Create(f.ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			if tc.del {
				if err := f.c.Delete(f.ctx, w.ID, true, false); err != nil {
					t.Fatal(err)
				}
				ev := f.events(w.ID)
				if last := ev[len(ev)-1]; last.Type != agentproto.EventDelete || !last.Stop || last.Force {
					t.Fatalf("delete event %+v", last)
				}
			}
			for i, s := range tc.steps {
				s.report.WorkloadID = w.ID
				host := s.host
				if host == "" {
					host = "h1"
				}
				err := f.c.Report(f.ctx, host, s.report)
				if s.wantErr == nil && err != nil || s.wantErr != nil && !errors.Is(err, s.wantErr) {
					t.Fatalf("step %d: %v, want %v", i, err, s.wantErr)
				}
				got, err := f.c.Get(f.ctx, w.ID)
				if s.state == "" {
					if !errors.Is(err, bridge.ErrNotFound) {
						t.Fatalf("step %d: workload still there (%v)", i, err)
					}
				} else {
					if err != nil {
						t.Fatal(err)
					}
					if got.State != s.state || got.Runtime.Status != s.runtime {
						t.Fatalf("step %d: state %s runtime %q, want %s %q", i, got.State, got.Runtime.Status, s.state, s.runtime)
					}
					if s.state == ledger.StateError && got.StatusReason != s.report.Reason {
						t.Fatalf("step %d: reason %q", i, got.StatusReason)
					}
				}
				held := f.consumerUsed(w.ID, "PCPU") == 1
				pinned := f.scalar(`SELECT count(*) FROM bridge_workload_cpus WHERE workload_id = $1`, w.ID) == 1
				if held != s.held || pinned != s.held {
					t.Fatalf("step %d: Placement held %v, ledger pinned %v, want %v", i, held, pinned, s.held)
				}
			}
		})
	}
}

func TestDeleteWithoutHost(t *testing.T) {
	f := setup(t)
	f.register(bridgetest.TwoCells("h1"))
	w, err := f.c.Create(f.ctx, dedicated(8, 128))
	if !errors.Is(err, bridge.ErrNoValidHost) {
		t.Fatalf("create: %v", err)
	}
	if err := f.c.Delete(f.ctx, w.ID, false, false); err != nil {
		t.Fatal(err)
	}
	if _, err := f.c.Get(f.ctx, w.ID); !errors.Is(err, bridge.ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
	if err := f.c.Delete(f.ctx, w.ID, false, false); !errors.Is(err, bridge.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	if err := f.c.Delete(f.ctx, uuid.NewString(), false, false); !errors.Is(err, bridge.ErrNotFound) {
		t.Fatalf("delete unknown: %v", err)
	}
}

func TestActionRenameResize(t *testing.T) {
	f := setup(t)
	f.register(bridgetest.TwoCells("h1"))
	req := dedicated(1, 1024)
	w, err := f.c.Create(f.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	cell := w.Assignment.Cells[0].Cell

	if _, err := f.c.Action(f.ctx, w.ID, "dance", bridge.ActionArgs{}); !errors.Is(err, bridge.ErrInvalid) {
		t.Fatalf("unknown action: %v", err)
	}
	got, err := f.c.Action(f.ctx, w.ID, agentproto.ActionStop, bridge.ActionArgs{Timeout: 5})
	if err != nil {
		t.Fatal(err)
	}
	if got.Container.Running {
		t.Fatal("stopped container still desired running")
	}
	ev := f.events(w.ID)
	if last := ev[len(ev)-1]; last.Type != agentproto.EventAction || last.Action != "stop" || last.Timeout != 5 || last.Container.Running {
		t.Fatalf("action event %+v", last)
	}

	got, err = f.c.Rename(f.ctx, w.ID, "renamed")
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "renamed" || got.Container.Name != "renamed" {
		t.Fatalf("rename: %q / %q", got.Name, got.Container.Name)
	}
	ev = f.events(w.ID)
	if last := ev[len(ev)-1]; last.Type != agentproto.EventRename || last.Container.Name != "renamed" {
		t.Fatalf("rename event %+v", last)
	}

	two, mem := 2.0, int64(2048)
	got, err = f.c.Resize(f.ctx, w.ID, &two, &mem)
	if err != nil {
		t.Fatal(err)
	}
	if got.Assignment.Pinned().Size() != 2 || got.Assignment.Cells[0].Cell != cell || got.Resources.PCPU != 2 || got.Resources.MemoryMB != 2048 {
		t.Fatalf("resize: %+v %+v", got.Assignment, got.Resources)
	}
	if f.consumerUsed(w.ID, "PCPU") != 2 || f.consumerUsed(w.ID, "MEMORY_MB") != 2048 {
		t.Fatal("Placement not resized")
	}
	ev = f.events(w.ID)
	if last := ev[len(ev)-1]; last.Type != agentproto.EventUpdate || last.Container.CPU != 2 || last.Container.CpusetCpus != got.Assignment.Pinned().String() {
		t.Fatalf("update event %+v", last)
	}
	three := 3.0
	if _, err := f.c.Resize(f.ctx, w.ID, &three, nil); !errors.Is(err, bridge.ErrConflict) {
		t.Fatalf("resize beyond the cell: %v", err)
	}
	big := int64(8192)
	if _, err := f.c.Resize(f.ctx, w.ID, nil, &big); !errors.Is(err, bridge.ErrConflict) {
		t.Fatalf("resize beyond the host: %v", err)
	}
	if f.consumerUsed(w.ID, "PCPU") != 2 || f.consumerUsed(w.ID, "MEMORY_MB") != 2048 || f.pins() != 2 {
		t.Fatal("a refused resize changed the claim")
	}
	one := 1.0
	got, err = f.c.Resize(f.ctx, w.ID, &one, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.Assignment.Pinned().Size() != 1 || f.consumerUsed(w.ID, "PCPU") != 1 || f.pins() != 1 {
		t.Fatalf("shrink: %+v", got.Assignment)
	}

	if err := f.c.Delete(f.ctx, w.ID, false, true); err != nil {
		t.Fatal(err)
	}
	if _, err := f.c.Action(f.ctx, w.ID, agentproto.ActionStart, bridge.ActionArgs{}); !errors.Is(err, bridge.ErrConflict) {
		t.Fatalf("start while deleting: %v", err)
	}
}

func TestListAndGet(t *testing.T) {
	f := setup(t)
	f.register(bridgetest.TwoCells("h1"))
	var ids []string
	for i := range 3 {
		req := shared(1, 64)
		req.ProjectID = []string{"a", "b", "a"}[i]
		w, err := f.c.Create(f.ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, w.ID)
	}
	all, err := f.c.List(f.ctx, bridge.ListFilter{})
	if err != nil || len(all) != 3 {
		t.Fatalf("list: %d, %v", len(all), err)
	}
	for i, w := range all {
		if w.ID != ids[i] || w.Container == nil || w.Container.WorkloadID != w.ID {
			t.Fatalf("list %d: %+v", i, w)
		}
	}
	a, err := f.c.List(f.ctx, bridge.ListFilter{ProjectID: "a"})
	if err != nil || len(a) != 2 {
		t.Fatalf("project a: %d, %v", len(a), err)
	}
	page, err := f.c.List(f.ctx, bridge.ListFilter{Marker: ids[0], Limit: 1})
	if err != nil || len(page) != 1 || page[0].ID != ids[1] {
		t.Fatalf("page: %+v, %v", page, err)
	}
	if _, err := f.c.List(f.ctx, bridge.ListFilter{Marker: uuid.NewString()}); !errors.Is(err, bridge.ErrInvalid) {
		t.Fatalf("bad marker: %v", err)
	}
	if _, err := f.c.Get(f.ctx, "not-a-uuid"); !errors.Is(err, bridge.ErrNotFound) {
		t.Fatalf("get bad id: %v", err)
	}
}

func TestCreateHostAndDuplicate(t *testing.T) {
	f := setup(t)
	f.register(bridgetest.TwoCells("h1"))
	f.register(bridgetest.TwoCells("h2"))
	for _, tc := range []struct {
		name, host string
		want       error
	}{
		{"requested host", "h2", nil},
		{"requested host again", "h2", nil},
		{"unknown host", "h9", bridge.ErrNoValidHost},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := shared(1.5, 64)
			req.Host = tc.host
			w, err := f.c.Create(f.ctx, req)
			if !errors.Is(err, tc.want) && !(tc.want == nil && err == nil) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if tc.want == nil && (w.Host != tc.host || f.consumerUsed(w.ID, "VCPU") != 2) {
				t.Fatalf("host %q VCPU %d", w.Host, f.consumerUsed(w.ID, "VCPU"))
			}
		})
	}
	req := shared(1, 64)
	req.ID = strings.ToUpper(uuid.NewString())
	w, err := f.c.Create(f.ctx, req)
	if err != nil || w.ID != strings.ToLower(req.ID) {
		t.Fatalf("create with id: %v %q", err, w.ID)
	}
	if _, err := f.c.Create(f.ctx, req); !errors.Is(err, bridge.ErrConflict) {
		t.Fatalf("duplicate id: %v", err)
	}
	if got := f.scalar(`SELECT count(*) FROM bridge_workloads WHERE id = $1`, w.ID); got != 1 {
		t.Fatalf("%d rows for the id", got)
	}
	// Deleting twice sends the request again (force after a stuck stop).
	if err := f.c.Delete(f.ctx, w.ID, true, false); err != nil {
		t.Fatal(err)
	}
	if err := f.c.Delete(f.ctx, w.ID, false, true); err != nil {
		t.Fatal(err)
	}
	ev := f.events(w.ID)
	if len(ev) != 3 || ev[1].Type != agentproto.EventDelete || !ev[1].Stop || ev[2].Type != agentproto.EventDelete || !ev[2].Force {
		t.Fatalf("events %+v", ev)
	}
	if got := f.consumerUsed(w.ID, "VCPU"); got != 1 {
		t.Fatalf("deleting workload released early: VCPU %d", got)
	}
	// Shared resize: VCPU follows ceil(cpu), the cpuset stays the pool.
	s, err := f.c.Create(f.ctx, shared(1, 64))
	if err != nil {
		t.Fatal(err)
	}
	cpu := 2.5
	got, err := f.c.Resize(f.ctx, s.ID, &cpu, nil)
	if err != nil {
		t.Fatal(err)
	}
	if f.consumerUsed(s.ID, "VCPU") != 3 || got.Resources.VCPU != 3 || got.Container.CPU != 2.5 || got.Container.CpusetCpus != "0-1,4-5" {
		t.Fatalf("shared resize: VCPU %d %+v", f.consumerUsed(s.ID, "VCPU"), got.Container)
	}
}

func TestNaturalExitStaysStopped(t *testing.T) {
	f := setup(t)
	f.register(bridgetest.TwoCells("h1"))
	one := 1
	now := time.Now()
	for _, tc := range []struct {
		name        string
		restart     string
		eventID     int64
		exitCode    *int
		wantRunning bool
	}{
		{"exited by itself", "", 0, &one, false},
		{"on-failure gave up", "on-failure", 0, &one, false},
		{"docker restarts it", "always", 0, &one, true},
		{"unless-stopped", "unless-stopped", 0, &one, true},
		{"answer to an event", "", 7, &one, true},
		{"no exit code", "", 0, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := shared(1, 64)
			req.Container.Running = true
			req.Container.RestartPolicy.Name = tc.restart
			w, err := f.c.Create(f.ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			if err := f.c.Report(f.ctx, "h1", agentproto.Report{WorkloadID: w.ID, Status: agentproto.StatusRunning, ObservedAt: now}); err != nil {
				t.Fatal(err)
			}
			got, err := f.c.Get(f.ctx, w.ID)
			if err != nil || got.Container == nil || !got.Container.Running {
				t.Fatalf("before the exit: %+v, %v", got.Container, err)
			}
			r := agentproto.Report{WorkloadID: w.ID, Status: agentproto.StatusStopped, EventID: tc.eventID, ExitCode: tc.exitCode, ObservedAt: now.Add(time.Second)}
			if err := f.c.Report(f.ctx, "h1", r); err != nil {
				t.Fatal(err)
			}
			got, err = f.c.Get(f.ctx, w.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.State != ledger.StateStopped || got.Container.Running != tc.wantRunning {
				t.Fatalf("state %s, desired running %v, want stopped and %v", got.State, got.Container.Running, tc.wantRunning)
			}
			d, err := f.c.Desired(f.ctx, "h1")
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range d.Containers {
				if c.WorkloadID == w.ID && c.Running != tc.wantRunning {
					t.Fatalf("desired state says running=%v", c.Running)
				}
			}
		})
	}
}
