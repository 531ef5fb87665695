package differential

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unisched/unisched/tests/harness"
	"github.com/unisched/unisched/tests/load"
)

// query is one GET /allocation_candidates sent to both servers.
type query struct {
	mv, q string
	// limited answers are a server's choice among the candidates: only their
	// size is compared, and that every one is a candidate of the unlimited query.
	limited bool
	// quirk names a known upstream defect that makes its answer a subset of
	// the right one: then upstream's candidates must all be in unisched's,
	// and unisched's extra ones are logged, not failed.
	quirk string
}

// quirkSharingAnchor: upstream's AllocationRequest equality ignores the
// anchor root, and _alloc_candidates_multiple_providers unions the requests
// of all trees into one set. A non-granular group served by a sharing
// provider alone (here DISK_GB from ss1/ss3) therefore survives with only one
// of its anchors, the first tree in CPython's set order of internal ids, and
// the merge with the other groups loses every other anchor (ss1 with cn4 and
// cn2, ss3 with cn3). Matching that would mean reproducing upstream's
// internal ids and hash order; unisched keeps every anchor.
const quirkSharingAnchor = "upstream keeps one anchor per sharing-only allocation request (set dedup ignoring the anchor)"

const base = "resources=VCPU:1,MEMORY_MB:512"

var queries = []query{
	// Resources, capacity, inventory constraints and usage.
	{mv: "1.39", q: "resources=VCPU:1"},
	{mv: "1.39", q: "resources=VCPU:2"},
	{mv: "1.39", q: "resources=VCPU:3"},
	{mv: "1.39", q: "resources=VCPU:1,MEMORY_MB:1024"},
	{mv: "1.39", q: "resources=VCPU:1,MEMORY_MB:1500"},
	{mv: "1.39", q: "resources=MEMORY_MB:3584"},
	{mv: "1.39", q: "resources=VCPU:100"},
	// Sharing providers.
	{mv: "1.39", q: base + ",DISK_GB:10"},
	{mv: "1.39", q: base + ",DISK_GB:150"},
	{mv: "1.39", q: "resources=DISK_GB:50"},
	{mv: "1.39", q: base + ",IPV4_ADDRESS:1"},
	{mv: "1.39", q: base + ",DISK_GB:10,IPV4_ADDRESS:2"},
	{mv: "1.39", q: "resources=VCPU:1,DISK_GB:10&required=STORAGE_DISK_SSD"},
	// Traits.
	{mv: "1.39", q: base + "&required=HW_CPU_X86_AVX2"},
	{mv: "1.39", q: base + "&required=!HW_CPU_X86_AVX2"},
	{mv: "1.39", q: base + "&required=HW_CPU_X86_AVX2,!CUSTOM_FAST"},
	{mv: "1.39", q: base + "&required=in:HW_CPU_X86_AVX2,CUSTOM_FAST"},
	{mv: "1.39", q: base + "&required=in:HW_CPU_X86_AVX2,CUSTOM_FAST&required=!HW_CPU_X86_SSE42"},
	{mv: "1.39", q: base + "&required=CUSTOM_FAST"},
	{mv: "1.39", q: "resources=VCPU:1&root_required=HW_CPU_X86_AVX2"},
	{mv: "1.39", q: "resources=VCPU:1&root_required=!HW_CPU_X86_AVX2,!CUSTOM_FAST"},
	// Aggregates.
	{mv: "1.39", q: base + "&member_of={agg-a}"},
	{mv: "1.39", q: base + "&member_of=in:{agg-a},{agg-b}"},
	{mv: "1.39", q: base + "&member_of={agg-a}&member_of={agg-share}"},
	{mv: "1.39", q: base + "&member_of=!{agg-a}"},
	{mv: "1.39", q: base + "&member_of=!in:{agg-a},{agg-b}"},
	{mv: "1.39", q: base + ",DISK_GB:10&member_of={agg-share}"},
	// Nested trees.
	{mv: "1.39", q: base + ",SRIOV_NET_VF:1"},
	{mv: "1.39", q: base + ",SRIOV_NET_VF:1&required=CUSTOM_PHYSNET_A"},
	{mv: "1.39", q: base + ",SRIOV_NET_VF:2"},
	{mv: "1.39", q: "resources=VCPU:1&in_tree={nh1}"},
	{mv: "1.39", q: "resources=VCPU:1,DISK_GB:5&in_tree={ss1}"},
	{mv: "1.39", q: "resources=CUSTOM_MAGIC:1"},
	{mv: "1.39", q: "resources=CUSTOM_MAGIC:1,VCPU:1,SRIOV_NET_VF:1"},
	// Granular groups.
	{mv: "1.39", q: base + "&resources1=SRIOV_NET_VF:1&required1=CUSTOM_PHYSNET_A"},
	{mv: "1.39", q: "resources1=VCPU:1,MEMORY_MB:256&resources2=SRIOV_NET_VF:1&required2=CUSTOM_PHYSNET_B&group_policy=isolate"},
	{mv: "1.39", q: "resources1=VCPU:1&resources2=VCPU:1&group_policy=isolate"},
	{mv: "1.39", q: "resources1=VCPU:1&resources2=VCPU:1&group_policy=none"},
	{mv: "1.39", q: "resources=DISK_GB:10&resources1=VCPU:1&required1=CUSTOM_FAST&group_policy=none", quirk: quirkSharingAnchor},
	{mv: "1.39", q: "resources=DISK_GB:10&resources1=VCPU:1&group_policy=none", quirk: quirkSharingAnchor},
	{mv: "1.39", q: "resources1=DISK_GB:10&resources2=VCPU:1&required2=CUSTOM_FAST&group_policy=none"},
	{mv: "1.39", q: "resources_NUMA=VCPU:1,MEMORY_MB:256&resources_NIC=SRIOV_NET_VF:1&same_subtree=_NUMA,_NIC&group_policy=none"},
	{mv: "1.39", q: "resources_NUMA=VCPU:1&required_NUMA=CUSTOM_FAST&resources_NIC=SRIOV_NET_VF:1&required_NIC=CUSTOM_PHYSNET_A&same_subtree=_NUMA,_NIC&group_policy=isolate"},
	{mv: "1.39", q: "resources_A=VCPU:1&resources_B=SRIOV_NET_VF:1&same_subtree=_A,_B&group_policy=isolate&root_required=HW_CPU_X86_AVX2"},
	// Limits.
	{mv: "1.39", q: "resources=VCPU:1&limit=3", limited: true},
	{mv: "1.39", q: base + ",SRIOV_NET_VF:1&limit=1", limited: true},
	// Older microversions: response formats and features appearing.
	{mv: "1.10", q: base},
	{mv: "1.12", q: base + ",DISK_GB:10"},
	{mv: "1.17", q: base + "&required=HW_CPU_X86_AVX2"},
	{mv: "1.21", q: base + "&member_of=in:{agg-a},{agg-b}"},
	{mv: "1.25", q: "resources1=VCPU:1&resources2=SRIOV_NET_VF:1&group_policy=none"},
	{mv: "1.28", q: base + ",SRIOV_NET_VF:1"},
	{mv: "1.29", q: base + ",SRIOV_NET_VF:1"},
	{mv: "1.31", q: "resources=VCPU:1&in_tree={nh2}"},
	{mv: "1.33", q: "resources_X=VCPU:1&resources_Y=SRIOV_NET_VF:1&group_policy=none"},
	{mv: "1.34", q: "resources_X=VCPU:1&resources_Y=SRIOV_NET_VF:1&group_policy=none"},
	{mv: "1.35", q: "resources=VCPU:1&root_required=HW_CPU_X86_SSE42"},
	{mv: "1.38", q: base + "&required=in:HW_CPU_X86_AVX2,CUSTOM_FAST"},
	// Bad queries: the status and error code must match.
	{mv: "1.39", q: "resources=VCPU:0"},
	{mv: "1.39", q: "resources=CUSTOM_NOPE:1"},
	{mv: "1.39", q: "resources=VCPU:1&required=CUSTOM_NOPE"},
	{mv: "1.39", q: "resources=VCPU:1&member_of=not-a-uuid"},
	{mv: "1.39", q: "resources1=VCPU:1&resources2=VCPU:1"},
	{mv: "1.39", q: "resources=VCPU:1&in_tree=" + "00000000-0000-0000-0000-000000000000"},
	{mv: "1.39", q: "resources_NUMA=VCPU:1&same_subtree=_NUMA,_NOPE&group_policy=none"},
	{mv: "1.39", q: ""},
	{mv: "1.30", q: "resources=VCPU:1&in_tree={nh1}"},
}

