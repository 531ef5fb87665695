package candidates

import (
	"sort"

	"github.com/unisched/unisched/placement/qs"
)

// group is one request group being searched. Groups are evaluated lazily,
// one anchor (tree root) at a time.
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
}

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

// prepare resolves a group's names and checks what upstream checks when it
// sets the group up (RequestGroupSearchContext), in the same order so the
// same error wins: classes, member_of, traits, in_tree, then whether any
// provider has room for each resource. found is false when nothing can
// match.
func (f *finder) prepare(qg *qs.Group) (g *group, found bool, err error) {
	s := f.s
	g = &group{q: qg, same: qg.SameProvider(), treeRoot: -1}
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
			return g, false, nil
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
		p, ok := s.Lookup(qg.InTree)
		if !ok {
			return g, false, nil
		}
		g.treeRoot = s.prov(p).Root
	}
	if len(qg.MemberOf.Forbidden) > 0 {
		g.badAggs = newBitset(int(s.Len()))
		for _, u := range qg.MemberOf.Forbidden {
			if a, ok := s.aggIndex(u); ok {
				for _, p := range s.inAgg.at(a) {
					g.badAggs.set(p)
				}
			}
		}
	}
	for i, c := range g.classes {
		if !g.anyRoom(s, c, g.amounts[i]) {
			return g, false, nil
		}
	}
	return g, true, nil
}

// anyRoom reports whether some provider (in the in_tree tree, if given)
// has room for amount of class c.
func (g *group) anyRoom(s *Snapshot, c int32, amount int64) bool {
	if g.treeRoot >= 0 {
		for _, p := range s.members.at(g.treeRoot) {
			if inv := s.inventory(p, c); inv != nil && inv.fits(amount) {
				return true
			}
		}
		return false
	}
	for _, p := range s.withClass[c] {
		if s.inventory(p, c).fits(amount) {
			return true
		}
	}
	return false
}

// providersInAll returns the providers that are, for every inner list, in at
// least one of its aggregates; nil if there are none.
func (f *finder) providersInAll(clauses [][]string) *bitset {
	s := f.s
	var result *bitset
	for _, clause := range clauses {
		b := newBitset(int(s.Len()))
		any := false
		for _, u := range clause {
			if a, ok := s.aggIndex(u); ok {
				for _, p := range s.inAgg.at(a) {
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

// at returns the ways this group can be satisfied in the tree rooted at a
// (with the sharing providers linked to it).
func (g *group) at(f *finder, a int32) []*areq {
	if !f.anchorAllowed(a) {
		return nil
	}
	if g.multi {
		return g.multiAt(f, a)
	}
	var out []*areq
	add := func(p int32) {
		if !g.matchesSingle(f.s, p) {
			return
		}
		ar := &areq{provs: []int32{p}}
		for i, c := range g.classes {
			ar.rrs = append(ar.rrs, rr{p, c, g.amounts[i]})
		}
		out = append(out, ar)
	}
	for _, p := range f.s.members.at(a) {
		add(p)
	}
	for _, sp := range f.sharingFor(a) {
		add(sp)
	}
	return out
}

// matchesSingle reports whether p alone satisfies the group
// (get_provider_ids_matching).
func (g *group) matchesSingle(s *Snapshot, p int32) bool {
	if len(g.classes) == 0 && len(g.required) == 0 && g.inAggs == nil {
		// A resourceless group with neither required traits nor member_of
		// matches nothing upstream (its filter set stays empty).
		return false
	}
	if !g.hasTraits(s, p) || g.hasForbiddenTrait(s, p) {
		return false
	}
	if g.inAggs != nil && !g.inAggs.has(p) {
		return false
	}
	if g.badAggs != nil && g.badAggs.has(p) {
		return false
	}
	if len(g.classes) > 0 && g.treeRoot >= 0 && s.prov(p).Root != g.treeRoot {
		return false
	}
	for i, c := range g.classes {
		inv := s.inventory(p, c)
		if inv == nil || !inv.fits(g.amounts[i]) {
			return false
		}
	}
	return true
}

func (g *group) hasTraits(s *Snapshot, p int32) bool {
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

func (g *group) hasForbiddenTrait(s *Snapshot, p int32) bool {
	for _, t := range g.forbid {
		if s.hasTrait(p, t) {
			return true
		}
	}
	return false
}

// multiAt builds (get_trees_matching_all, _alloc_candidates_multiple_
// providers) every combination of one provider per resource within the tree
// anchored at a plus its sharing providers, whose providers together have
// the required traits and none of them a forbidden trait. member_of is met
// by a provider or by the anchor; a forbidden aggregate on either excludes.
func (g *group) multiAt(f *finder, a int32) []*areq {
	s := f.s
	if g.treeRoot >= 0 && a != g.treeRoot {
		return nil
	}
	anchorIn := g.inAggs != nil && g.inAggs.has(a)
	if g.badAggs != nil && g.badAggs.has(a) {
		return nil
	}
	opts := make([][]int32, len(g.classes))
	for k, i := range g.byClass {
		c, amount := g.classes[i], g.amounts[i]
		for _, p := range s.members.at(a) {
			if g.inAggs != nil && !anchorIn && !g.inAggs.has(p) {
				continue
			}
			if g.badAggs != nil && g.badAggs.has(p) {
				continue
			}
			if inv := s.inventory(p, c); inv != nil && inv.fits(amount) {
				opts[k] = append(opts[k], p)
			}
		}
		if g.treeRoot < 0 {
			for _, sp := range f.sharingFor(a) {
				if g.inAggs != nil && !g.inAggs.has(sp) {
					continue
				}
				if g.badAggs != nil && g.badAggs.has(sp) {
					continue
				}
				if inv := s.inventory(sp, c); inv != nil && inv.fits(amount) {
					opts[k] = append(opts[k], sp)
				}
			}
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
