package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/unisched/unisched/internal/pg"
)

// ErrJobNotFound: no job with that id.
var ErrJobNotFound = errors.New("job not found")

// Job kinds and states (imagesec_jobs).
const (
	JobCollect = "collect"
	JobInspect = "inspect"
	JobAdvise  = "advise"
	JobUpgrade = "upgrade"
	JobPublish = "publish"

	JobQueued    = "queued"
	JobRunning   = "running"
	JobSucceeded = "succeeded"
	JobFailed    = "failed"
)

// Progress is how far a job is.
type Progress struct {
	Step       string `json:"step"`
	Message    string `json:"message"`
	BytesDone  int64  `json:"bytes_done"`
	BytesTotal int64  `json:"bytes_total"`
	StepsDone  int    `json:"steps_done"`
	StepsTotal int    `json:"steps_total"`
}

// Job is one row of imagesec_jobs.
type Job struct {
	ID          int64           `json:"id"`
	Kind        string          `json:"kind"`
	State       string          `json:"state"`
	ImageID     int64           `json:"image_id,omitempty"`
	ResultImage int64           `json:"result_image_id,omitempty"`
	GlanceID    string          `json:"glance_id,omitempty"`
	Params      json.RawMessage `json:"params"`
	Result      json.RawMessage `json:"result"`
	Progress    Progress        `json:"progress"`
	Error       string          `json:"error,omitempty"`
	Runner      string          `json:"runner,omitempty"`
	CreatedAt   time.Time       `json:"created_at"`
	StartedAt   *time.Time      `json:"started_at,omitempty"`
	FinishedAt  *time.Time      `json:"finished_at,omitempty"`
	UpdatedAt   time.Time       `json:"updated_at"`
}

// Done reports whether the job has finished either way.
func (j *Job) Done() bool { return j.State == JobSucceeded || j.State == JobFailed }

const selectJobs = `SELECT id, kind, state, coalesce(image_id, 0), coalesce(result_image, 0), glance_id,
	params, result, step, message, bytes_done, bytes_total, steps_done, steps_total, error, runner,
	created_at, started_at, finished_at, updated_at FROM imagesec_jobs`

func scanJob(row pgx.Row) (*Job, error) {
	var j Job
	var params, result []byte
	p := &j.Progress
	err := row.Scan(&j.ID, &j.Kind, &j.State, &j.ImageID, &j.ResultImage, &j.GlanceID, &params, &result,
		&p.Step, &p.Message, &p.BytesDone, &p.BytesTotal, &p.StepsDone, &p.StepsTotal, &j.Error, &j.Runner,
		&j.CreatedAt, &j.StartedAt, &j.FinishedAt, &j.UpdatedAt)
	j.Params, j.Result = params, result
	return &j, err
}

func nullID(id int64) *int64 {
	if id == 0 {
		return nil
	}
	return &id
}

// CreateJob queues a job held by runner.
func CreateJob(ctx context.Context, db pg.DBTX, kind string, imageID int64, params any, runner string) (*Job, error) {
	b, err := json.Marshal(params)
	if err != nil {
		return nil, fmt.Errorf("encoding job parameters: %w", err)
	}
	if params == nil {
		b = []byte("{}")
	}
	j, err := scanJob(db.QueryRow(ctx, `WITH j AS (INSERT INTO imagesec_jobs (kind, state, image_id, params, runner, heartbeat_at)
		VALUES ($1, 'queued', $2, $3, $4, now()) RETURNING *) `+selectJobsFrom("j"), kind, nullID(imageID), b, runner))
	if err != nil {
		return nil, fmt.Errorf("creating %s job: %w", kind, err)
	}
	return j, nil
}

func selectJobsFrom(table string) string {
	return `SELECT id, kind, state, coalesce(image_id, 0), coalesce(result_image, 0), glance_id,
	params, result, step, message, bytes_done, bytes_total, steps_done, steps_total, error, runner,
	created_at, started_at, finished_at, updated_at FROM ` + table
}

// StartJob marks a queued job running.
func StartJob(ctx context.Context, db pg.DBTX, id int64) error {
	_, err := db.Exec(ctx, `UPDATE imagesec_jobs SET state = 'running', started_at = now(), heartbeat_at = now(),
		updated_at = now() WHERE id = $1 AND state = 'queued'`, id)
	if err != nil {
		return fmt.Errorf("starting job %d: %w", id, err)
	}
	return nil
}

