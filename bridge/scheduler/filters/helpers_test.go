package filters

import (
	"context"
	"testing"

	"github.com/unisched/unisched/bridge/scheduler"
	"k8s.io/utils/cpuset"
)

// check runs one filter over one host as the engine does, after the host
// went through scheduler.NewSnapshot.
func check(t *testing.T, f scheduler.Filter, req *scheduler.Request, h scheduler.HostState) scheduler.Verdict {
	t.Helper()
	if err := req.Validate(); err != nil {
		t.Fatalf("request: %v", err)
	}
	s, err := scheduler.NewSnapshot([]scheduler.HostState{h})
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	return f.Filter(context.Background(), req, s.Hosts()[0])
}

type want struct {
	code   scheduler.Code
	reason scheduler.Reason
}

func (w want) matches(v scheduler.Verdict) bool { return v.Code == w.code && v.Reason == w.reason }

var pass = want{code: scheduler.Pass}

func never(r scheduler.Reason) want  { return want{scheduler.NeverFits, r} }
func notNow(r scheduler.Reason) want { return want{scheduler.NoFitNow, r} }
func avoid(r scheduler.Reason) want  { return want{scheduler.Avoid, r} }

func sharedReq() *scheduler.Request {
	return &scheduler.Request{ID: "r", Kind: scheduler.KindVM, Resources: scheduler.Resources{VCPU: 2, MemoryMB: 1024, DiskGB: 10}}
}

func dedicatedReq() *scheduler.Request {
	return &scheduler.Request{ID: "r", Kind: scheduler.KindContainer, CPUPolicy: scheduler.CPUDedicated, Resources: scheduler.Resources{PCPU: 2, MemoryMB: 1024}}
}

// twoCellHost has cells {0-3} and {4-7}, all CPUs in both pools.
func twoCellHost() scheduler.HostState {
	return scheduler.HostState{
		Name:          "h",
		DedicatedCPUs: cpuset.New(0, 1, 2, 3, 4, 5, 6, 7),
		SharedCPUs:    cpuset.New(0, 1, 2, 3, 4, 5, 6, 7),
		Cells: []scheduler.NUMACell{
			{ID: 0, CPUs: cpuset.New(0, 1, 2, 3), MemoryMB: 4096},
			{ID: 1, CPUs: cpuset.New(4, 5, 6, 7), MemoryMB: 4096},
		},
		Inventories: map[scheduler.ResourceClass]scheduler.Inventory{
			scheduler.VCPU:     {Total: 8, AllocationRatio: 4},
			scheduler.PCPU:     {Total: 8, AllocationRatio: 1},
			scheduler.MemoryMB: {Total: 8192, AllocationRatio: 1},
			scheduler.DiskGB:   {Total: 100, AllocationRatio: 1},
		},
	}
}

func TestRegister(t *testing.T) {
	r := scheduler.NewRegistry()
	if err := Register(r); err != nil {
		t.Fatal(err)
	}
	for _, name := range r.FilterNames() {
		cfg := scheduler.Config{Thresholds: scheduler.DefaultThresholds(), Filters: []scheduler.PluginConfig{{Name: name}}}
		if _, err := r.Build(cfg); err != nil {
			t.Errorf("filter %s with no arguments: %v", name, err)
		}
		cfg.Filters[0].Args = scheduler.Args{"bogus": 1}
		if _, err := r.Build(cfg); err == nil {
			t.Errorf("filter %s accepted an unknown argument", name)
		}
	}
	if err := Register(r); err == nil {
		t.Errorf("registering twice succeeded")
	}
}
