package scheduler

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
)

// Options bound the engine's work.
type Options struct {
	// MaxScoredHosts stops filtering once this many hosts passed every
	// filter without an Avoid; only those are weighed. 0: no cap. With a
	// cap, the hosts considered are the first ones of the request's
	// shuffled order, so the best host of the whole fleet may be missed:
	// the price of a bounded decision time at large scale.
	MaxScoredHosts int
	// Alternates is how many runner-up hosts the Decision carries, for
	// the coordinator to claim when the first claim loses a race.
	Alternates int
	// Parallelism is how many goroutines filter hosts; 0 or 1 filters on
	// the calling goroutine. Results do not depend on it.
	Parallelism int
}

// WeightedWeigher is a weigher with its multiplier (negative inverts it).
type WeightedWeigher struct {
	Weigher Weigher
	Weight  float64
}

// Engine runs filters and weighers over a snapshot. It holds only its
// configuration, so one Engine serves concurrent Schedule calls.
type Engine struct {
	filters  []Filter
	weighers []WeightedWeigher
	opt      Options
}

// NewEngine builds an engine; filters run in the given order, so put the
// cheap and selective ones first.
func NewEngine(filters []Filter, weighers []WeightedWeigher, opt Options) (*Engine, error) {
	if opt.MaxScoredHosts < 0 || opt.Alternates < 0 || opt.Parallelism < 0 {
		return nil, fmt.Errorf("scheduler options must not be negative: %+v", opt)
	}
	seen := map[string]bool{}
	for _, f := range filters {
		if f == nil {
			return nil, errors.New("nil filter")
		}
		if seen["filter "+f.Name()] {
			return nil, fmt.Errorf("filter %s listed twice", f.Name())
		}
		seen["filter "+f.Name()] = true
	}
	for _, w := range weighers {
		if w.Weigher == nil {
			return nil, errors.New("nil weigher")
		}
		if math.IsNaN(w.Weight) || math.IsInf(w.Weight, 0) {
			return nil, fmt.Errorf("weigher %s: weight %v is not finite", w.Weigher.Name(), w.Weight)
		}
		if seen["weigher "+w.Weigher.Name()] {
			return nil, fmt.Errorf("weigher %s listed twice", w.Weigher.Name())
		}
		seen["weigher "+w.Weigher.Name()] = true
	}
	return &Engine{filters: slices.Clone(filters), weighers: slices.Clone(weighers), opt: opt}, nil
}

// Choice is one host the request may go to, with where on it.
type Choice struct {
	Host         string
	ProviderUUID string
	// Score is the weighted sum of normalized weigher scores.
	Score float64
	// Avoided is true when a threshold filter asked to avoid the host and
	// no better host passed.
	Avoided   bool
	Placement Placement
}

// Decision is the chosen host (the embedded Choice), the alternates in
// order, and how the hosts fared.
type Decision struct {
	Choice
	Alternates []Choice
	Stats      Stats
}

// Stats say why hosts were left out: the NoValidHost message and the
// dashboard's "why" are made of them.
type Stats struct {
	// Hosts in the snapshot, Examined by the filters (fewer when the
	// MaxScoredHosts cap stopped filtering early).
	Hosts, Examined int
	// Candidates passed every filter; Avoided of them were avoided.
	Candidates, Avoided int
	// Scored were weighed.
	Scored  int
	Filters []FilterStats
	// Rejections: one per host left out, with the first filter that
	// rejected it, in examination order. Filter "placement" means the
	// engine could not place CPUs on a host the filters let through (no
	// numa filter configured).
	Rejections []Rejection
}

// FilterStats count one filter's verdicts.
type FilterStats struct {
	Name                       string
	NoFitNow, NeverFits, Avoid int
	Reasons                    map[Reason]int
}

// Rejection is one host left out.
type Rejection struct {
	Host   string
	Filter string
	Code   Code
	Reason Reason
}

// ErrNoValidHost is matched by every *NoValidHostError.
var ErrNoValidHost = errors.New("no valid host")

// NoValidHostError says that no host can take the request, and why.
type NoValidHostError struct {
	RequestID string
	Stats     Stats
}

func (e *NoValidHostError) Is(target error) bool { return target == ErrNoValidHost }

// Retryable reports whether some host could take the request once capacity
// is freed (a NoFitNow); false means no host of the fleet ever will.
func (e *NoValidHostError) Retryable() bool {
	for _, f := range e.Stats.Filters {
		if f.NoFitNow > 0 {
			return true
		}
	}
	return false
}

