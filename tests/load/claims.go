package load

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// ClaimResources is what every claim asks of one provider: the anchor's
// flavor plus a root disk. MEMORY_MB runs out first (64 claims fill a
// provider), which the contention phase relies on.
var ClaimResources = map[string]int{"VCPU": 2, "MEMORY_MB": 4096, "DISK_GB": 20}

// ProviderCapacity is what a fleet provider can hold per class: (total - reserved) * ratio.
var ProviderCapacity = map[string]int{"VCPU": VCPUTotal * VCPURatio, "MEMORY_MB": MemoryMBTotal, "DISK_GB": DiskGBTotal}

// Fixed project and user of every claim; consumers are random per run.
var (
	claimProject = NameUUID("project:load")
	claimUser    = NameUUID("user:load")
)

// ClaimResult measures one claim phase.
type ClaimResult struct {
	Phase       string `json:"phase"`
	Claims      int    `json:"claims"`
	Concurrency int    `json:"concurrency"`
	Providers   int    `json:"providers"`
	Accepted    int    `json:"accepted"`
	// Capacity counts 409s for lack of room, Conflicts 409 concurrent
	// updates (placement.concurrent_update) the server gave up retrying.
	Capacity  int `json:"rejected_capacity"`
	Conflicts int `json:"rejected_conflict"`
	Errors    int `json:"errors"`
	Stats
	// claims remembers which consumer went to which provider and whether it
	// was accepted, for Verify.
	claims []claim
}

type claim struct {
	consumer string
	provider string
	accepted bool
}

// Claim sends n claims (PUT /allocations/{new consumer}) with conc clients,
// claim i going to targets[i % len(targets)]. A claim the server answers
// 204 is accepted; a 409 is a rejection and is expected once providers fill
// up; anything else is an error.
func Claim(ctx context.Context, c *Client, phase string, targets []Provider, n, conc int) ClaimResult {
	res := ClaimResult{Phase: phase, Claims: n, Concurrency: conc, Providers: min(len(targets), n)}
	if len(targets) == 0 || n <= 0 {
		return res
	}
	res.claims = make([]claim, n)
	for i := range res.claims {
		res.claims[i] = claim{consumer: randomUUID(), provider: targets[i%len(targets)].UUID}
	}
	rec := newRecorder("PUT /allocations (" + phase + ")")
	var capacity, conflicts, errs atomic.Int64
	wall := parallel(ctx, n, conc, func(ctx context.Context, i int) {
		cl := &res.claims[i]
		r := c.Do(ctx, "PUT", "/allocations/"+cl.consumer, MVLatest, map[string]any{
			"allocations":         map[string]any{cl.provider: map[string]any{"resources": ClaimResources}},
			"project_id":          claimProject,
			"user_id":             claimUser,
			"consumer_generation": nil,
			"consumer_type":       "INSTANCE",
		})
		switch {
		case r.Is(http.StatusNoContent):
			cl.accepted = true
			rec.add(r, true)
		case r.Is(http.StatusConflict) && r.ErrorCode() == "placement.concurrent_update":
			conflicts.Add(1)
			rec.add(r, true)
		case r.Is(http.StatusConflict):
			capacity.Add(1)
			rec.add(r, true)
		default:
			errs.Add(1)
			rec.add(r, false)
		}
	})
	res.Stats = rec.stats(wall)
	for _, cl := range res.claims {
		if cl.accepted {
			res.Accepted++
		}
	}
	res.Capacity, res.Conflicts, res.Errors = int(capacity.Load()), int(conflicts.Load()), int(errs.Load())
	return res
}

// Verification is the after-run audit of the providers the claims touched.
type Verification struct {
	Providers int `json:"providers_checked"`
	// OverAllocated lists providers whose allocations exceed capacity.
	OverAllocated []string `json:"over_allocated"`
	// Mismatches lists usages that differ from the summed allocations, and
	// accepted claims missing (or rejected ones present) on their provider.
	Mismatches []string `json:"mismatches"`
	Seconds    float64  `json:"seconds"`
	// Error is why the audit could not read everything back.
	Error string `json:"error,omitempty"`
}

