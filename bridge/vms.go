package bridge

// Nova's VMs in the ledger. Nova claims through Placement's HTTP API, not
// through the coordinator: every allocation write on a ledger host records
// the VM there (RecordVMAllocations, called in the write's transaction),
// with the NUMA cell and pCPUs the bridge expects Nova to use; Nova's
// notifications then confirm (VMCreated with the real pins), fail, delete
// or move it. Placement's capacity is authoritative for VMs: a claim that
// Placement accepted is never refused here, even when the ledger cannot
// find it room (ARCHITECTURE §3: containers yield).

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"k8s.io/utils/cpuset"

	"github.com/unisched/unisched/bridge/agentproto"
	"github.com/unisched/unisched/bridge/ledger"
	"github.com/unisched/unisched/bridge/scheduler"
	"github.com/unisched/unisched/internal/pg"
	"github.com/unisched/unisched/placement/store"
)

// VMCell is one host NUMA cell a VM uses: the host pCPU ids Nova pinned
// (empty for a shared VM) and the guest memory there.
type VMCell struct {
	Cell     int
	CPUs     []int
	MemoryMB int
}

// VMTopology is a VM's real placement on its host, from Nova's
// GET /servers/{id}/topology.
type VMTopology struct {
	Cells []VMCell
}

// VMAllocations is a consumer's Placement allocations after a write: by
// provider uuid, then resource class. None: it holds nothing any more.
type VMAllocations struct {
	ConsumerUUID string
	ProjectID    string
	UserID       string
	Allocations  map[string]map[string]int64
}

const (
	// The ledger host each provider belongs to (through its root).
	sqlProviderHosts = `SELECT rp.uuid::text, h.name FROM resource_providers rp
JOIN resource_providers root ON root.id = COALESCE(rp.root_provider_id, rp.id)
JOIN bridge_hosts h ON h.provider_uuid = root.uuid
WHERE rp.uuid = ANY($1::uuid[])`

	sqlSetVMResources = `UPDATE bridge_workloads SET cpu_policy = $2, vcpu = $3, pcpu = $4, memory_mb = $5,
	disk_gb = $6, request_id = COALESCE(NULLIF($7, ''), request_id), updated_at = now() WHERE id = $1`

	// Memory of each cell of a host held by workloads other than $2.
	sqlHostCellUseExcept = `SELECT wc.cell, sum(wc.memory_mb)::bigint FROM bridge_workload_cells wc
JOIN bridge_hosts h ON h.id = wc.host_id WHERE h.name = $1 AND wc.workload_id <> $2::uuid GROUP BY wc.cell`

	// Pins of a host by cell and workload, but $2's.
	sqlHostPinsExcept = `SELECT p.cell, p.workload_id::text, array_agg(p.cpu ORDER BY p.cpu) FROM bridge_workload_cpus p
JOIN bridge_hosts h ON h.id = p.host_id WHERE h.name = $1 AND p.workload_id <> $2::uuid
GROUP BY p.cell, p.workload_id ORDER BY p.cell, p.workload_id`

	// Other workloads holding some of the given pCPUs of a host.
	sqlPinHolders = `SELECT DISTINCT p.workload_id::text FROM bridge_workload_cpus p JOIN bridge_hosts h ON h.id = p.host_id
WHERE h.name = $1 AND p.cpu = ANY($2::int[]) AND p.workload_id <> $3::uuid ORDER BY 1`

	// Locks a host's provider as a claim on it does, so that what the
	// ledger gives the VM is decided one claim at a time per host.
	sqlLockHostProvider = `SELECT rp.id FROM resource_providers rp JOIN bridge_hosts h ON h.provider_uuid = rp.uuid
WHERE h.name = $1 FOR UPDATE OF rp`
)

