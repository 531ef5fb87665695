// Package metrics holds serve's Prometheus metrics that belong to no one
// package, and the /metrics handler. Every metric is registered on the
// *prometheus.Registry serve creates and passes down: no global registry,
// so tests and several servers in one process never collide. Metrics of a
// domain package live in it and register themselves (the outbox's backlog
// and notify lag in bridge/outbox): this package, shared by all, imports
// none of them.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
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
