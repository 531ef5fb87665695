// Package dashboard is serve's built-in read-only dashboard: one HTML page
// rendered on the server (html/template, embedded CSS and a few lines of
// plain JS, no build step) and the same view as JSON. It shows the hosts
// with their NUMA cells and every pCPU coloured by who holds it, each
// host's usage split between VMs and containers, the scheduler's recent
// decisions with the reasons hosts were left out, the outbox backlog and
// notify lag, and the image security server's state.
//
// It only reads, through the stores' exported functions (bridge/ledger,
// bridge/outbox, imagesec/store) in one read-only REPEATABLE READ
// transaction, so that pins, usage and decisions on the page are of one
// instant. Nothing imports it but cmd/unisched. It shows no secrets: no
// tokens, no configuration, no workload specs (a container's environment
// may hold passwords), no job parameters.
package dashboard

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/unisched/unisched/bridge/ledger"
	"github.com/unisched/unisched/bridge/outbox"
	"github.com/unisched/unisched/bridge/scheduler"
	imstore "github.com/unisched/unisched/imagesec/store"
	"github.com/unisched/unisched/internal/pg"
)

// CPU roles: who holds a pCPU, which is its colour on the page.
const (
	// RoleVM and RoleContainer: pinned by a dedicated workload.
	RoleVM        = "vm"
	RoleContainer = "container"
	// RoleShared: in the shared pool, floated over by shared workloads.
	RoleShared = "shared"
	// RoleFree: in the dedicated pool only, pinned by nobody.
	RoleFree = "free"
	// RoleReserved: in neither pool (kept for the host, or offline).
	RoleReserved = "reserved"
)

// Options bounds what Load reads.
type Options struct {
	// MaxHosts is how many hosts the view draws (by name); the rest are
	// counted. 0: 200.
	MaxHosts int
	// Decisions is how many recent decisions it lists; 0: 20.
	Decisions int
	// Jobs is how many recent image jobs it lists; 0: 10.
	Jobs int
	// MaxImages is how many images it lists (newest first); 0: 50.
	MaxImages int
	// LagWindow is the period of the outbox's delivery figures; 0: 5 min.
	LagWindow time.Duration
	// StaleAfter is how old an agent's heartbeat may be before its host
	// is flagged; 0: 2 min.
	StaleAfter time.Duration
	// Gatherer, when set, is serve's metrics registry: the notify-lag
	// histogram of this process is read from it.
	Gatherer prometheus.Gatherer
	// Leader, when set, says whether this process leads the outbox relay.
	Leader func() bool
	// Now is the clock (tests); nil: time.Now.
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.MaxHosts, 200)
	def(&o.Decisions, 20)
	def(&o.Jobs, 10)
	def(&o.MaxImages, 50)
	if o.LagWindow <= 0 {
		o.LagWindow = 5 * time.Minute
	}
	if o.StaleAfter <= 0 {
		o.StaleAfter = 2 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// View is everything the page shows; it is also the JSON answer.
type View struct {
	GeneratedAt time.Time      `json:"generated_at"`
	Hosts       []HostView     `json:"hosts"`
	MoreHosts   int            `json:"more_hosts,omitempty"`
	Totals      Totals         `json:"totals"`
	Decisions   []DecisionView `json:"decisions"`
	Outbox      OutboxView     `json:"outbox"`
	Images      ImagesView     `json:"images"`
}

// Totals sums the hosts of the view.
type Totals struct {
	Hosts      int `json:"hosts"`
	VMs        int `json:"vms"`
	Containers int `json:"containers"`
	PinnedCPUs int `json:"pinned_cpus"`
}

// HostView is one host: its cells and their CPUs, its usage, its agent.
type HostView struct {
	Name             string `json:"name"`
	ProviderUUID     string `json:"provider_uuid"`
	AvailabilityZone string `json:"availability_zone,omitempty"`
	// Agent is true for a host an agent described (a ledger host); false
	// for a compute provider known only to Placement (a Nova-only host).
	Agent bool `json:"agent"`
	// HeartbeatAt is the agent's last heartbeat; Stale when older than
	// Options.StaleAfter (or never).
	HeartbeatAt   *time.Time `json:"heartbeat_at,omitempty"`
	Stale         bool       `json:"stale"`
	DedicatedCPUs string     `json:"dedicated_cpus"`
	SharedCPUs    string     `json:"shared_cpus"`
	Cells         []CellView `json:"cells"`
	Usage         []UsageBar `json:"usage"`
	VMs           int        `json:"vms"`
	Containers    int        `json:"containers"`
	// Shared lists the shared workloads floating over the shared pool.
	Shared []WorkloadRef `json:"shared,omitempty"`
}

// WorkloadRef names a workload.
type WorkloadRef struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
	Kind string `json:"kind"`
}

