package candidates

import (
	"errors"
	"fmt"
	"sort"
)

// Changes is a batch of provider changes, as an index reads them after
// other transactions committed.
type Changes struct {
	// Classes and Traits, when not nil, are the complete new name lists
	// (ordered by id). Names may only be added at the end, as new ids are;
	// anything else (a deleted name) renumbers the indexes and needs a new
	// snapshot.
	Classes, Traits []string
	// Providers is the complete new state of providers added or changed;
	// ID must be set.
	Providers []ProviderData
	// Deleted lists the database ids of providers removed. Ids the
	// snapshot does not hold are ignored.
	Deleted []int64
}

// ErrRebuild reports changes that cannot be applied to a snapshot; build a
// new one from the complete data instead.
var ErrRebuild = errors.New("changes need a new snapshot")

// Apply returns a new snapshot with the changes applied; s is unchanged and
// stays usable. Only the newest snapshot derived from one NewSnapshot may be
// given changes, one call at a time: versions share their lookup maps and
// list storage (see registry and editList). A usage change costs a copy of
// the provider and of its page of the provider table; structural changes
// also edit the index lists they touch. After an error no further Apply is
// possible along this lineage.
func (s *Snapshot) Apply(c Changes) (*Snapshot, error) {
	return s.apply(c, false)
}

// change is what one batch does to one slot.
type change struct {
	old, new   *Provider
	parentUUID string
}

// applier carries one apply.
type applier struct {
	s, n    *Snapshot
	provs   *pvecWriter[*Provider]
	changed map[int32]*change
	order   []int32
	fresh   map[*Provider]bool // providers created by this batch, still mutable
}

func (s *Snapshot) apply(c Changes, initial bool) (_ *Snapshot, err error) {
	reg := s.reg
	reg.applyMu.Lock()
	defer reg.applyMu.Unlock()
	if reg.head != s.version {
		return nil, fmt.Errorf("%w: the snapshot is not the newest of its lineage", ErrRebuild)
	}
	defer func() {
		if err != nil {
			reg.head = 0 // the registry may hold entries of a version never made
		}
	}()
	n := *s
	n.version = s.version + 1
	a := &applier{s: s, n: &n, provs: newPvecWriter(s.provs), changed: map[int32]*change{}, fresh: map[*Provider]bool{}}
	if initial {
		a.changed = make(map[int32]*change, len(c.Providers))
		a.order = make([]int32, 0, len(c.Providers))
	}
	if err := a.names(c.Classes, c.Traits); err != nil {
		return nil, err
	}
	for _, id := range c.Deleted {
		a.delete(id)
	}
	seen := make(map[string]bool, len(c.Providers))
	for i := range c.Providers {
		pd := &c.Providers[i]
		if pd.ID == 0 {
			return nil, fmt.Errorf("provider %s: no database id", pd.UUID)
		}
		if seen[pd.UUID] {
			return nil, fmt.Errorf("provider %s listed twice", pd.UUID)
		}
		seen[pd.UUID] = true
		if err := a.upsert(pd); err != nil {
			return nil, err
		}
	}
	sortInt32(a.order)
	if err := a.parents(); err != nil {
		return nil, err
	}
	if err := a.trees(); err != nil {
		return nil, err
	}
	a.lists()
	n.provs = a.provs.done()
	reg.head = n.version
	return &n, nil
}

// names installs extended class and trait lists.
func (a *applier) names(classes, traits []string) error {
	s, n := a.s, a.n
	if classes != nil && len(classes) != len(s.classes) {
		if !extends(s.classes, classes) {
			return fmt.Errorf("%w: resource classes renumbered", ErrRebuild)
		}
		n.classes = classes
		n.classIdx = make(map[string]int32, len(classes))
		for i, c := range classes {
			n.classIdx[c] = int32(i)
		}
		n.withClass = make([][]int32, len(classes))
		copy(n.withClass, s.withClass)
	} else if classes != nil && !extends(s.classes, classes) {
		return fmt.Errorf("%w: resource classes renamed", ErrRebuild)
	}
	if traits != nil && len(traits) != len(s.traits) {
		if !extends(s.traits, traits) {
			return fmt.Errorf("%w: traits renumbered", ErrRebuild)
		}
		n.traits = traits
		n.traitIdx = make(map[string]int32, len(traits))
		for i, t := range traits {
			n.traitIdx[t] = int32(i)
		}
		n.shares = -1
		if i, ok := n.traitIdx[SharesTrait]; ok {
			n.shares = i
		}
	} else if traits != nil && !extends(s.traits, traits) {
		return fmt.Errorf("%w: traits renamed", ErrRebuild)
	}
	return nil
}