// RecordVMAllocations records in the ledger what a Placement write did to
// a consumer, in the write's transaction: a VM on a ledger host (created
// or updated, state claimed, its expected cells and pCPUs, an event for
// the host's agent when the host's free shared pool changed), released when its allocations left the ledger's
// hosts. requestID (the caller's global request id) finds the decision
// taken for the candidates query, whose cell is preferred. Consumers that
// are container workloads are the coordinator's own and left alone.
func (c *Coordinator) RecordVMAllocations(ctx context.Context, tx pgx.Tx, requestID string, a VMAllocations) error {
	id := strings.ToLower(a.ConsumerUUID)
	if !isUUID(id) {
		return nil
	}
	host, res, err := ledgerHostOf(ctx, tx, a.Allocations)
	if err != nil {
		return err
	}
	lw, err := ledger.LockWorkload(ctx, tx, id)
	exists := err == nil
	// What the VM held on this host before: the host's agent is told of
	// the claim only when the shared pool changes, by these or by the
	// new pins.
	var oldPins cpuset.CPUSet
	if err != nil && !errors.Is(err, ledger.ErrNotFound) {
		return err
	}
	if exists && lw.Kind != scheduler.KindVM {
		return nil
	}
	if host == "" {
		if !exists {
			return nil
		}
		// Removed, or moved to a host no agent describes: the ledger has
		// nothing left to hold for it.
		if err := releaseLedger(ctx, tx, lw); err != nil {
			return err
		}
		return ledger.DeleteWorkload(ctx, tx, id)
	}
	policy := scheduler.CPUShared
	if res.PCPU > 0 {
		policy = scheduler.CPUDedicated
	}
	if !exists {
		project, user := a.ProjectID, a.UserID
		if project == "" {
			project = "unknown"
		}
		if user == "" {
			user = "unknown"
		}
		lw = ledger.Workload{ID: id, Kind: scheduler.KindVM, ProjectID: project, UserID: user,
			State: ledger.StateClaimed, CPUPolicy: policy, Resources: res, RequestID: requestID}
		if err := ledger.CreateWorkload(ctx, tx, &lw); err != nil {
			return err
		}
	} else {
		old, err := ledger.GetAssignment(ctx, tx, id)
		if err != nil {
			return err
		}
		if lw.Host == host && lw.Resources == res && lw.CPUPolicy == policy && assignmentFits(old, res, policy) {
			return nil // the same claim written again (heal, a retry)
		}
		if lw.Host == host {
			oldPins = old.Pinned()
		}
		if lw.Host != "" && lw.Host != host {
			if err := releaseLedger(ctx, tx, lw); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, sqlSetVMResources, id, policy, res.VCPU, res.PCPU, res.MemoryMB, res.DiskGB, requestID); err != nil {
			return fmt.Errorf("recording the resources of VM %s: %w", id, err)
		}
		if lw.State == ledger.StateError || lw.State == ledger.StatePending {
			if err := ledger.SetState(ctx, tx, id, ledger.StateClaimed, ""); err != nil {
				return err
			}
		}
	}
	sreq := vmRequest(requestID, id, lw.ProjectID, policy, res)
	prefer, decided, err := decidedCells(ctx, tx, requestID, host)
	if err != nil {
		return err
	}
	if len(prefer) > 1 {
		// The decision spread the guest over several cells (the flavor's
		// hw:numa_nodes, from the intent): so does the claim.
		spread := *sreq
		spread.NUMA = scheduler.NUMANeeds{Cells: len(prefer)}
		if spread.Validate() == nil {
			sreq = &spread
		}
	}
	cells, exact, err := c.fitVM(ctx, tx, host, id, sreq, prefer)
	if err != nil {
		return err
	}
	if !exact {
		c.opts.Logger.WarnContext(ctx, "VM claim accepted by Placement does not fit the ledger's cells; recorded with what fits",
			"vm", id, "host", host, "pcpu", res.PCPU, "memory_mb", res.MemoryMB, "cells", cellsString(cells))
	}
	if err := ledger.Assign(ctx, tx, id, host, cells); err != nil {
		return err
	}
	if decided {
		if err := ledger.LinkDecision(ctx, tx, requestID, host, id); err != nil {
			return err
		}
	}
	touched, err := sharedTouched(ctx, tx, host, oldPins.Union(ledger.Assignment{Cells: cells}.Pinned()))
	if err != nil || !touched {
		return err
	}
	return hostCPUsEvent(ctx, tx, host)
}

