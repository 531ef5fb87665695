package nova

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// novaCell is one host NUMA cell as nova-compute stored it
// (compute_nodes.numa_topology, an o.vo NUMATopology).
type novaCell struct {
	ID      int   `json:"id"`
	CPUSet  []int `json:"cpuset"`
	PCPUSet []int `json:"pcpuset"`
	Memory  int64 `json:"memory"`
	Pinned  []int `json:"pinned_cpus"`
}

// novaTopology reads a compute's host NUMA cells from nova's cell database.
func novaTopology(ctx context.Context, host string) (uuid string, cells []novaCell, err error) {
	conn, err := pgx.Connect(ctx, env.NovaCellDB)
	if err != nil {
		return "", nil, err
	}
	defer conn.Close(ctx)
	var raw *string
	if err := conn.QueryRow(ctx, `SELECT uuid, numa_topology FROM compute_nodes WHERE host = $1 AND deleted = 0`, host).Scan(&uuid, &raw); err != nil {
		return "", nil, fmt.Errorf("compute node %s: %w", host, err)
	}
	if raw == nil {
		return uuid, nil, nil
	}
	var t struct {
		Data struct {
			Cells []struct {
				Data novaCell `json:"nova_object.data"`
			} `json:"cells"`
		} `json:"nova_object.data"`
	}
	if err := json.Unmarshal([]byte(*raw), &t); err != nil {
		return uuid, nil, fmt.Errorf("decoding the numa topology of %s: %w: %s", host, err, *raw)
	}
	for _, c := range t.Data.Cells {
		cells = append(cells, c.Data)
	}
	return uuid, cells, nil
}

// ledgerCell is a host cell as the ledger has it from the host's agent.
type ledgerCell struct {
	Memory            int64
	Shared, Dedicated []int
}

func ledgerTopology(ctx context.Context, host string) (provider string, cells map[int]*ledgerCell, err error) {
	if err := env.DB.QueryRow(ctx, `SELECT provider_uuid::text FROM bridge_hosts WHERE name = $1`, host).Scan(&provider); err != nil {
		return "", nil, fmt.Errorf("ledger host %s: %w", host, err)
	}
	cells = map[int]*ledgerCell{}
	rows, err := env.DB.Query(ctx, `SELECT c.cell, c.memory_mb FROM bridge_host_cells c JOIN bridge_hosts h ON h.id = c.host_id WHERE h.name = $1`, host)
	if err != nil {
		return "", nil, err
	}
	var id int
	var mem int64
	if _, err := pgx.ForEachRow(rows, []any{&id, &mem}, func() error { cells[id] = &ledgerCell{Memory: mem}; return nil }); err != nil {
		return "", nil, err
	}
	rows, err = env.DB.Query(ctx, `SELECT c.cell, c.cpu, c.dedicated, c.shared FROM bridge_host_cpus c JOIN bridge_hosts h ON h.id = c.host_id
WHERE h.name = $1 ORDER BY c.cpu`, host)
	if err != nil {
		return "", nil, err
	}
	var cpu int
	var ded, sh bool
	_, err = pgx.ForEachRow(rows, []any{&id, &cpu, &ded, &sh}, func() error {
		c := cells[id]
		if c == nil {
			return fmt.Errorf("cpu %d in unknown cell %d", cpu, id)
		}
		if ded {
			c.Dedicated = append(c.Dedicated, cpu)
		}
		if sh {
			c.Shared = append(c.Shared, cpu)
		}
		return nil
	})
	return provider, cells, err
}

// TestAgentsMirrorNova: every Nova compute has a unisched agent of the
// same name whose host in the ledger is Nova's compute node: the same
// provider (Nova's compute node uuid, its inventory left to Nova) and the
// same NUMA cells, shared (cpuset) and dedicated (pcpuset) CPUs and memory.
func TestAgentsMirrorNova(t *testing.T) {
	start(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, c := range env.Computes {
		nodeUUID, ncells, err := novaTopology(ctx, c.Host)
		if err != nil {
			t.Fatal(err)
		}
		provider, lcells, err := ledgerTopology(ctx, c.Host)
		if err != nil {
			t.Fatal(err)
		}
		if provider != nodeUUID {
			t.Errorf("%s: ledger provider %s, nova's compute node %s", c.Host, provider, nodeUUID)
		}
		if len(ncells) != len(lcells) || len(ncells) == 0 {
			t.Fatalf("%s: nova has %d cells %+v, the ledger %d", c.Host, len(ncells), ncells, len(lcells))
		}
		for _, nc := range ncells {
			lc := lcells[nc.ID]
			if lc == nil {
				t.Fatalf("%s: nova cell %d missing in the ledger", c.Host, nc.ID)
			}
			slices.Sort(nc.CPUSet)
			slices.Sort(nc.PCPUSet)
			if !slices.Equal(nc.CPUSet, lc.Shared) || !slices.Equal(nc.PCPUSet, lc.Dedicated) || nc.Memory != lc.Memory {
				t.Errorf("%s cell %d: nova shared %v dedicated %v memory %d; ledger shared %v dedicated %v memory %d",
					c.Host, nc.ID, nc.CPUSet, nc.PCPUSet, nc.Memory, lc.Shared, lc.Dedicated, lc.Memory)
			}
		}
		var traits struct {
			Traits []string `json:"traits"`
		}
		if _, err := env.Placement(ctx, http.MethodGet, "/resource_providers/"+nodeUUID+"/traits", nil, &traits); err != nil {
			t.Fatal(err)
		}
		if slices.Contains(traits.Traits, "CUSTOM_UNISCHED_AGENT_MANAGED") {
			t.Errorf("%s: Nova's provider carries the agent-managed trait: %v", c.Host, traits.Traits)
		}
		t.Logf("%s: agent registered on nova's provider %s, %d cells agree", c.Host, provider, len(ncells))
	}
}
