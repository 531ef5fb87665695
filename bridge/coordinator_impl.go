package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"k8s.io/utils/cpuset"

	"github.com/unisched/unisched/bridge/agentproto"
	"github.com/unisched/unisched/bridge/ledger"
	"github.com/unisched/unisched/bridge/outbox"
	"github.com/unisched/unisched/bridge/scheduler"
	"github.com/unisched/unisched/internal/pg"
)

// AgentTopic is the outbox topic of every event for a host agent; the
// payload is an agentproto.Event and NewAgentDeliverer delivers it.
const AgentTopic = "agent"

// AgentManagedTrait marks a Placement provider an agent created: only its
// inventory is the agent's to write.
const AgentManagedTrait = "CUSTOM_UNISCHED_AGENT_MANAGED"

// Consumer types of the workloads' Placement consumers.
const (
	ConsumerTypeContainer = "CONTAINER"
	ConsumerTypeInstance  = "INSTANCE"
)

// NoHostsReason is Nova's and Zun's status reason for a NoValidHost.
const NoHostsReason = "There are not enough hosts available."

// Options tune a Coordinator. Zero fields take the defaults in parentheses.
type Options struct {
	Logger *slog.Logger
	// ClaimAttempts bounds the re-plans of a create whose claim lost a
	// race (20).
	ClaimAttempts int
	// RetryJitter is the upper bound of the random pause before a re-plan
	// (20ms), so that racing creates do not collide again in lockstep.
	RetryJitter time.Duration
	// CPUAllocationRatio is the VCPU ratio of the inventory an agent owns
	// when its registration gives none (4.0); likewise RAM and disk (1.0).
	CPUAllocationRatio, RAMAllocationRatio, DiskAllocationRatio float64
	// Notifications writes container notifications (create, delete,
	// actions) to the outbox for a publisher to put on the bus (notify.go).
	Notifications bool
	// ClaimConflict, when set, is told of every claim that lost a race
	// (why: ClaimLost*) and of every create whose attempts all lost
	// (ClaimExhausted); serve counts them.
	ClaimConflict func(reason string)
}

func (o *Options) setDefaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.ClaimAttempts <= 0 {
		o.ClaimAttempts = 20
	}
	if o.RetryJitter <= 0 {
		o.RetryJitter = 20 * time.Millisecond
	}
	if o.CPUAllocationRatio <= 0 {
		o.CPUAllocationRatio = 4.0
	}
	if o.RAMAllocationRatio <= 0 {
		o.RAMAllocationRatio = 1.0
	}
	if o.DiskAllocationRatio <= 0 {
		o.DiskAllocationRatio = 1.0
	}
}

// Coordinator is the Service over PostgreSQL: the ledger, the outbox and
// Placement's tables in one database, so every change is one transaction.
type Coordinator struct {
	pool   *pgxpool.Pool
	engine *scheduler.Engine
	opts   Options
}

var _ Service = (*Coordinator)(nil)

// New makes a coordinator; engine is the configured scheduler.
func New(pool *pgxpool.Pool, engine *scheduler.Engine, opts Options) *Coordinator {
	opts.setDefaults()
	return &Coordinator{pool: pool, engine: engine, opts: opts}
}

// mapLedgerErr turns the ledger's not-found into the contract's.
func mapLedgerErr(err error) error {
	if errors.Is(err, ledger.ErrNotFound) && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return err
}

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

func conflictf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrConflict, fmt.Sprintf(format, args...))
}

// Get loads one workload.
func (c *Coordinator) Get(ctx context.Context, id string) (Workload, error) {
	return c.get(ctx, c.pool, id)
}

