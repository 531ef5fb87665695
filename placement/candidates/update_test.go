package candidates

import (
	"context"
	"fmt"
	"math/rand"
	"reflect"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/unisched/unisched/placement/qs"
)

// dump renders everything a snapshot holds in terms of names and ids, so
// an incrementally maintained snapshot can be compared with one built from
// scratch (whose slots differ).
func dump(s *Snapshot) string {
	var b strings.Builder
	uuid := func(i int32) string { return s.prov(i).UUID }
	set := func(ps []int32) string {
		var out []string
		for _, p := range ps {
			out = append(out, uuid(p))
		}
		sort.Strings(out)
		return strings.Join(out, ",")
	}
	fmt.Fprintf(&b, "classes %v\ntraits %v\nlive %d trees %v shares %d\n", s.classes, s.traits, s.live, s.hasTrees, s.shares)
	var provs []*Provider
	for i := int32(0); i < s.Len(); i++ {
		if p := s.Provider(i); p != nil {
			provs = append(provs, p)
			if j, ok := s.Lookup(p.UUID); !ok || j != i {
				fmt.Fprintf(&b, "LOOKUP MISMATCH %s\n", p.UUID)
			}
		}
	}
	sort.Slice(provs, func(i, j int) bool { return provs[i].ID < provs[j].ID })
	for _, p := range provs {
		parent := ""
		if p.Parent >= 0 {
			parent = uuid(p.Parent)
		}
		fmt.Fprintf(&b, "rp %d %s %s parent=%s root=%s", p.ID, p.UUID, p.Name, parent, uuid(p.Root))
		for _, inv := range p.Inventories {
			fmt.Fprintf(&b, " %s:%d/%d/%d/%d/%d/%g/%d", s.classes[inv.Class], inv.Total, inv.Reserved, inv.MinUnit,
				inv.MaxUnit, inv.StepSize, inv.AllocationRatio, inv.Used)
		}
		for _, t := range p.Traits {
			fmt.Fprintf(&b, " t:%s", s.traits[t])
		}
		var aggs []string
		for _, a := range p.Aggregates {
			aggs = append(aggs, s.aggName(a))
		}
		sort.Strings(aggs)
		fmt.Fprintf(&b, " aggs=%v\n", aggs)
	}
	var roots []string
	for _, r := range s.roots {
		var tree []string
		for _, m := range s.members.at(r) {
			tree = append(tree, uuid(m))
		}
		roots = append(roots, strings.Join(tree, "+"))
	}
	for i := int32(0); i < s.Len(); i++ {
		if s.members.at(i) != nil && !containsInt32(s.roots, i) {
			fmt.Fprintf(&b, "STRAY MEMBERS at %d\n", i)
		}
	}
	fmt.Fprintf(&b, "roots %v\n", roots)
	for c := range s.classes {
		if l := s.withClass[c]; len(l) > 0 {
			fmt.Fprintf(&b, "with %s: %s\n", s.classes[c], set(l))
		}
	}
	var aggLines []string
	for a := int32(0); a < s.naggs; a++ {
		if l := s.inAgg.at(a); len(l) > 0 {
			aggLines = append(aggLines, fmt.Sprintf("agg %s: %s", s.aggName(a), set(l)))
		}
		if l := s.sharingInAgg.at(a); len(l) > 0 {
			aggLines = append(aggLines, fmt.Sprintf("sharing agg %s: %s", s.aggName(a), set(l)))
		}
	}
	sort.Strings(aggLines)
	b.WriteString(strings.Join(aggLines, "\n"))
	fmt.Fprintf(&b, "\nsharing %s\n", set(s.sharing))
	return b.String()
}

func (s *Snapshot) aggName(a int32) string {
	s.reg.mu.RLock()
	defer s.reg.mu.RUnlock()
	for u, i := range s.reg.aggIdx {
		if i == a {
			return u
		}
	}
	return "?"
}

// world is a random deployment that changes step by step.
type world struct {
	rng    *rand.Rand
	d      Data
	byUUID map[string]*ProviderData
	nextID int64
	// ids handed out but not yet used: providers may arrive out of id
	// order, as with concurrent transactions.
	pending []int64
	seq     int
}

var worldClasses = []string{"VCPU", "MEMORY_MB", "DISK_GB", "SRIOV_NET_VF"}

func newWorld(seed int64) *world {
	w := &world{rng: rand.New(rand.NewSource(seed)), byUUID: map[string]*ProviderData{}}
	w.d.Classes = append([]string(nil), worldClasses...)
	w.d.Traits = []string{"HW_CPU_X86_AVX", "CUSTOM_A", SharesTrait}
	return w
}

