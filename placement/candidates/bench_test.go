package candidates

import (
	"context"
	"fmt"
	"math/rand"
	"testing"

	"github.com/unisched/unisched/placement/qs"
)

// scaleData builds n compute nodes with two NUMA children each (VCPU and
// MEMORY_MB on the NUMA nodes, DISK_GB on the root), a few traits and one
// aggregate per 1000 hosts with a sharing DISK_GB provider in it.
func scaleData(n int) Data {
	d := Data{Classes: standardClasses, Traits: append(append([]string(nil), standardTraits...), "CUSTOM_GOLD")}
	for i := 0; i < n; i++ {
		agg := fmt.Sprintf("a%07d-0000-4000-8000-000000000000", i/1000)
		cn := fmt.Sprintf("c%07d-0000-4000-8000-000000000000", i)
		p := ProviderData{UUID: cn, Name: cn, Aggregates: []string{agg},
			Inventories: []InventoryData{{Class: "DISK_GB", Total: 1000, MinUnit: 1, MaxUnit: 1000, StepSize: 1, AllocationRatio: 1, Used: int64(i % 900)}}}
		if i%10 == 0 {
			p.Traits = []string{"CUSTOM_GOLD"}
		}
		d.Providers = append(d.Providers, p)
		for j := 0; j < 2; j++ {
			u := fmt.Sprintf("c%07d-0000-4000-8000-00000000000%d", i, j+1)
			d.Providers = append(d.Providers, ProviderData{UUID: u, Name: u, ParentUUID: cn, Traits: []string{"HW_NUMA_ROOT"},
				Inventories: []InventoryData{
					{Class: "VCPU", Total: 32, MinUnit: 1, MaxUnit: 32, StepSize: 1, AllocationRatio: 4, Used: int64(i % 100)},
					{Class: "MEMORY_MB", Total: 65536, MinUnit: 1, MaxUnit: 65536, StepSize: 1, AllocationRatio: 1, Used: int64(i%64) * 1024},
				}})
		}
		if i%1000 == 0 {
			s := fmt.Sprintf("5%07d-0000-4000-8000-000000000000", i/1000)
			d.Providers = append(d.Providers, ProviderData{UUID: s, Name: s, Aggregates: []string{agg}, Traits: []string{SharesTrait},
				Inventories: []InventoryData{{Class: "DISK_GB", Total: 100000, MinUnit: 1, MaxUnit: 100000, StepSize: 1, AllocationRatio: 1}}})
		}
	}
	return d
}

func benchFind(b *testing.B, s *Snapshot, query string, minor int) {
	params, perr := qs.ParseQuery(query)
	if perr != nil {
		b.Fatal(perr)
	}
	q, perr := qs.ParseCandidates(params, minor)
	if perr != nil {
		b.Fatal(perr)
	}
	b.ResetTimer()
	n := 0
	for i := 0; i < b.N; i++ {
		r, err := Find(context.Background(), s, Request{Query: q, NestedAware: true})
		if err != nil {
			b.Fatal(err)
		}
		n = len(r.Requests)
	}
	b.ReportMetric(float64(n), "requests")
}

func BenchmarkScale(b *testing.B) {
	d := scaleData(33000) // ~100k providers
	b.Run("NewSnapshot", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := NewSnapshot(d); err != nil {
				b.Fatal(err)
			}
		}
	})
	s, err := NewSnapshot(d)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("%d providers", s.Count())
	b.Run("limit1", func(b *testing.B) {
		benchFind(b, s, "resources=VCPU:2,MEMORY_MB:2048,DISK_GB:10&limit=1", 39)
	})
	b.Run("limit1000", func(b *testing.B) {
		benchFind(b, s, "resources=VCPU:2,MEMORY_MB:2048,DISK_GB:10&limit=1000", 39)
	})
	b.Run("nolimit", func(b *testing.B) {
		benchFind(b, s, "resources=VCPU:2,MEMORY_MB:2048,DISK_GB:10", 39)
	})
	b.Run("scan-nomatch", func(b *testing.B) {
		benchFind(b, s, "resources=VCPU:2,MEMORY_MB:2048,DISK_GB:10&required=HW_CPU_X86_AVX&limit=1", 39)
	})
	b.Run("granular-limit10", func(b *testing.B) {
		benchFind(b, s, "resources=DISK_GB:10&resources1=VCPU:2,MEMORY_MB:2048&required=CUSTOM_GOLD&limit=10", 39)
	})
}