// extends reports whether next is old with names appended.
func extends(old, next []string) bool {
	if len(next) < len(old) {
		return false
	}
	for i := range old {
		if old[i] != next[i] {
			return false
		}
	}
	return true
}

func (a *applier) note(slot int32) *change {
	ch, ok := a.changed[slot]
	if !ok {
		ch = &change{}
		if slot < a.s.provs.n {
			ch.old = a.s.provs.at(slot)
		}
		a.changed[slot] = ch
		a.order = append(a.order, slot)
	}
	return ch
}

// slotOfID returns the live slot of database id, -1 if none.
func (a *applier) slotOfID(id int64) int32 {
	a.s.reg.mu.RLock()
	slot, ok := a.s.reg.byID[id]
	a.s.reg.mu.RUnlock()
	if !ok || slot >= a.provs.v.n {
		return -1
	}
	if p := a.provs.at(slot); p == nil || p.ID != id {
		return -1
	}
	return slot
}

// slotOfUUID returns the slot a uuid has (live or not), -1 if none.
func (a *applier) slotOfUUID(uuid string) int32 {
	a.s.reg.mu.RLock()
	slot, ok := a.s.reg.byUUID[uuid]
	a.s.reg.mu.RUnlock()
	if !ok || slot >= a.provs.v.n {
		return -1
	}
	return slot
}

func (a *applier) delete(id int64) {
	slot := a.slotOfID(id)
	if slot < 0 {
		return
	}
	ch := a.note(slot)
	ch.new = nil
	a.provs.set(slot, nil)
}

func (a *applier) upsert(pd *ProviderData) error {
	n, reg := a.n, a.s.reg
	slot := a.slotOfID(pd.ID)
	if slot >= 0 && a.provs.at(slot).UUID != pd.UUID {
		return fmt.Errorf("%w: provider id %d changed uuid", ErrRebuild, pd.ID)
	}
	if slot < 0 {
		slot = a.slotOfUUID(pd.UUID)
		if slot >= 0 && a.provs.at(slot) != nil {
			return fmt.Errorf("%w: provider %s: id %d, but the snapshot has id %d",
				ErrRebuild, pd.UUID, pd.ID, a.provs.at(slot).ID)
		}
		if slot < 0 {
			slot = a.provs.push(nil)
		}
		reg.mu.Lock()
		reg.byUUID[pd.UUID] = slot
		reg.byID[pd.ID] = slot
		reg.mu.Unlock()
	}
	p := &Provider{UUID: pd.UUID, Name: pd.Name, ID: pd.ID, Parent: -1, Root: slot}
	if len(pd.Inventories) > 0 {
		p.Inventories = make([]Inventory, 0, len(pd.Inventories))
	}
	for _, inv := range pd.Inventories {
		c, ok := n.classIdx[inv.Class]
		if !ok {
			return fmt.Errorf("provider %s: unknown resource class %s", pd.UUID, inv.Class)
		}
		p.Inventories = append(p.Inventories, Inventory{
			Class: c, Total: inv.Total, Reserved: inv.Reserved, MinUnit: inv.MinUnit, MaxUnit: inv.MaxUnit,
			StepSize: inv.StepSize, AllocationRatio: inv.AllocationRatio, Used: inv.Used,
		})
	}
	sort.Slice(p.Inventories, func(i, j int) bool { return p.Inventories[i].Class < p.Inventories[j].Class })
	for i := 1; i < len(p.Inventories); i++ {
		if p.Inventories[i].Class == p.Inventories[i-1].Class {
			return fmt.Errorf("provider %s: two inventories of %s", pd.UUID, n.classes[p.Inventories[i].Class])
		}
	}
	if len(pd.Traits) > 0 {
		p.Traits = make([]int32, 0, len(pd.Traits))
	}
	for _, t := range pd.Traits {
		ti, ok := n.traitIdx[t]
		if !ok {
			return fmt.Errorf("provider %s: unknown trait %s", pd.UUID, t)
		}
		p.Traits = append(p.Traits, ti)
	}
	p.Traits = sortUnique(p.Traits)
	if len(pd.Aggregates) > 0 {
		p.Aggregates = make([]int32, 0, len(pd.Aggregates))
	}
	for _, u := range pd.Aggregates {
		reg.mu.RLock()
		ai, ok := reg.aggIdx[u]
		reg.mu.RUnlock()
		if !ok {
			ai = reg.naggs
			reg.mu.Lock()
			reg.aggIdx[u] = ai
			reg.naggs++
			reg.mu.Unlock()
		}
		if ai >= n.naggs {
			n.naggs = ai + 1
		}
		p.Aggregates = append(p.Aggregates, ai)
	}
	p.Aggregates = sortUnique(p.Aggregates)

	ch := a.note(slot)
	if ch.old != nil {
		p.Root = ch.old.Root
	}
	ch.new, ch.parentUUID = p, pd.ParentUUID
	a.provs.set(slot, p)
	a.fresh[p] = true
	return nil
}

