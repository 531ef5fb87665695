package novaharness

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/unisched/unisched/internal/proctest"
)

// APIError is a non-2xx answer of one of the services.
type APIError struct {
	Method, URL string
	Status      int
	Body        string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s %s: %d %s", e.Method, e.URL, e.Status, e.Body)
}

func (e *Env) do(ctx context.Context, method, url string, hdr map[string]string, body, out any) (int, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, err
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := e.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, fmt.Errorf("%s %s: reading the answer: %w", method, url, err)
	}
	if resp.StatusCode/100 != 2 {
		return resp.StatusCode, &APIError{Method: method, URL: url, Status: resp.StatusCode, Body: string(data)}
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: decoding %q: %w", method, url, data, err)
		}
	}
	return resp.StatusCode, nil
}

// Nova calls the compute API as the admin (microversion NovaVersion unless
// mv is given); path is below /v2.1. A non-2xx answer is an *APIError.
func (e *Env) Nova(ctx context.Context, method, path string, body, out any, mv ...string) (int, error) {
	v := NovaVersion
	if len(mv) > 0 {
		v = mv[0]
	}
	tok, err := e.authToken(ctx, AdminToken)
	if err != nil {
		return 0, err
	}
	return e.do(ctx, method, e.NovaURL+path, map[string]string{
		"X-Auth-Token": tok, "OpenStack-API-Version": "compute " + v, "X-OpenStack-Nova-API-Version": v,
	}, body, out)
}

// Placement calls unisched's Placement directly as the admin at 1.39.
func (e *Env) Placement(ctx context.Context, method, path string, body, out any) (int, error) {
	tok, err := e.authToken(ctx, "admin")
	if err != nil {
		return 0, err
	}
	return e.do(ctx, method, e.PlacementURL+path, map[string]string{
		"X-Auth-Token": tok, "OpenStack-API-Version": "placement 1.39",
	}, body, out)
}

// CLIArgs are the arguments that point the real `openstack` CLI at
// nova-api without Keystone (keystoneauth's admin_token plugin).
func (e *Env) CLIArgs() []string { return e.cliArgs(e.NovaURL) }

func (e *Env) cliArgs(endpoint string) []string {
	return []string{"--os-auth-type", "admin_token", "--os-endpoint", endpoint, "--os-token", AdminToken,
		"--os-compute-api-version", NovaVersion}
}

// Provider is a resource provider as GET /resource_providers lists it.
type Provider struct {
	UUID       string `json:"uuid"`
	Name       string `json:"name"`
	Generation int    `json:"generation"`
}

// ProviderByName finds a provider in unisched's Placement (nil: none).
func (e *Env) ProviderByName(ctx context.Context, name string) (*Provider, error) {
	var out struct {
		Providers []Provider `json:"resource_providers"`
	}
	if _, err := e.Placement(ctx, http.MethodGet, "/resource_providers?name="+url.QueryEscape(name), nil, &out); err != nil {
		return nil, err
	}
	if len(out.Providers) == 0 {
		return nil, nil
	}
	return &out.Providers[0], nil
}

// Inventory is the resource classes and totals of a provider.
func (e *Env) Inventory(ctx context.Context, rp string) (map[string]int, error) {
	var out struct {
		Inventories map[string]struct {
			Total int `json:"total"`
		} `json:"inventories"`
	}
	if _, err := e.Placement(ctx, http.MethodGet, "/resource_providers/"+rp+"/inventories", nil, &out); err != nil {
		return nil, err
	}
	inv := map[string]int{}
	for rc, v := range out.Inventories {
		inv[rc] = v.Total
	}
	return inv, nil
}

// Allocations of one consumer in unisched's Placement: provider uuid ->
// resource class -> amount.
func (e *Env) Allocations(ctx context.Context, consumer string) (map[string]map[string]int, error) {
	var out struct {
		Allocations map[string]struct {
			Resources map[string]int `json:"resources"`
		} `json:"allocations"`
	}
	if _, err := e.Placement(ctx, http.MethodGet, "/allocations/"+consumer, nil, &out); err != nil {
		return nil, err
	}
	res := map[string]map[string]int{}
	for rp, a := range out.Allocations {
		res[rp] = a.Resources
	}
	return res, nil
}

