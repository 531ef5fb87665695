package novaext

import (
	"context"
	"fmt"

	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
	"github.com/gophercloud/gophercloud/v2/pagination"

	"github.com/unisched/unisched/bridge/reconcile"
)

// Servers is Nova's view for reconciliation (reconcile.Servers): every
// server of every project, from GET /servers/detail?all_tenants=1 followed
// page by page (nova-api pages at its max_limit, 1000 by default). It
// needs an admin token: the host and task state are admin-only fields,
// and all_tenants is ignored for others.
type Servers struct {
	client *NovaClient
}

var _ reconcile.Servers = (*Servers)(nil)

// NewServers lists servers through the client.
func NewServers(c *NovaClient) *Servers { return &Servers{client: c} }

// serverFields are the fields of a server the reconciler reads; the rest
// of Nova's large document is left undecoded.
type serverFields struct {
	ID        string  `json:"id"`
	Status    string  `json:"status"`
	Host      *string `json:"OS-EXT-SRV-ATTR:host"`
	TaskState *string `json:"OS-EXT-STS:task_state"`
}

// ListServers returns every server Nova has (deleted ones excluded, as
// the list leaves them out).
func (s *Servers) ListServers(ctx context.Context) ([]reconcile.Server, error) {
	var out []reconcile.Server
	err := servers.List(s.client.compute, servers.ListOpts{AllTenants: true}).EachPage(ctx, func(_ context.Context, p pagination.Page) (bool, error) {
		var page []serverFields
		if err := servers.ExtractServersInto(p, &page); err != nil {
			return false, err
		}
		for _, f := range page {
			srv := reconcile.Server{ID: f.ID, Status: f.Status}
			if f.Host != nil {
				srv.Host = *f.Host
			}
			if f.TaskState != nil {
				srv.TaskState = *f.TaskState
			}
			out = append(out, srv)
		}
		return true, nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing Nova servers (all tenants): %w", err)
	}
	return out, nil
}
