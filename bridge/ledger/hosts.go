package ledger

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"k8s.io/utils/cpuset"

	"github.com/unisched/unisched/internal/pg"
)

// Host is a compute host as its agent describes it: the Placement provider
// it is, its NUMA cells and its CPU pools.
type Host struct {
	ID           int64
	Name         string
	ProviderUUID string
	// AvailabilityZone "" means none (Nova keeps zones in its own host
	// aggregates, not in Placement, so the ledger carries them).
	AvailabilityZone string
	Topology
	// HeartbeatAt is the agent's last heartbeat; zero before the first.
	HeartbeatAt time.Time
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// Topology is a host's NUMA cells and CPU pools. A host without NUMA is
// reported as one cell 0: every CPU the ledger knows is in some cell.
type Topology struct {
	Cells []Cell
	// DedicatedCPUs may be pinned (Nova's cpu_dedicated_set), SharedCPUs
	// are floated over (cpu_shared_set). They may overlap.
	DedicatedCPUs cpuset.CPUSet
	SharedCPUs    cpuset.CPUSet
}

// Cell is one NUMA node.
type Cell struct {
	ID   int
	CPUs cpuset.CPUSet
	// Siblings holds the hyperthreads of each core with more than one; a
	// CPU in no set is a core of its own.
	Siblings []cpuset.CPUSet
	MemoryMB int64
}

// Validate checks what the schema cannot: a CPU in one cell only, sibling
// sets inside their cell and disjoint, pools inside the cells.
func (t Topology) Validate() error {
	all := cpuset.New()
	ids := map[int]bool{}
	for _, c := range t.Cells {
		if c.ID < 0 {
			return invalid("NUMA cell id %d is negative", c.ID)
		}
		if ids[c.ID] {
			return invalid("NUMA cell %d listed twice", c.ID)
		}
		ids[c.ID] = true
		if c.MemoryMB < 0 {
			return invalid("NUMA cell %d has negative memory", c.ID)
		}
		if common := all.Intersection(c.CPUs); !common.IsEmpty() {
			return invalid("CPUs %s are in more than one NUMA cell", common)
		}
		all = all.Union(c.CPUs)
		seen := cpuset.New()
		for _, s := range c.Siblings {
			if s.IsEmpty() || !s.IsSubsetOf(c.CPUs) {
				return invalid("NUMA cell %d: sibling set %q is empty or not in the cell's CPUs %s", c.ID, s, c.CPUs)
			}
			if common := seen.Intersection(s); !common.IsEmpty() {
				return invalid("NUMA cell %d: CPUs %s are in two sibling sets", c.ID, common)
			}
			seen = seen.Union(s)
		}
	}
	if !t.DedicatedCPUs.IsSubsetOf(all) || !t.SharedCPUs.IsSubsetOf(all) {
		return invalid("CPU pools (dedicated %s, shared %s) reach outside the NUMA cells' CPUs %q", t.DedicatedCPUs, t.SharedCPUs, all)
	}
	return nil
}

const (
	upsertHost = `INSERT INTO bridge_hosts (name, provider_uuid, availability_zone)
VALUES ($1, $2, NULLIF($3, ''))
ON CONFLICT (name) DO UPDATE SET provider_uuid = EXCLUDED.provider_uuid,
	availability_zone = EXCLUDED.availability_zone, updated_at = now()
RETURNING id`

	upsertHostCells = `INSERT INTO bridge_host_cells (host_id, cell, memory_mb)
SELECT $1, c, m FROM unnest($2::int[], $3::bigint[]) AS t (c, m)
ON CONFLICT (host_id, cell) DO UPDATE SET memory_mb = EXCLUDED.memory_mb`

	upsertHostCPUs = `INSERT INTO bridge_host_cpus (host_id, cpu, cell, core, dedicated, shared)
SELECT $1, cpu, cell, core, d, s FROM unnest($2::int[], $3::int[], $4::int[], $5::bool[], $6::bool[]) AS t (cpu, cell, core, d, s)
ON CONFLICT (host_id, cpu) DO UPDATE SET cell = EXCLUDED.cell, core = EXCLUDED.core,
	dedicated = EXCLUDED.dedicated, shared = EXCLUDED.shared
WHERE (bridge_host_cpus.cell, bridge_host_cpus.core, bridge_host_cpus.dedicated, bridge_host_cpus.shared)
	IS DISTINCT FROM (EXCLUDED.cell, EXCLUDED.core, EXCLUDED.dedicated, EXCLUDED.shared)`

	deleteOtherHostCPUs  = `DELETE FROM bridge_host_cpus WHERE host_id = $1 AND cpu <> ALL ($2::int[])`
	deleteOtherHostCells = `DELETE FROM bridge_host_cells WHERE host_id = $1 AND cell <> ALL ($2::int[])`

	touchHost = `UPDATE bridge_hosts SET updated_at = now() WHERE id = $1`

	heartbeatHost = `UPDATE bridge_hosts SET heartbeat_at = $2 WHERE name = $1`

	deleteHost = `DELETE FROM bridge_hosts WHERE name = $1`

	selectHosts = `SELECT id, name, provider_uuid::text, COALESCE(availability_zone, ''),
	heartbeat_at, created_at, updated_at FROM bridge_hosts`

	selectHostCells = `SELECT host_id, cell, memory_mb FROM bridge_host_cells`

	selectHostCPUs = `SELECT host_id, cell, cpu, core, dedicated, shared FROM bridge_host_cpus`
)

// RegisterHost records a host (or updates the one of that name) with its
// topology, and returns its id. It writes several tables: run it in a
// transaction. A topology that drops a cell or CPU some workload holds fails
// with ErrInUse; a provider uuid another host has, with ErrExists.
func RegisterHost(ctx context.Context, db pg.DBTX, h Host) (int64, error) {
	if h.Name == "" {
		return 0, invalid("host without a name")
	}
	if err := h.Topology.Validate(); err != nil {
		return 0, fmt.Errorf("registering host %s: %w", h.Name, err)
	}
	var id int64
	if err := db.QueryRow(ctx, upsertHost, h.Name, h.ProviderUUID, h.AvailabilityZone).Scan(&id); err != nil {
		return 0, interpretError(err, fmt.Sprintf("registering host %s", h.Name))
	}
	if err := setTopology(ctx, db, id, h.Topology); err != nil {
		return 0, fmt.Errorf("registering host %s: %w", h.Name, err)
	}
	return id, nil
}

// SetTopology replaces the NUMA topology and CPU pools of a host: what an
// agent reports on start or when the operator changes the pools. It writes
// several tables: run it in a transaction.
func SetTopology(ctx context.Context, db pg.DBTX, host string, t Topology) error {
	if err := t.Validate(); err != nil {
		return fmt.Errorf("setting the topology of host %s: %w", host, err)
	}
	var id int64
	if err := db.QueryRow(ctx, `SELECT id FROM bridge_hosts WHERE name = $1`, host).Scan(&id); err != nil {
		return interpretError(err, fmt.Sprintf("setting the topology of host %s", host))
	}
	if err := setTopology(ctx, db, id, t); err != nil {
		return fmt.Errorf("setting the topology of host %s: %w", host, err)
	}
	return nil
}

// setTopology upserts rather than replaces, so that cells and CPUs held by
// workloads keep their rows (the assignments' foreign keys point at them)
// and only what really disappears is deleted, which fails while held.
func setTopology(ctx context.Context, db pg.DBTX, hostID int64, t Topology) error {
	var cellIDs []int32
	var mems []int64
	var cpus, cells, cores []int32
	var ded, shr []bool
	for _, c := range t.Cells {
		cellIDs = append(cellIDs, int32(c.ID))
		mems = append(mems, c.MemoryMB)
		core := map[int]int{}
		for _, s := range c.Siblings {
			first := s.List()[0]
			for _, cpu := range s.List() {
				core[cpu] = first
			}
		}
		for _, cpu := range c.CPUs.List() {
			k, ok := core[cpu]
			if !ok {
				k = cpu
			}
			cpus = append(cpus, int32(cpu))
			cells = append(cells, int32(c.ID))
			cores = append(cores, int32(k))
			ded = append(ded, t.DedicatedCPUs.Contains(cpu))
			shr = append(shr, t.SharedCPUs.Contains(cpu))
		}
	}
	if cellIDs == nil {
		cellIDs = []int32{}
	}
	if cpus == nil {
		cpus = []int32{}
	}
	if _, err := db.Exec(ctx, upsertHostCells, hostID, cellIDs, mems); err != nil {
		return interpretError(err, "writing NUMA cells")
	}
	if _, err := db.Exec(ctx, upsertHostCPUs, hostID, cpus, cells, cores, ded, shr); err != nil {
		return interpretError(err, "writing CPUs (a CPU held by a workload cannot change cells)")
	}
	if _, err := db.Exec(ctx, deleteOtherHostCPUs, hostID, cpus); err != nil {
		return interpretError(err, "removing CPUs the host no longer has")
	}
	if _, err := db.Exec(ctx, deleteOtherHostCells, hostID, cellIDs); err != nil {
		return interpretError(err, "removing NUMA cells the host no longer has")
	}
	if _, err := db.Exec(ctx, touchHost, hostID); err != nil {
		return interpretError(err, "touching host")
	}
	return nil
}

// Heartbeat records that the host's agent is alive at the given time.
func Heartbeat(ctx context.Context, db pg.DBTX, host string, at time.Time) error {
	tag, err := db.Exec(ctx, heartbeatHost, host, at)
	if err != nil {
		return interpretError(err, fmt.Sprintf("heartbeat of host %s", host))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("heartbeat of host %s: %w", host, ErrNotFound)
	}
	return nil
}

// DeleteHost forgets a host; ErrInUse while workloads are on it.
func DeleteHost(ctx context.Context, db pg.DBTX, host string) error {
	tag, err := db.Exec(ctx, deleteHost, host)
	if err != nil {
		return interpretError(err, fmt.Sprintf("deleting host %s", host))
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("deleting host %s: %w", host, ErrNotFound)
	}
	return nil
}

// GetHost loads one host by name with its topology.
func GetHost(ctx context.Context, db pg.DBTX, name string) (Host, error) {
	hosts, err := loadHosts(ctx, db, ` WHERE name = $1`, ` WHERE host_id = (SELECT id FROM bridge_hosts WHERE name = $1)`, name)
	if err != nil {
		return Host{}, fmt.Errorf("loading host %s: %w", name, err)
	}
	if len(hosts) == 0 {
		return Host{}, fmt.Errorf("loading host %s: %w", name, ErrNotFound)
	}
	return hosts[0], nil
}

// ListHosts loads every host with its topology, by name.
func ListHosts(ctx context.Context, db pg.DBTX) ([]Host, error) {
	hosts, err := loadHosts(ctx, db, "", "")
	if err != nil {
		return nil, fmt.Errorf("listing hosts: %w", err)
	}
	return hosts, nil
}

func loadHosts(ctx context.Context, db pg.DBTX, hostWhere, childWhere string, args ...any) ([]Host, error) {
	rows, err := db.Query(ctx, selectHosts+hostWhere+` ORDER BY name`, args...)
	if err != nil {
		return nil, interpretError(err, "reading hosts")
	}
	hosts, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Host, error) {
		var h Host
		var hb *time.Time
		err := row.Scan(&h.ID, &h.Name, &h.ProviderUUID, &h.AvailabilityZone, &hb, &h.CreatedAt, &h.UpdatedAt)
		if hb != nil {
			h.HeartbeatAt = *hb
		}
		return h, err
	})
	if err != nil {
		return nil, interpretError(err, "reading hosts")
	}
	byID := make(map[int64]*topo, len(hosts))
	for i := range hosts {
		byID[hosts[i].ID] = &topo{}
	}
	if err := readTopologies(ctx, db, childWhere, args, byID); err != nil {
		return nil, err
	}
	for i := range hosts {
		hosts[i].Topology = byID[hosts[i].ID].build()
	}
	return hosts, nil
}

