package bridge

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"k8s.io/utils/cpuset"

	"github.com/unisched/unisched/bridge/agentproto"
	"github.com/unisched/unisched/bridge/ledger"
	"github.com/unisched/unisched/bridge/scheduler"
	"github.com/unisched/unisched/internal/pg"
	"github.com/unisched/unisched/placement/claims"
	"github.com/unisched/unisched/placement/store"
)

// release gives back everything the workload holds, in the caller's
// transaction with the workload row locked: its Placement allocations
// (as DELETE /allocations/{consumer} does) and its ledger assignment. When
// its pinned pCPUs were in the shared pool, the host's agent is told the
// pool grew.
func release(ctx context.Context, tx pgx.Tx, lw ledger.Workload) error {
	if err := store.DeleteAllAllocationsOfConsumer(ctx, tx, lw.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("releasing the Placement allocations of workload %s: %w", lw.ID, err)
	}
	return releaseLedger(ctx, tx, lw)
}

// releaseLedger frees what the workload holds in the ledger and, when its
// pins were in the host's shared pool, tells the host's agent the pool
// grew. A VM's Placement allocations are Nova's: its release stops here.
func releaseLedger(ctx context.Context, tx pgx.Tx, lw ledger.Workload) error {
	a, err := ledger.GetAssignment(ctx, tx, lw.ID)
	if err != nil {
		return err
	}
	touched := false
	if lw.Host != "" {
		if touched, err = sharedTouched(ctx, tx, lw.Host, a.Pinned()); err != nil {
			return err
		}
	}
	if err := ledger.Release(ctx, tx, lw.ID); err != nil {
		return err
	}
	if !touched {
		return nil
	}
	return hostCPUsEvent(ctx, tx, lw.Host)
}

// lockWorkload locks the workload row for a change, mapping not found.
func lockWorkload(ctx context.Context, tx pgx.Tx, id string) (ledger.Workload, error) {
	if !isUUID(id) {
		return ledger.Workload{}, fmt.Errorf("workload %s: %w", id, ErrNotFound)
	}
	lw, err := ledger.LockWorkload(ctx, tx, strings.ToLower(id))
	if err != nil {
		return ledger.Workload{}, mapLedgerErr(err)
	}
	return lw, nil
}

// holds reports whether the workload is in a state that holds a claim
// and can be acted on.
func holds(s ledger.State) bool {
	return s == ledger.StateClaimed || s == ledger.StateActive || s == ledger.StateStopped
}

func knownStatus(s string) bool {
	switch s {
	case agentproto.StatusCreated, agentproto.StatusRunning, agentproto.StatusStopped, agentproto.StatusPaused,
		agentproto.StatusRestarting, agentproto.StatusDead, agentproto.StatusError, agentproto.StatusDeleted:
		return true
	}
	return false
}

