package scheduler

import (
	"errors"
	"strings"
	"testing"
)

func TestRequestValidate(t *testing.T) {
	ok := func() *Request { return dedicated(2, 1024) }
	tests := []struct {
		name   string
		change func(r *Request)
		want   string // "" for valid
	}{
		{"dedicated", func(*Request) {}, ""},
		{"shared by default", func(r *Request) { r.CPUPolicy = ""; r.Resources = Resources{VCPU: 1} }, ""},
		{"no id", func(r *Request) { r.ID = "" }, "request id is empty"},
		{"bad kind", func(r *Request) { r.Kind = "pod" }, `kind "pod"`},
		{"bad policy", func(r *Request) { r.CPUPolicy = "mixed" }, `cpu policy "mixed"`},
		{"dedicated with VCPU", func(r *Request) { r.Resources.VCPU = 1 }, "a dedicated request needs PCPU"},
		{"shared with PCPU", func(r *Request) { r.CPUPolicy = CPUShared }, "a shared request needs VCPU"},
		{"negative", func(r *Request) { r.Resources.DiskGB = -1 }, "negative resource amount"},
		{"uneven cpus", func(r *Request) { r.Resources.PCPU = 3; r.NUMA.Cells = 2 }, "3 CPUs cannot be split evenly"},
		{"uneven memory", func(r *Request) { r.Resources.MemoryMB = 1025; r.NUMA.Cells = 2 }, "cannot be split evenly"},
		{"memory per cell", func(r *Request) { r.NUMA = NUMANeeds{Cells: 2, MemoryMB: []int64{256, 768}} }, ""},
		{"memory per cell sum", func(r *Request) { r.NUMA = NUMANeeds{Cells: 2, MemoryMB: []int64{256, 256}} }, "adds up to 512 MB"},
		{"memory per cell count", func(r *Request) { r.NUMA = NUMANeeds{Cells: 2, MemoryMB: []int64{1024}} }, "memory given for 1"},
		{"memory without cells", func(r *Request) { r.NUMA = NUMANeeds{MemoryMB: []int64{1024}} }, "without a cell count"},
		{"negative cells", func(r *Request) { r.NUMA.Cells = -1 }, "negative"},
		{"group", func(r *Request) { r.Group = &Group{ID: "g", Policy: AntiAffinity} }, ""},
		{"group policy", func(r *Request) { r.Group = &Group{ID: "g", Policy: "near"} }, `policy "near"`},
		{"group id", func(r *Request) { r.Group = &Group{Policy: Affinity} }, "without id"},
		{"empty member_of", func(r *Request) { r.MemberOf = [][]string{{"a"}, {}} }, "member_of entry 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ok()
			tt.change(r)
			err := r.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, ErrInvalidRequest) {
				t.Fatalf("Validate = %v, want ErrInvalidRequest containing %q", err, tt.want)
			}
		})
	}
}

func TestCellNeeds(t *testing.T) {
	if n := shared(2, 512).CellNeeds(); n != nil {
		t.Errorf("shared without NUMA: %v, want nil", n)
	}
	if n := dedicated(2, 512).CellNeeds(); len(n) != 1 || n[0] != (CellNeed{CPUs: 2, MemoryMB: 512}) {
		t.Errorf("dedicated: %v, want one cell of 2 CPUs, 512 MB", n)
	}
	r := dedicated(4, 1024)
	r.NUMA.Cells = 2
	if n := r.CellNeeds(); len(n) != 2 || n[1] != (CellNeed{CPUs: 2, MemoryMB: 512}) {
		t.Errorf("two cells: %v", n)
	}
}
