package weighers

import (
	"testing"

	"github.com/unisched/unisched/bridge/scheduler"
)

func TestSoftAffinity(t *testing.T) {
	w, _ := NewSoftAffinity(nil, scheduler.DefaultThresholds())
	with := func(name string, n int) scheduler.HostState {
		h := loaded(name, 0, 0)
		for i := 0; i < n; i++ {
			h.Workloads = append(h.Workloads, scheduler.Workload{ID: name + string(rune('0'+i)), Group: "g"})
		}
		return h
	}
	hosts := []scheduler.HostState{with("a", 1), with("b", 3), with("c", 0)}
	tests := []struct {
		name   string
		policy scheduler.GroupPolicy
		want   []float64
	}{
		{"soft-affinity counts members", scheduler.SoftAffinity, []float64{1, 3, 0}},
		{"soft-anti-affinity counts against", scheduler.SoftAntiAffinity, []float64{-1, -3, 0}},
		{"hard policies score nothing", scheduler.AntiAffinity, []float64{0, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := req()
			r.Group = &scheduler.Group{ID: "g", Policy: tt.policy}
			got := weigh(t, w, r, hosts)
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("scores %v, want %v", got, tt.want)
				}
			}
		})
	}
	if s := weigh(t, w, req(), hosts); s[0] != 0 || s[1] != 0 {
		t.Errorf("no group: %v", s)
	}
}
