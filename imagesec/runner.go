package imagesec

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/gophercloud/gophercloud/v2"

	"github.com/unisched/unisched/imagesec/collect"
	"github.com/unisched/unisched/imagesec/inspect"
	"github.com/unisched/unisched/imagesec/publish"
	"github.com/unisched/unisched/imagesec/store"
	"github.com/unisched/unisched/internal/pg"
)

// ErrBadJob: a job request that cannot run as given (unknown kind, bad
// parameters, an image that is not what the job needs). The API answers
// it with 400.
var ErrBadJob = errors.New("invalid job")

// ErrNoGlance: Glance is not configured (imagesec.glance.*).
var ErrNoGlance = errors.New("glance is not configured (imagesec.glance.endpoint or imagesec.glance.auth_url)")

// UpgradeFunc runs an offline upgrade of image imageID with the job's
// parameters, reporting progress; it returns its result and the image it
// stored. The runner takes it from its configuration, so that the upgrade
// stage plugs in without the runner knowing its options.
type UpgradeFunc func(ctx context.Context, imageID int64, params json.RawMessage, progress func(store.Progress)) (result any, resultImage int64, err error)

// RunnerConfig configures a Runner.
type RunnerConfig struct {
	DB collect.DB
	// Glance returns the image service client; nil: collect and publish
	// jobs fail with ErrNoGlance.
	Glance func(ctx context.Context) (*gophercloud.ServiceClient, error)
	// WorkDir holds downloads and raw copies (default: the temp dir's
	// unisched-imagesec).
	WorkDir     string
	DiskFormats []string
	// Upgrade runs upgrade jobs; nil: UpgradeImage in the sandbox
	// UpgradeEnv gives (both nil refuses upgrade jobs).
	Upgrade    UpgradeFunc
	UpgradeEnv UpgradeEnv
	// Parallelism bounds the jobs running at once (default 2); the others
	// wait queued.
	Parallelism int
	// Heartbeat is how often the runner says it still holds its jobs
	// (default 10 s); a job whose runner has been silent for Silence
	// (default 1 min) is marked failed by the next runner to start.
	Heartbeat, Silence time.Duration
	Logger             *slog.Logger
}

// Runner runs imagesec's long jobs in goroutines, with their state and
// progress in the database, so that any process sees them (the API, the
// CLI's jobs --watch). A job is cancelled when the runner stops and is
// then marked failed; a runner that died is noticed by its silence.
type Runner struct {
	cfg RunnerConfig
	id  string
	log *slog.Logger
	sem chan struct{}

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	done   map[int64]chan struct{}

	metrics runnerMetrics // metrics.go
}

// NewRunner builds a runner; Start it before submitting.
func NewRunner(cfg RunnerConfig) *Runner {
	if cfg.Parallelism <= 0 {
		cfg.Parallelism = 2
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 10 * time.Second
	}
	if cfg.Silence <= 0 {
		cfg.Silence = time.Minute
	}
	if cfg.WorkDir == "" {
		cfg.WorkDir = filepath.Join(os.TempDir(), "unisched-imagesec")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	host, _ := os.Hostname()
	r := &Runner{cfg: cfg, log: cfg.Logger, sem: make(chan struct{}, cfg.Parallelism), done: map[int64]chan struct{}{},
		id: fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b)), metrics: newRunnerMetrics()}
	if r.cfg.Upgrade == nil && r.cfg.UpgradeEnv != nil {
		r.cfg.Upgrade = r.upgradeFunc(r.cfg.UpgradeEnv)
	}
	return r
}

// ID names the runner in its jobs' runner column.
func (r *Runner) ID() string { return r.id }

// Start marks the jobs of silent runners failed and starts the heartbeat.
func (r *Runner) Start(ctx context.Context) error {
	r.ctx, r.cancel = context.WithCancel(context.WithoutCancel(ctx))
	n, err := store.FailInterrupted(ctx, r.cfg.DB, "", r.cfg.Silence, "interrupted: the process running it stopped")
	if err != nil {
		return err
	}
	if n > 0 {
		r.log.Warn("imagesec: marked interrupted jobs failed", "jobs", n)
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		t := time.NewTicker(r.cfg.Heartbeat)
		defer t.Stop()
		for {
			select {
			case <-r.ctx.Done():
				return
			case <-t.C:
				if err := store.Heartbeat(r.ctx, r.cfg.DB, r.id); err != nil && r.ctx.Err() == nil {
					r.log.Warn("imagesec: job heartbeat", "err", err)
				}
			}
		}
	}()
	return nil
}

