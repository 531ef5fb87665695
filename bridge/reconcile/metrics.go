package reconcile

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/unisched/unisched/internal/metrics"
)

// Metrics exports what the runs find and do. Divergences counts every
// divergence found, by kind, over all runs (a divergence found again by the
// next run counts again: it is a rate of trouble, the gauge is the state);
// LastRun is the newest run's count per kind.
type Metrics struct {
	divergences *prometheus.CounterVec
	repairs     *prometheus.CounterVec
	lastRun     *prometheus.GaugeVec
	runs        prometheus.Counter
	lastRunAt   prometheus.Gauge
}

// NewMetrics registers the reconciler's metrics with reg (serve's
// registry, served at /metrics); one registry takes one Metrics.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		divergences: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "unisched_reconcile_divergences_total",
			Help: "Divergences found by reconciliation runs, by kind (counted again by every run that finds them).",
		}, []string{"kind"}),
		repairs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "unisched_reconcile_repairs_total",
			Help: "What reconciliation did about each divergence, by kind and result (repaired, failed, skipped, resolved, dry_run).",
		}, []string{"kind", "result"}),
		lastRun: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "unisched_reconcile_last_run_divergences",
			Help: "Divergences found by the newest reconciliation run of this process, by kind.",
		}, []string{"kind"}),
		runs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "unisched_reconcile_runs_total",
			Help: "Reconciliation runs this process led to the end.",
		}),
		lastRunAt: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "unisched_reconcile_last_run_timestamp_seconds",
			Help: "When the newest reconciliation run of this process finished (Unix time).",
		}),
	}
	if err := metrics.Register(reg, "the reconciliation metrics", m.divergences, m.repairs, m.lastRun, m.runs, m.lastRunAt); err != nil {
		return nil, err
	}
	// every kind present from the start, at zero
	metrics.Touch(m.divergences, Kinds...)
	metrics.Touch(m.lastRun, Kinds...)
	return m, nil
}

// observe records a finished run.
func (m *Metrics) observe(rep *Report) {
	if m == nil {
		return
	}
	for k, n := range rep.Counts {
		m.divergences.WithLabelValues(k).Add(float64(n))
		m.lastRun.WithLabelValues(k).Set(float64(n))
	}
	for _, d := range rep.Divergences {
		m.repairs.WithLabelValues(d.Kind, d.Result).Inc()
	}
	m.runs.Inc()
	if rep.FinishedAt != nil {
		m.lastRunAt.Set(float64(rep.FinishedAt.Unix()))
	}
}
