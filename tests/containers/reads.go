package containers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/jackc/pgx/v5"

	"github.com/unisched/unisched/bridge/agentproto"
)

// Placement is an admin client of the Placement API for reads.
type Placement struct {
	URL   string
	Token string
	HTTP  *http.Client
}

// Get is GET path at microversion 1.39, decoded into v; non-200 is an error.
func (p *Placement) Get(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("X-Auth-Token", p.Token)
	req.Header.Set("OpenStack-API-Version", "placement 1.39")
	req.Header.Set("Accept", "application/json")
	resp, err := p.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s %s", path, resp.Status, truncate(b))
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("GET %s: decoding %q: %w", path, truncate(b), err)
	}
	return nil
}

// ProviderUUID finds the resource provider named name.
func (p *Placement) ProviderUUID(ctx context.Context, name string) (string, error) {
	var out struct {
		Providers []struct {
			UUID string `json:"uuid"`
		} `json:"resource_providers"`
	}
	if err := p.Get(ctx, "/resource_providers?name="+url.QueryEscape(name), &out); err != nil {
		return "", err
	}
	if len(out.Providers) != 1 {
		return "", fmt.Errorf("%d resource providers named %s", len(out.Providers), name)
	}
	return out.Providers[0].UUID, nil
}

// Usages is a host's provider usage per resource class (classes with no
// inventory are absent; classes with inventory and no use are 0).
func (p *Placement) Usages(ctx context.Context, host string) (map[string]int, error) {
	uuid, err := p.ProviderUUID(ctx, host)
	if err != nil {
		return nil, err
	}
	var out struct {
		Usages map[string]int `json:"usages"`
	}
	return out.Usages, p.Get(ctx, "/resource_providers/"+uuid+"/usages", &out)
}

// Inventory is a host's provider inventory per resource class.
type Inventory struct {
	Total           int     `json:"total"`
	Reserved        int     `json:"reserved"`
	AllocationRatio float64 `json:"allocation_ratio"`
	MinUnit         int     `json:"min_unit"`
	MaxUnit         int     `json:"max_unit"`
	StepSize        int     `json:"step_size"`
}

// Inventories is a host's provider inventory.
func (p *Placement) Inventories(ctx context.Context, host string) (map[string]Inventory, error) {
	uuid, err := p.ProviderUUID(ctx, host)
	if err != nil {
		return nil, err
	}
	var out struct {
		Inventories map[string]Inventory `json:"inventories"`
	}
	return out.Inventories, p.Get(ctx, "/resource_providers/"+uuid+"/inventories", &out)
}

// Allocations is a consumer's allocations: provider uuid -> class -> amount,
// plus its consumer type.
func (p *Placement) Allocations(ctx context.Context, consumer string) (map[string]map[string]int, string, error) {
	var out struct {
		Allocations map[string]struct {
			Resources map[string]int `json:"resources"`
		} `json:"allocations"`
		ConsumerType string `json:"consumer_type"`
	}
	if err := p.Get(ctx, "/allocations/"+consumer, &out); err != nil {
		return nil, "", err
	}
	m := map[string]map[string]int{}
	for rp, a := range out.Allocations {
		m[rp] = a.Resources
	}
	return m, out.ConsumerType, nil
}

// Traits is a host's provider traits.
func (p *Placement) Traits(ctx context.Context, host string) ([]string, error) {
	uuid, err := p.ProviderUUID(ctx, host)
	if err != nil {
		return nil, err
	}
	var out struct {
		Traits []string `json:"traits"`
	}
	return out.Traits, p.Get(ctx, "/resource_providers/"+uuid+"/traits", &out)
}

// Workload is a ledger row as the tests read it (bridge_workloads and the
// assignment tables).
type Workload struct {
	ID            string
	Kind          string
	Name          string
	ProjectID     string
	Host          string // "" when it holds nothing
	State         string
	StatusReason  string
	CPUPolicy     string
	VCPU, PCPU    int64
	MemoryMB      int64
	DiskGB        int64
	RuntimeStatus string
	RuntimeReason string
	ContainerID   string
	Container     *agentproto.Container
	// Cells and PinnedCPUs are the assignment: cell ids and pinned pCPUs.
	Cells      []int
	PinnedCPUs []int
}