// Stop cancels the running jobs, waits for them and marks what did not
// finish failed.
func (r *Runner) Stop() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := store.FailInterrupted(ctx, r.cfg.DB, r.id, 100*365*24*time.Hour, "interrupted: the server stopped"); err != nil {
		r.log.Warn("imagesec: marking interrupted jobs", "err", err)
	}
}

// CollectParams are a collect job's parameters.
type CollectParams struct {
	// KeepFiles leaves the downloaded images in the work dir.
	KeepFiles bool `json:"keep_files,omitempty"`
}

// InspectParams are an inspect job's: a local image file.
type InspectParams struct {
	Path string `json:"path"`
}

// AdviseParams are an advise job's: the fix sources (AdviseOptions), at
// least one.
type AdviseParams struct {
	Feed       string `json:"feed,omitempty"`
	Advisories string `json:"advisories,omitempty"`
}

// PublishParams are a publish job's. With the job's image id (an
// upgrade's result) the file, the parent and the fixes come from the
// upgrade's record; File and ParentGlanceID publish any file instead.
type PublishParams struct {
	File           string      `json:"file,omitempty"`
	ParentGlanceID string      `json:"parent_glance_id,omitempty"`
	Name           string      `json:"name,omitempty"`
	Family         string      `json:"family,omitempty"`
	HideParent     bool        `json:"hide_parent,omitempty"`
	Fixes          []store.Fix `json:"fixes,omitempty"`
	Advisories     []string    `json:"advisories,omitempty"`
}

// Submit records a job and starts it (it waits queued while Parallelism
// jobs run). Bad parameters are refused before anything is recorded.
func (r *Runner) Submit(ctx context.Context, kind string, imageID int64, params any) (*store.Job, error) {
	if r.ctx == nil {
		return nil, errors.New("imagesec: job runner not started")
	}
	raw, err := json.Marshal(params)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadJob, err)
	}
	if params == nil || string(raw) == "null" {
		raw = []byte("{}")
	}
	if reason := pg.JSONBRefusal(raw); reason != "" {
		// jobs keep their parameters in jsonb
		return nil, fmt.Errorf("%w: a string of the parameters %s", ErrBadJob, reason)
	}
	if err := r.check(ctx, kind, imageID, raw); err != nil {
		return nil, err
	}
	j, err := store.CreateJob(ctx, r.cfg.DB, kind, imageID, json.RawMessage(raw), r.id)
	if err != nil {
		return nil, err
	}
	done := make(chan struct{})
	r.mu.Lock()
	r.done[j.ID] = done
	r.mu.Unlock()
	r.metrics.queued.WithLabelValues(kind).Inc()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer func() {
			r.mu.Lock()
			delete(r.done, j.ID)
			r.mu.Unlock()
			close(done)
		}()
		r.run(j.ID, kind, imageID, raw)
	}()
	return j, nil
}

// check refuses what cannot run, before a job is recorded.
func (r *Runner) check(ctx context.Context, kind string, imageID int64, raw []byte) error {
	switch kind {
	case store.JobCollect:
		var p CollectParams
		if err := strictJSON(raw, &p); err != nil {
			return err
		}
		if r.cfg.Glance == nil {
			return ErrNoGlance
		}
	case store.JobInspect:
		var p InspectParams
		if err := strictJSON(raw, &p); err != nil {
			return err
		}
		if p.Path == "" {
			return fmt.Errorf("%w: inspect needs a path", ErrBadJob)
		}
	case store.JobAdvise:
		var p AdviseParams
		if err := strictJSON(raw, &p); err != nil {
			return err
		}
		if p.Feed == "" && p.Advisories == "" {
			return fmt.Errorf("%w: advise needs a feed and/or an advisories file", ErrBadJob)
		}
		if _, err := store.GetImage(ctx, r.cfg.DB, imageID); err != nil {
			return err
		}
	case store.JobUpgrade:
		if r.cfg.Upgrade == nil {
			return fmt.Errorf("%w: offline upgrade is not available in this server", ErrBadJob)
		}
		d, err := store.GetImage(ctx, r.cfg.DB, imageID)
		if err != nil {
			return err
		}
		if r.cfg.UpgradeEnv != nil {
			var p UpgradeParams
			if err := strictJSON(raw, &p); err != nil {
				return err
			}
			if strings.HasPrefix(d.Source, "glance:") && r.cfg.Glance == nil {
				return ErrNoGlance
			}
		}
	case store.JobPublish:
		var p PublishParams
		if err := strictJSON(raw, &p); err != nil {
			return err
		}
		if r.cfg.Glance == nil {
			return ErrNoGlance
		}
		if imageID == 0 && (p.File == "" || p.ParentGlanceID == "") {
			return fmt.Errorf("%w: publish needs an upgraded image, or a file and a parent_glance_id", ErrBadJob)
		}
		if imageID != 0 {
			if _, err := store.GetImage(ctx, r.cfg.DB, imageID); err != nil {
				return err
			}
			if p.File == "" {
				if _, err := store.UpgradeByResult(ctx, r.cfg.DB, imageID); err != nil {
					return fmt.Errorf("%w: %v", ErrBadJob, err)
				}
			}
		}
	default:
		return fmt.Errorf("%w: unknown kind %q (collect, inspect, advise, upgrade, publish)", ErrBadJob, kind)
	}
	return nil
}

