package filters

import (
	"testing"

	"github.com/unisched/unisched/bridge/scheduler"
	"k8s.io/utils/cpuset"
)

// The placement rules themselves are tested in package scheduler; this
// table checks the filter reports them for both policies.
func TestNUMA(t *testing.T) {
	f, err := NewNUMA(nil, scheduler.DefaultThresholds())
	if err != nil {
		t.Fatal(err)
	}
	pinnedCell0 := twoCellHost()
	pinnedCell0.Cells[0].Pinned = []scheduler.Pin{{Workload: "w", CPUs: cpuset.New(0, 1, 2)}}
	pinnedAll := twoCellHost()
	pinnedAll.Cells[0].Pinned = []scheduler.Pin{{Workload: "w", CPUs: cpuset.New(0, 1, 2)}}
	pinnedAll.Cells[1].Pinned = []scheduler.Pin{{Workload: "v", CPUs: cpuset.New(4, 5, 6)}}
	split := dedicatedReq()
	split.Resources.PCPU = 2
	bare := twoCellHost()
	bare.Cells, bare.DedicatedCPUs, bare.SharedCPUs = nil, cpuset.New(), cpuset.New()
	big := dedicatedReq()
	big.Resources.PCPU = 6
	tests := []struct {
		name string
		host scheduler.HostState
		req  *scheduler.Request
		want want
	}{
		{"dedicated fits cell 1", pinnedCell0, split, pass},
		{"dedicated: free pCPUs split over cells do not add up", pinnedAll, dedicatedReq(), notNow(scheduler.ReasonCellCPUs)},
		{"dedicated larger than a cell", twoCellHost(), big, never(scheduler.ReasonCellTooSmall)},
		{"dedicated on a host without topology", bare, dedicatedReq(), never(scheduler.ReasonNoNUMATopology)},
		{"shared on a host without topology", bare, sharedReq(), pass},
		{"shared with two CPUs left in the pool", pinnedAll, sharedReq(), pass},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if v := check(t, f, tt.req, tt.host); !tt.want.matches(v) {
				t.Errorf("verdict %v %q, want %+v", v.Code, v.Reason, tt.want)
			}
		})
	}
}