// Report takes a container's observed state from its agent (see Service).
// Reports are idempotent: the same report twice changes nothing more, and
// one observed before the last recorded one is ignored.
func (c *Coordinator) Report(ctx context.Context, host string, r agentproto.Report) error {
	if !knownStatus(r.Status) {
		return invalidf("unknown container status %q", r.Status)
	}
	if !isUUID(r.WorkloadID) {
		return invalidf("workload id %q is not a uuid", r.WorkloadID)
	}
	var sc strChecker
	sc.str("host", host)
	sc.str("container_id", r.ContainerID)
	if err := sc.result(); err != nil {
		return err
	}
	// The reason is Docker's words: kept readable rather than the report
	// lost for a byte PostgreSQL cannot store.
	r.Reason = storableText(r.Reason)
	id := strings.ToLower(r.WorkloadID)
	return pg.WithTx(ctx, c.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		lw, err := lockWorkload(ctx, tx, id)
		if errors.Is(err, ErrNotFound) && r.Status == agentproto.StatusDeleted {
			return nil // already forgotten
		}
		if err != nil {
			return err
		}
		if lw.Host == "" {
			// Holds nothing (its create failed, or it never got a host):
			// what the agent sees of it changes nothing.
			return nil
		}
		if lw.Host != host {
			return conflictf("workload %s is on host %s, not %s", id, lw.Host, host)
		}
		var at *time.Time
		// A Deleted report for a workload being deleted is final, however
		// old its stamp: the agent's Docker-event report of the dying
		// container (stamped after its inspect returned) can reach serve
		// first with a later stamp than the delete's own report, which
		// would otherwise be dropped as stale and leave the workload
		// deleting, and its claim held, for good.
		final := r.Status == agentproto.StatusDeleted && lw.State == ledger.StateDeleting
		if !r.ObservedAt.IsZero() && !final {
			at = &r.ObservedAt
			var last *time.Time
			if err := tx.QueryRow(ctx, sqlRuntimeAt, id).Scan(&last); err != nil {
				return fmt.Errorf("reading the last report of workload %s: %w", id, err)
			}
			if last != nil && r.ObservedAt.Before(*last) {
				return nil
			}
		}
		// Made now, from the workload as it was; written last (see
		// containerNotification).
		note, err := c.reportNotification(ctx, tx, lw, r)
		if err != nil {
			return err
		}
		switch r.Status {
		case agentproto.StatusDeleted:
			if err := release(ctx, tx, lw); err != nil {
				return err
			}
			if err := ledger.DeleteWorkload(ctx, tx, id); err != nil {
				return err
			}
			return writeNotification(ctx, tx, note)
		case agentproto.StatusError:
			switch lw.State {
			case ledger.StateClaimed:
				reason := r.Reason
				if reason == "" {
					reason = "the container could not be created"
				}
				if err := release(ctx, tx, lw); err != nil {
					return err
				}
				if err := ledger.SetState(ctx, tx, id, ledger.StateError, reason); err != nil {
					return err
				}
			case ledger.StateActive:
				if err := ledger.SetState(ctx, tx, id, ledger.StateStopped, r.Reason); err != nil {
					return err
				}
			}
		case agentproto.StatusRunning, agentproto.StatusRestarting, agentproto.StatusPaused:
			if lw.State != ledger.StateDeleting && lw.State != ledger.StateActive {
				if err := ledger.SetState(ctx, tx, id, ledger.StateActive, ""); err != nil {
					return err
				}
			}
		default: // Created, Stopped, Dead
			if lw.State != ledger.StateDeleting && lw.State != ledger.StateStopped {
				if err := ledger.SetState(ctx, tx, id, ledger.StateStopped, ""); err != nil {
					return err
				}
			}
			if err := settleNaturalExit(ctx, tx, lw, r); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, sqlSetRuntime, id, r.Status, r.Reason, r.ContainerID, r.ExitCode, at); err != nil {
			return fmt.Errorf("recording the report on workload %s: %w", id, err)
		}
		return writeNotification(ctx, tx, note)
	})
}

// Delete marks the workload deleting and asks its agent to remove it; a
// workload that holds no host is forgotten at once (see Service). Deleting
// a workload already deleting sends the request again (a force after a
// stuck stop).
func (c *Coordinator) Delete(ctx context.Context, id string, stop, force bool) error {
	return pg.WithTx(ctx, c.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		lw, err := lockWorkload(ctx, tx, id)
		if err != nil {
			return err
		}
		id := lw.ID
		ct, err := loadContainer(ctx, tx, id)
		if err != nil {
			return err
		}
		if lw.Host == "" || ct == nil {
			// Never reached a host (or a VM, whose manager removes it):
			// nothing for an agent to do.
			if err := release(ctx, tx, lw); err != nil {
				return err
			}
			if err := c.notifyContainer(ctx, tx, lw, ct, "delete", "end", "Deleted", ""); err != nil {
				return err
			}
			return ledger.DeleteWorkload(ctx, tx, id)
		}
		if lw.State != ledger.StateDeleting {
			if err := ledger.SetState(ctx, tx, id, ledger.StateDeleting, ""); err != nil {
				return err
			}
		}
		if err := c.notifyContainer(ctx, tx, lw, ct, "delete", "start", "Deleting", ""); err != nil {
			return err
		}
		return agentEvent(ctx, tx, id, agentproto.Event{Type: agentproto.EventDelete, Host: lw.Host, Container: ct, Stop: stop, Force: force})
	})
}

// Action records the desired running state and the agent's event.
func (c *Coordinator) Action(ctx context.Context, id, action string, args ActionArgs) (Workload, error) {
	var running *bool
	yes, no := true, false
	switch action {
	case agentproto.ActionStart, agentproto.ActionUnpause, agentproto.ActionReboot:
		running = &yes
	case agentproto.ActionStop, agentproto.ActionKill:
		running = &no
	case agentproto.ActionPause:
	default:
		return Workload{}, invalidf("unknown action %q", action)
	}
	if args.Timeout < 0 {
		return Workload{}, invalidf("timeout %d must not be negative", args.Timeout)
	}
	if r := badString(args.Signal); r != "" {
		return Workload{}, &NULError{Field: "signal", Reason: r}
	}
	var out Workload
	err := pg.WithTx(ctx, c.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		lw, ct, err := lockContainer(ctx, tx, id, action)
		if err != nil {
			return err
		}
		if running != nil {
			ct.Running = *running
		}
		if _, err := tx.Exec(ctx, sqlSetContainer, lw.ID, ct); err != nil {
			return fmt.Errorf("recording the container of workload %s: %w", lw.ID, err)
		}
		if out, err = c.get(ctx, tx, lw.ID); err != nil {
			return err
		}
		err = agentEvent(ctx, tx, lw.ID, agentproto.Event{Type: agentproto.EventAction, Host: lw.Host, Container: ct,
			Action: action, Signal: args.Signal, Timeout: args.Timeout})
		if err != nil {
			return err
		}
		return c.notifyContainer(ctx, tx, lw, ct, action, "start", stateStatus(lw.State), "")
	})
	return out, err
}

