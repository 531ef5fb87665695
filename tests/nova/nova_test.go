// Package nova runs real Nova (Zed, Debian's packages: api, conductor,
// scheduler, two computes on the fake driver, RabbitMQ, Glance, a Neutron
// stand-in) with unisched as its Placement (tests/novaharness), and boots
// servers through the real `openstack` CLI. The packages must be installed
// (tests/novaharness/install.sh): a machine without them fails these tests,
// it never skips them. One environment serves every test of the binary.
package nova

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unisched/unisched/tests/novaharness"
)

var (
	envOnce sync.Once
	env     *novaharness.Env
	envErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if env != nil {
		if err := env.Close(); err != nil {
			fmt.Fprintf(os.Stderr, "stopping the nova environment: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	os.Exit(code)
}

// start brings the environment up once per test binary; its logs go to
// $ARTIFACTS/nova when ARTIFACTS is set.
func start(t *testing.T) *novaharness.Env {
	t.Helper()
	// The test that starts the environment also answers for the
	// computes' registration with Placement.
	since := time.Now()
	envOnce.Do(func() {
		since = time.Time{}
		dir := ""
		if a := os.Getenv("ARTIFACTS"); a != "" {
			dir = filepath.Join(a, "nova")
			_ = os.RemoveAll(dir)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
		defer cancel()
		env, envErr = novaharness.Start(ctx, novaharness.Options{Dir: dir, Computes: computes(), ExtraNovaConf: capacityConf, OwnPostgres: true})
		if envErr != nil {
			return
		}
		for _, tm := range env.Timings {
			t.Logf("start: %-45s %6.1fs", tm.Phase, tm.Took.Seconds())
		}
		t.Logf("nova %s, placement %s (Nova uses the recorder %s), logs in %s", env.NovaURL, env.PlacementURL, env.PlacementWireURL, env.Dir)
	})
	if envErr != nil {
		t.Fatalf("starting real Nova against unisched: %v", envErr)
	}
	t.Cleanup(func() { checkWire(t, since) })
	return env
}

// outages are the windows a fault test had serve down on purpose: the
// recorder answers Nova 503 then (nothing listening), or 502 for an answer
// cut short by the kill.
var outages struct {
	sync.Mutex
	windows [][2]time.Time
}

func outage(from, to time.Time) {
	outages.Lock()
	outages.windows = append(outages.windows, [2]time.Time{from, to})
	outages.Unlock()
}

func inOutage(at time.Time) bool {
	outages.Lock()
	defer outages.Unlock()
	for _, w := range outages.windows {
		if !at.Before(w[0]) && !at.After(w[1]) {
			return true
		}
	}
	return false
}

// checkWire fails the test when Placement answered Nova with a server
// error since the test began, and logs every other refusal (with what
// Nova sent).
func checkWire(t *testing.T, since time.Time) {
	for _, x := range env.Wire.Failures() {
		if x.At.Before(since) {
			continue
		}
		if (x.Status == http.StatusBadGateway || x.Status == http.StatusServiceUnavailable) && inOutage(x.At) {
			t.Logf("placement unreachable while serve was down (expected):\n%s", x)
			continue
		}
		if x.Status >= 500 {
			t.Errorf("placement answered nova with %d:\n%s", x.Status, x)
		} else {
			t.Logf("placement refused a nova request:\n%s", x)
		}
	}
}

// openstack runs the real CLI against nova-api; stdout or a failure.
func openstack(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return openstackVia(t, env.NovaURL, args...)
}

// openstackVia runs the real CLI against another compute endpoint.
func openstackVia(t *testing.T, endpoint string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd, err := env.CLIVia(ctx, endpoint, args...)
	if err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("openstack %s: %w\nstderr: %s\nstdout: %s", strings.Join(args, " "), err, errb.String(), out.String())
	}
	return out.String(), nil
}

type server = novaharness.Server

// boot creates a server with `openstack server create --wait`, requires
// ACTIVE, and logs the boot's times: the CLI's (it polls every few
// seconds) and Nova's own, created to launched_at.
func boot(t *testing.T, name, flavor string) server {
	t.Helper()
	return bootVia(t, env.NovaURL, name, flavor)
}

// bootVia is boot through another compute endpoint (env.ProxyURL).
func bootVia(t *testing.T, endpoint, name, flavor string) server {
	t.Helper()
	t0 := time.Now()
	out, err := openstackVia(t, endpoint, "server", "create", "--image", "cirros-fake", "--flavor", flavor, "--nic", "none", "--wait", "-f", "json", name)
	took := time.Since(t0)
	if err != nil {
		t.Fatalf("%v\n%s", err, env.Logs(20))
	}
	var created struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	if err := json.Unmarshal([]byte(out), &created); err != nil {
		t.Fatalf("server create: output is not the JSON expected: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := env.GetServer(ctx, created.ID)
	if err != nil {
		t.Fatal(err)
	}
	if created.Status != "ACTIVE" || s.Status != "ACTIVE" {
		t.Fatalf("server %s (%s): status %s / %s, fault %v, want ACTIVE\n%s", name, s.ID, created.Status, s.Status, s.Fault, env.Logs(30))
	}
	nova := "?"
	c, err1 := time.Parse(time.RFC3339, s.Created)
	l, err2 := time.Parse("2006-01-02T15:04:05.000000", s.LaunchedAt)
	if err1 == nil && err2 == nil {
		nova = fmt.Sprintf("%.1fs", l.Sub(c).Seconds())
	}
	t.Logf("boot %s (flavor %s): ACTIVE on %s; openstack server create --wait %.1fs; nova created->launched_at %s", name, flavor, s.Hypervisor, took.Seconds(), nova)
	return s
}

// remove deletes a server with the CLI (without --wait: the CLI polls
// every few seconds; the API is polled here every 100 ms instead) and
// waits until unisched's Placement holds nothing for it.
func remove(t *testing.T, s server) {
	t.Helper()
	t0 := time.Now()
	if _, err := openstack(t, "server", "delete", s.ID); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for {
		_, err := env.GetServer(ctx, s.ID)
		var api *novaharness.APIError
		if errors.As(err, &api) && api.Status == http.StatusNotFound {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if ctx.Err() != nil {
			t.Fatalf("server %s still there 2 minutes after openstack server delete\n%s", s.ID, env.Logs(20))
		}
		time.Sleep(100 * time.Millisecond)
	}
	gone := time.Since(t0)
	waitReleased(t, s.ID)
	t.Logf("delete %s: openstack server delete -> 404 in %.1fs, allocation released %.1fs after", s.Name, gone.Seconds(), (time.Since(t0) - gone).Seconds())
}

// waitReleased waits until unisched's Placement holds nothing for
// consumer: nova-compute deletes the allocation after the instance row, so
// it may outlive the server's 404 by a moment.
func waitReleased(t *testing.T, consumer string) time.Duration {
	t.Helper()
	t0 := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		allocs, err := env.Allocations(ctx, consumer)
		if err != nil {
			t.Fatal(err)
		}
		if len(allocs) == 0 {
			return time.Since(t0)
		}
		if ctx.Err() != nil {
			t.Fatalf("server %s deleted, but placement still holds %v for it", consumer, allocs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// allocationOn requires consumer's allocations in unisched's Placement to
// be exactly want on host's provider, for the server's project and user.
func allocationOn(t *testing.T, s server, host string, want map[string]int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rp, err := env.ProviderByName(ctx, host)
	if err != nil || rp == nil {
		t.Fatalf("provider of %s: %v %v", host, rp, err)
	}
	var got struct {
		Allocations map[string]struct {
			Resources map[string]int `json:"resources"`
		} `json:"allocations"`
		ProjectID string `json:"project_id"`
		UserID    string `json:"user_id"`
	}
	if _, err := env.Placement(ctx, http.MethodGet, "/allocations/"+s.ID, nil, &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Allocations) != 1 {
		t.Fatalf("allocations of server %s: %+v, want one provider (%s %s)", s.ID, got.Allocations, host, rp.UUID)
	}
	a, ok := got.Allocations[rp.UUID]
	if !ok {
		t.Fatalf("allocations of server %s are on %v, not on %s's provider %s", s.ID, got.Allocations, host, rp.UUID)
	}
	if fmt.Sprint(a.Resources) != fmt.Sprint(want) {
		t.Fatalf("allocation of server %s on %s: %v, want %v", s.ID, host, a.Resources, want)
	}
	if got.ProjectID != s.TenantID || got.UserID != s.UserID {
		t.Fatalf("allocation of server %s: project %q user %q, want the server's %q %q", s.ID, got.ProjectID, got.UserID, s.TenantID, s.UserID)
	}
}

func TestSharedServer(t *testing.T) {
	start(t)
	s := boot(t, "vm-shared", "m1.tiny")
	if !slices.Contains([]string{"compute-1", "compute-2"}, s.Hypervisor) {
		t.Fatalf("server on %q, want one of the computes", s.Hypervisor)
	}
	allocationOn(t, s, s.Hypervisor, map[string]int{"DISK_GB": 1, "MEMORY_MB": 512, "VCPU": 1})
	createEnd(t, s)
	remove(t, s)
}

// createEnd requires Nova's versioned instance.create.end for s on the bus
// (exchange nova, queue versioned_notifications.info), from s's compute.
func createEnd(t *testing.T, s server) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var seen []string
	for {
		ns, err := env.Notifications("info")
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range ns {
			seen = append(seen, n.EventType+" "+n.Payload.Data.UUID)
			if n.EventType == "instance.create.end" && n.Payload.Data.UUID == s.ID {
				if n.Publisher != "nova-compute:"+s.Host || n.Payload.Data.State != "active" {
					t.Fatalf("instance.create.end of %s: publisher %q state %q, want nova-compute:%s and active", s.ID, n.Publisher, n.Payload.Data.State, s.Host)
				}
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no instance.create.end for %s on versioned_notifications.info; seen: %v", s.ID, seen)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestAPIBootTimes boots through the raw compute API, polling every
// 100 ms, for boot-to-ACTIVE times without the CLI's polling interval.
func TestAPIBootTimes(t *testing.T) {
	start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for i := range 3 {
		s, took, err := env.BootServer(ctx, fmt.Sprintf("vm-api-%d", i), "1")
		if err != nil {
			t.Fatalf("%v\n%s", err, env.Logs(20))
		}
		allocationOn(t, s, s.Hypervisor, map[string]int{"DISK_GB": 1, "MEMORY_MB": 512, "VCPU": 1})
		gone, err := env.DeleteServer(ctx, s.ID)
		if err != nil {
			t.Fatal(err)
		}
		released := waitReleased(t, s.ID)
		t.Logf("api boot %s: POST /servers -> ACTIVE on %s in %.2fs; DELETE -> 404 in %.2fs, allocation gone %.2fs after the 404",
			s.Name, s.Hypervisor, took.Seconds(), gone.Seconds(), released.Seconds())
	}
}

// dedicatedCPUs are compute-2's dedicated host CPUs (DefaultComputes: 2
// cells of 2 shared then 2 dedicated CPUs).
var dedicatedCPUs = []int{2, 3, 6, 7}

type topology struct {
	Nodes []struct {
		HostNode   int            `json:"host_node"`
		VCPUSet    []int          `json:"vcpu_set"`
		CPUPinning map[string]int `json:"cpu_pinning"`
		MemoryMB   int            `json:"memory_mb"`
	} `json:"nodes"`
}

func TestDedicatedServers(t *testing.T) {
	start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, f := range []novaharness.Flavor{
		{Name: "m1.dedicated", VCPUs: 2, RAM: 512, Disk: 1, ExtraSpecs: map[string]string{"hw:cpu_policy": "dedicated"}},
		{Name: "m1.pinned", VCPUs: 2, RAM: 512, Disk: 1, ExtraSpecs: map[string]string{"resources:PCPU": "2", "resources:VCPU": "0"}},
	} {
		if err := env.EnsureFlavor(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	var servers []server
	used := map[int]string{}
	for _, flavor := range []string{"m1.dedicated", "m1.pinned"} {
		s := boot(t, "vm-"+strings.TrimPrefix(flavor, "m1."), flavor)
		servers = append(servers, s)
		if s.Hypervisor != "compute-2" {
			t.Fatalf("%s server on %s, want compute-2 (the only host with PCPU)", flavor, s.Hypervisor)
		}
		allocationOn(t, s, "compute-2", map[string]int{"DISK_GB": 1, "MEMORY_MB": 512, "PCPU": 2})
		var topo topology
		if _, err := env.Nova(ctx, http.MethodGet, "/servers/"+s.ID+"/topology", nil, &topo, "2.78"); err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(topo)
		t.Logf("%s topology: %s", s.Name, b)
		if len(topo.Nodes) != 1 || len(topo.Nodes[0].CPUPinning) != 2 {
			t.Fatalf("%s: topology %s, want one guest node with 2 pinned vCPUs", s.Name, b)
		}
		for guest, host := range topo.Nodes[0].CPUPinning {
			if !slices.Contains(dedicatedCPUs, host) {
				t.Fatalf("%s: vCPU %s pinned to host CPU %d, not one of the dedicated %v", s.Name, guest, host, dedicatedCPUs)
			}
			if other, ok := used[host]; ok {
				t.Fatalf("%s: host CPU %d pinned twice (also %s)", s.Name, host, other)
			}
			used[host] = s.Name
		}
	}
	rp, err := env.ProviderByName(ctx, "compute-2")
	if err != nil || rp == nil {
		t.Fatalf("provider compute-2: %v", err)
	}
	if got := usage(t, rp.UUID)["PCPU"]; got != 4 {
		t.Fatalf("PCPU usage on compute-2: %d, want 4", got)
	}
	for _, s := range servers {
		remove(t, s)
	}
	if got := usage(t, rp.UUID)["PCPU"]; got != 0 {
		t.Fatalf("PCPU usage on compute-2 after the deletes: %d, want 0", got)
	}
}

func usage(t *testing.T, rp string) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out struct {
		Usages map[string]int `json:"usages"`
	}
	if _, err := env.Placement(ctx, http.MethodGet, "/resource_providers/"+rp+"/usages", nil, &out); err != nil {
		var api *novaharness.APIError
		if errors.As(err, &api) {
			t.Fatalf("usages of %s: %v", rp, api)
		}
		t.Fatal(err)
	}
	return out.Usages
}
