package candidates

import (
	"context"
	"sort"
	"strconv"
	"strings"

	"github.com/unisched/unisched/placement/qs"
)

// Request is a parsed GET /allocation_candidates query.
type Request struct {
	Query *qs.CandidatesQuery
	// NestedAware is true from microversion 1.29; before it, requests that
	// use more than one provider of a tree are dropped.
	NestedAware bool
}

// Result holds the allocation requests found and the providers to
// summarize. It refers to providers, classes and traits by snapshot index.
type Result struct {
	Snapshot  *Snapshot
	Requests  []AllocationRequest
	Summaries []int32 // providers, grouped by tree
}

// AllocationRequest is one way to satisfy every request group.
type AllocationRequest struct {
	// Allocations per provider, in order of first use.
	Allocations []Allocation
	// Mappings per request group, in the groups' order.
	Mappings []Mapping
}

// Allocation is what one provider gives to an AllocationRequest.
type Allocation struct {
	Provider  int32
	Resources []Resource
}

// Resource is an amount of one class.
type Resource struct {
	Class  int32
	Amount int64
}

// Mapping names the providers that satisfy one request group.
type Mapping struct {
	Suffix    string
	Providers []int32
}

// Find returns the allocation candidates for req. A *qs.Error is a bad
// request (unknown resource class or trait); anything that merely matches
// nothing gives an empty Result.
func Find(ctx context.Context, snap *Snapshot, req Request) (*Result, error) {
	f := &finder{ctx: ctx, s: snap, req: req, q: req.Query, cur: -1}
	empty := &Result{Snapshot: snap}
	ok, err := f.anchorFilter()
	if err != nil || !ok {
		return empty, err
	}
	// Upstream sets up and searches one group after the other and stops at
	// the first that matches nothing, so a later group's unknown name is
	// only reported when every earlier group has candidates. Groups are
	// searched lazily here; that check is made only when it matters.
	for i, qg := range f.q.Groups {
		g, found, err := f.prepare(qg)
		if err != nil {
			for _, prev := range f.groups[:i] {
				if !prev.nonEmpty(f) {
					return empty, nil
				}
			}
			return empty, err
		}
		if !found {
			return empty, nil
		}
		f.groups = append(f.groups, g)
	}
	return f.merge()
}

type finder struct {
	ctx    context.Context
	s      *Snapshot
	req    Request
	q      *qs.CandidatesQuery
	groups []*group
	// anchorRoots holds the roots allowed by root_required; nil means all.
	anchorRoots *bitset
	// cur and curSharing cache sharingFor for the anchor being evaluated.
	cur        int32
	curSharing []int32
}

func traitNotFound(name string) error {
	return &qs.Error{Detail: "No such trait(s): " + name + "."}
}

func (f *finder) traitIDs(names []string) ([]int32, error) {
	out := make([]int32, 0, len(names))
	for _, n := range names {
		t, ok := f.s.traitIdx[n]
		if !ok {
			return nil, traitNotFound(n)
		}
		out = append(out, t)
	}
	return out, nil
}

// anchorFilter applies root_required; false means no root qualifies.
func (f *finder) anchorFilter() (bool, error) {
	if len(f.q.RootRequired) == 0 && len(f.q.RootForbidden) == 0 {
		return true, nil
	}
	req, err := f.traitIDs(f.q.RootRequired)
	if err != nil {
		return false, err
	}
	forb, err := f.traitIDs(f.q.RootForbidden)
	if err != nil {
		return false, err
	}
	f.anchorRoots = newBitset(int(f.s.Len()))
	found := false
	for _, p := range f.s.roots {
		good := true
		for _, t := range req {
			if !f.s.hasTrait(p, t) {
				good = false
				break
			}
		}
		for _, t := range forb {
			if good && f.s.hasTrait(p, t) {
				good = false
			}
		}
		if good {
			f.anchorRoots.set(p)
			found = true
		}
	}
	return found, nil
}

func (f *finder) anchorAllowed(root int32) bool {
	return f.anchorRoots == nil || f.anchorRoots.has(root)
}

