package ledger

import (
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/unisched/unisched/bridge/scheduler"
	"github.com/unisched/unisched/internal/pg"
)

// The snapshot's queries, sent in one batch. Placement's side is read here
// rather than through placement/store because the scheduler wants root
// providers with their usage already summed, keyed as the ledger keys them;
// the tables are the same ones, in the same transaction.
const (
	snapHosts = `SELECT id, name, provider_uuid::text, COALESCE(availability_zone, '') FROM bridge_hosts`

	snapCellUse = `SELECT host_id, cell, sum(memory_mb)::bigint FROM bridge_workload_cells GROUP BY host_id, cell`

	snapPins = `SELECT host_id, cell, workload_id::text, array_agg(cpu ORDER BY cpu)
FROM bridge_workload_cpus GROUP BY host_id, cell, workload_id ORDER BY host_id, cell, workload_id`

	snapWorkloads = `SELECT host_id, id::text, kind, project_id, COALESCE(server_group, ''), cpu_policy
FROM bridge_workloads WHERE host_id IS NOT NULL ORDER BY host_id, created_at, id`

	// Compute hosts as Placement knows them: root providers with VCPU or
	// PCPU inventory (a Nova compute, whether or not an agent described
	// it), and the providers of the ledger's hosts.
	snapComputeProviders = `SELECT rp.id, rp.uuid::text, rp.name FROM resource_providers rp
WHERE rp.parent_provider_id IS NULL AND (
	EXISTS (SELECT 1 FROM inventories i JOIN resource_classes rc ON rc.id = i.resource_class_id
		WHERE i.resource_provider_id = rp.id AND rc.name IN ('VCPU', 'PCPU'))
	OR rp.uuid IN (SELECT provider_uuid FROM bridge_hosts))`

	snapInventories = `SELECT i.resource_provider_id, rc.name, i.total, i.reserved, i.min_unit, i.max_unit,
	i.step_size, i.allocation_ratio, COALESCE(u.used, 0)
FROM inventories i
JOIN resource_classes rc ON rc.id = i.resource_class_id
JOIN resource_providers rp ON rp.id = i.resource_provider_id AND rp.parent_provider_id IS NULL
LEFT JOIN (SELECT resource_provider_id, resource_class_id, sum(used)::bigint AS used FROM allocations
	GROUP BY resource_provider_id, resource_class_id) u
	ON u.resource_provider_id = i.resource_provider_id AND u.resource_class_id = i.resource_class_id`

	snapTraits = `SELECT rpt.resource_provider_id, t.name FROM resource_provider_traits rpt
JOIN traits t ON t.id = rpt.trait_id
JOIN resource_providers rp ON rp.id = rpt.resource_provider_id AND rp.parent_provider_id IS NULL`

	snapAggregates = `SELECT rpa.resource_provider_id, a.uuid::text FROM resource_provider_aggregates rpa
JOIN placement_aggregates a ON a.id = rpa.aggregate_id
JOIN resource_providers rp ON rp.id = rpa.resource_provider_id AND rp.parent_provider_id IS NULL`
)

// Snapshot builds the scheduler's view of every host, VMs and containers
// alike, from the ledger and Placement's tables in one REPEATABLE READ
// transaction, so that usage, pins and topology are of one instant.
func Snapshot(ctx context.Context, db pg.Beginner) (*scheduler.Snapshot, error) {
	var hosts []scheduler.HostState
	err := pg.WithTx(ctx, db, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var err error
		hosts, err = LoadHostStates(ctx, tx)
		return err
	})
	if err != nil {
		return nil, err
	}
	snap, err := scheduler.NewSnapshot(hosts)
	if err != nil {
		return nil, fmt.Errorf("building the scheduler snapshot: %w", err)
	}
	return snap, nil
}

