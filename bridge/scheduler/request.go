package scheduler

import (
	"errors"
	"fmt"
)

// Kind says which manager runs a workload.
type Kind string

// Workload kinds.
const (
	KindVM        Kind = "vm"
	KindContainer Kind = "container"
)

// CPUPolicy is the patent's "computing resource utilisation mode".
type CPUPolicy string

// CPU policies, as Nova's hw:cpu_policy and Zun's cpu_policy.
const (
	// CPUShared: the workload floats over the host's shared pool (VCPU).
	CPUShared CPUPolicy = "shared"
	// CPUDedicated: the workload pins whole pCPUs of the dedicated pool
	// (PCPU), all inside one NUMA cell unless it asks for more cells.
	CPUDedicated CPUPolicy = "dedicated"
)

// GroupPolicy is a server group's placement rule, as Nova's.
type GroupPolicy string

// Group policies. The hard ones are filters, the soft ones a weigher.
const (
	Affinity         GroupPolicy = "affinity"
	AntiAffinity     GroupPolicy = "anti-affinity"
	SoftAffinity     GroupPolicy = "soft-affinity"
	SoftAntiAffinity GroupPolicy = "soft-anti-affinity"
)

// Resources are the amounts a workload claims in Placement.
type Resources struct {
	VCPU     int64
	PCPU     int64
	MemoryMB int64
	DiskGB   int64
}

// Amount returns the amount of one class (0 for a class we do not request).
func (r Resources) Amount(rc ResourceClass) int64 {
	switch rc {
	case VCPU:
		return r.VCPU
	case PCPU:
		return r.PCPU
	case MemoryMB:
		return r.MemoryMB
	case DiskGB:
		return r.DiskGB
	}
	return 0
}

// NUMANeeds is the guest NUMA topology (Nova's hw:numa_nodes and
// hw:numa_mem.N). CPUs are split evenly over the cells.
type NUMANeeds struct {
	// Cells is the number of host NUMA cells the workload spans, each on a
	// different host cell. 0 means no constraint for a shared workload and
	// one cell for a dedicated one.
	Cells int
	// MemoryMB per guest cell; nil splits Resources.MemoryMB evenly.
	MemoryMB []int64
}

// Group is the server group the workload joins.
type Group struct {
	ID     string
	Policy GroupPolicy
	// MaxPerHost bounds members on one host for anti-affinity, counting
	// the new one (Nova's max_server_per_host); 0 means 1.
	MaxPerHost int
	// Hosts currently running members. Schedule fills it from the
	// snapshot when nil; a caller that knows better may set it.
	Hosts []string
}

// Request is one workload to place, built once by the coordinator from a
// Nova flavor or a Zun container and then only read. Filters and weighers
// see it as a typed value, never as a bag of strings.
type Request struct {
	// ID is the request id; it seeds the tie-breaking shuffle, so one
	// request replayed on one snapshot gives one answer.
	ID string
	// WorkloadID is the consumer (instance or container uuid), if known.
	WorkloadID string
	Kind       Kind
	Project    string
	Resources  Resources
	// CPUPolicy "" means shared.
	CPUPolicy CPUPolicy
	NUMA      NUMANeeds

	RequiredTraits  []string
	ForbiddenTraits []string
	// MemberOf: the host must be in at least one aggregate of every entry
	// (Placement's member_of=in:a,b repeated).
	MemberOf            [][]string
	ForbiddenAggregates []string
	// AvailabilityZone "" means any.
	AvailabilityZone string
	Group            *Group
}

// ErrInvalidRequest wraps every Validate failure.
var ErrInvalidRequest = errors.New("invalid scheduling request")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidRequest, fmt.Sprintf(format, args...))
}

// Policy returns the CPU policy, shared when unset.
func (r *Request) Policy() CPUPolicy {
	if r.CPUPolicy == "" {
		return CPUShared
	}
	return r.CPUPolicy
}

// Dedicated reports whether the request pins pCPUs.
func (r *Request) Dedicated() bool { return r.Policy() == CPUDedicated }

// CPUs is the CPU count of the request whatever the policy.
func (r *Request) CPUs() int64 {
	if r.Dedicated() {
		return r.Resources.PCPU
	}
	return r.Resources.VCPU
}