// RecordNovaAllocations records the consumers of one Placement write (see
// RecordVMAllocations), each in a savepoint of tx: what the ledger cannot
// record is logged and rolled back alone, and Placement's write stands,
// as Placement is authoritative for VMs. A retryable database error
// (deadlock, serialization) is returned so that the whole write runs
// again.
func (c *Coordinator) RecordNovaAllocations(ctx context.Context, tx pgx.Tx, requestID string, as []VMAllocations) error {
	for _, a := range as {
		sp, err := tx.Begin(ctx)
		if err != nil {
			return fmt.Errorf("recording VM %s: %w", a.ConsumerUUID, err)
		}
		err = c.RecordVMAllocations(ctx, sp, requestID, a)
		if err == nil {
			if err := sp.Commit(ctx); err != nil {
				return fmt.Errorf("recording VM %s: %w", a.ConsumerUUID, err)
			}
			continue
		}
		if rerr := sp.Rollback(ctx); rerr != nil {
			return errors.Join(err, rerr)
		}
		if pg.IsRetryable(err) || ctx.Err() != nil {
			return err
		}
		c.opts.Logger.ErrorContext(ctx, "the ledger could not record a VM's allocations; Placement's write stands",
			"vm", a.ConsumerUUID, "request", requestID, "error", err)
	}
	return nil
}

// ledgerHostOf finds the ledger host a consumer's allocations are on and
// sums what they take there; "" when none of them is on a ledger host.
func ledgerHostOf(ctx context.Context, db pg.DBTX, allocs map[string]map[string]int64) (string, scheduler.Resources, error) {
	var res scheduler.Resources
	if len(allocs) == 0 {
		return "", res, nil
	}
	uuids := make([]string, 0, len(allocs))
	for u := range allocs {
		if isUUID(u) {
			uuids = append(uuids, strings.ToLower(u))
		}
	}
	slices.Sort(uuids)
	rows, err := db.Query(ctx, sqlProviderHosts, uuids)
	if err != nil {
		return "", res, fmt.Errorf("finding the ledger hosts of providers: %w", err)
	}
	byProvider := map[string]string{}
	var p, h string
	if _, err := pgx.ForEachRow(rows, []any{&p, &h}, func() error { byProvider[p] = h; return nil }); err != nil {
		return "", res, fmt.Errorf("finding the ledger hosts of providers: %w", err)
	}
	host := ""
	for _, u := range uuids {
		if h := byProvider[u]; h != "" && (host == "" || h < host) {
			host = h
		}
	}
	if host == "" {
		return "", res, nil
	}
	for u, rs := range allocs {
		if byProvider[strings.ToLower(u)] != host {
			continue
		}
		res.VCPU += rs[string(scheduler.VCPU)]
		res.PCPU += rs[string(scheduler.PCPU)]
		res.MemoryMB += rs[string(scheduler.MemoryMB)]
		res.DiskGB += rs[string(scheduler.DiskGB)]
	}
	return host, res, nil
}

// vmRequest is the scheduling request of a VM claim, as Place wants it.
func vmRequest(requestID, id, project string, policy scheduler.CPUPolicy, res scheduler.Resources) *scheduler.Request {
	r := &scheduler.Request{ID: requestID, WorkloadID: id, Kind: scheduler.KindVM, Project: project, CPUPolicy: policy, Resources: res}
	if r.ID == "" {
		r.ID = "vm-" + id
	}
	if policy == scheduler.CPUDedicated {
		r.Resources.VCPU = 0
	}
	return r
}

