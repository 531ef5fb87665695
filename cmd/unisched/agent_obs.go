package main

import (
	"log/slog"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/unisched/unisched/internal/health"
	"github.com/unisched/unisched/internal/metrics"
	"github.com/unisched/unisched/internal/openstack"
	"github.com/unisched/unisched/zunext/agent"
)

// agentRoutes are the agent's route patterns (zunext/agent/http.go), for
// its request metrics' route label.
var agentRoutes = []string{
	"POST /v1/events", "GET /v1/containers/{id}/logs", "POST /v1/containers/{id}/execute",
	"GET /v1/containers/{id}/stats", "GET /v1/containers/{id}/top", "GET /v1/health",
}

// agentObservability is the agent listener's counterpart of serve's:
// /healthz, /readyz (Docker reachable and the host converged on serve's
// desired state once), /metrics of the agent's own registry, and request
// metrics and logs. get returns the agent, built after the wrapper.
func agentObservability(get func() *agent.Agent, log *slog.Logger) (func(http.Handler) http.Handler, error) {
	reg := metrics.NewRegistry()
	requests, err := metrics.NewHTTP(reg, log)
	if err != nil {
		return nil, err
	}
	dockerUp := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "unisched_agent_docker_up",
		Help: "1 while the agent reaches its dockerd.",
	}, func() float64 { return bool01(get().DockerUp()) })
	converged := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "unisched_agent_converged",
		Help: "1 once the agent has converged on serve's desired state for its host.",
	}, func() float64 { return bool01(isConverged(get())) })
	pending := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "unisched_agent_events_pending",
		Help: "Events the agent has acknowledged (journaled) and not applied yet.",
	}, func() float64 { n, _ := get().EventStats(); return float64(n) })
	retries := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "unisched_agent_event_retries_total",
		Help: "Failed attempts at applying an acknowledged event (Docker or serve away), retried by the agent.",
	}, func() float64 { _, n := get().EventStats(); return float64(n) })
	if err := metrics.Register(reg, "the agent's metrics", dockerUp, converged, pending, retries); err != nil {
		return nil, err
	}
	scrape := metrics.Handler(reg)
	return func(api http.Handler) http.Handler {
		api = patternRoutes(api, agentRoutes...)
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case health.LivePath, health.ReadyPath, metrics.Path:
				openstack.SetRoute(r.Context(), r.URL.Path)
				if r.Method != http.MethodGet && r.Method != http.MethodHead {
					w.Header().Set("Allow", "GET, HEAD")
					http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
					return
				}
			}
			switch r.URL.Path {
			case health.LivePath:
				health.WriteReport(w, r, health.Report{Status: "ok"})
			case health.ReadyPath:
				a := get()
				rep := health.Report{Status: "ok", Checks: map[string]health.Check{
					"docker": {Status: "ok"}, "converged": {Status: "ok"}}}
				if !a.DockerUp() {
					rep.Status, rep.Checks["docker"] = "unavailable", health.Check{Status: "fail", Error: "dockerd unreachable"}
				}
				if !isConverged(a) {
					rep.Status, rep.Checks["converged"] = "unavailable", health.Check{Status: "fail", Error: "not converged on serve's desired state yet"}
				}
				health.WriteReport(w, r, rep)
			case metrics.Path:
				scrape.ServeHTTP(w, r)
			default:
				api.ServeHTTP(w, r)
			}
		})
		return requests.Wrap("agent", h)
	}, nil
}

func isConverged(a *agent.Agent) bool {
	select {
	case <-a.Converged():
		return true
	default:
		return false
	}
}

func bool01(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// patternRoutes labels a handler built on an http.ServeMux with the
// patterns given (the same as its own): a mirror mux of them finds the
// pattern a request matches, without touching the handler.
func patternRoutes(next http.Handler, patterns ...string) http.Handler {
	mirror := http.NewServeMux()
	noop := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	for _, p := range patterns {
		mirror.Handle(p, noop)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, p := mirror.Handler(r); p != "" {
			if _, path, ok := strings.Cut(p, " "); ok {
				p = path
			}
			openstack.SetRoute(r.Context(), strings.TrimSuffix(p, "{$}"))
		}
		next.ServeHTTP(w, r)
	})
}