// sharingFor returns the sharing providers outside the tree rooted at a
// that share an aggregate with a provider of that tree, ascending.
func (f *finder) sharingFor(a int32) []int32 {
	if f.cur == a {
		return f.curSharing
	}
	f.cur, f.curSharing = a, f.curSharing[:0]
	s := f.s
	for _, m := range s.members.at(a) {
		for _, agg := range s.prov(m).Aggregates {
			for _, sp := range s.sharingInAgg.at(agg) {
				if s.prov(sp).Root != a && !containsInt32(f.curSharing, sp) {
					f.curSharing = append(f.curSharing, sp)
				}
			}
		}
	}
	s.sortByID(f.curSharing)
	return f.curSharing
}

// nonEmpty reports whether the group can be satisfied at some anchor.
func (g *group) nonEmpty(f *finder) bool {
	for _, a := range f.s.roots {
		if len(g.at(f, a)) > 0 {
			return true
		}
	}
	return false
}

// merge combines the groups anchor by anchor (the root of the tree the
// unsuffixed group's non-sharing providers, or each group's provider, belong
// to) and applies group_policy, same_subtree and the final capacity check.
func (f *finder) merge() (*Result, error) {
	res := &Result{Snapshot: f.s}
	exclude := !f.req.NestedAware && f.s.hasTrees
	limit := f.q.Limit
	earlyStop := limit > 0 && !exclude

	// Every root is a potential anchor; an unsuffixed group limited by
	// in_tree has only one.
	anchors := f.s.roots
	for _, g := range f.groups {
		if g.multi && g.treeRoot >= 0 {
			anchors = []int32{g.treeRoot}
		}
	}
	seen := map[string]struct{}{}
	granular := 0
	for _, g := range f.groups {
		if g.same {
			granular++
		}
	}
	lists := make([][]*areq, len(f.groups))
	idx := make([]int, len(f.groups))
	pick := make([]*areq, len(f.groups))
anchors:
	for n, a := range anchors {
		if n%1024 == 0 {
			if err := f.ctx.Err(); err != nil {
				return nil, err
			}
		}
		for i, g := range f.groups {
			lists[i] = g.at(f, a)
			if len(lists[i]) == 0 {
				continue anchors
			}
			idx[i] = 0
		}
		for {
			for i := range f.groups {
				pick[i] = lists[i][idx[i]]
			}
			if ar, ok := f.combine(pick, granular, seen); ok {
				res.Requests = append(res.Requests, ar)
				if earlyStop && len(res.Requests) >= limit {
					break anchors
				}
			}
			// Advance the odometer, last group fastest.
			i := len(idx) - 1
			for ; i >= 0; i-- {
				idx[i]++
				if idx[i] < len(lists[i]) {
					break
				}
				idx[i] = 0
			}
			if i < 0 {
				break
			}
		}
	}

	if exclude {
		kept := res.Requests[:0]
		inKept := map[int32]bool{}
		for _, ar := range res.Requests {
			roots := map[int32]bool{}
			for _, al := range ar.Allocations {
				roots[f.s.prov(al.Provider).Root] = true
			}
			if len(roots) == len(ar.Allocations) {
				kept = append(kept, ar)
				for _, al := range ar.Allocations {
					inKept[al.Provider] = true
				}
			}
		}
		res.Requests = kept
		if limit > 0 && len(res.Requests) > limit {
			res.Requests = res.Requests[:limit]
		}
		for _, r := range f.usedRoots(res.Requests) {
			for _, p := range f.s.members.at(r) {
				if inKept[p] {
					res.Summaries = append(res.Summaries, p)
				}
			}
		}
		return res, nil
	}
	if limit > 0 && len(res.Requests) > limit {
		res.Requests = res.Requests[:limit]
	}
	for _, r := range f.usedRoots(res.Requests) {
		res.Summaries = append(res.Summaries, f.s.members.at(r)...)
	}
	return res, nil
}

// usedRoots returns the roots of the providers that give resources to any
// of ars, ascending.
func (f *finder) usedRoots(ars []AllocationRequest) []int32 {
	set := map[int32]bool{}
	var roots []int32
	for _, ar := range ars {
		for _, al := range ar.Allocations {
			r := f.s.prov(al.Provider).Root
			if !set[r] {
				set[r] = true
				roots = append(roots, r)
			}
		}
	}
	f.s.sortByID(roots)
	return roots
}