// assignmentFits reports whether a VM's current assignment still matches
// its resources (a dedicated VM holds its pCPU count).
func assignmentFits(a ledger.Assignment, res scheduler.Resources, policy scheduler.CPUPolicy) bool {
	if policy != scheduler.CPUDedicated {
		return a.Pinned().IsEmpty()
	}
	return int64(a.Pinned().Size()) == res.PCPU
}

// decidedCells returns the cells the decision for this request chose on
// host (nil when it chose none: a shared VM), and whether there is one.
func decidedCells(ctx context.Context, db pg.DBTX, requestID, host string) ([]int, bool, error) {
	if requestID == "" {
		return nil, false, nil
	}
	ds, err := ledger.DecisionsForRequest(ctx, db, requestID)
	if err != nil {
		return nil, false, err
	}
	for i := len(ds) - 1; i >= 0; i-- {
		d := ds[i]
		if d.Host != host {
			continue
		}
		if d.Placement == nil || len(d.Placement.Cells) == 0 {
			return nil, true, nil
		}
		cells := make([]int, 0, len(d.Placement.Cells))
		for _, c := range d.Placement.Cells {
			cells = append(cells, c.Cell)
		}
		return cells, true, nil
	}
	return nil, false, nil
}

// hostState is one ledger host as the scheduler sees it, without the
// workload except's pins and memory (so that it can be placed again).
func hostState(ctx context.Context, db pg.DBTX, host, except string) (*scheduler.HostState, ledger.Host, error) {
	h, err := ledger.GetHost(ctx, db, host)
	if err != nil {
		return nil, h, err
	}
	hs := scheduler.HostState{Name: h.Name, ProviderUUID: h.ProviderUUID, DedicatedCPUs: h.DedicatedCPUs, SharedCPUs: h.SharedCPUs}
	at := map[int]int{}
	for i, c := range h.Cells {
		hs.Cells = append(hs.Cells, scheduler.NUMACell{ID: c.ID, CPUs: c.CPUs, Siblings: c.Siblings, MemoryMB: c.MemoryMB})
		at[c.ID] = i
	}
	if except == "" {
		except = "00000000-0000-0000-0000-000000000000"
	}
	rows, err := db.Query(ctx, sqlHostCellUseExcept, host, except)
	if err != nil {
		return nil, h, fmt.Errorf("reading the cells of host %s: %w", host, err)
	}
	var cell int
	var mem int64
	_, err = pgx.ForEachRow(rows, []any{&cell, &mem}, func() error {
		if i, ok := at[cell]; ok {
			hs.Cells[i].MemoryUsedMB = mem
		}
		return nil
	})
	if err != nil {
		return nil, h, fmt.Errorf("reading the cells of host %s: %w", host, err)
	}
	rows, err = db.Query(ctx, sqlHostPinsExcept, host, except)
	if err != nil {
		return nil, h, fmt.Errorf("reading the pins of host %s: %w", host, err)
	}
	var workload string
	var cpus []int32
	_, err = pgx.ForEachRow(rows, []any{&cell, &workload, &cpus}, func() error {
		if i, ok := at[cell]; ok {
			hs.Cells[i].Pinned = append(hs.Cells[i].Pinned, scheduler.Pin{Workload: workload, CPUs: toSet(cpus)})
		}
		return nil
	})
	if err != nil {
		return nil, h, fmt.Errorf("reading the pins of host %s: %w", host, err)
	}
	return &hs, h, nil
}