// lockContainer locks a container workload that holds its host, for an
// action on it.
func lockContainer(ctx context.Context, tx pgx.Tx, id, what string) (ledger.Workload, *agentproto.Container, error) {
	lw, err := lockWorkload(ctx, tx, id)
	if err != nil {
		return lw, nil, err
	}
	if !holds(lw.State) || lw.Host == "" {
		return lw, nil, conflictf("cannot %s workload %s in state %s", what, lw.ID, lw.State)
	}
	ct, err := loadContainer(ctx, tx, lw.ID)
	if err != nil {
		return lw, nil, err
	}
	if ct == nil {
		return lw, nil, conflictf("workload %s is not a container", lw.ID)
	}
	return lw, ct, nil
}

// Rename changes the name (and tells the agent when it has the container).
func (c *Coordinator) Rename(ctx context.Context, id, name string) (Workload, error) {
	if len(name) > 255 {
		return Workload{}, invalidf("name is at most 255 characters")
	}
	if r := badString(name); r != "" {
		return Workload{}, &NULError{Field: "name", Reason: r}
	}
	var out Workload
	err := pg.WithTx(ctx, c.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		lw, err := lockWorkload(ctx, tx, id)
		if err != nil {
			return err
		}
		if lw.State == ledger.StateDeleting {
			return conflictf("cannot rename workload %s while it is being deleted", lw.ID)
		}
		ct, err := loadContainer(ctx, tx, lw.ID)
		if err != nil {
			return err
		}
		if ct != nil {
			ct.Name = name
		}
		if _, err := tx.Exec(ctx, sqlSetName, lw.ID, name, ct); err != nil {
			return fmt.Errorf("renaming workload %s: %w", lw.ID, err)
		}
		if out, err = c.get(ctx, tx, lw.ID); err != nil {
			return err
		}
		if ct != nil && lw.Host != "" {
			return agentEvent(ctx, tx, lw.ID, agentproto.Event{Type: agentproto.EventRename, Host: lw.Host, Container: ct})
		}
		return nil
	})
	return out, err
}

// Resize changes CPU and memory on the same host: the consumer's
// allocations replaced (generation-checked, capacity-checked as PUT
// /allocations), a dedicated workload's pCPUs grown or shrunk in the cells
// it holds, and an update event. What does not fit is ErrConflict.
func (c *Coordinator) Resize(ctx context.Context, id string, cpu *float64, memoryMB *int64) (Workload, error) {
	if cpu == nil && memoryMB == nil {
		return Workload{}, invalidf("a resize needs cpu or memory")
	}
	var out Workload
	err := pg.WithTx(ctx, c.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		lw, ct, err := lockContainer(ctx, tx, id, "resize")
		if err != nil {
			return err
		}
		id := lw.ID
		newCPU, newMem := ct.CPU, lw.Resources.MemoryMB
		if cpu != nil {
			newCPU = *cpu
		}
		if memoryMB != nil {
			newMem = *memoryMB
		}
		res, err := resources(lw.CPUPolicy, newCPU, newMem, lw.Resources.DiskGB)
		if err != nil {
			return err
		}
		h, err := ledger.GetHost(ctx, tx, lw.Host)
		if err != nil {
			return err
		}
		cons, err := store.LockConsumers(ctx, tx, []string{id})
		if err != nil {
			return fmt.Errorf("locking the consumer of workload %s: %w", id, err)
		}
		var gen *int
		if cc := cons[id]; cc != nil {
			g := cc.Generation
			gen = &g
		}
		err = claims.Replace(ctx, tx, claims.Claim{ConsumerUUID: id, ProjectID: lw.ProjectID, UserID: lw.UserID,
			ConsumerType: consumerType(lw.Kind), Generation: gen, Allocations: amounts(h.ProviderUUID, res)})
		if err != nil {
			if errors.Is(err, claims.ErrInvalidInventory) {
				return conflictf("workload %s cannot be resized on host %s: %v", id, lw.Host, err)
			}
			return err
		}
		old, err := ledger.GetAssignment(ctx, tx, id)
		if err != nil {
			return err
		}
		hc, err := loadHostCPUs(ctx, tx, lw.Host)
		if err != nil {
			return err
		}
		cells, err := resizeCells(h, hc, old.Cells, lw.CPUPolicy, res)
		if err != nil {
			return err
		}
		if err := checkCellMemory(ctx, tx, lw.Host, id, cells); err != nil {
			return conflictf("workload %s cannot be resized on host %s: %v", id, lw.Host, err)
		}
		if len(old.Cells) > 0 {
			if err := ledger.Assign(ctx, tx, id, lw.Host, cells); err != nil {
				return err
			}
		}
		oldPinned, newPinned := old.Pinned(), ledger.Assignment{Cells: cells}.Pinned()
		if hc, err = loadHostCPUs(ctx, tx, lw.Host); err != nil {
			return err
		}
		ct.CPU, ct.MemoryMB = newCPU, newMem
		setCpusets(ct, cells, hc)
		if _, err := tx.Exec(ctx, sqlSetResources, id, res.VCPU, res.PCPU, res.MemoryMB, ct); err != nil {
			return fmt.Errorf("recording the new size of workload %s: %w", id, err)
		}
		changed := oldPinned.Difference(newPinned).Union(newPinned.Difference(oldPinned))
		if !hc.shared.Intersection(changed).IsEmpty() {
			if err := hostCPUsEvent(ctx, tx, lw.Host); err != nil {
				return err
			}
		}
		if out, err = c.get(ctx, tx, id); err != nil {
			return err
		}
		return agentEvent(ctx, tx, id, agentproto.Event{Type: agentproto.EventUpdate, Host: lw.Host, Container: ct})
	})
	return out, err
}

