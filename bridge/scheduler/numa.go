package scheduler

import (
	"slices"

	"k8s.io/utils/cpuset"
)

// Placement says where on a host a workload goes: what the coordinator
// records in the ledger and hands to the VM or container manager (for
// Docker: CpusetCpus = CPUs, CpusetMems = Mems()).
type Placement struct {
	// Dedicated is true when CPUs are pinned pCPUs held by the workload
	// alone; false when CPUs is the shared pool it floats over.
	Dedicated bool
	// CPUs: the pinned pCPUs (dedicated) or the shared cpuset (shared). An
	// empty set for a shared workload means "no restriction" (a host that
	// reports no CPU pools).
	CPUs cpuset.CPUSet
	// Cells the workload uses, in guest cell order; empty for a shared
	// workload without NUMA needs.
	Cells []CellPlacement
	// SplitCores counts the cores where a dedicated workload holds some but
	// not all hyperthreads (0 is best).
	SplitCores int
}

// CellPlacement is the share of one host NUMA cell a workload takes.
type CellPlacement struct {
	Cell     int
	CPUs     cpuset.CPUSet
	MemoryMB int64
}

// Mems returns the NUMA cell ids, as Docker's CpusetMems wants them.
func (p Placement) Mems() cpuset.CPUSet {
	ids := make([]int, len(p.Cells))
	for i, c := range p.Cells {
		ids[i] = c.Cell
	}
	return cpuset.New(ids...)
}

// CheckPlacement is the CPU policy and NUMA verdict of a host, without
// choosing pCPUs: the cheap half of Place, used by the numa filter.
func CheckPlacement(req *Request, h *HostState) Verdict {
	_, v := place(req, h, false)
	return v
}

// Place chooses the cells and CPUs of the request on the host.
//
// A dedicated request takes whole pCPUs of the dedicated pool inside one
// host cell per guest cell. Among the cells that fit, the one chosen gives
// the fewest split cores, then the tightest fit (fewest free pCPUs left,
// then least free memory, keeping large holes for large requests), then the
// lowest id. Inside a cell, pCPUs come from whole free cores first, then a
// partly used core that covers the rest alone, then one whole core split,
// then partly used cores; every tie goes to the lowest CPU id, so one
// snapshot always gives one answer.
//
// A shared request with NUMA needs takes memory in distinct cells whose
// shared pool is not all pinned and floats over those cells' shared CPUs;
// without NUMA needs it floats over the host's whole free shared pool.
func Place(req *Request, h *HostState) (Placement, Verdict) {
	return place(req, h, true)
}

func place(req *Request, h *HostState, pick bool) (Placement, Verdict) {
	needs := req.CellNeeds()
	if req.Dedicated() {
		return placeDedicated(req, h, needs, pick)
	}
	if needs == nil {
		switch {
		case !h.d.hasPools:
			return Placement{}, Passed
		case h.SharedCPUs.IsEmpty():
			return Placement{}, Reject(true, ReasonNoSharedPool)
		case h.d.sharedFree.IsEmpty():
			return Placement{}, Reject(false, ReasonSharedPinned)
		}
		return Placement{CPUs: h.d.sharedFree}, Passed
	}
	return placeSharedNUMA(req, h, needs)
}

// cellFit answers whether one cell can hold one guest cell.
type cellFit func(cell int, need CellNeed) bool

// matchCells assigns every need a distinct cell, trying cells in the given
// order. Needs ask the same CPU count and differ in memory only, so taking
// the largest need first and giving it the first cell that fits is exact:
// a cell that fits a need fits every smaller one.
func matchCells(needs []CellNeed, order []int, fits cellFit) []int {
	byMem := make([]int, len(needs))
	for i := range byMem {
		byMem[i] = i
	}
	slices.SortStableFunc(byMem, func(a, b int) int { return cmpInt64(needs[b].MemoryMB, needs[a].MemoryMB) })
	got := make([]int, len(needs))
	used := make([]bool, len(order))
	for _, ni := range byMem {
		found := false
		for oi, cell := range order {
			if !used[oi] && fits(cell, needs[ni]) {
				used[oi], got[ni], found = true, cell, true
				break
			}
		}
		if !found {
			return nil
		}
	}
	return got
}