// placeOn places the request on the host (narrowed to the given cells
// when only is not nil).
func placeOn(hs scheduler.HostState, req *scheduler.Request, only []int) (scheduler.Placement, bool) {
	if only != nil {
		hs.Cells = slices.DeleteFunc(slices.Clone(hs.Cells), func(c scheduler.NUMACell) bool { return !slices.Contains(only, c.ID) })
		in := cpuset.New()
		for _, c := range hs.Cells {
			in = in.Union(c.CPUs)
		}
		hs.DedicatedCPUs, hs.SharedCPUs = hs.DedicatedCPUs.Intersection(in), hs.SharedCPUs.Intersection(in)
	}
	snap, err := scheduler.NewSnapshot([]scheduler.HostState{hs})
	if err != nil {
		return scheduler.Placement{}, false
	}
	p, v := scheduler.Place(req, snap.Host(hs.Name))
	return p, !v.Rejected()
}

// fitVM chooses the VM's cells on its host as it is now: the decided
// cells first, then any that fit. exact is false when nothing fits and
// the assignment holds what the host could give (fewer pCPUs, or cell
// memory beyond the cell): Placement accepted the claim, so it stands.
func (c *Coordinator) fitVM(ctx context.Context, db pg.DBTX, host, id string, req *scheduler.Request, prefer []int) ([]ledger.CellAssignment, bool, error) {
	hs, h, err := hostState(ctx, db, host, id)
	if err != nil {
		return nil, false, err
	}
	if err := req.Validate(); err != nil {
		// Amounts the scheduler cannot express (a VM of memory only):
		// the VM holds its host and no cell.
		return nil, true, nil
	}
	if prefer != nil {
		if p, ok := placeOn(*hs, req, prefer); ok {
			return ledger.FromPlacement(p), true, nil
		}
	}
	if p, ok := placeOn(*hs, req, nil); ok {
		return ledger.FromPlacement(p), true, nil
	}
	if !req.Dedicated() || len(h.Cells) == 0 {
		return nil, false, nil
	}
	// What fits: the cell with the most free dedicated pCPUs (the decided
	// one on a tie), its lowest free ones up to the count, all the memory.
	pinned := cpuset.New()
	for _, cell := range hs.Cells {
		for _, p := range cell.Pinned {
			pinned = pinned.Union(p.CPUs)
		}
	}
	best, bestFree := -1, cpuset.New()
	for _, cell := range h.Cells {
		free := cell.CPUs.Intersection(h.DedicatedCPUs).Difference(pinned)
		if best < 0 || free.Size() > bestFree.Size() || (free.Size() == bestFree.Size() && slices.Contains(prefer, cell.ID)) {
			best, bestFree = cell.ID, free
		}
	}
	take := bestFree.List()
	if int64(len(take)) > req.Resources.PCPU {
		take = take[:req.Resources.PCPU]
	}
	return []ledger.CellAssignment{{Cell: best, CPUs: cpuset.New(take...), MemoryMB: req.Resources.MemoryMB}}, false, nil
}

func cellsString(cells []ledger.CellAssignment) string {
	var parts []string
	for _, c := range cells {
		parts = append(parts, fmt.Sprintf("%d:%s/%dMB", c.Cell, c.CPUs, c.MemoryMB))
	}
	return strings.Join(parts, " ")
}

// errRetryVM: the VM changed host between two reads; run again.
var errRetryVM = errors.New("VM changed while being locked")

// withRetry runs fn in a transaction, again when the database asks to
// (deadlock, serialization), a few times.
func (c *Coordinator) withRetry(ctx context.Context, fn func(tx pgx.Tx) error) error {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		err = pg.WithTx(ctx, c.pool, pgx.TxOptions{}, fn)
		if err == nil || !(pg.IsRetryable(err) || errors.Is(err, errRetryVM)) {
			return err
		}
		time.Sleep(time.Duration(attempt+1) * 5 * time.Millisecond)
	}
	return err
}

