// Package metrics holds serve's Prometheus metrics that belong to no one
// package, and the /metrics handler. Every metric is registered on the
// *prometheus.Registry serve creates and passes down: no global registry,
// so tests and several servers in one process never collide.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/unisched/unisched/bridge/outbox"
)

// NewRegistry is serve's registry, with the Go runtime and process
// collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Handler serves the registry's metrics in the exposition format.
func Handler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}

// NotifyLag is the histogram of the notify lag: from an outbox event's
// INSERT (the database's clock then, not its transaction's start: what the
// transaction did before writing the event is not the outbox's lag; a
// Nova claim writes its event last, so from there it is the commit) to the
// consumer's answer (an agent answers once it applied the
// event to Docker; the bus once the publish is confirmed), by topic. The goal is a p99 under 100 ms, so the buckets are fine below
// it and coarse above (retries after an outage land in the last ones).
type NotifyLag struct {
	h *prometheus.HistogramVec
}

// NewNotifyLag registers unisched_notify_lag_seconds on reg.
func NewNotifyLag(reg prometheus.Registerer) (*NotifyLag, error) {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "unisched_notify_lag_seconds",
		Help:    "Time from an outbox event's INSERT (within its transaction, before the commit) to its delivery (agent event or bus notification), by topic.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .075, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
	}, []string{"topic"})
	if err := reg.Register(h); err != nil {
		return nil, err
	}
	return &NotifyLag{h: h}, nil
}

// Delivered observes one delivered event: the relay's Delivered hook.
func (l *NotifyLag) Delivered(ev outbox.Event, at time.Time) {
	lag := at.Sub(ev.CreatedAt)
	if lag < 0 {
		lag = 0 // the database's clock ahead of ours
	}
	l.h.WithLabelValues(ev.Topic).Observe(lag.Seconds())
}
