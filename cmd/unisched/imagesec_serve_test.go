package main

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

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
	cfg.Imagesec.CollectInterval = time.Hour // campaigns for the collection's lead
	reg := metrics.NewRegistry()
	log := slog.New(slog.DiscardHandler)
	next := http.NotFoundHandler()
	r, h, err := startImagesec(ctx, pool, cfg, log, reg, newLeadership(cfg.Leader, reg, log), nil, next)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	if h == nil {
		t.Fatal("no handler")
	}
	// the only replica takes the periodic collection's lead
	var rec *httptest.ResponseRecorder
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		rec = httptest.NewRecorder()
		metrics.Handler(reg).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		if strings.Contains(rec.Body.String(), `unisched_leader{role="imagesec collect"} 1`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no lead for the periodic collection:\n%s", rec.Body.String())
		}
	}
	for _, want := range []string{`unisched_image_jobs_total{kind="upgrade",result="succeeded"} 0`,
		`unisched_image_jobs_running{kind="collect"} 0`, `unisched_image_jobs_queued{kind="advise"} 0`,
		`unisched_image_job_duration_seconds_count{kind="publish"} 0`, "unisched_images 0", "unisched_images_outdated 0",
		"unisched_images_outdated_packages 0"} {
		if !strings.Contains(rec.Body.String(), want+"\n") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if r2, _, err := startImagesec(ctx, pool, cfg, log, reg, newLeadership(cfg.Leader, reg, log), nil, next); err == nil {
		r2.Stop()
		t.Error("a second imagesec on the same registry was accepted")
	}
}