// lockVM locks the VM's host provider (as a claim does, so pins change one
// writer at a time per host) and then its row. ErrNotFound when there is
// no such workload; ErrInvalid for a container.
func lockVM(ctx context.Context, tx pgx.Tx, id string) (ledger.Workload, error) {
	if !isUUID(id) {
		return ledger.Workload{}, invalidf("VM id %q is not a uuid", id)
	}
	id = strings.ToLower(id)
	lw, err := ledger.GetWorkload(ctx, tx, id)
	if err != nil {
		return lw, mapLedgerErr(err)
	}
	if lw.Host != "" {
		if _, err := tx.Exec(ctx, sqlLockHostProvider, lw.Host); err != nil {
			return lw, fmt.Errorf("locking the provider of host %s: %w", lw.Host, err)
		}
	}
	lw2, err := ledger.LockWorkload(ctx, tx, id)
	if err != nil {
		return lw2, mapLedgerErr(err)
	}
	if lw2.Kind != scheduler.KindVM {
		return lw2, invalidf("workload %s is a %s, not a VM", id, lw2.Kind)
	}
	if lw2.Host != lw.Host {
		return lw2, fmt.Errorf("VM %s moved while being locked: %w", id, errRetryVM)
	}
	return lw2, nil
}

// VMCreated records that Nova built the VM: state active, and when topo is
// known its real cells and pins replace the expected ones. A dedicated
// container holding a pCPU Nova pinned is re-pinned (same cell first) and
// its agent told; another VM's expected pins there are re-fitted. When
// the ledger does not know the VM yet (its claim predates the bridge),
// Placement's allocations are read first.
func (c *Coordinator) VMCreated(ctx context.Context, id, host string, topo *VMTopology) error {
	return c.withRetry(ctx, func(tx pgx.Tx) error {
		lw, err := lockVM(ctx, tx, id)
		if errors.Is(err, ErrNotFound) {
			if err := c.syncVM(ctx, tx, strings.ToLower(id)); err != nil {
				return err
			}
			lw, err = lockVM(ctx, tx, id)
			if errors.Is(err, ErrNotFound) {
				return nil // not on a ledger host: nothing to track
			}
		}
		if err != nil {
			return err
		}
		if lw.Host == "" {
			return nil
		}
		if host != "" && host != lw.Host {
			c.opts.Logger.WarnContext(ctx, "Nova reports the VM on another host than its allocations", "vm", lw.ID, "nova_host", host, "ledger_host", lw.Host)
		}
		if lw.State != ledger.StateDeleting && lw.State != ledger.StateActive {
			if err := ledger.SetState(ctx, tx, lw.ID, ledger.StateActive, ""); err != nil {
				return err
			}
		}
		if topo == nil || len(topo.Cells) == 0 {
			return nil
		}
		return c.applyRealPins(ctx, tx, lw, topo)
	})
}

// applyRealPins replaces the VM's assignment with Nova's topology and
// moves whoever held those pCPUs.
func (c *Coordinator) applyRealPins(ctx context.Context, tx pgx.Tx, lw ledger.Workload, topo *VMTopology) error {
	h, err := ledger.GetHost(ctx, tx, lw.Host)
	if err != nil {
		return err
	}
	hostCells := map[int]ledger.Cell{}
	for _, cell := range h.Cells {
		hostCells[cell.ID] = cell
	}
	var cells []ledger.CellAssignment
	real := cpuset.New()
	seen := map[int]bool{}
	for _, vc := range topo.Cells {
		hc, ok := hostCells[vc.Cell]
		if !ok || seen[vc.Cell] || vc.MemoryMB < 0 {
			return invalidf("VM %s: Nova's topology names cell %d, which host %s does not have once", lw.ID, vc.Cell, lw.Host)
		}
		seen[vc.Cell] = true
		set := cpuset.New(vc.CPUs...)
		if !set.IsSubsetOf(hc.CPUs) {
			return invalidf("VM %s: pCPUs %s are not in cell %d of host %s", lw.ID, set, vc.Cell, lw.Host)
		}
		real = real.Union(set)
		cells = append(cells, ledger.CellAssignment{Cell: vc.Cell, CPUs: set, MemoryMB: int64(vc.MemoryMB)})
	}
	old, err := ledger.GetAssignment(ctx, tx, lw.ID)
	if err != nil {
		return err
	}
	rows, err := tx.Query(ctx, sqlPinHolders, lw.Host, toInt32s(real.List()), lw.ID)
	if err != nil {
		return fmt.Errorf("finding who holds the pCPUs of VM %s: %w", lw.ID, err)
	}
	holders, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("finding who holds the pCPUs of VM %s: %w", lw.ID, err)
	}
	// Free the VM's expected pins first, then move each holder off the
	// real ones, then take them.
	if err := ledger.Assign(ctx, tx, lw.ID, lw.Host, nil); err != nil {
		return err
	}
	for _, other := range holders {
		if err := c.moveOff(ctx, tx, h, other, real); err != nil {
			return err
		}
	}
	if err := ledger.Assign(ctx, tx, lw.ID, lw.Host, cells); err != nil {
		return err
	}
	if old.Pinned().Equals(real) && len(holders) == 0 {
		return nil
	}
	return hostCPUsEvent(ctx, tx, lw.Host)
}