func (w *world) id() int64 {
	if len(w.pending) > 0 && w.rng.Intn(3) == 0 {
		i := w.rng.Intn(len(w.pending))
		id := w.pending[i]
		w.pending = append(w.pending[:i], w.pending[i+1:]...)
		return id
	}
	for w.rng.Intn(4) == 0 {
		w.nextID++
		w.pending = append(w.pending, w.nextID)
	}
	w.nextID++
	return w.nextID
}

func (w *world) randomProvider() *ProviderData {
	if len(w.d.Providers) == 0 {
		return nil
	}
	return &w.d.Providers[w.rng.Intn(len(w.d.Providers))]
}

func (w *world) fill(p *ProviderData) {
	p.Inventories = nil
	for _, c := range w.d.Classes {
		if w.rng.Intn(3) == 0 {
			total := int64(1 + w.rng.Intn(64))
			p.Inventories = append(p.Inventories, InventoryData{Class: c, Total: total, MinUnit: 1, MaxUnit: total,
				StepSize: 1, AllocationRatio: 1 + float64(w.rng.Intn(3)), Used: int64(w.rng.Intn(int(total)))})
		}
	}
	p.Traits = nil
	for _, t := range w.d.Traits {
		if w.rng.Intn(4) == 0 {
			p.Traits = append(p.Traits, t)
		}
	}
	p.Aggregates = nil
	for a := 0; a < 4; a++ {
		if w.rng.Intn(4) == 0 {
			p.Aggregates = append(p.Aggregates, fmt.Sprintf("%08d-0000-4000-8000-0000000000aa", a))
		}
	}
}

// isUnder reports whether p is q or below q.
func (w *world) isUnder(p, q *ProviderData) bool {
	for p != nil {
		if p.UUID == q.UUID {
			return true
		}
		p = w.byUUID[p.ParentUUID]
	}
	return false
}

func (w *world) hasChildren(p *ProviderData) bool {
	for i := range w.d.Providers {
		if w.d.Providers[i].ParentUUID == p.UUID {
			return true
		}
	}
	return false
}

func (w *world) reindex() {
	w.byUUID = map[string]*ProviderData{}
	for i := range w.d.Providers {
		w.byUUID[w.d.Providers[i].UUID] = &w.d.Providers[i]
	}
}

// step makes one random change and returns the database ids it touched
// (the change feed) and whether names changed.
func (w *world) step() (touched []int64, names bool) {
	switch op := w.rng.Intn(20); {
	case op < 5 || len(w.d.Providers) < 3: // new provider, maybe a child
		w.seq++
		p := ProviderData{ID: w.id(), UUID: fmt.Sprintf("%08x-0000-4000-8000-%012x", w.seq, w.seq)}
		p.Name = "rp" + p.UUID[:8]
		if parent := w.randomProvider(); parent != nil && w.rng.Intn(2) == 0 {
			p.ParentUUID = parent.UUID
		}
		w.fill(&p)
		w.d.Providers = append(w.d.Providers, p)
		w.reindex()
		return []int64{p.ID}, false
	case op < 9: // usage only
		p := w.randomProvider()
		for i := range p.Inventories {
			p.Inventories[i].Used = int64(w.rng.Intn(int(p.Inventories[i].Total) + 1))
		}
		return []int64{p.ID}, false
	case op < 12: // inventories, traits, aggregates
		p := w.randomProvider()
		w.fill(p)
		return []int64{p.ID}, false
	case op < 14: // delete a leaf
		p := w.randomProvider()
		if w.hasChildren(p) {
			return nil, false
		}
		id := p.ID
		for i := range w.d.Providers {
			if w.d.Providers[i].UUID == p.UUID {
				w.d.Providers = append(w.d.Providers[:i], w.d.Providers[i+1:]...)
				break
			}
		}
		w.reindex()
		return []int64{id}, false
	case op < 16: // re-parent (or make a root)
		p := w.randomProvider()
		q := w.randomProvider()
		old := p.ParentUUID
		if w.rng.Intn(3) == 0 || w.isUnder(q, p) {
			p.ParentUUID = ""
		} else {
			p.ParentUUID = q.UUID
		}
		if p.ParentUUID == old {
			return nil, false
		}
		return []int64{p.ID}, false
	case op < 17: // delete a leaf and create it again under the same uuid
		p := w.randomProvider()
		if w.hasChildren(p) {
			return nil, false
		}
		old := p.ID
		p.ID = w.id()
		return []int64{old, p.ID}, false
	case op < 18: // a new trait or class
		w.seq++
		if w.rng.Intn(2) == 0 {
			w.d.Traits = append(w.d.Traits, fmt.Sprintf("CUSTOM_T%d", w.seq))
		} else {
			w.d.Classes = append(w.d.Classes, fmt.Sprintf("CUSTOM_C%d", w.seq))
		}
		return nil, true
	default: // touched but unchanged (a generation bump with no change)
		p := w.randomProvider()
		return []int64{p.ID}, false
	}
}

