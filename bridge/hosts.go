package bridge

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"k8s.io/utils/cpuset"

	"github.com/unisched/unisched/bridge/agentproto"
	"github.com/unisched/unisched/bridge/ledger"
	"github.com/unisched/unisched/bridge/scheduler"
	"github.com/unisched/unisched/internal/pg"
	"github.com/unisched/unisched/placement/store"
)

// topology turns an agent's registration into the ledger's topology.
func topology(reg agentproto.Registration) (ledger.Topology, error) {
	var t ledger.Topology
	parse := func(what, s string) (cpuset.CPUSet, error) {
		set, err := agentproto.ParseCPUs(s)
		if err != nil {
			return cpuset.New(), invalidf("%s %q is not a CPU list: %v", what, s, err)
		}
		return set, nil
	}
	for _, c := range reg.Cells {
		cpus, err := parse(fmt.Sprintf("NUMA cell %d CPUs", c.ID), c.CPUs)
		if err != nil {
			return t, err
		}
		cell := ledger.Cell{ID: c.ID, CPUs: cpus, MemoryMB: c.MemoryMB}
		for _, s := range c.Siblings {
			sib, err := parse(fmt.Sprintf("NUMA cell %d siblings", c.ID), s)
			if err != nil {
				return t, err
			}
			cell.Siblings = append(cell.Siblings, sib)
		}
		t.Cells = append(t.Cells, cell)
	}
	var err error
	if t.DedicatedCPUs, err = parse("dedicated CPUs", reg.DedicatedCPUs); err != nil {
		return t, err
	}
	if t.SharedCPUs, err = parse("shared CPUs", reg.SharedCPUs); err != nil {
		return t, err
	}
	if err := t.Validate(); err != nil {
		return t, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return t, nil
}

// inventory is what an agent-owned provider offers: the shared pool as
// VCPU (overcommitted), the dedicated pool as PCPU (never), the cells'
// memory and the disk. A class with nothing to offer is left out, as
// Placement refuses a total of 0.
func (c *Coordinator) inventory(reg agentproto.Registration, t ledger.Topology) ([]store.Inventory, error) {
	ratio := func(v, def float64) float64 {
		if v > 0 {
			return v
		}
		return def
	}
	var mem int64
	for _, cell := range t.Cells {
		mem += cell.MemoryMB
	}
	if reg.ReservedMemoryMB < 0 || reg.ReservedMemoryMB > mem {
		return nil, invalidf("reserved memory %d MB is outside the host's %d MB", reg.ReservedMemoryMB, mem)
	}
	if mem > store.MaxInt || reg.DiskGB > store.MaxInt || reg.DiskGB < 0 {
		return nil, invalidf("memory %d MB or disk %d GB out of range", mem, reg.DiskGB)
	}
	var out []store.Inventory
	add := func(class string, total, reserved int64, r float64) {
		if total <= 0 {
			return
		}
		inv := store.NewInventory(class, int(total))
		inv.Reserved, inv.MaxUnit, inv.AllocationRatio = int(reserved), int(total), r
		out = append(out, inv)
	}
	add(string(scheduler.VCPU), int64(t.SharedCPUs.Size()), 0, ratio(reg.CPUAllocationRatio, c.opts.CPUAllocationRatio))
	add(string(scheduler.PCPU), int64(t.DedicatedCPUs.Size()), 0, 1)
	add(string(scheduler.MemoryMB), mem, reg.ReservedMemoryMB, ratio(reg.RAMAllocationRatio, c.opts.RAMAllocationRatio))
	add(string(scheduler.DiskGB), reg.DiskGB, 0, ratio(reg.DiskAllocationRatio, c.opts.DiskAllocationRatio))
	return out, nil
}

func sameInventory(have, want []store.Inventory) bool {
	if len(have) != len(want) {
		return false
	}
	byClass := map[string]store.Inventory{}
	for _, i := range have {
		byClass[i.ResourceClass] = i
	}
	for _, w := range want {
		h, ok := byClass[w.ResourceClass]
		if !ok || h.Total != w.Total || h.Reserved != w.Reserved || h.MinUnit != w.MinUnit ||
			h.MaxUnit != w.MaxUnit || h.StepSize != w.StepSize || h.AllocationRatio != w.AllocationRatio {
			return false
		}
	}
	return true
}

// RegisterHost records (or refreshes) an agent's host (see Service).
func (c *Coordinator) RegisterHost(ctx context.Context, reg agentproto.Registration) (agentproto.RegistrationResult, error) {
	if reg.Host == "" || len(reg.Host) > 200 {
		return agentproto.RegistrationResult{}, invalidf("host name %q must be 1 to 200 characters", reg.Host)
	}
	var sc strChecker
	sc.str("host", reg.Host)
	sc.str("agent_url", reg.AgentURL)
	sc.str("availability_zone", reg.AvailabilityZone)
	sc.str("dedicated_cpus", reg.DedicatedCPUs)
	sc.str("shared_cpus", reg.SharedCPUs)
	sc.str("os", reg.OS)
	sc.str("kernel_version", reg.KernelVersion)
	sc.str("architecture", reg.Architecture)
	for _, cell := range reg.Cells {
		sc.str("cells.cpus", cell.CPUs)
		sc.strs("cells.siblings", cell.Siblings)
	}
	if err := sc.result(); err != nil {
		return agentproto.RegistrationResult{}, err
	}
	if reg.AgentURL != "" {
		u, err := url.Parse(reg.AgentURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return agentproto.RegistrationResult{}, invalidf("agent url %q is not an http(s) URL", reg.AgentURL)
		}
	}
	t, err := topology(reg)
	if err != nil {
		return agentproto.RegistrationResult{}, err
	}
	invs, err := c.inventory(reg, t)
	if err != nil {
		return agentproto.RegistrationResult{}, err
	}
	var res agentproto.RegistrationResult
	// Two registrations of a new host race to create its provider: the
	// loser finds the winner's on its second attempt.
	for attempt := 0; ; attempt++ {
		res, err = c.register(ctx, reg, t, invs)
		if attempt < 3 && (errors.Is(err, store.ErrExists) || errors.Is(err, store.ErrConcurrentUpdate) || pg.IsRetryable(err)) {
			continue
		}
		return res, err
	}
}

func (c *Coordinator) register(ctx context.Context, reg agentproto.Registration, t ledger.Topology, invs []store.Inventory) (agentproto.RegistrationResult, error) {
	var res agentproto.RegistrationResult
	err := pg.WithTx(ctx, c.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		var p *store.Provider
		var rpUUID string
		err := tx.QueryRow(ctx, sqlProviderByName, reg.Host).Scan(&rpUUID)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			if p, err = store.CreateProvider(ctx, tx, uuid.NewString(), reg.Host, nil); err != nil {
				return fmt.Errorf("creating the provider of host %s: %w", reg.Host, err)
			}
			tr, _, err := store.EnsureTrait(ctx, tx, AgentManagedTrait)
			if err != nil {
				return err
			}
			if err := store.SetProviderTraits(ctx, tx, p, []int64{tr.ID}); err != nil {
				return fmt.Errorf("marking the provider of host %s: %w", reg.Host, err)
			}
			res.OwnsInventory = true
		case err != nil:
			return fmt.Errorf("finding the provider of host %s: %w", reg.Host, err)
		default:
			if p, err = store.GetProvider(ctx, tx, rpUUID); err != nil {
				return fmt.Errorf("loading the provider of host %s: %w", reg.Host, err)
			}
			if err := tx.QueryRow(ctx, sqlProviderHasTrait, p.ID, AgentManagedTrait).Scan(&res.OwnsInventory); err != nil {
				return fmt.Errorf("reading the traits of host %s: %w", reg.Host, err)
			}
		}
		res.ProviderUUID = p.UUID
		if res.OwnsInventory {
			have, err := store.ListInventories(ctx, tx, p.ID)
			if err != nil {
				return err
			}
			if !sameInventory(have, invs) {
				if _, err := store.ReplaceInventories(ctx, tx, p, slices.Clone(invs)); err != nil {
					var inUse *store.InventoryInUseError
					if errors.As(err, &inUse) {
						return conflictf("host %s: %v", reg.Host, err)
					}
					return fmt.Errorf("writing the inventory of host %s: %w", reg.Host, err)
				}
			}
		}
		_, err = ledger.RegisterHost(ctx, tx, ledger.Host{Name: reg.Host, ProviderUUID: p.UUID, AvailabilityZone: reg.AvailabilityZone, Topology: t})
		switch {
		case errors.Is(err, ledger.ErrInUse):
			return conflictf("host %s: %v", reg.Host, err)
		case errors.Is(err, ledger.ErrExists):
			return conflictf("host %s: its provider %s belongs to another host: %v", reg.Host, p.UUID, err)
		case errors.Is(err, ledger.ErrInvalid):
			return fmt.Errorf("%w: %w", ErrInvalid, err)
		case err != nil:
			return err
		}
		if _, err := tx.Exec(ctx, sqlSetAgent, reg.Host, reg.AgentURL, reg.OS, reg.KernelVersion, reg.Architecture); err != nil {
			return fmt.Errorf("recording the agent of host %s: %w", reg.Host, err)
		}
		return nil
	})
	return res, err
}

