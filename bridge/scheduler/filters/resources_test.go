package filters

import (
	"testing"

	"github.com/unisched/unisched/bridge/scheduler"
)

func TestResources(t *testing.T) {
	f, err := NewResources(nil, scheduler.DefaultThresholds())
	if err != nil {
		t.Fatal(err)
	}
	type inv = scheduler.Inventory
	tests := []struct {
		name string
		set  map[scheduler.ResourceClass]inv
		req  *scheduler.Request
		want want
	}{
		{"fits", nil, sharedReq(), pass},
		{"VCPU overcommitted within ratio", map[scheduler.ResourceClass]inv{scheduler.VCPU: {Total: 8, AllocationRatio: 4, Used: 30}}, sharedReq(), pass},
		{"VCPU full", map[scheduler.ResourceClass]inv{scheduler.VCPU: {Total: 8, AllocationRatio: 4, Used: 31}}, sharedReq(), notNow(scheduler.ReasonVCPU)},
		{"reserved memory counts", map[scheduler.ResourceClass]inv{scheduler.MemoryMB: {Total: 2048, Reserved: 1536, AllocationRatio: 1}}, sharedReq(), never(scheduler.ReasonMemoryMB)},
		{"memory used", map[scheduler.ResourceClass]inv{scheduler.MemoryMB: {Total: 2048, AllocationRatio: 1, Used: 1500}}, sharedReq(), notNow(scheduler.ReasonMemoryMB)},
		{"disk larger than the host", map[scheduler.ResourceClass]inv{scheduler.DiskGB: {Total: 5, AllocationRatio: 1}}, sharedReq(), never(scheduler.ReasonDiskGB)},
		{"max_unit", map[scheduler.ResourceClass]inv{scheduler.DiskGB: {Total: 100, AllocationRatio: 1, MaxUnit: 5}}, sharedReq(), never(scheduler.ReasonUnit)},
		{"step_size", map[scheduler.ResourceClass]inv{scheduler.DiskGB: {Total: 100, AllocationRatio: 1, StepSize: 4}}, sharedReq(), never(scheduler.ReasonUnit)},
		{"no PCPU inventory", map[scheduler.ResourceClass]inv{scheduler.PCPU: {Total: 0, AllocationRatio: 1}}, dedicatedReq(), never(scheduler.ReasonPCPU)},
		{"PCPU taken", map[scheduler.ResourceClass]inv{scheduler.PCPU: {Total: 8, AllocationRatio: 1, Used: 7}}, dedicatedReq(), notNow(scheduler.ReasonPCPU)},
		{"dedicated ignores VCPU", map[scheduler.ResourceClass]inv{scheduler.VCPU: {Total: 8, AllocationRatio: 1, Used: 8}}, dedicatedReq(), pass},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := twoCellHost()
			for rc, i := range tt.set {
				h.Inventories[rc] = i
			}
			if v := check(t, f, tt.req, h); !tt.want.matches(v) {
				t.Errorf("verdict %v %q, want %+v", v.Code, v.Reason, tt.want)
			}
		})
	}
	h := twoCellHost()
	delete(h.Inventories, scheduler.DiskGB)
	if v := check(t, f, sharedReq(), h); !never(scheduler.ReasonDiskGB).matches(v) {
		t.Errorf("host without DISK_GB: %v %q", v.Code, v.Reason)
	}
}