// OK is true when the audit read everything back and found nothing.
func (v Verification) OK() bool {
	return v.Error == "" && len(v.OverAllocated) == 0 && len(v.Mismatches) == 0
}

// Verify reads back every provider the phases touched: the allocations on
// it summed per class must fit its capacity and equal its usages, and the
// claims the server accepted (only those) must be there with their amounts.
func Verify(ctx context.Context, c *Client, conc int, phases ...ClaimResult) (Verification, error) {
	byProvider := map[string][]claim{}
	for _, ph := range phases {
		for _, cl := range ph.claims {
			byProvider[cl.provider] = append(byProvider[cl.provider], cl)
		}
	}
	provs := make([]string, 0, len(byProvider))
	for p := range byProvider {
		provs = append(provs, p)
	}
	sort.Strings(provs)
	var (
		mu       sync.Mutex
		v        = Verification{Providers: len(provs)}
		firstErr error
	)
	note := func(list *[]string, format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(*list) < 50 {
			*list = append(*list, fmt.Sprintf(format, args...))
		}
	}
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr == nil {
			firstErr = err
		}
	}
	start := time.Now()
	parallel(ctx, len(provs), conc, func(ctx context.Context, i int) {
		rp := provs[i]
		r, err := c.Expect(ctx, "GET", "/resource_providers/"+rp+"/allocations", MVLatest, nil, http.StatusOK)
		if err != nil {
			fail(err)
			return
		}
		var allocs struct {
			Allocations map[string]struct {
				Resources map[string]int `json:"resources"`
			} `json:"allocations"`
		}
		if err := json.Unmarshal(r.Body, &allocs); err != nil {
			fail(fmt.Errorf("decoding allocations of %s: %w", rp, err))
			return
		}
		r, err = c.Expect(ctx, "GET", "/resource_providers/"+rp+"/usages", MVLatest, nil, http.StatusOK)
		if err != nil {
			fail(err)
			return
		}
		var usages struct {
			Usages map[string]int `json:"usages"`
		}
		if err := json.Unmarshal(r.Body, &usages); err != nil {
			fail(fmt.Errorf("decoding usages of %s: %w", rp, err))
			return
		}
		sum := map[string]int{}
		for _, a := range allocs.Allocations {
			for rc, n := range a.Resources {
				sum[rc] += n
			}
		}
		for rc, used := range sum {
			if capa, ok := ProviderCapacity[rc]; ok && used > capa {
				note(&v.OverAllocated, "provider %s: %s allocated %d > capacity %d", rp, rc, used, capa)
			}
		}
		for _, rc := range unionKeys(sum, usages.Usages) {
			if sum[rc] != usages.Usages[rc] {
				note(&v.Mismatches, "provider %s: usages say %s %d, allocations sum to %d", rp, rc, usages.Usages[rc], sum[rc])
			}
		}
		for _, cl := range byProvider[rp] {
			got, present := allocs.Allocations[cl.consumer]
			switch {
			case cl.accepted && !present:
				note(&v.Mismatches, "provider %s: accepted consumer %s has no allocation", rp, cl.consumer)
			case !cl.accepted && present:
				note(&v.Mismatches, "provider %s: rejected consumer %s holds %v", rp, cl.consumer, got.Resources)
			case present && !mapsEqual(got.Resources, ClaimResources):
				note(&v.Mismatches, "provider %s: consumer %s holds %v, claimed %v", rp, cl.consumer, got.Resources, ClaimResources)
			}
		}
	})
	v.Seconds = elapsedSince(start)
	return v, firstErr
}

func unionKeys(a, b map[string]int) []string {
	var ks []string
	for k := range a {
		ks = append(ks, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			ks = append(ks, k)
		}
	}
	slices.Sort(ks)
	return ks
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return true
}

func randomUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