// Desired is every container that should be on the host, with the cpusets
// it should have now (a shared container follows the host's free shared
// pool), and the pool itself.
func (c *Coordinator) Desired(ctx context.Context, host string) (agentproto.Desired, error) {
	if badString(host) != "" {
		return agentproto.Desired{}, fmt.Errorf("host %q: %w", host, ErrNotFound)
	}
	out := agentproto.Desired{Host: host, Containers: []agentproto.Container{}}
	err := pg.WithTx(ctx, c.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var u string
		if err := tx.QueryRow(ctx, sqlHostAgent, host).Scan(&u); errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("host %s: %w", host, ErrNotFound)
		} else if err != nil {
			return fmt.Errorf("looking up host %s: %w", host, err)
		}
		hc, err := loadHostCPUs(ctx, tx, host)
		if err != nil {
			return err
		}
		out.SharedCPUs = hc.freeShared().String()
		lws, err := ledger.ListWorkloads(ctx, tx, ledger.WorkloadFilter{Host: host, Kind: scheduler.KindContainer,
			States: []ledger.State{ledger.StateClaimed, ledger.StateActive, ledger.StateStopped}})
		if err != nil {
			return err
		}
		ws, err := c.complete(ctx, tx, lws)
		if err != nil {
			return err
		}
		for _, w := range ws {
			if w.Container == nil {
				continue
			}
			ct := *w.Container
			setCpusets(&ct, w.Assignment.Cells, hc)
			out.Containers = append(out.Containers, ct)
		}
		return nil
	})
	return out, err
}

