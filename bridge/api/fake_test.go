package api

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/unisched/unisched/bridge"
	"github.com/unisched/unisched/bridge/agentproto"
	"github.com/unisched/unisched/bridge/ledger"
)

// fakeServiceForHTTPMapping stands in for the coordinator in the tests
// of this package's HTTP mapping only (status codes, error bodies, who
// may see what): it keeps workloads in a map and answers with whatever
// error a test plants. Scheduling and claiming are tested against the
// real coordinator on PostgreSQL.
type fakeServiceForHTTPMapping struct {
	mu        sync.Mutex
	workloads map[string]bridge.Workload
	order     []string
	// err, when set, is what every call returns.
	err error
	// noValidHost names the workloads Create leaves in state error.
	noValidHost map[string]bool
	calls       []string
	lastCreate  []bridge.CreateRequest
	lastList    bridge.ListFilter
	lastDelete  [2]bool
	lastReg     agentproto.Registration
	lastReport  agentproto.Report
}

func newFake() *fakeServiceForHTTPMapping {
	return &fakeServiceForHTTPMapping{workloads: map[string]bridge.Workload{}, noValidHost: map[string]bool{}}
}

func (f *fakeServiceForHTTPMapping) record(call string) error {
	f.calls = append(f.calls, call)
	return f.err
}

func (f *fakeServiceForHTTPMapping) Create(_ context.Context, req bridge.CreateRequest) (bridge.Workload, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastCreate = append(f.lastCreate, req)
	if err := f.record("Create"); err != nil {
		return bridge.Workload{}, err
	}
	now := time.Now()
	wl := bridge.Workload{Workload: ledger.Workload{
		ID: req.ID, Kind: req.Kind, Name: req.Name, ProjectID: req.ProjectID, UserID: req.UserID,
		State: ledger.StateClaimed, CPUPolicy: req.CPUPolicy, RequestID: req.RequestID, CreatedAt: now, UpdatedAt: now,
	}, Container: req.Container}
	wl.Resources.MemoryMB = req.MemoryMB
	if req.CPUPolicy == "dedicated" {
		wl.Resources.PCPU = int64(req.CPU)
	} else {
		wl.Resources.VCPU = int64(req.CPU + 0.999)
	}
	var err error
	if f.noValidHost[req.Name] {
		wl.State, wl.StatusReason = ledger.StateError, "There are not enough hosts available."
		err = fmt.Errorf("scheduling %s: %w", req.ID, bridge.ErrNoValidHost)
	} else {
		wl.Host = "host1"
		wl.Assignment.Host = "host1"
	}
	f.workloads[wl.ID] = wl
	f.order = append(f.order, wl.ID)
	return wl, err
}

func (f *fakeServiceForHTTPMapping) Get(_ context.Context, id string) (bridge.Workload, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("Get"); err != nil {
		return bridge.Workload{}, err
	}
	wl, ok := f.workloads[id]
	if !ok {
		return wl, fmt.Errorf("workload %s: %w", id, bridge.ErrNotFound)
	}
	return wl, nil
}

func (f *fakeServiceForHTTPMapping) List(_ context.Context, lf bridge.ListFilter) ([]bridge.Workload, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastList = lf
	if err := f.record("List"); err != nil {
		return nil, err
	}
	var out []bridge.Workload
	for _, id := range f.order {
		wl, ok := f.workloads[id]
		if !ok || (lf.ProjectID != "" && wl.ProjectID != lf.ProjectID) || (lf.Kind != "" && wl.Kind != lf.Kind) {
			continue
		}
		out = append(out, wl)
	}
	return out, nil
}

func (f *fakeServiceForHTTPMapping) Action(context.Context, string, string, bridge.ActionArgs) (bridge.Workload, error) {
	return bridge.Workload{}, f.record("Action")
}

func (f *fakeServiceForHTTPMapping) Resize(context.Context, string, *float64, *int64) (bridge.Workload, error) {
	return bridge.Workload{}, f.record("Resize")
}

func (f *fakeServiceForHTTPMapping) Rename(context.Context, string, string) (bridge.Workload, error) {
	return bridge.Workload{}, f.record("Rename")
}

func (f *fakeServiceForHTTPMapping) Delete(_ context.Context, id string, stop, force bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastDelete = [2]bool{stop, force}
	if err := f.record("Delete"); err != nil {
		return err
	}
	if _, ok := f.workloads[id]; !ok {
		return fmt.Errorf("workload %s: %w", id, bridge.ErrNotFound)
	}
	delete(f.workloads, id)
	f.order = slices.DeleteFunc(f.order, func(s string) bool { return s == id })
	return nil
}

func (f *fakeServiceForHTTPMapping) RegisterHost(_ context.Context, reg agentproto.Registration) (agentproto.RegistrationResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastReg = reg
	if err := f.record("RegisterHost"); err != nil {
		return agentproto.RegistrationResult{}, err
	}
	return agentproto.RegistrationResult{ProviderUUID: "5d9f5f0e-8a55-4b8e-9a6b-3f1d2b8a7c10", OwnsInventory: true}, nil
}

func (f *fakeServiceForHTTPMapping) Report(_ context.Context, _ string, rep agentproto.Report) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastReport = rep
	return f.record("Report")
}

func (f *fakeServiceForHTTPMapping) Desired(_ context.Context, host string) (agentproto.Desired, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.record("Desired"); err != nil {
		return agentproto.Desired{}, err
	}
	return agentproto.Desired{Host: host, SharedCPUs: "0-3"}, nil
}

func (f *fakeServiceForHTTPMapping) AgentURL(context.Context, string) (string, error) {
	return "", f.record("AgentURL")
}

func (f *fakeServiceForHTTPMapping) ListHosts(context.Context) ([]bridge.HostInfo, error) {
	return nil, f.record("ListHosts")
}

func (f *fakeServiceForHTTPMapping) callCount(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.calls {
		if c == name {
			n++
		}
	}
	return n
}
