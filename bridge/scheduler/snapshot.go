package scheduler

import (
	"errors"
	"fmt"
	"slices"

	"k8s.io/utils/cpuset"
)

// ResourceClass names a Placement resource class the scheduler reasons about.
type ResourceClass string

// The resource classes of a workload.
const (
	VCPU     ResourceClass = "VCPU"
	PCPU     ResourceClass = "PCPU"
	MemoryMB ResourceClass = "MEMORY_MB"
	DiskGB   ResourceClass = "DISK_GB"
)

// ResourceClasses lists the classes a Request can hold, in a fixed order.
var ResourceClasses = [...]ResourceClass{VCPU, PCPU, MemoryMB, DiskGB}

// Inventory is one class of a host's Placement inventory with its usage.
// Zero MinUnit, MaxUnit and StepSize mean "not set".
type Inventory struct {
	Total           int64
	Reserved        int64
	AllocationRatio float64
	MinUnit         int64
	MaxUnit         int64
	StepSize        int64
	Used            int64
}

// Capacity is what Placement lets consumers allocate: (total - reserved) *
// allocation_ratio, rounded down as Placement does.
func (i Inventory) Capacity() int64 {
	if i.Total <= i.Reserved {
		return 0
	}
	return int64(float64(i.Total-i.Reserved) * i.AllocationRatio)
}

// Free is the capacity not yet allocated (never negative, even when an
// operator lowered an inventory below its usage).
func (i Inventory) Free() int64 { return max(0, i.Capacity()-i.Used) }

// AllowsAmount reports whether one allocation of n respects min_unit,
// max_unit and step_size.
func (i Inventory) AllowsAmount(n int64) bool {
	if i.MinUnit > 0 && n < i.MinUnit {
		return false
	}
	if i.MaxUnit > 0 && n > i.MaxUnit {
		return false
	}
	return i.StepSize <= 1 || n%i.StepSize == 0
}

// NUMACell is one NUMA node of a host with what the ledger says it holds.
type NUMACell struct {
	ID   int
	CPUs cpuset.CPUSet
	// Siblings are the cores of the cell: each set holds the hyperthreads
	// of one core. A CPU of the cell in no set is a core of its own.
	Siblings     []cpuset.CPUSet
	MemoryMB     int64
	MemoryUsedMB int64
	// Pinned lists the pCPUs each workload holds in this cell.
	Pinned []Pin
}

// Pin is a workload's pinned pCPUs in one cell.
type Pin struct {
	Workload string
	CPUs     cpuset.CPUSet
}

// Workload is a workload running on a host, as far as scheduling cares.
type Workload struct {
	ID        string
	Kind      Kind
	Project   string
	Group     string
	CPUPolicy CPUPolicy
}

// HostState is one compute host as the scheduler sees it: its Placement
// provider and the bridge ledger's view of its CPUs and workloads. It is
// read-only once inside a Snapshot (filters run on it concurrently).
type HostState struct {
	Name             string
	ProviderUUID     string
	AvailabilityZone string
	Traits           []string
	Aggregates       []string
	Inventories      map[ResourceClass]Inventory
	// Cells is the NUMA topology; empty for a host that reports none.
	Cells []NUMACell
	// DedicatedCPUs may be pinned by dedicated workloads (Nova's
	// cpu_dedicated_set). SharedCPUs are floated over by shared ones
	// (cpu_shared_set). The sets may overlap: a pinned CPU leaves the
	// shared pool for as long as it is pinned (the agent re-pins the
	// shared containers when that happens).
	DedicatedCPUs cpuset.CPUSet
	SharedCPUs    cpuset.CPUSet
	Workloads     []Workload

	d derived
}

// derived is computed once by NewSnapshot so that filters over thousands of
// hosts compare integers instead of building CPU sets.
type derived struct {
	pinned     cpuset.CPUSet
	sharedFree cpuset.CPUSet
	cells      []cellState // parallel to Cells
	groups     map[string]int
	// hasPools is false for a host that reports neither pools nor cells
	// (a Nova-only host before an agent described it).
	hasPools bool
}

