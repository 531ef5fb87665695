package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/unisched/unisched/bridge"
	bridgeapi "github.com/unisched/unisched/bridge/api"
	"github.com/unisched/unisched/bridge/ledger"
	"github.com/unisched/unisched/bridge/outbox"
	"github.com/unisched/unisched/bridge/reconcile"
	"github.com/unisched/unisched/bridge/scheduler"
	"github.com/unisched/unisched/internal/config"
	"github.com/unisched/unisched/internal/metrics"
	"github.com/unisched/unisched/internal/openstack"
	"github.com/unisched/unisched/zunext"
)

// bridgeParts is what serve runs of the bridge: the coordinator the
// container API calls and the deliverer its outbox relay posts events
// with.
type bridgeParts struct {
	svc bridge.Service
	// coord is svc itself, for what only the coordinator offers (Nova's
	// Placement hooks).
	coord     *bridge.Coordinator
	deliverer outbox.Deliverer
	// delivered observes each delivery (the notify-lag histogram).
	delivered func(outbox.Event, time.Time)
}

// newBridge builds the coordinator over the pool and the engine, and the
// deliverer that posts its outbox events to the hosts' agents.
func newBridge(pool *pgxpool.Pool, engine *scheduler.Engine, notify bool, reg prometheus.Registerer, log *slog.Logger) (bridgeParts, error) {
	conflicts, err := metrics.NewClaimConflicts(reg)
	if err != nil {
		return bridgeParts{}, err
	}
	coord := bridge.New(pool, engine, bridge.Options{Logger: log.With("component", "coordinator"), Notifications: notify,
		ClaimConflict: conflicts.Conflict})
	return bridgeParts{
		svc:       coord,
		coord:     coord,
		deliverer: bridge.NewAgentDeliverer(pool, bridge.AgentDelivererOptions{}),
	}, nil
}

// zunAPI is Zun's v1 API over the coordinator.
func zunAPI(svc bridge.Service, auth openstack.Authenticator, log *slog.Logger) http.Handler {
	return zunext.NewHandler(svc, zunext.Options{Logger: log, Authenticator: auth})
}

// containerHandler is the container API listener's handler: Zun's API,
// the native /v1/workloads and the agents' routes on one mux.
func containerHandler(parts bridgeParts, pool *pgxpool.Pool, cfg *config.Config, auth serveAuth, log *slog.Logger) http.Handler {
	native := bridgeapi.New(bridgeapi.Config{
		Auth:         auth.agents,
		Service:      parts.svc,
		MaxBodyBytes: cfg.ContainerAPI.MaxBodyBytes,
		Logger:       log,
		LatestDecision: func(ctx context.Context, id string) (ledger.Decision, error) {
			return ledger.LatestDecision(ctx, pool, id)
		},
		Reconciliation: reconcile.Reports{DB: pool},
	})
	return bridgeapi.Mount(native, zunAPI(parts.svc, auth.users, log))
}

// startRelay starts the outbox relay that delivers the coordinator's
// events to the agents. Every serve runs one; they elect a leader among
// themselves, so replicas deliver each event once.
func startRelay(ctx context.Context, pool *pgxpool.Pool, parts bridgeParts, parallelism int, lead leadership, log *slog.Logger) (*outbox.Relay, error) {
	relay, err := outbox.NewRelay(pool, outbox.Config{
		Deliverer:   parts.deliverer,
		Delivered:   parts.delivered,
		Logger:      log.With("component", "outbox-relay"),
		Parallelism: parallelism,
		LeaderRetry: lead.cfg.RetryInterval,
		Keepalive:   lead.keepalive(),
		OnLeader:    lead.observer("relay"),
	})
	if err != nil {
		return nil, err
	}
	if err := relay.Start(ctx); err != nil {
		return nil, fmt.Errorf("starting the outbox relay: %w", err)
	}
	return relay, nil
}
