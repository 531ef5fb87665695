package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/unisched/unisched/bridge/scheduler"
	"github.com/unisched/unisched/internal/pg"
)

// Decision is one entry of the decision log: the host the scheduler chose
// for a request (or why none), the runners-up, and how many hosts each
// filter left out and for which reasons. It is what tests and operators
// check "the VM is on the host the bridge chose" against.
type Decision struct {
	ID         int64
	RequestID  string
	WorkloadID string
	Kind       scheduler.Kind
	// Host "" means no valid host; Error says why.
	Host         string
	ProviderUUID string
	Score        float64
	Placement    *PlacementRecord
	Alternates   []AlternateRecord
	Stats        StatsRecord
	Filters      []FilterRecord
	Error        string
	// Rejected names each host left out and why, when the caller keeps
	// them (Nova's candidates: a handful of hosts, asked about later).
	Rejected  []RejectedRecord
	CreatedAt time.Time
}

// PlacementRecord is the chosen cells and CPUs, with CPU sets in Linux's
// list format ("0-3,8").
type PlacementRecord struct {
	Dedicated  bool         `json:"dedicated"`
	CPUs       string       `json:"cpus"`
	Cells      []CellRecord `json:"cells,omitempty"`
	SplitCores int          `json:"split_cores,omitempty"`
}

// CellRecord is one cell of a PlacementRecord.
type CellRecord struct {
	Cell     int    `json:"cell"`
	CPUs     string `json:"cpus"`
	MemoryMB int64  `json:"memory_mb"`
}

// AlternateRecord is a runner-up host.
type AlternateRecord struct {
	Host         string  `json:"host"`
	ProviderUUID string  `json:"provider_uuid"`
	Score        float64 `json:"score"`
	Avoided      bool    `json:"avoided,omitempty"`
}

// StatsRecord counts the hosts at each stage.
type StatsRecord struct {
	Hosts      int `json:"hosts"`
	Examined   int `json:"examined"`
	Candidates int `json:"candidates"`
	Avoided    int `json:"avoided"`
	Scored     int `json:"scored"`
}

// statsJSON is the stats column: the counts and, when kept, the hosts
// left out.
type statsJSON struct {
	StatsRecord
	Rejected []RejectedRecord `json:"rejected,omitempty"`
}

// RejectedRecord is one host a decision left out: the first filter that
// rejected it and its reason.
type RejectedRecord struct {
	Host   string `json:"host"`
	Filter string `json:"filter"`
	Reason string `json:"reason"`
}

// FilterRecord is one filter's verdict counts and reasons.
type FilterRecord struct {
	Name      string         `json:"name"`
	NoFitNow  int            `json:"no_fit_now"`
	NeverFits int            `json:"never_fits"`
	Avoid     int            `json:"avoid"`
	Reasons   map[string]int `json:"reasons,omitempty"`
}

// NewDecision makes the log entry of one Schedule call: d when err is nil,
// otherwise the error, with the filter counts when it is a NoValidHost.
func NewDecision(req *scheduler.Request, d scheduler.Decision, err error) Decision {
	rec := Decision{RequestID: req.ID, WorkloadID: req.WorkloadID, Kind: req.Kind}
	stats := d.Stats
	if err != nil {
		rec.Error = err.Error()
		var nvh *scheduler.NoValidHostError
		if errors.As(err, &nvh) {
			stats = nvh.Stats
		}
	} else {
		rec.Host, rec.ProviderUUID, rec.Score = d.Host, d.ProviderUUID, d.Score
		rec.Placement = placementRecord(d.Placement)
		for _, a := range d.Alternates {
			rec.Alternates = append(rec.Alternates, AlternateRecord{Host: a.Host, ProviderUUID: a.ProviderUUID, Score: a.Score, Avoided: a.Avoided})
		}
	}
	rec.Stats = StatsRecord{Hosts: stats.Hosts, Examined: stats.Examined, Candidates: stats.Candidates, Avoided: stats.Avoided, Scored: stats.Scored}
	for _, f := range stats.Filters {
		fr := FilterRecord{Name: f.Name, NoFitNow: f.NoFitNow, NeverFits: f.NeverFits, Avoid: f.Avoid}
		for r, n := range f.Reasons {
			if fr.Reasons == nil {
				fr.Reasons = map[string]int{}
			}
			fr.Reasons[string(r)] = n
		}
		rec.Filters = append(rec.Filters, fr)
	}
	return rec
}

func placementRecord(p scheduler.Placement) *PlacementRecord {
	r := &PlacementRecord{Dedicated: p.Dedicated, CPUs: p.CPUs.String(), SplitCores: p.SplitCores}
	for _, c := range p.Cells {
		r.Cells = append(r.Cells, CellRecord{Cell: c.Cell, CPUs: c.CPUs.String(), MemoryMB: c.MemoryMB})
	}
	return r
}

const (
	insertDecision = `INSERT INTO bridge_decisions (request_id, workload_id, kind, host, provider_uuid, score,
	placement, alternates, stats, filters, error)
VALUES ($1, NULLIF($2, '')::uuid, $3, NULLIF($4, ''), NULLIF($5, '')::uuid, $6, $7, $8, $9, $10, NULLIF($11, ''))
RETURNING id, created_at`

	selectDecisions = `SELECT id, request_id, COALESCE(workload_id::text, ''), kind, COALESCE(host, ''),
	COALESCE(provider_uuid::text, ''), COALESCE(score, 0), placement, alternates, stats, filters,
	COALESCE(error, ''), created_at FROM bridge_decisions`

	deleteDecisionsBefore = `DELETE FROM bridge_decisions WHERE created_at < $1`
)

