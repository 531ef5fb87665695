// Package differential feeds upstream Placement 8.0.0 and unisched the same
// providers and the same GET /allocation_candidates queries and compares
// the answers as sets. The world is small but has every feature whose
// semantics are easy to get subtly wrong: traits (required, forbidden,
// any-of, root_required), aggregates (member_of with in:, repeated and
// forbidden), nested trees, sharing providers, granular groups with
// group_policy and same_subtree, inventory constraints and existing usage.
package differential

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/unisched/unisched/tests/load"
)

// inv is one inventory record; zero fields take Placement's defaults.
type inv struct {
	total, reserved, min, max, step int
	ratio                           float64
}

type provider struct {
	name, parent string
	inv          map[string]inv
	traits       []string
	aggs         []string
}

type allocation struct {
	consumer string
	// resources per provider name
	resources map[string]map[string]int
}

// uuidOf names every provider, aggregate and consumer of the world.
func uuidOf(name string) string { return load.NameUUID("differential:" + name) }

var customTraits = []string{"CUSTOM_FAST", "CUSTOM_PHYSNET_A", "CUSTOM_PHYSNET_B"}

var customClasses = []string{"CUSTOM_MAGIC"}

// world: flat computes in aggregates, three sharing providers, two nested
// trees (NUMA nodes with NICs below them; a host with a NIC and a custom
// resource child), and usage that makes some providers nearly full.
var world = []provider{
	{name: "cn1", inv: map[string]inv{"VCPU": {total: 8, ratio: 16}, "MEMORY_MB": {total: 4096, reserved: 512}, "DISK_GB": {total: 100}},
		traits: []string{"HW_CPU_X86_AVX2", "HW_CPU_X86_SSE42"}, aggs: []string{"agg-a"}},
	{name: "cn2", inv: map[string]inv{"VCPU": {total: 4, max: 2}, "MEMORY_MB": {total: 8192}, "DISK_GB": {total: 50}},
		traits: []string{"HW_CPU_X86_AVX2"}, aggs: []string{"agg-a", "agg-share"}},
	{name: "cn3", inv: map[string]inv{"VCPU": {total: 16}, "MEMORY_MB": {total: 16384, min: 1024, step: 1024}},
		traits: []string{"HW_CPU_X86_SSE42"}, aggs: []string{"agg-b", "agg-share"}},
	{name: "cn4", inv: map[string]inv{"VCPU": {total: 2}, "MEMORY_MB": {total: 2048}},
		traits: []string{"CUSTOM_FAST"}, aggs: []string{"agg-share"}},
	{name: "cn5", inv: map[string]inv{"VCPU": {total: 8, ratio: 1}, "MEMORY_MB": {total: 8192}, "DISK_GB": {total: 10}}},

	{name: "ss1", inv: map[string]inv{"DISK_GB": {total: 1000}},
		traits: []string{"MISC_SHARES_VIA_AGGREGATE", "STORAGE_DISK_SSD"}, aggs: []string{"agg-share"}},
	{name: "ss2", inv: map[string]inv{"IPV4_ADDRESS": {total: 16}},
		traits: []string{"MISC_SHARES_VIA_AGGREGATE"}, aggs: []string{"agg-share"}},
	{name: "ss3", inv: map[string]inv{"DISK_GB": {total: 500}},
		traits: []string{"MISC_SHARES_VIA_AGGREGATE"}, aggs: []string{"agg-b"}},

	{name: "nh1", inv: map[string]inv{"DISK_GB": {total: 200}},
		traits: []string{"HW_CPU_X86_AVX2"}, aggs: []string{"agg-a"}},
	{name: "nh1-numa0", parent: "nh1", inv: map[string]inv{"VCPU": {total: 4}, "MEMORY_MB": {total: 2048}},
		traits: []string{"CUSTOM_FAST"}},
	{name: "nh1-numa0-pf0", parent: "nh1-numa0", inv: map[string]inv{"SRIOV_NET_VF": {total: 4}},
		traits: []string{"CUSTOM_PHYSNET_A", "HW_NIC_SRIOV"}},
	{name: "nh1-numa1", parent: "nh1", inv: map[string]inv{"VCPU": {total: 4}, "MEMORY_MB": {total: 2048}}},
	{name: "nh1-numa1-pf1", parent: "nh1-numa1", inv: map[string]inv{"SRIOV_NET_VF": {total: 4}},
		traits: []string{"CUSTOM_PHYSNET_B", "HW_NIC_SRIOV"}},

	{name: "nh2", inv: map[string]inv{"VCPU": {total: 8}, "MEMORY_MB": {total: 8192}},
		traits: []string{"HW_CPU_X86_SSE42"}, aggs: []string{"agg-b"}},
	{name: "nh2-pf0", parent: "nh2", inv: map[string]inv{"SRIOV_NET_VF": {total: 8}},
		traits: []string{"CUSTOM_PHYSNET_A"}},
	{name: "nh2-magic", parent: "nh2", inv: map[string]inv{"CUSTOM_MAGIC": {total: 10}}},
}

