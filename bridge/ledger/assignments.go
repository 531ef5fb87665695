package ledger

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"k8s.io/utils/cpuset"

	"github.com/unisched/unisched/bridge/scheduler"
	"github.com/unisched/unisched/internal/pg"
)

// Assignment is what a workload holds on its host: a share of some NUMA
// cells and, when dedicated, pinned pCPUs in them.
type Assignment struct {
	Host  string
	Cells []CellAssignment
}

// CellAssignment is the share of one cell.
type CellAssignment struct {
	Cell int
	// CPUs are the pinned pCPUs; empty for a shared workload, which floats
	// over the host's shared pool and holds no CPU id.
	CPUs     cpuset.CPUSet
	MemoryMB int64
}

// Pinned returns every pinned pCPU of the assignment.
func (a Assignment) Pinned() cpuset.CPUSet {
	s := cpuset.New()
	for _, c := range a.Cells {
		s = s.Union(c.CPUs)
	}
	return s
}

// FromPlacement turns the scheduler's choice into ledger cells. A shared
// placement's CPUs are the pool it floats over, not CPUs it holds, so they
// are left out.
func FromPlacement(p scheduler.Placement) []CellAssignment {
	cells := make([]CellAssignment, 0, len(p.Cells))
	for _, c := range p.Cells {
		ca := CellAssignment{Cell: c.Cell, MemoryMB: c.MemoryMB, CPUs: cpuset.New()}
		if p.Dedicated {
			ca.CPUs = c.CPUs
		}
		cells = append(cells, ca)
	}
	return cells
}

const (
	// The workload takes the host unless it holds resources on another.
	setWorkloadHost = `WITH h AS (SELECT id FROM bridge_hosts WHERE name = $2)
UPDATE bridge_workloads w SET host_id = h.id, updated_at = now()
FROM h WHERE w.id = $1 AND (w.host_id IS NULL OR w.host_id = h.id)
RETURNING w.host_id`

	workloadHostState = `SELECT COALESCE(h.name, ''), (SELECT count(*) FROM bridge_hosts WHERE name = $2)
FROM bridge_workloads w LEFT JOIN bridge_hosts h ON h.id = w.host_id WHERE w.id = $1`

	deleteWorkloadCells = `DELETE FROM bridge_workload_cells WHERE workload_id = $1`

	insertWorkloadCells = `INSERT INTO bridge_workload_cells (workload_id, host_id, cell, memory_mb)
SELECT $1, $2, c, m FROM unnest($3::int[], $4::bigint[]) AS t (c, m)`

	insertWorkloadCPUs = `INSERT INTO bridge_workload_cpus (host_id, cpu, workload_id, cell)
SELECT $2, cpu, $1, c FROM unnest($3::int[], $4::int[]) AS t (cpu, c)`

	clearWorkloadHost = `UPDATE bridge_workloads SET host_id = NULL, updated_at = now() WHERE id = $1`

	selectAssignment = `SELECT h.name, wc.cell, wc.memory_mb,
	COALESCE((SELECT array_agg(cpu ORDER BY cpu) FROM bridge_workload_cpus p
		WHERE p.workload_id = wc.workload_id AND p.cell = wc.cell), '{}')
FROM bridge_workload_cells wc JOIN bridge_hosts h ON h.id = wc.host_id
WHERE wc.workload_id = $1 ORDER BY wc.cell`
)

