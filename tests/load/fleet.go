package load

import (
	"context"
	"crypto/sha1"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// Fleet is the set of compute nodes of issue 3's anchor: provider i is named
// Prefix+%06d, and its UUID is derived from that name, so two servers seeded
// with the same fleet hold identical providers and their answers can be
// compared UUID for UUID.
type Fleet struct {
	Prefix string
}

// DefaultPrefix names the generator's providers.
const DefaultPrefix = "load-cn-"

// Trait and aggregate the anchor's queries filter on.
const (
	TraitAVX2  = "HW_CPU_X86_AVX2"
	TraitRackA = "CUSTOM_RACK_A"
	traitSSE42 = "HW_CPU_X86_SSE42"
)

// Per-provider inventory of the anchor.
const (
	VCPUTotal     = 64
	VCPURatio     = 4.0
	MemoryMBTotal = 262144
	DiskGBTotal   = 2000
)

// Provider is one seeded compute node.
type Provider struct {
	Index      int
	Name       string
	UUID       string
	Traits     []string
	Aggregates []string
}

// RackAggregate is the aggregate holding the CUSTOM_RACK_A providers, the
// target of the member_of query.
func (f Fleet) RackAggregate() string { return NameUUID("aggregate:" + f.Prefix + "rack-a") }

// Provider describes provider i: every provider has SSE4.2, even ones AVX2,
// every tenth is in rack A (trait and aggregate).
func (f Fleet) Provider(i int) Provider {
	name := fmt.Sprintf("%s%06d", f.prefix(), i)
	p := Provider{Index: i, Name: name, UUID: NameUUID(name), Traits: []string{traitSSE42}}
	if i%2 == 0 {
		p.Traits = append(p.Traits, TraitAVX2)
	}
	if i%10 == 0 {
		p.Traits = append(p.Traits, TraitRackA)
		p.Aggregates = []string{f.RackAggregate()}
	}
	return p
}

func (f Fleet) prefix() string {
	if f.Prefix == "" {
		return DefaultPrefix
	}
	return f.Prefix
}

// NameUUID derives a stable RFC 4122 version-5-shaped UUID from a name.
func NameUUID(name string) string {
	h := sha1.Sum([]byte("unisched-load:" + name))
	h[6] = (h[6] & 0x0f) | 0x50
	h[8] = (h[8] & 0x3f) | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// Inventories is the PUT /resource_providers/{uuid}/inventories body of a
// fleet provider at generation gen.
func Inventories(gen int) map[string]any {
	return map[string]any{
		"resource_provider_generation": gen,
		"inventories": map[string]any{
			"VCPU":      map[string]any{"total": VCPUTotal, "allocation_ratio": VCPURatio, "max_unit": VCPUTotal},
			"MEMORY_MB": map[string]any{"total": MemoryMBTotal, "allocation_ratio": 1.0, "max_unit": MemoryMBTotal},
			"DISK_GB":   map[string]any{"total": DiskGBTotal, "allocation_ratio": 1.0, "max_unit": DiskGBTotal},
		},
	}
}

// SeedResult measures one seeding run. PerCall splits the latencies by
// request kind, so a slow write path shows which call it is.
type SeedResult struct {
	From            int              `json:"from"`
	To              int              `json:"to"`
	Concurrency     int              `json:"concurrency"`
	Created         int              `json:"created"`
	ProvidersPerSec float64          `json:"providers_per_s"`
	All             Stats            `json:"all"`
	PerCall         map[string]Stats `json:"per_call"`
}

// Seed creates providers [from, to) of the fleet with conc concurrent
// clients: POST /resource_providers, PUT inventories, PUT traits and, for
// rack A, PUT aggregates. It stops at the first failure: a half-seeded
// fleet would make every later number meaningless.
func Seed(ctx context.Context, c *Client, f Fleet, from, to, conc int) (SeedResult, error) {
	res := SeedResult{From: from, To: to, Concurrency: conc, PerCall: map[string]Stats{}}
	if to <= from {
		return res, nil
	}
	if _, err := c.Expect(ctx, "PUT", "/traits/"+TraitRackA, MVLatest, nil, http.StatusCreated, http.StatusNoContent); err != nil {
		return res, fmt.Errorf("creating trait %s: %w", TraitRackA, err)
	}
	kinds := []string{"POST /resource_providers", "PUT inventories", "PUT traits", "PUT aggregates"}
	recs := map[string]*recorder{}
	for _, k := range kinds {
		recs[k] = newRecorder("seed " + k)
	}
	all := newRecorder("seed")
	var firstErr atomic.Pointer[error]
	var created atomic.Int64
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	step := func(kind string, r Response, codes ...int) bool {
		good := r.Is(codes...)
		recs[kind].add(r, good)
		all.add(r, good)
		if !good {
			err := fmt.Errorf("seeding: %s: %s", kind, r)
			firstErr.CompareAndSwap(nil, &err)
			cancel()
		}
		return good
	}
	wall := parallel(ctx, to-from, conc, func(ctx context.Context, k int) {
		p := f.Provider(from + k)
		r := c.Do(ctx, "POST", "/resource_providers", MVCreate, map[string]any{"name": p.Name, "uuid": p.UUID})
		if !step(kinds[0], r, http.StatusOK) {
			return
		}
		gen, ok := generation(r.Body)
		if !ok {
			gen = 0
		}
		r = c.Do(ctx, "PUT", "/resource_providers/"+p.UUID+"/inventories", MVLatest, Inventories(gen))
		if !step(kinds[1], r, http.StatusOK) {
			return
		}
		gen, _ = generation(r.Body)
		r = c.Do(ctx, "PUT", "/resource_providers/"+p.UUID+"/traits", MVLatest,
			map[string]any{"resource_provider_generation": gen, "traits": p.Traits})
		if !step(kinds[2], r, http.StatusOK) {
			return
		}
		if len(p.Aggregates) > 0 {
			gen, _ = generation(r.Body)
			r = c.Do(ctx, "PUT", "/resource_providers/"+p.UUID+"/aggregates", MVLatest,
				map[string]any{"resource_provider_generation": gen, "aggregates": p.Aggregates})
			if !step(kinds[3], r, http.StatusOK) {
				return
			}
		}
		created.Add(1)
	})
	res.Created = int(created.Load())
	res.All = all.stats(wall)
	for _, k := range kinds {
		res.PerCall[k] = recs[k].stats(wall)
	}
	if wall > 0 {
		res.ProvidersPerSec = round(float64(res.Created)/wall.Seconds(), 1)
	}
	if e := firstErr.Load(); e != nil {
		return res, *e
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	return res, nil
}

// generation reads resource_provider_generation (or generation) from a body.
func generation(body []byte) (int, bool) {
	var g struct {
		RPGen *int `json:"resource_provider_generation"`
		Gen   *int `json:"generation"`
	}
	if json.Unmarshal(body, &g) != nil {
		return 0, false
	}
	switch {
	case g.RPGen != nil:
		return *g.RPGen, true
	case g.Gen != nil:
		return *g.Gen, true
	}
	return 0, false
}

// Existing counts the fleet's providers already on the server, so a rerun
// seeds only what is missing. It trusts the naming: providers 0..n-1 exist
// when n fleet-named providers do (Seed always fills a prefix of the range).
func Existing(ctx context.Context, c *Client, f Fleet) (int, error) {
	r, err := c.Expect(ctx, "GET", "/resource_providers", MVLatest, nil, http.StatusOK)
	if err != nil {
		return 0, err
	}
	var out struct {
		RPs []struct {
			Name string `json:"name"`
		} `json:"resource_providers"`
	}
	if err := json.Unmarshal(r.Body, &out); err != nil {
		return 0, fmt.Errorf("decoding GET /resource_providers: %w", err)
	}
	n := 0
	for _, p := range out.RPs {
		if strings.HasPrefix(p.Name, f.prefix()) {
			n++
		}
	}
	return n, nil
}

// elapsedSince is time.Since, rounded for reports.
func elapsedSince(t time.Time) float64 { return round(time.Since(t).Seconds(), 3) }