// combine merges one allocation request per group into one, or reports
// that the combination is not acceptable or already seen.
func (f *finder) combine(pick []*areq, granular int, seen map[string]struct{}) (AllocationRequest, bool) {
	if f.q.GroupPolicy == "isolate" && granular > 1 {
		var provs []int32
		for i, a := range pick {
			if f.groups[i].same && len(a.provs) > 0 && !containsInt32(provs, a.provs[0]) {
				provs = append(provs, a.provs[0])
			}
		}
		if len(provs) != granular {
			return AllocationRequest{}, false
		}
	}
	for _, set := range f.q.SameSubtrees {
		var provs []int32
		for i, a := range pick {
			if containsString(set, f.groups[i].q.Suffix) {
				for _, p := range a.provs {
					if !containsInt32(provs, p) {
						provs = append(provs, p)
					}
				}
			}
		}
		if !f.sameSubtree(provs) {
			return AllocationRequest{}, false
		}
	}
	var ar AllocationRequest
	for i, a := range pick {
		for _, r := range a.rrs {
			j := 0
			for ; j < len(ar.Allocations); j++ {
				if ar.Allocations[j].Provider == r.p {
					break
				}
			}
			if j == len(ar.Allocations) {
				ar.Allocations = append(ar.Allocations, Allocation{Provider: r.p})
			}
			al := &ar.Allocations[j]
			k := 0
			for ; k < len(al.Resources); k++ {
				if al.Resources[k].Class == r.class {
					al.Resources[k].Amount += r.amount
					break
				}
			}
			if k == len(al.Resources) {
				al.Resources = append(al.Resources, Resource{Class: r.class, Amount: r.amount})
			}
		}
		ar.Mappings = append(ar.Mappings, Mapping{Suffix: f.groups[i].q.Suffix, Providers: a.provs})
	}
	for _, al := range ar.Allocations {
		for _, r := range al.Resources {
			inv := f.s.inventory(al.Provider, r.Class)
			if inv == nil || inv.Used+r.Amount > inv.Capacity() || r.Amount > inv.MaxUnit {
				return AllocationRequest{}, false
			}
		}
	}
	// The same request can come from two anchors only if every provider in
	// it is a sharing provider (any other provider ties it to its own
	// tree); within one anchor the combinations are distinct.
	for _, al := range ar.Allocations {
		if f.s.shares < 0 || !f.s.hasTrait(al.Provider, f.s.shares) {
			return ar, true
		}
	}
	key := requestKey(ar)
	if _, dup := seen[key]; dup {
		return AllocationRequest{}, false
	}
	seen[key] = struct{}{}
	return ar, true
}

// sameSubtree reports whether one of provs is an ancestor (or self) of all
// the others.
func (f *finder) sameSubtree(provs []int32) bool {
	if len(provs) <= 1 {
		return true
	}
	for _, cand := range provs {
		all := true
		for _, p := range provs {
			if !f.isAncestorOrSelf(cand, p) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

func (f *finder) isAncestorOrSelf(anc, p int32) bool {
	for p >= 0 {
		if p == anc {
			return true
		}
		p = f.s.prov(p).Parent
	}
	return false
}

// requestKey identifies an allocation request for de-duplication: the same
// resources from the same providers with the same mappings are one request,
// whatever anchor produced them.
func requestKey(ar AllocationRequest) string {
	type item struct {
		p, c int32
		n    int64
	}
	var items []item
	for _, al := range ar.Allocations {
		for _, r := range al.Resources {
			items = append(items, item{al.Provider, r.Class, r.Amount})
		}
	}
	sort.Slice(items, func(i, j int) bool {
		if items[i].p != items[j].p {
			return items[i].p < items[j].p
		}
		return items[i].c < items[j].c
	})
	var b strings.Builder
	for _, it := range items {
		b.WriteString(strconv.Itoa(int(it.p)))
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(int(it.c)))
		b.WriteByte(':')
		b.WriteString(strconv.FormatInt(it.n, 10))
		b.WriteByte(',')
	}
	for _, m := range ar.Mappings {
		b.WriteByte('|')
		b.WriteString(m.Suffix)
		ps := append([]int32(nil), m.Providers...)
		sortInt32(ps)
		for _, p := range ps {
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(int(p)))
		}
	}
	return b.String()
}

func containsInt32(s []int32, v int32) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func containsString(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
