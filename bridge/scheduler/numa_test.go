package scheduler

import (
	"slices"
	"testing"

	"k8s.io/utils/cpuset"
)

func TestPickCPUs(t *testing.T) {
	tests := []struct {
		name     string
		cpus     string
		siblings []string
		free     string
		n        int
		want     []int
		split    int
	}{
		{"whole core first", "0-7", []string{"0,4", "1,5", "2,6", "3,7"}, "0-7", 2, []int{0, 4}, 0},
		{"two whole cores", "0-7", []string{"0,4", "1,5", "2,6", "3,7"}, "0-7", 4, []int{0, 4, 1, 5}, 0},
		{"odd count splits one core", "0-7", []string{"0,4", "1,5", "2,6", "3,7"}, "0-7", 3, []int{0, 4, 1}, 1},
		{"odd remainder takes a broken core", "0-7", []string{"0,4", "1,5", "2,6", "3,7"}, "0-3,5-7", 3, []int{1, 5, 0}, 1},
		{"one cpu from a broken core keeps whole cores whole", "0-7", []string{"0,4", "1,5", "2,6", "3,7"}, "1-3,5-7,0", 1, []int{0}, 1},
		{"skips a core with a pinned sibling for a pair", "0-7", []string{"0,4", "1,5", "2,6", "3,7"}, "0,1,5,2,6", 2, []int{1, 5}, 0},
		{"only broken cores", "0-3", []string{"0,2", "1,3"}, "0,3", 2, []int{0, 3}, 2},
		{"no hyperthreads", "0-3", nil, "0-3", 3, []int{0, 1, 2}, 0},
		{"smt4 partial core covering all", "0-7", []string{"0-3", "4-7"}, "0-3,5-7", 3, []int{5, 6, 7}, 1},
		{"smt4 splits one whole core rather than three broken", "0-11", []string{"0-3", "4-7", "8-11"}, "0,4,8-11", 3, []int{8, 9, 10}, 1},
		{"mixed widths: wide core then single", "0-2", []string{"0,1"}, "0-2", 3, []int{0, 1, 2}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cell := NUMACell{CPUs: cpus(t, tt.cpus)}
			for _, s := range tt.siblings {
				cell.Siblings = append(cell.Siblings, cpus(t, s))
			}
			got, split := pickCPUs(cellCores(cell, cpus(t, tt.free)), tt.n)
			if !slices.Equal(got, tt.want) || split != tt.split {
				t.Errorf("pickCPUs = %v split %d, want %v split %d", got, split, tt.want, tt.split)
			}
		})
	}
}

// TestPlaceTwoCells is the scenario on the placement level: two
// single-CPU cells; the first dedicated request takes cell 0, the second
// cell 1, the third finds no cell.
func TestPlaceTwoCells(t *testing.T) {
	h := HostState{
		Name:          "two",
		DedicatedCPUs: cpuset.New(0, 1),
		SharedCPUs:    cpuset.New(0, 1),
		Cells: []NUMACell{
			{ID: 0, CPUs: cpuset.New(0), MemoryMB: 1024},
			{ID: 1, CPUs: cpuset.New(1), MemoryMB: 1024},
		},
	}
	req := dedicated(1, 256)
	for i, want := range []int{0, 1} {
		p, v := Place(req, prepared(t, h))
		if v.Code != Pass {
			t.Fatalf("request %d: verdict %v %s", i, v.Code, v.Reason)
		}
		if got := p.Mems(); !got.Equals(cpuset.New(want)) || !p.CPUs.Equals(cpuset.New(want)) || !p.Dedicated {
			t.Fatalf("request %d: cells %s cpus %s, want cell and cpu %d", i, got, p.CPUs, want)
		}
		h.Cells[want].Pinned = append(h.Cells[want].Pinned, Pin{Workload: "w", CPUs: p.CPUs})
		h.Cells[want].MemoryUsedMB += 256
	}
	_, v := Place(req, prepared(t, h))
	if v.Code != NoFitNow || v.Reason != ReasonCellCPUs {
		t.Fatalf("third request: %v %q, want no-fit-now %q", v.Code, v.Reason, ReasonCellCPUs)
	}
	if v := CheckPlacement(req, prepared(t, h)); v.Code != NoFitNow {
		t.Fatalf("CheckPlacement disagrees with Place: %v", v.Code)
	}
}