func sortUnique(s []int32) []int32 {
	if len(s) < 2 {
		return s
	}
	sortInt32(s)
	out := s[:1]
	for _, x := range s[1:] {
		if x != out[len(out)-1] {
			out = append(out, x)
		}
	}
	return out
}

// parents resolves the parents of the changed providers.
func (a *applier) parents() error {
	for _, slot := range a.order {
		ch := a.changed[slot]
		if ch.new == nil || ch.parentUUID == "" {
			continue
		}
		ps := a.slotOfUUID(ch.parentUUID)
		if ps < 0 || a.provs.at(ps) == nil || a.provs.at(ps).UUID != ch.parentUUID {
			return fmt.Errorf("provider %s: parent %s not in snapshot", ch.new.UUID, ch.parentUUID)
		}
		ch.new.Parent = ps
	}
	return nil
}

// mutable returns the provider in slot as a copy this batch may change.
func (a *applier) mutable(slot int32) *Provider {
	p := a.provs.at(slot)
	if a.fresh[p] {
		return p
	}
	cp := *p
	a.provs.set(slot, &cp)
	a.fresh[&cp] = true
	return &cp
}

func (a *applier) rootOf(slot int32) (int32, error) {
	r, steps := slot, int32(0)
	for {
		p := a.provs.at(r)
		if p == nil {
			return 0, fmt.Errorf("provider %s: an ancestor is missing", a.provs.at(slot).UUID)
		}
		if p.Parent < 0 {
			return r, nil
		}
		r = p.Parent
		if steps++; steps > a.provs.v.n {
			return 0, fmt.Errorf("provider %s: parent loop", a.provs.at(slot).UUID)
		}
	}
}