type cellState struct {
	dedicated     int // CPUs of the cell in the dedicated pool
	freeDedicated cpuset.CPUSet
	nFree         int
	sharedFree    cpuset.CPUSet
	nSharedFree   int
	shared        int
	freeMemoryMB  int64
	cores         []core // cores with at least one free dedicated thread
}

// core is a physical core: all its threads and those free for pinning.
type core struct {
	threads []int
	free    []int
}

// Pinned returns every pCPU pinned on the host.
func (h *HostState) Pinned() cpuset.CPUSet { return h.d.pinned }

// SharedFree returns the shared pool less the pinned CPUs: the cpuset a
// shared workload floats over on this host.
func (h *HostState) SharedFree() cpuset.CPUSet { return h.d.sharedFree }

// HasTrait reports whether the host has the trait.
func (h *HostState) HasTrait(t string) bool {
	_, ok := slices.BinarySearch(h.Traits, t)
	return ok
}

// InAggregate reports whether the host is in the aggregate.
func (h *HostState) InAggregate(a string) bool {
	_, ok := slices.BinarySearch(h.Aggregates, a)
	return ok
}

// GroupMembers counts the workloads of a server group on the host.
func (h *HostState) GroupMembers(group string) int { return h.d.groups[group] }

func (h *HostState) prepare() error {
	if h.Name == "" {
		return errors.New("host without a name")
	}
	h.Traits = sortedCopy(h.Traits)
	h.Aggregates = sortedCopy(h.Aggregates)
	for rc, inv := range h.Inventories {
		if inv.Total < 0 || inv.Reserved < 0 || inv.Used < 0 || inv.MinUnit < 0 || inv.MaxUnit < 0 || inv.StepSize < 0 {
			return fmt.Errorf("inventory %s has a negative field: %+v", rc, inv)
		}
		if !(inv.AllocationRatio > 0) {
			return fmt.Errorf("inventory %s: allocation ratio %v is not positive", rc, inv.AllocationRatio)
		}
	}
	d := derived{hasPools: len(h.Cells) > 0 || !h.DedicatedCPUs.IsEmpty() || !h.SharedCPUs.IsEmpty()}
	all := cpuset.New()
	var pins []cpuset.CPUSet
	ids := make(map[int]bool, len(h.Cells))
	for _, c := range h.Cells {
		if ids[c.ID] {
			return fmt.Errorf("NUMA cell %d listed twice", c.ID)
		}
		ids[c.ID] = true
		if c.MemoryMB < 0 || c.MemoryUsedMB < 0 {
			return fmt.Errorf("NUMA cell %d has negative memory", c.ID)
		}
		if common := all.Intersection(c.CPUs); !common.IsEmpty() {
			return fmt.Errorf("CPUs %s are in more than one NUMA cell", common)
		}
		all = all.Union(c.CPUs)
		seen := cpuset.New()
		for _, s := range c.Siblings {
			if s.IsEmpty() || !s.IsSubsetOf(c.CPUs) {
				return fmt.Errorf("NUMA cell %d: sibling set %q is empty or not in the cell's CPUs %s", c.ID, s, c.CPUs)
			}
			if common := seen.Intersection(s); !common.IsEmpty() {
				return fmt.Errorf("NUMA cell %d: CPUs %s are in two sibling sets", c.ID, common)
			}
			seen = seen.Union(s)
		}
		for _, p := range c.Pinned {
			if !p.CPUs.IsSubsetOf(c.CPUs) {
				return fmt.Errorf("NUMA cell %d: workload %s pins CPUs %s outside the cell", c.ID, p.Workload, p.CPUs)
			}
			pins = append(pins, p.CPUs)
		}
	}
	d.pinned = cpuset.New()
	for _, p := range pins {
		if common := d.pinned.Intersection(p); !common.IsEmpty() {
			return fmt.Errorf("CPUs %s are pinned twice", common)
		}
		d.pinned = d.pinned.Union(p)
	}
	if len(h.Cells) > 0 {
		if !h.DedicatedCPUs.IsSubsetOf(all) || !h.SharedCPUs.IsSubsetOf(all) {
			return fmt.Errorf("CPU pools (dedicated %s, shared %s) reach outside the NUMA cells' CPUs %s", h.DedicatedCPUs, h.SharedCPUs, all)
		}
	}
	d.sharedFree = h.SharedCPUs.Difference(d.pinned)
	freeDedicated := h.DedicatedCPUs.Difference(d.pinned)
	d.cells = make([]cellState, len(h.Cells))
	for i, c := range h.Cells {
		cs := &d.cells[i]
		cs.dedicated = c.CPUs.Intersection(h.DedicatedCPUs).Size()
		cs.freeDedicated = c.CPUs.Intersection(freeDedicated)
		cs.nFree = cs.freeDedicated.Size()
		cs.shared = c.CPUs.Intersection(h.SharedCPUs).Size()
		cs.sharedFree = c.CPUs.Intersection(d.sharedFree)
		cs.nSharedFree = cs.sharedFree.Size()
		cs.freeMemoryMB = max(0, c.MemoryMB-c.MemoryUsedMB)
		cs.cores = cellCores(c, cs.freeDedicated)
	}
	for _, w := range h.Workloads {
		if w.Group == "" {
			continue
		}
		if d.groups == nil {
			d.groups = make(map[string]int)
		}
		d.groups[w.Group]++
	}
	h.d = d
	return nil
}