// Error reads like "No valid host was found for request r1: 3 of 3 hosts
// examined; resources rejected 2 (not enough PCPU: 2); numa rejected 1 (no
// NUMA cell has enough free CPUs: 1)".
func (e *NoValidHostError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "No valid host was found for request %s: %d of %d hosts examined", e.RequestID, e.Stats.Examined, e.Stats.Hosts)
	for _, f := range e.Stats.Filters {
		n := f.NoFitNow + f.NeverFits
		if n == 0 {
			continue
		}
		fmt.Fprintf(&b, "; %s rejected %d (", f.Name, n)
		reasons := make([]Reason, 0, len(f.Reasons))
		for r := range f.Reasons {
			reasons = append(reasons, r)
		}
		sort.Slice(reasons, func(i, j int) bool {
			if f.Reasons[reasons[i]] != f.Reasons[reasons[j]] {
				return f.Reasons[reasons[i]] > f.Reasons[reasons[j]]
			}
			return reasons[i] < reasons[j]
		})
		for i, r := range reasons {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%s: %d", r, f.Reasons[r])
		}
		b.WriteString(")")
	}
	return b.String()
}

// outcome is what the filter chain said of one host.
type outcome struct {
	code   Code
	reason Reason
	err    error
	filter int // index of the deciding filter: the rejecting one, or the first Avoid; -1 for a clean pass
}

func (e *Engine) check(ctx context.Context, req *Request, h *HostState) outcome {
	o := outcome{filter: -1}
	for i, f := range e.filters {
		v := f.Filter(ctx, req, h)
		switch v.Code {
		case Pass:
		case Avoid:
			if o.code == Pass {
				o = outcome{code: Avoid, reason: v.Reason, filter: i}
			}
		default:
			return outcome{code: v.Code, reason: v.Reason, err: v.Err, filter: i}
		}
	}
	return o
}

// batchSize is how many hosts one goroutine filters between two looks at
// the cap and the context.
const batchSize = 256

type candidate struct {
	host  *HostState
	score float64
	pos   int // in the shuffled order: the tie-break
}

// Schedule picks a host for the request. Cheap filters run first on hosts
// in an order shuffled with the request id as seed, so that equal hosts
// share the load and a replay gives the same answer; filtering stops at
// MaxScoredHosts candidates; weighers rank them (ties keep the shuffled
// order); the first host where the CPUs can be placed wins and the next
// ones become alternates. Avoided hosts come after every other candidate.
// When no host fits, the error is a *NoValidHostError.
func (e *Engine) Schedule(ctx context.Context, snap *Snapshot, req *Request) (Decision, error) {
	if err := req.Validate(); err != nil {
		return Decision{}, err
	}
	r := *req
	if r.Group != nil && r.Group.Hosts == nil {
		g := *r.Group
		g.Hosts = snap.GroupHosts(g.ID)
		if g.Hosts == nil {
			g.Hosts = []string{}
		}
		r.Group = &g
	}
	stats := Stats{Hosts: snap.Len(), Filters: make([]FilterStats, len(e.filters))}
	for i, f := range e.filters {
		stats.Filters[i].Name = f.Name()
	}
	order := shuffled(snap.Len(), r.ID)
	var good, avoided []candidate
	par := max(1, e.opt.Parallelism)
	results := make([]outcome, min(len(order), batchSize*par))
	full := func() bool { return e.opt.MaxScoredHosts > 0 && len(good) >= e.opt.MaxScoredHosts }
	for start := 0; start < len(order) && !full(); start += len(results) {
		if err := ctx.Err(); err != nil {
			return Decision{}, fmt.Errorf("scheduling request %s: %w", r.ID, err)
		}
		batch := order[start:min(len(order), start+len(results))]
		e.checkBatch(ctx, &r, snap.hosts, batch, results[:len(batch)], par)
		for k, hi := range batch {
			if full() {
				break
			}
			h, o := snap.hosts[hi], results[k]
			stats.Examined++
			switch o.code {
			case Pass:
				good = append(good, candidate{host: h, pos: start + k})
			case Avoid:
				avoided = append(avoided, candidate{host: h, pos: start + k})
				fs := &stats.Filters[o.filter]
				fs.Avoid++
				countReason(fs, o.reason)
			case Error:
				return Decision{}, fmt.Errorf("scheduling request %s: filter %s on host %s: %w", r.ID, e.filters[o.filter].Name(), h.Name, o.err)
			default:
				fs := &stats.Filters[o.filter]
				if o.code == NeverFits {
					fs.NeverFits++
				} else {
					fs.NoFitNow++
				}
				countReason(fs, o.reason)
				stats.Rejections = append(stats.Rejections, Rejection{Host: h.Name, Filter: fs.Name, Code: o.code, Reason: o.reason})
			}
		}
	}
	if e.opt.MaxScoredHosts > 0 && len(avoided) > e.opt.MaxScoredHosts {
		avoided = avoided[:e.opt.MaxScoredHosts]
	}
	stats.Candidates, stats.Avoided = len(good)+len(avoided), len(avoided)
	var d Decision
	want := 1 + e.opt.Alternates
	var chosen []Choice
	for _, tier := range []struct {
		c       []candidate
		avoided bool
	}{{good, false}, {avoided, true}} {
		if len(chosen) >= want || len(tier.c) == 0 {
			continue
		}
		if err := e.rank(ctx, &r, tier.c); err != nil {
			return Decision{}, err
		}
		stats.Scored += len(tier.c)
		for _, c := range tier.c {
			if len(chosen) >= want {
				break
			}
			p, v := Place(&r, c.host)
			if v.Rejected() {
				stats.Rejections = append(stats.Rejections, Rejection{Host: c.host.Name, Filter: "placement", Code: v.Code, Reason: v.Reason})
				continue
			}
			chosen = append(chosen, Choice{Host: c.host.Name, ProviderUUID: c.host.ProviderUUID, Score: c.score, Avoided: tier.avoided, Placement: p})
		}
	}
	d.Stats = stats
	if len(chosen) == 0 {
		return d, &NoValidHostError{RequestID: r.ID, Stats: stats}
	}
	d.Choice, d.Alternates = chosen[0], chosen[1:]
	return d, nil
}