// waitNova waits until nova-api answers, the conductor, the scheduler and
// every compute consume their RPC queues, the computes are mapped to cell1
// (the scheduler's periodic discovery) and each compute's provider is in
// unisched's Placement with its inventory.
func (e *Env) waitNova(ctx context.Context) error {
	procs := []*proctest.Process{e.Processes["nova-api"], e.Processes["nova-conductor"], e.Processes["nova-scheduler"]}
	queues := []string{"conductor", "scheduler"}
	for _, c := range e.Computes {
		procs = append(procs, e.Processes["nova-compute-"+c.Host])
		queues = append(queues, "compute."+c.Host)
	}
	// nova-api (procs[0]) moves to another port when its own was taken
	moves := 0
	alive := func() error {
		for i, p := range procs {
			if !p.Exited() {
				continue
			}
			if i == 0 && moves < proctest.PortAttempts-1 && e.novaAPIPortTaken(p) {
				moves++
				np, err := e.moveNovaAPI(ctx)
				if err != nil {
					return fmt.Errorf("moving nova-api off a taken port: %w (it had failed: %v)", err, p.Failed())
				}
				procs[0] = np
				continue
			}
			return p.Failed()
		}
		return nil
	}
	step := func(name string, timeout time.Duration, ready func(context.Context) error) error {
		t0 := time.Now()
		deadline := t0.Add(timeout)
		for {
			if err := alive(); err != nil {
				return err
			}
			err := ready(ctx)
			if err == nil {
				e.timed(name, t0)
				return nil
			}
			if ctx.Err() != nil || time.Now().After(deadline) {
				return fmt.Errorf("nova: %s not ready after %s: %v\n%s", name, timeout, err, e.Logs(15))
			}
			time.Sleep(250 * time.Millisecond)
		}
	}
	if err := step("nova-api", stepTimeout, func(ctx context.Context) error {
		return e.expectStatus(ctx, strings.TrimSuffix(e.NovaURL, "/v2.1")+"/", http.StatusOK)
	}); err != nil {
		return err
	}
	if err := step("rpc consumers", stepTimeout, func(context.Context) error {
		got, err := e.queueConsumers(queues)
		if err != nil {
			return err
		}
		for _, q := range queues {
			if got[q] == 0 {
				return fmt.Errorf("queue %s has no consumer yet (%v)", q, got)
			}
		}
		return nil
	}); err != nil {
		return err
	}
	if err := step("providers in placement", stepTimeout, func(ctx context.Context) error {
		for _, c := range e.Computes {
			rp, err := e.ProviderByName(ctx, c.Host)
			if err != nil {
				return err
			}
			if rp == nil {
				return fmt.Errorf("no provider named %s", c.Host)
			}
			inv, err := e.Inventory(ctx, rp.UUID)
			if err != nil {
				return err
			}
			want := []string{"MEMORY_MB", "DISK_GB", "VCPU"}
			if c.PCPUs > 0 {
				want = append(want, "PCPU")
			}
			for _, rc := range want {
				if inv[rc] == 0 {
					return fmt.Errorf("provider %s has no %s inventory yet (%v)", c.Host, rc, inv)
				}
			}
		}
		return nil
	}); err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, e.NovaAPIDB)
	if err != nil {
		return fmt.Errorf("connecting to nova's API database: %w", err)
	}
	defer conn.Close(ctx)
	return step("hosts mapped to cell1", stepTimeout, func(ctx context.Context) error {
		rows, err := conn.Query(ctx, `SELECT host FROM host_mappings`)
		if err != nil {
			return err
		}
		mapped, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		for _, c := range e.Computes {
			if !slices.Contains(mapped, c.Host) {
				return fmt.Errorf("host %s not mapped yet (mapped: %v)", c.Host, mapped)
			}
		}
		return nil
	})
}