// cellCores lists the cores of a cell that have a free dedicated thread,
// ordered by their lowest CPU id.
func cellCores(c NUMACell, free cpuset.CPUSet) []core {
	if free.IsEmpty() {
		return nil
	}
	var cores []core
	inSet := cpuset.New()
	for _, s := range c.Siblings {
		inSet = inSet.Union(s)
		if f := s.Intersection(free); !f.IsEmpty() {
			cores = append(cores, core{threads: s.List(), free: f.List()})
		}
	}
	for _, cpu := range free.Difference(inSet).List() {
		cores = append(cores, core{threads: []int{cpu}, free: []int{cpu}})
	}
	slices.SortFunc(cores, func(a, b core) int { return a.threads[0] - b.threads[0] })
	return cores
}

func sortedCopy(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	c := slices.Clone(s)
	slices.Sort(c)
	return slices.Compact(c)
}

// clone copies what Claim changes (inventories, cells and their pins,
// workloads); the rest stays shared, which is safe as nothing mutates it.
func (h *HostState) clone() HostState {
	c := *h
	c.Inventories = make(map[ResourceClass]Inventory, len(h.Inventories))
	for rc, inv := range h.Inventories {
		c.Inventories[rc] = inv
	}
	c.Cells = slices.Clone(h.Cells)
	for i := range c.Cells {
		c.Cells[i].Pinned = slices.Clone(c.Cells[i].Pinned)
	}
	c.Workloads = slices.Clone(h.Workloads)
	c.d = derived{}
	return c
}

// Snapshot is a read-only view of every host, taken at one moment. Nothing
// changes it: Replace and Claim return a new Snapshot sharing the hosts
// they did not touch, so a decision in flight keeps a consistent view.
type Snapshot struct {
	hosts  []*HostState
	index  map[string]int
	groups map[string][]string
}

// NewSnapshot validates the hosts and computes what filters need from them.
// The snapshot keeps the slices and sets the hosts refer to: callers must
// not change them afterwards.
func NewSnapshot(hosts []HostState) (*Snapshot, error) {
	s := &Snapshot{hosts: make([]*HostState, 0, len(hosts)), index: make(map[string]int, len(hosts))}
	for i := range hosts {
		h := hosts[i]
		if err := s.add(&h); err != nil {
			return nil, err
		}
	}
	s.indexGroups()
	return s, nil
}

