package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/unisched/unisched/bridge"
	bridgeapi "github.com/unisched/unisched/bridge/api"
	"github.com/unisched/unisched/bridge/ledger"
	"github.com/unisched/unisched/bridge/outbox"
	"github.com/unisched/unisched/bridge/scheduler"
	"github.com/unisched/unisched/bridge/scheduler/filters"
	"github.com/unisched/unisched/bridge/scheduler/weighers"
	"github.com/unisched/unisched/internal/config"
)

// bridgeParts is what serve runs of the bridge: the coordinator the
// container API calls and the deliverer its outbox relay posts events
// with. Both nil until package bridge has a coordinator.
type bridgeParts struct {
	svc       bridge.Service
	deliverer outbox.Deliverer
}

// newEngine builds the scheduler from the scheduler section, so that a
// typo in a filter name stops serve at start rather than at the first
// placement.
func newEngine(cfg scheduler.Config) (*scheduler.Engine, error) {
	reg := scheduler.NewRegistry()
	if err := filters.Register(reg); err != nil {
		return nil, fmt.Errorf("registering scheduler filters: %w", err)
	}
	if err := weighers.Register(reg); err != nil {
		return nil, fmt.Errorf("registering scheduler weighers: %w", err)
	}
	return reg.Build(cfg)
}

// newBridge builds the coordinator over the pool and the engine. This is
// the hook for package bridge's coordinator: until it exists the
// container API answers 503 and no relay runs.
func newBridge(_ context.Context, _ *pgxpool.Pool, _ *scheduler.Engine, _ *config.Config, _ *slog.Logger) (bridgeParts, error) {
	return bridgeParts{}, nil
}

// zunAPI is Zun's v1 API over the coordinator (package zunext); nil until
// it exists, and bridge/api.Mount then answers 404 for Zun's paths.
func zunAPI(_ bridge.Service, _ *config.Config, _ *slog.Logger) http.Handler {
	return nil
}

// containerHandler is the container API listener's handler: Zun's API,
// the native /v1/workloads and the agents' routes on one mux.
func containerHandler(parts bridgeParts, pool *pgxpool.Pool, cfg *config.Config, log *slog.Logger) http.Handler {
	native := bridgeapi.New(bridgeapi.Config{
		Service:      parts.svc,
		MaxBodyBytes: cfg.ContainerAPI.MaxBodyBytes,
		Logger:       log,
		LatestDecision: func(ctx context.Context, id string) (ledger.Decision, error) {
			return ledger.LatestDecision(ctx, pool, id)
		},
	})
	var zun http.Handler
	if parts.svc != nil {
		zun = zunAPI(parts.svc, cfg, log)
	}
	return bridgeapi.Mount(native, zun)
}

// startRelay starts the outbox relay that delivers the coordinator's
// events to the agents; nil when there is nothing to deliver with.
func startRelay(ctx context.Context, pool *pgxpool.Pool, parts bridgeParts, log *slog.Logger) (*outbox.Relay, error) {
	if parts.deliverer == nil {
		log.Warn("no coordinator yet: the outbox relay is not started")
		return nil, nil
	}
	relay, err := outbox.NewRelay(pool, outbox.Config{
		Deliverer: parts.deliverer,
		Logger:    log.With("component", "outbox-relay"),
	})
	if err != nil {
		return nil, err
	}
	if err := relay.Start(ctx); err != nil {
		return nil, fmt.Errorf("starting the outbox relay: %w", err)
	}
	return relay, nil
}