// Label is "name (id)", or the id alone.
func (w WorkloadRef) Label() string {
	if w.Name == "" {
		return w.ID
	}
	return w.Name + " (" + w.ID + ")"
}

// CellView is one NUMA cell.
type CellView struct {
	ID           int       `json:"id"`
	MemoryMB     int64     `json:"memory_mb"`
	MemoryUsedMB int64     `json:"memory_used_mb"`
	CPUs         []CPUView `json:"cpus"`
}

// MemoryPct is the cell's memory use in percent.
func (c CellView) MemoryPct() float64 { return pct(c.MemoryUsedMB, c.MemoryMB) }

// CPUView is one pCPU.
type CPUView struct {
	ID int `json:"id"`
	// Core is the first thread of the CPU's core (itself when it has no
	// siblings).
	Core      int    `json:"core"`
	Role      string `json:"role"`
	Dedicated bool   `json:"dedicated"`
	Shared    bool   `json:"shared"`
	// Workload is the holder of a pinned CPU.
	Workload *WorkloadRef `json:"workload,omitempty"`
	// Title is the hover text.
	Title string `json:"title"`
}

// UsageBar is one resource class of a host: capacity and what VMs,
// containers and other consumers (Placement allocations the ledger does
// not know as a workload) use of it.
type UsageBar struct {
	Class     string `json:"class"`
	Capacity  int64  `json:"capacity"`
	Used      int64  `json:"used"`
	VM        int64  `json:"vm"`
	Container int64  `json:"container"`
	Other     int64  `json:"other"`
}

// Percentages of the capacity, for the bars' widths; they never add up
// past 100.
func (u UsageBar) VMPct() float64        { return pct(u.VM, u.Capacity) }
func (u UsageBar) ContainerPct() float64 { return min(pct(u.Container, u.Capacity), 100-u.VMPct()) }
func (u UsageBar) OtherX() float64       { return u.VMPct() + u.ContainerPct() }
func (u UsageBar) OtherPct() float64 {
	return max(0, min(pct(u.Other, u.Capacity), 100-u.VMPct()-u.ContainerPct()))
}

func pct(n, of int64) float64 {
	if of <= 0 || n <= 0 {
		return 0
	}
	return math.Min(100, float64(n)*100/float64(of))
}

// DecisionView is one entry of the decision log.
type DecisionView struct {
	ID         int64     `json:"id"`
	At         time.Time `json:"at"`
	RequestID  string    `json:"request_id"`
	Kind       string    `json:"kind"`
	WorkloadID string    `json:"workload_id,omitempty"`
	// Workload is the workload's name when the ledger still has it.
	Workload string `json:"workload,omitempty"`
	// Host is the chosen host, "" when none was valid (Error says why).
	Host  string `json:"host,omitempty"`
	Error string `json:"error,omitempty"`
	// CPUs are the pinned pCPUs chosen (dedicated), in list form.
	CPUs  string             `json:"cpus,omitempty"`
	Stats ledger.StatsRecord `json:"stats"`
	// Rejected names each host left out and why (kept for Nova's
	// candidates); Reasons counts the reasons over all hosts by filter.
	Rejected []ledger.RejectedRecord `json:"rejected,omitempty"`
	Reasons  []ReasonCount           `json:"reasons,omitempty"`
}

// Refused says no host was chosen.
func (d DecisionView) Refused() bool { return d.Host == "" }

// ReasonCount is how many hosts a filter left out for one reason.
type ReasonCount struct {
	Filter string `json:"filter"`
	Reason string `json:"reason"`
	Hosts  int    `json:"hosts"`
}

