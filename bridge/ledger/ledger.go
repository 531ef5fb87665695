// Package ledger is the bridge's record of where every workload is: hosts
// with their NUMA topology and CPU pools, workloads (VMs and containers in
// one table), the NUMA cells and pCPUs each workload holds, and the log of
// the scheduler's decisions. Placement's tables say how much a host has and
// uses; the ledger says which cell and which CPU ids, which Placement cannot
// express and which both Nova and the container agent must respect.
//
// Like placement/store, every function takes a pg.DBTX and never begins a
// transaction: the coordinator opens one, writes the ledger and the outbox
// event (bridge/outbox) in it, and commits both or neither. Functions that
// write several tables say so and must run inside a transaction.
//
// The database guards the invariant the ledger exists for: the primary key
// of bridge_workload_cpus lets one pCPU of a host be held by one workload
// only, whatever the scheduler or a racing replica believed.
package ledger

import (
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"k8s.io/utils/cpuset"

	"github.com/unisched/unisched/internal/pg"
)

var (
	// ErrNotFound: the host or workload asked for does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists: a workload id (or a host's provider uuid) is taken.
	ErrExists = errors.New("already exists")
	// ErrCPUTaken: an assignment pins a pCPU another workload holds. The
	// claim lost a race (or the scheduler planned on a stale snapshot):
	// re-plan.
	ErrCPUTaken = errors.New("pCPU already held by another workload")
	// ErrInUse: a topology change or host removal would drop cells or CPUs
	// that workloads hold.
	ErrInUse = errors.New("held by a workload")
	// ErrOtherHost: the workload holds resources on another host; release
	// them before assigning it elsewhere.
	ErrOtherHost = errors.New("workload holds resources on another host")
	// ErrInvalid: the input breaks a rule of the ledger (a CPU in two cells,
	// an assignment naming a CPU the cell does not have, ...).
	ErrInvalid = errors.New("invalid ledger input")
)

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// interpretError maps what every query can say: no row, a duplicate key, a
// dangling reference. what is the step, for the message.
func interpretError(err error, what string) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case pg.CodeUniqueViolation:
			if pgErr.ConstraintName == "bridge_workload_cpus_pkey" {
				return fmt.Errorf("%s: %w (%s)", what, ErrCPUTaken, pgErr.Detail)
			}
			return fmt.Errorf("%s: %w (%s)", what, ErrExists, pgErr.Detail)
		case pg.CodeForeignKeyViolation:
			return fmt.Errorf("%s: %w (%s)", what, ErrInUse, pgErr.Detail)
		}
	}
	return fmt.Errorf("%s: %w", what, err)
}

func setOf(ids []int32) cpuset.CPUSet {
	l := make([]int, len(ids))
	for i, c := range ids {
		l[i] = int(c)
	}
	return cpuset.New(l...)
}

func sortedUnique(s []string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}
