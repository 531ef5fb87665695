package reconcile

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/unisched/unisched/bridge"
	"github.com/unisched/unisched/bridge/ledger"
	"github.com/unisched/unisched/internal/pg"
	"github.com/unisched/unisched/placement/store"
)

// errMoved: the divergence is not what the snapshot showed any more; the
// repair did nothing.
var errMoved = errors.New("changed since the snapshot")

// repair carries out d's action in its own transaction and records the
// result on d.
func (r *Reconciler) repair(ctx context.Context, d *Divergence) {
	var err error
	switch d.Action {
	case ActionDeleteAllocation:
		err = pg.WithTx(ctx, r.pool, pgx.TxOptions{}, func(tx pgx.Tx) error { return deleteAllocation(ctx, tx, d) })
	case ActionReleaseDelete, ActionReap:
		err = pg.WithTx(ctx, r.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
			lw, err := lockSame(ctx, tx, d)
			if err != nil {
				return err
			}
			if d.Kind == KindLedgerOrphan && d.ConsumerUUID == "" {
				// found without an allocation: one written since means
				// Placement and the ledger agree again.
				var has bool
				if err := tx.QueryRow(ctx, sqlConsumerHasAllocations, lw.ID).Scan(&has); err != nil {
					return fmt.Errorf("re-reading the allocations of %s: %w", lw.ID, err)
				}
				if has {
					return errMoved
				}
			}
			return bridge.ForgetWorkload(ctx, tx, lw)
		})
	case ActionResendDelete:
		err = pg.WithTx(ctx, r.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
			lw, err := lockSame(ctx, tx, d)
			if err != nil {
				return err
			}
			if _, err := bridge.ResendDelete(ctx, tx, lw); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, sqlMarkResent, lw.ID, resentMarker); err != nil {
				return fmt.Errorf("marking the delete of %s sent again: %w", lw.ID, err)
			}
			return nil
		})
	case ActionCreateVM:
		err = r.cfg.CreateVM(ctx, d.ServerID)
	default:
		err = fmt.Errorf("unknown action %q", d.Action)
	}
	switch {
	case err == nil:
		d.Result = ResultRepaired
	case errors.Is(err, errMoved):
		d.Result, d.Error = ResultResolved, err.Error()
	default:
		d.Result, d.Error = ResultFailed, err.Error()
	}
}

// lockSame locks the divergence's workload and checks it is still in the
// state and on the host the snapshot saw (and, when the snapshot saw a
// status reason, that one too): otherwise errMoved. A workload gone is
// errMoved as well.
func lockSame(ctx context.Context, tx pgx.Tx, d *Divergence) (ledger.Workload, error) {
	lw, err := ledger.LockWorkload(ctx, tx, d.WorkloadID)
	if errors.Is(err, ledger.ErrNotFound) {
		return lw, fmt.Errorf("workload %s is gone: %w", d.WorkloadID, errMoved)
	}
	if err != nil {
		return lw, err
	}
	if string(lw.State) != d.seenState || lw.Host != d.Host || lw.StatusReason != d.seenReason {
		return lw, fmt.Errorf("workload %s is now %s on %q: %w", lw.ID, lw.State, lw.Host, errMoved)
	}
	return lw, nil
}

// deleteAllocation removes a leaked consumer's allocations (and the
// consumer) if, under its lock, it is at the generation the snapshot saw
// and no workload took a host for it meanwhile.
func deleteAllocation(ctx context.Context, tx pgx.Tx, d *Divergence) error {
	var gen int32
	var held bool
	err := tx.QueryRow(ctx, sqlConsumerState, d.ConsumerUUID).Scan(&gen, &held)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("consumer %s is gone: %w", d.ConsumerUUID, errMoved)
	}
	if err != nil {
		return fmt.Errorf("locking consumer %s: %w", d.ConsumerUUID, err)
	}
	if int(gen) != d.seenGeneration || held {
		return fmt.Errorf("consumer %s is at generation %d (was %d), held by a workload: %v: %w", d.ConsumerUUID, gen, d.seenGeneration, held, errMoved)
	}
	if err := store.DeleteAllAllocationsOfConsumer(ctx, tx, d.ConsumerUUID); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("consumer %s holds nothing: %w", d.ConsumerUUID, errMoved)
		}
		return err
	}
	return nil
}
