package zunext

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/unisched/unisched/bridge"
	"github.com/unisched/unisched/bridge/agentproto"
	"github.com/unisched/unisched/bridge/ledger"
	"github.com/unisched/unisched/bridge/scheduler"
)

// fakeService is an in-memory stand-in for the coordinator, for testing
// the HTTP layer alone: it places every container on host "host1" unless
// the request names "nowhere" (no valid host).
type fakeService struct {
	mu        sync.Mutex
	workloads map[string]*bridge.Workload
	order     []string
	actions   []string
	deletes   []string
	resizes   []string
	agents    map[string]string
	hosts     []bridge.HostInfo
	last      bridge.CreateRequest
	clock     time.Time
}

var _ bridge.Service = (*fakeService)(nil)

func newFakeService() *fakeService {
	return &fakeService{workloads: map[string]*bridge.Workload{}, agents: map[string]string{},
		clock: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (f *fakeService) Create(ctx context.Context, req bridge.CreateRequest) (bridge.Workload, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.last = req
	if req.ID == "" {
		req.ID = uuid.NewString()
	}
	f.clock = f.clock.Add(time.Second)
	w := &bridge.Workload{Workload: ledger.Workload{ID: req.ID, Kind: req.Kind, Name: req.Name, ProjectID: req.ProjectID,
		UserID: req.UserID, CPUPolicy: req.CPUPolicy, Spec: req.Spec, CreatedAt: f.clock, UpdatedAt: f.clock,
		Resources: scheduler.Resources{MemoryMB: req.MemoryMB, DiskGB: req.DiskGB}}}
	if req.Container != nil {
		c := *req.Container
		w.Container = &c
	}
	f.workloads[w.ID] = w
	f.order = append(f.order, w.ID)
	if req.Host == "nowhere" {
		w.State, w.StatusReason = ledger.StateError, "There are not enough hosts available."
		return *w, fmt.Errorf("scheduling: %w", bridge.ErrNoValidHost)
	}
	w.State, w.Host = ledger.StateClaimed, "host1"
	if req.Host != "" {
		w.Host = req.Host
	}
	return *w, nil
}

func (f *fakeService) Get(ctx context.Context, id string) (bridge.Workload, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w, ok := f.workloads[id]
	if !ok {
		return bridge.Workload{}, fmt.Errorf("workload %s: %w", id, bridge.ErrNotFound)
	}
	return *w, nil
}

func (f *fakeService) List(ctx context.Context, lf bridge.ListFilter) ([]bridge.Workload, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []bridge.Workload
	for _, id := range f.order {
		w, ok := f.workloads[id]
		if !ok || (lf.ProjectID != "" && w.ProjectID != lf.ProjectID) || (lf.Kind != "" && w.Kind != lf.Kind) ||
			(lf.Name != "" && w.Name != lf.Name) || (lf.Host != "" && w.Host != lf.Host) {
			continue
		}
		out = append(out, *w)
	}
	return out, nil
}

func (f *fakeService) Action(ctx context.Context, id, action string, args bridge.ActionArgs) (bridge.Workload, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w, ok := f.workloads[id]
	if !ok {
		return bridge.Workload{}, bridge.ErrNotFound
	}
	f.actions = append(f.actions, fmt.Sprintf("%s %s %s %d", id, action, args.Signal, args.Timeout))
	if w.Container != nil {
		switch action {
		case agentproto.ActionStart, agentproto.ActionReboot:
			w.Container.Running = true
		case agentproto.ActionStop, agentproto.ActionKill:
			w.Container.Running = false
		}
	}
	return *w, nil
}

func (f *fakeService) Resize(ctx context.Context, id string, cpu *float64, memoryMB *int64) (bridge.Workload, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w, ok := f.workloads[id]
	if !ok {
		return bridge.Workload{}, bridge.ErrNotFound
	}
	if memoryMB != nil && *memoryMB > 4096 {
		return bridge.Workload{}, fmt.Errorf("resize: %w", bridge.ErrNoValidHost)
	}
	f.resizes = append(f.resizes, id)
	if cpu != nil {
		w.Container.CPU = *cpu
	}
	if memoryMB != nil {
		w.Container.MemoryMB = *memoryMB
		w.Resources.MemoryMB = *memoryMB
	}
	return *w, nil
}

func (f *fakeService) Rename(ctx context.Context, id, name string) (bridge.Workload, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w, ok := f.workloads[id]
	if !ok {
		return bridge.Workload{}, bridge.ErrNotFound
	}
	w.Name = name
	if w.Container != nil {
		w.Container.Name = name
	}
	return *w, nil
}

func (f *fakeService) Delete(ctx context.Context, id string, stop, force bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	w, ok := f.workloads[id]
	if !ok {
		return bridge.ErrNotFound
	}
	f.deletes = append(f.deletes, fmt.Sprintf("%s stop=%v force=%v", id, stop, force))
	w.State = ledger.StateDeleting
	return nil
}

func (f *fakeService) RegisterHost(context.Context, agentproto.Registration) (agentproto.RegistrationResult, error) {
	return agentproto.RegistrationResult{}, errors.New("fake: not used")
}

func (f *fakeService) Report(context.Context, string, agentproto.Report) error {
	return errors.New("fake: not used")
}

func (f *fakeService) Desired(context.Context, string) (agentproto.Desired, error) {
	return agentproto.Desired{}, errors.New("fake: not used")
}

func (f *fakeService) AgentURL(ctx context.Context, host string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u, ok := f.agents[host]
	if !ok {
		return "", bridge.ErrNotFound
	}
	return u, nil
}

func (f *fakeService) ListHosts(ctx context.Context) ([]bridge.HostInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.hosts), nil
}

// setRuntime records an agent report.
func (f *fakeService) setRuntime(id, status, reason string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w := f.workloads[id]
	w.Runtime = bridge.Runtime{Status: status, Reason: reason}
	switch status {
	case agentproto.StatusRunning:
		w.State = ledger.StateActive
	case agentproto.StatusStopped:
		w.State = ledger.StateStopped
	}
}

// apiCall is one request to the handler.
type apiCall struct {
	method, path, token, version, body string
	header                             map[string]string
}

type apiResult struct {
	status int
	header http.Header
	body   []byte
}

func (r apiResult) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body %q is not a JSON object: %v", r.body, err)
	}
	return m
}

