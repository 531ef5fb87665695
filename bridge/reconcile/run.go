package reconcile

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Report is one stored run.
type Report struct {
	RunID      int64      `json:"run_id"`
	Leader     string     `json:"leader"`
	DryRun     bool       `json:"dry_run"`
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
	// Counts is how many divergences of each kind were found (every kind
	// present, zeros included).
	Counts map[string]int `json:"counts"`
	// Total is the number of divergences found.
	Total    int `json:"total"`
	Repaired int `json:"repaired"`
	Failed   int `json:"failed"`
	// Errors are the sources that could not be read; nothing depending on
	// them was repaired.
	Errors      []string     `json:"errors"`
	Stats       Stats        `json:"stats"`
	Divergences []Divergence `json:"divergences"`
}

// Stats is what each view held.
type Stats struct {
	Hosts     int `json:"hosts"`
	Workloads int `json:"workloads"`
	Consumers int `json:"consumers"`
	// Servers is -1 when Nova's servers were not known (no source, or it
	// failed).
	Servers int `json:"servers"`
}

// Divergence is one disagreement between the views and what was done.
type Divergence struct {
	Kind         string `json:"kind"`
	WorkloadID   string `json:"workload_id,omitempty"`
	ConsumerUUID string `json:"consumer_uuid,omitempty"`
	ServerID     string `json:"server_id,omitempty"`
	Host         string `json:"host,omitempty"`
	ProviderUUID string `json:"provider_uuid,omitempty"`
	Detail       string `json:"detail"`
	Action       string `json:"action"`
	Result       string `json:"result"`
	Error        string `json:"error,omitempty"`

	// what the repair re-checks: the state the snapshot saw.
	seenGeneration int
	seenState      string
	seenReason     string
}

// Run reconciles once: ErrNotLeader when another reconciler is running.
// The report is stored before it is returned; an error reading the
// database fails the run, an error reading Nova's servers is recorded in
// the report and only skips the repairs that depend on them.
func (r *Reconciler) Run(ctx context.Context) (*Report, error) {
	return r.run(ctx, r.cfg.DryRun)
}

// RunDry reconciles once without repairing anything, whatever the
// configuration says.
func (r *Reconciler) RunDry(ctx context.Context) (*Report, error) {
	return r.run(ctx, true)
}

func (r *Reconciler) run(ctx context.Context, dry bool) (*Report, error) {
	pc, err := r.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("reconcile: acquiring the lock connection: %w", err)
	}
	// Out of the pool for good: closing it drops the session lock whatever
	// happens to this run, and the lock can never reach another user.
	conn := pc.Hijack()
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		// Unlocked before the close: the server drops a closed session's
		// locks only once its backend has exited, which a run started
		// right after this one could beat.
		_, _ = conn.Exec(cctx, sqlUnlock, r.cfg.LockKey)
		_ = conn.Close(cctx)
	}()
	var ok bool
	if err := conn.QueryRow(ctx, sqlTryLock, r.cfg.LockKey).Scan(&ok); err != nil {
		return nil, fmt.Errorf("reconcile: taking the lock: %w", err)
	}
	if !ok {
		return nil, ErrNotLeader
	}
	log := r.cfg.Logger

	rep := &Report{Leader: r.cfg.Leader, DryRun: dry, Counts: map[string]int{}, Errors: []string{}, Divergences: []Divergence{}}
	// Nova first: a server created after this list is younger than any
	// allocation the snapshot could take for a leak past the grace period.
	var servers map[string]Server
	rep.Stats.Servers = -1
	if r.cfg.Servers != nil {
		sctx, cancel := context.WithTimeout(ctx, r.cfg.ServersTimeout)
		list, err := r.cfg.Servers.ListServers(sctx)
		cancel()
		if err != nil {
			log.Warn("reconcile: listing Nova's servers failed; repairs that depend on them are skipped", "error", err)
			rep.Errors = append(rep.Errors, fmt.Sprintf("listing Nova servers: %v", err))
		} else {
			servers = make(map[string]Server, len(list))
			for _, s := range list {
				servers[s.ID] = s
			}
			rep.Stats.Servers = len(servers)
		}
	}
	snap, err := readSnapshot(ctx, r.pool)
	if err != nil {
		return nil, err
	}
	rep.StartedAt = snap.now
	rep.Stats.Hosts, rep.Stats.Workloads, rep.Stats.Consumers = len(snap.hosts), len(snap.workloads), len(snap.consumers)
	rep.Divergences = detect(snap, servers, r.cfg.Servers != nil, r.cfg.Grace, r.cfg.CreateVM != nil)

	if err := r.pool.QueryRow(ctx, sqlInsertRun, rep.Leader, dry, rep.StartedAt).Scan(&rep.RunID); err != nil {
		return nil, fmt.Errorf("reconcile: recording the run: %w", err)
	}
	for _, k := range Kinds {
		rep.Counts[k] = 0
	}
	for i := range rep.Divergences {
		d := &rep.Divergences[i]
		rep.Counts[d.Kind]++
		switch {
		case d.Action == ActionNone:
			// already skipped with its reason by detect
		case dry:
			d.Result = ResultDryRun
		default:
			r.repair(ctx, d)
		}
		switch d.Result {
		case ResultRepaired:
			rep.Repaired++
		case ResultFailed:
			rep.Failed++
		}
		lvl := r.cfg.Logger.Info
		if d.Result == ResultFailed {
			lvl = r.cfg.Logger.Error
		}
		lvl("reconcile: divergence", "run", rep.RunID, "kind", d.Kind, "workload", d.WorkloadID, "consumer", d.ConsumerUUID,
			"server", d.ServerID, "host", d.Host, "provider", d.ProviderUUID, "detail", d.Detail, "action", d.Action,
			"result", d.Result, "error", d.Error)
	}
	rep.Total = len(rep.Divergences)
	if err := r.store(ctx, rep); err != nil {
		return nil, err
	}
	r.cfg.Metrics.observe(rep)
	log.Info("reconcile: run finished", "run", rep.RunID, "dry_run", dry, "divergences", rep.Total,
		"repaired", rep.Repaired, "failed", rep.Failed, "errors", len(rep.Errors))
	return rep, nil
}

// store writes the divergences and the run's outcome in one transaction,
// and trims runs past the retention.
func (r *Reconciler) store(ctx context.Context, rep *Report) error {
	err := pgx.BeginTxFunc(ctx, r.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		for _, d := range rep.Divergences {
			b.Queue(sqlInsertDivergence, rep.RunID, d.Kind, d.WorkloadID, d.ConsumerUUID, d.ServerID, d.Host,
				d.ProviderUUID, d.Detail, d.Action, d.Result, d.Error)
		}
		var finished time.Time
		if err := tx.QueryRow(ctx, sqlNow).Scan(&finished); err != nil {
			return err
		}
		rep.FinishedAt = &finished
		b.Queue(sqlFinishRun, rep.RunID, finished, rep.Counts, rep.Repaired, rep.Failed, rep.Errors, rep.Stats)
		b.Queue(sqlTrimRuns, finished.Add(-r.cfg.Retention))
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return fmt.Errorf("reconcile: storing run %d: %w", rep.RunID, err)
	}
	return nil
}
