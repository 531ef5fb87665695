package ledger

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/unisched/unisched/bridge/scheduler"
	"github.com/unisched/unisched/internal/pg"
)

// State is where a workload is in the coordinator's life cycle. The
// managers' own statuses (Nova's vm_state, Zun's status) are finer; this is
// what the bridge needs to know to count and reconcile.
type State string

// Workload states.
const (
	// StatePending: the intent is recorded, no host holds anything yet.
	StatePending State = "pending"
	// StateClaimed: Placement allocation and ledger assignment made; the
	// manager is creating the workload.
	StateClaimed State = "claimed"
	// StateActive: the manager reports it running.
	StateActive State = "active"
	// StateStopped: it exists but does not run; it keeps its resources, as
	// a stopped Nova server or Zun container does.
	StateStopped State = "stopped"
	// StateError: it failed; StatusReason says why. Its claim is released.
	StateError State = "error"
	// StateDeleting: deletion is under way; resources are held until the
	// manager confirms.
	StateDeleting State = "deleting"
)

// Valid reports whether s is one of the states above.
func (s State) Valid() bool {
	switch s {
	case StatePending, StateClaimed, StateActive, StateStopped, StateError, StateDeleting:
		return true
	}
	return false
}

// Workload is a VM or a container.
type Workload struct {
	ID        string
	Kind      scheduler.Kind
	Name      string
	ProjectID string
	UserID    string
	// Host is the host the workload holds resources on; "" when it holds
	// none (pending, released, error).
	Host         string
	State        State
	StatusReason string
	CPUPolicy    scheduler.CPUPolicy
	Resources    scheduler.Resources
	// ServerGroup is the affinity group, "" for none.
	ServerGroup string
	// Spec is the request as the API received it; nil is stored as {}.
	Spec json.RawMessage
	// RequestID is the global request id that created the workload.
	RequestID string
	CreatedAt time.Time
	UpdatedAt time.Time
}

const (
	workloadColumns = `w.id::text, w.kind, w.name, w.project_id, w.user_id, COALESCE(h.name, ''), w.state,
	w.status_reason, w.cpu_policy, w.vcpu, w.pcpu, w.memory_mb, w.disk_gb, COALESCE(w.server_group, ''),
	w.spec, COALESCE(w.request_id, ''), w.created_at, w.updated_at`

	selectWorkloads = `SELECT ` + workloadColumns + `
FROM bridge_workloads w LEFT JOIN bridge_hosts h ON h.id = w.host_id`

	insertWorkload = `INSERT INTO bridge_workloads (id, kind, name, project_id, user_id, state, status_reason,
	cpu_policy, vcpu, pcpu, memory_mb, disk_gb, server_group, spec, request_id)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, NULLIF($13, ''), $14, NULLIF($15, ''))
RETURNING created_at, updated_at`

	updateWorkloadState = `UPDATE bridge_workloads SET state = $2, status_reason = $3, updated_at = now()
WHERE id = $1`

	deleteWorkload = `DELETE FROM bridge_workloads WHERE id = $1`
)

func scanWorkload(row pgx.CollectableRow) (Workload, error) {
	var w Workload
	var spec []byte
	err := row.Scan(&w.ID, &w.Kind, &w.Name, &w.ProjectID, &w.UserID, &w.Host, &w.State, &w.StatusReason,
		&w.CPUPolicy, &w.Resources.VCPU, &w.Resources.PCPU, &w.Resources.MemoryMB, &w.Resources.DiskGB,
		&w.ServerGroup, &spec, &w.RequestID, &w.CreatedAt, &w.UpdatedAt)
	w.Spec = spec
	return w, err
}

