package scheduler_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/unisched/unisched/bridge/scheduler"
	"k8s.io/utils/cpuset"
)

// fleet builds n hosts of two cells of 16 hyperthreaded CPUs, with usage,
// pins and traits varying from host to host.
func fleet(b *testing.B, n int) *scheduler.Snapshot {
	hosts := make([]scheduler.HostState, n)
	for i := range hosts {
		h := host(fmt.Sprintf("host-%05d", i), 2, 16, true)
		h.AvailabilityZone = []string{"az1", "az2"}[i%2]
		h.Aggregates = []string{fmt.Sprintf("agg-%d", i%10)}
		if i%10 == 0 {
			h.Traits = []string{"COMPUTE_STATUS_DISABLED"}
		} else {
			h.Traits = []string{"HW_CPU_X86_AVX2", "COMPUTE_NET_VIF_MODEL_VIRTIO"}
		}
		pinned := i % 12 // 0..11 pCPUs of cell 0
		if pinned > 0 {
			var ids []int
			for c := 0; c < pinned; c++ {
				ids = append(ids, c)
			}
			h.Cells[0].Pinned = []scheduler.Pin{{Workload: fmt.Sprintf("w%d", i), CPUs: cpuset.New(ids...)}}
			h.Cells[0].MemoryUsedMB = int64(pinned) * 1024
		}
		set := func(rc scheduler.ResourceClass, used int64) {
			inv := h.Inventories[rc]
			inv.Used = used
			h.Inventories[rc] = inv
		}
		set(scheduler.PCPU, int64(pinned))
		set(scheduler.VCPU, int64(i*7%100))
		set(scheduler.MemoryMB, int64(pinned)*1024+int64(i*131%8192))
		set(scheduler.DiskGB, int64(i%90))
		hosts[i] = h
	}
	s, err := scheduler.NewSnapshot(hosts)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

func BenchmarkSchedule(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		snap := fleet(b, n)
		for _, bc := range []struct {
			name string
			req  *scheduler.Request
			cap  int
		}{
			{"shared", vm("bench", 2, 2048), 1000},
			{"dedicated", container("bench", 4, 4096), 1000},
			{"dedicated-az-nocap", func() *scheduler.Request {
				r := container("bench", 4, 4096)
				r.AvailabilityZone = "az1"
				r.RequiredTraits = []string{"HW_CPU_X86_AVX2"}
				return r
			}(), 0},
		} {
			e := engine(b, func(c *scheduler.Config) { c.MaxScoredHosts = bc.cap })
			b.Run(fmt.Sprintf("hosts=%d/%s", n, bc.name), func(b *testing.B) {
				ctx := context.Background()
				b.ReportAllocs()
				var d scheduler.Decision
				for i := 0; b.Loop(); i++ {
					req := *bc.req
					req.ID = fmt.Sprintf("req-%d", i)
					var err error
					if d, err = e.Schedule(ctx, snap, &req); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(d.Stats.Examined), "examined")
			})
		}
	}
}