// seed creates flavor m1.tiny and the image cirros-fake.
func (e *Env) seed(ctx context.Context) error {
	if err := e.EnsureFlavor(ctx, Flavor{Name: "m1.tiny", ID: "1", VCPUs: 1, RAM: 512, Disk: 1}); err != nil {
		return err
	}
	var img struct {
		ID string `json:"id"`
	}
	if _, err := e.do(ctx, http.MethodPost, e.GlanceURL+"/v2/images", nil,
		map[string]any{"name": "cirros-fake", "disk_format": "raw", "container_format": "bare"}, &img); err != nil {
		return fmt.Errorf("glance: %w", err)
	}
	if _, err := e.do(ctx, http.MethodPut, e.GlanceURL+"/v2/images/"+img.ID+"/file",
		map[string]string{"Content-Type": "application/octet-stream"}, make([]byte, 1024), nil); err != nil {
		return fmt.Errorf("glance: uploading cirros-fake: %w", err)
	}
	e.ImageID = img.ID
	return nil
}

// Flavor is a flavor to create; ExtraSpecs become its properties.
type Flavor struct {
	Name, ID         string
	VCPUs, RAM, Disk int
	ExtraSpecs       map[string]string
}

// EnsureFlavor creates f unless a flavor of that name exists.
func (e *Env) EnsureFlavor(ctx context.Context, f Flavor) error {
	var list struct {
		Flavors []struct {
			Name string `json:"name"`
		} `json:"flavors"`
	}
	if _, err := e.Nova(ctx, http.MethodGet, "/flavors?is_public=None", nil, &list); err != nil {
		return err
	}
	for _, x := range list.Flavors {
		if x.Name == f.Name {
			return nil
		}
	}
	body := map[string]any{"name": f.Name, "vcpus": f.VCPUs, "ram": f.RAM, "disk": f.Disk}
	if f.ID != "" {
		body["id"] = f.ID
	}
	var out struct {
		Flavor struct {
			ID string `json:"id"`
		} `json:"flavor"`
	}
	if _, err := e.Nova(ctx, http.MethodPost, "/flavors", map[string]any{"flavor": body}, &out); err != nil {
		return err
	}
	if len(f.ExtraSpecs) > 0 {
		if _, err := e.Nova(ctx, http.MethodPost, "/flavors/"+out.Flavor.ID+"/os-extra_specs",
			map[string]any{"extra_specs": f.ExtraSpecs}, nil); err != nil {
			return err
		}
	}
	return nil
}

// Server is what the helpers read of a compute API server.
type Server struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Status     string `json:"status"`
	TenantID   string `json:"tenant_id"`
	UserID     string `json:"user_id"`
	Host       string `json:"OS-EXT-SRV-ATTR:host"`
	TaskState  string `json:"OS-EXT-STS:task_state"`
	Hypervisor string `json:"OS-EXT-SRV-ATTR:hypervisor_hostname"`
	Created    string `json:"created"`
	LaunchedAt string `json:"OS-SRV-USG:launched_at"`
	Fault      any    `json:"fault"`
}

// GetServer reads one server as the admin.
func (e *Env) GetServer(ctx context.Context, id string) (Server, error) {
	var out struct {
		Server Server `json:"server"`
	}
	_, err := e.Nova(ctx, http.MethodGet, "/servers/"+id, nil, &out)
	return out.Server, err
}

// abandonedAfter is how long a server may look abandoned before BootServer
// gives up on it: Nova's API creates a server with task "scheduling", and
// every step of a build keeps a task, so BUILD without one is a build no
// service will carry on (Nova then needs an operator's reset-state).
const abandonedAfter = 15 * time.Second

func abandoned(s Server) bool { return s.Status == "BUILD" && s.TaskState == "" && s.Host == "" }