func placeDedicated(req *Request, h *HostState, needs []CellNeed, pick bool) (Placement, Verdict) {
	switch {
	case len(h.Cells) == 0:
		return Placement{}, Reject(true, ReasonNoNUMATopology)
	case h.DedicatedCPUs.IsEmpty():
		return Placement{}, Reject(true, ReasonNoDedicatedPool)
	case len(needs) > len(h.Cells):
		return Placement{}, Reject(true, ReasonTooFewCells)
	}
	cpus := int(needs[0].CPUs)
	if !pick && len(needs) == 1 {
		return Placement{Dedicated: true}, checkOneCell(h, cpus, needs[0].MemoryMB)
	}
	all := make([]int, len(h.Cells))
	for i := range all {
		all[i] = i
	}
	if matchCells(needs, all, func(c int, n CellNeed) bool {
		return h.d.cells[c].dedicated >= cpus && h.Cells[c].MemoryMB >= n.MemoryMB
	}) == nil {
		return Placement{}, Reject(true, ReasonCellTooSmall)
	}
	// Cells with enough free pCPUs, best first.
	type cand struct {
		cell, split int
		cpus        []int
	}
	cands := make([]cand, 0, len(h.Cells))
	for i := range h.Cells {
		cs := &h.d.cells[i]
		if cs.nFree < cpus {
			continue
		}
		c := cand{cell: i}
		if pick {
			c.cpus, c.split = pickCPUs(cs.cores, cpus)
		}
		cands = append(cands, c)
	}
	if len(cands) == 0 {
		return Placement{}, Reject(false, ReasonCellCPUs)
	}
	slices.SortStableFunc(cands, func(a, b cand) int {
		if a.split != b.split {
			return a.split - b.split
		}
		ca, cb := &h.d.cells[a.cell], &h.d.cells[b.cell]
		if ca.nFree != cb.nFree {
			return ca.nFree - cb.nFree
		}
		if ca.freeMemoryMB != cb.freeMemoryMB {
			return cmpInt64(ca.freeMemoryMB, cb.freeMemoryMB)
		}
		return h.Cells[a.cell].ID - h.Cells[b.cell].ID
	})
	order := make([]int, len(cands))
	for i, c := range cands {
		order[i] = c.cell
	}
	got := matchCells(needs, order, func(c int, n CellNeed) bool { return h.d.cells[c].freeMemoryMB >= n.MemoryMB })
	if got == nil {
		return Placement{}, Reject(false, ReasonCellMemory)
	}
	if !pick {
		return Placement{Dedicated: true}, Passed
	}
	p := Placement{Dedicated: true, Cells: make([]CellPlacement, len(needs))}
	var pinned []int
	for i, cell := range got {
		ci := slices.IndexFunc(cands, func(c cand) bool { return c.cell == cell })
		p.Cells[i] = CellPlacement{Cell: h.Cells[cell].ID, CPUs: cpuset.New(cands[ci].cpus...), MemoryMB: needs[i].MemoryMB}
		p.SplitCores += cands[ci].split
		pinned = append(pinned, cands[ci].cpus...)
	}
	p.CPUs = cpuset.New(pinned...)
	return p, Passed
}

// checkOneCell is placeDedicated's verdict for one guest cell without
// allocating: the filter runs it on every host.
func checkOneCell(h *HostState, cpus int, mem int64) Verdict {
	never, cpuOK := true, false
	for i := range h.Cells {
		cs := &h.d.cells[i]
		if cs.nFree >= cpus {
			if cs.freeMemoryMB >= mem {
				return Passed
			}
			cpuOK = true
		}
		if cs.dedicated >= cpus && h.Cells[i].MemoryMB >= mem {
			never = false
		}
	}
	switch {
	case never:
		return Reject(true, ReasonCellTooSmall)
	case !cpuOK:
		return Reject(false, ReasonCellCPUs)
	}
	return Reject(false, ReasonCellMemory)
}