// errorOf returns the first element of a Zun error body.
func (r apiResult) errorOf(t *testing.T) map[string]any {
	t.Helper()
	m := r.json(t)
	errs, ok := m["errors"].([]any)
	if !ok || len(errs) != 1 {
		t.Fatalf("no errors list in %s", r.body)
	}
	return errs[0].(map[string]any)
}

func do(t *testing.T, h http.Handler, c apiCall) apiResult {
	t.Helper()
	var body io.Reader
	if c.body != "" {
		body = strings.NewReader(c.body)
	}
	req := httptest.NewRequest(c.method, "http://zun.test"+c.path, body)
	if c.token != "-" {
		tok := c.token
		if tok == "" {
			tok = "admin:admin"
		}
		req.Header.Set("X-Auth-Token", tok)
	}
	if c.version != "" {
		req.Header.Set(versionHeader, c.version)
	}
	if c.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return apiResult{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
}

func newTestHandler(t *testing.T) (http.Handler, *fakeService) {
	t.Helper()
	svc := newFakeService()
	return NewHandler(svc, Options{Now: func() time.Time { return svc.clock }}), svc
}

const latest = "container 1.40"

// create runs a container as project's member and returns its view.
func create(t *testing.T, h http.Handler, token, body string) map[string]any {
	t.Helper()
	res := do(t, h, apiCall{method: "POST", path: "/v1/containers", token: token, version: latest, body: body})
	if res.status != http.StatusAccepted {
		t.Fatalf("create %s: %d %s", body, res.status, res.body)
	}
	return res.json(t)
}

func newRecorder() *httptest.ResponseRecorder { return httptest.NewRecorder() }