func TestPlace(t *testing.T) {
	noTopology := HostState{Name: "bare", Inventories: map[ResourceClass]Inventory{VCPU: {Total: 4, AllocationRatio: 1}}}
	dedicatedOnly := smtHost(t, nil)
	dedicatedOnly.SharedCPUs = cpuset.New()
	allPinned := smtHost(t, map[int]string{0: "0-3", 1: "4-7"})
	noDedicated := smtHost(t, nil)
	noDedicated.DedicatedCPUs = cpuset.New()
	fullMemory := smtHost(t, nil)
	fullMemory.Cells[0].MemoryUsedMB, fullMemory.Cells[1].MemoryUsedMB = 4000, 4000
	twoNUMA := dedicated(4, 2048)
	twoNUMA.NUMA = NUMANeeds{Cells: 2, MemoryMB: []int64{1536, 512}}
	sharedNUMA := shared(2, 1024)
	sharedNUMA.NUMA.Cells = 1
	memHeavy := smtHost(t, nil)
	memHeavy.Cells[1].MemoryUsedMB = 3000
	tests := []struct {
		name     string
		host     HostState
		req      *Request
		code     Code
		reason   Reason
		cells    []int
		cpus     string
		split    int
		cellCPUs []string
	}{
		{"dedicated pair on an empty host: cell 0, one whole core", smtHost(t, nil), dedicated(2, 512), Pass, "", []int{0}, "0-1", 0, nil},
		{"tighter cell wins", smtHost(t, map[int]string{0: "0"}), dedicated(2, 512), Pass, "", []int{0}, "2-3", 0, nil},
		{"whole cores beat a tighter cell", smtHost(t, map[int]string{0: "1,3"}), dedicated(2, 512), Pass, "", []int{1}, "4-5", 0, nil},
		{"three pCPUs: broken core in cell 0", smtHost(t, map[int]string{0: "1"}), dedicated(3, 512), Pass, "", []int{0}, "0,2-3", 1, nil},
		{"two guest cells, memory as asked", smtHost(t, nil), twoNUMA, Pass, "", []int{0, 1}, "0-1,4-5", 0, []string{"0-1", "4-5"}},
		{"larger than any cell", smtHost(t, nil), dedicated(5, 512), NeverFits, ReasonCellTooSmall, nil, "", 0, nil},
		{"more memory than any cell", smtHost(t, nil), dedicated(1, 5000), NeverFits, ReasonCellTooSmall, nil, "", 0, nil},
		{"no topology", noTopology, dedicated(1, 1), NeverFits, ReasonNoNUMATopology, nil, "", 0, nil},
		{"no dedicated pool", noDedicated, dedicated(1, 1), NeverFits, ReasonNoDedicatedPool, nil, "", 0, nil},
		{"too few cells", smtHost(t, nil), func() *Request { r := dedicated(3, 3); r.NUMA.Cells = 3; return r }(), NeverFits, ReasonTooFewCells, nil, "", 0, nil},
		{"cells pinned", allPinned, dedicated(1, 1), NoFitNow, ReasonCellCPUs, nil, "", 0, nil},
		{"cells out of memory", fullMemory, dedicated(1, 512), NoFitNow, ReasonCellMemory, nil, "", 0, nil},
		{"shared floats over the unpinned shared pool", smtHost(t, map[int]string{0: "0-1"}), shared(2, 512), Pass, "", nil, "2-7", 0, nil},
		{"shared on a host without pools is unrestricted", noTopology, shared(2, 512), Pass, "", nil, "", 0, nil},
		{"shared with no shared pool", dedicatedOnly, shared(1, 1), NeverFits, ReasonNoSharedPool, nil, "", 0, nil},
		{"shared pool all pinned", allPinned, shared(1, 1), NoFitNow, ReasonSharedPinned, nil, "", 0, nil},
		{"shared NUMA takes the tightest cell by memory", memHeavy, sharedNUMA, Pass, "", []int{1}, "4-7", 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := prepared(t, tt.host)
			p, v := Place(tt.req, h)
			if v.Code != tt.code || v.Reason != tt.reason {
				t.Fatalf("verdict %v %q, want %v %q", v.Code, v.Reason, tt.code, tt.reason)
			}
			if cv := CheckPlacement(tt.req, h); cv != v {
				t.Fatalf("CheckPlacement %v %q differs from Place", cv.Code, cv.Reason)
			}
			if v.Code != Pass {
				return
			}
			var cells []int
			for _, c := range p.Cells {
				cells = append(cells, c.Cell)
			}
			if !slices.Equal(cells, tt.cells) || p.CPUs.String() != tt.cpus || p.SplitCores != tt.split {
				t.Fatalf("placement cells %v cpus %q split %d, want %v %q %d", cells, p.CPUs, p.SplitCores, tt.cells, tt.cpus, tt.split)
			}
			for i, want := range tt.cellCPUs {
				if got := p.Cells[i].CPUs.String(); got != want {
					t.Errorf("cell %d cpus %q, want %q", i, got, want)
				}
			}
		})
	}
}

func TestPlaceMemoryPerCell(t *testing.T) {
	h := smtHost(t, nil)
	h.Cells[0].MemoryUsedMB = 3000 // cell 0 has 1096 MB free, cell 1 4096
	req := dedicated(4, 2048)
	req.NUMA = NUMANeeds{Cells: 2, MemoryMB: []int64{512, 1536}}
	p, v := Place(req, prepared(t, h))
	if v.Code != Pass {
		t.Fatalf("verdict %v %s", v.Code, v.Reason)
	}
	// The 1536 MB guest cell only fits host cell 1; the 512 MB one gets cell 0.
	if p.Cells[0].Cell != 0 || p.Cells[0].MemoryMB != 512 || p.Cells[1].Cell != 1 || p.Cells[1].MemoryMB != 1536 {
		t.Fatalf("cells %+v", p.Cells)
	}
}