// OutboxView is the outbox backlog and the notify lag.
type OutboxView struct {
	Pending int64 `json:"pending"`
	Failing int64 `json:"failing"`
	// OldestPendingAge is how long the oldest pending event has waited.
	OldestPendingAge Duration `json:"oldest_pending_age"`
	Window           Duration `json:"window"`
	Delivered        int64    `json:"delivered"`
	LagP50           Duration `json:"lag_p50"`
	LagP99           Duration `json:"lag_p99"`
	LagMax           Duration `json:"lag_max"`
	// Histogram is this process's unisched_notify_lag_seconds, when it
	// delivers (the relay's leader) and a registry was given.
	Histogram *LagHistogram `json:"histogram,omitempty"`
	// Leader: this process leads the relay; nil when unknown.
	Leader *bool `json:"leader,omitempty"`
}

// LagHistogram summarises a notify-lag histogram over every topic.
type LagHistogram struct {
	Count uint64   `json:"count"`
	Mean  Duration `json:"mean"`
	// P50 and P99 are estimated from the buckets (linear inside one, as
	// Prometheus' histogram_quantile does).
	P50 Duration `json:"p50"`
	P99 Duration `json:"p99"`
}

// Duration marshals as seconds and prints rounded for people.
type Duration time.Duration

// MarshalJSON writes seconds.
func (d Duration) MarshalJSON() ([]byte, error) {
	return []byte(fmt.Sprintf("%.6f", time.Duration(d).Seconds())), nil
}

// UnmarshalJSON reads seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s float64
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration in seconds: %w", err)
	}
	*d = Duration(secs(s))
	return nil
}

func (d Duration) String() string {
	t := time.Duration(d)
	switch {
	case t == 0:
		return "0"
	case t < time.Millisecond:
		return t.Round(time.Microsecond).String()
	case t < time.Second:
		return fmt.Sprintf("%.1fms", float64(t)/float64(time.Millisecond))
	case t < time.Minute:
		return t.Round(10 * time.Millisecond).String()
	}
	return t.Round(time.Second).String()
}

// ImagesView is the image security server's state.
type ImagesView struct {
	Total      int         `json:"total"`
	Outdated   int         `json:"outdated"`
	Advisories int         `json:"advisories"`
	List       []ImageView `json:"list"`
	More       int         `json:"more,omitempty"`
	Jobs       []JobView   `json:"jobs"`
}

// ImageView is one inspected image with its advice.
type ImageView struct {
	ID       int64  `json:"id"`
	Name     string `json:"name"`
	Distro   string `json:"distro,omitempty"`
	Release  string `json:"release,omitempty"`
	Status   string `json:"status"`
	Packages int    `json:"packages"`
	// Outdated counts the packages with a fix; Advisories the distinct
	// advisories behind them; Severity is the highest of theirs.
	Outdated   int        `json:"outdated"`
	Advisories int        `json:"advisories"`
	Severity   string     `json:"severity,omitempty"`
	AdvisedAt  *time.Time `json:"advised_at,omitempty"`
}

// JobView is one image job.
type JobView struct {
	ID       int64     `json:"id"`
	Kind     string    `json:"kind"`
	State    string    `json:"state"`
	ImageID  int64     `json:"image_id,omitempty"`
	Step     string    `json:"step,omitempty"`
	Progress float64   `json:"progress"`
	Error    string    `json:"error,omitempty"`
	Created  time.Time `json:"created_at"`
}

// Load reads the view from the database in one read-only REPEATABLE READ
// transaction.
func Load(ctx context.Context, db pg.Beginner, o Options) (*View, error) {
	o = o.withDefaults()
	v := &View{GeneratedAt: o.Now().UTC()}
	err := pg.WithTx(ctx, db, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		workloads, err := ledger.ListWorkloads(ctx, tx, ledger.WorkloadFilter{})
		if err != nil {
			return err
		}
		byID := make(map[string]ledger.Workload, len(workloads))
		for _, w := range workloads {
			byID[w.ID] = w
		}
		if err := v.loadHosts(ctx, tx, o, workloads, byID); err != nil {
			return err
		}
		if err := v.loadDecisions(ctx, tx, o, byID); err != nil {
			return err
		}
		if err := v.loadOutbox(ctx, tx, o); err != nil {
			return err
		}
		return v.loadImages(ctx, tx, o)
	})
	if err != nil {
		return nil, fmt.Errorf("loading the dashboard: %w", err)
	}
	return v, nil
}