// trees recomputes roots, tree member lists and the root list for the trees
// a provider entered, left or moved within. Usage and other in-place
// changes skip all of it.
func (a *applier) trees() error {
	s, n := a.s, a.n
	var moved []int32
	for _, slot := range a.order {
		ch := a.changed[slot]
		switch {
		case ch.old == nil && ch.new == nil:
		case ch.old == nil || ch.new == nil, ch.old.Parent != ch.new.Parent, ch.old.ID != ch.new.ID:
			moved = append(moved, slot)
		}
		if ch.old != nil && ch.old.Parent >= 0 {
			n.children--
		}
		if ch.new != nil && ch.new.Parent >= 0 {
			n.children++
		}
		if ch.old == nil && ch.new != nil {
			n.live++
		} else if ch.old != nil && ch.new == nil {
			n.live--
		}
	}
	n.hasTrees = n.children > 0
	members := newPvecWriter(s.members)
	members.grow(a.provs.v.n)
	if len(moved) == 0 {
		n.members = members.done()
		return nil
	}
	dirty := map[int32]bool{}
	for _, slot := range moved {
		ch := a.changed[slot]
		if ch.old != nil {
			dirty[ch.old.Root] = true
		}
		if ch.new != nil {
			r, err := a.rootOf(slot)
			if err != nil {
				return err
			}
			dirty[r] = true
		}
	}
	affected := map[int32]bool{}
	for r := range dirty {
		if r < s.members.n {
			for _, m := range s.members.at(r) {
				affected[m] = true
			}
		}
	}
	for _, slot := range moved {
		affected[slot] = true
	}
	tree := map[int32][]int32{}
	for m := range affected {
		p := a.provs.at(m)
		if p == nil {
			continue
		}
		r, err := a.rootOf(m)
		if err != nil {
			return err
		}
		if p.Root != r {
			a.mutable(m).Root = r
		}
		if !dirty[r] {
			return fmt.Errorf("provider %s: moved into an unexpected tree", p.UUID)
		}
		tree[r] = append(tree[r], m)
	}
	var addRoots []int32
	delRoots := map[int32]bool{}
	for r := range dirty {
		wasRoot := r < s.members.n && s.members.at(r) != nil
		list := tree[r]
		isRoot := list != nil
		if isRoot {
			sort.Slice(list, func(i, j int) bool {
				if (list[i] == r) != (list[j] == r) {
					return list[i] == r
				}
				return a.provs.at(list[i]).ID < a.provs.at(list[j]).ID
			})
		}
		members.set(r, list)
		reordered := wasRoot && isRoot && s.provs.at(r).ID != a.provs.at(r).ID
		if wasRoot && (!isRoot || reordered) {
			delRoots[r] = true
		}
		if isRoot && (!wasRoot || reordered) {
			addRoots = append(addRoots, r)
		}
	}
	n.members = members.done()
	n.roots = a.editSorted(s.roots, delRoots, addRoots)
	return nil
}

// editSorted returns the id-ordered list without del and with add; adds
// past the end append in place (see editList).
func (a *applier) editSorted(list []int32, del map[int32]bool, add []int32) []int32 {
	id := func(i int32) int64 { return a.provs.at(i).ID }
	sort.Slice(add, func(i, j int) bool { return id(add[i]) < id(add[j]) })
	if len(del) == 0 && (len(list) == 0 || len(add) == 0 || id(add[0]) > id(list[len(list)-1])) {
		return editList(list, nil, add)
	}
	out := make([]int32, 0, len(list)+len(add)-len(del))
	j := 0
	for _, x := range list {
		if del[x] {
			continue
		}
		for j < len(add) && id(add[j]) < id(x) {
			out = append(out, add[j])
			j++
		}
		out = append(out, x)
	}
	return append(out, add[j:]...)
}

// editList returns list without the members of del, plus add. Without
// deletions it appends in place when there is room: every version's view of
// a list is a prefix of the newest version's (lists only ever change by
// appending to the newest or by copying), so the elements written past the
// newest length are seen by no published version.
func editList(list []int32, del map[int32]bool, add []int32) []int32 {
	if len(del) == 0 {
		return append(list, add...)
	}
	out := make([]int32, 0, len(list)+len(add))
	for _, x := range list {
		if !del[x] {
			out = append(out, x)
		}
	}
	return append(out, add...)
}

// listEdits collects the additions and removals of one family of lists.
type listEdits struct {
	add map[int32][]int32
	del map[int32]map[int32]bool
}

func (e *listEdits) adding(list, p int32) {
	if e.add == nil {
		e.add = map[int32][]int32{}
	}
	e.add[list] = append(e.add[list], p)
}

func (e *listEdits) removing(list, p int32) {
	if e.del == nil {
		e.del = map[int32]map[int32]bool{}
	}
	if e.del[list] == nil {
		e.del[list] = map[int32]bool{}
	}
	e.del[list][p] = true
}

