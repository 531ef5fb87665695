package dashboard_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/unisched/unisched/bridge"
	"github.com/unisched/unisched/bridge/agentproto"
	"github.com/unisched/unisched/bridge/bridgetest"
	"github.com/unisched/unisched/bridge/ledger"
	"github.com/unisched/unisched/bridge/outbox"
	"github.com/unisched/unisched/bridge/scheduler"
	"github.com/unisched/unisched/dashboard"
	"github.com/unisched/unisched/imagesec/advise"
	"github.com/unisched/unisched/imagesec/inspect"
	imstore "github.com/unisched/unisched/imagesec/store"
	"github.com/unisched/unisched/internal/pg"
	"github.com/unisched/unisched/internal/pgtest"
	"github.com/unisched/unisched/placement/claims"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// cloud is a small real state: two hosts of two cells (TwoCells: CPUs 0-3
// and 4-7, dedicated 2,3,6,7, shared 0,1,4,5; host-a dedicates only 2,3,
// so 6,7 are in no pool), a dedicated container filling host-a's
// dedicated pool and a shared container there, a dedicated VM on host-b
// claimed through Placement as Nova claims, a refused container and a
// Nova candidates decision that rejects host-a for want of pCPUs.
type cloud struct {
	ctx       context.Context
	pool      *pgxpool.Pool
	c         *bridge.Coordinator
	dedicated bridge.Workload
	shared    bridge.Workload
	refusedID string
	vmID      string
	vmHost    string
	// vmPins are the pCPUs the ledger gave the VM.
	vmPins    []int
	novaReqID string
}

func container() *agentproto.Container { return &agentproto.Container{Image: "busybox", Running: true} }

func newCloud(t *testing.T) *cloud {
	t.Helper()
	c, pool := bridgetest.Coordinator(t)
	cl := &cloud{ctx: context.Background(), pool: pool, c: c}
	a := bridgetest.TwoCells("host-a")
	a.AvailabilityZone = "az1"
	a.DedicatedCPUs = "2,3"
	bridgetest.Register(t, c, a)
	regB := bridgetest.Register(t, c, bridgetest.TwoCells("host-b"))

	var err error
	// Spread weighing would put the two containers apart; the host is
	// fixed so that the test knows where each is.
	cl.dedicated, err = c.Create(cl.ctx, bridge.CreateRequest{Kind: scheduler.KindContainer, Name: "db-primary", ProjectID: "p1",
		UserID: "u1", CPUPolicy: scheduler.CPUDedicated, CPU: 2, MemoryMB: 512, Host: "host-a", Container: container()})
	if err != nil {
		t.Fatal(err)
	}
	cl.shared, err = c.Create(cl.ctx, bridge.CreateRequest{Kind: scheduler.KindContainer, Name: "web", ProjectID: "p1",
		UserID: "u1", CPUPolicy: scheduler.CPUShared, CPU: 0.5, MemoryMB: 128, Host: "host-a", Container: container()})
	if err != nil {
		t.Fatal(err)
	}
	refused, err := c.Create(cl.ctx, bridge.CreateRequest{Kind: scheduler.KindContainer, Name: "too-big", ProjectID: "p1",
		UserID: "u1", CPUPolicy: scheduler.CPUShared, CPU: 1, MemoryMB: 1 << 20, Container: container()})
	if !errors.Is(err, bridge.ErrNoValidHost) {
		t.Fatalf("a container of 1 TB was not refused: %v", err)
	}
	cl.refusedID = refused.ID

	// A VM as Nova claims it: Placement's allocation and, through the
	// hook, the ledger's record, in one transaction.
	cl.vmID, cl.vmHost = uuid.NewString(), "host-b"
	err = pg.WithTx(cl.ctx, pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		if err := claims.Replace(cl.ctx, tx, claims.Claim{ConsumerUUID: cl.vmID, ProjectID: "p2", UserID: "u2",
			ConsumerType: bridge.ConsumerTypeInstance, Allocations: []claims.Amount{
				{ProviderUUID: regB.ProviderUUID, Class: "PCPU", Used: 1},
				{ProviderUUID: regB.ProviderUUID, Class: "MEMORY_MB", Used: 1024},
			}}); err != nil {
			return err
		}
		return c.RecordVMAllocations(cl.ctx, tx, "req-vm", bridge.VMAllocations{ConsumerUUID: cl.vmID, ProjectID: "p2", UserID: "u2",
			Allocations: map[string]map[string]int64{regB.ProviderUUID: {"PCPU": 1, "MEMORY_MB": 1024}}})
	})
	if err != nil {
		t.Fatal(err)
	}
	as, err := ledger.GetAssignment(cl.ctx, pool, cl.vmID)
	if err != nil {
		t.Fatal(err)
	}
	cl.vmPins = as.Pinned().List()
	if len(cl.vmPins) != 1 {
		t.Fatalf("VM pinned %v, want one pCPU", cl.vmPins)
	}

	// Nova's candidates for 2 pCPUs: host-a has none left, host-b 3.
	cl.novaReqID = "req-" + uuid.NewString()
	order, keep, err := c.OrderCandidates(cl.ctx, bridge.CandidatesFirst, bridge.CandidatesQuery{RequestID: cl.novaReqID,
		Resources: map[string]int64{"PCPU": 2, "MEMORY_MB": 256},
		Roots:     [][]string{{providerOf(t, cl, "host-a")}, {regB.ProviderUUID}}})
	if err != nil || !keep || len(order) == 0 {
		t.Fatalf("candidates: order %v keep %v err %v", order, keep, err)
	}
	return cl
}

