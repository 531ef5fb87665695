// Package candidates answers GET /allocation_candidates over an in-memory
// Snapshot of the providers, with Placement 8.0.0's semantics (objects/
// allocation_candidate.py and research_context.py) but none of its SQL.
// Upstream computes every group's candidates over the whole deployment and
// then merges them; here each tree root is an anchor evaluated on its own
// (its providers plus the sharing providers linked to it by aggregate), in
// ascending order, so a small limit stops after the first few trees and the
// cost of a request follows the answer rather than the fleet.
//
// Snapshots are immutable versions. Apply derives the next version from a
// batch of changed providers, copying only what the batch touches (see
// update.go), so an index can follow a busy database without rebuilding.
package candidates

import (
	"math"
	"sort"
	"sync"
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
	// ID is the database id. Trees are searched in id order, which is why
	// providers carry it: an index that learns of providers out of order
	// still answers like one built from scratch. When no provider of a
	// Data has an id, list order stands in for it.
	ID          int64
	UUID        string
	Name        string
	ParentUUID  string // "" for a root
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
// aggregates are snapshot indexes. Providers are shared between versions
// and never change; a changed provider is a new Provider.
type Provider struct {
	UUID        string
	Name        string
	ID          int64
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
// for concurrent use. Provider indexes are slots that stay put for the
// life of the provider (and of every snapshot derived from this one); a
// deleted provider leaves an empty slot.
type Snapshot struct {
	reg     *registry
	version uint64

	provs     pvec[*Provider] // slot -> provider; nil when deleted
	live      int
	classes   []string
	classIdx  map[string]int32
	traits    []string
	traitIdx  map[string]int32
	naggs     int32
	withClass [][]int32     // class -> providers with inventory of it
	inAgg     pvec[[]int32] // aggregate -> providers
	members   pvec[[]int32] // root -> providers of its tree (root first, then by id); nil for non-roots
	sharing   []int32       // providers with SharesTrait
	roots     []int32       // root providers, by id
	// sharingInAgg lists, per aggregate, its members with SharesTrait.
	sharingInAgg pvec[[]int32]
	shares       int32 // trait index of SharesTrait, -1 if unknown
	children     int   // providers with a parent
	hasTrees     bool
}

// registry holds the name -> slot maps shared by every version derived from
// one NewSnapshot. They only grow: a uuid keeps its slot (a re-created
// provider takes it again), an aggregate keeps its index, so each version
// checks a hit against its own slots. Only the newest version may be
// extended (one writer at a time).
type registry struct {
	applyMu sync.Mutex   // one Apply at a time; guards head
	mu      sync.RWMutex // guards the maps and naggs
	byUUID  map[string]int32
	byID    map[int64]int32
	aggIdx  map[string]int32
	naggs   int32
	head    uint64 // version of the newest snapshot; 0 once broken
}

// NewSnapshot indexes d.
func NewSnapshot(d Data) (*Snapshot, error) {
	empty := &Snapshot{
		reg: &registry{
			byUUID: make(map[string]int32, len(d.Providers)),
			byID:   make(map[int64]int32, len(d.Providers)),
			aggIdx: make(map[string]int32),
			head:   1,
		},
		version:  1,
		classIdx: map[string]int32{},
		traitIdx: map[string]int32{},
		shares:   -1,
	}
	provs := d.Providers
	noIDs := true
	for i := range provs {
		if provs[i].ID != 0 {
			noIDs = false
			break
		}
	}
	if noIDs && len(provs) > 0 {
		provs = make([]ProviderData, len(d.Providers))
		copy(provs, d.Providers)
		for i := range provs {
			provs[i].ID = int64(i + 1)
		}
	}
	classes, traits := d.Classes, d.Traits
	if classes == nil {
		classes = []string{}
	}
	if traits == nil {
		traits = []string{}
	}
	return empty.apply(Changes{Classes: classes, Traits: traits, Providers: provs}, true)
}

// Len is the number of provider slots; indexes run from 0 to Len()-1.
func (s *Snapshot) Len() int32 { return s.provs.n }

// Count is the number of providers.
func (s *Snapshot) Count() int { return s.live }

// Provider returns the provider in slot i, nil for an empty slot.
func (s *Snapshot) Provider(i int32) *Provider { return s.provs.at(i) }

// prov is Provider for slots known to be live.
func (s *Snapshot) prov(i int32) *Provider { return s.provs.at(i) }

// Lookup returns the index of the provider with the given uuid.
func (s *Snapshot) Lookup(uuid string) (int32, bool) {
	s.reg.mu.RLock()
	i, ok := s.reg.byUUID[uuid]
	s.reg.mu.RUnlock()
	if !ok || i >= s.provs.n {
		return 0, false
	}
	if p := s.provs.at(i); p == nil || p.UUID != uuid {
		return 0, false
	}
	return i, true
}

// aggIndex returns the index of the aggregate with the given uuid, if any
// provider of this snapshot's lineage was ever in it.
func (s *Snapshot) aggIndex(uuid string) (int32, bool) {
	s.reg.mu.RLock()
	a, ok := s.reg.aggIdx[uuid]
	s.reg.mu.RUnlock()
	if !ok || a >= s.naggs {
		return 0, false
	}
	return a, true
}

// ClassName returns the name of class index c.
func (s *Snapshot) ClassName(c int32) string { return s.classes[c] }

// TraitName returns the name of trait index t.
func (s *Snapshot) TraitName(t int32) string { return s.traits[t] }

// Tree returns the providers of the tree rooted at root (root first).
func (s *Snapshot) Tree(root int32) []int32 { return s.members.at(root) }

// Roots returns the root providers in id order.
func (s *Snapshot) Roots() []int32 { return s.roots }

func (s *Snapshot) inventory(p, class int32) *Inventory {
	invs := s.prov(p).Inventories
	for i := range invs {
		if invs[i].Class == class {
			return &invs[i]
		}
	}
	return nil
}

func (s *Snapshot) hasTrait(p, trait int32) bool {
	ts := s.prov(p).Traits
	i := sort.Search(len(ts), func(i int) bool { return ts[i] >= trait })
	return i < len(ts) && ts[i] == trait
}

// sortByID sorts provider indexes by database id, the order in which a
// snapshot built from scratch would hold them.
func (s *Snapshot) sortByID(ps []int32) {
	sort.Slice(ps, func(i, j int) bool { return s.prov(ps[i]).ID < s.prov(ps[j]).ID })
}

func sortInt32(s []int32) { sort.Slice(s, func(i, j int) bool { return s[i] < s[j] }) }

// bitset is a set of provider indexes.
type bitset struct{ w []uint64 }

func newBitset(n int) *bitset { return &bitset{w: make([]uint64, (n+63)/64)} }

func (b *bitset) set(i int32)      { b.w[i>>6] |= 1 << (uint(i) & 63) }
func (b *bitset) has(i int32) bool { return b.w[i>>6]&(1<<(uint(i)&63)) != 0 }