// topo accumulates one host's topology rows.
type topo struct {
	cells []Cell
	cpus  []cpuRow
}

type cpuRow struct {
	cell, cpu, core   int
	dedicated, shared bool
}

func readTopologies(ctx context.Context, db pg.DBTX, where string, args []any, byID map[int64]*topo) error {
	rows, err := db.Query(ctx, selectHostCells+where+` ORDER BY host_id, cell`, args...)
	if err != nil {
		return interpretError(err, "reading NUMA cells")
	}
	var hostID int64
	var c Cell
	_, err = pgx.ForEachRow(rows, []any{&hostID, &c.ID, &c.MemoryMB}, func() error {
		if t := byID[hostID]; t != nil {
			t.cells = append(t.cells, Cell{ID: c.ID, MemoryMB: c.MemoryMB})
		}
		return nil
	})
	if err != nil {
		return interpretError(err, "reading NUMA cells")
	}
	rows, err = db.Query(ctx, selectHostCPUs+where+` ORDER BY host_id, cpu`, args...)
	if err != nil {
		return interpretError(err, "reading CPUs")
	}
	var r cpuRow
	_, err = pgx.ForEachRow(rows, []any{&hostID, &r.cell, &r.cpu, &r.core, &r.dedicated, &r.shared}, func() error {
		if t := byID[hostID]; t != nil {
			t.cpus = append(t.cpus, r)
		}
		return nil
	})
	if err != nil {
		return interpretError(err, "reading CPUs")
	}
	return nil
}