// moveOff re-pins a workload off the given pCPUs (which a VM really uses):
// in the same cell when it has room, else in another cell with room, else
// it keeps what it holds outside them (and is logged: the VM's pins are
// real, the container yields). A container's agent gets an update event.
func (c *Coordinator) moveOff(ctx context.Context, tx pgx.Tx, h ledger.Host, id string, taken cpuset.CPUSet) error {
	ow, err := ledger.LockWorkload(ctx, tx, id)
	if err != nil {
		return err
	}
	old, err := ledger.GetAssignment(ctx, tx, id)
	if err != nil {
		return err
	}
	hs, _, err := hostState(ctx, tx, h.Name, id)
	if err != nil {
		return err
	}
	avoid := taken.Clone()
	for _, cell := range hs.Cells {
		for _, p := range cell.Pinned {
			avoid = avoid.Union(p.CPUs)
		}
	}
	free := h.DedicatedCPUs.Difference(avoid)
	var cells []ledger.CellAssignment
	exact := true
	for _, oc := range old.Cells {
		want := oc.CPUs.Size()
		keep := oc.CPUs.Difference(taken)
		nc := ledger.CellAssignment{Cell: oc.Cell, MemoryMB: oc.MemoryMB, CPUs: keep}
		need := want - keep.Size()
		if need > 0 {
			var inCell cpuset.CPUSet
			for _, hc := range h.Cells {
				if hc.ID == oc.Cell {
					inCell = hc.CPUs
				}
			}
			cand := free.Intersection(inCell).List()
			if len(cand) >= need {
				nc.CPUs = keep.Union(cpuset.New(cand[:need]...))
				free = free.Difference(cpuset.New(cand[:need]...))
			} else if len(old.Cells) == 1 {
				// Another cell with room for the whole share.
				moved := false
				for _, hc := range h.Cells {
					if hc.ID == oc.Cell {
						continue
					}
					cand := free.Intersection(hc.CPUs).List()
					if len(cand) >= want {
						nc = ledger.CellAssignment{Cell: hc.ID, MemoryMB: oc.MemoryMB, CPUs: cpuset.New(cand[:want]...)}
						free = free.Difference(nc.CPUs)
						moved = true
						break
					}
				}
				if !moved {
					nc.CPUs = keep.Union(cpuset.New(cand...))
					free = free.Difference(nc.CPUs)
					exact = false
				}
			} else {
				nc.CPUs = keep.Union(cpuset.New(cand...))
				free = free.Difference(nc.CPUs)
				exact = false
			}
		}
		cells = append(cells, nc)
	}
	if !exact {
		c.opts.Logger.WarnContext(ctx, "a workload lost pCPUs to a VM's real pins and found no room for all of them",
			"workload", id, "host", h.Name, "cells", cellsString(cells))
	}
	if err := ledger.Assign(ctx, tx, id, h.Name, cells); err != nil {
		return err
	}
	if ow.Kind != scheduler.KindContainer {
		return nil
	}
	ct, err := loadContainer(ctx, tx, id)
	if err != nil || ct == nil {
		return err
	}
	hc, err := loadHostCPUs(ctx, tx, h.Name)
	if err != nil {
		return err
	}
	setCpusets(ct, cells, hc)
	if _, err := tx.Exec(ctx, sqlSetContainer, id, ct); err != nil {
		return fmt.Errorf("recording the new pins of container %s: %w", id, err)
	}
	return agentEvent(ctx, tx, id, agentproto.Event{Type: agentproto.EventUpdate, Host: h.Name, Container: ct})
}

