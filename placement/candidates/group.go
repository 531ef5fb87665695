package candidates

import (
	"sort"

	"github.com/unisched/unisched/placement/qs"
)

// group is one request group being searched.
type group struct {
	q    *qs.Group
	same bool // one provider must satisfy the whole group
	// multi is true when the group may spread over a tree and sharing
	// providers (the unsuffixed group, when the deployment has trees or
	// sharing providers at all).
	multi bool

	classes  []int32 // request order
	amounts  []int64
	byClass  []int // indexes of classes, ascending class index
	required [][]int32
	forbid   []int32
	inAggs   *bitset // providers meeting member_of; nil without member_of
	badAggs  *bitset // providers in a forbidden aggregate; nil without
	treeRoot int32   // in_tree root, -1 without
	withRes  [][]int32

	// anchors is every root this group may be anchored at, ascending.
	anchors []int32
	// perRes holds, for the multi case, per resource the (anchor, provider)
	// pairs sorted by anchor then provider; pairs does the same for the
	// single-provider case.
	perRes [][]pair
	pairs  []pair
	cache  map[int32][]*areq
}

type pair struct{ anchor, p int32 }

// areq is one way to satisfy a single group at one anchor.
type areq struct {
	rrs   []rr
	provs []int32 // providers for the mapping
}

type rr struct {
	p      int32
	class  int32
	amount int64
}

// newGroup resolves a group's names and the providers with room for each of
// its resources, in upstream's order (so the same error wins). ok is false
// when nothing can match.
func (f *finder) newGroup(qg *qs.Group) (*group, bool, error) {
	s := f.s
	g := &group{q: qg, same: qg.SameProvider(), treeRoot: -1, cache: map[int32][]*areq{}}
	g.multi = !g.same && (len(s.sharing) > 0 || s.hasTrees)
	for _, a := range qg.Resources {
		c, ok := s.classIdx[a.Class]
		if !ok {
			return nil, false, &qs.Error{Detail: "Invalid resource class in resources parameter: No such resource class " + a.Class + "."}
		}
		g.classes = append(g.classes, c)
		g.amounts = append(g.amounts, a.Amount)
	}
	g.byClass = make([]int, len(g.classes))
	for i := range g.byClass {
		g.byClass[i] = i
	}
	sort.SliceStable(g.byClass, func(i, j int) bool { return g.classes[g.byClass[i]] < g.classes[g.byClass[j]] })

	if len(qg.MemberOf.Required) > 0 {
		g.inAggs = f.providersInAll(qg.MemberOf.Required)
		if g.inAggs == nil {
			return nil, false, nil
		}
	}
	for _, any := range qg.Traits.Required {
		ids, err := f.traitIDs(any)
		if err != nil {
			return nil, false, err
		}
		g.required = append(g.required, ids)
	}
	if len(qg.Traits.Forbidden) > 0 {
		ids, err := f.traitIDs(qg.Traits.Forbidden)
		if err != nil {
			return nil, false, err
		}
		g.forbid = ids
	}
	if qg.InTree != "" {
		p, ok := s.byUUID[qg.InTree]
		if !ok {
			return nil, false, nil
		}
		g.treeRoot = s.Providers[p].Root
	}
	if len(qg.MemberOf.Forbidden) > 0 {
		g.badAggs = newBitset(len(s.Providers))
		for _, u := range qg.MemberOf.Forbidden {
			if a, ok := s.aggIdx[u]; ok {
				for _, p := range s.inAgg[a] {
					g.badAggs.set(p)
				}
			}
		}
	}
	for i, c := range g.classes {
		var list []int32
		for _, p := range s.withClass[c] {
			if g.treeRoot >= 0 && s.Providers[p].Root != g.treeRoot {
				continue
			}
			if s.inventory(p, c).fits(g.amounts[i]) {
				list = append(list, p)
			}
		}
		if len(list) == 0 {
			return nil, false, nil
		}
		g.withRes = append(g.withRes, list)
	}
	if g.multi {
		g.buildMulti(f)
	} else {
		g.buildSingle(f)
	}
	return g, true, nil
}