// LoadHostStates reads every host as the scheduler sees it. Run it in a
// REPEATABLE READ transaction (Snapshot does): its queries must agree.
//
// A host is a ledger host (named as the ledger names it, with its
// topology, pools, pins and workloads) or a compute provider of Placement
// that no agent described (named as its provider, without NUMA topology, as
// a Nova-only host is). Inventories, usage, traits and aggregates are those
// of the root provider; a ledger host whose provider is gone has none, so no
// request fits it.
func LoadHostStates(ctx context.Context, db pg.DBTX) ([]scheduler.HostState, error) {
	b := &pgx.Batch{}
	for _, q := range []string{
		snapHosts, selectHostCells + ` ORDER BY host_id, cell`, selectHostCPUs + ` ORDER BY host_id, cpu`, snapCellUse, snapPins, snapWorkloads,
		snapComputeProviders, snapInventories, snapTraits, snapAggregates,
	} {
		b.Queue(q)
	}
	res := db.SendBatch(ctx, b)
	defer res.Close()
	l := snapLoader{res: res, ledger: map[int64]*ledgerHost{}, byUUID: map[string]*scheduler.HostState{}}
	steps := []struct {
		what string
		fn   func() error
	}{
		{"hosts", l.hosts}, {"NUMA cells", l.cells}, {"CPUs", l.cpus}, {"cell memory", l.cellUse},
		{"pinned CPUs", l.pins}, {"workloads", l.workloads}, {"compute providers", l.providers},
		{"inventories", l.inventories}, {"traits", l.traits}, {"aggregates", l.aggregates},
	}
	for _, s := range steps {
		if err := s.fn(); err != nil {
			return nil, interpretError(err, "snapshot: reading "+s.what)
		}
	}
	if err := res.Close(); err != nil {
		return nil, interpretError(err, "snapshot")
	}
	return l.result(), nil
}

type ledgerHost struct {
	state  scheduler.HostState
	topo   topo
	cellAt map[int]int // cell id -> index in state.Cells
}

type snapLoader struct {
	res    pgx.BatchResults
	ledger map[int64]*ledgerHost
	order  []*ledgerHost
	// byUUID: every host of the snapshot by provider uuid.
	byUUID map[string]*scheduler.HostState
	// rpHost: Placement provider id -> host.
	rpHost map[int64]*scheduler.HostState
	extra  []*scheduler.HostState
}

func (l *snapLoader) each(scans []any, fn func() error) error {
	rows, err := l.res.Query()
	if err != nil {
		return err
	}
	_, err = pgx.ForEachRow(rows, scans, fn)
	return err
}

func (l *snapLoader) hosts() error {
	var id int64
	var name, uuid, az string
	return l.each([]any{&id, &name, &uuid, &az}, func() error {
		h := &ledgerHost{state: scheduler.HostState{Name: name, ProviderUUID: uuid, AvailabilityZone: az}, cellAt: map[int]int{}}
		l.ledger[id] = h
		l.order = append(l.order, h)
		return nil
	})
}

func (l *snapLoader) cells() error {
	var hostID int64
	var c Cell
	return l.each([]any{&hostID, &c.ID, &c.MemoryMB}, func() error {
		if h := l.ledger[hostID]; h != nil {
			h.topo.cells = append(h.topo.cells, Cell{ID: c.ID, MemoryMB: c.MemoryMB})
		}
		return nil
	})
}

func (l *snapLoader) cpus() error {
	var hostID int64
	var r cpuRow
	err := l.each([]any{&hostID, &r.cell, &r.cpu, &r.core, &r.dedicated, &r.shared}, func() error {
		if h := l.ledger[hostID]; h != nil {
			h.topo.cpus = append(h.topo.cpus, r)
		}
		return nil
	})
	if err != nil {
		return err
	}
	// The topology is complete: lay out the cells the usage rows fill in.
	for _, h := range l.order {
		t := h.topo.build()
		h.state.DedicatedCPUs, h.state.SharedCPUs = t.DedicatedCPUs, t.SharedCPUs
		for i, c := range t.Cells {
			h.state.Cells = append(h.state.Cells, scheduler.NUMACell{ID: c.ID, CPUs: c.CPUs, Siblings: c.Siblings, MemoryMB: c.MemoryMB})
			h.cellAt[c.ID] = i
		}
	}
	return nil
}