func toInt32s(l []int) []int32 {
	out := make([]int32, len(l))
	for i, v := range l {
		out[i] = int32(v)
	}
	return out
}

// VMFailed records that the VM failed: state error with the reason, its
// ledger assignment released (Nova removes or moves its allocations
// itself). Unknown VMs are ignored.
func (c *Coordinator) VMFailed(ctx context.Context, id, reason string) error {
	return c.withRetry(ctx, func(tx pgx.Tx) error {
		lw, err := lockVM(ctx, tx, id)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := releaseLedger(ctx, tx, lw); err != nil {
			return err
		}
		if reason == "" {
			reason = "Nova reported the instance in error"
		}
		return ledger.SetState(ctx, tx, lw.ID, ledger.StateError, reason)
	})
}

// VMDeleted forgets the VM and what it holds in the ledger; deleting an
// unknown VM is not an error.
func (c *Coordinator) VMDeleted(ctx context.Context, id string) error {
	return c.withRetry(ctx, func(tx pgx.Tx) error {
		lw, err := lockVM(ctx, tx, id)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := releaseLedger(ctx, tx, lw); err != nil {
			return err
		}
		return ledger.DeleteWorkload(ctx, tx, lw.ID)
	})
}

// VMMoved re-reads the consumer's Placement allocations (after a resize,
// migration or evacuation) and records the VM where they are now.
func (c *Coordinator) VMMoved(ctx context.Context, id string) error {
	if !isUUID(id) {
		return invalidf("VM id %q is not a uuid", id)
	}
	id = strings.ToLower(id)
	return c.withRetry(ctx, func(tx pgx.Tx) error { return c.syncVM(ctx, tx, id) })
}

// syncVM records the VM as its Placement allocations say, locking their
// providers first as a claim would.
func (c *Coordinator) syncVM(ctx context.Context, tx pgx.Tx, id string) error {
	a := VMAllocations{ConsumerUUID: id}
	ca, err := store.GetConsumerAllocations(ctx, tx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return err
	default:
		a.ProjectID, a.UserID = ca.ProjectExternalID, ca.UserExternalID
		a.Allocations = map[string]map[string]int64{}
		for _, al := range ca.Allocations {
			if a.Allocations[al.ProviderUUID] == nil {
				a.Allocations[al.ProviderUUID] = map[string]int64{}
			}
			a.Allocations[al.ProviderUUID][al.ResourceClass] += int64(al.Used)
		}
	}
	var uuids []string
	for u := range a.Allocations {
		uuids = append(uuids, u)
	}
	if lw, err := ledger.GetWorkload(ctx, tx, id); err == nil && lw.Host != "" {
		if h, err := ledger.GetHost(ctx, tx, lw.Host); err == nil {
			uuids = append(uuids, h.ProviderUUID)
		}
	}
	if len(uuids) > 0 {
		if _, err := tx.Exec(ctx, sqlLockProviders, uuids); err != nil {
			return fmt.Errorf("locking the providers of VM %s: %w", id, err)
		}
	}
	return c.RecordVMAllocations(ctx, tx, "", a)
}