// ErrNoWorkload: no ledger row for the id.
var ErrNoWorkload = errors.New("no such workload in the ledger")

// Workload reads one workload from the ledger.
func (e *Env) Workload(ctx context.Context, id string) (Workload, error) {
	var w Workload
	var ctr []byte
	err := e.DB.QueryRow(ctx, `SELECT w.id::text, w.kind, w.name, w.project_id, COALESCE(h.name, ''), w.state,
	w.status_reason, w.cpu_policy, w.vcpu, w.pcpu, w.memory_mb, w.disk_gb, w.runtime_status, w.runtime_reason,
	w.container_id, w.container
FROM bridge_workloads w LEFT JOIN bridge_hosts h ON h.id = w.host_id WHERE w.id = $1::uuid`, id).Scan(
		&w.ID, &w.Kind, &w.Name, &w.ProjectID, &w.Host, &w.State, &w.StatusReason, &w.CPUPolicy, &w.VCPU, &w.PCPU,
		&w.MemoryMB, &w.DiskGB, &w.RuntimeStatus, &w.RuntimeReason, &w.ContainerID, &ctr)
	if errors.Is(err, pgx.ErrNoRows) {
		return w, fmt.Errorf("workload %s: %w", id, ErrNoWorkload)
	}
	if err != nil {
		return w, fmt.Errorf("reading workload %s: %w", id, err)
	}
	if len(ctr) > 0 && string(ctr) != "null" {
		w.Container = &agentproto.Container{}
		if err := json.Unmarshal(ctr, w.Container); err != nil {
			return w, fmt.Errorf("workload %s: decoding its container: %w", id, err)
		}
	}
	rows, err := e.DB.Query(ctx, `SELECT cell FROM bridge_workload_cells WHERE workload_id = $1::uuid ORDER BY cell`, id)
	if err != nil {
		return w, err
	}
	if w.Cells, err = pgx.CollectRows(rows, pgx.RowTo[int]); err != nil {
		return w, fmt.Errorf("reading the cells of %s: %w", id, err)
	}
	rows, err = e.DB.Query(ctx, `SELECT cpu FROM bridge_workload_cpus WHERE workload_id = $1::uuid ORDER BY cpu`, id)
	if err != nil {
		return w, err
	}
	if w.PinnedCPUs, err = pgx.CollectRows(rows, pgx.RowTo[int]); err != nil {
		return w, fmt.Errorf("reading the pinned cpus of %s: %w", id, err)
	}
	return w, nil
}

// PendingEvents counts outbox events not delivered yet.
func (e *Env) PendingEvents(ctx context.Context) (int, error) {
	var n int
	err := e.DB.QueryRow(ctx, `SELECT count(*) FROM bridge_outbox WHERE delivered_at IS NULL`).Scan(&n)
	return n, err
}

// HostPinned is every pinned pCPU of a host in the ledger.
func (e *Env) HostPinned(ctx context.Context, host string) ([]int, error) {
	rows, err := e.DB.Query(ctx, `SELECT p.cpu FROM bridge_workload_cpus p JOIN bridge_hosts h ON h.id = p.host_id
WHERE h.name = $1 ORDER BY p.cpu`, host)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[int])
}

// DockerName is the Docker container name of a workload.
func DockerName(workloadID string) string { return "unisched-" + workloadID }

// Inspect is `docker inspect unisched-<workload id>` on the private dockerd.
func (e *Env) Inspect(ctx context.Context, workloadID string) (container.InspectResponse, error) {
	return e.Docker.ContainerInspect(ctx, DockerName(workloadID))
}

// HostContainers lists the Docker containers labelled with a host
// (running or not).
func (e *Env) HostContainers(ctx context.Context, host string) ([]container.Summary, error) {
	return e.Docker.ContainerList(ctx, container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", agentproto.LabelHost+"="+host))})
}

// Eventually retries check every 100 ms until it returns nil or timeout
// passes, and returns its last error then.
func Eventually(ctx context.Context, timeout time.Duration, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		err := check(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("after %s: %w", timeout, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
