package candidates

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/unisched/unisched/placement/qs"
)

// expand replaces {name} with the fixture's uuid for name.
func (f *fixture) expand(s string) string {
	for {
		i := strings.Index(s, "{")
		if i < 0 {
			return s
		}
		j := strings.Index(s[i:], "}")
		s = s[:i] + f.uuid(s[i+1:i+j]) + s[i+j+1:]
	}
}

func find(t *testing.T, f *fixture, s *Snapshot, query string, minor int) (*Result, error) {
	t.Helper()
	params, perr := qs.ParseQuery(f.expand(query))
	if perr != nil {
		t.Fatalf("parse %q: %v", query, perr)
	}
	q, perr := qs.ParseCandidates(params, minor)
	if perr != nil {
		return nil, perr
	}
	return Find(context.Background(), s, Request{Query: q, NestedAware: minor >= 29})
}

// values collects, like gabbi's $.allocation_requests..allocations[P].resources[RC],
// the amounts of class rc from provider name over all requests, sorted.
func values(f *fixture, s *Snapshot, r *Result, name, rc string) []int64 {
	p, _ := s.Lookup(f.uuid(name))
	var out []int64
	for _, ar := range r.Requests {
		for _, al := range ar.Allocations {
			if al.Provider != p {
				continue
			}
			for _, res := range al.Resources {
				if s.ClassName(res.Class) == rc {
					out = append(out, res.Amount)
				}
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

type acCase struct {
	name    string
	query   string
	minor   int
	nreq    int
	nsum    int // -1: not checked
	vals    map[string][]int64
	wantErr string
}

func runCases(t *testing.T, f *fixture, cases []acCase) {
	s := f.snapshot(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := find(t, f, s, tc.query, tc.minor)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Requests) != tc.nreq {
				t.Errorf("requests = %d, want %d", len(r.Requests), tc.nreq)
				for _, ar := range r.Requests {
					t.Log(describe(f, s, ar))
				}
			}
			if tc.nsum >= 0 && len(r.Summaries) != tc.nsum {
				t.Errorf("summaries = %d, want %d", len(r.Summaries), tc.nsum)
			}
			for k, want := range tc.vals {
				name, rc, _ := strings.Cut(k, "/")
				if got := values(f, s, r, name, rc); !reflect.DeepEqual(got, want) {
					t.Errorf("%s = %v, want %v", k, got, want)
				}
			}
		})
	}
}

func describe(f *fixture, s *Snapshot, ar AllocationRequest) string {
	names := map[string]string{}
	for n, u := range f.uuids {
		names[u] = n
	}
	var parts []string
	for _, al := range ar.Allocations {
		var rs []string
		for _, r := range al.Resources {
			rs = append(rs, fmt.Sprintf("%s:%d", s.ClassName(r.Class), r.Amount))
		}
		parts = append(parts, names[s.Provider(al.Provider).UUID]+"("+strings.Join(rs, ",")+")")
	}
	var ms []string
	for _, m := range ar.Mappings {
		var ps []string
		for _, p := range m.Providers {
			ps = append(ps, names[s.Provider(p).UUID])
		}
		ms = append(ms, fmt.Sprintf("%q:%v", m.Suffix, ps))
	}
	return strings.Join(parts, " ") + " " + strings.Join(ms, " ")
}

type v = map[string][]int64

func TestSharedStorage(t *testing.T) {
	runCases(t, sharedStorageFixture(), []acCase{
		{"no allocations yet", "resources=VCPU:1,MEMORY_MB:1024,DISK_GB:100", 10, 5, 4, v{
			"cn1/VCPU": {1, 1}, "cn2/VCPU": {1, 1, 1}, "cn2/DISK_GB": {100}, "ss/DISK_GB": {100, 100}, "ss2/DISK_GB": {100, 100}}, ""},
		{"bad class", "resources=MCPU:99", 10, 0, 0, nil, "Invalid resource class in resources parameter: No such resource class MCPU."},
		{"limit", "resources=VCPU:1,MEMORY_MB:1024,DISK_GB:100&limit=1", 16, 1, -1, nil, ""},
		{"multiple limits first", "resources=VCPU:1,MEMORY_MB:1024,DISK_GB:100&limit=10&limit=1", 16, 5, -1, nil, ""},
		{"invalid trait", "resources=VCPU:1&required=INVALID_TRAIT", 17, 0, 0, nil, "No such trait(s): INVALID_TRAIT."},
		{"required trait", "resources=VCPU:1,MEMORY_MB:1024,DISK_GB:100&required=HW_CPU_X86_SSE", 17, 2, 3, nil, ""},
		{"forbidden trait", "resources=VCPU:1,MEMORY_MB:1024,DISK_GB:100&required=!HW_CPU_X86_SSE", 22, 3, -1, v{
			"cn2/VCPU": {1, 1, 1}, "cn2/DISK_GB": {100}, "ss/DISK_GB": {100}, "ss2/DISK_GB": {100}}, ""},
		{"two required traits", "resources=VCPU:1,MEMORY_MB:1024,DISK_GB:100&required=HW_CPU_X86_SSE,HW_CPU_X86_SSE2", 17, 2, 3, nil, ""},
		{"required no match", "resources=VCPU:1,MEMORY_MB:1024,DISK_GB:100&required=HW_CPU_X86_SSE3", 17, 0, 0, nil, ""},
		{"vcpu 1.26", "resources=VCPU:1", 26, 2, 2, nil, ""},
		{"vcpu 1.29", "resources=VCPU:1", 29, 2, 10, nil, ""},
		{"nested only old", "resources=SRIOV_NET_VF:4", 28, 4, 4, nil, ""},
		{"nested only new", "resources=SRIOV_NET_VF:4", 29, 4, 10, nil, ""},
		{"root and nested old", "resources=VCPU:1,SRIOV_NET_VF:4", 28, 0, 0, nil, ""},
		{"root and nested new", "resources=VCPU:1,SRIOV_NET_VF:4", 29, 4, 10, v{
			"cn1/VCPU": {1, 1}, "pf1_1/SRIOV_NET_VF": {4}, "pf1_2/SRIOV_NET_VF": {4}, "cn2/VCPU": {1, 1}}, ""},
		{"nested limit", "resources=VCPU:1,SRIOV_NET_VF:4&limit=1", 29, 1, 5, nil, ""},
		{"shared and nested old", "resources=DISK_GB:10,SRIOV_NET_VF:4", 28, 8, 6, nil, ""},
		{"in tree root", "resources=VCPU:1,SRIOV_NET_VF:4&in_tree={cn1}", 31, 2, 5, v{"cn1/VCPU": {1, 1}}, ""},
		{"in tree child", "resources=VCPU:1,SRIOV_NET_VF:4&in_tree={pf1_2}", 31, 2, 5, v{"cn1/VCPU": {1, 1}}, ""},
		{"in tree shared 1", "resources=VCPU:1,DISK_GB:10&in_tree={cn1}", 31, 0, 0, nil, ""},
		{"in tree shared 2", "resources=VCPU:1,DISK_GB:10&in_tree={cn2}", 31, 1, -1, v{"cn2/DISK_GB": {10}}, ""},
		{"in tree shared 3", "resources=VCPU:1,DISK_GB:10&in_tree={ss}", 31, 0, 0, nil, ""},
		{"in_tree1 root", "resources1=VCPU:1&in_tree1={cn1}", 31, 1, -1, v{"cn1/VCPU": {1}}, ""},
		{"in_tree1 child", "resources1=VCPU:1&in_tree1={pf1_1}", 31, 1, -1, v{"cn1/VCPU": {1}}, ""},
		{"in_tree1 child resource", "resources1=SRIOV_NET_VF:4&in_tree1={cn1}", 31, 2, -1, nil, ""},
		{"granular local storage nonexistent", "resources=VCPU:1&resources1=DISK_GB:10&in_tree1={cn1}", 31, 0, -1, nil, ""},
		{"granular local storage exists", "resources=VCPU:1&resources1=DISK_GB:10&in_tree1={cn2}", 31, 1, -1, v{"cn2/VCPU": {1}, "cn2/DISK_GB": {10}}, ""},
		{"granular shared storage", "resources=VCPU:1&resources1=DISK_GB:10&in_tree1={ss}", 31, 2, -1, v{
			"cn1/VCPU": {1}, "cn2/VCPU": {1}, "ss/DISK_GB": {10, 10}}, ""},
		{"unnumbered compute granular shared disk", "resources=VCPU:1&in_tree={cn1}&resources1=DISK_GB:10", 31, 2, -1, v{
			"cn1/VCPU": {1, 1}, "ss/DISK_GB": {10}, "ss2/DISK_GB": {10}}, ""},
		{"unnumbered compute granular shared or local", "resources=VCPU:1&in_tree={cn2}&resources1=DISK_GB:10", 31, 3, -1, v{
			"cn2/VCPU": {1, 1, 1}, "cn2/DISK_GB": {10}, "ss/DISK_GB": {10}, "ss2/DISK_GB": {10}}, ""},
		{"granular compute and granular shared", "resources1=VCPU:1&in_tree1={cn1}&resources2=DISK_GB:10&in_tree2={ss}&group_policy=none", 31, 1, -1, v{
			"cn1/VCPU": {1}, "ss/DISK_GB": {10}}, ""},
	})
}

func TestGranular(t *testing.T) {
	runCases(t, granularFixture(), []acCase{
		{"different groups none", "resources1=VCPU:1&resources2=MEMORY_MB:1024&group_policy=none", 25, 3, 3, v{"cn_left/MEMORY_MB": {1024}}, ""},
		{"different groups isolate", "resources1=VCPU:1&resources2=MEMORY_MB:1024&group_policy=isolate", 25, 0, 0, nil, ""},
		{"first group_policy", "resources1=VCPU:1&resources2=MEMORY_MB:1024&group_policy=isolate&group_policy=none", 25, 0, 0, nil, ""},
		{"resources combine", "resources=VCPU:3,MEMORY_MB:512&resources1=VCPU:1,MEMORY_MB:1024&resources2=VCPU:2&group_policy=none", 25, 3, 3, v{
			"cn_left/VCPU": {6}, "cn_left/MEMORY_MB": {1536}, "cn_right/VCPU": {6}}, ""},
		{"one numbered group", "resources=VCPU:1&resources1=MEMORY_MB:2048", 25, 3, 3, nil, ""},
		{"disk sharing isolated", "resources1=VCPU:1,MEMORY_MB:1024&resources2=DISK_GB:100&group_policy=isolate", 25, 5, 5, nil, ""},
		{"disk sharing non-isolated", "resources1=VCPU:1,MEMORY_MB:1024&resources2=DISK_GB:100&group_policy=none", 25, 7, 5, nil, ""},
		{"disk alone", "resources1=DISK_GB:800", 25, 2, 2, v{"shr_disk_1/DISK_GB": {800}, "shr_disk_2/DISK_GB": {800}}, ""},
		{"disk alone non-granular", "resources=DISK_GB:800", 25, 2, 2, v{"shr_disk_1/DISK_GB": {800}, "shr_disk_2/DISK_GB": {800}}, ""},
		{"isolated ssd", "resources1=VCPU:1,MEMORY_MB:1024&resources2=DISK_GB:100&required2=CUSTOM_DISK_SSD&group_policy=isolate", 25, 2, 3, v{
			"shr_disk_1/DISK_GB": {100, 100}}, ""},
		{"no isolation forbid ssd", "resources1=VCPU:1&resources2=DISK_GB:100&required2=!CUSTOM_DISK_SSD&group_policy=none", 25, 4, 4, v{
			"cn_left/VCPU": {1, 1}, "cn_middle/VCPU": {1}, "cn_right/VCPU": {1}, "shr_disk_2/DISK_GB": {100, 100, 100}}, ""},
		{"member_of filters", "resources1=VCPU:1&resources2=DISK_GB:100&member_of2={aggC}&group_policy=none", 25, 1, 1, v{
			"cn_right/VCPU": {1}, "cn_right/DISK_GB": {100}}, ""},
		{"required forbidden member_of in", "resources1=VCPU:1&required1=!HW_CPU_X86_SSE&resources2=DISK_GB:100&required2=CUSTOM_DISK_SSD&member_of2=in:{aggA},{aggC}&group_policy=none", 25, 2, 3, v{
			"cn_left/VCPU": {1}, "cn_right/VCPU": {1}, "shr_disk_1/DISK_GB": {100}}, ""},
		{"long suffix", "resources_compute=VCPU:1&required_compute=!HW_CPU_X86_SSE&resources_disk=DISK_GB:100&required_disk=CUSTOM_DISK_SSD&member_of_disk=in:{aggA},{aggC}&group_policy=none", 33, 2, 3, nil, ""},
		{"multiple member_of", "resources1=VCPU:1&resources2=DISK_GB:100&member_of2=in:{aggB},{aggC}&member_of2={aggA}&group_policy=isolate", 25, 3, 4, v{
			"shr_disk_2/DISK_GB": {100, 100, 100}}, ""},
		{"multiple disks multiple networks", "resources1=VCPU:1&resources2=VGPU:1&required2=HW_GPU_API_DXVA&resources3=MEMORY_MB:1024&resources4=DISK_GB:100&required4=CUSTOM_DISK_SSD&resources5=DISK_GB:50&required5=!CUSTOM_DISK_SSD&resources6=SRIOV_NET_VF:1,CUSTOM_NET_MBPS:1000&resources7=SRIOV_NET_VF:2,CUSTOM_NET_MBPS:2000&group_policy=none", 25, 3, 5, v{
			"cn_left/SRIOV_NET_VF": {3, 3}, "cn_left/CUSTOM_NET_MBPS": {3000, 3000}, "cn_left/DISK_GB": {50},
			"shr_disk_1/DISK_GB": {100, 100}, "shr_disk_2/DISK_GB": {50, 50}, "cn_right/DISK_GB": {100},
			"shr_net/SRIOV_NET_VF": {3}, "shr_net/CUSTOM_NET_MBPS": {3000}}, ""},
		{"exceeds capacity", "resources=VCPU:2,MEMORY_MB:2048,SRIOV_NET_VF:1,CUSTOM_NET_MBPS:2000&resources1=SRIOV_NET_VF:1,CUSTOM_NET_MBPS:3000", 25, 1, 2, v{
			"cn_right/VCPU": {2}, "shr_net/SRIOV_NET_VF": {2}, "shr_net/CUSTOM_NET_MBPS": {5000}}, ""},
		{"exceeds max_unit", "resources=VGPU:1&resources1=VGPU:1&resources2=VGPU:1&group_policy=none", 25, 1, 1, v{"cn_left/VGPU": {3}}, ""},
		{"mapping non granular", "resources=VCPU:1&required=HW_CPU_X86_SSE", 34, 1, 1, nil, ""},
		{"mapping with shared", "resources=VCPU:1,DISK_GB:1&required=HW_CPU_X86_SSE", 34, 2, 3, nil, ""},
		{"group mapping with shared", "resources=VCPU:1&resources_DISK_A=DISK_GB:1&resources_DISK_B=DISK_GB:1&required=HW_CPU_X86_SSE&group_policy=isolate", 34, 2, 3, nil, ""},
		{"any traits overwrite 1.38", "required=CUSTOM_FOO&required=HW_CPU_X86_MMX&resources=VCPU:1", 38, 1, -1, nil, ""},
		{"any traits overwrite named 1.38", "requiredX=CUSTOM_FOO&requiredX=HW_CPU_X86_MMX&resourcesX=VCPU:1", 38, 1, -1, nil, ""},
		{"OR AND NOT", "required=in:HW_GPU_API_DXVA,HW_NIC_ACCEL_TLS&required=HW_CPU_X86_AVX,!CUSTOM_FOO&resources=VCPU:1,DISK_GB:1", 39, 2, -1, v{
			"cn_middle/VCPU": {1, 1}, "shr_disk_1/DISK_GB": {1}, "shr_disk_2/DISK_GB": {1}}, ""},
		{"multiple OR", "required=in:HW_CPU_X86_MMX,HW_NIC_ACCEL_TLS&required=in:CUSTOM_DISK_SSD,CUSTOM_FOO&resources=VCPU:1,DISK_GB:1", 39, 3, -1, v{
			"cn_middle/VCPU": {1}, "shr_disk_1/DISK_GB": {1}, "cn_right/VCPU": {1, 1}, "cn_right/DISK_GB": {1}, "shr_disk_2/DISK_GB": {1}}, ""},
	})
}

func TestNUMAAggregate(t *testing.T) {
	runCases(t, numaAggregateFixture(), []acCase{
		{"no aggregate", "resources=VCPU:1", 32, 4, -1, nil, ""},
		{"agg A", "resources=VCPU:1&member_of={aggA}", 32, 4, -1, nil, ""},
		{"agg A granular", "resources1=VCPU:1&member_of1={aggA}", 32, 0, -1, nil, ""},
		{"agg B", "resources=VCPU:1&member_of={aggB}", 32, 2, -1, v{"numa2_1/VCPU": {1}, "numa2_2/VCPU": {1}}, ""},
		{"agg C", "resources=VCPU:1&member_of={aggC}", 32, 1, -1, v{"numa1_1/VCPU": {1}}, ""},
		{"agg C granular", "resources1=VCPU:1&member_of1={aggC}", 32, 1, -1, v{"numa1_1/VCPU": {1}}, ""},
		{"shared storage", "resources=VCPU:1,DISK_GB:1000", 32, 6, -1, v{
			"numa1_1/VCPU": {1, 1}, "numa1_2/VCPU": {1, 1}, "numa2_1/VCPU": {1}, "ss1/DISK_GB": {1000, 1000, 1000, 1000}, "ss2/DISK_GB": {1000, 1000}}, ""},
		{"shared agg A", "resources=VCPU:1,DISK_GB:1000&member_of={aggA}", 32, 4, -1, v{"ss1/DISK_GB": {1000, 1000, 1000, 1000}}, ""},
		{"shared agg B", "resources=VCPU:1,DISK_GB:1000&member_of={aggB}", 32, 0, -1, nil, ""},
		{"shared agg C", "resources=VCPU:1,DISK_GB:1000&member_of={aggC}", 32, 1, -1, v{"numa1_1/VCPU": {1}, "ss2/DISK_GB": {1000}}, ""},
		{"shared not A", "resources=VCPU:1,DISK_GB:1000&member_of=!{aggA}", 32, 0, -1, nil, ""},
		{"shared not B", "resources=VCPU:1,DISK_GB:1000&member_of=!{aggB}", 32, 4, -1, v{"ss1/DISK_GB": {1000, 1000}, "ss2/DISK_GB": {1000, 1000}}, ""},
		{"shared not C", "resources=VCPU:1,DISK_GB:1000&member_of=!{aggC}", 32, 3, -1, v{"ss1/DISK_GB": {1000, 1000, 1000}}, ""},
		{"A or B not C", "resources=VCPU:1,DISK_GB:1000&member_of=in:{aggA},{aggB}&member_of=!{aggC}", 32, 3, -1, nil, ""},
		{"A not (B or C)", "resources=VCPU:1,DISK_GB:1000&member_of={aggA}&member_of=!in:{aggB},{aggC}", 32, 1, -1, v{"numa1_2/VCPU": {1}, "ss1/DISK_GB": {1000}}, ""},
	})
}

func TestNUMANetwork(t *testing.T) {
	runCases(t, numaNetworkFixture(false), []acCase{
		{"mapping simple", "resources=VCPU:1", 34, 3, 23, nil, ""},
		{"isolated mapping", "resources_LEFT=VCPU:1&resources_RIGHT=VCPU:1&group_policy=isolate", 34, 2, 12, nil, ""},
		{"granular plus not granular", "required_NET1=CUSTOM_PHYSNET1&resources_NET1=NET_BW_EGR_KILOBIT_PER_SEC:10&required_NET2=CUSTOM_PHYSNET2&resources_NET2=NET_BW_EGR_KILOBIT_PER_SEC:20&resources=VCPU:1&group_policy=isolate", 34, 2, 12, nil, ""},
		{"non isolated consolidated", "resources_BWA=NET_BW_EGR_KILOBIT_PER_SEC:10&required_BWA=CUSTOM_PHYSNET1&resources_BWB=NET_BW_EGR_KILOBIT_PER_SEC:20&required_BWB=CUSTOM_PHYSNET1&group_policy=none", 34, 1, 12, v{"esn1/NET_BW_EGR_KILOBIT_PER_SEC": {30}}, ""},
		{"root_required conflicting", "resources=VCPU:1&root_required=HW_CPU_X86_AVX2,HW_CPU_X86_SSE,!HW_CPU_X86_AVX2", 35, 0, 0, nil, "Conflicting required and forbidden traits found in root_required: HW_CPU_X86_AVX2"},
		{"root_required nonexistent", "resources=VCPU:1&root_required=CUSTOM_NO_EXIST,HW_CPU_X86_SSE,!HW_CPU_X86_AVX", 35, 0, 0, nil, "No such trait(s): CUSTOM_NO_EXIST"},
		{"root_required nonexistent forbidden", "resources=VCPU:1&root_required=!CUSTOM_NO_EXIST,HW_CPU_X86_SSE,!HW_CPU_X86_AVX", 35, 0, 0, nil, "No such trait(s): CUSTOM_NO_EXIST"},
		{"root_required on children", "resources=VCPU:1&root_required=HW_NUMA_ROOT", 35, 0, -1, nil, ""},
		{"root_required sharing", "resources=VCPU:1,MEMORY_MB:1024,DISK_GB:100&root_required=MISC_SHARES_VIA_AGGREGATE", 35, 0, -1, nil, ""},
		{"multiattach no sharing", "resources=VCPU:1,MEMORY_MB:1024&root_required=COMPUTE_VOLUME_MULTI_ATTACH", 35, 4, -1, v{
			"numa0/VCPU": {1, 1}, "numa1/VCPU": {1, 1}, "numa0/MEMORY_MB": {1024, 1024}}, ""},
		{"multiattach granular none", "resources1=VCPU:1&resources2=MEMORY_MB:1024&group_policy=none&root_required=COMPUTE_VOLUME_MULTI_ATTACH", 35, 4, -1, nil, ""},
		{"multiattach granular isolate", "resources1=VCPU:1&resources2=MEMORY_MB:1024&group_policy=isolate&root_required=COMPUTE_VOLUME_MULTI_ATTACH", 35, 2, -1, nil, ""},
		{"multiattach sharing", "resources=VCPU:1,MEMORY_MB:1024,DISK_GB:100&root_required=COMPUTE_VOLUME_MULTI_ATTACH", 35, 4, -1, nil, ""},
		{"multiattach granular sharing", "resources1=VCPU:1,MEMORY_MB:1024&resources2=DISK_GB:100&group_policy=none&root_required=COMPUTE_VOLUME_MULTI_ATTACH", 35, 2, -1, nil, ""},
		{"foo case 1", "resources=VCPU:1,DISK_GB:100&required=CUSTOM_FOO", 35, 3, -1, v{
			"numa1/VCPU": {1}, "cn2/VCPU": {1, 1}, "ss1/DISK_GB": {100, 100}, "cn2/DISK_GB": {100}}, ""},
		{"foo case 2", "resources=VCPU:1,DISK_GB:100&root_required=CUSTOM_FOO", 35, 2, -1, nil, ""},
		{"foo case 3", "resources1=VCPU:1&required1=CUSTOM_FOO&resources2=DISK_GB:100&group_policy=none", 35, 3, -1, nil, ""},
		{"foo case 4", "resources1=VCPU:1&resources2=DISK_GB:100&group_policy=none&root_required=CUSTOM_FOO", 35, 2, -1, nil, ""},
		{"forbidden on children", "resources=VCPU:3&root_required=!HW_NUMA_ROOT", 35, 2, -1, v{"numa1/VCPU": {3}, "cn2/VCPU": {3}}, ""},
		{"forbidden sharing root", "resources=VCPU:1,MEMORY_MB:1024,DISK_GB:100&root_required=!MISC_SHARES_VIA_AGGREGATE", 35, 6, -1, v{"ss1/DISK_GB": {100, 100, 100, 100, 100}}, ""},
		{"irrelevant forbidden", "resources=VCPU:1,MEMORY_MB:1024,DISK_GB:100&root_required=CUSTOM_FOO,!HW_NUMA_ROOT", 35, 2, -1, nil, ""},
		{"forbiddens cancel", "resources=VCPU:1,MEMORY_MB:1024,DISK_GB:100&root_required=!CUSTOM_FOO,!COMPUTE_VOLUME_MULTI_ATTACH", 35, 0, -1, nil, ""},
		{"isolate foo granular sharing", "resources1=VCPU:1,MEMORY_MB:1024&resources2=DISK_GB:100&group_policy=none&root_required=!CUSTOM_FOO", 35, 2, -1, v{"ss1/DISK_GB": {100, 100}}, ""},
		{"required and root_required", "resources=VCPU:1&required=CUSTOM_FOO&root_required=CUSTOM_FOO", 35, 1, -1, v{"cn2/VCPU": {1}}, ""},
		{"required positive root negative", "resources1=VCPU:1&required1=CUSTOM_FOO&root_required=!CUSTOM_FOO", 35, 1, -1, v{"numa1/VCPU": {1}}, ""},
		{"required negative root positive", "resources1=VCPU:1&required1=!CUSTOM_FOO&root_required=CUSTOM_FOO", 35, 0, -1, nil, ""},
		{"no resourceless without same subtree", "resources_COMPUTE=VCPU:1&resources_ACCEL=CUSTOM_FPGA:1&group_policy=none", 36, 6, -1, nil, ""},
		{"no resourceless single same subtree", "resources_COMPUTE=VCPU:1&resources_ACCEL=CUSTOM_FPGA:1&same_subtree=_COMPUTE&group_policy=none", 36, 6, -1, nil, ""},
		{"no resourceless with same subtree", "resources_COMPUTE=VCPU:1&resources_ACCEL=CUSTOM_FPGA:1&same_subtree=_COMPUTE,_ACCEL&group_policy=none", 36, 3, -1, v{
			"numa0/VCPU": {1}, "numa1/VCPU": {1, 1}}, ""},
		{"same subtree same provider", "resources_COMPUTE1=VCPU:1&resources_COMPUTE2=MEMORY_MB:1024&same_subtree=_COMPUTE1,_COMPUTE2&group_policy=none", 36, 3, -1, nil, ""},
		{"same subtree same provider isolate", "resources_COMPUTE1=VCPU:1&resources_COMPUTE2=MEMORY_MB:1024&same_subtree=_COMPUTE1,_COMPUTE2&group_policy=isolate", 36, 0, -1, nil, ""},
		{"resourceful without same subtree", "resources=VCPU:1&resources_PORT1=CUSTOM_VF:4&required_PORT1=CUSTOM_PHYSNET1&resources_PORT2=CUSTOM_VF:4&required_PORT2=CUSTOM_PHYSNET2&group_policy=none", 36, 2, -1, v{
			"cn2/VCPU": {1, 1}, "pf1_1/CUSTOM_VF": {4}, "pf1_2/CUSTOM_VF": {4, 4}, "pf3_1/CUSTOM_VF": {4}}, ""},
		{"resourceless 4VFs", "resources=VCPU:1&required_NIC=CUSTOM_HW_NIC_ROOT&resources_PORT1=CUSTOM_VF:4&required_PORT1=CUSTOM_PHYSNET1&resources_PORT2=CUSTOM_VF:4&required_PORT2=CUSTOM_PHYSNET2&same_subtree=_NIC,_PORT1,_PORT2&group_policy=none", 36, 1, -1, nil, ""},
		{"resourceless 2VFs", "resources=VCPU:1&required_NIC=CUSTOM_HW_NIC_ROOT&resources_PORT1=CUSTOM_VF:2&required_PORT1=CUSTOM_PHYSNET1&resources_PORT2=CUSTOM_VF:2&required_PORT2=CUSTOM_PHYSNET2&same_subtree=_NIC,_PORT1,_PORT2&group_policy=none", 36, 5, -1, v{
			"cn2/VCPU": {1, 1, 1, 1, 1}, "pf2_1/CUSTOM_VF": {2, 2}}, ""},
		{"2FPGAs forbidden", "required_NUMA=HW_NUMA_ROOT,!CUSTOM_FOO&resources_ACCEL1=CUSTOM_FPGA:1&resources_ACCEL2=CUSTOM_FPGA:1&same_subtree=_NUMA,_ACCEL1,_ACCEL2&group_policy=isolate", 36, 0, -1, nil, ""},
		{"multiple same_subtree", "required_NUMA=HW_NUMA_ROOT&resources_COMPUTE=VCPU:2,MEMORY_MB:512&resources_FPGA=CUSTOM_FPGA:1&resources_GPU=VGPU:1&required_SRIOV=CUSTOM_VNIC_TYPE_DIRECT&resources_NET1=NET_BW_EGR_KILOBIT_PER_SEC:100&required_NET1=CUSTOM_PHYSNET1&resources_NET2=NET_BW_EGR_KILOBIT_PER_SEC:100&required_NET2=CUSTOM_PHYSNET2&same_subtree=_NUMA,_COMPUTE,_GPU,_FPGA&same_subtree=_SRIOV,_NET1,_NET2&group_policy=none", 36, 1, -1, v{
			"numa0/VCPU": {2}, "fpga0/CUSTOM_FPGA": {1}, "pgpu0/VGPU": {1}}, ""},
		{"overlapping same_subtrees", "resources_COMPUTE=VCPU:1&required_NIC=CUSTOM_HW_NIC_ROOT&resources_PORT1=CUSTOM_VF:2&required_PORT1=CUSTOM_PHYSNET1&same_subtree=_NIC,_COMPUTE&same_subtree=_NIC,_PORT1&group_policy=none", 36, 4, 11, nil, ""},
		{"combined same_subtree", "resources_COMPUTE=VCPU:1&required_NIC=CUSTOM_HW_NIC_ROOT&resources_PORT1=CUSTOM_VF:2&required_PORT1=CUSTOM_PHYSNET1&same_subtree=_NIC,_COMPUTE,_PORT1&group_policy=none", 36, 12, 11, nil, ""},
		{"ancestry hole", "required_MULTI_ATTACH=COMPUTE_VOLUME_MULTI_ATTACH&resources_BW=NET_BW_EGR_KILOBIT_PER_SEC:100&resources_COMPUTE=VCPU:4&same_subtree=_MULTI_ATTACH,_BW,_COMPUTE&group_policy=isolate", 36, 3, -1, nil, ""},
	})
}

func TestDeepSameSubtree(t *testing.T) {
	want := v{"cn2/VCPU": {1, 1, 1, 1}, "pf1_1/CUSTOM_VF": {2}, "pf3_1/CUSTOM_VF": {2}, "pf2_1/CUSTOM_VF": {2}, "pf2_3/CUSTOM_VF": {2}}
	runCases(t, numaNetworkFixture(true), []acCase{
		{"one compute", "resources_COMPUTE=VCPU:1&required_COMPUTE=CUSTOM_FOO&required_NIC=CUSTOM_HW_NIC_ROOT&resources_PORT1=CUSTOM_VF:2&required_PORT1=CUSTOM_PHYSNET1&same_subtree=_NIC,_COMPUTE&same_subtree=_NIC,_PORT1&group_policy=none", 36, 4, 26, want, ""},
		{"with foo", "resources_COMPUTE=VCPU:1&required_COMPUTE=CUSTOM_FOO&resources_PORT1=CUSTOM_VF:2&required_PORT1=CUSTOM_PHYSNET1&same_subtree=_COMPUTE,_PORT1&group_policy=none", 36, 4, 26, want, ""},
		{"no foo", "resources_COMPUTE=VCPU:1&resources_PORT1=CUSTOM_VF:2&required_PORT1=CUSTOM_PHYSNET1&same_subtree=_COMPUTE,_PORT1&group_policy=none", 36, 4, 26, want, ""},
	})
}

func TestNeutronQoS(t *testing.T) {
	runCases(t, neutronQoSFixture(), []acCase{
		{"single port non msn", "resources=VCPU:1,MEMORY_MB:1024,DISK_GB:10&resources-port-normal-pps=NET_PACKET_RATE_KILOPACKET_PER_SEC:1000&required-port-normal-pps=CUSTOM_VNIC_TYPE_NORMAL&resources-port-normal-bw=NET_BW_EGR_KILOBIT_PER_SEC:1000,NET_BW_IGR_KILOBIT_PER_SEC:1000&required-port-normal-bw=CUSTOM_VNIC_TYPE_NORMAL,CUSTOM_PHYSNET_OTHER&same_subtree=-port-normal-pps,-port-normal-bw&group_policy=none", 39, 1, -1, nil, ""},
		{"single port msn", "resources=VCPU:1,MEMORY_MB:1024,DISK_GB:10&resources-port-msn-pps=NET_PACKET_RATE_KILOPACKET_PER_SEC:1000&required-port-msn-pps=CUSTOM_VNIC_TYPE_NORMAL&resources-port-msn-bw=NET_BW_EGR_KILOBIT_PER_SEC:1000,NET_BW_IGR_KILOBIT_PER_SEC:1000&required-port-msn-bw=CUSTOM_VNIC_TYPE_NORMAL&required-port-msn-bw=in:CUSTOM_PHYSNET_MSN_S1,CUSTOM_PHYSNET_MSN_S2&same_subtree=-port-msn-pps,-port-msn-bw&group_policy=none", 39, 4, -1, v{
			"compute3/VCPU": {1, 1}, "compute3:br_ex/NET_BW_IGR_KILOBIT_PER_SEC": {1000}, "compute3:br_ex2/NET_BW_IGR_KILOBIT_PER_SEC": {1000}}, ""},
		{"two ports msn", "resources=VCPU:1,MEMORY_MB:1024,DISK_GB:10&resources-port1-msn-pps=NET_PACKET_RATE_KILOPACKET_PER_SEC:100&required-port1-msn-pps=CUSTOM_VNIC_TYPE_NORMAL&resources-port1-msn-bw=NET_BW_EGR_KILOBIT_PER_SEC:100,NET_BW_IGR_KILOBIT_PER_SEC:100&required-port1-msn-bw=CUSTOM_VNIC_TYPE_NORMAL&required-port1-msn-bw=in:CUSTOM_PHYSNET_MSN_S1,CUSTOM_PHYSNET_MSN_S2&same_subtree=-port1-msn-pps,-port1-msn-bw&resources-port2-msn-pps=NET_PACKET_RATE_KILOPACKET_PER_SEC:100&required-port2-msn-pps=CUSTOM_VNIC_TYPE_NORMAL&resources-port2-msn-bw=NET_BW_EGR_KILOBIT_PER_SEC:100,NET_BW_IGR_KILOBIT_PER_SEC:100&required-port2-msn-bw=CUSTOM_VNIC_TYPE_NORMAL&required-port2-msn-bw=in:CUSTOM_PHYSNET_MSN_S1,CUSTOM_PHYSNET_MSN_S2&same_subtree=-port2-msn-pps,-port2-msn-bw&group_policy=none", 39, 6, -1, v{
			"compute3/VCPU": {1, 1, 1, 1}, "compute3:br_ex/NET_BW_IGR_KILOBIT_PER_SEC": {100, 100, 200}}, ""},
	})
}

func TestNonSharedStorage(t *testing.T) {
	runCases(t, nonSharedStorageFixture(), []acCase{
		{"plain", "resources=VCPU:1,MEMORY_MB:1024,DISK_GB:100", 21, 3, 3, nil, ""},
		{"unknown agg", "resources=VCPU:1&member_of={aggA}", 21, 0, 0, nil, ""},
		{"limit", "resources=VCPU:1&limit=2", 21, 2, 2, nil, ""},
	})
}
