// Package candidates answers GET /allocation_candidates over an in-memory
// Snapshot of the providers, with Placement 8.0.0's semantics (objects/
// allocation_candidate.py and research_context.py) but none of its SQL.
// Upstream computes every group's candidates over the whole deployment and
// then merges them; here each tree root is an anchor evaluated on its own
// (its providers plus the sharing providers linked to it by aggregate), in
// ascending order, so a small limit stops after the first few trees and the
// cost of a request follows the answer rather than the fleet.
package candidates

import (
	"fmt"
	"math"
	"sort"
)

// SharesTrait marks a provider whose inventory may be used by the trees it
// shares an aggregate with.
const SharesTrait = "MISC_SHARES_VIA_AGGREGATE"

// Data is the raw content of a snapshot, as the store reads it.
type Data struct {
	// Classes lists every resource class name, ordered by class id.
	Classes []string
	// Traits lists every trait name, ordered by trait id.
	Traits []string
	// Providers in id (creation) order; a parent may come after its child.
	Providers []ProviderData
}

// ProviderData is one resource provider of Data.
type ProviderData struct {
	UUID        string
	Name        string
	ParentUUID  string // "" for a root
	Generation  int64
	Inventories []InventoryData
	Traits      []string
	Aggregates  []string
}

// InventoryData is one inventory record with the provider's current usage
// of that class.
type InventoryData struct {
	Class           string
	Total           int64
	Reserved        int64
	MinUnit         int64
	MaxUnit         int64
	StepSize        int64
	AllocationRatio float64
	Used            int64
}

// Provider is a provider of a Snapshot; Parent, Root, classes, traits and
// aggregates are snapshot indexes.
type Provider struct {
	UUID        string
	Name        string
	Generation  int64
	Parent      int32 // -1 for a root
	Root        int32
	Inventories []Inventory // by class index
	Traits      []int32     // ascending (trait id order)
	Aggregates  []int32     // ascending
}

// Inventory is one class of a Provider's inventory.
type Inventory struct {
	Class           int32
	Total           int64
	Reserved        int64
	MinUnit         int64
	MaxUnit         int64
	StepSize        int64
	AllocationRatio float64
	Used            int64
}

// Capacity is int((total - reserved) * allocation_ratio), as reported in
// provider summaries and used for the final check of merged requests.
func (inv *Inventory) Capacity() int64 {
	c := float64(inv.Total-inv.Reserved) * inv.AllocationRatio
	if c >= math.MaxInt64 {
		return math.MaxInt64
	}
	if c <= math.MinInt64 {
		return math.MinInt64
	}
	return int64(c)
}

// fits is the per-group check: unit constraints and the unrounded capacity.
func (inv *Inventory) fits(amount int64) bool {
	if amount < inv.MinUnit || amount > inv.MaxUnit {
		return false
	}
	if inv.StepSize > 0 && amount%inv.StepSize != 0 {
		return false
	}
	return float64(inv.Used)+float64(amount) <= float64(inv.Total-inv.Reserved)*inv.AllocationRatio
}

// Snapshot is an immutable view of all providers plus indexes; it is safe
// for concurrent use.
type Snapshot struct {
	Providers []Provider

	classes   []string
	classIdx  map[string]int32
	traits    []string
	traitIdx  map[string]int32
	aggs      []string
	aggIdx    map[string]int32
	byUUID    map[string]int32
	withClass [][]int32 // class -> providers with inventory of it
	inAgg     [][]int32 // aggregate -> providers
	members   [][]int32 // root -> providers of its tree (root first); nil for non-roots
	sharing   []int32   // providers with SharesTrait
	roots     []int32   // root providers, ascending
	// sharingInAgg lists, per aggregate, its members with SharesTrait.
	sharingInAgg [][]int32
	shares       int32 // trait index of SharesTrait, -1 if unknown
	hasTrees     bool
}

