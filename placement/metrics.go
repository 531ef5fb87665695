package placement

import (
	"errors"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/unisched/unisched/internal/metrics"
	"github.com/unisched/unisched/internal/openstack"
	"github.com/unisched/unisched/placement/candidates"
)

// placementMetrics are Placement's own metrics: what the request metrics
// of the listener cannot see inside a request. They always exist (an
// unregistered collector records into nothing anyone reads), so the code
// that feeds them needs no nil checks; RegisterMetrics exports them.
type placementMetrics struct {
	// findSeconds is the engine's time for one GET /allocation_candidates
	// (candidates.Find over the snapshot, ordering hook excluded);
	// waitSeconds the time the request waited for the index to catch up.
	findSeconds *prometheus.HistogramVec
	waitSeconds prometheus.Histogram
	// indexSeconds is the time of one index catch-up, by kind: reload
	// (read everything, build a new snapshot) or incremental (apply the
	// change feed, often empty).
	indexSeconds *prometheus.HistogramVec
	candidates   prometheus.Histogram
	// conflicts are allocation writes refused or retried, by reason.
	conflicts *prometheus.CounterVec
}

// Conflict reasons of unisched_placement_allocation_conflicts_total.
const (
	// conflictRetry: a claim attempt lost a race (a provider or consumer
	// generation, a deadlock) and was retried inside the request.
	conflictRetry = "retry"
	// conflictRetriesExhausted: every retry lost; the client got a 409
	// placement.concurrent_update.
	conflictRetriesExhausted = "retries_exhausted"
	// conflictConsumerGeneration: the client's consumer_generation was
	// stale (a 409 placement.concurrent_update Nova retries on).
	conflictConsumerGeneration = "consumer_generation"
	// conflictCapacity: the allocation does not fit the inventory (a 409
	// "Unable to allocate inventory").
	conflictCapacity = "capacity"
)

var conflictReasons = []string{conflictRetry, conflictRetriesExhausted, conflictConsumerGeneration, conflictCapacity}

func newPlacementMetrics() *placementMetrics {
	fine := []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}
	m := &placementMetrics{
		findSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "unisched_placement_candidates_engine_seconds",
			Help:    "Allocation candidates engine time of one GET /allocation_candidates (candidates.Find over the in-memory snapshot), by whether it found any.",
			Buckets: fine,
		}, []string{"result"}),
		waitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "unisched_placement_candidates_index_wait_seconds",
			Help:    "Time a GET /allocation_candidates waited for the candidates index to include every commit before it.",
			Buckets: fine,
		}),
		indexSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "unisched_placement_candidates_index_build_seconds",
			Help:    "Time of one candidates index catch-up, by kind: reload (snapshot built from a full read) or incremental (change feed applied).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"kind"}),
		candidates: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "unisched_placement_candidates_returned",
			Help:    "Allocation requests returned by one GET /allocation_candidates (after limit).",
			Buckets: []float64{0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000},
		}),
		conflicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "unisched_placement_allocation_conflicts_total",
			Help: "Allocation writes (PUT/POST allocations) that lost a race or were refused, by reason: retry (retried internally), retries_exhausted (409 concurrent_update), consumer_generation (409 stale consumer generation), capacity (409 does not fit).",
		}, []string{"reason"}),
	}
	metrics.Touch(m.conflicts, conflictReasons...)
	metrics.Touch(m.findSeconds, "found", "none")
	metrics.Touch(m.indexSeconds, "reload", "incremental")
	return m
}

// RegisterMetrics exports Placement's metrics on reg (serve's registry),
// with a gauge of the providers in the candidates index.
func (s *Server) RegisterMetrics(reg prometheus.Registerer) error {
	m := s.metrics
	providers := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "unisched_placement_candidates_index_providers",
		Help: "Resource providers in this process's allocation candidates index.",
	}, func() float64 {
		if st := s.candidates.state.Load(); st != nil {
			return float64(st.snap.Count())
		}
		return 0
	})
	return metrics.Register(reg, "Placement's metrics", m.findSeconds, m.waitSeconds, m.indexSeconds, m.candidates, m.conflicts, providers)
}

func (m *placementMetrics) since(h prometheus.Observer, start time.Time) {
	h.Observe(time.Since(start).Seconds())
}

// claimOutcome counts a claim's refusal by reason from the API error the
// client gets (nil and other errors: nothing).
func (m *placementMetrics) claimOutcome(err error) {
	var apiErr *openstack.Error
	switch {
	case err == nil:
	case errors.As(err, &apiErr) && apiErr.Status == 409:
		switch {
		case strings.HasPrefix(apiErr.Detail, msgUnableToAllocatePrefix):
			m.conflicts.WithLabelValues(conflictCapacity).Inc()
		case strings.HasPrefix(apiErr.Detail, "consumer generation conflict"):
			m.conflicts.WithLabelValues(conflictConsumerGeneration).Inc()
		}
	}
}

// found observes one engine run that succeeded.
func (m *placementMetrics) found(res *candidates.Result, start time.Time) {
	result := "none"
	if len(res.Requests) > 0 {
		result = "found"
	}
	m.since(m.findSeconds.WithLabelValues(result), start)
	m.candidates.Observe(float64(len(res.Requests)))
}
