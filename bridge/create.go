package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/unisched/unisched/bridge/agentproto"
	"github.com/unisched/unisched/bridge/ledger"
	"github.com/unisched/unisched/bridge/scheduler"
	"github.com/unisched/unisched/internal/pg"
	"github.com/unisched/unisched/placement/claims"
)

// errLostRace marks a claim that found the world changed since its
// snapshot: re-plan on a fresh one.
var errLostRace = errors.New("claim lost a race")

// errGone: the workload left state pending (deleted) while it was being
// scheduled.
var errGone = errors.New("workload is no longer pending")

// resources turns a create's amounts into Placement's: a dedicated
// container pins whole pCPUs, a shared one floats over ceil(cpu) VCPUs.
func resources(policy scheduler.CPUPolicy, cpu float64, memoryMB, diskGB int64) (scheduler.Resources, error) {
	if math.IsNaN(cpu) || math.IsInf(cpu, 0) || cpu <= 0 {
		return scheduler.Resources{}, invalidf("cpu %v must be a positive number", cpu)
	}
	if cpu > 1<<20 {
		return scheduler.Resources{}, invalidf("cpu %v is too large", cpu)
	}
	if memoryMB <= 0 {
		return scheduler.Resources{}, invalidf("memory %d MB must be positive", memoryMB)
	}
	if diskGB < 0 {
		return scheduler.Resources{}, invalidf("disk %d GB must not be negative", diskGB)
	}
	if memoryMB > math.MaxInt32 || diskGB > math.MaxInt32 {
		return scheduler.Resources{}, invalidf("memory %d MB or disk %d GB is too large", memoryMB, diskGB)
	}
	r := scheduler.Resources{MemoryMB: memoryMB, DiskGB: diskGB}
	switch policy {
	case scheduler.CPUDedicated:
		if cpu != math.Trunc(cpu) {
			return scheduler.Resources{}, invalidf("a dedicated workload needs a whole number of CPUs, not %v", cpu)
		}
		r.PCPU = int64(cpu)
	case scheduler.CPUShared:
		r.VCPU = int64(math.Ceil(cpu))
	default:
		return scheduler.Resources{}, invalidf("cpu policy %q is neither %q nor %q", policy, scheduler.CPUShared, scheduler.CPUDedicated)
	}
	return r, nil
}

// amounts are the Placement allocations of r on one provider.
func amounts(provider string, r scheduler.Resources) []claims.Amount {
	var out []claims.Amount
	for _, a := range []struct {
		rc scheduler.ResourceClass
		n  int64
	}{{scheduler.VCPU, r.VCPU}, {scheduler.PCPU, r.PCPU}, {scheduler.MemoryMB, r.MemoryMB}, {scheduler.DiskGB, r.DiskGB}} {
		if a.n > 0 {
			out = append(out, claims.Amount{ProviderUUID: provider, Class: string(a.rc), Used: a.n})
		}
	}
	return out
}

func consumerType(k scheduler.Kind) string {
	if k == scheduler.KindVM {
		return ConsumerTypeInstance
	}
	return ConsumerTypeContainer
}

