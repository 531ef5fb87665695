package bridge

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/unisched/unisched/bridge/agentproto"
	"github.com/unisched/unisched/bridge/ledger"
)

// The coordinator's steps the reconciler (bridge/reconcile) repairs with,
// exported so that a repair runs the same release as a delete or a failed
// create does (Placement allocations, assignment, the host's shared pool
// and its agent's event) inside the reconciler's own transaction, where it
// has just re-checked the divergence under the row lock.

// ForgetWorkload releases everything the workload holds and deletes it, in
// tx; lw must be locked (ledger.LockWorkload). A container on a host is
// also removed from its agent (a forced delete event), rather than waiting
// for the agent's next convergence to find it unwanted.
func ForgetWorkload(ctx context.Context, tx pgx.Tx, lw ledger.Workload) error {
	ct, err := loadContainer(ctx, tx, lw.ID)
	if err != nil {
		return err
	}
	if err := release(ctx, tx, lw); err != nil {
		return err
	}
	if err := ledger.DeleteWorkload(ctx, tx, lw.ID); err != nil {
		return err
	}
	if ct != nil && lw.Host != "" {
		return agentEvent(ctx, tx, lw.ID, agentproto.Event{Type: agentproto.EventDelete, Host: lw.Host, Container: ct, Stop: true, Force: true})
	}
	return nil
}

// ResendDelete writes the delete event of a container being deleted once
// more (forced), in tx with lw locked: its agent never answered the first.
// It reports false when there is nothing to send (no container or host).
func ResendDelete(ctx context.Context, tx pgx.Tx, lw ledger.Workload) (bool, error) {
	ct, err := loadContainer(ctx, tx, lw.ID)
	if err != nil || ct == nil || lw.Host == "" {
		return false, err
	}
	err = agentEvent(ctx, tx, lw.ID, agentproto.Event{Type: agentproto.EventDelete, Host: lw.Host, Container: ct, Stop: true, Force: true})
	return err == nil, err
}