// RecordDecision appends the decision to the log and sets its ID.
func RecordDecision(ctx context.Context, db pg.DBTX, d *Decision) error {
	what := fmt.Sprintf("recording the decision for request %s", d.RequestID)
	var placement []byte
	if d.Placement != nil {
		var err error
		if placement, err = json.Marshal(d.Placement); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	alternates, err := json.Marshal(nonNil(d.Alternates))
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	stats, err := json.Marshal(statsJSON{StatsRecord: d.Stats, Rejected: d.Rejected})
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	filters, err := json.Marshal(nonNil(d.Filters))
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	var score *float64
	if d.Host != "" {
		score = &d.Score
	}
	err = db.QueryRow(ctx, insertDecision, d.RequestID, d.WorkloadID, d.Kind, d.Host, d.ProviderUUID, score,
		placement, alternates, stats, filters, d.Error).Scan(&d.ID, &d.CreatedAt)
	return interpretError(err, what)
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func scanDecision(row pgx.CollectableRow) (Decision, error) {
	var d Decision
	var placement, alternates, stats, filters []byte
	if err := row.Scan(&d.ID, &d.RequestID, &d.WorkloadID, &d.Kind, &d.Host, &d.ProviderUUID, &d.Score,
		&placement, &alternates, &stats, &filters, &d.Error, &d.CreatedAt); err != nil {
		return d, err
	}
	if placement != nil {
		d.Placement = new(PlacementRecord)
		if err := json.Unmarshal(placement, d.Placement); err != nil {
			return d, fmt.Errorf("decision %d placement: %w", d.ID, err)
		}
	}
	var st statsJSON
	for _, f := range []struct {
		raw []byte
		dst any
	}{{alternates, &d.Alternates}, {stats, &st}, {filters, &d.Filters}} {
		if err := json.Unmarshal(f.raw, f.dst); err != nil {
			return d, fmt.Errorf("decision %d: %w", d.ID, err)
		}
	}
	d.Stats, d.Rejected = st.StatsRecord, st.Rejected
	if len(d.Alternates) == 0 {
		d.Alternates = nil
	}
	if len(d.Filters) == 0 {
		d.Filters = nil
	}
	return d, nil
}

// DecisionsForRequest returns the decisions taken for a request id, oldest
// first (a request re-planned after a lost claim has several).
func DecisionsForRequest(ctx context.Context, db pg.DBTX, requestID string) ([]Decision, error) {
	return listDecisions(ctx, db, ` WHERE request_id = $1 ORDER BY id`, requestID)
}

// LatestDecision returns the newest decision about a workload.
func LatestDecision(ctx context.Context, db pg.DBTX, workloadID string) (Decision, error) {
	ds, err := listDecisions(ctx, db, ` WHERE workload_id = $1 ORDER BY id DESC LIMIT 1`, workloadID)
	if err != nil {
		return Decision{}, err
	}
	if len(ds) == 0 {
		return Decision{}, fmt.Errorf("latest decision for workload %s: %w", workloadID, ErrNotFound)
	}
	return ds[0], nil
}

func listDecisions(ctx context.Context, db pg.DBTX, where string, args ...any) ([]Decision, error) {
	rows, err := db.Query(ctx, selectDecisions+where, args...)
	if err != nil {
		return nil, interpretError(err, "reading decisions")
	}
	ds, err := pgx.CollectRows(rows, scanDecision)
	if err != nil {
		return nil, interpretError(err, "reading decisions")
	}
	return ds, nil
}

// LinkDecision names the workload of the decisions taken for a request on
// a host before it had one (Nova's candidates query knows no instance
// uuid; its claim does), so that LatestDecision finds them. Decisions
// already naming a workload are left alone.
func LinkDecision(ctx context.Context, db pg.DBTX, requestID, host, workloadID string) error {
	_, err := db.Exec(ctx, `UPDATE bridge_decisions SET workload_id = $3::uuid
WHERE request_id = $1 AND host = $2 AND workload_id IS NULL`, requestID, host, workloadID)
	return interpretError(err, fmt.Sprintf("linking the decision of request %s to workload %s", requestID, workloadID))
}

// TrimDecisions deletes the log entries older than before and says how many.
func TrimDecisions(ctx context.Context, db pg.DBTX, before time.Time) (int64, error) {
	tag, err := db.Exec(ctx, deleteDecisionsBefore, before)
	if err != nil {
		return 0, interpretError(err, "trimming decisions")
	}
	return tag.RowsAffected(), nil
}

// ReasonCounts sums a decision's rejections by reason over every filter,
// for a NoValidHost message or a dashboard.
func (d Decision) ReasonCounts() map[string]int {
	out := map[string]int{}
	for _, f := range d.Filters {
		for r, n := range f.Reasons {
			out[r] += n
		}
	}
	return out
}

// RecentDecisions returns the newest decisions first, at most limit: the
// dashboard's "what did the scheduler do lately, and why not elsewhere".
func RecentDecisions(ctx context.Context, db pg.DBTX, limit int) ([]Decision, error) {
	if limit <= 0 {
		return nil, nil
	}
	return listDecisions(ctx, db, ` ORDER BY id DESC LIMIT $1`, limit)
}