func providerOf(t *testing.T, cl *cloud, host string) string {
	t.Helper()
	h, err := ledger.GetHost(cl.ctx, cl.pool, host)
	if err != nil {
		t.Fatal(err)
	}
	return h.ProviderUUID
}

func hostOf(t *testing.T, v *dashboard.View, name string) dashboard.HostView {
	t.Helper()
	for _, h := range v.Hosts {
		if h.Name == name {
			return h
		}
	}
	t.Fatalf("host %s not in the view (%d hosts)", name, len(v.Hosts))
	return dashboard.HostView{}
}

func cpuRoles(h dashboard.HostView) map[int]dashboard.CPUView {
	out := map[int]dashboard.CPUView{}
	for _, c := range h.Cells {
		for _, cpu := range c.CPUs {
			out[cpu.ID] = cpu
		}
	}
	return out
}

func TestLoadCPUGrid(t *testing.T) {
	cl := newCloud(t)
	now := time.Now()
	v, err := dashboard.Load(cl.ctx, cl.pool, dashboard.Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if v.Totals.Hosts != 2 || v.Totals.VMs != 1 || v.Totals.Containers != 2 || v.Totals.PinnedCPUs != 3 {
		t.Errorf("totals %+v, want 2 hosts, 1 VM, 2 containers, 3 pinned pCPUs", v.Totals)
	}
	pinnedByCtr := map[int]bool{}
	for _, c := range cl.dedicated.Assignment.Cells {
		for _, cpu := range c.CPUs.List() {
			pinnedByCtr[cpu] = true
		}
	}
	if len(pinnedByCtr) != 2 {
		t.Fatalf("the dedicated container pins %v", pinnedByCtr)
	}
	// host-a: the container's two pins, the shared pool shared, 6 and 7
	// in no pool.
	a := hostOf(t, v, "host-a")
	if !a.Agent || a.AvailabilityZone != "az1" || a.Containers != 2 || a.VMs != 0 {
		t.Errorf("host-a %+v", a)
	}
	roles := cpuRoles(a)
	if len(roles) != 8 || len(a.Cells) != 2 {
		t.Fatalf("host-a has %d CPUs in %d cells, want 8 in 2", len(roles), len(a.Cells))
	}
	for id, cpu := range roles {
		want := dashboard.RoleReserved
		switch {
		case pinnedByCtr[id]:
			want = dashboard.RoleContainer
		case id == 0 || id == 1 || id == 4 || id == 5:
			want = dashboard.RoleShared
		}
		if cpu.Role != want {
			t.Errorf("host-a cpu %d role %s, want %s", id, cpu.Role, want)
		}
		if want == dashboard.RoleContainer {
			if cpu.Workload == nil || cpu.Workload.ID != cl.dedicated.ID || cpu.Workload.Name != "db-primary" {
				t.Errorf("host-a cpu %d held by %+v, want the dedicated container %s", id, cpu.Workload, cl.dedicated.ID)
			}
			if !strings.Contains(cpu.Title, "db-primary") || !strings.Contains(cpu.Title, cl.dedicated.ID) {
				t.Errorf("hover of cpu %d: %q", id, cpu.Title)
			}
		} else if cpu.Workload != nil {
			t.Errorf("host-a cpu %d (%s) names workload %+v", id, cpu.Role, cpu.Workload)
		}
		if want == dashboard.RoleShared && !strings.Contains(cpu.Title, "web") {
			t.Errorf("hover of shared cpu %d does not name the shared container: %q", id, cpu.Title)
		}
	}
	if len(a.Shared) != 1 || a.Shared[0].ID != cl.shared.ID {
		t.Errorf("host-a shared workloads %+v, want the shared container", a.Shared)
	}
	// host-b: the VM's pin, the rest of the dedicated pool free.
	b := hostOf(t, v, "host-b")
	for id, cpu := range cpuRoles(b) {
		switch {
		case id == cl.vmPins[0]:
			if cpu.Role != dashboard.RoleVM || cpu.Workload == nil || cpu.Workload.ID != cl.vmID || cpu.Workload.Kind != "vm" {
				t.Errorf("host-b cpu %d: %+v, want pinned by VM %s", id, cpu, cl.vmID)
			}
		case id == 0 || id == 1 || id == 4 || id == 5:
			if cpu.Role != dashboard.RoleShared {
				t.Errorf("host-b cpu %d role %s, want shared", id, cpu.Role)
			}
		case cpu.Role != dashboard.RoleFree:
			t.Errorf("host-b cpu %d role %s, want free", id, cpu.Role)
		}
	}

	// An hour later every agent is silent.
	late := now.Add(time.Hour)
	v, err = dashboard.Load(cl.ctx, cl.pool, dashboard.Options{Now: func() time.Time { return late }})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range v.Hosts {
		if !h.Stale {
			t.Errorf("host %s (heartbeat %v) not stale an hour later", h.Name, h.HeartbeatAt)
		}
	}
	if v, err := dashboard.Load(cl.ctx, cl.pool, dashboard.Options{MaxHosts: 1}); err != nil || len(v.Hosts) != 1 || v.MoreHosts != 1 || v.Totals.Hosts != 2 {
		t.Errorf("MaxHosts 1: %d hosts drawn, %d more (%v)", len(v.Hosts), v.MoreHosts, err)
	}
}

func TestLoadUsageSplit(t *testing.T) {
	cl := newCloud(t)
	v, err := dashboard.Load(cl.ctx, cl.pool, dashboard.Options{})
	if err != nil {
		t.Fatal(err)
	}
	bar := func(h dashboard.HostView, class string) dashboard.UsageBar {
		for _, u := range h.Usage {
			if u.Class == class {
				return u
			}
		}
		t.Fatalf("host %s has no %s bar: %+v", h.Name, class, h.Usage)
		return dashboard.UsageBar{}
	}
	cases := []struct {
		host, class          string
		vm, container, other int64
		used, capacity       int64
	}{
		{"host-a", "PCPU", 0, 2, 0, 2, 2},
		{"host-a", "MEMORY_MB", 0, 640, 0, 640, -1},
		{"host-a", "VCPU", 0, 1, 0, 1, -1},
		{"host-b", "PCPU", 1, 0, 0, 1, 4},
		{"host-b", "MEMORY_MB", 1024, 0, 0, 1024, -1},
	}
	for _, tc := range cases {
		u := bar(hostOf(t, v, tc.host), tc.class)
		if u.VM != tc.vm || u.Container != tc.container || u.Other != tc.other || u.Used != tc.used ||
			(tc.capacity >= 0 && u.Capacity != tc.capacity) {
			t.Errorf("%s %s: %+v, want vm %d container %d other %d used %d capacity %d", tc.host, tc.class, u,
				tc.vm, tc.container, tc.other, tc.used, tc.capacity)
		}
		if s := u.VMPct() + u.ContainerPct() + u.OtherPct(); s > 100.0001 {
			t.Errorf("%s %s: bar segments add up to %.1f%%", tc.host, tc.class, s)
		}
	}
}

func TestUsageBarNeverOverflows(t *testing.T) {
	cases := []dashboard.UsageBar{
		{Capacity: 4, VM: 3, Container: 3, Other: 3},
		{Capacity: 0, VM: 1},
		{Capacity: 10, VM: -1, Container: 20},
		{Capacity: 8, VM: 2, Container: 2, Other: 2},
	}
	for _, u := range cases {
		s := u.VMPct() + u.ContainerPct() + u.OtherPct()
		if s > 100.0001 || u.VMPct() < 0 || u.ContainerPct() < 0 || u.OtherPct() < 0 {
			t.Errorf("%+v: segments %.1f + %.1f + %.1f", u, u.VMPct(), u.ContainerPct(), u.OtherPct())
		}
		if u.OtherX() != u.VMPct()+u.ContainerPct() {
			t.Errorf("%+v: other starts at %.1f", u, u.OtherX())
		}
	}
	if u := cases[3]; u.VMPct() != 25 || u.ContainerPct() != 25 || u.OtherPct() != 25 {
		t.Errorf("%+v: %.1f %.1f %.1f, want 25 each", u, u.VMPct(), u.ContainerPct(), u.OtherPct())
	}
}

func TestLoadDecisions(t *testing.T) {
	cl := newCloud(t)
	v, err := dashboard.Load(cl.ctx, cl.pool, dashboard.Options{})
	if err != nil {
		t.Fatal(err)
	}
	find := func(match func(dashboard.DecisionView) bool) *dashboard.DecisionView {
		for i := range v.Decisions {
			if match(v.Decisions[i]) {
				return &v.Decisions[i]
			}
		}
		return nil
	}
	// Newest first.
	for i := 1; i < len(v.Decisions); i++ {
		if v.Decisions[i].ID > v.Decisions[i-1].ID {
			t.Errorf("decisions not newest first: %d before %d", v.Decisions[i-1].ID, v.Decisions[i].ID)
		}
	}
	refused := find(func(d dashboard.DecisionView) bool { return d.WorkloadID == cl.refusedID })
	if refused == nil {
		t.Fatalf("no decision for the refused container; have %+v", v.Decisions)
	}
	if !refused.Refused() || refused.Workload != "too-big" || refused.Error == "" {
		t.Errorf("refused decision %+v", refused)
	}
	var memory int
	for _, r := range refused.Reasons {
		if r.Reason == string(scheduler.ReasonMemoryMB) {
			memory += r.Hosts
		}
	}
	if memory != 2 {
		t.Errorf("refused decision's reasons %+v, want %q on 2 hosts", refused.Reasons, scheduler.ReasonMemoryMB)
	}
	ded := find(func(d dashboard.DecisionView) bool { return d.WorkloadID == cl.dedicated.ID })
	if ded == nil || ded.Host != "host-a" || ded.CPUs != cl.dedicated.Assignment.Pinned().String() {
		t.Errorf("dedicated container's decision %+v, want host-a pCPUs %s", ded, cl.dedicated.Assignment.Pinned())
	}
	nova := find(func(d dashboard.DecisionView) bool { return d.RequestID == cl.novaReqID })
	if nova == nil {
		t.Fatalf("no decision for Nova's request %s", cl.novaReqID)
	}
	if nova.Host != "host-b" || nova.Kind != "vm" || len(nova.Rejected) != 1 || nova.Rejected[0].Host != "host-a" ||
		!strings.Contains(nova.Rejected[0].Reason, "PCPU") && !strings.Contains(nova.Rejected[0].Reason, "CPUs") {
		t.Errorf("Nova's decision %+v, want host-b with host-a rejected for its pCPUs", nova)
	}
	if v2, err := dashboard.Load(cl.ctx, cl.pool, dashboard.Options{Decisions: 2}); err != nil || len(v2.Decisions) != 2 {
		t.Errorf("Decisions: 2 gave %d (%v)", len(v2.Decisions), err)
	}
}

func TestLoadOutbox(t *testing.T) {
	cl := newCloud(t)
	now := time.Now()
	opts := dashboard.Options{Now: func() time.Time { return now }}
	v, err := dashboard.Load(cl.ctx, cl.pool, opts)
	if err != nil {
		t.Fatal(err)
	}
	pending, err := outbox.Pending(cl.ctx, cl.pool)
	if err != nil {
		t.Fatal(err)
	}
	// No relay runs: every event the creates wrote waits.
	if pending == 0 || v.Outbox.Pending != pending || v.Outbox.Delivered != 0 || v.Outbox.OldestPendingAge <= 0 {
		t.Errorf("outbox %+v, want %d pending and an age", v.Outbox, pending)
	}
	if v.Outbox.Histogram != nil || v.Outbox.Leader != nil {
		t.Errorf("outbox without registry or relay: %+v", v.Outbox)
	}
	// All but one delivered 20 ms after their write; the one left has
	// failed once.
	if _, err := cl.pool.Exec(cl.ctx, `UPDATE bridge_outbox SET delivered_at = created_at + interval '20 milliseconds'
WHERE id <> (SELECT max(id) FROM bridge_outbox)`); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.pool.Exec(cl.ctx, `UPDATE bridge_outbox SET attempts = 1, last_error = 'agent down'
WHERE id = (SELECT max(id) FROM bridge_outbox)`); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	lag, err := outbox.NewNotifyLag(reg)
	if err != nil {
		t.Fatal(err)
	}
	for i, d := range []time.Duration{2 * time.Millisecond, 3 * time.Millisecond, 4 * time.Millisecond, 200 * time.Millisecond} {
		lag.Delivered(outbox.Event{Topic: []string{"a", "b"}[i%2], CreatedAt: now}, now.Add(d))
	}
	leader := true
	opts.Gatherer, opts.Leader = reg, func() bool { return leader }
	v, err = dashboard.Load(cl.ctx, cl.pool, opts)
	if err != nil {
		t.Fatal(err)
	}
	o := v.Outbox
	if o.Pending != 1 || o.Failing != 1 || o.Delivered != pending-1 {
		t.Errorf("outbox %+v, want 1 pending and failing, %d delivered", o, pending-1)
	}
	for name, d := range map[string]dashboard.Duration{"p50": o.LagP50, "p99": o.LagP99, "max": o.LagMax} {
		if got := time.Duration(d); got < 19*time.Millisecond || got > 21*time.Millisecond {
			t.Errorf("lag %s %v, want 20ms", name, got)
		}
	}
	h := o.Histogram
	if h == nil || h.Count != 4 {
		t.Fatalf("histogram %+v, want 4 deliveries", h)
	}
	// The 50th percentile falls in the (2.5ms, 5ms] bucket, the 99th in
	// (100ms, 250ms].
	if p := time.Duration(h.P50); p <= 2500*time.Microsecond || p > 5*time.Millisecond {
		t.Errorf("histogram p50 %v", p)
	}
	if p := time.Duration(h.P99); p <= 100*time.Millisecond || p > 250*time.Millisecond {
		t.Errorf("histogram p99 %v", p)
	}
	if m := time.Duration(h.Mean); m < 52*time.Millisecond || m > 53*time.Millisecond {
		t.Errorf("histogram mean %v, want 52.25ms", m)
	}
	if o.Leader == nil || !*o.Leader {
		t.Errorf("leader %v", o.Leader)
	}
	// Outside the window, nothing was delivered lately.
	late := now.Add(time.Hour)
	opts.Now = func() time.Time { return late }
	if v, err = dashboard.Load(cl.ctx, cl.pool, opts); err != nil || v.Outbox.Delivered != 0 || v.Outbox.LagP99 != 0 {
		t.Errorf("an hour later: %+v (%v)", v.Outbox, err)
	}
}

func seedImages(t *testing.T, ctx context.Context, pool *pgxpool.Pool) (outdated, clean int64) {
	t.Helper()
	report := func(sum string) *inspect.Report {
		return &inspect.Report{Format: "qcow2", Checksum: "sha256:" + sum, InspectedAt: time.Now(), PartitionTable: "none",
			OS:            inspect.OS{Family: "linux", Distro: "debian", Name: "Debian GNU/Linux", Version: "12", Release: "12.4"},
			PackageFormat: "deb", PackageManager: "apt",
			Packages: []inspect.Package{
				{Name: "openssl", Version: "3.0.11-1", Architecture: "amd64", Source: "openssl", SourceVersion: "3.0.11-1", Status: "installed"},
				{Name: "bash", Version: "5.2.15-2", Architecture: "amd64", Source: "bash", SourceVersion: "5.2.15-2", Status: "installed"},
			}}
	}
	err := pg.WithTx(ctx, pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		var err error
		if outdated, err = imstore.SaveInspection(ctx, tx, "glance:1", "debian-12", report("aa")); err != nil {
			return err
		}
		if clean, err = imstore.SaveInspection(ctx, tx, "glance:2", "debian-12-patched", report("bb")); err != nil {
			return err
		}
		return imstore.SaveAdvice(ctx, tx, outdated, "test-feed", time.Now(), []advise.Upgrade{
			{Name: "openssl", Architecture: "amd64", Source: "openssl", From: "3.0.11-1", To: "3.0.13-1", Severity: "high",
				Advisories: []advise.Ref{{ID: "DSA-5000-1", Fixed: "3.0.13-1", Severity: "high"}, {ID: "CVE-2024-0001", Fixed: "3.0.12-1", Severity: "low"}}},
			{Name: "bash", Architecture: "amd64", Source: "bash", From: "5.2.15-2", To: "5.2.15-3", Severity: "low",
				Advisories: []advise.Ref{{ID: "CVE-2024-0001", Fixed: "5.2.15-3", Severity: "low"}}},
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	job, err := imstore.CreateJob(ctx, pool, imstore.JobUpgrade, outdated, map[string]any{"feed": "secret-url"}, "runner-1")
	if err != nil {
		t.Fatal(err)
	}
	if err := imstore.StartJob(ctx, pool, job.ID); err != nil {
		t.Fatal(err)
	}
	if err := imstore.UpdateProgress(ctx, pool, job.ID, imstore.Progress{Step: "apply", StepsDone: 1, StepsTotal: 4}); err != nil {
		t.Fatal(err)
	}
	return outdated, clean
}

func TestLoadImages(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Pool(t)
	outdated, clean := seedImages(t, ctx, pool)
	v, err := dashboard.Load(ctx, pool, dashboard.Options{})
	if err != nil {
		t.Fatal(err)
	}
	im := v.Images
	if im.Total != 2 || im.Outdated != 1 || im.Advisories != 2 || len(im.List) != 2 {
		t.Fatalf("images %+v, want 2 images, 1 outdated, 2 advisories", im)
	}
	// Newest first.
	if im.List[0].ID != clean || im.List[1].ID != outdated {
		t.Errorf("images listed %d, %d; want %d, %d", im.List[0].ID, im.List[1].ID, clean, outdated)
	}
	o := im.List[1]
	if o.Outdated != 2 || o.Advisories != 2 || o.Severity != "high" || o.AdvisedAt == nil || o.Distro != "debian" || o.Packages != 2 {
		t.Errorf("outdated image %+v", o)
	}
	if c := im.List[0]; c.Outdated != 0 || c.Severity != "" || c.AdvisedAt != nil {
		t.Errorf("clean image %+v", c)
	}
	if len(im.Jobs) != 1 || im.Jobs[0].Kind != imstore.JobUpgrade || im.Jobs[0].Step != "apply" || im.Jobs[0].Progress != 25 {
		t.Errorf("jobs %+v", im.Jobs)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "secret-url") {
		t.Error("the view shows a job's parameters")
	}
	if v, err := dashboard.Load(ctx, pool, dashboard.Options{MaxImages: 1}); err != nil || len(v.Images.List) != 1 || v.Images.More != 1 {
		t.Errorf("MaxImages 1: %+v (%v)", v.Images, err)
	}
}

func get(t *testing.T, h http.Handler, method, path string) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	res := rec.Result()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

func TestHandler(t *testing.T) {
	cl := newCloud(t)
	seedImages(t, cl.ctx, cl.pool)
	h := dashboard.Handler(dashboard.Config{DB: cl.pool, Refresh: 3 * time.Second})

	res, body := get(t, h, http.MethodGet, "/")
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %s %s\n%s", res.Status, res.Header.Get("Content-Type"), body)
	}
	for _, want := range []string{
		`data-host="host-a"`, `data-host="host-b"`, `data-workload="` + cl.dedicated.ID + `"`, `data-workload="` + cl.vmID + `"`,
		`data-role="vm"`, `data-role="container"`, `data-role="shared"`, `data-role="free"`,
		string(scheduler.ReasonMemoryMB), `no valid host`, cl.novaReqID, `data-refresh="3"`, `debian-12-patched`,
		`<svg class="bar"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if strings.Contains(body, "style=") {
		t.Error("the page has inline styles, which its Content-Security-Policy blocks")
	}
	csp := res.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src 'self'") || res.Header.Get("X-Frame-Options") != "DENY" || res.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("headers %v", res.Header)
	}

	res, body = get(t, h, http.MethodGet, "/api/state")
	var v dashboard.View
	if res.StatusCode != 200 || json.Unmarshal([]byte(body), &v) != nil || len(v.Hosts) != 2 {
		t.Errorf("GET /api/state: %s %.300s", res.Status, body)
	}
	// Pages asking within a second share one load; later ones load again.
	generatedAt := func() time.Time {
		_, body := get(t, h, http.MethodGet, "/api/state")
		var v dashboard.View
		if err := json.Unmarshal([]byte(body), &v); err != nil {
			t.Fatal(err)
		}
		return v.GeneratedAt
	}
	first := generatedAt()
	if again := generatedAt(); !again.Equal(first) {
		t.Errorf("a second reading within a second loaded again (%v, %v)", first, again)
	}
	time.Sleep(1100 * time.Millisecond)
	if later := generatedAt(); !later.After(first) {
		t.Errorf("a reading after a second reused the view of %v", first)
	}

	cases := []struct {
		method, path string
		want         int
		ctype        string
	}{
		{http.MethodGet, "/static/dashboard.css", 200, "text/css"},
		{http.MethodGet, "/static/dashboard.js", 200, "text/javascript"},
		{http.MethodHead, "/", 200, "text/html"},
		{http.MethodGet, "/static/index.html", 404, ""},
		{http.MethodGet, "/static/", 404, ""},
		{http.MethodGet, "/nothing", 404, ""},
		{http.MethodPost, "/", 405, ""},
		{http.MethodDelete, "/api/state", 405, ""},
		{http.MethodPut, "/static/dashboard.js", 405, ""},
	}
	for _, tc := range cases {
		res, _ := get(t, h, tc.method, tc.path)
		if res.StatusCode != tc.want || (tc.ctype != "" && !strings.HasPrefix(res.Header.Get("Content-Type"), tc.ctype)) {
			t.Errorf("%s %s: %s %s, want %d %s", tc.method, tc.path, res.Status, res.Header.Get("Content-Type"), tc.want, tc.ctype)
		}
	}
}

func TestHandlerEmptyAndBroken(t *testing.T) {
	pool := pgtest.Pool(t)
	h := dashboard.Handler(dashboard.Config{DB: pool, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	res, body := get(t, h, http.MethodGet, "/")
	if res.StatusCode != 200 || !strings.Contains(body, "No host yet") || !strings.Contains(body, "No scheduling decision yet") ||
		!strings.Contains(body, "No image inspected yet") {
		t.Errorf("empty page: %s\n%s", res.Status, body)
	}
	pool.Close()
	time.Sleep(1100 * time.Millisecond) // past the reuse of the last view
	res, body = get(t, h, http.MethodGet, "/")
	if res.StatusCode != http.StatusServiceUnavailable || strings.Contains(body, "postgres") {
		t.Errorf("closed pool: %s %q", res.Status, body)
	}
}
