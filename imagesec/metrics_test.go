package imagesec

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/unisched/unisched/imagesec/store"
	"github.com/unisched/unisched/imagesec/testimage"
	"github.com/unisched/unisched/internal/pgtest"
)

// TestRunnerMetrics scrapes the pipeline's metrics over HTTP while real
// jobs run on a real database: inspect, advise (succeeded and failed), an
// upgrade held running and one queued behind it, then the same after
// they ended, and the inventory's outdated packages before and after the
// image is upgraded.
func TestRunnerMetrics(t *testing.T) {
	ctx := context.Background()
	im := testimage.ForTest(t)
	db := pgtest.Pool(t)
	release := make(chan struct{})
	started := make(chan struct{}, 2)
	r := NewRunner(RunnerConfig{DB: db, WorkDir: t.TempDir(), Parallelism: 1,
		Upgrade: func(ctx context.Context, id int64, _ json.RawMessage, _ func(store.Progress)) (any, int64, error) {
			started <- struct{}{}
			select {
			case <-release:
			case <-ctx.Done():
				return nil, 0, ctx.Err()
			}
			// what a successful upgrade records (UpgradeImage's store.SaveUpgrade)
			_, err := db.Exec(ctx, `INSERT INTO imagesec_upgrades (image_id, status, started_at) VALUES ($1, 'done', now())`, id)
			return map[string]any{}, 0, err
		}})
	reg := prometheus.NewRegistry()
	if err := r.RegisterMetrics(reg); err != nil {
		t.Fatal(err)
	}
	if err := r.RegisterMetrics(prometheus.NewRegistry()); err != nil {
		t.Errorf("a second registry: %v", err) // a runner's metrics are its own, not global
	}
	if err := r.RegisterMetrics(reg); err == nil || !strings.Contains(err.Error(), "registering the image pipeline's metrics") {
		t.Errorf("registering twice on one registry: %v", err)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	scrape := func() string {
		t.Helper()
		resp, err := http.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("scrape: %d %s", resp.StatusCode, b)
		}
		return string(b)
	}
	expect := func(when, text string, want map[string]float64) {
		t.Helper()
		for series, v := range want {
			if line := fmt.Sprintf("%s %g\n", series, v); !strings.Contains(text, line) {
				t.Errorf("%s: no %q in\n%s", when, line, grep(text, "unisched_image"))
			}
		}
	}
	run := func(kind string, image int64, params any) *store.Job {
		t.Helper()
		j, err := r.Submit(ctx, kind, image, params)
		if err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		if j, err = r.Wait(wctx, j.ID); err != nil {
			t.Fatal(err)
		}
		return j
	}

	expect("before any job", scrape(), map[string]float64{
		`unisched_image_jobs_total{kind="advise",result="succeeded"}`: 0,
		`unisched_image_jobs_running{kind="upgrade"}`:                 0,
		`unisched_image_job_duration_seconds_count{kind="inspect"}`:   0,
		`unisched_images`:                   0,
		`unisched_images_outdated_packages`: 0,
	})

	j := run(store.JobInspect, 0, InspectParams{Path: im.QcowMBR})
	if j.State != store.JobSucceeded {
		t.Fatalf("inspect job: %+v", j)
	}
	image := j.ResultImage
	if j := run(store.JobAdvise, image, AdviseParams{Feed: "file://" + im.Feed.Dir, Advisories: im.Feed.Advisories}); j.State != store.JobSucceeded {
		t.Fatalf("advise job: %+v", j)
	}
	if j := run(store.JobAdvise, image, AdviseParams{Feed: "file:///nonexistent"}); j.State != store.JobFailed {
		t.Fatalf("advise job with a missing feed: %+v", j)
	}
	text := scrape()
	expect("after inspect and advise", text, map[string]float64{
		`unisched_image_jobs_total{kind="inspect",result="succeeded"}`: 1,
		`unisched_image_jobs_total{kind="advise",result="succeeded"}`:  1,
		`unisched_image_jobs_total{kind="advise",result="failed"}`:     1,
		`unisched_image_jobs_total{kind="collect",result="failed"}`:    0,
		`unisched_image_job_duration_seconds_count{kind="inspect"}`:    1,
		`unisched_image_job_duration_seconds_count{kind="advise"}`:     2,
		`unisched_image_jobs_running{kind="inspect"}`:                  0,
		`unisched_images`:                   1,
		`unisched_images_outdated`:          1,
		`unisched_images_outdated_packages`: float64(len(im.Feed.Fixes)),
	})
	if !strings.Contains(text, `unisched_image_job_duration_seconds_bucket{kind="inspect",le="+Inf"} 1`) {
		t.Errorf("duration histogram:\n%s", grep(text, "duration_seconds_bucket{kind=\"inspect\""))
	}

	// one upgrade running, one queued behind it (parallelism 1)
	j1, err := r.Submit(ctx, store.JobUpgrade, image, nil)
	if err != nil {
		t.Fatal(err)
	}
	<-started
	j2, err := r.Submit(ctx, store.JobUpgrade, image, nil)
	if err != nil {
		t.Fatal(err)
	}
	expect("while upgrading", scrape(), map[string]float64{
		`unisched_image_jobs_running{kind="upgrade"}`: 1,
		`unisched_image_jobs_queued{kind="upgrade"}`:  1,
	})
	release <- struct{}{}
	<-started
	release <- struct{}{}
	for _, j := range []*store.Job{j1, j2} {
		if j, err := r.Wait(ctx, j.ID); err != nil || j.State != store.JobSucceeded {
			t.Fatalf("upgrade job: %+v, %v", j, err)
		}
	}
	expect("after the upgrades", scrape(), map[string]float64{
		`unisched_image_jobs_running{kind="upgrade"}`:                  0,
		`unisched_image_jobs_queued{kind="upgrade"}`:                   0,
		`unisched_image_jobs_total{kind="upgrade",result="succeeded"}`: 2,
		`unisched_images_outdated`:                                     0,
		`unisched_images_outdated_packages`:                            0,
	})
}

// grep keeps the lines of text that contain s (for failure messages).
func grep(text, s string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