// Create schedules and claims in one call (see Service).
func (c *Coordinator) Create(ctx context.Context, req CreateRequest) (Workload, error) {
	if req.Kind == "" {
		req.Kind = scheduler.KindContainer
	}
	if req.CPUPolicy == "" {
		req.CPUPolicy = scheduler.CPUShared
	}
	if err := CheckCreateStrings(&req); err != nil {
		return Workload{}, err
	}
	if req.Kind != scheduler.KindContainer && req.Kind != scheduler.KindVM {
		return Workload{}, invalidf("kind %q is neither %q nor %q", req.Kind, scheduler.KindContainer, scheduler.KindVM)
	}
	res, err := resources(req.CPUPolicy, req.CPU, req.MemoryMB, req.DiskGB)
	if err != nil {
		return Workload{}, err
	}
	if req.ProjectID == "" || req.UserID == "" {
		return Workload{}, invalidf("a workload needs a project and a user")
	}
	if len(req.ProjectID) > 255 || len(req.UserID) > 255 {
		return Workload{}, invalidf("project and user ids are at most 255 characters")
	}
	id := strings.ToLower(req.ID)
	if id == "" {
		id = uuid.NewString()
	} else if !isUUID(id) {
		return Workload{}, invalidf("workload id %q is not a uuid", req.ID)
	}
	if req.Kind == scheduler.KindContainer && req.Container == nil {
		return Workload{}, invalidf("a container workload needs its container")
	}
	if len(req.Spec) > 0 && !json.Valid(req.Spec) {
		return Workload{}, invalidf("spec is not valid JSON")
	}
	requestID := req.RequestID
	if requestID == "" {
		requestID = "req-" + uuid.NewString()
	}
	sreq := scheduler.Request{
		ID: requestID, WorkloadID: id, Kind: req.Kind, Project: req.ProjectID, Resources: res,
		CPUPolicy: req.CPUPolicy, NUMA: req.NUMA, RequiredTraits: req.RequiredTraits,
		ForbiddenTraits: req.ForbiddenTraits, MemberOf: req.MemberOf, AvailabilityZone: req.AvailabilityZone,
		Group: req.Group,
	}
	if err := sreq.Validate(); err != nil {
		return Workload{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	var ct *agentproto.Container
	if req.Container != nil {
		cp := *req.Container
		ct = &cp
		ct.WorkloadID, ct.Name, ct.ProjectID = id, req.Name, req.ProjectID
		ct.CPUPolicy, ct.CPU, ct.MemoryMB, ct.DiskGB = string(req.CPUPolicy), req.CPU, req.MemoryMB, req.DiskGB
		ct.CpusetCpus, ct.CpusetMems = "", ""
	}
	lw := ledger.Workload{
		ID: id, Kind: req.Kind, Name: req.Name, ProjectID: req.ProjectID, UserID: req.UserID,
		State: ledger.StatePending, CPUPolicy: req.CPUPolicy, Resources: res, Spec: req.Spec, RequestID: req.RequestID,
	}
	if req.Group != nil {
		lw.ServerGroup = req.Group.ID
	}
	err = pg.WithTx(ctx, c.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		if err := ledger.CreateWorkload(ctx, tx, &lw); err != nil {
			return err
		}
		if ct != nil {
			if _, err := tx.Exec(ctx, sqlSetContainer, id, ct); err != nil {
				return fmt.Errorf("recording the container of workload %s: %w", id, err)
			}
		}
		return c.notifyContainer(ctx, tx, lw, ct, "create", "start", "Creating", "")
	})
	if errors.Is(err, ledger.ErrExists) {
		return Workload{}, conflictf("workload %s already exists", id)
	}
	if err != nil {
		return Workload{}, fmt.Errorf("recording workload %s: %w", id, err)
	}
	return c.schedule(ctx, &sreq, req.Host, ct)
}

// schedule plans and claims until a claim sticks, no host fits or the
// attempts run out.
func (c *Coordinator) schedule(ctx context.Context, sreq *scheduler.Request, onlyHost string, ct *agentproto.Container) (Workload, error) {
	id := sreq.WorkloadID
	var last error
	for attempt := 0; attempt < c.opts.ClaimAttempts; attempt++ {
		if attempt > 0 {
			d := time.Duration(rand.Int64N(int64(c.opts.RetryJitter)) + 1)
			select {
			case <-ctx.Done():
				return c.fail(ctx, sreq, nil, fmt.Errorf("scheduling workload %s: %w", id, ctx.Err()))
			case <-time.After(d):
			}
		}
		snap, err := c.snapshot(ctx, sreq.Kind, onlyHost)
		if err != nil {
			return c.fail(ctx, sreq, nil, err)
		}
		d, err := c.engine.Schedule(ctx, snap, sreq)
		if errors.Is(err, scheduler.ErrNoValidHost) {
			return c.fail(ctx, sreq, &d, err)
		}
		if err != nil {
			return c.fail(ctx, sreq, nil, fmt.Errorf("scheduling workload %s: %w", id, err))
		}
		err = c.claim(ctx, sreq, snap, d, ct)
		if err == nil {
			return c.Get(ctx, id)
		}
		if errors.Is(err, errGone) {
			return Workload{}, fmt.Errorf("%w: workload %s was deleted while it was being scheduled", ErrConflict, id)
		}
		if !errors.Is(err, errLostRace) {
			return c.fail(ctx, sreq, nil, err)
		}
		last = err
		c.claimConflict(lostReason(err))
		c.opts.Logger.DebugContext(ctx, "claim lost a race; re-planning", "workload", id, "host", d.Host, "attempt", attempt+1, "error", err)
	}
	c.claimConflict(ClaimExhausted)
	nvh := fmt.Errorf("%w: every claim lost its race (%d attempts; last: %v)", scheduler.ErrNoValidHost, c.opts.ClaimAttempts, last)
	return c.fail(ctx, sreq, nil, nvh)
}

// snapshot is the scheduler's view, narrowed to one host when the request
// names it and, for a container, to the hosts an agent registered.
func (c *Coordinator) snapshot(ctx context.Context, kind scheduler.Kind, onlyHost string) (*scheduler.Snapshot, error) {
	var hosts []scheduler.HostState
	err := pg.WithTx(ctx, c.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var err error
		if hosts, err = ledger.LoadHostStates(ctx, tx); err != nil {
			return err
		}
		if kind != scheduler.KindContainer {
			return nil
		}
		rows, err := tx.Query(ctx, sqlLedgerHostNames)
		if err != nil {
			return err
		}
		names, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		agents := make(map[string]bool, len(names))
		for _, n := range names {
			agents[n] = true
		}
		kept := hosts[:0]
		for _, h := range hosts {
			if agents[h.Name] {
				kept = append(kept, h)
			}
		}
		hosts = kept
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("taking the scheduler snapshot: %w", err)
	}
	if onlyHost != "" {
		kept := hosts[:0]
		for _, h := range hosts {
			if h.Name == onlyHost {
				kept = append(kept, h)
			}
		}
		hosts = kept
	}
	snap, err := scheduler.NewSnapshot(hosts)
	if err != nil {
		return nil, fmt.Errorf("building the scheduler snapshot: %w", err)
	}
	return snap, nil
}

// claim writes the decision in one transaction: the Placement allocation,
// the ledger assignment, state claimed, the decision log entry and the
// agent's events. A race it lost (another claim took the capacity, the
// pCPUs or the cell memory first) is errLostRace.
func (c *Coordinator) claim(ctx context.Context, sreq *scheduler.Request, snap *scheduler.Snapshot, d scheduler.Decision, ct *agentproto.Container) error {
	id := sreq.WorkloadID
	return pg.WithTx(ctx, c.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		lw, err := ledger.LockWorkload(ctx, tx, id)
		if errors.Is(err, ledger.ErrNotFound) {
			return errGone
		}
		if err != nil {
			return err
		}
		if lw.State != ledger.StatePending {
			return errGone
		}
		err = claims.Replace(ctx, tx, claims.Claim{
			ConsumerUUID: id, ProjectID: lw.ProjectID, UserID: lw.UserID, ConsumerType: consumerType(lw.Kind),
			Allocations: amounts(d.ProviderUUID, sreq.Resources),
		})
		if err != nil {
			if errors.Is(err, claims.ErrConsumerGeneration) {
				return conflictf("Placement already holds allocations for consumer %s", id)
			}
			if claims.Retryable(err) || errors.Is(err, claims.ErrInvalidInventory) || errors.Is(err, claims.ErrProviderNotFound) {
				return fmt.Errorf("%w: %w", errLostRace, err)
			}
			return err
		}
		// The provider lock serializes the claims on this host: re-place
		// on its state as it is now, so that a claim racing for the same
		// pCPUs or cell memory takes others rather than losing.
		if d.Placement, err = replan(ctx, tx, sreq, snap, d); err != nil {
			return err
		}
		cells := ledger.FromPlacement(d.Placement)
		if err := checkCellMemory(ctx, tx, d.Host, id, cells); err != nil {
			return err
		}
		isLedgerHost := true
		if err := ledger.Assign(ctx, tx, id, d.Host, cells); err != nil {
			switch {
			case errors.Is(err, ledger.ErrCPUTaken):
				return fmt.Errorf("%w: %w", errLostRace, err)
			case errors.Is(err, ledger.ErrNotFound) && lw.Kind == scheduler.KindVM:
				// A Nova host no agent described: Placement's claim is
				// all there is to hold.
				isLedgerHost = false
			default:
				return err
			}
		}
		if err := ledger.SetState(ctx, tx, id, ledger.StateClaimed, ""); err != nil {
			return err
		}
		rec := ledger.NewDecision(sreq, d, nil)
		if err := ledger.RecordDecision(ctx, tx, &rec); err != nil {
			return err
		}
		if ct == nil || !isLedgerHost {
			return nil
		}
		h, err := loadHostCPUs(ctx, tx, d.Host)
		if err != nil {
			return err
		}
		setCpusets(ct, cells, h)
		if _, err := tx.Exec(ctx, sqlSetContainer, id, ct); err != nil {
			return fmt.Errorf("recording the container of workload %s: %w", id, err)
		}
		// The shared containers move off the pCPUs taken first: their
		// rows may be locked by their own reports meanwhile, and the
		// create's event, written last, does not wait for them.
		pinned := ledger.Assignment{Cells: cells}.Pinned()
		if !h.shared.Intersection(pinned).IsEmpty() {
			if err := hostCPUsEvent(ctx, tx, d.Host); err != nil {
				return err
			}
		}
		return agentEvent(ctx, tx, id, agentproto.Event{Type: agentproto.EventCreate, Host: d.Host, Container: ct})
	})
}

