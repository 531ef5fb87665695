package imagesec

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/unisched/unisched/imagesec/store"
	"github.com/unisched/unisched/internal/pgtest"
)

// Job parameters are kept in jsonb, which takes no NUL character (the
// escape \u0000) and no lone surrogate escape: such parameters are
// ErrBadJob, and no job is recorded.
func TestSubmitRefusesUnstorableParams(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Pool(t)
	r := NewRunner(RunnerConfig{DB: db, WorkDir: t.TempDir()})
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	for _, params := range []any{
		json.RawMessage(`{"path": "/images/a\u0000.raw"}`),
		json.RawMessage(`{"path": "/images/\ud800.raw"}`),
		InspectParams{Path: "/images/a\x00.raw"},
	} {
		if _, err := r.Submit(ctx, store.JobInspect, 0, params); !errors.Is(err, ErrBadJob) {
			t.Errorf("Submit(%s) = %v, want ErrBadJob", params, err)
		}
	}
	if jobs, err := store.ListJobs(ctx, db, 0); err != nil || len(jobs) != 0 {
		t.Errorf("jobs after refused submits: %d (%v)", len(jobs), err)
	}
}
