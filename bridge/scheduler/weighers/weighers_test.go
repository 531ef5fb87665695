package weighers

import (
	"context"
	"testing"

	"github.com/unisched/unisched/bridge/scheduler"
)

// weigh scores hosts with the given (VCPU used, MEMORY_MB used) through a
// real snapshot.
func weigh(t *testing.T, w scheduler.Weigher, req *scheduler.Request, hosts []scheduler.HostState) []float64 {
	t.Helper()
	if err := req.Validate(); err != nil {
		t.Fatal(err)
	}
	s, err := scheduler.NewSnapshot(hosts)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float64, s.Len())
	for i, h := range s.Hosts() {
		out[i] = w.Weigh(context.Background(), req, h)
	}
	return out
}

// loaded is a host of 10 VCPU and 1000 MB with the given usage.
func loaded(name string, vcpu, mem int64) scheduler.HostState {
	return scheduler.HostState{Name: name, Inventories: map[scheduler.ResourceClass]scheduler.Inventory{
		scheduler.VCPU:     {Total: 10, AllocationRatio: 1, Used: vcpu},
		scheduler.MemoryMB: {Total: 1000, AllocationRatio: 1, Used: mem},
	}}
}

func req() *scheduler.Request {
	return &scheduler.Request{ID: "r", Kind: scheduler.KindContainer, Resources: scheduler.Resources{VCPU: 1, MemoryMB: 100}}
}

// best returns the index of the highest score (the first on ties).
func best(s []float64) int {
	b := 0
	for i := range s {
		if s[i] > s[b] {
			b = i
		}
	}
	return b
}

func TestRegister(t *testing.T) {
	r := scheduler.NewRegistry()
	if err := Register(r); err != nil {
		t.Fatal(err)
	}
	for _, name := range r.WeigherNames() {
		cfg := scheduler.Config{Thresholds: scheduler.DefaultThresholds(), Weighers: []scheduler.PluginConfig{{Name: name}}}
		if _, err := r.Build(cfg); err != nil {
			t.Errorf("weigher %s: %v", name, err)
		}
		cfg.Weighers[0].Args = scheduler.Args{"bogus": true}
		if _, err := r.Build(cfg); err == nil {
			t.Errorf("weigher %s accepted an unknown argument", name)
		}
	}
}
