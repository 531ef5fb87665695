package main

import (
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/unisched/unisched/bridge/outbox"
	"github.com/unisched/unisched/dashboard"
	"github.com/unisched/unisched/internal/config"
)

// dashboardServer is serve's read-only dashboard on its own listener, or
// nil when dashboard.listen is off. relay points at serve's relay
// variable, set once the relay starts (after the listeners are bound but
// before any of them serves), so the page can say whether this replica
// leads it; relays says serve runs one at all.
func dashboardServer(cfg config.Dashboard, pool *pgxpool.Pool, reg prometheus.Gatherer, relays bool, relay **outbox.Relay, log *slog.Logger) (*namedServer, error) {
	if !cfg.Enabled() {
		return nil, nil
	}
	if err := cfg.Check(); err != nil {
		return nil, err
	}
	opts := dashboard.Options{Decisions: cfg.Decisions, MaxHosts: cfg.MaxHosts, Gatherer: reg}
	if relays {
		opts.Leader = func() bool {
			if r := *relay; r != nil {
				return r.IsLeader()
			}
			return false
		}
	}
	h := dashboard.Handler(dashboard.Config{DB: pool, Options: opts, Refresh: cfg.Refresh,
		Logger: log.With("component", "dashboard")})
	return &namedServer{name: "dashboard", addr: cfg.Listen, handler: h}, nil
}
