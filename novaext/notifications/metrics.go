package notifications

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/unisched/unisched/internal/metrics"
)

// Metrics are the consumer's counters, registered on the registry serve
// passes in (no global registry). A nil *Metrics records nothing.
type Metrics struct {
	consumedTotal  *prometheus.CounterVec
	failedTotal    *prometheus.CounterVec
	reconnects     prometheus.Counter
	connectedGauge prometheus.Gauge
}

// NewMetrics registers the consumer's metrics on reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		consumedTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "unisched_nova_notifications_consumed_total",
			Help: "Nova versioned notifications handled, by what the ledger was told (created, failed, deleted, moved, ignored).",
		}, []string{"action"}),
		failedTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "unisched_nova_notifications_failed_total",
			Help: "Nova notifications not applied: malformed (dropped), refused by the ledger (dropped), retried (requeued).",
		}, []string{"reason"}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "unisched_nova_notifications_reconnects_total",
			Help: "Times the notification consumer lost its connection to the bus and reconnected.",
		}),
		connectedGauge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "unisched_nova_notifications_connected",
			Help: "1 while the notification consumer is subscribed to its queue.",
		}),
	}
	if err := metrics.Register(reg, "the notification consumer's metrics", m.consumedTotal, m.failedTotal, m.reconnects, m.connectedGauge); err != nil {
		return nil, err
	}
	metrics.Touch(m.consumedTotal, string(Created), string(Failed), string(Deleted), string(Moved), string(Ignored))
	metrics.Touch(m.failedTotal, "malformed", "refused", "retried")
	return m, nil
}

func (m *Metrics) consumed(k ActionKind) {
	if m != nil {
		m.consumedTotal.WithLabelValues(string(k)).Inc()
	}
}

func (m *Metrics) failed(reason string) {
	if m != nil {
		m.failedTotal.WithLabelValues(reason).Inc()
	}
}

func (m *Metrics) reconnect() {
	if m != nil {
		m.reconnects.Inc()
	}
}

func (m *Metrics) connected(v bool) {
	if m == nil {
		return
	}
	if v {
		m.connectedGauge.Set(1)
	} else {
		m.connectedGauge.Set(0)
	}
}