// data returns the world as the store would load it: providers in id order.
func (w *world) data() Data {
	d := Data{Classes: append([]string(nil), w.d.Classes...), Traits: append([]string(nil), w.d.Traits...)}
	d.Providers = append([]ProviderData(nil), w.d.Providers...)
	sort.Slice(d.Providers, func(i, j int) bool { return d.Providers[i].ID < d.Providers[j].ID })
	return d
}

// changes builds the Changes the index would load for the touched ids.
func (w *world) changes(touched map[int64]bool, names bool) Changes {
	var c Changes
	if names {
		c.Classes = append([]string(nil), w.d.Classes...)
		c.Traits = append([]string(nil), w.d.Traits...)
	}
	found := map[int64]bool{}
	for _, p := range w.data().Providers {
		if touched[p.ID] {
			c.Providers = append(c.Providers, p)
			found[p.ID] = true
		}
	}
	for id := range touched {
		if !found[id] {
			c.Deleted = append(c.Deleted, id)
		}
	}
	return c
}

var equivalenceQueries = []string{
	"resources=VCPU:1",
	"resources=VCPU:1,DISK_GB:2",
	"resources=VCPU:1,MEMORY_MB:1&limit=3",
	"resources=DISK_GB:1&required=CUSTOM_A",
	"resources=VCPU:1&member_of=00000001-0000-4000-8000-0000000000aa",
	"resources=VCPU:1&member_of=!00000002-0000-4000-8000-0000000000aa",
	"resources1=VCPU:1&resources2=SRIOV_NET_VF:1&group_policy=isolate",
	"resources=VCPU:1&root_required=!CUSTOM_A",
}

// render gives a Find result in names, in order.
func render(s *Snapshot, r *Result) string {
	var b strings.Builder
	for _, ar := range r.Requests {
		for _, al := range ar.Allocations {
			fmt.Fprintf(&b, "%s{", s.prov(al.Provider).UUID[:8])
			for _, res := range al.Resources {
				fmt.Fprintf(&b, "%s:%d ", s.classes[res.Class], res.Amount)
			}
			b.WriteString("} ")
		}
		for _, m := range ar.Mappings {
			fmt.Fprintf(&b, "%s=", m.Suffix)
			for _, p := range m.Providers {
				b.WriteString(s.prov(p).UUID[:8] + ",")
			}
		}
		b.WriteString("\n")
	}
	b.WriteString("summaries:")
	for _, p := range r.Summaries {
		b.WriteString(" " + s.prov(p).UUID[:8])
	}
	return b.String()
}

func findAll(t *testing.T, s *Snapshot) []string {
	t.Helper()
	var out []string
	for _, query := range equivalenceQueries {
		params, perr := qs.ParseQuery(query)
		if perr != nil {
			t.Fatal(perr)
		}
		q, perr := qs.ParseCandidates(params, 39)
		if perr != nil {
			t.Fatal(perr)
		}
		for _, nested := range []bool{true, false} {
			r, err := Find(context.Background(), s, Request{Query: q, NestedAware: nested})
			if err != nil {
				out = append(out, query+": "+err.Error())
				continue
			}
			out = append(out, query+":\n"+render(s, r))
		}
	}
	return out
}

