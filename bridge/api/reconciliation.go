package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/unisched/unisched/bridge/reconcile"
)

// Reconciliation reads stored reconciliation runs (reconcile.Load over
// serve's pool): run 0 is the newest finished one; reconcile.ErrNotFound
// when there is none.
type Reconciliation interface {
	Report(ctx context.Context, run int64) (*reconcile.Report, error)
}

// getReconciliation is GET /v1/reconciliation[?run=ID]: the newest
// reconciliation report (or the given run's), admin only — it names every
// project's workloads.
func (h *Handler) getReconciliation(w http.ResponseWriter, r *http.Request) error {
	q, err := query(r, "run")
	if err != nil {
		return err
	}
	if h.cfg.Reconciliation == nil {
		return notFound("Reconciliation is not configured.")
	}
	var run int64
	if v := q.Get("run"); v != "" {
		run, err = strconv.ParseInt(v, 10, 64)
		if err != nil || run <= 0 {
			return badRequest("Invalid query parameter run: %q is not a positive integer", v)
		}
	}
	rep, err := h.cfg.Reconciliation.Report(r.Context(), run)
	if errors.Is(err, reconcile.ErrNotFound) {
		if run == 0 {
			return notFound("No reconciliation has run yet.")
		}
		return notFound("Reconciliation run %d not found.", run)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rep)
	return nil
}