func strictJSON(raw []byte, dst any) error {
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return fmt.Errorf("%w: parameters: %v", ErrBadJob, err)
	}
	return nil
}

// Wait returns the job once it has finished (or ctx ends).
func (r *Runner) Wait(ctx context.Context, id int64) (*store.Job, error) {
	r.mu.Lock()
	done := r.done[id]
	r.mu.Unlock()
	if done != nil {
		select {
		case <-done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return store.GetJob(ctx, r.cfg.DB, id)
	}
	for {
		j, err := store.GetJob(ctx, r.cfg.DB, id)
		if err != nil || j.Done() {
			return j, err
		}
		select {
		case <-time.After(250 * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Go runs fn in the background with the runner's context, for work that
// lives as long as the runner (its periodic collection's campaign for the
// lead): Stop cancels the context and waits for fn to return.
func (r *Runner) Go(fn func(ctx context.Context)) {
	if r.ctx == nil {
		return
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		fn(r.ctx)
	}()
}

// CollectLockKey is the session advisory lock whose holder, of the serve
// replicas of one database, runs the periodic collection ("unisimgc").
const CollectLockKey int64 = 0x756e6973_696d6763

// StartPeriodicCollect submits a collect job every interval (none while
// one of this runner's collections still runs) until the runner stops.
// With leading set, a tick collects only while it reports true: of
// several replicas, only the leader collects, rather than each one
// downloading the same images.
func (r *Runner) StartPeriodicCollect(interval time.Duration, leading func() bool) {
	if interval <= 0 || r.ctx == nil {
		return
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		var last int64
		for {
			select {
			case <-r.ctx.Done():
				return
			case <-t.C:
			}
			if leading != nil && !leading() {
				continue
			}
			r.mu.Lock()
			_, running := r.done[last]
			r.mu.Unlock()
			if running {
				continue
			}
			j, err := r.Submit(r.ctx, store.JobCollect, 0, CollectParams{})
			if err != nil {
				if r.ctx.Err() == nil {
					r.log.Warn("imagesec: periodic collect", "err", err)
				}
				continue
			}
			last = j.ID
		}
	}()
}

// run executes one job: waits for a slot, marks it running, reports its
// progress at most every half second (and at each new step), and records
// how it ended.
func (r *Runner) run(id int64, kind string, imageID int64, raw []byte) {
	ctx := r.ctx
	m := r.metrics
	select {
	case r.sem <- struct{}{}:
		m.queued.WithLabelValues(kind).Dec()
	case <-ctx.Done():
		m.queued.WithLabelValues(kind).Dec()
		m.jobs.WithLabelValues(kind, resultInterrupted).Inc()
		return // Stop marks it failed
	}
	defer func() { <-r.sem }()
	m.running.WithLabelValues(kind).Inc()
	defer m.running.WithLabelValues(kind).Dec()
	if err := store.StartJob(ctx, r.cfg.DB, id); err != nil {
		r.log.Warn("imagesec: starting job", "job", id, "err", err)
		m.jobs.WithLabelValues(kind, resultFailed).Inc()
		return
	}
	var mu sync.Mutex
	var last time.Time
	var lastStep string
	progress := func(p store.Progress) {
		mu.Lock()
		defer mu.Unlock()
		if p.Step == lastStep && time.Since(last) < 500*time.Millisecond && (p.BytesTotal == 0 || p.BytesDone < p.BytesTotal) {
			return
		}
		last, lastStep = time.Now(), p.Step
		if err := store.UpdateProgress(ctx, r.cfg.DB, id, p); err != nil && ctx.Err() == nil {
			r.log.Warn("imagesec: job progress", "job", id, "err", err)
		}
	}
	t0 := time.Now()
	out := r.execute(ctx, kind, imageID, raw, progress)
	took := time.Since(t0)
	if ctx.Err() != nil && out.Err != nil {
		m.jobs.WithLabelValues(kind, resultInterrupted).Inc()
		return // stopping: Stop marks it failed as interrupted
	}
	m.duration.WithLabelValues(kind).Observe(took.Seconds())
	if out.Err != nil {
		m.jobs.WithLabelValues(kind, resultFailed).Inc()
		r.log.Warn("imagesec: job failed", "job", id, "kind", kind, "err", out.Err, "took", took)
	} else {
		m.jobs.WithLabelValues(kind, resultSucceeded).Inc()
		r.log.Info("imagesec: job done", "job", id, "kind", kind, "took", took)
	}
	if err := store.FinishJob(context.WithoutCancel(ctx), r.cfg.DB, id, out); err != nil {
		r.log.Error("imagesec: recording the end of a job", "job", id, "err", err)
	}
}

func (r *Runner) glance(ctx context.Context) (*gophercloud.ServiceClient, error) {
	if r.cfg.Glance == nil {
		return nil, ErrNoGlance
	}
	return r.cfg.Glance(ctx)
}

func (r *Runner) execute(ctx context.Context, kind string, imageID int64, raw []byte, progress func(store.Progress)) store.Outcome {
	switch kind {
	case store.JobCollect:
		var p CollectParams
		_ = json.Unmarshal(raw, &p)
		c, err := r.glance(ctx)
		if err != nil {
			return store.Outcome{Err: err}
		}
		res, err := collect.Collect(ctx, r.cfg.DB, c, collect.Options{WorkDir: filepath.Join(r.cfg.WorkDir, "collect"),
			DiskFormats: r.cfg.DiskFormats, KeepFiles: p.KeepFiles, Progress: progress})
		return store.Outcome{Result: res, Err: err}
	case store.JobInspect:
		var p InspectParams
		_ = json.Unmarshal(raw, &p)
		d, err := InspectFile(ctx, r.cfg.DB, p.Path, inspect.Options{WorkDir: r.cfg.WorkDir, Progress: func(e inspect.Event) {
			progress(store.Progress{Step: "inspect", Message: e.Stage + " " + e.Message})
		}})
		if err != nil {
			return store.Outcome{Err: err}
		}
		return store.Outcome{Result: d, ResultImage: d.ID}
	case store.JobAdvise:
		var p AdviseParams
		_ = json.Unmarshal(raw, &p)
		progress(store.Progress{Step: "advise", Message: "reading the fix sources"})
		plan, err := AdviseImage(ctx, r.cfg.DB, imageID, AdviseOptions{Feed: p.Feed, Advisories: p.Advisories})
		return store.Outcome{Result: plan, Err: err}
	case store.JobUpgrade:
		res, img, err := r.cfg.Upgrade(ctx, imageID, raw, progress)
		return store.Outcome{Result: res, ResultImage: img, Err: err}
	case store.JobPublish:
		var p PublishParams
		_ = json.Unmarshal(raw, &p)
		req, err := r.publishRequest(ctx, imageID, p)
		if err != nil {
			return store.Outcome{Err: err}
		}
		c, err := r.glance(ctx)
		if err != nil {
			return store.Outcome{Err: err}
		}
		req.Progress = progress
		res, err := publish.Publish(ctx, r.cfg.DB, c, req)
		out := store.Outcome{Result: res, Err: err}
		if res != nil {
			out.GlanceID = res.GlanceID
		}
		return out
	}
	return store.Outcome{Err: fmt.Errorf("%w: unknown kind %q", ErrBadJob, kind)}
}

// publishRequest fills a publish from the upgrade that made imageID: its
// file, its parent's Glance id and what it applied.
func (r *Runner) publishRequest(ctx context.Context, imageID int64, p PublishParams) (publish.Request, error) {
	req := publish.Request{File: p.File, ParentGlanceID: p.ParentGlanceID, Name: p.Name, Family: p.Family,
		HideParent: p.HideParent, Fixes: p.Fixes, Advisories: p.Advisories, ImageID: imageID}
	if imageID == 0 || p.File != "" {
		return req, nil
	}
	u, err := store.UpgradeByResult(ctx, r.cfg.DB, imageID)
	if err != nil {
		return req, err
	}
	parent, err := store.GetImage(ctx, r.cfg.DB, u.ImageID)
	if err != nil {
		return req, err
	}
	req.File, req.ParentImageID = u.Path, u.ImageID
	if req.ParentGlanceID == "" {
		id, ok := strings.CutPrefix(parent.Source, "glance:")
		if !ok {
			return req, fmt.Errorf("%w: image %d was upgraded from %s, not from a Glance image: give parent_glance_id", ErrBadJob, imageID, parent.Source)
		}
		req.ParentGlanceID = id
	}
	if req.Fixes == nil {
		seen := map[string]bool{}
		for _, a := range u.Applied {
			req.Fixes = append(req.Fixes, store.Fix{Name: a.Name, From: a.From, To: a.To})
			for _, ref := range a.Advisories {
				if !seen[ref.ID] {
					seen[ref.ID] = true
					req.Advisories = append(req.Advisories, ref.ID)
				}
			}
		}
	}
	return req, nil
}
