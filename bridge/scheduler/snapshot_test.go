package scheduler

import (
	"slices"
	"strings"
	"testing"

	"k8s.io/utils/cpuset"
)

func TestNewSnapshotRejects(t *testing.T) {
	tests := []struct {
		name   string
		change func(h *HostState)
		want   string
	}{
		{"no name", func(h *HostState) { h.Name = "" }, "without a name"},
		{"ratio", func(h *HostState) { h.Inventories[VCPU] = Inventory{Total: 1} }, "allocation ratio 0"},
		{"negative", func(h *HostState) { h.Inventories[DiskGB] = Inventory{Total: -1, AllocationRatio: 1} }, "negative field"},
		{"cell twice", func(h *HostState) { h.Cells[1].ID = 0 }, "cell 0 listed twice"},
		{"overlapping cells", func(h *HostState) { h.Cells[1].CPUs = cpuset.New(3, 4, 5, 6, 7) }, "more than one NUMA cell"},
		{"sibling outside", func(h *HostState) { h.Cells[0].Siblings[0] = cpuset.New(0, 4) }, "not in the cell"},
		{"sibling twice", func(h *HostState) { h.Cells[0].Siblings[1] = cpuset.New(1, 2) }, "two sibling sets"},
		{"pin outside", func(h *HostState) { h.Cells[0].Pinned = []Pin{{Workload: "w", CPUs: cpuset.New(5)}} }, "outside the cell"},
		{"pinned twice", func(h *HostState) {
			h.Cells[0].Pinned = []Pin{{Workload: "a", CPUs: cpuset.New(0)}, {Workload: "b", CPUs: cpuset.New(0, 1)}}
		}, "pinned twice"},
		{"pool outside cells", func(h *HostState) { h.DedicatedCPUs = cpuset.New(0, 9) }, "reach outside"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := smtHost(t, nil)
			tt.change(&h)
			_, err := NewSnapshot([]HostState{h})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewSnapshot = %v, want an error containing %q", err, tt.want)
			}
		})
	}
	a := smtHost(t, nil)
	if _, err := NewSnapshot([]HostState{a, a}); err == nil || !strings.Contains(err.Error(), "listed twice") {
		t.Fatalf("duplicate host: %v", err)
	}
}

func TestSnapshotDerived(t *testing.T) {
	h := smtHost(t, map[int]string{0: "0-1"})
	h.Traits = []string{"Z", "A", "A"}
	h.Workloads = []Workload{{ID: "w", Group: "g"}, {ID: "x", Group: "g"}, {ID: "y"}}
	traits := slices.Clone(h.Traits)
	s, err := NewSnapshot([]HostState{h})
	if err != nil {
		t.Fatal(err)
	}
	p := s.Host("smt")
	if !slices.Equal(h.Traits, traits) {
		t.Errorf("NewSnapshot reordered the caller's traits: %v", h.Traits)
	}
	if !p.HasTrait("A") || !p.HasTrait("Z") || p.HasTrait("B") {
		t.Errorf("HasTrait wrong over %v", p.Traits)
	}
	if got := p.SharedFree().String(); got != "2-7" {
		t.Errorf("SharedFree = %q, want 2-7", got)
	}
	if p.GroupMembers("g") != 2 || !slices.Equal(s.GroupHosts("g"), []string{"smt"}) || s.GroupHosts("none") != nil {
		t.Errorf("group index: members %d hosts %v", p.GroupMembers("g"), s.GroupHosts("g"))
	}
	if u := DedicatedUsage(p); u != 0 {
		t.Errorf("DedicatedUsage with PCPU inventory unused = %v, want 0 (inventory wins)", u)
	}
	delete(h.Inventories, PCPU)
	if u := DedicatedUsage(prepared(t, h)); u != 0.25 {
		t.Errorf("DedicatedUsage from pins = %v, want 0.25", u)
	}
}

func TestSnapshotClaim(t *testing.T) {
	other := smtHost(t, nil)
	other.Name = "other"
	s, err := NewSnapshot([]HostState{smtHost(t, nil), other})
	if err != nil {
		t.Fatal(err)
	}
	req := dedicated(2, 512)
	req.Group = &Group{ID: "g", Policy: AntiAffinity}
	p, v := Place(req, s.Host("smt"))
	if v.Code != Pass {
		t.Fatal(v)
	}
	s2, err := s.Claim(req, Choice{Host: "smt", Placement: p}, "w1")
	if err != nil {
		t.Fatal(err)
	}
	h := s2.Host("smt")
	if h.Inventories[PCPU].Used != 2 || h.Inventories[MemoryMB].Used != 512 || h.Cells[0].MemoryUsedMB != 512 {
		t.Errorf("claimed usage: PCPU %d MEMORY_MB %d cell0 %d", h.Inventories[PCPU].Used, h.Inventories[MemoryMB].Used, h.Cells[0].MemoryUsedMB)
	}
	if !h.Pinned().Equals(cpuset.New(0, 1)) || h.GroupMembers("g") != 1 || !slices.Equal(s2.GroupHosts("g"), []string{"smt"}) {
		t.Errorf("claimed pins %s, group members %d", h.Pinned(), h.GroupMembers("g"))
	}
	// The old snapshot and the untouched host are unchanged and shared.
	if o := s.Host("smt"); o.Inventories[PCPU].Used != 0 || !o.Pinned().IsEmpty() || len(o.Cells[0].Pinned) != 0 {
		t.Errorf("Claim changed the original snapshot")
	}
	if s2.Host("other") != s.Host("other") {
		t.Errorf("untouched host was copied")
	}
	// Claiming the same CPUs again is refused by the snapshot's checks.
	if _, err := s2.Claim(req, Choice{Host: "smt", Placement: p}, "w2"); err == nil || !strings.Contains(err.Error(), "pinned twice") {
		t.Errorf("double claim: %v", err)
	}
	if _, err := s.Claim(req, Choice{Host: "nope"}, "w"); err == nil {
		t.Errorf("claim on an unknown host succeeded")
	}
}

func TestInventory(t *testing.T) {
	inv := Inventory{Total: 10, Reserved: 2, AllocationRatio: 1.5, Used: 5, MinUnit: 2, MaxUnit: 8, StepSize: 2}
	if inv.Capacity() != 12 || inv.Free() != 7 {
		t.Errorf("capacity %d free %d, want 12 and 7", inv.Capacity(), inv.Free())
	}
	for n, want := range map[int64]bool{1: false, 2: true, 3: false, 8: true, 10: false} {
		if inv.AllowsAmount(n) != want {
			t.Errorf("AllowsAmount(%d) = %v", n, !want)
		}
	}
	if (Inventory{Total: 2, Reserved: 3, AllocationRatio: 1}).Capacity() != 0 {
		t.Errorf("reserved above total must leave no capacity")
	}
}