func (s *Snapshot) add(h *HostState) error {
	if err := h.prepare(); err != nil {
		return fmt.Errorf("snapshot of host %q: %w", h.Name, err)
	}
	if _, dup := s.index[h.Name]; dup {
		return fmt.Errorf("snapshot: host %q listed twice", h.Name)
	}
	s.index[h.Name] = len(s.hosts)
	s.hosts = append(s.hosts, h)
	return nil
}

func (s *Snapshot) indexGroups() {
	s.groups = nil
	for _, h := range s.hosts {
		for g := range h.d.groups {
			if s.groups == nil {
				s.groups = make(map[string][]string)
			}
			s.groups[g] = append(s.groups[g], h.Name)
		}
	}
	for _, names := range s.groups {
		slices.Sort(names)
	}
}

// Len is the number of hosts.
func (s *Snapshot) Len() int { return len(s.hosts) }

// Hosts returns the hosts in snapshot order. The slice and the hosts are
// shared: do not modify them.
func (s *Snapshot) Hosts() []*HostState { return s.hosts }

// Host returns the named host, or nil.
func (s *Snapshot) Host(name string) *HostState {
	if i, ok := s.index[name]; ok {
		return s.hosts[i]
	}
	return nil
}

// GroupHosts returns the hosts running members of a server group, sorted.
func (s *Snapshot) GroupHosts(group string) []string {
	return slices.Clone(s.groups[group])
}

// Replace returns a new snapshot where each given host replaces the host of
// the same name, or is added after the others when there is none.
func (s *Snapshot) Replace(hosts ...HostState) (*Snapshot, error) {
	n := &Snapshot{hosts: slices.Clone(s.hosts), index: make(map[string]int, len(s.index)+len(hosts))}
	for k, v := range s.index {
		n.index[k] = v
	}
	for i := range hosts {
		h := hosts[i]
		if err := h.prepare(); err != nil {
			return nil, fmt.Errorf("snapshot of host %q: %w", h.Name, err)
		}
		if at, ok := n.index[h.Name]; ok {
			n.hosts[at] = &h
			continue
		}
		n.index[h.Name] = len(n.hosts)
		n.hosts = append(n.hosts, &h)
	}
	n.indexGroups()
	return n, nil
}

// Claim returns a new snapshot in which the chosen host also holds the
// request: its inventories' usage, its pinned pCPUs and cell memory, and the
// workload. The coordinator uses it to plan several requests in a row
// before the ledger's own update arrives; the ledger stays the arbiter.
func (s *Snapshot) Claim(req *Request, c Choice, workloadID string) (*Snapshot, error) {
	h := s.Host(c.Host)
	if h == nil {
		return nil, fmt.Errorf("claim on host %q: not in the snapshot", c.Host)
	}
	nh := h.clone()
	for _, rc := range ResourceClasses {
		n := req.Resources.Amount(rc)
		if n == 0 {
			continue
		}
		inv, ok := nh.Inventories[rc]
		if !ok {
			return nil, fmt.Errorf("claim on host %q: no %s inventory", c.Host, rc)
		}
		inv.Used += n
		nh.Inventories[rc] = inv
	}
	for _, cp := range c.Placement.Cells {
		i := slices.IndexFunc(nh.Cells, func(cell NUMACell) bool { return cell.ID == cp.Cell })
		if i < 0 {
			return nil, fmt.Errorf("claim on host %q: no NUMA cell %d", c.Host, cp.Cell)
		}
		nh.Cells[i].MemoryUsedMB += cp.MemoryMB
		if c.Placement.Dedicated {
			nh.Cells[i].Pinned = append(nh.Cells[i].Pinned, Pin{Workload: workloadID, CPUs: cp.CPUs})
		}
	}
	w := Workload{ID: workloadID, Kind: req.Kind, Project: req.Project, CPUPolicy: req.Policy()}
	if req.Group != nil {
		w.Group = req.Group.ID
	}
	nh.Workloads = append(nh.Workloads, w)
	return s.Replace(nh)
}