func (v *View) loadHosts(ctx context.Context, tx pgx.Tx, o Options, workloads []ledger.Workload, byID map[string]ledger.Workload) error {
	states, err := ledger.LoadHostStates(ctx, tx)
	if err != nil {
		return err
	}
	hosts, err := ledger.ListHosts(ctx, tx)
	if err != nil {
		return err
	}
	ledgerHosts := make(map[string]ledger.Host, len(hosts))
	for _, h := range hosts {
		ledgerHosts[h.Name] = h
	}
	// What each host's workloads hold, by kind: the ledger's split of
	// Placement's usage.
	type held struct {
		vm, ctr scheduler.Resources
		nVM     int
		nCtr    int
		shared  []WorkloadRef
	}
	perHost := map[string]*held{}
	for _, w := range workloads {
		if w.Host == "" {
			continue
		}
		h := perHost[w.Host]
		if h == nil {
			h = &held{}
			perHost[w.Host] = h
		}
		r := w.Resources
		if w.Kind == scheduler.KindVM {
			h.nVM++
			h.vm = addResources(h.vm, r)
		} else {
			h.nCtr++
			h.ctr = addResources(h.ctr, r)
		}
		if w.CPUPolicy == scheduler.CPUShared {
			h.shared = append(h.shared, ref(w))
		}
	}
	now := o.Now()
	for i := range states {
		hs := &states[i]
		v.Totals.Hosts++
		h := perHost[hs.Name]
		if h == nil {
			h = &held{}
		}
		v.Totals.VMs += h.nVM
		v.Totals.Containers += h.nCtr
		for _, c := range hs.Cells {
			for _, p := range c.Pinned {
				v.Totals.PinnedCPUs += p.CPUs.Size()
			}
		}
		if len(v.Hosts) >= o.MaxHosts {
			v.MoreHosts++
			continue
		}
		hv := HostView{Name: hs.Name, ProviderUUID: hs.ProviderUUID, AvailabilityZone: hs.AvailabilityZone,
			DedicatedCPUs: hs.DedicatedCPUs.String(), SharedCPUs: hs.SharedCPUs.String(),
			VMs: h.nVM, Containers: h.nCtr, Shared: h.shared}
		if lh, ok := ledgerHosts[hs.Name]; ok && lh.ProviderUUID == hs.ProviderUUID {
			hv.Agent = true
			if !lh.HeartbeatAt.IsZero() {
				hb := lh.HeartbeatAt.UTC()
				hv.HeartbeatAt = &hb
			}
			hv.Stale = lh.HeartbeatAt.IsZero() || now.Sub(lh.HeartbeatAt) > o.StaleAfter
		}
		hv.Cells = cells(hs, byID, h.shared)
		for _, rc := range []scheduler.ResourceClass{scheduler.VCPU, scheduler.PCPU, scheduler.MemoryMB} {
			inv, ok := hs.Inventories[rc]
			if !ok {
				continue
			}
			bar := UsageBar{Class: string(rc), Capacity: inv.Capacity(), Used: inv.Used,
				VM: amount(h.vm, rc), Container: amount(h.ctr, rc)}
			bar.Other = max(0, bar.Used-bar.VM-bar.Container)
			hv.Usage = append(hv.Usage, bar)
		}
		v.Hosts = append(v.Hosts, hv)
	}
	return nil
}

func addResources(a, b scheduler.Resources) scheduler.Resources {
	a.VCPU += b.VCPU
	a.PCPU += b.PCPU
	a.MemoryMB += b.MemoryMB
	a.DiskGB += b.DiskGB
	return a
}

func amount(r scheduler.Resources, rc scheduler.ResourceClass) int64 {
	switch rc {
	case scheduler.VCPU:
		return r.VCPU
	case scheduler.PCPU:
		return r.PCPU
	case scheduler.MemoryMB:
		return r.MemoryMB
	case scheduler.DiskGB:
		return r.DiskGB
	}
	return 0
}