// CellNeed is what one guest NUMA cell needs from one host cell.
type CellNeed struct {
	CPUs     int64
	MemoryMB int64
}

// CellNeeds returns the per-cell needs, nil when the request has no NUMA
// constraint (a shared request without NUMA.Cells). Validate first.
func (r *Request) CellNeeds() []CellNeed {
	n := r.NUMA.Cells
	if n == 0 {
		if !r.Dedicated() {
			return nil
		}
		n = 1
	}
	needs := make([]CellNeed, n)
	for i := range needs {
		needs[i].CPUs = r.CPUs() / int64(n)
		if len(r.NUMA.MemoryMB) == n {
			needs[i].MemoryMB = r.NUMA.MemoryMB[i]
		} else {
			needs[i].MemoryMB = r.Resources.MemoryMB / int64(n)
		}
	}
	return needs
}

// Validate checks the request once, so that filters can trust it.
func (r *Request) Validate() error {
	if r.ID == "" {
		return invalid("request id is empty")
	}
	if r.Kind != KindVM && r.Kind != KindContainer {
		return invalid("kind %q is neither %q nor %q", r.Kind, KindVM, KindContainer)
	}
	res := r.Resources
	if res.VCPU < 0 || res.PCPU < 0 || res.MemoryMB < 0 || res.DiskGB < 0 {
		return invalid("negative resource amount in %+v", res)
	}
	switch r.Policy() {
	case CPUDedicated:
		if res.PCPU < 1 || res.VCPU != 0 {
			return invalid("a dedicated request needs PCPU >= 1 and no VCPU (got VCPU=%d PCPU=%d)", res.VCPU, res.PCPU)
		}
	case CPUShared:
		if res.VCPU < 1 || res.PCPU != 0 {
			return invalid("a shared request needs VCPU >= 1 and no PCPU (got VCPU=%d PCPU=%d)", res.VCPU, res.PCPU)
		}
	default:
		return invalid("cpu policy %q is neither %q nor %q", r.CPUPolicy, CPUShared, CPUDedicated)
	}
	if err := r.validateNUMA(); err != nil {
		return err
	}
	if g := r.Group; g != nil {
		if g.ID == "" {
			return invalid("server group without id")
		}
		switch g.Policy {
		case Affinity, AntiAffinity, SoftAffinity, SoftAntiAffinity:
		default:
			return invalid("server group policy %q is unknown", g.Policy)
		}
		if g.MaxPerHost < 0 {
			return invalid("server group max per host %d is negative", g.MaxPerHost)
		}
	}
	for i, aggs := range r.MemberOf {
		if len(aggs) == 0 {
			return invalid("member_of entry %d is empty", i)
		}
	}
	return nil
}

func (r *Request) validateNUMA() error {
	n := r.NUMA.Cells
	if n < 0 {
		return invalid("NUMA cell count %d is negative", n)
	}
	if n == 0 {
		if len(r.NUMA.MemoryMB) > 0 {
			return invalid("NUMA memory per cell given without a cell count")
		}
		return nil
	}
	if cpus := r.CPUs(); cpus%int64(n) != 0 {
		return invalid("%d CPUs cannot be split evenly over %d NUMA cells", cpus, n)
	}
	if len(r.NUMA.MemoryMB) == 0 {
		if r.Resources.MemoryMB%int64(n) != 0 {
			return invalid("%d MB of memory cannot be split evenly over %d NUMA cells", r.Resources.MemoryMB, n)
		}
		return nil
	}
	if len(r.NUMA.MemoryMB) != n {
		return invalid("%d NUMA cells but memory given for %d", n, len(r.NUMA.MemoryMB))
	}
	var sum int64
	for i, m := range r.NUMA.MemoryMB {
		if m < 0 {
			return invalid("NUMA cell %d memory %d is negative", i, m)
		}
		sum += m
	}
	if sum != r.Resources.MemoryMB {
		return invalid("NUMA cell memory adds up to %d MB, the request has %d MB", sum, r.Resources.MemoryMB)
	}
	return nil
}
