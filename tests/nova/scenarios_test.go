package nova

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/unisched/unisched/tests/containers"
	"github.com/unisched/unisched/tests/novaharness"
)

// requestID is the request id Nova's services sent Placement for a
// server's create: the create action's request_id (under noauth2 nova-api's
// own local id, the global id it passes on).
func requestID(ctx context.Context, serverID string) (string, error) {
	var out struct {
		Actions []struct {
			Action    string `json:"action"`
			RequestID string `json:"request_id"`
		} `json:"instanceActions"`
	}
	if _, err := env.Nova(ctx, http.MethodGet, "/servers/"+serverID+"/os-instance-actions", nil, &out); err != nil {
		return "", err
	}
	for _, a := range out.Actions {
		if a.Action == "create" {
			return a.RequestID, nil
		}
	}
	return "", fmt.Errorf("server %s has no create action: %+v", serverID, out.Actions)
}

// decidedHost is the host of the latest decision logged under a request
// id ("" when the bridge found none) and how many decisions there are.
func decidedHost(ctx context.Context, reqID string) (string, int, error) {
	var host *string
	var n int
	err := env.DB.QueryRow(ctx, `SELECT (SELECT host FROM bridge_decisions WHERE request_id = $1 ORDER BY id DESC LIMIT 1),
	(SELECT count(*) FROM bridge_decisions WHERE request_id = $1)`, reqID).Scan(&host, &n)
	if err != nil {
		return "", 0, err
	}
	if host == nil {
		return "", n, nil
	}
	return *host, n, nil
}

// onDecidedHost requires s on the host the bridge's decision log chose
// for its request id, and that Nova's candidates query carried that id.
func onDecidedHost(t *testing.T, s server) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	id, err := requestID(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	host, n, err := decidedHost(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatalf("server %s (request %s): no decision logged under its request id", s.ID, id)
	}
	if host != s.Hypervisor {
		t.Fatalf("server %s (request %s) is on %s; the bridge's decision chose %q", s.ID, id, s.Hypervisor, host)
	}
	asked := false
	for _, x := range env.Wire.Exchanges() {
		if strings.HasPrefix(x.URI, "/allocation_candidates") && strings.EqualFold(x.RequestID, id) {
			asked = true
		}
	}
	if !asked {
		t.Fatalf("nova sent no GET /allocation_candidates with request id %s", id)
	}
	t.Logf("%s: request %s, %d decision(s), chosen %s = Nova's host", s.Name, id, n, host)
	return id
}

// TestBootOnChosenHost boots with `openstack server create --wait`
// directly against nova-api and through serve's Nova proxy: ACTIVE on the
// host the bridge's decision log chose for the request id; through the
// proxy the intent (name, flavor) is recorded under that id (an alias).
func TestBootOnChosenHost(t *testing.T) {
	start(t)
	sched, why := has(context.Background(), partSched)
	decided := func(t *testing.T, s server) string {
		if !sched {
			t.Logf("decision log not checked, waiting on novasched: %s", why)
			return ""
		}
		return onDecidedHost(t, s)
	}
	t.Run("direct", func(t *testing.T) {
		s := boot(t, "vm-direct", "m1.tiny")
		decided(t, s)
		allocationOn(t, s, s.Hypervisor, map[string]int{"DISK_GB": 1, "MEMORY_MB": 512, "VCPU": 1})
		agree(t, "after the direct boot", time.Minute)
		remove(t, s)
	})
	t.Run("proxy", func(t *testing.T) {
		need(t, partProxy)
		s := bootVia(t, env.ProxyURL, "vm-proxied", "m1.tiny")
		decided(t, s)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		id, err := requestID(ctx, s.ID)
		if err != nil {
			t.Fatal(err)
		}
		var name, flavorRef string
		err = env.DB.QueryRow(ctx, `SELECT server_name, flavor_ref FROM bridge_vm_intents
WHERE request_id = $1 OR request_id = (SELECT request_id FROM bridge_vm_intent_aliases WHERE alias = $1)`, id).Scan(&name, &flavorRef)
		if errors.Is(err, pgx.ErrNoRows) {
			t.Fatalf("no intent recorded under (or aliased to) request %s", id)
		}
		if err != nil {
			t.Fatal(err)
		}
		if name != "vm-proxied" || flavorRef == "" {
			t.Fatalf("intent of %s: name %q flavor %q, want vm-proxied and the flavor", id, name, flavorRef)
		}
		agree(t, "after the proxied boot", time.Minute)
		remove(t, s)
	})
}

// flavors of the scenarios (created once).
var scenarioFlavors = []novaharness.Flavor{
	{Name: "m1.ded2", ID: "ded2", VCPUs: 2, RAM: 512, Disk: 1, ExtraSpecs: map[string]string{"hw:cpu_policy": "dedicated"}},
	{Name: "m1.c512", ID: "c512", VCPUs: 1, RAM: 512, Disk: 1},
}

