package imagesec

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/unisched/unisched/imagesec/store"
	"github.com/unisched/unisched/internal/metrics"
	"github.com/unisched/unisched/internal/pg"
)

// Job results, the result label of unisched_image_jobs_total.
const (
	resultSucceeded   = "succeeded"
	resultFailed      = "failed"
	resultInterrupted = "interrupted" // the runner stopped first
)

var jobKinds = []string{store.JobCollect, store.JobInspect, store.JobAdvise, store.JobUpgrade, store.JobPublish}

// runnerMetrics is the image pipeline's progress as this runner sees it:
// the jobs it ran and runs. They exist whether or not they are registered
// (the CLI's runners register nothing), so the runner never checks.
type runnerMetrics struct {
	jobs     *prometheus.CounterVec
	running  *prometheus.GaugeVec
	queued   *prometheus.GaugeVec
	duration *prometheus.HistogramVec
}

func newRunnerMetrics() runnerMetrics {
	m := runnerMetrics{
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "unisched_image_jobs_total",
			Help: "Image jobs (collect, inspect, advise, upgrade, publish) this process finished, by kind and result (succeeded, failed, interrupted).",
		}, []string{"kind", "result"}),
		running: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "unisched_image_jobs_running",
			Help: "Image jobs this process is running, by kind.",
		}, []string{"kind"}),
		queued: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "unisched_image_jobs_queued",
			Help: "Image jobs of this process waiting for a slot (imagesec.job_parallelism), by kind.",
		}, []string{"kind"}),
		// From seconds (advise, inspect of a small image) to the better
		// part of an hour (collect or upgrade of large images).
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "unisched_image_job_duration_seconds",
			Help:    "Run time of the image jobs this process finished (from start, not from submission), by kind.",
			Buckets: []float64{.1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600},
		}, []string{"kind"}),
	}
	// every series at 0 from the start rather than absent until its
	// first job
	for _, k := range jobKinds {
		for _, res := range []string{resultSucceeded, resultFailed, resultInterrupted} {
			m.jobs.WithLabelValues(k, res)
		}
	}
	metrics.Touch(m.running, jobKinds...)
	metrics.Touch(m.queued, jobKinds...)
	metrics.Touch(m.duration, jobKinds...)
	return m
}

// inventoryCollector reads the stored inventory at each scrape: the
// images and the advice not yet acted on are the database's, whichever
// process (serve, the CLI) advised or upgraded, so they are read rather
// than counted. Every replica exports the same values: aggregate with
// max, not sum.
type inventoryCollector struct {
	db                             pg.DBTX
	log                            *slog.Logger
	images, outdated, outdatedPkgs *prometheus.Desc
}

func newInventoryCollector(db pg.DBTX, log *slog.Logger) *inventoryCollector {
	return &inventoryCollector{db: db, log: log,
		images: prometheus.NewDesc("unisched_images",
			"Images in the image security inventory.", nil, nil),
		outdated: prometheus.NewDesc("unisched_images_outdated",
			"Images with advised upgrades that no successful upgrade has applied since.", nil, nil),
		outdatedPkgs: prometheus.NewDesc("unisched_images_outdated_packages",
			"Advised package upgrades not yet applied, summed over the outdated images.", nil, nil),
	}
}

func (c *inventoryCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.images
	ch <- c.outdated
	ch <- c.outdatedPkgs
}

// Collect leaves the inventory out of a scrape when the database does
// not answer within a few seconds (logged): the rest of /metrics still
// serves, and the gap is what the operator sees.
func (c *inventoryCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	inv, err := store.GetInventory(ctx, c.db)
	if err != nil {
		c.log.Warn("imagesec: metrics: reading the inventory", "err", err)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.images, prometheus.GaugeValue, float64(inv.Images))
	ch <- prometheus.MustNewConstMetric(c.outdated, prometheus.GaugeValue, float64(inv.Outdated))
	ch <- prometheus.MustNewConstMetric(c.outdatedPkgs, prometheus.GaugeValue, float64(inv.OutdatedPackages))
}

// RegisterMetrics exports the image pipeline's progress on reg (serve's
// registry): unisched_image_jobs_total{kind,result},
// unisched_image_jobs_running{kind}, unisched_image_jobs_queued{kind},
// unisched_image_job_duration_seconds{kind}, and the inventory read at
// each scrape: unisched_images, unisched_images_outdated,
// unisched_images_outdated_packages.
func (r *Runner) RegisterMetrics(reg prometheus.Registerer) error {
	return metrics.Register(reg, "the image pipeline's metrics", r.metrics.jobs, r.metrics.running, r.metrics.queued,
		r.metrics.duration, newInventoryCollector(r.cfg.DB, r.log))
}
