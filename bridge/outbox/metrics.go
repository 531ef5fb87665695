package outbox

import (
	"context"
	"log/slog"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/unisched/unisched/internal/metrics"
	"github.com/unisched/unisched/internal/pg"
)

// NotifyLagMetric is the notify-lag histogram's name (docs/operations.md,
// the dashboard's chart).
const NotifyLagMetric = "unisched_notify_lag_seconds"

// NotifyLag is the histogram of the notify lag: from an outbox event's
// INSERT (the database's clock then, not its transaction's start: what the
// transaction did before writing the event is not the outbox's lag; a
// Nova claim writes its event last, so from there it is the commit) to the
// consumer's answer (an agent answers once it applied the event to
// Docker; the bus once the publish is confirmed), by topic. The goal is a
// p99 under 100 ms, so the buckets are fine below it and coarse above
// (retries after an outage land in the last ones).
type NotifyLag struct {
	h *prometheus.HistogramVec
}

// NewNotifyLag registers the notify-lag histogram on reg.
func NewNotifyLag(reg prometheus.Registerer) (*NotifyLag, error) {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    NotifyLagMetric,
		Help:    "Time from an outbox event's INSERT (within its transaction, before the commit) to its delivery (agent event or bus notification), by topic.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .075, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
	}, []string{"topic"})
	if err := metrics.Register(reg, "the notify-lag histogram", h); err != nil {
		return nil, err
	}
	return &NotifyLag{h: h}, nil
}

// Delivered observes one delivered event: the relay's Config.Delivered.
func (l *NotifyLag) Delivered(ev Event, at time.Time) {
	lag := at.Sub(ev.CreatedAt)
	if lag < 0 {
		lag = 0 // the database's clock ahead of ours
	}
	l.h.WithLabelValues(ev.Topic).Observe(lag.Seconds())
}

// scrapeTimeout bounds the collector's query: a scrape must answer even
// when the database does not (the outbox gauges are then left out and the
// error counter goes up).
const scrapeTimeout = 2 * time.Second

// Collector exports the outbox's backlog on every scrape: undelivered
// events and the age of the oldest, by topic, read with Stats (the
// dashboard's query) without a delivery window, so it reads the pending
// rows only, which are few unless delivery is stuck. The numbers are the
// database's, so every replica reports the same backlog whichever leads
// the relay.
type Collector struct {
	db     pg.DBTX
	log    *slog.Logger
	topics []string
	depth  *prometheus.Desc
	oldest *prometheus.Desc
	errors prometheus.Counter
}

// NewCollector registers the collector on reg. The topics given are
// always exported, at 0 when idle, so that sums and alerts have a series
// to read (serve names the agents' topic).
func NewCollector(reg prometheus.Registerer, db pg.DBTX, log *slog.Logger, topics ...string) (*Collector, error) {
	if log == nil {
		log = slog.Default()
	}
	c := &Collector{
		db:     db,
		log:    log,
		topics: topics,
		depth: prometheus.NewDesc("unisched_outbox_pending_events",
			"Outbox events not yet delivered (to an agent or the bus), by topic.", []string{"topic"}, nil),
		oldest: prometheus.NewDesc("unisched_outbox_oldest_pending_age_seconds",
			"Age of the oldest undelivered outbox event, by topic (0 when none is pending).", []string{"topic"}, nil),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "unisched_outbox_scrape_errors_total",
			Help: "Scrapes whose outbox query failed (the outbox metrics were left out of them).",
		}),
	}
	if err := metrics.Register(reg, "the outbox metrics", c); err != nil {
		return nil, err
	}
	return c, nil
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.depth
	ch <- c.oldest
	c.errors.Describe(ch)
}

// Collect implements prometheus.Collector: one query per scrape.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	defer c.errors.Collect(ch)
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	b, err := Stats(ctx, c.db, time.Now(), 0)
	if err != nil {
		c.errors.Inc()
		c.log.Warn("reading the outbox backlog for /metrics", "error", err)
		return
	}
	topics := b.Topics
	for _, name := range c.topics {
		if !slices.ContainsFunc(topics, func(t TopicFigures) bool { return t.Topic == name }) {
			topics = append(topics, TopicFigures{Topic: name})
		}
	}
	for _, t := range topics {
		ch <- prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(t.Pending), t.Topic)
		ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, t.OldestPendingAge.Seconds(), t.Topic)
	}
}