func placeSharedNUMA(req *Request, h *HostState, needs []CellNeed) (Placement, Verdict) {
	switch {
	case len(h.Cells) == 0:
		return Placement{}, Reject(true, ReasonNoNUMATopology)
	case len(needs) > len(h.Cells):
		return Placement{}, Reject(true, ReasonTooFewCells)
	}
	ratio := 1.0
	if inv, ok := h.Inventories[VCPU]; ok {
		ratio = inv.AllocationRatio
	}
	cpus := float64(needs[0].CPUs)
	all := make([]int, len(h.Cells))
	for i := range all {
		all[i] = i
	}
	// A guest cell may not have more vCPUs than its host cell's shared CPUs
	// can carry at the VCPU allocation ratio.
	if matchCells(needs, all, func(c int, n CellNeed) bool {
		return float64(h.d.cells[c].shared)*ratio >= cpus && h.Cells[c].MemoryMB >= n.MemoryMB
	}) == nil {
		return Placement{}, Reject(true, ReasonCellTooSmall)
	}
	var order []int
	for i := range h.Cells {
		if float64(h.d.cells[i].nSharedFree)*ratio >= cpus {
			order = append(order, i)
		}
	}
	if len(order) == 0 {
		return Placement{}, Reject(false, ReasonCellCPUs)
	}
	slices.SortStableFunc(order, func(a, b int) int {
		ca, cb := &h.d.cells[a], &h.d.cells[b]
		if ca.freeMemoryMB != cb.freeMemoryMB {
			return cmpInt64(ca.freeMemoryMB, cb.freeMemoryMB)
		}
		return h.Cells[a].ID - h.Cells[b].ID
	})
	got := matchCells(needs, order, func(c int, n CellNeed) bool { return h.d.cells[c].freeMemoryMB >= n.MemoryMB })
	if got == nil {
		return Placement{}, Reject(false, ReasonCellMemory)
	}
	p := Placement{Cells: make([]CellPlacement, len(needs)), CPUs: cpuset.New()}
	for i, cell := range got {
		cs := h.d.cells[cell].sharedFree
		p.Cells[i] = CellPlacement{Cell: h.Cells[cell].ID, CPUs: cs, MemoryMB: needs[i].MemoryMB}
		p.CPUs = p.CPUs.Union(cs)
	}
	return p, Passed
}

// pickCPUs takes n free threads from the cores (which hold at least n free
// threads in all) and counts the cores left split. See Place for the order.
func pickCPUs(cores []core, n int) ([]int, int) {
	taken := make([]bool, len(cores))
	var got []int
	split := 0
	take := func(i, k int) {
		taken[i] = true
		got = append(got, cores[i].free[:k]...)
		if k < len(cores[i].threads) {
			split++
		}
	}
	whole := func(i int) bool { return len(cores[i].free) == len(cores[i].threads) }
	// 1. Whole free cores that fit entirely, the widest first.
	idx := make([]int, 0, len(cores))
	for i := range cores {
		if whole(i) {
			idx = append(idx, i)
		}
	}
	slices.SortStableFunc(idx, func(a, b int) int { return len(cores[b].threads) - len(cores[a].threads) })
	r := n
	for _, i := range idx {
		if t := len(cores[i].threads); t <= r {
			take(i, t)
			r -= t
		}
	}
	// bestFit returns the untaken core matching ok with the fewest free
	// threads >= r, or -1.
	bestFit := func(ok func(int) bool) int {
		best := -1
		for i := range cores {
			if taken[i] || !ok(i) || len(cores[i].free) < r {
				continue
			}
			if best < 0 || len(cores[i].free) < len(cores[best].free) {
				best = i
			}
		}
		return best
	}
	partial := func(i int) bool { return !whole(i) }
	for r > 0 {
		// 2. One partly used core covering the rest, 3. one whole core split.
		if i := bestFit(partial); i >= 0 {
			take(i, r)
			return got, split
		}
		if i := bestFit(whole); i >= 0 {
			take(i, r)
			return got, split
		}
		// 4. The partly used core with the most free threads, then again.
		best := -1
		for i := range cores {
			if !taken[i] && (best < 0 || len(cores[i].free) > len(cores[best].free)) {
				best = i
			}
		}
		if best < 0 {
			break
		}
		k := len(cores[best].free)
		take(best, k)
		r -= k
	}
	return got, split
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
