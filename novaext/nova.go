package novaext

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"

	"github.com/unisched/unisched/internal/config"
)

// TopologyMicroversion is the compute API version of GET
// /servers/{id}/topology (added in 2.78).
const TopologyMicroversion = "2.78"

// ErrServerNotFound: Nova does not know the server (deleted meanwhile).
var ErrServerNotFound = errors.New("server not found")

// NovaClient calls the compute API for what Placement never tells: a
// server's real NUMA topology and pins, and (for reconciliation) the
// servers themselves.
type NovaClient struct {
	compute *gophercloud.ServiceClient
}

// NewNovaClient builds the compute client from the nova.* keys: Keystone
// when auth_url is set (token and endpoint from the catalog, re-authenticated
// when the token expires), else the fixed endpoint with the configured token
// (Nova's noauth2 trusts "user:project" as given).
func NewNovaClient(ctx context.Context, cfg config.Nova) (*NovaClient, error) {
	httpClient := http.Client{Timeout: cfg.Timeout}
	if cfg.AuthURL != "" {
		opts := gophercloud.AuthOptions{
			IdentityEndpoint: cfg.AuthURL,
			Username:         cfg.Username,
			Password:         cfg.Password,
			TenantName:       cfg.ProjectName,
			DomainName:       cfg.UserDomainName,
			AllowReauth:      true,
		}
		if cfg.ProjectName != "" {
			opts.Scope = &gophercloud.AuthScope{ProjectName: cfg.ProjectName, DomainName: cfg.ProjectDomainName}
		}
		provider, err := openstack.NewClient(cfg.AuthURL)
		if err != nil {
			return nil, fmt.Errorf("nova client: keystone %s: %w", cfg.AuthURL, err)
		}
		provider.HTTPClient = httpClient
		if err := openstack.Authenticate(ctx, provider, opts); err != nil {
			return nil, fmt.Errorf("nova client: authenticating at %s: %w", cfg.AuthURL, err)
		}
		compute, err := openstack.NewComputeV2(provider, gophercloud.EndpointOpts{
			Region: cfg.RegionName, Availability: gophercloud.Availability(cfg.Interface),
		})
		if err != nil {
			return nil, fmt.Errorf("nova client: the compute endpoint: %w", err)
		}
		return &NovaClient{compute: compute}, nil
	}
	if cfg.Endpoint == "" {
		return nil, errors.New("nova client: set nova.auth_url (keystone) or nova.endpoint (with nova.token)")
	}
	provider := &gophercloud.ProviderClient{HTTPClient: httpClient}
	provider.SetToken(cfg.Token)
	endpoint := strings.TrimRight(cfg.Endpoint, "/") + "/"
	return &NovaClient{compute: &gophercloud.ServiceClient{ProviderClient: provider, Endpoint: endpoint, Type: "compute"}}, nil
}

// Compute is the gophercloud compute client, for the servers package and
// others (reconciliation lists servers through it).
func (c *NovaClient) Compute() *gophercloud.ServiceClient { return c.compute }

// ServerTopology is Nova's answer to GET /servers/{id}/topology. HostNode
// and CPUPinning are only shown to admins (policy
// compute:server:topology:host:index).
type ServerTopology struct {
	Nodes      []TopologyNode `json:"nodes"`
	PagesizeKB *int           `json:"pagesize_kb"`
}

// TopologyNode is one guest NUMA node.
type TopologyNode struct {
	// HostNode is the host NUMA cell the guest node is on.
	HostNode *int `json:"host_node"`
	MemoryMB int  `json:"memory_mb"`
	// CPUPinning maps a guest CPU (as a string key) to the host pCPU it is
	// pinned to; empty for a guest with floating CPUs.
	CPUPinning map[string]int `json:"cpu_pinning"`
	VCPUSet    []int          `json:"vcpu_set"`
	Siblings   [][]int        `json:"siblings"`
}

// Topology gets a server's NUMA topology (compute 2.78). A server without
// one has no nodes; a deleted server is ErrServerNotFound.
func (c *NovaClient) Topology(ctx context.Context, serverID string) (*ServerTopology, error) {
	var out ServerTopology
	_, err := c.compute.Get(ctx, c.compute.ServiceURL("servers", serverID, "topology"), &out, &gophercloud.RequestOpts{
		OkCodes: []int{http.StatusOK},
		MoreHeaders: map[string]string{
			"X-OpenStack-Nova-API-Version": TopologyMicroversion,
			"OpenStack-API-Version":        "compute " + TopologyMicroversion,
		},
	})
	if gophercloud.ResponseCodeIs(err, http.StatusNotFound) {
		return nil, fmt.Errorf("topology of server %s: %w", serverID, ErrServerNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("topology of server %s: %w", serverID, err)
	}
	return &out, nil
}

// HostCells is the topology as host cells with the pCPUs pinned in each
// (guest nodes on one host cell merged). ok is false when the topology
// says nothing of the host (no nodes, or not shown to this user): then the
// pins the bridge expected stand.
func (t *ServerTopology) HostCells() (cells []HostCell, ok bool) {
	if t == nil || len(t.Nodes) == 0 {
		return nil, false
	}
	at := map[int]int{}
	for _, n := range t.Nodes {
		if n.HostNode == nil {
			return nil, false
		}
		i, seen := at[*n.HostNode]
		if !seen {
			i = len(cells)
			at[*n.HostNode] = i
			cells = append(cells, HostCell{Cell: *n.HostNode})
		}
		cells[i].MemoryMB += n.MemoryMB
		for _, pcpu := range n.CPUPinning {
			cells[i].CPUs = append(cells[i].CPUs, pcpu)
		}
	}
	for i := range cells {
		slices.Sort(cells[i].CPUs)
	}
	return cells, true
}

// HostCell is the part of a server on one host NUMA cell.
type HostCell struct {
	Cell     int
	CPUs     []int
	MemoryMB int
}
