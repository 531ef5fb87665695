package bridge

// Placement-level scheduling for Nova: Nova's scheduler asks GET
// /allocation_candidates and claims the first candidate it can. The
// coordinator filters and orders the candidates on its ledger's hosts with
// its own scheduler (NUMA cells, pinned pCPUs of VMs and containers alike,
// thresholds), so that Nova's first choice is the bridge's. Candidates on
// hosts no agent described are left to Nova, after the bridge's, in
// Placement's order.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/unisched/unisched/bridge/ledger"
	"github.com/unisched/unisched/bridge/scheduler"
)

// CandidatesMode is what the bridge does to Nova's allocation candidates
// (config nova.candidates).
type CandidatesMode string

// Candidates modes.
const (
	// CandidatesFirst puts the bridge's choice first, then its runners-up,
	// then the other ledger hosts that fit; ledger hosts that do not fit
	// are left out. Nova's scheduler does not follow the order (it weighs
	// the hosts itself), so Nova picks among the hosts the bridge kept.
	CandidatesFirst CandidatesMode = "first"
	// CandidatesOnly answers the bridge's choice alone among ledger hosts:
	// the VM goes where the decision log says.
	CandidatesOnly CandidatesMode = "only"
	// CandidatesOff leaves Placement's answer as it is.
	CandidatesOff CandidatesMode = "off"
)

// ParseCandidatesMode checks a configured mode; "" is first.
func ParseCandidatesMode(s string) (CandidatesMode, error) {
	switch m := CandidatesMode(strings.ToLower(strings.TrimSpace(s))); m {
	case "":
		return CandidatesFirst, nil
	case CandidatesFirst, CandidatesOnly, CandidatesOff:
		return m, nil
	}
	return "", fmt.Errorf("nova.candidates %q is none of first, only, off", s)
}

// CandidatesQuery is Nova's GET /allocation_candidates reduced to what the
// scheduler reasons about, with Placement's answer.
type CandidatesQuery struct {
	// RequestID is the caller's global request id ("" when none).
	RequestID string
	// Resources are the amounts asked, summed over the request groups.
	Resources map[string]int64
	// RequiredTraits must all be on the host; ForbiddenTraits none.
	RequiredTraits  []string
	ForbiddenTraits []string
	// MemberOf: the host is in one aggregate of every entry, and in none
	// of ForbiddenAggregates.
	MemberOf            [][]string
	ForbiddenAggregates []string
	// Roots lists, for every allocation request of Placement's answer in
	// its order, the root providers it allocates from.
	Roots [][]string
}

// IntentWait bounds how long a candidates query waits for the intent of a
// POST /servers still in flight through the Nova proxy.
const IntentWait = 500 * time.Millisecond

const sqlLedgerProviders = `SELECT provider_uuid::text, name FROM bridge_hosts WHERE provider_uuid = ANY($1::uuid[])`

// OrderCandidates answers which of Placement's allocation requests Nova
// gets, in which order (indexes into q.Roots); keep is false when the
// answer is Placement's own (mode off, no ledger host among the
// candidates, a request the scheduler cannot express). Every answer about
// ledger hosts logs a decision under the request id, with the chosen host
// and each rejected host's reason. No ledger host fitting leaves out
// every ledger candidate: Nova then says NoValidHost unless a non-ledger
// host remains.
func (c *Coordinator) OrderCandidates(ctx context.Context, mode CandidatesMode, q CandidatesQuery) ([]int, bool, error) {
	if mode == CandidatesOff || len(q.Roots) == 0 {
		return nil, false, nil
	}
	var all []string
	for _, roots := range q.Roots {
		all = append(all, roots...)
	}
	slices.Sort(all)
	all = slices.Compact(all)
	rows, err := c.pool.Query(ctx, sqlLedgerProviders, all)
	if err != nil {
		return nil, false, fmt.Errorf("finding the ledger hosts among the candidates: %w", err)
	}
	hostOf := map[string]string{}
	var p, h string
	if _, err := pgx.ForEachRow(rows, []any{&p, &h}, func() error { hostOf[p] = h; return nil }); err != nil {
		return nil, false, fmt.Errorf("finding the ledger hosts among the candidates: %w", err)
	}
	if len(hostOf) == 0 {
		return nil, false, nil
	}
	sreq, ok := c.candidatesRequest(ctx, q)
	if !ok {
		return nil, false, nil
	}
	snap, err := ledger.Snapshot(ctx, c.pool)
	if err != nil {
		return nil, false, err
	}
	// A ledger host whose root provider lacks a class the request asks
	// (nested providers hold it) is not one the scheduler can judge: it
	// is left to Placement, as a host no agent describes.
	var hosts []scheduler.HostState
	for _, hs := range snap.Hosts() {
		if _, ok := hostOf[hs.ProviderUUID]; !ok {
			continue
		}
		if !hasClasses(hs, sreq.Resources) {
			delete(hostOf, hs.ProviderUUID)
			continue
		}
		hosts = append(hosts, *hs)
	}
	if len(hosts) == 0 {
		return nil, false, nil
	}
	// The request's host of each allocation request: its first root that
	// is a ledger host.
	reqHost := make([]string, len(q.Roots))
	for i, roots := range q.Roots {
		for _, r := range roots {
			if h := hostOf[r]; h != "" {
				reqHost[i] = h
				break
			}
		}
	}
	narrowed, err := scheduler.NewSnapshot(hosts)
	if err != nil {
		return nil, false, fmt.Errorf("narrowing the snapshot to the candidates: %w", err)
	}
	d, serr := c.engine.Schedule(ctx, narrowed, sreq)
	if serr != nil && !errors.Is(serr, scheduler.ErrNoValidHost) {
		return nil, false, fmt.Errorf("scheduling request %s: %w", sreq.ID, serr)
	}
	rec := ledger.NewDecision(sreq, d, serr)
	for _, r := range d.Stats.Rejections {
		rec.Rejected = append(rec.Rejected, ledger.RejectedRecord{Host: r.Host, Filter: r.Filter, Reason: string(r.Reason)})
	}
	if err := ledger.RecordDecision(ctx, c.pool, &rec); err != nil {
		return nil, false, err
	}
	rank := map[string]int{}
	if serr == nil {
		rank[d.Host] = 0
		if mode == CandidatesFirst {
			for i, a := range d.Alternates {
				rank[a.Host] = i + 1
			}
			rejected := map[string]bool{}
			for _, r := range d.Stats.Rejections {
				rejected[r.Host] = true
			}
			for _, hs := range hosts {
				if _, ok := rank[hs.Name]; !ok && !rejected[hs.Name] {
					rank[hs.Name] = len(d.Alternates) + 1 // the rest, in Placement's order
				}
			}
		}
	}
	var order, others []int
	type ranked struct{ i, r int }
	var rs []ranked
	for i, h := range reqHost {
		if h == "" {
			others = append(others, i)
			continue
		}
		if r, ok := rank[h]; ok {
			rs = append(rs, ranked{i, r})
		}
	}
	slices.SortStableFunc(rs, func(a, b ranked) int { return a.r - b.r })
	for _, r := range rs {
		order = append(order, r.i)
	}
	order = append(order, others...)
	c.opts.Logger.DebugContext(ctx, "allocation candidates ordered", "request", sreq.ID, "host", d.Host, "kept", len(order), "of", len(q.Roots))
	return order, true, nil
}

