package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/unisched/unisched/bridge"
	"github.com/unisched/unisched/bridge/outbox"
	"github.com/unisched/unisched/internal/config"
	"github.com/unisched/unisched/novaext"
	"github.com/unisched/unisched/novaext/notifications"
)

// notifyParts are serve's side of the notification bus: the container
// notifications publisher (routed beside the agents' deliverer) and the
// notify-lag histogram the relay feeds.
type notifyParts struct {
	publisher *notifications.Publisher
	lag       *outbox.NotifyLag
}

// setupNotify routes the bridge's outbox: agent events to the agents,
// container notifications to the bus when notifications.publish_url is
// set; and has the relay observe every delivery's lag.
func setupNotify(cfg *config.Config, parts *bridgeParts, reg *prometheus.Registry) (notifyParts, error) {
	var np notifyParts
	lag, err := outbox.NewNotifyLag(reg)
	if err != nil {
		return np, err
	}
	np.lag = lag
	parts.delivered = lag.Delivered
	if !cfg.Notifications.Enabled() {
		return np, nil
	}
	host := cfg.Notifications.PublisherHost
	if host == "" {
		if host, err = os.Hostname(); err != nil {
			return np, fmt.Errorf("notifications.publisher_host: %w", err)
		}
	}
	pub, err := notifications.NewPublisher(notifications.PublisherConfig{
		URL: cfg.Notifications.PublishURL, Exchange: cfg.Notifications.Exchange, PublisherID: "container-api:" + host,
	})
	if err != nil {
		return np, err
	}
	np.publisher = pub
	var router outbox.Router
	router.Handle(bridge.AgentTopic, parts.deliverer)
	router.Handle(bridge.NotificationTopicPrefix, pub)
	parts.deliverer = &router
	return np, nil
}

// startNovaConsumer runs the consumer of Nova's versioned notifications
// when nova.notifications.url is set; stop ends it and waits.
func startNovaConsumer(ctx context.Context, cfg *config.Config, coord *bridge.Coordinator, reg *prometheus.Registry, log *slog.Logger) (stop func(), err error) {
	nc := cfg.Nova.Notifications
	if !nc.Enabled() || coord == nil {
		return func() {}, nil
	}
	m, err := notifications.NewMetrics(reg)
	if err != nil {
		return nil, err
	}
	ccfg := notifications.ConsumerConfig{
		URL: nc.URL, Exchange: nc.Exchange, Queue: nc.Queue, Ledger: coord, Metrics: m,
		Logger: log.With("component", "nova-notifications"),
	}
	if cfg.Nova.Configured() {
		// Keystone may be down at start: a failure here only costs the
		// real pins until serve restarts, never the notifications.
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		client, err := novaext.NewNovaClient(cctx, cfg.Nova)
		cancel()
		if err != nil {
			log.Error("nova client unavailable: VMs keep the pins the bridge expected", "error", err)
		} else {
			ccfg.Topologies = client
		}
	}
	cons, err := notifications.NewConsumer(ccfg)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = cons.Run(cctx)
	}()
	return func() { cancel(); <-done }, nil
}
