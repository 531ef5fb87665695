package main

import (
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/unisched/unisched/internal/config"
	"github.com/unisched/unisched/internal/metrics"
	"github.com/unisched/unisched/internal/pg"
)

// leadership is how serve's leader-only work (the outbox relay, the
// periodic reconciler) campaigns among the replicas of one database: the
// leader.* settings, and the unisched_leader{role} gauge on serve's
// registry.
type leadership struct {
	cfg   config.Leader
	gauge *metrics.Leadership
}

func newLeadership(cfg config.Leader, reg prometheus.Registerer, log *slog.Logger) leadership {
	l := leadership{cfg: cfg}
	if reg != nil {
		g, err := metrics.NewLeadership(reg)
		if err != nil {
			log.Error("leadership: running without the unisched_leader gauge", "error", err)
		}
		l.gauge = g
	}
	return l
}

func (l leadership) keepalive() pg.Keepalive {
	return pg.Keepalive{Idle: l.cfg.KeepaliveIdle, Interval: l.cfg.KeepaliveInterval, Count: l.cfg.KeepaliveCount}
}

// observer is role's OnLeader callback (nil without a gauge).
func (l leadership) observer(role string) func(bool) {
	return l.gauge.Observer(role)
}