// pair is the two servers with the world built on both, shared by the tests
// and stopped by TestMain.
type pair struct {
	upstream, unisched *harness.Server
	up, un             *load.Client
	skip               string // why the comparison cannot run here
	dir                string // configs, logs and the binary; removed at the end
	err                error
}

var (
	setupOnce sync.Once
	servers   pair
)

func TestMain(m *testing.M) {
	code := m.Run()
	for _, s := range []*harness.Server{servers.upstream, servers.unisched} {
		if err := s.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "differential: stopping:", err)
		}
	}
	if servers.dir != "" && code == 0 {
		_ = os.RemoveAll(servers.dir)
	} else if servers.dir != "" {
		fmt.Fprintln(os.Stderr, "differential: server logs kept in", servers.dir)
	}
	os.Exit(code)
}

// setup starts both servers once and builds the world on both. Without
// Debian's placement the tests skip, unless UNISCHED_REQUIRE_UPSTREAM=1
// (CI with the packages) makes that a failure. A unisched that answers 501
// to the world's requests is not finished yet: that skips too, naming the call.
func setup(t *testing.T) *pair {
	t.Helper()
	setupOnce.Do(func() { servers = start() })
	if servers.err != nil {
		t.Fatal(servers.err)
	}
	if servers.skip != "" {
		if os.Getenv("UNISCHED_REQUIRE_UPSTREAM") == "1" {
			t.Fatalf("UNISCHED_REQUIRE_UPSTREAM=1 but: %s", servers.skip)
		}
		t.Skip(servers.skip)
	}
	return &servers
}