// Assign records that the workload holds the cells (and pCPUs) on the host,
// replacing what it held there before (a re-pin). It writes several tables:
// run it in the claim's transaction, with the outbox event. A pCPU another
// workload holds fails with ErrCPUTaken; a workload on another host, with
// ErrOtherHost (Release first); a cell or CPU the host does not have, with
// ErrInvalid.
func Assign(ctx context.Context, db pg.DBTX, workloadID, host string, cells []CellAssignment) error {
	what := fmt.Sprintf("assigning workload %s to host %s", workloadID, host)
	var cellIDs []int32
	var mems []int64
	var cpus, cpuCells []int32
	seenCell := map[int]bool{}
	for _, c := range cells {
		if seenCell[c.Cell] {
			return fmt.Errorf("%s: %w", what, invalid("NUMA cell %d listed twice", c.Cell))
		}
		seenCell[c.Cell] = true
		if c.MemoryMB < 0 {
			return fmt.Errorf("%s: %w", what, invalid("negative memory in cell %d", c.Cell))
		}
		cellIDs = append(cellIDs, int32(c.Cell))
		mems = append(mems, c.MemoryMB)
		for _, cpu := range c.CPUs.List() {
			cpus = append(cpus, int32(cpu))
			cpuCells = append(cpuCells, int32(c.Cell))
		}
	}
	var hostID int64
	err := db.QueryRow(ctx, setWorkloadHost, workloadID, host).Scan(&hostID)
	if err != nil {
		return assignFailure(ctx, db, what, workloadID, host, err)
	}
	if _, err := db.Exec(ctx, deleteWorkloadCells, workloadID); err != nil {
		return interpretError(err, what)
	}
	if len(cellIDs) > 0 {
		if _, err := db.Exec(ctx, insertWorkloadCells, workloadID, hostID, cellIDs, mems); err != nil {
			return assignRefError(err, what, "a NUMA cell the host does not have")
		}
	}
	if len(cpus) > 0 {
		if _, err := db.Exec(ctx, insertWorkloadCPUs, workloadID, hostID, cpus, cpuCells); err != nil {
			return assignRefError(err, what, "a CPU that is not in its cell on the host")
		}
	}
	return nil
}

// assignFailure explains why the workload did not take the host.
func assignFailure(ctx context.Context, db pg.DBTX, what, workloadID, host string, err error) error {
	if err := interpretError(err, what); !errors.Is(err, ErrNotFound) {
		return err
	}
	var current string
	var hosts int
	if err := db.QueryRow(ctx, workloadHostState, workloadID, host).Scan(&current, &hosts); err != nil {
		return interpretError(err, what+": workload")
	}
	if hosts == 0 {
		return fmt.Errorf("%s: host: %w", what, ErrNotFound)
	}
	return fmt.Errorf("%s: %w (%s)", what, ErrOtherHost, current)
}

// assignRefError: a foreign key violation here means the input named
// something the host lacks, not that something is in use.
func assignRefError(err error, what, ref string) error {
	if pg.HasCode(err, pg.CodeForeignKeyViolation) {
		return fmt.Errorf("%s: %w", what, invalid("%s: %v", ref, err))
	}
	return interpretError(err, what)
}

// Release frees everything the workload holds and detaches it from its
// host. Releasing a workload that holds nothing is not an error.
func Release(ctx context.Context, db pg.DBTX, workloadID string) error {
	what := fmt.Sprintf("releasing workload %s", workloadID)
	if _, err := db.Exec(ctx, deleteWorkloadCells, workloadID); err != nil {
		return interpretError(err, what)
	}
	tag, err := db.Exec(ctx, clearWorkloadHost, workloadID)
	if err != nil {
		return interpretError(err, what)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return nil
}

// GetAssignment returns what the workload holds; an empty Assignment when
// it holds no cell (a shared workload without NUMA needs holds only its
// host, which the workload row says).
func GetAssignment(ctx context.Context, db pg.DBTX, workloadID string) (Assignment, error) {
	rows, err := db.Query(ctx, selectAssignment, workloadID)
	if err != nil {
		return Assignment{}, interpretError(err, fmt.Sprintf("loading the assignment of workload %s", workloadID))
	}
	var a Assignment
	var host string
	var c CellAssignment
	var cpus []int32
	_, err = pgx.ForEachRow(rows, []any{&host, &c.Cell, &c.MemoryMB, &cpus}, func() error {
		a.Host = host
		a.Cells = append(a.Cells, CellAssignment{Cell: c.Cell, MemoryMB: c.MemoryMB, CPUs: setOf(cpus)})
		return nil
	})
	if err != nil {
		return Assignment{}, interpretError(err, fmt.Sprintf("loading the assignment of workload %s", workloadID))
	}
	return a, nil
}
