package scheduler_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/unisched/unisched/bridge/scheduler"
	"github.com/unisched/unisched/bridge/scheduler/builtin"
	"k8s.io/utils/cpuset"
)

func registry(t testing.TB) *scheduler.Registry {
	t.Helper()
	r, err := builtin.Registry()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func engine(t testing.TB, change func(*scheduler.Config)) *scheduler.Engine {
	t.Helper()
	cfg := scheduler.DefaultConfig()
	if change != nil {
		change(&cfg)
	}
	e, err := registry(t).Build(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func snapshot(t testing.TB, hosts ...scheduler.HostState) *scheduler.Snapshot {
	t.Helper()
	s, err := scheduler.NewSnapshot(hosts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// host is a compute node with cells of cellCPUs CPUs each, as hyperthread
// pairs when smt, every CPU in both pools, 1 GB per CPU.
func host(name string, cells, cellCPUs int, smt bool) scheduler.HostState {
	h := scheduler.HostState{Name: name, ProviderUUID: "uuid-" + name, DedicatedCPUs: cpuset.New(), SharedCPUs: cpuset.New()}
	for c := 0; c < cells; c++ {
		var ids []int
		for i := 0; i < cellCPUs; i++ {
			ids = append(ids, c*cellCPUs+i)
		}
		cell := scheduler.NUMACell{ID: c, CPUs: cpuset.New(ids...), MemoryMB: int64(1024 * cellCPUs)}
		if smt {
			for i := 0; i+1 < len(ids); i += 2 {
				cell.Siblings = append(cell.Siblings, cpuset.New(ids[i], ids[i+1]))
			}
		}
		h.Cells = append(h.Cells, cell)
		h.DedicatedCPUs = h.DedicatedCPUs.Union(cell.CPUs)
		h.SharedCPUs = h.SharedCPUs.Union(cell.CPUs)
	}
	n := int64(cells * cellCPUs)
	h.Inventories = map[scheduler.ResourceClass]scheduler.Inventory{
		scheduler.PCPU:     {Total: n, AllocationRatio: 1},
		scheduler.VCPU:     {Total: n, AllocationRatio: 4},
		scheduler.MemoryMB: {Total: 1024 * n, AllocationRatio: 1},
		scheduler.DiskGB:   {Total: 100, AllocationRatio: 1},
	}
	return h
}

func container(id string, pcpu, mem int64) *scheduler.Request {
	return &scheduler.Request{ID: id, Kind: scheduler.KindContainer, CPUPolicy: scheduler.CPUDedicated, Resources: scheduler.Resources{PCPU: pcpu, MemoryMB: mem}}
}

func vm(id string, vcpu, mem int64) *scheduler.Request {
	return &scheduler.Request{ID: id, Kind: scheduler.KindVM, CPUPolicy: scheduler.CPUShared, Resources: scheduler.Resources{VCPU: vcpu, MemoryMB: mem, DiskGB: 1}}
}

// TestIssueScenario: a host with two NUMA cells; a dedicated container
// takes cell 0, the next one cell 1, the third is refused with a
// NoValidHost that counts the rejections per filter; removing the first
// makes room in cell 0 again.
func TestIssueScenario(t *testing.T) {
	ctx := context.Background()
	e := engine(t, nil)
	numa := host("numa", 2, 1, false)
	sharedOnly := host("shared-only", 1, 2, false)
	sharedOnly.DedicatedCPUs = cpuset.New()
	delete(sharedOnly.Inventories, scheduler.PCPU)
	snap := snapshot(t, numa, sharedOnly)

	var placed []scheduler.Decision
	for i, cell := range []int{0, 1} {
		req := container(fmt.Sprintf("req-%d", i), 1, 256)
		d, err := e.Schedule(ctx, snap, req)
		if err != nil {
			t.Fatalf("container %d: %v", i, err)
		}
		if d.Host != "numa" || d.ProviderUUID != "uuid-numa" || !d.Placement.Dedicated {
			t.Fatalf("container %d on %s (%+v)", i, d.Host, d.Placement)
		}
		if got := d.Placement.Mems(); !got.Equals(cpuset.New(cell)) || !d.Placement.CPUs.Equals(cpuset.New(cell)) {
			t.Fatalf("container %d: CpusetMems %q CpusetCpus %q, want %d and %d", i, got, d.Placement.CPUs, cell, cell)
		}
		if snap, err = snap.Claim(req, d.Choice, fmt.Sprintf("c%d", i)); err != nil {
			t.Fatal(err)
		}
		placed = append(placed, d)
	}

	_, err := e.Schedule(ctx, snap, container("req-2", 1, 256))
	var nvh *scheduler.NoValidHostError
	if !errors.As(err, &nvh) || !errors.Is(err, scheduler.ErrNoValidHost) {
		t.Fatalf("third container: %v, want a NoValidHostError", err)
	}
	want := "No valid host was found for request req-2: 2 of 2 hosts examined; resources rejected 2 (not enough PCPU: 2)"
	if err.Error() != want {
		t.Errorf("message\n got %q\nwant %q", err.Error(), want)
	}
	if !nvh.Retryable() {
		t.Errorf("a full host is NoFitNow: the refusal should be retryable")
	}
	res := nvh.Stats.Filters[4]
	if res.Name != "resources" || res.NoFitNow != 1 || res.NeverFits != 1 {
		t.Errorf("resources stats %+v, want one no-fit-now (numa) and one never-fits (shared-only)", res)
	}
	if len(nvh.Stats.Rejections) != 2 {
		t.Errorf("rejections %+v", nvh.Stats.Rejections)
	}

	// With the PCPU inventory out of the way (Placement counts 4, the
	// cells have 2), the NUMA filter is the one that refuses.
	wide := numa
	wide.Inventories = map[scheduler.ResourceClass]scheduler.Inventory{}
	for rc, inv := range numa.Inventories {
		wide.Inventories[rc] = inv
	}
	wide.Inventories[scheduler.PCPU] = scheduler.Inventory{Total: 4, Used: 2, AllocationRatio: 1}
	wide.Cells = []scheduler.NUMACell{numa.Cells[0], numa.Cells[1]}
	wide.Cells[0].Pinned = []scheduler.Pin{{Workload: "c0", CPUs: cpuset.New(0)}}
	wide.Cells[1].Pinned = []scheduler.Pin{{Workload: "c1", CPUs: cpuset.New(1)}}
	_, err = e.Schedule(ctx, snapshot(t, wide, sharedOnly), container("req-3", 1, 256))
	if err == nil || !strings.Contains(err.Error(), "numa rejected 1 (no NUMA cell has enough free CPUs: 1)") {
		t.Errorf("NUMA refusal: %v", err)
	}

	// The first container leaves: cell 0 is free again.
	freed := numa
	freed.Cells = []scheduler.NUMACell{numa.Cells[0], numa.Cells[1]}
	freed.Cells[1].Pinned = []scheduler.Pin{{Workload: "c1", CPUs: placed[1].Placement.CPUs}}
	freed.Inventories = map[scheduler.ResourceClass]scheduler.Inventory{}
	for rc, inv := range numa.Inventories {
		freed.Inventories[rc] = inv
	}
	p := freed.Inventories[scheduler.PCPU]
	p.Used = 1
	freed.Inventories[scheduler.PCPU] = p
	d, err := e.Schedule(ctx, snapshot(t, freed, sharedOnly), container("req-4", 1, 256))
	if err != nil || d.Host != "numa" || !d.Placement.CPUs.Equals(cpuset.New(0)) {
		t.Fatalf("after delete: %v on %s cpus %s, want numa cpu 0", err, d.Host, d.Placement.CPUs)
	}
}

func TestSiblingsThroughEngine(t *testing.T) {
	h := host("smt", 1, 8, true) // cores {0,1} {2,3} {4,5} {6,7}
	h.Cells[0].Pinned = []scheduler.Pin{{Workload: "x", CPUs: cpuset.New(3)}}
	e := engine(t, nil)
	for _, tt := range []struct {
		pcpu  int64
		cpus  string
		split int
	}{
		{1, "2", 1},   // the free half of the broken core
		{2, "0-1", 0}, // a whole core
		{4, "0-1,4-5", 0},
		{5, "0-2,4-5", 1}, // whole cores, then the broken one
	} {
		d, err := e.Schedule(context.Background(), snapshot(t, h), container("r", tt.pcpu, 512))
		if err != nil {
			t.Fatal(err)
		}
		if got := d.Placement.CPUs.String(); got != tt.cpus || d.Placement.SplitCores != tt.split {
			t.Errorf("%d pCPUs: %s split %d, want %s split %d", tt.pcpu, got, d.Placement.SplitCores, tt.cpus, tt.split)
		}
	}
}

func TestStatsPerFilter(t *testing.T) {
	ok := host("ok", 2, 4, false)
	otherAZ := host("other-az", 2, 4, false)
	otherAZ.AvailabilityZone = "az2"
	otherAZAndFull := host("other-az-full", 2, 4, false)
	otherAZAndFull.AvailabilityZone = "az2"
	otherAZAndFull.Inventories[scheduler.MemoryMB] = scheduler.Inventory{Total: 1, AllocationRatio: 1}
	disabled := host("disabled", 2, 4, false)
	disabled.Traits = []string{"COMPUTE_STATUS_DISABLED"}
	full := host("full", 2, 4, false)
	full.Inventories[scheduler.MemoryMB] = scheduler.Inventory{Total: 8192, Used: 8000, AllocationRatio: 1}
	req := vm("r", 1, 512)
	req.AvailabilityZone = "nova"
	d, err := engine(t, nil).Schedule(context.Background(), snapshot(t, ok, otherAZ, otherAZAndFull, disabled, full), req)
	if err != nil {
		t.Fatal(err)
	}
	if d.Host != "ok" {
		t.Fatalf("chose %s", d.Host)
	}
	got := map[string]string{}
	for _, r := range d.Stats.Rejections {
		got[r.Host] = fmt.Sprintf("%s/%s/%s", r.Filter, r.Code, r.Reason)
	}
	want := map[string]string{
		"other-az":      "availability_zone/never-fits/host is in another availability zone",
		"other-az-full": "availability_zone/never-fits/host is in another availability zone",
		"disabled":      "traits/no-fit-now/host has a forbidden trait",
		"full":          "resources/no-fit-now/not enough MEMORY_MB",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("rejections\n got %v\nwant %v", got, want)
	}
	if az := d.Stats.Filters[0]; az.Name != "availability_zone" || az.NeverFits != 2 || az.Reasons[scheduler.ReasonAvailabilityZone] != 2 {
		t.Errorf("availability_zone stats %+v", az)
	}
	if d.Stats.Hosts != 5 || d.Stats.Examined != 5 || d.Stats.Candidates != 1 || d.Stats.Scored != 1 || len(d.Alternates) != 0 {
		t.Errorf("stats %+v alternates %d", d.Stats, len(d.Alternates))
	}
}

// Threshold 1: a shared request avoids a host whose dedicated pool is more
// than half pinned, even when the weighers would prefer it, and still uses
// it when nothing else fits.
func TestAvoidedHostsComeLast(t *testing.T) {
	busy := host("busy", 2, 4, false)
	busy.Inventories[scheduler.PCPU] = scheduler.Inventory{Total: 8, Used: 5, AllocationRatio: 1}
	calm := host("calm", 2, 4, false)
	packFirst := func(c *scheduler.Config) { c.Weighers = []scheduler.PluginConfig{{Name: "pack", Weight: 1}} }
	e := engine(t, packFirst)
	busyFuller := busy
	busyFuller.Inventories = map[scheduler.ResourceClass]scheduler.Inventory{}
	for rc, inv := range busy.Inventories {
		busyFuller.Inventories[rc] = inv
	}
	busyFuller.Inventories[scheduler.VCPU] = scheduler.Inventory{Total: 8, Used: 20, AllocationRatio: 4}
	d, err := e.Schedule(context.Background(), snapshot(t, busyFuller, calm), vm("r", 1, 512))
	if err != nil {
		t.Fatal(err)
	}
	if d.Host != "calm" || d.Avoided || len(d.Alternates) != 1 || d.Alternates[0].Host != "busy" || !d.Alternates[0].Avoided {
		t.Fatalf("chose %s (avoided %v), alternates %+v", d.Host, d.Avoided, d.Alternates)
	}
	if pp := d.Stats.Filters[6]; pp.Name != "pool_pressure" || pp.Avoid != 1 || pp.Reasons[scheduler.ReasonDedicatedPressure] != 1 {
		t.Errorf("pool_pressure stats %+v", pp)
	}
	calm.Traits = []string{"COMPUTE_STATUS_DISABLED"}
	d, err = e.Schedule(context.Background(), snapshot(t, busyFuller, calm), vm("r", 1, 512))
	if err != nil || d.Host != "busy" || !d.Avoided {
		t.Fatalf("with calm disabled: %v, chose %s avoided %v", err, d.Host, d.Avoided)
	}
	// A dedicated request does not mind dedicated usage (pack takes the
	// fuller host)...
	d, err = e.Schedule(context.Background(), snapshot(t, busy, host("calm", 2, 4, false)), container("r", 1, 512))
	if err != nil || d.Host != "busy" || d.Avoided {
		t.Fatalf("dedicated: %v, chose %s avoided %v", err, d.Host, d.Avoided)
	}
	// ...but threshold 2 keeps it off a host whose shared pool is 62% loaded.
	d, err = e.Schedule(context.Background(), snapshot(t, busyFuller, host("calm", 2, 4, false)), container("r", 1, 512))
	if err != nil || d.Host != "calm" || d.Stats.Filters[6].Reasons[scheduler.ReasonSharedPressure] != 1 {
		t.Fatalf("dedicated vs loaded shared pool: %v, chose %s, stats %+v", err, d.Host, d.Stats.Filters[6])
	}
}

func TestTiesShuffleBySeed(t *testing.T) {
	var hosts []scheduler.HostState
	for i := 0; i < 20; i++ {
		hosts = append(hosts, host(fmt.Sprintf("h%02d", i), 1, 4, false))
	}
	snap := snapshot(t, hosts...)
	e := engine(t, nil)
	chosen := map[string]bool{}
	for i := 0; i < 40; i++ {
		req := vm(fmt.Sprintf("req-%d", i), 1, 512)
		a, err := e.Schedule(context.Background(), snap, req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := e.Schedule(context.Background(), snap, req)
		if a.Host != b.Host || fmt.Sprint(a.Alternates) != fmt.Sprint(b.Alternates) {
			t.Fatalf("request %s replayed: %s then %s", req.ID, a.Host, b.Host)
		}
		chosen[a.Host] = true
	}
	if len(chosen) < 5 {
		t.Errorf("40 requests over 20 equal hosts went to only %d hosts", len(chosen))
	}
}

func TestCapAndParallelism(t *testing.T) {
	var hosts []scheduler.HostState
	for i := 0; i < 3000; i++ {
		h := host(fmt.Sprintf("h%04d", i), 2, 4, false)
		inv := h.Inventories[scheduler.VCPU]
		inv.Used = int64(i % 30)
		h.Inventories[scheduler.VCPU] = inv
		if i%3 == 0 {
			h.Traits = []string{"COMPUTE_STATUS_DISABLED"}
		}
		hosts = append(hosts, h)
	}
	snap := snapshot(t, hosts...)
	req := vm("req-cap", 2, 512)
	capped, err := engine(t, func(c *scheduler.Config) { c.MaxScoredHosts = 100 }).Schedule(context.Background(), snap, req)
	if err != nil {
		t.Fatal(err)
	}
	if capped.Stats.Scored != 100 || capped.Stats.Examined < 100 || capped.Stats.Examined > 200 {
		t.Errorf("cap 100: scored %d of %d examined", capped.Stats.Scored, capped.Stats.Examined)
	}
	for _, cap := range []int{0, 100} {
		seq, err := engine(t, func(c *scheduler.Config) { c.MaxScoredHosts = cap }).Schedule(context.Background(), snap, req)
		if err != nil {
			t.Fatal(err)
		}
		par, err := engine(t, func(c *scheduler.Config) { c.MaxScoredHosts = cap; c.Parallelism = 4 }).Schedule(context.Background(), snap, req)
		if err != nil {
			t.Fatal(err)
		}
		if seq.Host != par.Host || fmt.Sprint(seq.Alternates) != fmt.Sprint(par.Alternates) || seq.Stats.Examined != par.Stats.Examined ||
			len(seq.Stats.Rejections) != len(par.Stats.Rejections) {
			t.Errorf("cap %d: sequential %s (%d examined) vs parallel %s (%d examined)", cap, seq.Host, seq.Stats.Examined, par.Host, par.Stats.Examined)
		}
		if cap == 0 && (seq.Stats.Examined != 3000 || seq.Stats.Candidates != 2000 || len(seq.Stats.Rejections) != 1000) {
			t.Errorf("no cap: %+v", seq.Stats)
		}
	}
}

func TestAlternatesInScoreOrder(t *testing.T) {
	var hosts []scheduler.HostState
	for i, used := range []int64{10, 30, 0, 20} {
		h := host(fmt.Sprintf("h%d", i), 1, 8, false)
		inv := h.Inventories[scheduler.VCPU]
		inv.Used = used
		h.Inventories[scheduler.VCPU] = inv
		hosts = append(hosts, h)
	}
	e := engine(t, func(c *scheduler.Config) {
		c.Weighers = []scheduler.PluginConfig{{Name: "pack", Weight: 2}}
		c.Alternates = 2
	})
	d, err := e.Schedule(context.Background(), snapshot(t, hosts...), vm("r", 1, 512))
	if err != nil {
		t.Fatal(err)
	}
	got := []string{d.Host}
	for _, a := range d.Alternates {
		got = append(got, a.Host)
	}
	if fmt.Sprint(got) != "[h1 h3 h0]" || d.Score != 2 || d.Alternates[1].Score >= d.Alternates[0].Score {
		t.Errorf("order %v, score %v, alternates %+v", got, d.Score, d.Alternates)
	}
	if !d.Placement.CPUs.Equals(cpuset.New(0, 1, 2, 3, 4, 5, 6, 7)) || d.Placement.Dedicated {
		t.Errorf("shared placement %+v, want the whole shared pool", d.Placement)
	}
}

func TestGroupsFromSnapshot(t *testing.T) {
	a, b, c := host("a", 1, 4, false), host("b", 1, 4, false), host("c", 1, 4, false)
	b.Workloads = []scheduler.Workload{{ID: "m1", Kind: scheduler.KindVM, Group: "g"}}
	snap := snapshot(t, a, b, c)
	e := engine(t, nil)
	for i := 0; i < 10; i++ {
		req := vm(fmt.Sprintf("r%d", i), 1, 512)
		req.Group = &scheduler.Group{ID: "g", Policy: scheduler.Affinity}
		if d, err := e.Schedule(context.Background(), snap, req); err != nil || d.Host != "b" {
			t.Fatalf("affinity: %v %s", err, d.Host)
		}
		req.Group = &scheduler.Group{ID: "g", Policy: scheduler.AntiAffinity}
		if d, err := e.Schedule(context.Background(), snap, req); err != nil || d.Host == "b" {
			t.Fatalf("anti-affinity: %v %s", err, d.Host)
		}
		req.Group = &scheduler.Group{ID: "g", Policy: scheduler.SoftAffinity}
		if d, err := e.Schedule(context.Background(), snap, req); err != nil || d.Host != "b" {
			t.Fatalf("soft affinity: %v %s", err, d.Host)
		}
	}
}

func TestNeverFitsIsNotRetryable(t *testing.T) {
	_, err := engine(t, nil).Schedule(context.Background(), snapshot(t, host("small", 2, 2, false)), container("r", 4, 512))
	var nvh *scheduler.NoValidHostError
	if !errors.As(err, &nvh) || nvh.Retryable() {
		t.Fatalf("%v: want a non-retryable NoValidHostError", err)
	}
	if !strings.Contains(err.Error(), "numa rejected 1 (no NUMA cell is large enough, even empty: 1)") {
		t.Errorf("message %q", err)
	}
}

type failing struct{}

func (failing) Name() string { return "failing" }
func (failing) Filter(context.Context, *scheduler.Request, *scheduler.HostState) scheduler.Verdict {
	return scheduler.Failed(errors.New("ledger view is corrupt"))
}

func TestErrorsAbort(t *testing.T) {
	snap := snapshot(t, host("a", 1, 4, false))
	e, err := scheduler.NewEngine([]scheduler.Filter{failing{}}, nil, scheduler.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Schedule(context.Background(), snap, vm("r", 1, 1)); err == nil || !strings.Contains(err.Error(), "filter failing on host a: ledger view is corrupt") {
		t.Errorf("filter error: %v", err)
	}
	if _, err := e.Schedule(context.Background(), snap, vm("", 1, 1)); !errors.Is(err, scheduler.ErrInvalidRequest) {
		t.Errorf("invalid request: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := engine(t, nil).Schedule(ctx, snap, vm("r", 1, 1)); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
}

func TestBuildRejects(t *testing.T) {
	tests := []struct {
		name   string
		change func(*scheduler.Config)
		want   string
	}{
		{"unknown filter", func(c *scheduler.Config) { c.Filters = append(c.Filters, scheduler.PluginConfig{Name: "ram"}) }, `unknown filter "ram"`},
		{"unknown weigher", func(c *scheduler.Config) { c.Weighers = append(c.Weighers, scheduler.PluginConfig{Name: "io"}) }, `unknown weigher "io"`},
		{"threshold", func(c *scheduler.Config) { c.Thresholds.PackUntil = 2 }, "pack_until = 2"},
		{"twice", func(c *scheduler.Config) { c.Filters = append(c.Filters, scheduler.PluginConfig{Name: "numa"}) }, "filter numa listed twice"},
		{"negative cap", func(c *scheduler.Config) { c.MaxScoredHosts = -1 }, "must not be negative"},
		{"bad argument", func(c *scheduler.Config) { c.Filters[0].Args = scheduler.Args{"zone": "x"} }, "unknown argument(s) zone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := scheduler.DefaultConfig()
			tt.change(&cfg)
			if _, err := registry(t).Build(cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Build = %v, want %q", err, tt.want)
			}
		})
	}
}