func (c *Coordinator) get(ctx context.Context, db pg.DBTX, id string) (Workload, error) {
	if !isUUID(id) {
		return Workload{}, fmt.Errorf("loading workload %s: %w", id, ErrNotFound)
	}
	lw, err := ledger.GetWorkload(ctx, db, id)
	if err != nil {
		return Workload{}, mapLedgerErr(err)
	}
	out, err := c.complete(ctx, db, []ledger.Workload{lw})
	if err != nil {
		return Workload{}, err
	}
	return out[0], nil
}

// List returns workloads, oldest first.
func (c *Coordinator) List(ctx context.Context, f ListFilter) ([]Workload, error) {
	if badString(f.Host) != "" || badString(f.ProjectID) != "" || badString(string(f.Kind)) != "" {
		return []Workload{}, nil // nothing stored can match, and PostgreSQL refuses the query
	}
	ws, err := ledger.ListWorkloads(ctx, c.pool, ledger.WorkloadFilter{Host: f.Host, ProjectID: f.ProjectID, Kind: f.Kind})
	if err != nil {
		return nil, err
	}
	if f.Name != "" {
		ws = slices.DeleteFunc(ws, func(w ledger.Workload) bool { return w.Name != f.Name })
	}
	if f.Marker != "" {
		i := slices.IndexFunc(ws, func(w ledger.Workload) bool { return w.ID == f.Marker })
		if i < 0 {
			return nil, invalidf("marker %s not found", f.Marker)
		}
		ws = ws[i+1:]
	}
	if f.Limit > 0 && len(ws) > f.Limit {
		ws = ws[:f.Limit]
	}
	return c.complete(ctx, c.pool, ws)
}

