package filters

import (
	"testing"

	"github.com/unisched/unisched/bridge/scheduler"
)

func TestPoolPressure(t *testing.T) {
	def := scheduler.DefaultThresholds()
	tests := []struct {
		name     string
		th       scheduler.Thresholds
		pcpuUsed int64
		vcpuUsed int64
		req      *scheduler.Request
		want     want
	}{
		{"shared, dedicated pool half pinned", def, 4, 0, sharedReq(), pass},
		{"shared, dedicated pool over threshold 1", def, 5, 0, sharedReq(), avoid(scheduler.ReasonDedicatedPressure)},
		{"shared, threshold 1 at 1 never avoids", scheduler.Thresholds{DedicatedUsage: 1, SharedLoad: 0.5}, 8, 0, sharedReq(), pass},
		{"dedicated ignores dedicated usage", def, 7, 0, dedicatedReq(), pass},
		{"dedicated, shared pool half loaded", def, 0, 16, dedicatedReq(), pass},
		{"dedicated, shared pool over threshold 2", def, 0, 17, dedicatedReq(), avoid(scheduler.ReasonSharedPressure)},
		{"dedicated, threshold 2 at 0 avoids any load", scheduler.Thresholds{DedicatedUsage: 0.5, SharedLoad: 0}, 0, 1, dedicatedReq(), avoid(scheduler.ReasonSharedPressure)},
		{"shared ignores shared load", def, 0, 31, sharedReq(), pass},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := NewPoolPressure(nil, tt.th)
			if err != nil {
				t.Fatal(err)
			}
			h := twoCellHost() // 8 PCPU; 8 VCPU at ratio 4 = 32
			p, v := h.Inventories[scheduler.PCPU], h.Inventories[scheduler.VCPU]
			p.Used, v.Used = tt.pcpuUsed, tt.vcpuUsed
			h.Inventories[scheduler.PCPU], h.Inventories[scheduler.VCPU] = p, v
			if got := check(t, f, tt.req, h); !tt.want.matches(got) {
				t.Errorf("verdict %v %q, want %+v", got.Code, got.Reason, tt.want)
			}
		})
	}
	if _, err := NewPoolPressure(nil, scheduler.Thresholds{DedicatedUsage: 1.5}); err == nil {
		t.Errorf("threshold 1.5 accepted")
	}
}