var allocations = []allocation{
	{consumer: "c-busy", resources: map[string]map[string]int{"cn5": {"VCPU": 7}}},
	{consumer: "c-numa", resources: map[string]map[string]int{
		"nh1-numa0": {"MEMORY_MB": 1536}, "nh1-numa0-pf0": {"SRIOV_NET_VF": 3}}},
	{consumer: "c-share", resources: map[string]map[string]int{"ss1": {"DISK_GB": 900}, "cn3": {"VCPU": 1, "MEMORY_MB": 1024}}},
}

// names maps every UUID of the world back to its name, for readable diffs.
func names() map[string]string {
	m := map[string]string{}
	for _, p := range world {
		m[uuidOf(p.name)] = p.name
	}
	for _, a := range []string{"agg-a", "agg-b", "agg-share"} {
		m[uuidOf(a)] = a
	}
	return m
}

// expand replaces {name} in a query by that provider's or aggregate's UUID.
func expand(q string) string {
	for uuid, name := range names() {
		q = strings.ReplaceAll(q, "{"+name+"}", uuid)
	}
	return q
}

// build creates the world on one server, in dependency order.
func build(ctx context.Context, c *load.Client) error {
	for _, t := range customTraits {
		if _, err := c.Expect(ctx, "PUT", "/traits/"+t, load.MVLatest, nil, http.StatusCreated, http.StatusNoContent); err != nil {
			return err
		}
	}
	for _, rc := range customClasses {
		if _, err := c.Expect(ctx, "PUT", "/resource_classes/"+rc, load.MVLatest, nil, http.StatusCreated, http.StatusNoContent); err != nil {
			return err
		}
	}
	for _, p := range world {
		body := map[string]any{"name": p.name, "uuid": uuidOf(p.name)}
		if p.parent != "" {
			body["parent_provider_uuid"] = uuidOf(p.parent)
		}
		r, err := c.Expect(ctx, "POST", "/resource_providers", load.MVCreate, body, http.StatusOK)
		if err != nil {
			return err
		}
		gen := generationOf(r.Body)
		path := "/resource_providers/" + uuidOf(p.name)
		if len(p.inv) > 0 {
			invs := map[string]any{}
			for rc, i := range p.inv {
				rec := map[string]any{"total": i.total, "reserved": i.reserved}
				if i.min > 0 {
					rec["min_unit"] = i.min
				}
				rec["max_unit"] = i.total
				if i.max > 0 {
					rec["max_unit"] = i.max
				}
				if i.step > 0 {
					rec["step_size"] = i.step
				}
				if i.ratio > 0 {
					rec["allocation_ratio"] = i.ratio
				}
				invs[rc] = rec
			}
			r, err = c.Expect(ctx, "PUT", path+"/inventories", load.MVLatest,
				map[string]any{"resource_provider_generation": gen, "inventories": invs}, http.StatusOK)
			if err != nil {
				return err
			}
			gen = generationOf(r.Body)
		}
		if len(p.traits) > 0 {
			r, err = c.Expect(ctx, "PUT", path+"/traits", load.MVLatest,
				map[string]any{"resource_provider_generation": gen, "traits": p.traits}, http.StatusOK)
			if err != nil {
				return err
			}
			gen = generationOf(r.Body)
		}
		if len(p.aggs) > 0 {
			aggs := make([]string, len(p.aggs))
			for i, a := range p.aggs {
				aggs[i] = uuidOf(a)
			}
			if _, err := c.Expect(ctx, "PUT", path+"/aggregates", load.MVLatest,
				map[string]any{"resource_provider_generation": gen, "aggregates": aggs}, http.StatusOK); err != nil {
				return err
			}
		}
	}
	for _, a := range allocations {
		allocs := map[string]any{}
		for rp, res := range a.resources {
			allocs[uuidOf(rp)] = map[string]any{"resources": res}
		}
		if _, err := c.Expect(ctx, "PUT", "/allocations/"+uuidOf(a.consumer), load.MVLatest, map[string]any{
			"allocations": allocs, "project_id": uuidOf("project"), "user_id": uuidOf("user"),
			"consumer_generation": nil, "consumer_type": "INSTANCE",
		}, http.StatusNoContent); err != nil {
			return fmt.Errorf("allocating for %s: %w", a.consumer, err)
		}
	}
	return nil
}

func generationOf(body []byte) int {
	var g struct {
		Gen *int `json:"generation"`
		RP  *int `json:"resource_provider_generation"`
	}
	_ = json.Unmarshal(body, &g)
	switch {
	case g.RP != nil:
		return *g.RP
	case g.Gen != nil:
		return *g.Gen
	}
	return 0
}