// checkCellMemory: Placement counts a host's memory, not a cell's; two
// claims planned on one snapshot may each fit the host but not the cell.
// Run under the provider lock the claim holds, so the sum cannot move.
func checkCellMemory(ctx context.Context, tx pgx.Tx, host, id string, cells []ledger.CellAssignment) error {
	for _, cell := range cells {
		if cell.MemoryMB == 0 {
			continue
		}
		var total, used int64
		err := tx.QueryRow(ctx, sqlCellMemoryUsed, host, cell.Cell, id).Scan(&total, &used)
		if errors.Is(err, pgx.ErrNoRows) {
			continue // Assign reports the missing cell
		}
		if err != nil {
			return fmt.Errorf("reading the memory of cell %d on host %s: %w", cell.Cell, host, err)
		}
		if used+cell.MemoryMB > total {
			return fmt.Errorf("%w: cell %d of host %s has %d MB free, the claim needs %d MB", errLostRace, cell.Cell, host, total-used, cell.MemoryMB)
		}
	}
	return nil
}

// fail leaves the workload in state error, holding nothing, with the
// reason the API shows, and logs the decision when the scheduler made one.
// It returns the workload with the error.
func (c *Coordinator) fail(ctx context.Context, sreq *scheduler.Request, d *scheduler.Decision, cause error) (Workload, error) {
	id := sreq.WorkloadID
	reason := cause.Error()
	if errors.Is(cause, scheduler.ErrNoValidHost) {
		reason = NoHostsReason + " " + cause.Error()
	}
	// A cancelled caller still gets its workload settled.
	ctx = context.WithoutCancel(ctx)
	err := pg.WithTx(ctx, c.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		lw, err := ledger.LockWorkload(ctx, tx, id)
		if err != nil {
			return err
		}
		if lw.State != ledger.StatePending {
			return nil
		}
		if err := ledger.SetState(ctx, tx, id, ledger.StateError, reason); err != nil {
			return err
		}
		if err := c.notifyContainer(ctx, tx, lw, nil, "create", "error", "Error", reason); err != nil {
			return err
		}
		if d != nil || errors.Is(cause, scheduler.ErrNoValidHost) {
			var dec scheduler.Decision
			if d != nil {
				dec = *d
			}
			rec := ledger.NewDecision(sreq, dec, cause)
			return ledger.RecordDecision(ctx, tx, &rec)
		}
		return nil
	})
	if err != nil {
		return Workload{}, errors.Join(cause, fmt.Errorf("recording the failure of workload %s: %w", id, err))
	}
	w, err := c.Get(ctx, id)
	if err != nil {
		return Workload{}, errors.Join(cause, err)
	}
	return w, cause
}