func countReason(fs *FilterStats, r Reason) {
	if fs.Reasons == nil {
		fs.Reasons = make(map[Reason]int)
	}
	fs.Reasons[r]++
}

// checkBatch filters the hosts of batch into out, split over par goroutines.
func (e *Engine) checkBatch(ctx context.Context, req *Request, hosts []*HostState, batch []int, out []outcome, par int) {
	if par == 1 || len(batch) < 2*batchSize {
		for k, hi := range batch {
			out[k] = e.check(ctx, req, hosts[hi])
		}
		return
	}
	var wg sync.WaitGroup
	per := (len(batch) + par - 1) / par
	for lo := 0; lo < len(batch); lo += per {
		hi := min(len(batch), lo+per)
		wg.Go(func() {
			for k := lo; k < hi; k++ {
				out[k] = e.check(ctx, req, hosts[batch[k]])
			}
		})
	}
	wg.Wait()
}

// rank weighs the candidates and sorts them best first; ties keep the
// shuffled order they arrived in.
func (e *Engine) rank(ctx context.Context, req *Request, cands []candidate) error {
	raw := make([]float64, len(cands))
	for _, w := range e.weighers {
		lo, hi := math.Inf(1), math.Inf(-1)
		for i, c := range cands {
			s := w.Weigher.Weigh(ctx, req, c.host)
			if math.IsNaN(s) || math.IsInf(s, 0) {
				return fmt.Errorf("scheduling request %s: weigher %s gave %v for host %s", req.ID, w.Weigher.Name(), s, c.host.Name)
			}
			raw[i] = s
			lo, hi = min(lo, s), max(hi, s)
		}
		if hi <= lo {
			continue // all equal: the weigher cannot tell these hosts apart
		}
		for i := range cands {
			cands[i].score += w.Weight * (raw[i] - lo) / (hi - lo)
		}
	}
	slices.SortFunc(cands, func(a, b candidate) int {
		switch {
		case a.score > b.score:
			return -1
		case a.score < b.score:
			return 1
		}
		return a.pos - b.pos
	})
	return nil
}

// shuffled returns 0..n-1 in an order fixed by the seed string.
func shuffled(n int, seed string) []int {
	h := fnv.New64a()
	h.Write([]byte(seed))
	s := h.Sum64()
	rng := rand.New(rand.NewPCG(s, s^0x9e3779b97f4a7c15))
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	rng.Shuffle(n, func(i, j int) { order[i], order[j] = order[j], order[i] })
	return order
}