// touched lists the lists with edits, ascending.
func (e *listEdits) touched() []int32 {
	var out []int32
	for l := range e.add {
		out = append(out, l)
	}
	for l := range e.del {
		if _, ok := e.add[l]; !ok {
			out = append(out, l)
		}
	}
	sortInt32(out)
	return out
}

// diffSorted calls onlyOld and onlyNew for the members of the ascending
// lists that are in one only.
func diffSorted(old, next []int32, onlyOld, onlyNew func(int32)) {
	i, j := 0, 0
	for i < len(old) || j < len(next) {
		switch {
		case j == len(next) || (i < len(old) && old[i] < next[j]):
			onlyOld(old[i])
			i++
		case i == len(old) || next[j] < old[i]:
			onlyNew(next[j])
			j++
		default:
			i++
			j++
		}
	}
}

func classesOf(p *Provider) []int32 {
	if p == nil {
		return nil
	}
	out := make([]int32, len(p.Inventories))
	for i := range p.Inventories {
		out[i] = p.Inventories[i].Class
	}
	return out
}

func sharesVia(p *Provider, shares int32) bool {
	if p == nil || shares < 0 {
		return false
	}
	for _, t := range p.Traits {
		if t == shares {
			return true
		}
	}
	return false
}

// lists edits the class, aggregate and sharing lists for the changed
// providers' differences.
func (a *applier) lists() {
	s, n := a.s, a.n
	var with, agg, shareAgg listEdits
	var share listEdits
	for _, slot := range a.order {
		ch := a.changed[slot]
		old, next := ch.old, ch.new
		if old != nil && next != nil && sameSlices(old, next) && sharesVia(old, s.shares) == sharesVia(next, n.shares) {
			continue
		}
		diffSorted(classesOf(old), classesOf(next),
			func(c int32) { with.removing(c, slot) }, func(c int32) { with.adding(c, slot) })
		var oldAggs, nextAggs []int32
		if old != nil {
			oldAggs = old.Aggregates
		}
		if next != nil {
			nextAggs = next.Aggregates
		}
		diffSorted(oldAggs, nextAggs,
			func(g int32) { agg.removing(g, slot) }, func(g int32) { agg.adding(g, slot) })
		oldShares, nextShares := sharesVia(old, s.shares), sharesVia(next, n.shares)
		if oldShares && !nextShares {
			share.removing(0, slot)
		} else if nextShares && !oldShares {
			share.adding(0, slot)
		}
		if !oldShares {
			oldAggs = nil
		}
		if !nextShares {
			nextAggs = nil
		}
		diffSorted(oldAggs, nextAggs,
			func(g int32) { shareAgg.removing(g, slot) }, func(g int32) { shareAgg.adding(g, slot) })
	}
	if ts := with.touched(); len(ts) > 0 {
		if len(n.withClass) == len(s.withClass) {
			n.withClass = append([][]int32(nil), s.withClass...)
		}
		for _, c := range ts {
			n.withClass[c] = editList(n.withClass[c], with.del[c], with.add[c])
		}
	}
	if len(share.touched()) > 0 {
		n.sharing = editList(s.sharing, share.del[0], share.add[0])
	}
	n.inAgg = editPvec(s.inAgg, n.naggs, &agg)
	n.sharingInAgg = editPvec(s.sharingInAgg, n.naggs, &shareAgg)
}

func editPvec(v pvec[[]int32], size int32, e *listEdits) pvec[[]int32] {
	ts := e.touched()
	if len(ts) == 0 && v.n == size {
		return v
	}
	w := newPvecWriter(v)
	w.grow(size)
	for _, l := range ts {
		w.set(l, editList(w.at(l), e.del[l], e.add[l]))
	}
	return w.done()
}

// sameSlices reports whether two versions of a provider have the same
// classes, traits and aggregates (so no index list changes).
func sameSlices(a, b *Provider) bool {
	if len(a.Inventories) != len(b.Inventories) || !equalInt32(a.Traits, b.Traits) || !equalInt32(a.Aggregates, b.Aggregates) {
		return false
	}
	for i := range a.Inventories {
		if a.Inventories[i].Class != b.Inventories[i].Class {
			return false
		}
	}
	return true
}

func equalInt32(a, b []int32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
