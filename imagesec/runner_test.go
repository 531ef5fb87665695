package imagesec

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/imagedata"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/images"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/unisched/unisched/imagesec/collect"
	"github.com/unisched/unisched/imagesec/store"
	"github.com/unisched/unisched/imagesec/testimage"
	"github.com/unisched/unisched/internal/pgtest"
	"github.com/unisched/unisched/tests/novaharness"
)

func uploadTo(t *testing.T, c *gophercloud.ServiceClient, name, format, path string) string {
	t.Helper()
	ctx := context.Background()
	img, err := images.Create(ctx, c, images.CreateOpts{Name: name, DiskFormat: format, ContainerFormat: "bare"}).Extract()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := imagedata.Upload(ctx, c, img.ID, f).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	return img.ID
}

// TestRunnerJobs runs collect, inspect and publish jobs on a real Glance
// and database: their state, progress and results are in the database;
// a bad image fails its job with the reason and stores nothing; requests
// that cannot run are refused before a job is recorded.
func TestRunnerJobs(t *testing.T) {
	ctx := context.Background()
	im := testimage.ForTest(t)
	db := pgtest.Pool(t)
	g, err := novaharness.StartGlance(ctx, novaharness.GlanceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	c, err := collect.NewClient(ctx, collect.Auth{Endpoint: g.URL})
	if err != nil {
		t.Fatal(err)
	}
	good := uploadTo(t, c, "debian", "qcow2", im.QcowMBR)
	bad := uploadTo(t, c, "truncated", "qcow2", im.Truncate)

	r := NewRunner(RunnerConfig{DB: db, WorkDir: t.TempDir(), Glance: func(context.Context) (*gophercloud.ServiceClient, error) { return c, nil }})
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer r.Stop()

	wait := func(j *store.Job) *store.Job {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
		done, err := r.Wait(wctx, j.ID)
		if err != nil {
			t.Fatal(err)
		}
		return done
	}
	j, err := r.Submit(ctx, store.JobCollect, 0, CollectParams{})
	if err != nil {
		t.Fatal(err)
	}
	if j.State != store.JobQueued || j.Kind != store.JobCollect || j.Runner != r.ID() {
		t.Errorf("submitted: %+v", j)
	}
	j = wait(j)
	var res collect.Result
	if err := json.Unmarshal(j.Result, &res); err != nil || j.State != store.JobSucceeded || res.Inspected != 1 || res.Failed != 1 {
		t.Fatalf("collect job: %+v (%s), %v", j, j.Result, err)
	}
	if j.Progress.Step != "done" || j.Progress.StepsDone != 2 || j.StartedAt == nil || j.FinishedAt == nil {
		t.Errorf("collect job's progress: %+v", j)
	}
	d, err := store.ImageBySource(ctx, db, collect.ImageSource(good))
	if err != nil {
		t.Fatal(err)
	}
	if gi, _ := store.GetGlanceImage(ctx, db, bad); gi == nil || gi.Status != store.GlanceFailed {
		t.Errorf("truncated image's record: %+v", gi)
	}

	// a bad local image: the job fails with the reason, the store is intact
	j, err = r.Submit(ctx, store.JobInspect, 0, InspectParams{Path: im.XFS})
	if err != nil {
		t.Fatal(err)
	}
	j = wait(j)
	if j.State != store.JobFailed || !strings.Contains(j.Error, "filesystem xfs is not supported") {
		t.Errorf("inspect job of the XFS image: %+v", j)
	}
	if list, _ := store.ListImages(ctx, db); len(list) != 1 || list[0].ID != d.ID {
		t.Errorf("store after the failed job: %+v", list)
	}

	// publish a file as a patched image of the collected one
	j, err = r.Submit(ctx, store.JobPublish, d.ID, PublishParams{File: im.Truncate, ParentGlanceID: good, HideParent: true,
		Fixes: []store.Fix{{Name: "bash", From: "1", To: "2"}}})
	if err != nil {
		t.Fatal(err)
	}
	j = wait(j)
	if j.State != store.JobSucceeded || j.GlanceID == "" || j.Progress.Step != "publish" {
		t.Fatalf("publish job: %+v", j)
	}
	if id, err := ResolveImage(ctx, db, good); err != nil || id != j.GlanceID {
		t.Errorf("ResolveImage(%s) = %s, %v; want %s", good, id, err, j.GlanceID)
	}

	// refused before anything is recorded
	before, _ := store.ListJobs(ctx, db, 0)
	for _, tc := range []struct {
		kind   string
		image  int64
		params any
		want   error
	}{
		{"bogus", 0, nil, ErrBadJob},
		{store.JobPublish, 0, PublishParams{File: im.QcowMBR}, ErrBadJob},
		{store.JobPublish, d.ID, nil, ErrBadJob}, // not an upgrade's result
		{store.JobPublish, 999, PublishParams{File: im.QcowMBR}, store.ErrNotFound},
		{store.JobUpgrade, d.ID, nil, ErrBadJob}, // no upgrade stage configured
		{store.JobInspect, 0, map[string]any{"path": "x", "extra": 1}, ErrBadJob},
		{store.JobInspect, 0, nil, ErrBadJob},
	} {
		if _, err := r.Submit(ctx, tc.kind, tc.image, tc.params); !errors.Is(err, tc.want) {
			t.Errorf("Submit(%s, %d, %+v) = %v, want %v", tc.kind, tc.image, tc.params, err, tc.want)
		}
	}
	if after, _ := store.ListJobs(ctx, db, 0); len(after) != len(before) || len(after) != 3 {
		t.Errorf("jobs after refused submits: %d, before %d", len(after), len(before))
	}
	noGlance := NewRunner(RunnerConfig{DB: db})
	_ = noGlance.Start(ctx)
	defer noGlance.Stop()
	if _, err := noGlance.Submit(ctx, store.JobCollect, 0, nil); !errors.Is(err, ErrNoGlance) {
		t.Errorf("collect without glance: %v", err)
	}
}

// TestRunnerInterrupted: a job running when its runner stops is failed
// as interrupted, and a job whose runner went silent is failed by the
// next runner to start.
func TestRunnerInterrupted(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Pool(t)
	d := pgtestImage(t, db)
	started := make(chan struct{})
	r := NewRunner(RunnerConfig{DB: db, Upgrade: func(ctx context.Context, _ int64, _ json.RawMessage, progress func(store.Progress)) (any, int64, error) {
		progress(store.Progress{Step: "upgrade", Message: "working", StepsTotal: 3, StepsDone: 1})
		close(started)
		<-ctx.Done()
		return nil, 0, ctx.Err()
	}})
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	j, err := r.Submit(ctx, store.JobUpgrade, d, nil)
	if err != nil {
		t.Fatal(err)
	}
	<-started
	if running, _ := store.GetJob(ctx, db, j.ID); running.State != store.JobRunning || running.Progress.StepsDone != 1 {
		t.Errorf("while running: %+v", running)
	}
	r.Stop()
	j, _ = store.GetJob(ctx, db, j.ID)
	if j.State != store.JobFailed || j.Error != "interrupted: the server stopped" || j.FinishedAt == nil {
		t.Errorf("after Stop: %+v", j)
	}

	// a runner that died: its job's heartbeat is old
	dead, err := store.CreateJob(ctx, db, store.JobCollect, 0, nil, "gone/1/x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(ctx, `UPDATE imagesec_jobs SET state = 'running', heartbeat_at = now() - interval '5 minutes' WHERE id = $1`, dead.ID); err != nil {
		t.Fatal(err)
	}
	fresh, _ := store.CreateJob(ctx, db, store.JobCollect, 0, nil, "alive/1/y")
	r2 := NewRunner(RunnerConfig{DB: db})
	if err := r2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer r2.Stop()
	if j, _ := store.GetJob(ctx, db, dead.ID); j.State != store.JobFailed || !strings.HasPrefix(j.Error, "interrupted") {
		t.Errorf("silent runner's job: %+v", j)
	}
	if j, _ := store.GetJob(ctx, db, fresh.ID); j.State != store.JobQueued {
		t.Errorf("a live runner's job was touched: %+v", j)
	}
}

// pgtestImage stores a bare image row to attach jobs to.
func pgtestImage(t *testing.T, db *pgxpool.Pool) int64 {
	t.Helper()
	var id int64
	err := db.QueryRow(context.Background(), `INSERT INTO imagesec_images (source, name, checksum, format, size, virtual_size, status)
		VALUES ('file:///x', 'x', 'sha256:00', 'raw', 1, 1, 'inspected') RETURNING id`).Scan(&id)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestPeriodicCollectLeading: the periodic collection submits nothing
// while its replica does not lead, and collects once it does.
func TestPeriodicCollectLeading(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Pool(t)
	dead, err := collect.NewClient(ctx, collect.Auth{Endpoint: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	r := NewRunner(RunnerConfig{DB: db, WorkDir: t.TempDir(), Glance: func(context.Context) (*gophercloud.ServiceClient, error) { return dead, nil }})
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	var leads atomic.Bool
	r.StartPeriodicCollect(20*time.Millisecond, leads.Load)
	time.Sleep(300 * time.Millisecond)
	if jobs, err := store.ListJobs(ctx, db, 0); err != nil || len(jobs) != 0 {
		t.Fatalf("jobs while not leading: %d, %v", len(jobs), err)
	}
	leads.Store(true)
	deadline := time.Now().Add(10 * time.Second)
	for {
		jobs, err := store.ListJobs(ctx, db, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(jobs) > 0 {
			if jobs[0].Kind != store.JobCollect {
				t.Errorf("periodic job: %+v", jobs[0])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no collect job 10 s after leading")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