// CreateWorkload records a new workload, which holds nothing yet: Assign
// gives it a host. ErrExists when the id is taken.
func CreateWorkload(ctx context.Context, db pg.DBTX, w *Workload) error {
	if w.Kind != scheduler.KindVM && w.Kind != scheduler.KindContainer {
		return invalid("workload kind %q", w.Kind)
	}
	if w.State == "" {
		w.State = StatePending
	}
	if !w.State.Valid() {
		return invalid("workload state %q", w.State)
	}
	if w.CPUPolicy == "" {
		w.CPUPolicy = scheduler.CPUShared
	}
	if w.CPUPolicy != scheduler.CPUShared && w.CPUPolicy != scheduler.CPUDedicated {
		return invalid("cpu policy %q", w.CPUPolicy)
	}
	spec := w.Spec
	if len(spec) == 0 {
		spec = json.RawMessage(`{}`)
	}
	r := w.Resources
	err := db.QueryRow(ctx, insertWorkload, w.ID, w.Kind, w.Name, w.ProjectID, w.UserID, w.State, w.StatusReason,
		w.CPUPolicy, r.VCPU, r.PCPU, r.MemoryMB, r.DiskGB, w.ServerGroup, spec, w.RequestID).
		Scan(&w.CreatedAt, &w.UpdatedAt)
	if err != nil {
		return interpretError(err, fmt.Sprintf("creating workload %s", w.ID))
	}
	w.Host = ""
	w.Spec = spec
	return nil
}

// GetWorkload loads one workload.
func GetWorkload(ctx context.Context, db pg.DBTX, id string) (Workload, error) {
	return getWorkload(ctx, db, id, "")
}

// LockWorkload loads one workload and locks its row until the transaction
// ends, so that the claim or release that follows is the only change to it.
func LockWorkload(ctx context.Context, tx pgx.Tx, id string) (Workload, error) {
	return getWorkload(ctx, tx, id, ` FOR UPDATE OF w`)
}

func getWorkload(ctx context.Context, db pg.DBTX, id, suffix string) (Workload, error) {
	rows, err := db.Query(ctx, selectWorkloads+` WHERE w.id = $1`+suffix, id)
	if err != nil {
		return Workload{}, interpretError(err, fmt.Sprintf("loading workload %s", id))
	}
	w, err := pgx.CollectExactlyOneRow(rows, scanWorkload)
	if err != nil {
		return Workload{}, interpretError(err, fmt.Sprintf("loading workload %s", id))
	}
	return w, nil
}

// WorkloadFilter selects workloads; zero fields match everything.
type WorkloadFilter struct {
	Host      string
	ProjectID string
	Kind      scheduler.Kind
	States    []State
	RequestID string
}

// ListWorkloads returns the matching workloads, oldest first.
func ListWorkloads(ctx context.Context, db pg.DBTX, f WorkloadFilter) ([]Workload, error) {
	var where []string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if f.Host != "" {
		add("h.name = $%d", f.Host)
	}
	if f.ProjectID != "" {
		add("w.project_id = $%d", f.ProjectID)
	}
	if f.Kind != "" {
		add("w.kind = $%d", f.Kind)
	}
	if len(f.States) > 0 {
		states := make([]string, len(f.States))
		for i, s := range f.States {
			states[i] = string(s)
		}
		add("w.state = ANY ($%d)", states)
	}
	if f.RequestID != "" {
		add("w.request_id = $%d", f.RequestID)
	}
	q := selectWorkloads
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	rows, err := db.Query(ctx, q+` ORDER BY w.created_at, w.id`, args...)
	if err != nil {
		return nil, interpretError(err, "listing workloads")
	}
	ws, err := pgx.CollectRows(rows, scanWorkload)
	if err != nil {
		return nil, interpretError(err, "listing workloads")
	}
	return ws, nil
}

// SetState changes a workload's state and reason.
func SetState(ctx context.Context, db pg.DBTX, id string, s State, reason string) error {
	if !s.Valid() {
		return invalid("workload state %q", s)
	}
	tag, err := db.Exec(ctx, updateWorkloadState, id, s, reason)
	if err != nil {
		return interpretError(err, fmt.Sprintf("setting the state of workload %s", id))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("setting the state of workload %s: %w", id, ErrNotFound)
	}
	return nil
}

// DeleteWorkload forgets a workload with its assignments.
func DeleteWorkload(ctx context.Context, db pg.DBTX, id string) error {
	tag, err := db.Exec(ctx, deleteWorkload, id)
	if err != nil {
		return interpretError(err, fmt.Sprintf("deleting workload %s", id))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("deleting workload %s: %w", id, ErrNotFound)
	}
	return nil
}