func (t *topo) build() Topology {
	var out Topology
	var ded, shr []int
	cellCPUs := map[int][]int{}
	cores := map[[2]int][]int{}
	for _, r := range t.cpus {
		cellCPUs[r.cell] = append(cellCPUs[r.cell], r.cpu)
		cores[[2]int{r.cell, r.core}] = append(cores[[2]int{r.cell, r.core}], r.cpu)
		if r.dedicated {
			ded = append(ded, r.cpu)
		}
		if r.shared {
			shr = append(shr, r.cpu)
		}
	}
	out.Cells = t.cells
	for i := range out.Cells {
		c := &out.Cells[i]
		c.CPUs = cpuset.New(cellCPUs[c.ID]...)
	}
	keys := make([][2]int, 0, len(cores))
	for k, v := range cores {
		if len(v) > 1 {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b [2]int) int {
		if a[0] != b[0] {
			return a[0] - b[0]
		}
		return a[1] - b[1]
	})
	for _, k := range keys {
		for i := range out.Cells {
			if out.Cells[i].ID == k[0] {
				out.Cells[i].Siblings = append(out.Cells[i].Siblings, cpuset.New(cores[k]...))
			}
		}
	}
	out.DedicatedCPUs = cpuset.New(ded...)
	out.SharedCPUs = cpuset.New(shr...)
	return out
}