// providersInAll returns the providers that are, for every inner list, in at
// least one of its aggregates; nil if there are none.
func (f *finder) providersInAll(clauses [][]string) *bitset {
	s := f.s
	var result *bitset
	for _, clause := range clauses {
		b := newBitset(len(s.Providers))
		any := false
		for _, u := range clause {
			if a, ok := s.aggIdx[u]; ok {
				for _, p := range s.inAgg[a] {
					if result == nil || result.has(p) {
						b.set(p)
						any = true
					}
				}
			}
		}
		if !any {
			return nil
		}
		result = b
	}
	return result
}

func (g *group) hasTrait(s *Snapshot, p int32) bool {
	for _, any := range g.required {
		ok := false
		for _, t := range any {
			if s.hasTrait(p, t) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

func (g *group) forbidden(s *Snapshot, p int32) bool {
	if g.badAggs != nil && g.badAggs.has(p) {
		return true
	}
	for _, t := range g.forbid {
		if s.hasTrait(p, t) {
			return true
		}
	}
	return false
}

// buildSingle finds the providers that alone satisfy the group
// (get_provider_ids_matching) and the anchors each can serve: its own root,
// and for a sharing provider every root it shares an aggregate with.
func (g *group) buildSingle(f *finder) {
	s := f.s
	var base []int32
	switch {
	case len(g.withRes) > 0:
		base = g.withRes[0]
		for _, l := range g.withRes[1:] {
			if len(l) < len(base) {
				base = l
			}
		}
	case len(g.required) > 0:
		seen := newBitset(len(s.Providers))
		for _, t := range g.required[0] {
			for _, p := range s.withTrait[t] {
				if !seen.has(p) {
					seen.set(p)
					base = append(base, p)
				}
			}
		}
		sortInt32(base)
	case g.inAggs != nil:
		for i := range s.Providers {
			if g.inAggs.has(int32(i)) {
				base = append(base, int32(i))
			}
		}
	default:
		// A resourceless group with neither required traits nor member_of
		// matches nothing upstream (its filter set stays empty).
		return
	}
	for _, p := range base {
		if !g.matchesSingle(s, p) {
			continue
		}
		root := s.Providers[p].Root
		if f.anchorAllowed(root) {
			g.pairs = append(g.pairs, pair{root, p})
		}
		if s.shares >= 0 && s.hasTrait(p, s.shares) {
			for _, a := range f.sharingAnchors(p) {
				if a != root && f.anchorAllowed(a) {
					g.pairs = append(g.pairs, pair{a, p})
				}
			}
		}
	}
	sortPairs(g.pairs)
	g.anchors = anchorsOf(g.pairs)
}

func (g *group) matchesSingle(s *Snapshot, p int32) bool {
	if !g.hasTrait(s, p) || g.forbidden(s, p) {
		return false
	}
	if g.inAggs != nil && !g.inAggs.has(p) {
		return false
	}
	for i, c := range g.classes {
		if g.treeRoot >= 0 && s.Providers[p].Root != g.treeRoot {
			return false
		}
		inv := s.inventory(p, c)
		if inv == nil || !inv.fits(g.amounts[i]) {
			return false
		}
	}
	return true
}

// buildMulti finds, per resource, the providers of each tree and the sharing
// providers that can give it (get_trees_matching_all), and keeps the trees
// that can give every resource.
func (g *group) buildMulti(f *finder) {
	s := f.s
	var common map[int32]int
	for i, c := range g.classes {
		var ps []pair
		add := func(a, p int32) {
			if !f.anchorAllowed(a) {
				return
			}
			if g.inAggs != nil && !g.inAggs.has(p) && !g.inAggs.has(a) {
				return
			}
			if g.badAggs != nil && (g.badAggs.has(p) || g.badAggs.has(a)) {
				return
			}
			ps = append(ps, pair{a, p})
		}
		for _, p := range g.withRes[i] {
			add(s.Providers[p].Root, p)
		}
		if g.treeRoot < 0 {
			for _, sp := range s.sharing {
				if g.inAggs != nil && !g.inAggs.has(sp) {
					continue
				}
				inv := s.inventory(sp, c)
				if inv == nil || !inv.fits(g.amounts[i]) {
					continue
				}
				for _, a := range f.sharingAnchors(sp) {
					if a != s.Providers[sp].Root {
						add(a, sp)
					}
				}
			}
		}
		if len(ps) == 0 {
			g.anchors = nil
			return
		}
		sortPairs(ps)
		ps = dedupPairs(ps)
		g.perRes = append(g.perRes, ps)
		next := map[int32]int{}
		for _, a := range anchorsOf(ps) {
			if common == nil || common[a] == i {
				next[a] = i + 1
			}
		}
		if len(next) == 0 {
			g.anchors = nil
			return
		}
		common = next
	}
	for a := range common {
		g.anchors = append(g.anchors, a)
	}
	sortInt32(g.anchors)
}

func (g *group) hasAnchor(a int32) bool {
	i := sort.Search(len(g.anchors), func(i int) bool { return g.anchors[i] >= a })
	return i < len(g.anchors) && g.anchors[i] == a
}

// nonEmpty reports whether the group can be satisfied at some anchor.
func (g *group) nonEmpty(f *finder) bool {
	for _, a := range g.anchors {
		if len(g.areqsFor(f, a)) > 0 {
			return true
		}
	}
	return false
}

// areqsFor returns the ways this group can be satisfied at anchor a.
func (g *group) areqsFor(f *finder, a int32) []*areq {
	if out, ok := g.cache[a]; ok {
		return out
	}
	var out []*areq
	if g.multi {
		out = g.multiAt(f, a)
	} else {
		for _, pr := range pairsAt(g.pairs, a) {
			ar := &areq{provs: []int32{pr.p}}
			for i, c := range g.classes {
				ar.rrs = append(ar.rrs, rr{pr.p, c, g.amounts[i]})
			}
			out = append(out, ar)
		}
	}
	g.cache[a] = out
	return out
}

// multiAt builds every combination of one provider per resource within the
// tree anchored at a (plus its sharing providers) whose providers together
// have the required traits and none of them a forbidden trait.
func (g *group) multiAt(f *finder, a int32) []*areq {
	s := f.s
	opts := make([][]int32, len(g.classes))
	for k, i := range g.byClass {
		for _, pr := range pairsAt(g.perRes[i], a) {
			opts[k] = append(opts[k], pr.p)
		}
		if len(opts[k]) == 0 {
			return nil
		}
	}
	var out []*areq
	idx := make([]int, len(opts))
	for {
		ok := true
		var provs []int32
		for k := range opts {
			p := opts[k][idx[k]]
			if g.hasForbiddenTrait(s, p) {
				ok = false
				break
			}
			if !containsInt32(provs, p) {
				provs = append(provs, p)
			}
		}
		if ok && g.collectivelyHas(s, provs) {
			ar := &areq{provs: provs}
			for k, i := range g.byClass {
				ar.rrs = append(ar.rrs, rr{opts[k][idx[k]], g.classes[i], g.amounts[i]})
			}
			out = append(out, ar)
		}
		k := len(idx) - 1
		for ; k >= 0; k-- {
			idx[k]++
			if idx[k] < len(opts[k]) {
				break
			}
			idx[k] = 0
		}
		if k < 0 {
			break
		}
	}
	return out
}

func (g *group) hasForbiddenTrait(s *Snapshot, p int32) bool {
	for _, t := range g.forbid {
		if s.hasTrait(p, t) {
			return true
		}
	}
	return false
}

func (g *group) collectivelyHas(s *Snapshot, provs []int32) bool {
	for _, any := range g.required {
		ok := false
		for _, p := range provs {
			for _, t := range any {
				if s.hasTrait(p, t) {
					ok = true
					break
				}
			}
			if ok {
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

func sortPairs(ps []pair) {
	sort.Slice(ps, func(i, j int) bool {
		if ps[i].anchor != ps[j].anchor {
			return ps[i].anchor < ps[j].anchor
		}
		return ps[i].p < ps[j].p
	})
}

func dedupPairs(ps []pair) []pair {
	out := ps[:0]
	for i, p := range ps {
		if i == 0 || p != ps[i-1] {
			out = append(out, p)
		}
	}
	return out
}

func anchorsOf(ps []pair) []int32 {
	var out []int32
	for i, p := range ps {
		if i == 0 || p.anchor != ps[i-1].anchor {
			out = append(out, p.anchor)
		}
	}
	return out
}

// pairsAt returns the pairs of a sorted list whose anchor is a.
func pairsAt(ps []pair, a int32) []pair {
	lo := sort.Search(len(ps), func(i int) bool { return ps[i].anchor >= a })
	hi := lo
	for hi < len(ps) && ps[hi].anchor == a {
		hi++
	}
	return ps[lo:hi]
}