// resizeCells is the assignment after a resize: the same cells, memory
// split evenly over them, and for a dedicated workload its pCPUs trimmed
// (highest ids go first) or grown with the lowest free dedicated pCPUs of
// each cell.
func resizeCells(h ledger.Host, hc hostCPUs, old []ledger.CellAssignment, policy scheduler.CPUPolicy, res scheduler.Resources) ([]ledger.CellAssignment, error) {
	n := int64(len(old))
	if n == 0 {
		return nil, nil
	}
	if res.MemoryMB%n != 0 {
		return nil, conflictf("%d MB of memory cannot be split evenly over the workload's %d NUMA cells", res.MemoryMB, n)
	}
	dedicated := policy == scheduler.CPUDedicated
	if dedicated && res.PCPU%n != 0 {
		return nil, conflictf("%d CPUs cannot be split evenly over the workload's %d NUMA cells", res.PCPU, n)
	}
	out := make([]ledger.CellAssignment, len(old))
	for i, oc := range old {
		nc := ledger.CellAssignment{Cell: oc.Cell, MemoryMB: res.MemoryMB / n, CPUs: cpuset.New()}
		if dedicated {
			want := int(res.PCPU / n)
			cur := oc.CPUs.List()
			if want <= len(cur) {
				nc.CPUs = cpuset.New(cur[:want]...)
			} else {
				var cellCPUs cpuset.CPUSet
				for _, hcell := range h.Cells {
					if hcell.ID == oc.Cell {
						cellCPUs = hcell.CPUs
					}
				}
				free := cellCPUs.Intersection(h.DedicatedCPUs).Difference(hc.pinned).List()
				need := want - len(cur)
				if len(free) < need {
					return nil, conflictf("NUMA cell %d of host %s has %d free dedicated CPUs, the resize needs %d more", oc.Cell, h.Name, len(free), need)
				}
				nc.CPUs = oc.CPUs.Union(cpuset.New(free[:need]...))
			}
		}
		out[i] = nc
	}
	return out, nil
}

// settleNaturalExit records that a container which ended by itself (its
// process exited; nobody asked it to stop) should stay stopped, as Zun and
// Docker leave it: without this the desired state still says running, and
// an agent converging after a restart would run a finished batch container
// again. Only a report seen by the agent (not one answering an event) of a
// container the ledger believes active qualifies; Docker's own restart
// policies (always, unless-stopped) keep restarting it, so they are left
// alone.
func settleNaturalExit(ctx context.Context, tx pgx.Tx, lw ledger.Workload, r agentproto.Report) error {
	if r.EventID != 0 || r.ExitCode == nil || lw.State != ledger.StateActive {
		return nil
	}
	ct, err := loadContainer(ctx, tx, lw.ID)
	if err != nil || ct == nil || !ct.Running {
		return err
	}
	switch ct.RestartPolicy.Name {
	case "always", "unless-stopped":
		return nil
	}
	ct.Running = false
	if _, err := tx.Exec(ctx, sqlSetContainer, lw.ID, ct); err != nil {
		return fmt.Errorf("recording that workload %s exited by itself: %w", lw.ID, err)
	}
	return nil
}