func (l *snapLoader) cell(hostID int64, cell int) *scheduler.NUMACell {
	h := l.ledger[hostID]
	if h == nil {
		return nil
	}
	i, ok := h.cellAt[cell]
	if !ok {
		return nil
	}
	return &h.state.Cells[i]
}

func (l *snapLoader) cellUse() error {
	var hostID, used int64
	var cell int
	return l.each([]any{&hostID, &cell, &used}, func() error {
		if c := l.cell(hostID, cell); c != nil {
			c.MemoryUsedMB = used
		}
		return nil
	})
}

func (l *snapLoader) pins() error {
	var hostID int64
	var cell int
	var workload string
	var cpus []int32
	return l.each([]any{&hostID, &cell, &workload, &cpus}, func() error {
		if c := l.cell(hostID, cell); c != nil {
			c.Pinned = append(c.Pinned, scheduler.Pin{Workload: workload, CPUs: setOf(cpus)})
		}
		return nil
	})
}

func (l *snapLoader) workloads() error {
	var hostID int64
	var w scheduler.Workload
	return l.each([]any{&hostID, &w.ID, &w.Kind, &w.Project, &w.Group, &w.CPUPolicy}, func() error {
		if h := l.ledger[hostID]; h != nil {
			h.state.Workloads = append(h.state.Workloads, w)
		}
		return nil
	})
}

func (l *snapLoader) providers() error {
	names := make(map[string]bool, len(l.order))
	for _, h := range l.order {
		l.byUUID[h.state.ProviderUUID] = &h.state
		names[h.state.Name] = true
	}
	l.rpHost = map[int64]*scheduler.HostState{}
	var id int64
	var uuid, name string
	return l.each([]any{&id, &uuid, &name}, func() error {
		if h := l.byUUID[uuid]; h != nil {
			l.rpHost[id] = h
			return nil
		}
		// A provider named like a ledger host it is not: the ledger's
		// host wins, as two hosts of one name cannot be told apart.
		if names[name] {
			return nil
		}
		h := &scheduler.HostState{Name: name, ProviderUUID: uuid}
		l.byUUID[uuid] = h
		l.rpHost[id] = h
		l.extra = append(l.extra, h)
		return nil
	})
}

func (l *snapLoader) inventories() error {
	var rp int64
	var rc string
	var inv scheduler.Inventory
	return l.each([]any{&rp, &rc, &inv.Total, &inv.Reserved, &inv.MinUnit, &inv.MaxUnit, &inv.StepSize, &inv.AllocationRatio, &inv.Used}, func() error {
		h := l.rpHost[rp]
		if h == nil {
			return nil
		}
		if h.Inventories == nil {
			h.Inventories = map[scheduler.ResourceClass]scheduler.Inventory{}
		}
		h.Inventories[scheduler.ResourceClass(rc)] = inv
		return nil
	})
}

func (l *snapLoader) traits() error {
	var rp int64
	var name string
	return l.each([]any{&rp, &name}, func() error {
		if h := l.rpHost[rp]; h != nil {
			h.Traits = append(h.Traits, name)
		}
		return nil
	})
}

func (l *snapLoader) aggregates() error {
	var rp int64
	var uuid string
	return l.each([]any{&rp, &uuid}, func() error {
		if h := l.rpHost[rp]; h != nil {
			h.Aggregates = append(h.Aggregates, uuid)
		}
		return nil
	})
}

func (l *snapLoader) result() []scheduler.HostState {
	out := make([]scheduler.HostState, 0, len(l.order)+len(l.extra))
	for _, h := range l.order {
		out = append(out, h.state)
	}
	for _, h := range l.extra {
		out = append(out, *h)
	}
	for i := range out {
		h := &out[i]
		h.Traits = sortedUnique(h.Traits)
		h.Aggregates = sortedUnique(h.Aggregates)
	}
	slices.SortFunc(out, func(a, b scheduler.HostState) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return out
}
