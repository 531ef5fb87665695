package containers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/unisched/unisched/bridge/agentproto"
)

// ledgerRow is one container workload as the agreement check reads it.
type ledgerRow struct {
	ID, State, Host, Runtime string
	VCPU, PCPU, MemoryMB     int64
	DiskGB                   int64
	Running                  bool // the desired state
	Pinned                   []int
}

// holds reports whether a workload in this state keeps its claim.
func (w ledgerRow) holds() bool {
	switch w.State {
	case "claimed", "active", "stopped", "deleting":
		return true
	}
	return false
}

// wantResources is the Placement allocation the workload's claim must be.
func (w ledgerRow) wantResources() map[string]int {
	m := map[string]int{}
	for class, n := range map[string]int64{"VCPU": w.VCPU, "PCPU": w.PCPU, "MEMORY_MB": w.MemoryMB, "DISK_GB": w.DiskGB} {
		if n != 0 {
			m[class] = int(n)
		}
	}
	return m
}

// ledgerContainers reads every container workload and its pins in two
// queries (the check runs in a retry loop over up to a hundred rows).
func (e *Env) ledgerContainers(ctx context.Context) (map[string]*ledgerRow, error) {
	rows, err := e.DB.Query(ctx, `SELECT w.id::text, w.state, COALESCE(h.name, ''), w.runtime_status, w.vcpu, w.pcpu,
	w.memory_mb, w.disk_gb, w.container
FROM bridge_workloads w LEFT JOIN bridge_hosts h ON h.id = w.host_id WHERE w.kind = 'container'`)
	if err != nil {
		return nil, fmt.Errorf("reading the ledger: %w", err)
	}
	out := map[string]*ledgerRow{}
	for rows.Next() {
		var w ledgerRow
		var ctr []byte
		if err := rows.Scan(&w.ID, &w.State, &w.Host, &w.Runtime, &w.VCPU, &w.PCPU, &w.MemoryMB, &w.DiskGB, &ctr); err != nil {
			rows.Close()
			return nil, fmt.Errorf("reading the ledger: %w", err)
		}
		if len(ctr) > 0 && string(ctr) != "null" {
			var c agentproto.Container
			if err := json.Unmarshal(ctr, &c); err != nil {
				rows.Close()
				return nil, fmt.Errorf("workload %s: decoding its container: %w", w.ID, err)
			}
			w.Running = c.Running
		}
		out[w.ID] = &w
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading the ledger: %w", err)
	}
	rows, err = e.DB.Query(ctx, `SELECT workload_id::text, cpu FROM bridge_workload_cpus ORDER BY cpu`)
	if err != nil {
		return nil, fmt.Errorf("reading the pins: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var cpu int
		if err := rows.Scan(&id, &cpu); err != nil {
			return nil, fmt.Errorf("reading the pins: %w", err)
		}
		w := out[id]
		if w == nil {
			return nil, fmt.Errorf("pCPU %d pinned by %s, which is not a container workload", cpu, id)
		}
		w.Pinned = append(w.Pinned, cpu)
	}
	return out, rows.Err()
}

// providerAllocations is GET /resource_providers/{host's uuid}/allocations:
// consumer -> class -> amount; and the provider's usages.
func (e *Env) providerAllocations(ctx context.Context, host string) (map[string]map[string]int, map[string]int, error) {
	uuid, err := e.Placement.ProviderUUID(ctx, host)
	if err != nil {
		return nil, nil, err
	}
	var out struct {
		Allocations map[string]struct {
			Resources map[string]int `json:"resources"`
		} `json:"allocations"`
	}
	if err := e.Placement.Get(ctx, "/resource_providers/"+uuid+"/allocations", &out); err != nil {
		return nil, nil, err
	}
	allocs := map[string]map[string]int{}
	for c, a := range out.Allocations {
		allocs[c] = a.Resources
	}
	var u struct {
		Usages map[string]int `json:"usages"`
	}
	if err := e.Placement.Get(ctx, "/resource_providers/"+uuid+"/usages", &u); err != nil {
		return nil, nil, err
	}
	return allocs, u.Usages, nil
}

// Agreement is what the three records say once they agree.
type Agreement struct {
	// Holding are the workloads that keep a claim, by host; Running those
	// whose container runs, by host.
	Holding, Running map[string][]string
	// Errored are the workloads in state error.
	Errored []string
	Ledger  map[string]*ledgerRow
	// Usages per host as Placement sums them.
	Usages map[string]map[string]int
}

// Agree checks, for the environment's hosts, that the ledger, Placement
// and Docker tell one story, and that every workload is settled (no
// create, delete or report still under way):
//   - every Placement consumer on a host's provider is a workload holding
//     its claim on that host, with exactly its amounts, and every workload
//     holding a claim has one (no leaked, no missing allocation);
//   - usages are the sum of those allocations;
//   - a workload pins exactly its PCPU count of pCPUs, and only while it
//     holds its claim;
//   - every unisched container in Docker belongs to a workload holding its
//     claim on the container's host (no orphan), and every such workload
//     has exactly one container, running when it should run and reported
//     so; workloads in error have no container.
func (e *Env) Agree(ctx context.Context) (Agreement, error) {
	a := Agreement{Holding: map[string][]string{}, Running: map[string][]string{}, Usages: map[string]map[string]int{}}
	led, err := e.ledgerContainers(ctx)
	if err != nil {
		return a, err
	}
	a.Ledger = led
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	for _, w := range led {
		switch {
		case w.State == "error":
			a.Errored = append(a.Errored, w.ID)
			if w.Host != "" {
				bad("workload %s in error still on host %s", w.ID, w.Host)
			}
		case !w.holds():
			bad("workload %s in state %s (not settled)", w.ID, w.State)
		case w.State == "deleting":
			bad("workload %s still deleting", w.ID)
		case w.State == "claimed" && w.Running:
			bad("workload %s still claimed (its agent has not reported it running)", w.ID)
		}
		if w.holds() && w.Host == "" {
			bad("workload %s in state %s has no host", w.ID, w.State)
		}
		if w.holds() {
			if len(w.Pinned) != int(w.PCPU) {
				bad("workload %s pins %v for PCPU %d", w.ID, w.Pinned, w.PCPU)
			}
		} else if len(w.Pinned) > 0 {
			bad("workload %s in state %s still pins %v", w.ID, w.State, w.Pinned)
		}
	}

	for _, spec := range e.opts.Agents {
		host := spec.Host
		allocs, usages, err := e.providerAllocations(ctx, host)
		if err != nil {
			return a, err
		}
		a.Usages[host] = usages
		sum := map[string]int{}
		for consumer, res := range allocs {
			for c, n := range res {
				sum[c] += n
			}
			w := led[consumer]
			switch {
			case w == nil:
				bad("leaked allocation on %s: consumer %s %v has no workload", host, consumer, res)
			case !w.holds() || w.Host != host:
				bad("leaked allocation on %s: consumer %s %v is a workload in state %s on host %q", host, consumer, res, w.State, w.Host)
			case !maps.Equal(res, w.wantResources()):
				bad("allocation of %s on %s is %v, the ledger says %v", consumer, host, res, w.wantResources())
			}
		}
		for c, n := range usages {
			if sum[c] != n {
				bad("usage of %s on %s is %d, its allocations sum to %d", c, host, n, sum[c])
			}
		}
		for _, w := range led {
			if w.holds() && w.Host == host {
				a.Holding[host] = append(a.Holding[host], w.ID)
				if _, ok := allocs[w.ID]; !ok {
					bad("workload %s holds no allocation on %s (state %s)", w.ID, host, w.State)
				}
			}
		}

		list, err := e.HostContainers(ctx, host)
		if err != nil {
			return a, fmt.Errorf("listing the containers of %s: %w", host, err)
		}
		seen := map[string]int{}
		for _, c := range list {
			id := c.Labels[agentproto.LabelWorkload]
			name := ""
			if len(c.Names) > 0 {
				name = strings.TrimPrefix(c.Names[0], "/")
			}
			w := led[id]
			switch {
			case w == nil:
				bad("orphan container %s (%s, %s) on %s: no workload %q", c.ID[:12], name, c.State, host, id)
				continue
			case !w.holds() || w.Host != host:
				bad("orphan container %s (%s, %s) on %s: workload %s is in state %s on host %q", c.ID[:12], name, c.State, host, id, w.State, w.Host)
				continue
			}
			seen[id]++
			if name != DockerName(id) {
				bad("container of %s is named %s", id, name)
			}
			running := c.State == "running"
			if running != w.Running {
				bad("container of %s is %s in Docker, the ledger wants running=%v", id, c.State, w.Running)
			}
			if running && (w.Runtime != "Running" || w.State != "active") {
				bad("container of %s runs in Docker; the ledger says state %s, runtime %q", id, w.State, w.Runtime)
			}
			if running {
				a.Running[host] = append(a.Running[host], id)
			}
		}
		for _, w := range led {
			if w.holds() && w.Host == host && seen[w.ID] != 1 {
				bad("workload %s (state %s) has %d containers on %s", w.ID, w.State, seen[w.ID], host)
			}
		}
		sort.Strings(a.Holding[host])
		sort.Strings(a.Running[host])
	}
	sort.Strings(a.Errored)
	if len(problems) > 0 {
		slices.Sort(problems)
		if len(problems) > 15 {
			problems = append(problems[:15], fmt.Sprintf("... and %d more", len(problems)-15))
		}
		return a, errors.New("the ledger, Placement and Docker disagree:\n  " + strings.Join(problems, "\n  "))
	}
	return a, nil
}

// total is the number of workloads across hosts.
func total(m map[string][]string) int {
	n := 0
	for _, l := range m {
		n += len(l)
	}
	return n
}