func ensureFlavors(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, f := range scenarioFlavors {
		if err := env.EnsureFlavor(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
}

// apiBoot creates a server through the compute API and waits until it is
// ACTIVE or ERROR (either is returned without error).
func apiBoot(ctx context.Context, name, flavorID string) (server, error) {
	s, _, err := env.BootServer(ctx, name, flavorID)
	if err != nil && s.Status == "ERROR" {
		return s, nil
	}
	return s, err
}

// noValidHost reports whether a server in ERROR failed for want of a host.
func noValidHost(s server) bool {
	return strings.Contains(fmt.Sprint(s.Fault), "No valid host")
}

func dedicatedContainer(name string) map[string]any {
	return map[string]any{"image": env.Image, "name": name, "command": []string{"sleep", "3600"},
		"cpu": 2, "memory": 512, "cpu_policy": "dedicated"}
}

// runContainer creates a container and waits until it is Running or in
// Error (either returned without error).
func runContainer(ctx context.Context, body map[string]any) (containers.Container, error) {
	c, err := zun().Create(ctx, body, true)
	if err != nil {
		return c, err
	}
	c, err = zun().WaitStatus(ctx, c.UUID, "Running", "Error")
	if err != nil && c.Status == "Error" {
		return c, nil
	}
	return c, err
}

// deleteAll deletes every server and container and waits until Placement
// holds nothing on the computes.
func deleteAll(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	servers, err := novaServers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := zun().List(ctx, "all_projects=1")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(servers)+len(cs))
	// 8 at a time, a 5xx retried: cleaning up is not the load under test
	slots := make(chan struct{}, 8)
	retry := func(fn func() error) error {
		var err error
		for range 3 {
			slots <- struct{}{}
			err = fn()
			<-slots
			var api *novaharness.APIError
			if err == nil || !(errors.As(err, &api) && api.Status >= 500 || containers.StatusOf(err) >= 500) {
				return err
			}
			time.Sleep(2 * time.Second)
		}
		return err
	}
	for id := range servers {
		wg.Go(func() {
			if err := retry(func() error { _, err := env.DeleteServer(ctx, id); return err }); err != nil {
				errs <- err
			}
		})
	}
	for _, c := range cs {
		wg.Go(func() {
			err := retry(func() error { return zun().Delete(ctx, c.UUID, "force=true") })
			if err != nil && containers.StatusOf(err) != http.StatusNotFound {
				errs <- err
				return
			}
			if err := zun().WaitGone(ctx, c.UUID); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	v := agree(t, "after deleting everything", 2*time.Minute)
	for host, u := range v.Usages {
		for class, n := range u {
			if n != 0 {
				t.Fatalf("after deleting everything %s still uses %d %s", host, n, class)
			}
		}
	}
}

// TestMixed is issue 5's mixed scenario on compute-2 (two NUMA cells of 2
// dedicated CPUs): a dedicated VM takes cell 0; a dedicated container
// asked next lands on cell 1; a third dedicated request of either kind is
// refused and leaves nothing allocated; deleting the VM lets a container
// use cell 0. The four views agree at every step.
func TestMixed(t *testing.T) {
	start(t)
	need(t, partSched)
	ensureFlavors(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	t.Cleanup(func() { deleteAll(t) })
	agree(t, "before", time.Minute)

	cellCPUs := map[int][]int{0: {2, 3}, 1: {6, 7}}
	vm, err := apiBoot(ctx, "mixed-vm", "ded2")
	if err != nil {
		t.Fatal(err)
	}
	if vm.Status != "ACTIVE" || vm.Hypervisor != "compute-2" {
		t.Fatalf("dedicated VM: %s on %q (fault %v), want ACTIVE on compute-2", vm.Status, vm.Hypervisor, vm.Fault)
	}
	onDecidedHost(t, vm)
	pins, err := serverPins(ctx, vm.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(pins[0], cellCPUs[0]) || len(pins) != 1 {
		t.Fatalf("dedicated VM pinned %v by Nova, want cell 0's %v", pins, cellCPUs[0])
	}
	v := agree(t, "dedicated VM on cell 0", time.Minute)
	if w := v.Ledger[vm.ID]; w == nil || !slices.Equal(w.Cells, []int{0}) || !slices.Equal(w.Pinned, cellCPUs[0]) {
		t.Fatalf("ledger VM %s: %+v, want cell 0 pinned %v", vm.ID, w, cellCPUs[0])
	}

	c1, err := runContainer(ctx, dedicatedContainer("mixed-ctr-1"))
	if err != nil {
		t.Fatal(err)
	}
	if c1.Status != "Running" || c1.HostName() != "compute-2" {
		t.Fatalf("dedicated container: %s (%s) on %q, want Running on compute-2", c1.Status, c1.StatusReason, c1.HostName())
	}
	v = agree(t, "dedicated container next", time.Minute)
	if w := v.Ledger[c1.UUID]; w == nil || !slices.Equal(w.Cells, []int{1}) || !slices.Equal(w.Pinned, cellCPUs[1]) {
		t.Fatalf("ledger container %s: %+v, want cell 1 pinned %v", c1.UUID, w, cellCPUs[1])
	}

	// the third dedicated request, of either kind, is refused cleanly
	vm2, err := apiBoot(ctx, "mixed-vm-refused", "ded2")
	if err != nil {
		t.Fatal(err)
	}
	if vm2.Status != "ERROR" || !noValidHost(vm2) {
		t.Fatalf("third dedicated request (VM): %s on %q, fault %v; want ERROR, No valid host", vm2.Status, vm2.Hypervisor, vm2.Fault)
	}
	c2, err := runContainer(ctx, dedicatedContainer("mixed-ctr-refused"))
	if err != nil {
		t.Fatal(err)
	}
	if c2.Status != "Error" {
		t.Fatalf("third dedicated request (container): %s on %q, want Error", c2.Status, c2.HostName())
	}
	v = agree(t, "third dedicated requests refused", time.Minute)
	for _, id := range []string{vm2.ID, c2.UUID} {
		for host, allocs := range v.Allocs {
			if allocs[id] != nil {
				t.Fatalf("refused %s holds %v on %s", id, allocs[id], host)
			}
		}
	}
	if u := v.Usages["compute-2"]["PCPU"]; u != 4 {
		t.Fatalf("compute-2 PCPU usage %d, want 4", u)
	}

	if _, err := env.DeleteServer(ctx, vm.ID); err != nil {
		t.Fatal(err)
	}
	waitReleased(t, vm.ID)
	c3, err := runContainer(ctx, dedicatedContainer("mixed-ctr-3"))
	if err != nil {
		t.Fatal(err)
	}
	if c3.Status != "Running" || c3.HostName() != "compute-2" {
		t.Fatalf("container after the VM's delete: %s (%s) on %q, want Running on compute-2", c3.Status, c3.StatusReason, c3.HostName())
	}
	v = agree(t, "container on cell 0 after the VM's delete", time.Minute)
	if w := v.Ledger[c3.UUID]; w == nil || !slices.Equal(w.Cells, []int{0}) || !slices.Equal(w.Pinned, cellCPUs[0]) {
		t.Fatalf("ledger container %s: %+v, want cell 0 pinned %v", c3.UUID, w, cellCPUs[0])
	}
}

// TestConcurrency creates 40 VMs and 40 containers at once against a
// capacity of 50 (memory: 512 MB each): no provider over capacity, every
// failure clean (ERROR / Error holding nothing), the four views agree.
func TestConcurrency(t *testing.T) {
	start(t)
	ensureFlavors(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	t.Cleanup(func() { deleteAll(t) })
	agree(t, "before", time.Minute)
	const n = 40
	t0 := time.Now()
	var mu sync.Mutex
	var vms []server
	var ctrs []containers.Container
	var errs []error
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			s, err := apiBoot(ctx, fmt.Sprintf("conc-vm-%02d", i), "c512")
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			vms = append(vms, s)
		})
		wg.Go(func() {
			c, err := runContainer(ctx, map[string]any{"image": env.Image, "name": fmt.Sprintf("conc-ctr-%02d", i),
				"command": []string{"sleep", "3600"}, "cpu": 1, "memory": 512})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			ctrs = append(ctrs, c)
		})
	}
	wg.Wait()
	took := time.Since(t0)
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("requests that neither succeeded nor failed cleanly: %v\n%s", err, env.Logs(30))
	}
	okVM, okCtr := 0, 0
	for _, s := range vms {
		switch {
		case s.Status == "ACTIVE":
			okVM++
		case !noValidHost(s) && !strings.Contains(fmt.Sprint(s.Fault), "Exceeded maximum number of retries"):
			t.Errorf("server %s in ERROR for another reason than capacity: %v", s.Name, s.Fault)
		}
	}
	for _, c := range ctrs {
		if c.Status == "Running" {
			okCtr++
		}
	}
	t.Logf("%d VMs + %d containers at once in %.1fs: %d VMs ACTIVE, %d containers Running (capacity %d)", n, n, took.Seconds(), okVM, okCtr, capacity512)
	if okVM+okCtr > capacity512 {
		t.Fatalf("%d workloads run, capacity is %d", okVM+okCtr, capacity512)
	}
	if okVM == 0 || okCtr == 0 {
		t.Fatalf("%d VMs and %d containers run: each kind should get some of the capacity", okVM, okCtr)
	}
	v := agree(t, "after the burst", 3*time.Minute)
	held := 0
	for _, u := range v.Usages {
		held += u["MEMORY_MB"] / 512
	}
	if held != okVM+okCtr {
		t.Fatalf("placement holds memory for %d workloads, %d run", held, okVM+okCtr)
	}
}
