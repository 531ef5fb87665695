package reconcile

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/unisched/unisched/internal/pg"
)

// Load returns a stored run's report; id 0 is the newest finished run.
// ErrNotFound when there is no such run.
func Load(ctx context.Context, db pg.DBTX, id int64) (*Report, error) {
	if id == 0 {
		err := db.QueryRow(ctx, sqlLatestRunID).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, ErrNotFound
		}
		if err != nil {
			return nil, fmt.Errorf("finding the latest reconciliation run: %w", err)
		}
	}
	rep := &Report{}
	err := db.QueryRow(ctx, sqlSelectRun+` WHERE id = $1`, id).Scan(&rep.RunID, &rep.Leader, &rep.DryRun,
		&rep.StartedAt, &rep.FinishedAt, &rep.Counts, &rep.Repaired, &rep.Failed, &rep.Errors, &rep.Stats)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("run %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("loading reconciliation run %d: %w", id, err)
	}
	if rep.Counts == nil {
		rep.Counts = map[string]int{}
	}
	if rep.Errors == nil {
		rep.Errors = []string{}
	}
	rows, err := db.Query(ctx, sqlSelectDivergences, id)
	if err != nil {
		return nil, fmt.Errorf("loading the divergences of run %d: %w", id, err)
	}
	rep.Divergences, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Divergence, error) {
		var d Divergence
		err := row.Scan(&d.Kind, &d.WorkloadID, &d.ConsumerUUID, &d.ServerID, &d.Host, &d.ProviderUUID,
			&d.Detail, &d.Action, &d.Result, &d.Error)
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("loading the divergences of run %d: %w", id, err)
	}
	rep.Total = len(rep.Divergences)
	return rep, nil
}

// Reports reads the stored runs of a database (GET /v1/reconciliation).
type Reports struct{ DB pg.DBTX }

// Report is Load.
func (s Reports) Report(ctx context.Context, run int64) (*Report, error) { return Load(ctx, s.DB, run) }
