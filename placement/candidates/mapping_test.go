package candidates

import (
	"reflect"
	"sort"
	"strings"
	"testing"
)

func mappingNames(f *fixture, s *Snapshot, ar AllocationRequest) map[string][]string {
	names := map[string]string{}
	for n, u := range f.uuids {
		names[u] = n
	}
	out := map[string][]string{}
	for _, m := range ar.Mappings {
		var ps []string
		for _, p := range m.Providers {
			ps = append(ps, names[s.Provider(p).UUID])
		}
		sort.Strings(ps)
		out[m.Suffix] = ps
	}
	return out
}

func TestMappings(t *testing.T) {
	f := numaNetworkFixture(false)
	s := f.snapshot(t)
	r, err := find(t, f, s, "resources=VCPU:1&required_NIC=CUSTOM_HW_NIC_ROOT&resources_PORT1=CUSTOM_VF:4&required_PORT1=CUSTOM_PHYSNET1"+
		"&resources_PORT2=CUSTOM_VF:4&required_PORT2=CUSTOM_PHYSNET2&same_subtree=_NIC,_PORT1,_PORT2&group_policy=none", 36)
	if err != nil || len(r.Requests) != 1 {
		t.Fatalf("%v %v", r, err)
	}
	want := map[string][]string{"": {"cn2"}, "_NIC": {"nic1"}, "_PORT1": {"pf1_1"}, "_PORT2": {"pf1_2"}}
	if got := mappingNames(f, s, r.Requests[0]); !reflect.DeepEqual(got, want) {
		t.Errorf("mappings %v, want %v", got, want)
	}
	if len(r.Requests[0].Allocations) != 3 {
		t.Errorf("the resourceless NIC group allocates nothing: %s", describe(f, s, r.Requests[0]))
	}

	r, err = find(t, f, s, "resources_BWA=NET_BW_EGR_KILOBIT_PER_SEC:10&required_BWA=CUSTOM_PHYSNET1"+
		"&resources_BWB=NET_BW_EGR_KILOBIT_PER_SEC:20&required_BWB=CUSTOM_PHYSNET1&group_policy=none", 34)
	if err != nil || len(r.Requests) != 1 {
		t.Fatalf("%v %v", r, err)
	}
	want = map[string][]string{"_BWA": {"esn1"}, "_BWB": {"esn1"}}
	if got := mappingNames(f, s, r.Requests[0]); !reflect.DeepEqual(got, want) {
		t.Errorf("mappings %v, want %v", got, want)
	}

	g := granularFixture()
	gs := g.snapshot(t)
	r, err = find(t, g, gs, "resources=VCPU:1,DISK_GB:1&required=HW_CPU_X86_SSE", 34)
	if err != nil || len(r.Requests) != 2 {
		t.Fatalf("%v %v", r, err)
	}
	for _, ar := range r.Requests {
		m := mappingNames(g, gs, ar)
		if len(m) != 1 || len(m[""]) != 2 || m[""][0] != "cn_middle" {
			t.Errorf("unsuffixed mapping names both providers: %v", m)
		}
	}
}

func TestSummaries(t *testing.T) {
	f := sharedStorageFixture()
	s := f.snapshot(t)
	names := func(r *Result) []string {
		inv := map[string]string{}
		for n, u := range f.uuids {
			inv[u] = n
		}
		var out []string
		for _, p := range r.Summaries {
			out = append(out, inv[s.Provider(p).UUID])
		}
		sort.Strings(out)
		return out
	}
	// Before 1.29 only providers that are in a kept request are summarized.
	r, err := find(t, f, s, "resources=SRIOV_NET_VF:4", 28)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := names(r), []string{"pf1_1", "pf1_2", "pf2_1", "pf2_2"}; !reflect.DeepEqual(got, want) {
		t.Errorf("1.28 summaries %v, want %v", got, want)
	}
	// From 1.29 every provider of a used tree is.
	r, err = find(t, f, s, "resources=VCPU:1,SRIOV_NET_VF:4&limit=1", 29)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := names(r), []string{"cn1", "numa1_1", "numa1_2", "pf1_1", "pf1_2"}; !reflect.DeepEqual(got, want) {
		t.Errorf("1.29 limit=1 summaries %v, want %v", got, want)
	}
	// A request served only by a sharing provider summarizes its tree only.
	r, err = find(t, f, s, "resources=DISK_GB:1500", 29)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Requests) != 3 {
		t.Errorf("want cn2, ss, ss2 alone: %d", len(r.Requests))
	}
	if got, want := names(r), []string{"cn2", "numa2_1", "numa2_2", "pf2_1", "pf2_2", "ss", "ss2"}; !reflect.DeepEqual(got, want) {
		t.Errorf("summaries %v, want %v", got, want)
	}
}

func TestErrorPrecedence(t *testing.T) {
	f := granularFixture()
	s := f.snapshot(t)
	tests := []struct {
		query   string
		wantErr string
	}{
		// An earlier group with no candidates hides a later unknown trait.
		{"resources1=VCPU:100&resources2=VCPU:1&required2=CUSTOM_NOPE&group_policy=none", ""},
		{"resources1=VCPU:1&resources2=VCPU:1&required2=CUSTOM_NOPE&group_policy=none", "No such trait(s): CUSTOM_NOPE."},
		// Within a group, an unmatched member_of hides an unknown trait...
		{"resources=VCPU:1&member_of=" + f.uuid("nowhere") + "&required=CUSTOM_NOPE", ""},
		// ...but not an unknown resource class, which is checked first.
		{"resources=VCPU:1,CUSTOM_NOPE:1&member_of=" + f.uuid("nowhere"), "No such resource class CUSTOM_NOPE."},
		// root_required is resolved before any group.
		{"resources=CUSTOM_NOPE:1&root_required=HW_NUMA_ROOT", ""},
		{"resources=VCPU:1&root_required=CUSTOM_NOPE", "No such trait(s): CUSTOM_NOPE."},
	}
	for _, tc := range tests {
		r, err := find(t, f, s, tc.query, 39)
		if tc.wantErr == "" {
			if err != nil || len(r.Requests) != 0 {
				t.Errorf("%s: got %v, %v; want empty result", tc.query, r, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: err %v, want %q", tc.query, err, tc.wantErr)
		}
	}
}
