package dashboard

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/unisched/unisched/bridge/outbox"
)

// notifyLag sums the notify-lag histogram over its topics; nil when this
// process has observed no delivery (it does not lead the relay, or
// nothing happened yet).
func notifyLag(g prometheus.Gatherer) (*LagHistogram, error) {
	families, err := g.Gather()
	if err != nil {
		return nil, fmt.Errorf("gathering metrics: %w", err)
	}
	var count uint64
	var sum float64
	buckets := map[float64]uint64{}
	for _, f := range families {
		if f.GetName() != outbox.NotifyLagMetric || f.GetType() != dto.MetricType_HISTOGRAM {
			continue
		}
		for _, m := range f.GetMetric() {
			h := m.GetHistogram()
			count += h.GetSampleCount()
			sum += h.GetSampleSum()
			for _, b := range h.GetBucket() {
				buckets[b.GetUpperBound()] += b.GetCumulativeCount()
			}
		}
	}
	if count == 0 {
		return nil, nil
	}
	bounds := make([]float64, 0, len(buckets))
	for ub := range buckets {
		bounds = append(bounds, ub)
	}
	slices.Sort(bounds)
	cum := make([]uint64, len(bounds))
	for i, ub := range bounds {
		cum[i] = buckets[ub]
	}
	return &LagHistogram{
		Count: count,
		Mean:  Duration(secs(sum / float64(count))),
		P50:   Duration(secs(quantile(0.5, bounds, cum, count))),
		P99:   Duration(secs(quantile(0.99, bounds, cum, count))),
	}, nil
}

// quantile estimates the q-quantile from cumulative bucket counts as
// Prometheus' histogram_quantile does: linear inside the bucket the rank
// falls in, the first bucket starting at 0; past the last finite bound
// the answer is that bound.
func quantile(q float64, bounds []float64, cum []uint64, count uint64) float64 {
	rank := q * float64(count)
	lower, below := 0.0, uint64(0)
	for i, ub := range bounds {
		if float64(cum[i]) >= rank {
			if math.IsInf(ub, 1) {
				return lower
			}
			in := cum[i] - below
			if in == 0 {
				return ub
			}
			return lower + (ub-lower)*(rank-float64(below))/float64(in)
		}
		lower, below = ub, cum[i]
	}
	return lower
}

func secs(s float64) time.Duration {
	if s < 0 || math.IsNaN(s) {
		return 0
	}
	return time.Duration(s * float64(time.Second))
}
