package scheduler

import (
	"testing"

	"k8s.io/utils/cpuset"
)

// prepared returns the host as a Snapshot holds it.
func prepared(t testing.TB, h HostState) *HostState {
	t.Helper()
	s, err := NewSnapshot([]HostState{h})
	if err != nil {
		t.Fatalf("NewSnapshot: %v", err)
	}
	return s.Hosts()[0]
}

func cpus(t testing.TB, list string) cpuset.CPUSet {
	t.Helper()
	s, err := cpuset.Parse(list)
	if err != nil {
		t.Fatalf("cpuset %q: %v", list, err)
	}
	return s
}

// smtHost has two cells of four CPUs as two hyperthreaded cores each:
// cell 0 = {0,1},{2,3}; cell 1 = {4,5},{6,7}; every CPU in both pools.
func smtHost(t testing.TB, pins map[int]string) HostState {
	h := HostState{
		Name:          "smt",
		DedicatedCPUs: cpus(t, "0-7"),
		SharedCPUs:    cpus(t, "0-7"),
		Inventories: map[ResourceClass]Inventory{
			PCPU:     {Total: 8, AllocationRatio: 1},
			VCPU:     {Total: 8, AllocationRatio: 4},
			MemoryMB: {Total: 8192, AllocationRatio: 1},
		},
	}
	for c := 0; c < 2; c++ {
		b := 4 * c
		cell := NUMACell{ID: c, CPUs: cpuset.New(b, b+1, b+2, b+3), MemoryMB: 4096,
			Siblings: []cpuset.CPUSet{cpuset.New(b, b+1), cpuset.New(b+2, b+3)}}
		if p, ok := pins[c]; ok {
			cell.Pinned = []Pin{{Workload: "w", CPUs: cpus(t, p)}}
		}
		h.Cells = append(h.Cells, cell)
	}
	return h
}

func dedicated(pcpu, mem int64) *Request {
	return &Request{ID: "r", Kind: KindContainer, CPUPolicy: CPUDedicated, Resources: Resources{PCPU: pcpu, MemoryMB: mem}}
}

func shared(vcpu, mem int64) *Request {
	return &Request{ID: "r", Kind: KindVM, CPUPolicy: CPUShared, Resources: Resources{VCPU: vcpu, MemoryMB: mem}}
}