// candidatesRequest builds the scheduling request of a candidates query,
// with the NUMA needs of the intent's flavor when the proxy recorded one.
// ok is false when the amounts are not a VM the scheduler can place (no
// CPU, or VCPU and PCPU together).
func (c *Coordinator) candidatesRequest(ctx context.Context, q CandidatesQuery) (*scheduler.Request, bool) {
	// Disk is left to Placement, which checked it already: it may come
	// from a sharing provider, which the scheduler's view of the compute
	// host does not hold.
	res := scheduler.Resources{
		VCPU: q.Resources[string(scheduler.VCPU)], PCPU: q.Resources[string(scheduler.PCPU)],
		MemoryMB: q.Resources[string(scheduler.MemoryMB)],
	}
	policy := scheduler.CPUShared
	switch {
	case res.PCPU > 0 && res.VCPU > 0, res.PCPU <= 0 && res.VCPU <= 0:
		return nil, false
	case res.PCPU > 0:
		policy = scheduler.CPUDedicated
	}
	id := q.RequestID
	if id == "" {
		id = "req-" + uuid.NewString()
	}
	r := &scheduler.Request{ID: id, Kind: scheduler.KindVM, Resources: res, CPUPolicy: policy,
		RequiredTraits: q.RequiredTraits, ForbiddenTraits: q.ForbiddenTraits, MemberOf: q.MemberOf,
		ForbiddenAggregates: q.ForbiddenAggregates}
	if q.RequestID != "" {
		in, err := ledger.AwaitIntent(ctx, c.pool, q.RequestID, IntentWait)
		if err == nil {
			r.Project = in.ProjectID
			if in.Flavor != nil {
				withNUMA := *r
				withNUMA.NUMA = numaNeeds(in.Flavor.ExtraSpecs)
				if withNUMA.Validate() == nil {
					r = &withNUMA
				}
			}
		} else if !errors.Is(err, ledger.ErrNotFound) {
			c.opts.Logger.DebugContext(ctx, "no intent for the candidates query", "request", q.RequestID, "error", err)
		}
	}
	if err := r.Validate(); err != nil {
		return nil, false
	}
	return r, true
}

// numaNeeds reads hw:numa_nodes and hw:numa_mem.N of a flavor.
func numaNeeds(specs map[string]string) scheduler.NUMANeeds {
	n, err := strconv.Atoi(specs["hw:numa_nodes"])
	if err != nil || n <= 0 || n > 64 {
		return scheduler.NUMANeeds{}
	}
	out := scheduler.NUMANeeds{Cells: n}
	for i := range n {
		m, err := strconv.ParseInt(specs["hw:numa_mem."+strconv.Itoa(i)], 10, 64)
		if err != nil {
			return scheduler.NUMANeeds{Cells: n}
		}
		out.MemoryMB = append(out.MemoryMB, m)
	}
	return out
}

// hasClasses reports whether the host's root provider has inventory of
// every class the request asks.
func hasClasses(h *scheduler.HostState, r scheduler.Resources) bool {
	for _, rc := range scheduler.ResourceClasses {
		if r.Amount(rc) == 0 {
			continue
		}
		if _, ok := h.Inventories[rc]; !ok {
			return false
		}
	}
	return true
}
