package main

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/unisched/unisched/internal/config"
	"github.com/unisched/unisched/internal/metrics"
	"github.com/unisched/unisched/internal/pgtest"
)

// TestStartImagesecMetrics: serve's imagesec wiring exports the image
// pipeline's metrics on the registry it is given, and a second start on
// the same registry is refused rather than silently sharing series.
func TestStartImagesecMetrics(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Pool(t)
	t.Setenv("UNISCHED_CONFIG", "")
	cfg, err := config.Load("")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Imagesec.WorkDir = t.TempDir()
	reg := metrics.NewRegistry()
	log := slog.New(slog.DiscardHandler)
	next := http.NotFoundHandler()
	r, h, err := startImagesec(ctx, pool, cfg, log, reg, next)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	if h == nil {
		t.Fatal("no handler")
	}
	rec := httptest.NewRecorder()
	metrics.Handler(reg).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{`unisched_image_jobs_total{kind="upgrade",result="succeeded"} 0`,
		`unisched_image_jobs_running{kind="collect"} 0`, `unisched_image_jobs_queued{kind="advise"} 0`,
		`unisched_image_job_duration_seconds_count{kind="publish"} 0`, "unisched_images 0", "unisched_images_outdated 0",
		"unisched_images_outdated_packages 0"} {
		if !strings.Contains(rec.Body.String(), want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if r2, _, err := startImagesec(ctx, pool, cfg, log, reg, next); err == nil {
		r2.Stop()
		t.Error("a second imagesec on the same registry was accepted")
	}
}
