package main

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/unisched/unisched/bridge"
	"github.com/unisched/unisched/bridge/outbox"
	"github.com/unisched/unisched/internal/config"
	"github.com/unisched/unisched/internal/health"
	"github.com/unisched/unisched/internal/metrics"
	"github.com/unisched/unisched/internal/openstack"
	"github.com/unisched/unisched/migrations"
	"github.com/unisched/unisched/placement"
)

// observability is what every serve listener carries in front of its API:
// the probes (/healthz, /readyz) and /metrics, none of them an API route
// or behind authentication, and the request metrics and logs around all
// of it.
type observability struct {
	reg    *prometheus.Registry
	health *health.Checker
	// requests records every request's metrics and log line (nil: none).
	requests *metrics.HTTP
}

// readyTimeout bounds a /readyz answer: balancers probe every few
// seconds with a timeout of their own (haproxy's default check timeout is
// the connect timeout), and a database slower than this is not ready.
const readyTimeout = 2 * time.Second

// newObservability builds the probes and the request metrics, and
// registers what is observed by querying the database or asking a part
// on scrape: Placement's own metrics, the outbox backlog (with the
// container side, which has an outbox relay).
func newObservability(cfg *config.Config, pool *pgxpool.Pool, reg *prometheus.Registry, api *placement.Server, log *slog.Logger) (*observability, error) {
	hc, err := health.NewChecker(pool, migrations.FS, readyTimeout)
	if err != nil {
		return nil, err
	}
	requests, err := metrics.NewHTTP(reg, log)
	if err != nil {
		return nil, err
	}
	if err := api.RegisterMetrics(reg); err != nil {
		return nil, err
	}
	if cfg.ContainerAPI.Enabled() {
		if _, err := outbox.NewCollector(reg, pool, log.With("component", "metrics"), bridge.AgentTopic); err != nil {
			return nil, err
		}
	}
	return &observability{reg: reg, health: hc, requests: requests}, nil
}

// listenerLabels are the listener label of serve's listeners (by
// namedServer name).
var listenerLabels = map[string]string{
	"placement API":  "placement",
	"container API":  "container",
	"Nova API proxy": "nova_proxy",
}

func listenerLabel(name string) string {
	if l, ok := listenerLabels[name]; ok {
		return l
	}
	return name
}

// wrap puts the observability endpoints in front of the listener's API.
// A plain path switch, not an http.ServeMux: the mux would redirect
// unclean paths (//x, /a/../b) that Placement answers itself.
func (o *observability) wrap(name string, api http.Handler) http.Handler {
	listener := listenerLabel(name)
	switch listener {
	case "nova_proxy":
		api = novaRoutes(api) // cmd/unisched/metrics_nova.go
	case "dashboard":
		// dashboard/handler.go's patterns
		api = patternRoutes(api, "GET /{$}", "GET /api/state", "GET /static/dashboard.css", "GET /static/dashboard.js")
	}
	probes := o.health.Handler()
	scrape := metrics.Handler(o.reg)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case health.Owns(r.URL.Path):
			openstack.SetRoute(r.Context(), r.URL.Path)
			probes.ServeHTTP(w, r)
		case r.URL.Path == metrics.Path:
			openstack.SetRoute(r.Context(), metrics.Path)
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				w.Header().Set("Allow", "GET, HEAD")
				http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
				return
			}
			scrape.ServeHTTP(w, r)
		default:
			api.ServeHTTP(w, r)
		}
	})
	if o.requests == nil {
		return h
	}
	return o.requests.Wrap(listener, h)
}