// NewSnapshot indexes d.
func NewSnapshot(d Data) (*Snapshot, error) {
	s := &Snapshot{
		classes:  d.Classes,
		classIdx: make(map[string]int32, len(d.Classes)),
		traits:   d.Traits,
		traitIdx: make(map[string]int32, len(d.Traits)),
		aggIdx:   make(map[string]int32),
		byUUID:   make(map[string]int32, len(d.Providers)),
		shares:   -1,
	}
	for i, c := range d.Classes {
		s.classIdx[c] = int32(i)
	}
	for i, t := range d.Traits {
		s.traitIdx[t] = int32(i)
	}
	if i, ok := s.traitIdx[SharesTrait]; ok {
		s.shares = i
	}
	s.Providers = make([]Provider, len(d.Providers))
	for i, pd := range d.Providers {
		if _, dup := s.byUUID[pd.UUID]; dup {
			return nil, fmt.Errorf("provider %s listed twice", pd.UUID)
		}
		s.byUUID[pd.UUID] = int32(i)
	}
	s.withClass = make([][]int32, len(d.Classes))
	for i, pd := range d.Providers {
		p := &s.Providers[i]
		p.UUID, p.Name, p.Generation, p.Parent = pd.UUID, pd.Name, pd.Generation, -1
		if pd.ParentUUID != "" {
			parent, ok := s.byUUID[pd.ParentUUID]
			if !ok {
				return nil, fmt.Errorf("provider %s: parent %s not in snapshot", pd.UUID, pd.ParentUUID)
			}
			p.Parent = parent
			s.hasTrees = true
		}
		for _, inv := range pd.Inventories {
			c, ok := s.classIdx[inv.Class]
			if !ok {
				return nil, fmt.Errorf("provider %s: unknown resource class %s", pd.UUID, inv.Class)
			}
			p.Inventories = append(p.Inventories, Inventory{
				Class: c, Total: inv.Total, Reserved: inv.Reserved, MinUnit: inv.MinUnit, MaxUnit: inv.MaxUnit,
				StepSize: inv.StepSize, AllocationRatio: inv.AllocationRatio, Used: inv.Used,
			})
			s.withClass[c] = append(s.withClass[c], int32(i))
		}
		sort.Slice(p.Inventories, func(a, b int) bool { return p.Inventories[a].Class < p.Inventories[b].Class })
		for _, t := range pd.Traits {
			ti, ok := s.traitIdx[t]
			if !ok {
				return nil, fmt.Errorf("provider %s: unknown trait %s", pd.UUID, t)
			}
			p.Traits = append(p.Traits, ti)
			if ti == s.shares {
				s.sharing = append(s.sharing, int32(i))
			}
		}
		sortInt32(p.Traits)
		for _, a := range pd.Aggregates {
			ai, ok := s.aggIdx[a]
			if !ok {
				ai = int32(len(s.aggs))
				s.aggIdx[a] = ai
				s.aggs = append(s.aggs, a)
				s.inAgg = append(s.inAgg, nil)
			}
			p.Aggregates = append(p.Aggregates, ai)
			s.inAgg[ai] = append(s.inAgg[ai], int32(i))
		}
		sortInt32(p.Aggregates)
	}
	// Roots, with a guard against parent loops in bad data.
	for i := range s.Providers {
		r, steps := int32(i), 0
		for s.Providers[r].Parent >= 0 {
			r = s.Providers[r].Parent
			if steps++; steps > len(s.Providers) {
				return nil, fmt.Errorf("provider %s: parent loop", s.Providers[i].UUID)
			}
		}
		s.Providers[i].Root = r
	}
	s.members = make([][]int32, len(s.Providers))
	for i := range s.Providers {
		r := s.Providers[i].Root
		s.members[r] = append(s.members[r], int32(i))
		if r == int32(i) {
			s.roots = append(s.roots, r)
		}
	}
	s.sharingInAgg = make([][]int32, len(s.aggs))
	for _, sp := range s.sharing {
		for _, a := range s.Providers[sp].Aggregates {
			s.sharingInAgg[a] = append(s.sharingInAgg[a], sp)
		}
	}
	for i := range s.members {
		if m := s.members[i]; len(m) > 1 && m[0] != int32(i) {
			// Keep the root first for readers that want it.
			for j := range m {
				if m[j] == int32(i) {
					copy(m[1:j+1], m[0:j])
					m[0] = int32(i)
					break
				}
			}
		}
	}
	return s, nil
}

// Lookup returns the index of the provider with the given uuid.
func (s *Snapshot) Lookup(uuid string) (int32, bool) {
	i, ok := s.byUUID[uuid]
	return i, ok
}

// ClassName returns the name of class index c.
func (s *Snapshot) ClassName(c int32) string { return s.classes[c] }

// TraitName returns the name of trait index t.
func (s *Snapshot) TraitName(t int32) string { return s.traits[t] }

// Tree returns the providers of the tree rooted at root (root first).
func (s *Snapshot) Tree(root int32) []int32 { return s.members[root] }

func (s *Snapshot) inventory(p, class int32) *Inventory {
	invs := s.Providers[p].Inventories
	for i := range invs {
		if invs[i].Class == class {
			return &invs[i]
		}
	}
	return nil
}

func (s *Snapshot) hasTrait(p, trait int32) bool {
	ts := s.Providers[p].Traits
	i := sort.Search(len(ts), func(i int) bool { return ts[i] >= trait })
	return i < len(ts) && ts[i] == trait
}

func sortInt32(s []int32) { sort.Slice(s, func(i, j int) bool { return s[i] < s[j] }) }

// bitset is a set of provider indexes.
type bitset struct{ w []uint64 }

func newBitset(n int) *bitset { return &bitset{w: make([]uint64, (n+63)/64)} }

func (b *bitset) set(i int32)      { b.w[i>>6] |= 1 << (uint(i) & 63) }
func (b *bitset) has(i int32) bool { return b.w[i>>6]&(1<<(uint(i)&63)) != 0 }