// fleetData is the fleet of issue 3's measurements: n compute nodes with
// VCPU 64 (ratio 4), MEMORY_MB 262144 and DISK_GB 2000, half of them with
// HW_CPU_X86_AVX2 and a tenth with CUSTOM_RACK_A, some usage on each.
func fleetData(n int) Data {
	d := Data{Classes: standardClasses, Traits: append(append([]string(nil), standardTraits...), "CUSTOM_RACK_A")}
	d.Providers = make([]ProviderData, n)
	for i := range d.Providers {
		u := fmt.Sprintf("f%07d-0000-4000-8000-000000000000", i)
		p := ProviderData{ID: int64(i + 1), UUID: u, Name: u, Inventories: []InventoryData{
			{Class: "VCPU", Total: 64, MinUnit: 1, MaxUnit: 64, StepSize: 1, AllocationRatio: 4, Used: int64(i % 200)},
			{Class: "MEMORY_MB", Total: 262144, MinUnit: 1, MaxUnit: 262144, StepSize: 1, AllocationRatio: 1, Used: int64(i%64) * 4096},
			{Class: "DISK_GB", Total: 2000, MinUnit: 1, MaxUnit: 2000, StepSize: 1, AllocationRatio: 1, Used: int64(i % 1500)},
		}}
		if i%2 == 0 {
			p.Traits = append(p.Traits, "HW_CPU_X86_AVX2")
		}
		if i%10 == 0 {
			p.Traits = append(p.Traits, "CUSTOM_RACK_A")
		}
		d.Providers[i] = p
	}
	return d
}

// BenchmarkFind is the engine alone (no HTTP, no database) on the fleet of
// issue 3 at 1k, 10k and 100k providers. limit=1 must cost the same at
// every size.
func BenchmarkFind(b *testing.B) {
	for _, n := range []int{1000, 10000, 100000} {
		s, err := NewSnapshot(fleetData(n))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("%dk", n/1000), func(b *testing.B) {
			b.Run("limit1000", func(b *testing.B) {
				benchFind(b, s, "resources=VCPU:2,MEMORY_MB:4096&limit=1000", 39)
			})
			b.Run("limit1", func(b *testing.B) {
				benchFind(b, s, "resources=VCPU:2,MEMORY_MB:4096&limit=1", 39)
			})
			b.Run("avx2-limit1000", func(b *testing.B) {
				benchFind(b, s, "resources=VCPU:2,MEMORY_MB:4096&required=HW_CPU_X86_AVX2&limit=1000", 39)
			})
			b.Run("rack-limit1000", func(b *testing.B) {
				benchFind(b, s, "resources=VCPU:2,MEMORY_MB:4096&required=CUSTOM_RACK_A&limit=1000", 39)
			})
			// Nothing matches: every tree is looked at.
			b.Run("nomatch", func(b *testing.B) {
				benchFind(b, s, "resources=VCPU:2,MEMORY_MB:4096&required=CUSTOM_RACK_A,!HW_CPU_X86_AVX2&limit=1000", 39)
			})
		})
	}
}

// BenchmarkApply measures keeping a 100k-provider snapshot current: a
// batch of usage changes (what claims cause), and a batch of new providers.
func BenchmarkApply(b *testing.B) {
	const n = 100000
	d := fleetData(n)
	for _, batch := range []int{1, 10, 100, 1000} {
		b.Run(fmt.Sprintf("usage-%d", batch), func(b *testing.B) {
			s, err := NewSnapshot(d)
			if err != nil {
				b.Fatal(err)
			}
			rng := rand.New(rand.NewSource(1))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				var c Changes
				start, stride := rng.Intn(n), 1+rng.Intn(n/batch)
				for j := 0; j < batch; j++ {
					p := d.Providers[(start+j*stride)%n]
					p.Inventories = append([]InventoryData(nil), p.Inventories...)
					p.Inventories[0].Used = int64(rng.Intn(200))
					c.Providers = append(c.Providers, p)
				}
				if s, err = s.Apply(c); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	for _, batch := range []int{1, 100} {
		b.Run(fmt.Sprintf("new-providers-%d", batch), func(b *testing.B) {
			s, err := NewSnapshot(d)
			if err != nil {
				b.Fatal(err)
			}
			next := n
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				var c Changes
				for j := 0; j < batch; j++ {
					p := fleetData(1).Providers[0]
					p.ID = int64(next + 1)
					p.UUID = fmt.Sprintf("%08d-0000-4000-8000-000000000001", next)
					p.Name = p.UUID
					next++
					c.Providers = append(c.Providers, p)
				}
				if s, err = s.Apply(c); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
