package load

import (
	"context"
	"fmt"
	"math"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Stats summarises the latencies (milliseconds) and throughput of one phase.
type Stats struct {
	Requests  int     `json:"requests"`
	Failures  int64   `json:"failures"`
	Seconds   float64 `json:"seconds"`
	ReqPerSec float64 `json:"req_per_s"`
	MinMS     float64 `json:"min_ms"`
	MedianMS  float64 `json:"median_ms"`
	P90MS     float64 `json:"p90_ms"`
	P99MS     float64 `json:"p99_ms"`
	MaxMS     float64 `json:"max_ms"`
}

// Line is the one-line human form.
func (s Stats) Line() string {
	return fmt.Sprintf("%d req in %.2fs = %.1f req/s; median %.2f ms, p90 %.2f, p99 %.2f (min %.2f, max %.2f); failures %d",
		s.Requests, s.Seconds, s.ReqPerSec, s.MedianMS, s.P90MS, s.P99MS, s.MinMS, s.MaxMS, s.Failures)
}

// recorder collects latencies from concurrent workers; it prints the first
// few failures so a broken run explains itself without flooding the output.
type recorder struct {
	what  string
	mu    sync.Mutex
	lat   []time.Duration
	fails atomic.Int64
	shown atomic.Int64
}

func newRecorder(what string) *recorder { return &recorder{what: what} }

func (r *recorder) add(resp Response, good bool) {
	r.mu.Lock()
	r.lat = append(r.lat, resp.Dur)
	r.mu.Unlock()
	if !good {
		r.fails.Add(1)
		if r.shown.Add(1) <= 3 {
			fmt.Fprintf(os.Stderr, "load: %s failed: %s\n", r.what, resp)
		}
	}
}

func (r *recorder) stats(wall time.Duration) Stats {
	r.mu.Lock()
	lat := slices.Clone(r.lat)
	r.mu.Unlock()
	return summarize(lat, r.fails.Load(), wall)
}

// summarize computes nearest-rank percentiles, the usual definition for
// latency reports: p99 of 20 samples is the largest one, never an interpolation.
func summarize(lat []time.Duration, failures int64, wall time.Duration) Stats {
	slices.Sort(lat)
	s := Stats{Requests: len(lat), Failures: failures, Seconds: round(wall.Seconds(), 3)}
	if len(lat) > 0 {
		s.MinMS = msec(lat[0])
		s.MaxMS = msec(lat[len(lat)-1])
		s.MedianMS = msec(percentile(lat, 50))
		s.P90MS = msec(percentile(lat, 90))
		s.P99MS = msec(percentile(lat, 99))
	}
	if wall > 0 {
		s.ReqPerSec = round(float64(len(lat))/wall.Seconds(), 1)
	}
	return s
}

// percentile is the nearest-rank percentile p (0-100] of sorted samples.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = max(rank, 1)
	return sorted[min(rank, len(sorted))-1]
}

func msec(d time.Duration) float64 { return round(float64(d.Nanoseconds())/1e6, 3) }

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

// parallel runs f(ctx, 0..total-1) on conc workers and returns the wall
// time. Work stops early once ctx is done; f sees the same ctx.
func parallel(ctx context.Context, total, conc int, f func(ctx context.Context, i int)) time.Duration {
	conc = max(conc, 1)
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < conc && w < total; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= total {
					return
				}
				f(ctx, i)
			}
		}()
	}
	wg.Wait()
	return time.Since(start)
}