func ref(w ledger.Workload) WorkloadRef {
	return WorkloadRef{ID: w.ID, Name: w.Name, Kind: string(w.Kind)}
}

// cells lays out a host's CPUs by cell, each with its role and hover text.
func cells(hs *scheduler.HostState, byID map[string]ledger.Workload, shared []WorkloadRef) []CellView {
	kindOf := map[string]scheduler.Kind{}
	for _, w := range hs.Workloads {
		kindOf[w.ID] = w.Kind
	}
	var sharedNote string
	switch n := len(shared); {
	case n == 0:
		sharedNote = "no shared workload"
	case n <= 3:
		labels := make([]string, n)
		for i, s := range shared {
			labels[i] = s.Kind + " " + s.Label()
		}
		sharedNote = "floated over by " + strings.Join(labels, ", ")
	default:
		sharedNote = fmt.Sprintf("floated over by %d shared workloads", n)
	}
	out := make([]CellView, 0, len(hs.Cells))
	for _, c := range hs.Cells {
		cv := CellView{ID: c.ID, MemoryMB: c.MemoryMB, MemoryUsedMB: c.MemoryUsedMB}
		core := map[int]int{}
		for _, s := range c.Siblings {
			first := s.List()[0]
			for _, cpu := range s.List() {
				core[cpu] = first
			}
		}
		holder := map[int]string{}
		for _, p := range c.Pinned {
			for _, cpu := range p.CPUs.List() {
				holder[cpu] = p.Workload
			}
		}
		for _, cpu := range c.CPUs.List() {
			k, ok := core[cpu]
			if !ok {
				k = cpu
			}
			view := CPUView{ID: cpu, Core: k, Dedicated: hs.DedicatedCPUs.Contains(cpu), Shared: hs.SharedCPUs.Contains(cpu)}
			pools := poolNames(view.Dedicated, view.Shared)
			switch id, pinned := holder[cpu]; {
			case pinned:
				wr := WorkloadRef{ID: id, Kind: string(kindOf[id])}
				if w, ok := byID[id]; ok {
					wr = ref(w)
				}
				if wr.Kind == "" {
					wr.Kind = string(scheduler.KindContainer)
				}
				view.Workload = &wr
				view.Role = RoleContainer
				if wr.Kind == string(scheduler.KindVM) {
					view.Role = RoleVM
				}
				view.Title = fmt.Sprintf("pCPU %d (cell %d): pinned by %s %s", cpu, c.ID, wr.Kind, wr.Label())
			case view.Shared:
				view.Role = RoleShared
				view.Title = fmt.Sprintf("pCPU %d (cell %d): %s, %s", cpu, c.ID, pools, sharedNote)
			case view.Dedicated:
				view.Role = RoleFree
				view.Title = fmt.Sprintf("pCPU %d (cell %d): dedicated pool, free", cpu, c.ID)
			default:
				view.Role = RoleReserved
				view.Title = fmt.Sprintf("pCPU %d (cell %d): in no pool (reserved for the host or offline)", cpu, c.ID)
			}
			cv.CPUs = append(cv.CPUs, view)
		}
		out = append(out, cv)
	}
	return out
}

func poolNames(dedicated, shared bool) string {
	switch {
	case dedicated && shared:
		return "shared and dedicated pools"
	case shared:
		return "shared pool"
	}
	return "dedicated pool"
}

func (v *View) loadDecisions(ctx context.Context, tx pgx.Tx, o Options, byID map[string]ledger.Workload) error {
	ds, err := ledger.RecentDecisions(ctx, tx, o.Decisions)
	if err != nil {
		return err
	}
	v.Decisions = make([]DecisionView, 0, len(ds))
	for _, d := range ds {
		dv := DecisionView{ID: d.ID, At: d.CreatedAt.UTC(), RequestID: d.RequestID, Kind: string(d.Kind),
			WorkloadID: d.WorkloadID, Host: d.Host, Error: d.Error, Stats: d.Stats, Rejected: d.Rejected}
		if w, ok := byID[d.WorkloadID]; ok {
			dv.Workload = w.Name
		}
		if d.Placement != nil && d.Placement.Dedicated {
			dv.CPUs = d.Placement.CPUs
		}
		for _, f := range d.Filters {
			for r, n := range f.Reasons {
				dv.Reasons = append(dv.Reasons, ReasonCount{Filter: f.Name, Reason: r, Hosts: n})
			}
		}
		slices.SortFunc(dv.Reasons, func(a, b ReasonCount) int {
			return cmp.Or(b.Hosts-a.Hosts, cmp.Compare(a.Filter, b.Filter), cmp.Compare(a.Reason, b.Reason))
		})
		v.Decisions = append(v.Decisions, dv)
	}
	return nil
}