// replan places the request again on the chosen host with the pins and
// cell memory the ledger holds now (the snapshot's may be stale). Run it
// under the provider lock of the claim. A host the ledger does not
// describe keeps the scheduler's placement.
func replan(ctx context.Context, tx pgx.Tx, sreq *scheduler.Request, snap *scheduler.Snapshot, d scheduler.Decision) (scheduler.Placement, error) {
	stale := snap.Host(d.Host)
	if stale == nil || len(stale.Cells) == 0 {
		return d.Placement, nil
	}
	h := *stale
	h.Cells = slices.Clone(h.Cells)
	at := make(map[int]int, len(h.Cells))
	for i := range h.Cells {
		h.Cells[i].Pinned, h.Cells[i].MemoryUsedMB = nil, 0
		at[h.Cells[i].ID] = i
	}
	rows, err := tx.Query(ctx, sqlHostCellUse, d.Host)
	if err != nil {
		return d.Placement, fmt.Errorf("reading the cells of host %s: %w", d.Host, err)
	}
	var cell int
	var mem int64
	_, err = pgx.ForEachRow(rows, []any{&cell, &mem}, func() error {
		if i, ok := at[cell]; ok {
			h.Cells[i].MemoryUsedMB = mem
		}
		return nil
	})
	if err != nil {
		return d.Placement, fmt.Errorf("reading the cells of host %s: %w", d.Host, err)
	}
	rows, err = tx.Query(ctx, sqlHostPins, d.Host)
	if err != nil {
		return d.Placement, fmt.Errorf("reading the pins of host %s: %w", d.Host, err)
	}
	var workload string
	var cpus []int32
	_, err = pgx.ForEachRow(rows, []any{&cell, &workload, &cpus}, func() error {
		if i, ok := at[cell]; ok {
			h.Cells[i].Pinned = append(h.Cells[i].Pinned, scheduler.Pin{Workload: workload, CPUs: toSet(cpus)})
		}
		return nil
	})
	if err != nil {
		return d.Placement, fmt.Errorf("reading the pins of host %s: %w", d.Host, err)
	}
	one, err := scheduler.NewSnapshot([]scheduler.HostState{h})
	if err != nil {
		return d.Placement, fmt.Errorf("re-placing on host %s: %w", d.Host, err)
	}
	p, v := scheduler.Place(sreq, one.Host(d.Host))
	if v.Rejected() {
		return d.Placement, fmt.Errorf("%w: host %s no longer fits: %s", errLostRace, d.Host, v.Reason)
	}
	return p, nil
}