func start() pair {
	var p pair
	if err := harness.UpstreamAvailable(); err != nil {
		p.skip = err.Error()
		return p
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	root, err := harness.ModuleRoot()
	if err != nil {
		p.err = err
		return p
	}
	dir, err := os.MkdirTemp("", "unisched-differential-")
	if err != nil {
		p.err = err
		return p
	}
	p.dir = dir
	bin := filepath.Join(dir, "unisched-bin")
	if err := harness.BuildUnisched(ctx, root, bin); err != nil {
		p.err = err
		return p
	}
	suffix := fmt.Sprint(os.Getpid())
	p.upstream, err = harness.StartUpstream(ctx, harness.UpstreamOptions{Workers: 2,
		DB: "differential_upstream_" + suffix, Dir: filepath.Join(dir, "upstream")})
	if err != nil {
		p.err = err
		return p
	}
	p.unisched, err = harness.StartUnisched(ctx, harness.UnischedOptions{Bin: bin,
		DB: "differential_unisched_" + suffix, Dir: filepath.Join(dir, "unisched")})
	if err != nil {
		p.err = err
		return p
	}
	p.up = load.NewClient(p.upstream.URL, 1, time.Minute)
	p.un = load.NewClient(p.unisched.URL, 1, time.Minute)
	if err := build(ctx, p.up); err != nil {
		p.err = fmt.Errorf("building the world on upstream: %w", err)
		return p
	}
	if err := build(ctx, p.un); err != nil {
		if strings.Contains(err.Error(), "HTTP 501") {
			p.skip = "unisched does not implement a call the world needs yet: " + err.Error()
		} else {
			p.err = fmt.Errorf("building the world on unisched: %w", err)
		}
	}
	return p
}

func TestCandidatesMatchUpstream(t *testing.T) {
	p := setup(t)
	ctx := context.Background()
	nm := names()
	for _, q := range queries {
		t.Run(q.mv+"?"+q.q, func(t *testing.T) {
			path := "/allocation_candidates?" + expand(q.q)
			up := p.up.Do(ctx, "GET", path, q.mv, nil)
			un := p.un.Do(ctx, "GET", path, q.mv, nil)
			if up.Err != nil || un.Err != nil {
				t.Fatalf("transport: upstream %v, unisched %v", up.Err, un.Err)
			}
			if up.Code != un.Code {
				t.Fatalf("status: upstream %s\nunisched %s", up, un)
			}
			if up.Code != 200 {
				if up.ErrorCode() != un.ErrorCode() {
					t.Errorf("error code: upstream %q, unisched %q\nupstream %s\nunisched %s", up.ErrorCode(), un.ErrorCode(), up, un)
				}
				return
			}
			a, err := load.ParseCandidates(up.Body)
			if err != nil {
				t.Fatalf("upstream: %v", err)
			}
			b, err := load.ParseCandidates(un.Body)
			if err != nil {
				t.Fatalf("unisched: %v", err)
			}
			if q.limited {
				checkLimited(t, p, ctx, q, a, b)
				return
			}
			if q.quirk != "" {
				checkQuirk(t, q, a, b, nm)
				return
			}
			if diff := load.DiffCandidates("upstream", a, "unisched", b, nm); len(diff) > 0 {
				t.Errorf("GET %s (%s) differs:\n%s", q.q, q.mv, strings.Join(diff, "\n"))
			}
			if a.Len() == 0 && !strings.Contains(q.q, "VCPU:100") {
				t.Logf("note: no candidates for %s", q.q) // a query that finds nothing tests little
			}
		})
	}
}

// checkQuirk accepts extra unisched candidates (logged) but nothing upstream
// has and unisched lacks, and equal summaries for the providers both name.
func checkQuirk(t *testing.T, q query, a, b load.Candidates, nm map[string]string) {
	t.Helper()
	for req, n := range a.Requests {
		if b.Requests[req] < n {
			t.Errorf("upstream candidate missing from unisched: %s", load.Readable(req, nm))
		}
	}
	for rp, sum := range a.Summaries {
		if got, ok := b.Summaries[rp]; !ok || got != sum {
			t.Errorf("summary of %s: upstream %s, unisched %s", load.Readable(rp, nm), sum, got)
		}
	}
	extra := 0
	for req, n := range b.Requests {
		if n > a.Requests[req] {
			extra++
			t.Logf("known difference (%s): unisched also offers %s", q.quirk, load.Readable(req, nm))
		}
	}
	if extra == 0 {
		t.Logf("no difference although %q is expected here: the quirk entry may be stale", q.quirk)
	}
}

// checkLimited compares a limited answer by size, and checks that every
// candidate unisched returned is one upstream returns without the limit.
func checkLimited(t *testing.T, p *pair, ctx context.Context, q query, a, b load.Candidates) {
	t.Helper()
	if a.Len() != b.Len() {
		t.Errorf("limited answer size: upstream %d, unisched %d", a.Len(), b.Len())
	}
	full := expand(q.q)
	if i := strings.Index(full, "&limit="); i >= 0 {
		full = full[:i]
	}
	r, err := p.up.Expect(ctx, "GET", "/allocation_candidates?"+full, q.mv, nil, 200)
	if err != nil {
		t.Fatal(err)
	}
	all, err := load.ParseCandidates(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	for req := range b.Requests {
		if all.Requests[req] == 0 {
			t.Errorf("unisched returned a candidate upstream does not have: %s", load.Readable(req, names()))
		}
	}
	for rp, sum := range b.Summaries {
		if want, ok := all.Summaries[rp]; !ok {
			t.Errorf("unisched summarised provider %s, not among upstream's", load.Readable(rp, names()))
		} else if sum != want {
			t.Errorf("summary of %s: upstream %s, unisched %s", load.Readable(rp, names()), want, sum)
		}
	}
}

// TestWorldIsSeen guards the comparison itself: a world that failed to
// build the same on both sides would make "equal" meaningless.
func TestWorldIsSeen(t *testing.T) {
	p := setup(t)
	ctx := context.Background()
	for _, c := range []*load.Client{p.up, p.un} {
		r, err := c.Expect(ctx, "GET", "/resource_providers", load.MVLatest, nil, 200)
		if err != nil {
			t.Fatal(err)
		}
		for _, prov := range world {
			if !strings.Contains(string(r.Body), uuidOf(prov.name)) {
				t.Errorf("%s lacks provider %s", c.Base, prov.name)
			}
		}
	}
}
