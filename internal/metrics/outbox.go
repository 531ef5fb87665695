package metrics

import (
	"context"
	"log/slog"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
)

// Querier is what a collector that reads PostgreSQL on scrape needs:
// *pgxpool.Pool has it.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// scrapeTimeout bounds a collector's query: a scrape must answer even when
// the database does not (the query's metrics are then left out and its
// error counter goes up).
const scrapeTimeout = 2 * time.Second

// agentTopic is bridge.AgentTopic (not imported: the bridge is above
// this package).
const agentTopic = "agent"

// OutboxCollector exports the bridge outbox's backlog on every scrape:
// undelivered events and the age of the oldest, by topic. The query reads
// the pending rows only (the partial index bridge_outbox_pending_idx),
// which are few unless delivery is stuck, and the numbers are the
// database's, so every replica reports the same backlog whichever leads
// the relay.
type OutboxCollector struct {
	db     Querier
	log    *slog.Logger
	depth  *prometheus.Desc
	oldest *prometheus.Desc
	errors prometheus.Counter
}

// NewOutboxCollector registers the collector on reg.
func NewOutboxCollector(reg prometheus.Registerer, db Querier, log *slog.Logger) (*OutboxCollector, error) {
	if log == nil {
		log = slog.Default()
	}
	c := &OutboxCollector{
		db:  db,
		log: log,
		depth: prometheus.NewDesc("unisched_outbox_pending_events",
			"Outbox events not yet delivered (to an agent or the bus), by topic.", []string{"topic"}, nil),
		oldest: prometheus.NewDesc("unisched_outbox_oldest_pending_age_seconds",
			"Age of the oldest undelivered outbox event, by topic (0 when none is pending).", []string{"topic"}, nil),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "unisched_outbox_scrape_errors_total",
			Help: "Scrapes whose outbox query failed (the outbox metrics were left out of them).",
		}),
	}
	if err := Register(reg, "the outbox metrics", c); err != nil {
		return nil, err
	}
	return c, nil
}

// Describe implements prometheus.Collector.
func (c *OutboxCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.depth
	ch <- c.oldest
	c.errors.Describe(ch)
}

// Collect implements prometheus.Collector: one query per scrape.
func (c *OutboxCollector) Collect(ch chan<- prometheus.Metric) {
	defer c.errors.Collect(ch)
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	rows, err := c.db.Query(ctx, `SELECT topic, count(*), extract(epoch FROM now() - min(created_at))::float8
		FROM bridge_outbox WHERE delivered_at IS NULL GROUP BY topic`)
	if err != nil {
		c.failed(err)
		return
	}
	type row struct {
		topic string
		n     int64
		age   float64
	}
	var out []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.topic, &r.n, &r.age); err != nil {
			rows.Close()
			c.failed(err)
			return
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		c.failed(err)
		return
	}
	// the agents' topic is always there, at 0 when idle, so that sums and
	// alerts have a series to read
	if !slices.ContainsFunc(out, func(r row) bool { return r.topic == agentTopic }) {
		out = append(out, row{topic: agentTopic})
	}
	for _, r := range out {
		ch <- prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(r.n), r.topic)
		ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, max(r.age, 0), r.topic)
	}
}

func (c *OutboxCollector) failed(err error) {
	c.errors.Inc()
	c.log.Warn("reading the outbox backlog for /metrics", "error", err)
}