func (v *View) loadOutbox(ctx context.Context, tx pgx.Tx, o Options) error {
	now := o.Now()
	b, err := outbox.Stats(ctx, tx, now, o.LagWindow)
	if err != nil {
		return err
	}
	ov := OutboxView{Pending: b.Pending, Failing: b.Failing, Window: Duration(b.Window), Delivered: b.Delivered,
		LagP50: Duration(b.LagP50), LagP99: Duration(b.LagP99), LagMax: Duration(b.LagMax)}
	if !b.OldestPending.IsZero() {
		ov.OldestPendingAge = Duration(max(0, now.Sub(b.OldestPending)))
	}
	if o.Gatherer != nil {
		h, err := notifyLag(o.Gatherer)
		if err != nil {
			return err
		}
		ov.Histogram = h
	}
	if o.Leader != nil {
		l := o.Leader()
		ov.Leader = &l
	}
	v.Outbox = ov
	return nil
}

var severityRank = map[string]int{"negligible": 1, "low": 2, "medium": 3, "high": 4, "critical": 5}

func (v *View) loadImages(ctx context.Context, tx pgx.Tx, o Options) error {
	images, err := imstore.ListImages(ctx, tx)
	if err != nil {
		return err
	}
	v.Images.Total = len(images)
	v.Images.List = []ImageView{}
	advisories := map[string]bool{}
	// Newest first; ListImages is oldest first.
	for i := len(images) - 1; i >= 0; i-- {
		im := images[i]
		a, err := imstore.GetAdvice(ctx, tx, im.ID)
		if err != nil {
			return err
		}
		iv := ImageView{ID: im.ID, Name: im.Name, Distro: im.Distro, Release: im.Release, Status: im.Status,
			Packages: im.Packages, Outdated: len(a.Upgrades)}
		mine := map[string]bool{}
		for _, u := range a.Upgrades {
			for _, r := range u.Advisories {
				mine[r.ID] = true
				advisories[r.ID] = true
			}
			if severityRank[strings.ToLower(u.Severity)] > severityRank[iv.Severity] {
				iv.Severity = strings.ToLower(u.Severity)
			}
		}
		iv.Advisories = len(mine)
		if !a.AdvisedAt.IsZero() {
			at := a.AdvisedAt.UTC()
			iv.AdvisedAt = &at
		}
		if iv.Outdated > 0 {
			v.Images.Outdated++
		}
		if len(v.Images.List) < o.MaxImages {
			v.Images.List = append(v.Images.List, iv)
		} else {
			v.Images.More++
		}
	}
	v.Images.Advisories = len(advisories)
	jobs, err := imstore.ListJobs(ctx, tx, o.Jobs)
	if err != nil {
		return err
	}
	v.Images.Jobs = make([]JobView, 0, len(jobs))
	for _, j := range jobs {
		jv := JobView{ID: j.ID, Kind: j.Kind, State: j.State, ImageID: j.ImageID, Step: j.Progress.Step,
			Error: truncate(j.Error, 300), Created: j.CreatedAt.UTC()}
		switch p := j.Progress; {
		case j.State == imstore.JobSucceeded:
			jv.Progress = 100
		case p.StepsTotal > 0:
			jv.Progress = math.Min(100, float64(p.StepsDone)*100/float64(p.StepsTotal))
		case p.BytesTotal > 0:
			jv.Progress = math.Min(100, float64(p.BytesDone)*100/float64(p.BytesTotal))
		}
		v.Images.Jobs = append(v.Images.Jobs, jv)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8Start(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }
