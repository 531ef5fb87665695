package nova

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/jackc/pgx/v5"

	"github.com/unisched/unisched/bridge/agentproto"
	"github.com/unisched/unisched/tests/containers"
	"github.com/unisched/unisched/tests/novaharness"
)

// The four views of the environment the scenarios compare: unisched's
// ledger, Placement, Nova and Docker.

// zun is an admin client of serve's container API (Zun v1).
func zun() *containers.Zun { return containers.NewZun(env.ContainerURL, novaharness.AdminToken) }

// Parts of issue 5 the scenarios need, probed on the running serve: a
// scenario whose part has not landed yet skips naming it (the probes test
// that the part is there, never how well it works).
const (
	partSched     = "novasched"
	partProxy     = "novaproxy"
	partNotify    = "novanotify"
	partReconcile = "reconcile"
)

// has reports whether serve has a part of issue 5, and why not.
func has(ctx context.Context, part string) (bool, string) {
	switch part {
	case partSched:
		// a candidates query with a request id about the ledger's hosts
		// writes a decision under that id
		id := "req-" + uuid4()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, env.PlacementURL+"/allocation_candidates?resources=VCPU:1,MEMORY_MB:1", nil)
		req.Header.Set("X-Auth-Token", "admin")
		req.Header.Set("OpenStack-API-Version", "placement 1.39")
		req.Header.Set("X-Openstack-Request-Id", id)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		var n int
		if err := env.DB.QueryRow(ctx, `SELECT count(*) FROM bridge_decisions WHERE request_id = $1`, id).Scan(&n); err != nil {
			return false, err.Error()
		}
		return n > 0, "GET /allocation_candidates logs no decision under its request id"
	case partProxy:
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, env.ProxyURL+"/flavors", nil)
		req.Header.Set("X-Auth-Token", novaharness.AdminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false, "nova_proxy.listen does not answer: " + err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, "the proxy answers GET /flavors with " + resp.Status
	case partNotify:
		n, err := env.QueueConsumers("unisched-notifications")
		if err != nil {
			return false, err.Error()
		}
		return n > 0, "nobody consumes the queue unisched-notifications"
	case partReconcile:
		r, err := zun().Do(ctx, http.MethodGet, "/v1/reconciliation", nil)
		if err != nil {
			return false, err.Error()
		}
		ok := r.Status == http.StatusOK || r.Status == http.StatusNotFound && strings.Contains(string(r.Body), "has run yet")
		return ok, fmt.Sprintf("GET /v1/reconciliation: %d %s", r.Status, r.Body)
	}
	return false, "unknown part " + part
}

// need skips the test until serve has the parts (UNISCHED_NOVA_REQUIRE_ALL=1
// fails it instead: for runs that must exercise everything).
func need(t *testing.T, parts ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, p := range parts {
		var ok bool
		var why string
		// the consumer may still be connecting right after a start
		for range 20 {
			if ok, why = has(ctx, p); ok {
				break
			}
			if p != partNotify {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		if !ok {
			if os.Getenv("UNISCHED_NOVA_REQUIRE_ALL") == "1" {
				t.Fatalf("issue 5 part %s missing: %s", p, why)
			}
			t.Skipf("waiting on %s: %s", p, why)
		}
	}
}

func uuid4() string {
	var b [16]byte
	f, _ := os.Open("/dev/urandom")
	_, _ = f.Read(b[:])
	f.Close()
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := fmt.Sprintf("%x", b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// workload is a ledger row (bridge_workloads with its pins).
type workload struct {
	ID, Kind, State, Host string
	VCPU, PCPU, MemoryMB  int64
	DiskGB                int64
	Pinned, Cells         []int
	// container only: the desired cpuset and whether it should run
	Cpuset  string
	Running bool
}

func (w *workload) holds() bool {
	switch w.State {
	case "claimed", "active", "stopped", "deleting":
		return true
	}
	return false
}

func (w *workload) resources() map[string]int {
	m := map[string]int{}
	for c, n := range map[string]int64{"VCPU": w.VCPU, "PCPU": w.PCPU, "MEMORY_MB": w.MemoryMB, "DISK_GB": w.DiskGB} {
		if n != 0 {
			m[c] = int(n)
		}
	}
	return m
}

func ledgerWorkloads(ctx context.Context) (map[string]*workload, error) {
	rows, err := env.DB.Query(ctx, `SELECT w.id::text, w.kind, w.state, COALESCE(h.name, ''), w.vcpu, w.pcpu, w.memory_mb, w.disk_gb, w.container
FROM bridge_workloads w LEFT JOIN bridge_hosts h ON h.id = w.host_id`)
	if err != nil {
		return nil, fmt.Errorf("reading the ledger: %w", err)
	}
	out := map[string]*workload{}
	var w workload
	var ctr []byte
	_, err = pgx.ForEachRow(rows, []any{&w.ID, &w.Kind, &w.State, &w.Host, &w.VCPU, &w.PCPU, &w.MemoryMB, &w.DiskGB, &ctr}, func() error {
		x := w
		if len(ctr) > 0 && string(ctr) != "null" {
			var c agentproto.Container
			if err := json.Unmarshal(ctr, &c); err != nil {
				return fmt.Errorf("workload %s: %w", w.ID, err)
			}
			x.Cpuset, x.Running = c.CpusetCpus, c.Running
		}
		out[x.ID] = &x
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the ledger: %w", err)
	}
	rows, err = env.DB.Query(ctx, `SELECT workload_id::text, cpu FROM bridge_workload_cpus ORDER BY cpu`)
	if err != nil {
		return nil, err
	}
	var id string
	var n int
	if _, err := pgx.ForEachRow(rows, []any{&id, &n}, func() error {
		if w := out[id]; w != nil {
			w.Pinned = append(w.Pinned, n)
		}
		return nil
	}); err != nil {
		return nil, err
	}
	rows, err = env.DB.Query(ctx, `SELECT workload_id::text, cell FROM bridge_workload_cells ORDER BY cell`)
	if err != nil {
		return nil, err
	}
	_, err = pgx.ForEachRow(rows, []any{&id, &n}, func() error {
		if w := out[id]; w != nil {
			w.Cells = append(w.Cells, n)
		}
		return nil
	})
	return out, err
}

// novaServer is a server as the compute API shows it, with its pins.
type novaServer struct {
	novaharness.Server
	TaskState string `json:"OS-EXT-STS:task_state"`
	// Pins are the host CPUs of its topology (2.78), by host cell.
	Pins map[int][]int
}

func (s novaServer) allPins() []int {
	var out []int
	for _, p := range s.Pins {
		out = append(out, p...)
	}
	slices.Sort(out)
	return out
}

func novaServers(ctx context.Context) (map[string]*novaServer, error) {
	var list struct {
		Servers []novaServer `json:"servers"`
	}
	if _, err := env.Nova(ctx, http.MethodGet, "/servers/detail?all_tenants=1", nil, &list); err != nil {
		return nil, err
	}
	out := map[string]*novaServer{}
	for i := range list.Servers {
		s := &list.Servers[i]
		if s.Status == "ACTIVE" {
			var err error
			if s.Pins, err = serverPins(ctx, s.ID); err != nil {
				return nil, err
			}
		}
		out[s.ID] = s
	}
	return out, nil
}

// serverPins is GET /servers/{id}/topology: host cell -> pinned host CPUs.
func serverPins(ctx context.Context, id string) (map[int][]int, error) {
	var topo topology
	if _, err := env.Nova(ctx, http.MethodGet, "/servers/"+id+"/topology", nil, &topo, "2.78"); err != nil {
		return nil, err
	}
	out := map[int][]int{}
	for _, n := range topo.Nodes {
		for _, h := range n.CPUPinning {
			out[n.HostNode] = append(out[n.HostNode], h)
		}
		slices.Sort(out[n.HostNode])
	}
	return out, nil
}

// dockerContainer is a unisched container on the private dockerd.
type dockerContainer struct {
	ID, Host, Workload, Name, State string
	CpusetCpus                      string
}

func dockerContainers(ctx context.Context) (map[string][]dockerContainer, error) {
	list, err := env.Docker.ContainerList(ctx, container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", agentproto.LabelWorkload))})
	if err != nil {
		return nil, err
	}
	out := map[string][]dockerContainer{}
	for _, c := range list {
		ins, err := env.Docker.ContainerInspect(ctx, c.ID)
		if err != nil {
			continue // removed meanwhile; the next round sees it gone
		}
		d := dockerContainer{ID: c.ID[:12], Host: c.Labels[agentproto.LabelHost], Workload: c.Labels[agentproto.LabelWorkload],
			Name: strings.TrimPrefix(ins.Name, "/"), State: c.State, CpusetCpus: ins.HostConfig.CpusetCpus}
		out[d.Workload] = append(out[d.Workload], d)
	}
	return out, nil
}

// machineCPUs are this machine's online CPUs: what the agents' cpusets are
// clamped to (the computes' CPU ids are simulated; a cpuset naming none of
// the machine's CPUs leaves the container unconstrained).
func machineCPUs() []int {
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		return nil
	}
	ids, err := parseList(strings.TrimSpace(string(b)))
	if err != nil {
		return nil
	}
	return ids
}

func parseList(s string) ([]int, error) {
	var out []int
	if s == "" {
		return out, nil
	}
	for part := range strings.SplitSeq(s, ",") {
		lo, hi, rng := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return nil, err
		}
		b := a
		if rng {
			if b, err = strconv.Atoi(hi); err != nil {
				return nil, err
			}
		}
		for i := a; i <= b; i++ {
			out = append(out, i)
		}
	}
	return out, nil
}

func formatList(ids []int) string {
	var parts []string
	for _, i := range ids {
		parts = append(parts, strconv.Itoa(i))
	}
	return strings.Join(parts, ",")
}

// clamped is the cpuset Docker gets for a desired one on this machine.
func clamped(desired string) string {
	ids, err := parseList(desired)
	if err != nil {
		return desired
	}
	avail := machineCPUs()
	var kept []int
	for _, i := range ids {
		if slices.Contains(avail, i) {
			kept = append(kept, i)
		}
	}
	return formatList(kept)
}

// sameList compares two CPU lists by their ids.
func sameList(a, b string) bool {
	x, err1 := parseList(a)
	y, err2 := parseList(b)
	return err1 == nil && err2 == nil && slices.Equal(x, y)
}

// views is one reading of the four views.
type views struct {
	Ledger   map[string]*workload
	Servers  map[string]*novaServer
	Docker   map[string][]dockerContainer
	Allocs   map[string]map[string]map[string]int // host -> consumer -> class -> amount
	Usages   map[string]map[string]int
	Capacity map[string]map[string]int
}

func readViews(ctx context.Context) (*views, error) {
	v := &views{Allocs: map[string]map[string]map[string]int{}, Usages: map[string]map[string]int{}, Capacity: map[string]map[string]int{}}
	var err error
	if v.Ledger, err = ledgerWorkloads(ctx); err != nil {
		return nil, err
	}
	if v.Servers, err = novaServers(ctx); err != nil {
		return nil, err
	}
	if v.Docker, err = dockerContainers(ctx); err != nil {
		return nil, err
	}
	for _, c := range env.Computes {
		rp, err := env.ProviderByName(ctx, c.Host)
		if err != nil || rp == nil {
			return nil, fmt.Errorf("provider of %s: %v", c.Host, err)
		}
		var a struct {
			Allocations map[string]struct {
				Resources map[string]int `json:"resources"`
			} `json:"allocations"`
		}
		if _, err := env.Placement(ctx, http.MethodGet, "/resource_providers/"+rp.UUID+"/allocations", nil, &a); err != nil {
			return nil, err
		}
		v.Allocs[c.Host] = map[string]map[string]int{}
		for consumer, r := range a.Allocations {
			v.Allocs[c.Host][consumer] = r.Resources
		}
		var u struct {
			Usages map[string]int `json:"usages"`
		}
		if _, err := env.Placement(ctx, http.MethodGet, "/resource_providers/"+rp.UUID+"/usages", nil, &u); err != nil {
			return nil, err
		}
		v.Usages[c.Host] = u.Usages
		var inv struct {
			Inventories map[string]struct {
				Total    int     `json:"total"`
				Reserved int     `json:"reserved"`
				Ratio    float64 `json:"allocation_ratio"`
			} `json:"inventories"`
		}
		if _, err := env.Placement(ctx, http.MethodGet, "/resource_providers/"+rp.UUID+"/inventories", nil, &inv); err != nil {
			return nil, err
		}
		v.Capacity[c.Host] = map[string]int{}
		for class, i := range inv.Inventories {
			v.Capacity[c.Host][class] = int(float64(i.Total-i.Reserved) * i.Ratio)
		}
	}
	return v, nil
}

// check is what the four views must say about each other once settled;
// with sched (novasched landed) VMs are in the ledger too, with notify
// (novanotify landed) the ledger has Nova's real pins.
func (v *views) check(sched, notify bool) error {
	var bad []string
	f := func(format string, args ...any) { bad = append(bad, fmt.Sprintf(format, args...)) }
	hostOfConsumer := map[string]string{}
	for host, allocs := range v.Allocs {
		sum := map[string]int{}
		for consumer, res := range allocs {
			hostOfConsumer[consumer] = host
			for c, n := range res {
				sum[c] += n
			}
			w := v.Ledger[consumer]
			s := v.Servers[consumer]
			switch {
			case s != nil:
				if s.Status != "ACTIVE" || s.Hypervisor != host {
					f("allocation on %s of server %s, which is %s on %q", host, consumer, s.Status, s.Hypervisor)
				}
				if sched && (w == nil || !w.holds() || w.Host != host || w.Kind != "vm") {
					f("server %s allocated on %s has no VM in the ledger holding there (%+v)", consumer, host, w)
				} else if sched && !maps.Equal(res, w.resources()) {
					f("server %s: allocation %v, the ledger's VM %v", consumer, res, w.resources())
				}
			case w != nil && w.Kind == "container":
				if !w.holds() || w.Host != host {
					f("leaked allocation on %s: container %s is %s on %q", host, consumer, w.State, w.Host)
				} else if !maps.Equal(res, w.resources()) {
					f("container %s: allocation %v, the ledger %v", consumer, res, w.resources())
				}
			default:
				f("leaked allocation on %s: consumer %s %v is neither a server nor a container", host, consumer, res)
			}
		}
		for c, n := range v.Usages[host] {
			if sum[c] != n {
				f("usage of %s on %s is %d, its allocations sum to %d", c, host, n, sum[c])
			}
			if n > v.Capacity[host][c] {
				f("%s over capacity: %s used %d of %d", host, c, n, v.Capacity[host][c])
			}
		}
	}
	for id, s := range v.Servers {
		switch s.Status {
		case "ACTIVE":
			if hostOfConsumer[id] != s.Hypervisor {
				f("server %s ACTIVE on %s has its allocation on %q", id, s.Hypervisor, hostOfConsumer[id])
			}
		case "ERROR":
			if h := hostOfConsumer[id]; h != "" {
				f("server %s in ERROR still holds an allocation on %s", id, h)
			}
			if w := v.Ledger[id]; sched && w != nil && w.holds() {
				f("server %s in ERROR: its VM holds %s in the ledger (state %s)", id, w.Host, w.State)
			}
		default:
			f("server %s is %s (task %s): not settled", id, s.Status, s.TaskState)
		}
	}
	// pins: one owner per host CPU across Nova's real pins and the ledger
	owner := map[string]string{}
	for id, s := range v.Servers {
		for _, cpu := range s.allPins() {
			owner[fmt.Sprintf("%s/%d", s.Hypervisor, cpu)] = "server " + id
		}
	}
	for id, w := range v.Ledger {
		if !w.holds() {
			if len(w.Pinned) > 0 {
				f("%s %s in state %s still pins %v", w.Kind, id, w.State, w.Pinned)
			}
			continue
		}
		if len(w.Pinned) != int(w.PCPU) {
			f("%s %s pins %v for PCPU %d", w.Kind, id, w.Pinned, w.PCPU)
		}
		switch w.Kind {
		case "vm":
			s := v.Servers[id]
			if s == nil {
				f("ledger VM %s (state %s on %s) has no server in Nova", id, w.State, w.Host)
				continue
			}
			if notify && s.Status == "ACTIVE" && len(s.Pins) > 0 && !slices.Equal(s.allPins(), w.Pinned) {
				f("VM %s: Nova pinned %v, the ledger %v", id, s.allPins(), w.Pinned)
			}
		case "container":
			if w.PCPU > 0 && !sameList(w.Cpuset, formatList(w.Pinned)) {
				f("container %s: pins %v but its desired cpuset is %q", id, w.Pinned, w.Cpuset)
			}
			if notify {
				for _, cpu := range w.Pinned {
					if o := owner[fmt.Sprintf("%s/%d", w.Host, cpu)]; o != "" {
						f("container %s pins CPU %d of %s, which Nova pinned for %s", id, cpu, w.Host, o)
					}
				}
			}
			ds := v.Docker[id]
			if len(ds) != 1 {
				f("container %s (state %s on %s) has %d Docker containers", id, w.State, w.Host, len(ds))
				continue
			}
			d := ds[0]
			if d.Host != w.Host || d.Name != "unisched-"+id {
				f("container %s: Docker's is %s on %s, the ledger's host %s", id, d.Name, d.Host, w.Host)
			}
			if (d.State == "running") != w.Running {
				f("container %s is %s in Docker, the ledger wants running=%v", id, d.State, w.Running)
			}
			if d.State == "running" && w.State != "active" {
				f("container %s runs; the ledger says %s", id, w.State)
			}
			if w.PCPU > 0 && !sameList(d.CpusetCpus, clamped(w.Cpuset)) {
				f("container %s: Docker cpuset %q, the ledger %q (on this machine %q)", id, d.CpusetCpus, w.Cpuset, clamped(w.Cpuset))
			}
		}
	}
	for id, ds := range v.Docker {
		if w := v.Ledger[id]; w == nil || !w.holds() || w.Kind != "container" {
			for _, d := range ds {
				f("orphan Docker container %s (%s, %s on %s)", d.ID, d.Name, d.State, d.Host)
			}
		}
	}
	if len(bad) > 0 {
		slices.Sort(bad)
		if len(bad) > 20 {
			bad = append(bad[:20], fmt.Sprintf("... and %d more", len(bad)-20))
		}
		return errors.New("the views disagree:\n  " + strings.Join(bad, "\n  "))
	}
	return nil
}

// agree polls until the four views agree (the last reading is returned).
func agree(t *testing.T, step string, timeout time.Duration) *views {
	t.Helper()
	ctx := context.Background()
	sched, _ := has(ctx, partSched)
	notify, _ := has(ctx, partNotify)
	var v *views
	var last error
	deadline := time.Now().Add(timeout)
	for {
		c, cancel := context.WithTimeout(ctx, time.Minute)
		var err error
		v, err = readViews(c)
		cancel()
		if err == nil {
			if last = v.check(sched, notify); last == nil {
				return v
			}
		} else {
			last = err
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: after %s: %v\n%s", step, timeout, last, env.Logs(20))
		}
		time.Sleep(250 * time.Millisecond)
	}
}