// BootServer creates a server without a network from the image cirros-fake
// through the raw API and polls it every 100 ms until it is ACTIVE or in
// ERROR; took is POST to the first ACTIVE seen. A server in ERROR is
// returned with an error naming its fault.
func (e *Env) BootServer(ctx context.Context, name, flavorRef string) (s Server, took time.Duration, err error) {
	var created struct {
		Server struct {
			ID string `json:"id"`
		} `json:"server"`
	}
	t0 := time.Now()
	var idle time.Time // since when the server looks abandoned
	body := map[string]any{"server": map[string]any{"name": name, "imageRef": e.ImageID, "flavorRef": flavorRef, "networks": "none"}}
	if _, err := e.Nova(ctx, http.MethodPost, "/servers", body, &created); err != nil {
		return s, 0, err
	}
	for {
		s, err = e.GetServer(ctx, created.Server.ID)
		if err != nil {
			return s, 0, err
		}
		switch s.Status {
		case "ACTIVE":
			return s, time.Since(t0), nil
		case "ERROR":
			return s, time.Since(t0), fmt.Errorf("server %s (%s) went to ERROR: fault %v", name, s.ID, s.Fault)
		}
		if abandoned(s) {
			if idle.IsZero() {
				idle = time.Now()
			} else if time.Since(idle) > abandonedAfter {
				return s, time.Since(t0), fmt.Errorf("server %s (%s) abandoned by Nova: BUILD with no task and no host for %s "+
					"(a compute failed the build and could not hand it back to the conductor; its log says why)", name, s.ID, abandonedAfter)
			}
		} else {
			idle = time.Time{}
		}
		select {
		case <-ctx.Done():
			return s, time.Since(t0), fmt.Errorf("server %s (%s) still %s: %w", name, s.ID, s.Status, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// DeleteServer deletes a server and polls every 100 ms until the API
// answers 404 for it.
func (e *Env) DeleteServer(ctx context.Context, id string) (time.Duration, error) {
	t0 := time.Now()
	if _, err := e.Nova(ctx, http.MethodDelete, "/servers/"+id, nil, nil); err != nil {
		return 0, err
	}
	for {
		_, err := e.GetServer(ctx, id)
		var api *APIError
		if errors.As(err, &api) && api.Status == http.StatusNotFound {
			return time.Since(t0), nil
		}
		if err != nil {
			return time.Since(t0), err
		}
		select {
		case <-ctx.Done():
			return time.Since(t0), fmt.Errorf("server %s not gone: %w", id, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// CLI is the real `openstack` command (Debian's python3-openstackclient,
// run on /usr/bin/python3 with a clean environment) aimed at nova-api as
// the admin, through keystoneauth's admin_token plugin (no Keystone).
func (e *Env) CLI(ctx context.Context, args ...string) (*exec.Cmd, error) {
	return e.CLIVia(ctx, e.NovaURL, args...)
}

// CLIVia is CLI aimed at another compute endpoint (ProxyURL: through
// serve's Nova proxy).
func (e *Env) CLIVia(ctx context.Context, endpoint string, args ...string) (*exec.Cmd, error) {
	const bin = "/usr/bin/openstack"
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("the openstack CLI is not installed (apt-get install python3-openstackclient): %w", err)
	}
	cmd := exec.CommandContext(ctx, "/usr/bin/python3", append(append([]string{bin}, e.cliArgs(endpoint)...), args...)...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + e.Dir, "LANG=C.UTF-8"}
	return cmd, nil
}

// WaitComputesUp waits until nova-api reports every compute service up
// with a heartbeat newer than since (after a RabbitMQ outage the scheduler
// counts a compute whose heartbeats stopped as down, and its ComputeFilter
// leaves it out, until the next reports arrive).
func (e *Env) WaitComputesUp(ctx context.Context, since time.Time, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var out struct {
			Services []struct {
				Host      string `json:"host"`
				State     string `json:"state"`
				UpdatedAt string `json:"updated_at"`
			} `json:"services"`
		}
		_, err := e.Nova(ctx, http.MethodGet, "/os-services?binary=nova-compute", nil, &out)
		if err == nil {
			up := map[string]bool{}
			for _, s := range out.Services {
				t, perr := time.Parse("2006-01-02T15:04:05.000000", s.UpdatedAt)
				if s.State == "up" && perr == nil && t.After(since.UTC()) {
					up[s.Host] = true
				}
			}
			missing := ""
			for _, c := range e.Computes {
				if !up[c.Host] {
					missing += " " + c.Host
				}
			}
			if missing == "" {
				return nil
			}
			err = fmt.Errorf("computes not reported up since %s:%s (%+v)", since.UTC().Format(time.RFC3339), missing, out.Services)
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return fmt.Errorf("after %s: %w", timeout, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