// complete adds the assignment, the container and the runtime state to
// ledger workloads, in two queries for the whole list.
func (c *Coordinator) complete(ctx context.Context, db pg.DBTX, ws []ledger.Workload) ([]Workload, error) {
	out := make([]Workload, len(ws))
	if len(ws) == 0 {
		return out, nil
	}
	ids := make([]string, len(ws))
	at := make(map[string]int, len(ws))
	for i, w := range ws {
		ids[i] = w.ID
		at[w.ID] = i
		out[i].Workload = w
		out[i].Assignment.Host = w.Host
	}
	rows, err := db.Query(ctx, sqlExtras, ids)
	if err != nil {
		return nil, fmt.Errorf("loading workload runtime state: %w", err)
	}
	var id string
	var container []byte
	var rt Runtime
	_, err = pgx.ForEachRow(rows, []any{&id, &container, &rt.Status, &rt.Reason, &rt.ContainerID, &rt.ExitCode}, func() error {
		w := &out[at[id]]
		w.Runtime = rt
		if rt.ExitCode != nil {
			v := *rt.ExitCode
			w.Runtime.ExitCode = &v
		}
		if len(container) > 0 {
			w.Container = new(agentproto.Container)
			if err := json.Unmarshal(container, w.Container); err != nil {
				return fmt.Errorf("workload %s: decoding its container: %w", id, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("loading workload runtime state: %w", err)
	}
	rows, err = db.Query(ctx, sqlAssignments, ids)
	if err != nil {
		return nil, fmt.Errorf("loading workload assignments: %w", err)
	}
	var host string
	var cell int
	var mem int64
	var cpus []int32
	_, err = pgx.ForEachRow(rows, []any{&id, &host, &cell, &mem, &cpus}, func() error {
		a := &out[at[id]].Assignment
		a.Host = host
		a.Cells = append(a.Cells, ledger.CellAssignment{Cell: cell, MemoryMB: mem, CPUs: toSet(cpus)})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("loading workload assignments: %w", err)
	}
	return out, nil
}

func toSet(ids []int32) cpuset.CPUSet {
	l := make([]int, len(ids))
	for i, c := range ids {
		l[i] = int(c)
	}
	return cpuset.New(l...)
}

// loadContainer reads the desired container of a workload in tx.
func loadContainer(ctx context.Context, db pg.DBTX, id string) (*agentproto.Container, error) {
	var raw []byte
	if err := db.QueryRow(ctx, sqlContainer, id).Scan(&raw); err != nil {
		return nil, fmt.Errorf("loading the container of workload %s: %w", id, err)
	}
	if len(raw) == 0 {
		return nil, nil
	}
	var ct agentproto.Container
	if err := json.Unmarshal(raw, &ct); err != nil {
		return nil, fmt.Errorf("decoding the container of workload %s: %w", id, err)
	}
	return &ct, nil
}

// hostCPUs is what the cpusets of a host's containers are computed from.
type hostCPUs struct {
	shared cpuset.CPUSet
	pinned cpuset.CPUSet
}

// freeShared is the host's shared pool without any pinned pCPU: where the
// shared containers float.
func (h hostCPUs) freeShared() cpuset.CPUSet { return h.shared.Difference(h.pinned) }

func loadHostCPUs(ctx context.Context, db pg.DBTX, host string) (hostCPUs, error) {
	var shared, pinned []int32
	err := db.QueryRow(ctx, sqlHostCPUs, host).Scan(&shared, &pinned)
	if err != nil {
		return hostCPUs{}, fmt.Errorf("reading the CPUs of host %s: %w", host, err)
	}
	return hostCPUs{shared: toSet(shared), pinned: toSet(pinned)}, nil
}

// setCpusets fills the container's cpusets from its assignment: the
// pinned pCPUs and their cells for a dedicated container, the host's free
// shared pool (no mems constraint) for a shared one.
func setCpusets(ct *agentproto.Container, a []ledger.CellAssignment, h hostCPUs) {
	if ct.CPUPolicy == string(scheduler.CPUDedicated) {
		pinned, cells := cpuset.New(), make([]int, 0, len(a))
		for _, c := range a {
			pinned = pinned.Union(c.CPUs)
			cells = append(cells, c.Cell)
		}
		ct.CpusetCpus, ct.CpusetMems = pinned.String(), cpuset.New(cells...).String()
		return
	}
	ct.CpusetCpus, ct.CpusetMems = h.freeShared().String(), ""
}

// agentEvent writes one event for a host's agent in tx, keyed by the
// workload (or "host:<name>" for host events), so the relay delivers the
// events of one workload in order.
func agentEvent(ctx context.Context, tx pgx.Tx, key string, ev agentproto.Event) error {
	if ev.CreatedAt.IsZero() {
		ev.CreatedAt = time.Now().UTC()
	}
	if _, err := outbox.Insert(ctx, tx, outbox.Message{Topic: AgentTopic, Key: key, Payload: ev}); err != nil {
		return fmt.Errorf("writing the %s event for %s: %w", ev.Type, key, err)
	}
	return nil
}

// hostCPUsEvent records that a host's free shared pool changed: the
// desired cpuset of every shared container there becomes the new pool (so
// an agent converging later, or from Desired, lands on it too) and the
// agent is told to move them.
func hostCPUsEvent(ctx context.Context, tx pgx.Tx, host string) error {
	h, err := loadHostCPUs(ctx, tx, host)
	if err != nil {
		return err
	}
	free := h.freeShared().String()
	if _, err := tx.Exec(ctx, sqlSetSharedCpusets, host, free); err != nil {
		return fmt.Errorf("moving the shared containers of host %s to cpus %q: %w", host, free, err)
	}
	return agentEvent(ctx, tx, "host:"+host, agentproto.Event{Type: agentproto.EventHostCPUs, Host: host, SharedCPUs: free})
}

// sharedTouched reports whether pinning (or unpinning) cpus changes the
// host's free shared pool.
func sharedTouched(ctx context.Context, db pg.DBTX, host string, cpus cpuset.CPUSet) (bool, error) {
	if cpus.IsEmpty() {
		return false, nil
	}
	h, err := loadHostCPUs(ctx, db, host)
	if err != nil {
		return false, err
	}
	return !h.shared.Intersection(cpus).IsEmpty(), nil
}

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}