// AgentURL is the URL the host's agent registered; ErrNotFound for a host
// no agent registered.
func (c *Coordinator) AgentURL(ctx context.Context, host string) (string, error) {
	return agentURL(ctx, c.pool, host)
}

func agentURL(ctx context.Context, db pg.DBTX, host string) (string, error) {
	if badString(host) != "" {
		return "", fmt.Errorf("host %q: %w", host, ErrNotFound)
	}
	var u string
	err := db.QueryRow(ctx, sqlHostAgent, host).Scan(&u)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("host %s: %w", host, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("looking up the agent of host %s: %w", host, err)
	}
	if u == "" {
		return "", fmt.Errorf("host %s has no agent URL: %w", host, ErrNotFound)
	}
	return u, nil
}

// ListHosts returns every registered host in name order with its
// provider's inventory and usage (see Service).
func (c *Coordinator) ListHosts(ctx context.Context) ([]HostInfo, error) {
	var out []HostInfo
	err := pg.WithTx(ctx, c.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		hosts, err := ledger.ListHosts(ctx, tx)
		if err != nil {
			return err
		}
		out = make([]HostInfo, len(hosts))
		at := make(map[string]*HostInfo, len(hosts))
		for i, h := range hosts {
			out[i] = HostInfo{Host: h, Resources: map[string]HostResource{}}
			at[h.Name] = &out[i]
		}
		rows, err := tx.Query(ctx, sqlHostExtras)
		if err != nil {
			return fmt.Errorf("reading hosts: %w", err)
		}
		var name, agent, osName, kernel, arch string
		var workloads, running int
		_, err = pgx.ForEachRow(rows, []any{&name, &agent, &osName, &kernel, &arch, &workloads, &running}, func() error {
			if h := at[name]; h != nil {
				h.AgentURL, h.OS, h.KernelVersion, h.Architecture = agent, osName, kernel, arch
				h.Workloads, h.Running = workloads, running
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("reading hosts: %w", err)
		}
		rows, err = tx.Query(ctx, sqlHostResources)
		if err != nil {
			return fmt.Errorf("reading host inventories: %w", err)
		}
		var class string
		var r HostResource
		var total, reserved int32
		_, err = pgx.ForEachRow(rows, []any{&name, &class, &total, &reserved, &r.AllocationRatio, &r.Used}, func() error {
			if h := at[name]; h != nil {
				r.Total, r.Reserved = int64(total), int64(reserved)
				h.Resources[class] = r
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("reading host inventories: %w", err)
		}
		return nil
	})
	return out, err
}