// UpdateProgress records a running job's progress (and is its heartbeat).
func UpdateProgress(ctx context.Context, db pg.DBTX, id int64, p Progress) error {
	_, err := db.Exec(ctx, `UPDATE imagesec_jobs SET step = $2, message = $3, bytes_done = $4, bytes_total = $5,
		steps_done = $6, steps_total = $7, heartbeat_at = now(), updated_at = now()
		WHERE id = $1 AND state = 'running'`, id, p.Step, p.Message, p.BytesDone, p.BytesTotal, p.StepsDone, p.StepsTotal)
	if err != nil {
		return fmt.Errorf("recording progress of job %d: %w", id, err)
	}
	return nil
}

// Outcome is what a finished job produced.
type Outcome struct {
	Result      any
	ResultImage int64
	GlanceID    string
	Err         error
}

// FinishJob marks a job succeeded (o.Err nil) or failed with the error.
// A job already finished (marked failed as interrupted meanwhile) is left
// as it is.
func FinishJob(ctx context.Context, db pg.DBTX, id int64, o Outcome) error {
	state, msg := JobSucceeded, ""
	if o.Err != nil {
		state, msg = JobFailed, o.Err.Error()
	}
	result := []byte("{}")
	if o.Result != nil {
		b, err := json.Marshal(o.Result)
		if err != nil {
			return fmt.Errorf("encoding the result of job %d: %w", id, err)
		}
		result = b
	}
	_, err := db.Exec(ctx, `UPDATE imagesec_jobs SET state = $2, error = $3, result = $4,
		result_image = coalesce($5, result_image), glance_id = CASE WHEN $6 = '' THEN glance_id ELSE $6 END,
		finished_at = now(), updated_at = now() WHERE id = $1 AND state IN ('queued', 'running')`,
		id, state, msg, result, nullID(o.ResultImage), o.GlanceID)
	if err != nil {
		return fmt.Errorf("finishing job %d: %w", id, err)
	}
	return nil
}

// GetJob returns one job; ErrJobNotFound when there is none.
func GetJob(ctx context.Context, db pg.DBTX, id int64) (*Job, error) {
	j, err := scanJob(db.QueryRow(ctx, selectJobs+` WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("job %d: %w", id, ErrJobNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading job %d: %w", id, err)
	}
	return j, nil
}

// ListJobs returns the newest jobs first, at most limit (all when <= 0).
func ListJobs(ctx context.Context, db pg.DBTX, limit int) ([]*Job, error) {
	q := selectJobs + ` ORDER BY id DESC`
	if limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", limit)
	}
	rows, err := db.Query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("listing jobs: %w", err)
	}
	jobs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Job, error) { return scanJob(r) })
	if err != nil {
		return nil, fmt.Errorf("listing jobs: %w", err)
	}
	return jobs, nil
}

// Heartbeat says runner still holds its active jobs.
func Heartbeat(ctx context.Context, db pg.DBTX, runner string) error {
	_, err := db.Exec(ctx, `UPDATE imagesec_jobs SET heartbeat_at = now()
		WHERE runner = $1 AND state IN ('queued', 'running')`, runner)
	if err != nil {
		return fmt.Errorf("job heartbeat: %w", err)
	}
	return nil
}

// FailInterrupted marks failed the active jobs of runner (when not "")
// and those whose runner has been silent for longer than silence: their
// process stopped or died while they ran. It returns how many it marked.
func FailInterrupted(ctx context.Context, db pg.DBTX, runner string, silence time.Duration, reason string) (int64, error) {
	tag, err := db.Exec(ctx, `UPDATE imagesec_jobs SET state = 'failed', error = $3, finished_at = now(), updated_at = now()
		WHERE state IN ('queued', 'running')
		  AND (($1 <> '' AND runner = $1) OR heartbeat_at IS NULL OR heartbeat_at < now() - make_interval(secs => $2))`,
		runner, silence.Seconds(), reason)
	if err != nil {
		return 0, fmt.Errorf("failing interrupted jobs: %w", err)
	}
	return tag.RowsAffected(), nil
}