// TestApplyMatchesRebuild drives random worlds through many batches of
// changes and checks after each that the incrementally updated snapshot
// holds exactly what a snapshot built from scratch holds, answers every
// query the same way, and that earlier versions did not change.
func TestApplyMatchesRebuild(t *testing.T) {
	for seed := int64(1); seed <= 16; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			w := newWorld(seed)
			snap, err := NewSnapshot(w.data())
			if err != nil {
				t.Fatal(err)
			}
			type version struct {
				s    *Snapshot
				dump string
			}
			var history []version
			for batch := 0; batch < 60; batch++ {
				touched := map[int64]bool{}
				names := false
				for k := w.rng.Intn(6); k >= 0; k-- {
					ids, nm := w.step()
					for _, id := range ids {
						touched[id] = true
					}
					names = names || nm
				}
				next, err := snap.Apply(w.changes(touched, names))
				if err != nil {
					t.Fatalf("batch %d: %v", batch, err)
				}
				fresh, err := NewSnapshot(w.data())
				if err != nil {
					t.Fatalf("batch %d: rebuild: %v", batch, err)
				}
				if got, want := dump(next), dump(fresh); got != want {
					t.Fatalf("batch %d: incremental snapshot differs from a rebuild:\n%s", batch, lineDiff(got, want))
				}
				if got, want := findAll(t, next), findAll(t, fresh); !reflect.DeepEqual(got, want) {
					for i := range got {
						if got[i] != want[i] {
							t.Fatalf("batch %d: answers differ:\n got %s\nwant %s", batch, got[i], want[i])
						}
					}
				}
				history = append(history, version{snap, dump(snap)})
				snap = next
			}
			for i, v := range history {
				if got := dump(v.s); got != v.dump {
					t.Fatalf("version %d changed after later applies:\n%s", i, lineDiff(got, v.dump))
				}
			}
		})
	}
}

func lineDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	var b strings.Builder
	for i := 0; i < len(g) || i < len(w); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			fmt.Fprintf(&b, "line %d:\n got  %s\n want %s\n", i, gl, wl)
		}
	}
	return b.String()
}

func TestApplyErrors(t *testing.T) {
	base := func(t *testing.T) *Snapshot {
		f := newFixture()
		f.rp("a", "")
		f.rp("b", "a")
		return f.snapshot(t)
	}
	tests := []struct {
		name string
		c    Changes
		want string
	}{
		{"no id", Changes{Providers: []ProviderData{{UUID: "x"}}}, "no database id"},
		{"unknown parent", Changes{Providers: []ProviderData{{ID: 9, UUID: "x", ParentUUID: "nope"}}}, "parent nope not in snapshot"},
		{"unknown class", Changes{Providers: []ProviderData{{ID: 9, UUID: "x", Inventories: []InventoryData{{Class: "NOPE"}}}}}, "unknown resource class NOPE"},
		{"unknown trait", Changes{Providers: []ProviderData{{ID: 9, UUID: "x", Traits: []string{"NOPE"}}}}, "unknown trait NOPE"},
		{"class removed", Changes{Classes: []string{"VCPU"}}, "renumbered"},
		{"uuid taken", Changes{Providers: []ProviderData{{ID: 9, UUID: "00000001-0000-4000-8000-000000000001"}}}, "the snapshot has id 1"},
		{"parent loop", Changes{Providers: []ProviderData{{ID: 1, UUID: "00000001-0000-4000-8000-000000000001", ParentUUID: "00000002-0000-4000-8000-000000000002"}}}, "parent loop"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := base(t)
			before := dump(s)
			_, err := s.Apply(tt.c)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if dump(s) != before {
				t.Fatal("a failed Apply changed the snapshot")
			}
			if _, err := s.Apply(Changes{}); err == nil {
				t.Fatal("Apply after a failed Apply succeeded")
			}
		})
	}
	t.Run("not newest", func(t *testing.T) {
		s := base(t)
		if _, err := s.Apply(Changes{}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Apply(Changes{}); err == nil {
			t.Fatal("a second Apply to the same version succeeded")
		}
	})
}

// TestApplyConcurrentReaders runs queries on published versions while new
// versions are being made; run it with -race.
func TestApplyConcurrentReaders(t *testing.T) {
	w := newWorld(99)
	for i := 0; i < 200; i++ {
		w.step()
	}
	first, err := NewSnapshot(w.data())
	if err != nil {
		t.Fatal(err)
	}
	var cur atomic.Pointer[Snapshot]
	cur.Store(first)
	done := make(chan struct{})
	var wg sync.WaitGroup
	for r := 0; r < 3; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				s := cur.Load()
				before := dump(s)
				findAll(t, s)
				if dump(s) != before {
					t.Error("a published version changed while it was read")
					return
				}
			}
		}()
	}
	snap := first
	for batch := 0; batch < 200; batch++ {
		touched := map[int64]bool{}
		names := false
		for k := w.rng.Intn(4); k >= 0; k-- {
			ids, nm := w.step()
			for _, id := range ids {
				touched[id] = true
			}
			names = names || nm
		}
		next, err := snap.Apply(w.changes(touched, names))
		if err != nil {
			t.Fatalf("batch %d: %v", batch, err)
		}
		cur.Store(next)
		snap = next
	}
	close(done)
	wg.Wait()
}
