// Package dashboard tests serve's read-only dashboard end to end: a real
// `unisched serve` with the dashboard on, agents describing their hosts'
// NUMA topology to it over a private dockerd (tests/containers), real
// state made through the public APIs (a dedicated and a shared container,
// a VM claimed through Placement as Nova claims it, a refused request),
// and the page read in headless Chromium driven by chromedp: the DOM must
// show what the ledger says, and a full-page screenshot goes to the test
// artifacts.
//
// Chromium and Docker missing skip the test, unless
// UNISCHED_REQUIRE_OPERATIONS=1 (the operations step in CI): then they
// fail it.
package dashboard

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/unisched/unisched/bridge/agentproto"
	"github.com/unisched/unisched/bridge/ledger"
	"github.com/unisched/unisched/bridge/scheduler"
	"github.com/unisched/unisched/imagesec/advise"
	"github.com/unisched/unisched/imagesec/inspect"
	imstore "github.com/unisched/unisched/imagesec/store"
	"github.com/unisched/unisched/internal/dockertest"
	"github.com/unisched/unisched/internal/pg"
	"github.com/unisched/unisched/tests/containers"
)

// EnvRequire=1 turns a missing Chromium or Docker into a failure.
const EnvRequire = "UNISCHED_REQUIRE_OPERATIONS"

func required() bool {
	v := os.Getenv(EnvRequire)
	return v == "1" || strings.EqualFold(v, "true")
}

func TestMain(m *testing.M) {
	if required() {
		// The containers harness skips without Docker unless told not to.
		os.Setenv(dockertest.EnvRequire, "1")
	}
	os.Exit(containers.Main(m))
}

// chromium finds Debian's chromium, or ends the test.
func chromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("UNISCHED_CHROMIUM"), "/usr/bin/chromium", "chromium", "chromium-browser"} {
		if p == "" {
			continue
		}
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if required() {
		t.Fatalf("chromium is required (%s=1) but not installed (apt-get install chromium)", EnvRequire)
	}
	t.Skipf("chromium not installed, skipping (set %s=1 to fail instead)", EnvRequire)
	return ""
}

// artifactsDir is $ARTIFACTS/dashboard, or a temporary directory.
func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if a := os.Getenv("ARTIFACTS"); a != "" {
		dir = filepath.Join(a, "dashboard")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// browser starts headless Chromium with its own user data directory and
// returns a tab's context. At cleanup chromedp closes it; whatever of it
// is left (the browser or a child carrying our user data directory) is
// killed by pid.
func browser(t *testing.T, path string) context.Context {
	t.Helper()
	profile, err := os.MkdirTemp("", "unisched-dash-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.UserDataDir(profile),
		chromedp.NoSandbox, // root in CI: chromium refuses its sandbox
		chromedp.Flag("headless", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1400, 1000),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		cancelTab()
		cancelAlloc()
		t.Fatalf("starting chromium: %v", err)
	}
	pid := 0
	if b := chromedp.FromContext(ctx).Browser; b != nil && b.Process() != nil {
		pid = b.Process().Pid
	}
	t.Logf("chromium pid %d, profile %s", pid, profile)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
		if pid > 0 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		killUsing(profile)
		_ = os.RemoveAll(profile)
	})
	return ctx
}

// killUsing kills by pid the processes whose command line names our
// profile directory (chromium's zygote and helpers carry it): only what
// this test started.
func killUsing(profile string) {
	want := []byte("--user-data-dir=" + profile)
	for pass := 0; pass < 3; pass++ {
		entries, _ := os.ReadDir("/proc")
		found := false
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == os.Getpid() {
				continue
			}
			cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
			if err != nil {
				continue
			}
			for _, arg := range bytes.Split(cmdline, []byte{0}) {
				if bytes.Equal(arg, want) {
					_ = syscall.Kill(pid, syscall.SIGKILL)
					found = true
					break
				}
			}
		}
		if !found {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// placement calls serve's Placement API as Nova's services do.
func placement(ctx context.Context, env *containers.Env, method, path, requestID string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, env.PlacementURL+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("X-Auth-Token", "admin")
	req.Header.Set("OpenStack-API-Version", "placement 1.39")
	req.Header.Set("X-Openstack-Request-Id", requestID)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// seedImage stores an inspected image with advice, as the image pipeline
// does after collect, inspect and advise.
func seedImage(ctx context.Context, env *containers.Env) error {
	r := &inspect.Report{Format: "qcow2", Checksum: "sha256:" + strings.Repeat("ab", 32), InspectedAt: time.Now(),
		PartitionTable: "none", OS: inspect.OS{Family: "linux", Distro: "debian", Name: "Debian GNU/Linux", Version: "12", Release: "12.4"},
		PackageFormat: "deb", PackageManager: "apt",
		Packages: []inspect.Package{{Name: "openssl", Version: "3.0.11-1", Architecture: "amd64", Source: "openssl",
			SourceVersion: "3.0.11-1", Status: "installed"}}}
	return pg.WithTx(ctx, env.DB, pgx.TxOptions{}, func(tx pgx.Tx) error {
		id, err := imstore.SaveInspection(ctx, tx, "glance:dash-test", "debian-12-genericcloud", r)
		if err != nil {
			return err
		}
		return imstore.SaveAdvice(ctx, tx, id, "test-feed", time.Now(), []advise.Upgrade{{Name: "openssl", Architecture: "amd64",
			Source: "openssl", From: "3.0.11-1", To: "3.0.13-1", Severity: "high",
			Advisories: []advise.Ref{{ID: "DSA-5000-1", Fixed: "3.0.13-1", Severity: "high"}}}})
	})
}

// run runs one action on the tab, bounded by a minute, and returns its
// value; an error ends the test and says which step failed.
func run[T any](t *testing.T, tab context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(tab, time.Minute)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return v
}

// pageState is what the test reads of the page, in one evaluation: the
// page replaces its main part every refresh, and a read spread over
// several calls could see two versions or a node that is gone.
type pageState struct {
	CPUs       []domCPU          `json:"cpus"`
	Hover      string            `json:"hover"`
	Usage      map[string]string `json:"usage"`
	NovaRow    string            `json:"nova_row"`
	RefusedRow string            `json:"refused_row"`
	Pending    string            `json:"pending"`
	Delivered  string            `json:"delivered"`
	Outdated   string            `json:"outdated"`
}

// readPage hovers the pCPU hoverSel names (the page's script fills
// #hover) and reads the page.
func readPage(hoverSel, novaReq string) string {
	return fmt.Sprintf(`(() => {
	const text = sel => { const e = document.querySelector(sel); return e ? e.textContent.trim() : '<missing ' + sel + '>'; };
	const h = document.querySelector(%q);
	if (h) { h.dispatchEvent(new MouseEvent('mouseover', {bubbles: true})); }
	return {
		cpus: %s,
		hover: text('#hover'),
		usage: Object.fromEntries(Array.from(document.querySelectorAll('.host')).flatMap(h =>
			Array.from(h.querySelectorAll('.usage-row')).map(r => [h.dataset.host + '/' + r.dataset.class, r.querySelector('svg title').textContent]))),
		nova_row: text(%q),
		refused_row: text('tr.decision.refused'),
		pending: text('#outbox-pending-count'),
		delivered: text('#outbox-delivered'),
		outdated: text('#images-outdated-count'),
	};
})()`, hoverSel, readCPUs, fmt.Sprintf(`tr.decision[data-request=%q] .reasons`, novaReq))
}

// domCPU is one pCPU cell of the page.
type domCPU struct {
	Host     string `json:"host"`
	CPU      string `json:"cpu"`
	Role     string `json:"role"`
	Workload string `json:"workload"`
	Title    string `json:"title"`
}

const readCPUs = `Array.from(document.querySelectorAll('.host .cpu[data-cpu]')).map(e => ({
	host: e.closest('.host').dataset.host, cpu: e.dataset.cpu, role: e.dataset.role,
	workload: e.dataset.workload || '', title: e.title}))`

// hosts are two simulated hosts on this machine's CPUs 0 and 1. host-a
// has small cells (2 GB) and both CPUs in both pools; host-b has 4 GB
// cells, dedicates CPU 1, shares CPU 0 and describes CPUs 2 and 3 in no
// pool (reserved: Docker is never given them). A VM of 3 GB of memory in
// one cell fits Placement's totals on both, and the bridge's NUMA filter
// only on host-b.
func hosts() []containers.AgentSpec {
	return []containers.AgentSpec{
		{Host: "host-a", Cells: []agentproto.Cell{{ID: 0, CPUs: "0", MemoryMB: 2048}, {ID: 1, CPUs: "1", MemoryMB: 2048}},
			DedicatedCPUs: "0-1", SharedCPUs: "0-1", DiskGB: 100},
		{Host: "host-b", Cells: []agentproto.Cell{{ID: 0, CPUs: "0,2", MemoryMB: 4096}, {ID: 1, CPUs: "1,3", MemoryMB: 4096}},
			DedicatedCPUs: "1", SharedCPUs: "0", DiskGB: 100},
	}
}

func TestDashboardInChromium(t *testing.T) {
	chrome := chromium(t)
	containers.NeedAgent(t)
	env := containers.Start(t, containers.Options{Agents: hosts(), Dashboard: true, ServeEnv: []string{"UNISCHED_DASHBOARD_REFRESH=2s"}})
	dashURL := env.DashboardURL
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()

	// A dedicated container (one pCPU) and a shared one on host-a.
	ded := env.Zun.MustRun(t, map[string]any{"name": "db-primary", "image": env.Image, "command": []string{"sleep", "600"},
		"cpu": 1, "memory": 32, "cpu_policy": "dedicated", "host": "host-a"})
	dw, err := env.Workload(ctx, ded.UUID)
	if err != nil {
		t.Fatal(err)
	}
	if len(dw.PinnedCPUs) != 1 || dw.Host != "host-a" {
		t.Fatalf("dedicated container on %q pins %v", dw.Host, dw.PinnedCPUs)
	}
	shared := env.Zun.MustRun(t, map[string]any{"name": "web", "image": env.Image, "command": []string{"sleep", "600"},
		"cpu": 0.5, "memory": 16, "host": "host-a"})

	// A VM as Nova makes one: candidates under its request id (the
	// bridge decides, and rejects host-a, whose cells are too small),
	// then the claim on the chosen host.
	novaReq := "req-" + uuid.NewString()
	code, body, err := placement(ctx, env, http.MethodGet, "/allocation_candidates?resources=PCPU:1,MEMORY_MB:3000", novaReq, nil)
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /allocation_candidates: %d %s %v", code, body, err)
	}
	var cands struct {
		AllocationRequests []struct {
			Allocations map[string]any `json:"allocations"`
		} `json:"allocation_requests"`
	}
	if err := json.Unmarshal(body, &cands); err != nil || len(cands.AllocationRequests) == 0 {
		t.Fatalf("candidates %s: %v", body, err)
	}
	if len(cands.AllocationRequests) != 1 {
		t.Errorf("%d allocation requests, want host-b's only: %s", len(cands.AllocationRequests), body)
	}
	var vmRP string
	for rp := range cands.AllocationRequests[0].Allocations {
		vmRP = rp
	}
	vmID := uuid.NewString()
	code, body, err = placement(ctx, env, http.MethodPut, "/allocations/"+vmID, novaReq, map[string]any{
		"allocations": map[string]any{vmRP: map[string]any{"resources": map[string]int{"PCPU": 1, "MEMORY_MB": 3000}}},
		"project_id":  "proj-vm", "user_id": "user-vm",
		"consumer_generation": nil, "consumer_type": "INSTANCE",
	})
	if err != nil || code != http.StatusNoContent {
		t.Fatalf("PUT /allocations/%s: %d %s %v", vmID, code, body, err)
	}
	vw, err := env.Workload(ctx, vmID)
	if err != nil {
		t.Fatal(err)
	}
	if vw.Kind != "vm" || len(vw.PinnedCPUs) != 1 || vw.Host != "host-b" {
		t.Fatalf("VM in the ledger: %+v, want on host-b", vw)
	}
	novaDecisions, err := ledger.DecisionsForRequest(ctx, env.DB, novaReq)
	if err != nil || len(novaDecisions) != 1 || len(novaDecisions[0].Rejected) != 1 || novaDecisions[0].Rejected[0].Host != dw.Host {
		t.Fatalf("Nova's decision: %+v (%v), want %s rejected", novaDecisions, err, dw.Host)
	}
	rejection := novaDecisions[0].Rejected[0]

	// A request no host can take.
	refused, err := env.Zun.Create(ctx, map[string]any{"name": "too-big", "image": env.Image, "command": []string{"sleep", "600"},
		"cpu": 1, "memory": 8192}, true)
	if err != nil {
		t.Fatalf("creating the refused container: %v", err)
	}
	if refused, err = env.Zun.WaitStatus(ctx, refused.UUID, "Error"); err != nil {
		t.Fatalf("the 8 GB container: %v", err)
	}
	if err := seedImage(ctx, env); err != nil {
		t.Fatal(err)
	}
	// Settle: the agents have their events (the VM's pin moves the
	// shared container), so that the outbox figure is stable.
	if err := containers.Eventually(ctx, 3*time.Minute, func(ctx context.Context) error {
		n, err := env.PendingEvents(ctx)
		if err == nil && n != 0 {
			err = fmt.Errorf("%d outbox events pending", n)
		}
		return err
	}); err != nil {
		t.Fatalf("%v\n%s", err, env.Logs(30))
	}

	// The page, in Chromium.
	tab := browser(t, chrome)
	run(t, tab, "loading "+dashURL, chromedp.Navigate(dashURL))
	run(t, tab, "waiting for the hosts", chromedp.Poll[bool](`document.querySelector('.host[data-host] .cpu') !== null`,
		chromedp.WithPollingInterval(100*time.Millisecond)))
	generated := run(t, tab, "reading the page's time", chromedp.Evaluate[string](`document.querySelector('#generated').getAttribute('datetime')`))
	sel := fmt.Sprintf(`.host[data-host=%q] .cpu[data-cpu="%d"]`, dw.Host, dw.PinnedCPUs[0])
	st := run(t, tab, "reading the page", chromedp.Evaluate[pageState](readPage(sel, novaReq)))
	t.Logf("page read (generated %s)", generated)

	// Hosts and their pCPUs: every pin of the ledger, and nothing else,
	// is drawn as held, by the right workload and kind.
	cpus := st.CPUs
	pins := map[string]string{} // host/cpu -> workload
	rows, err := env.DB.Query(ctx, `SELECT h.name, p.cpu, p.workload_id::text FROM bridge_workload_cpus p JOIN bridge_hosts h ON h.id = p.host_id`)
	if err != nil {
		t.Fatal(err)
	}
	var h, w string
	var c int
	if _, err := pgx.ForEachRow(rows, []any{&h, &c, &w}, func() error { pins[fmt.Sprintf("%s/%d", h, c)] = w; return nil }); err != nil {
		t.Fatal(err)
	}
	hostsSeen := map[string]bool{}
	drawnPins := 0
	for _, cpu := range cpus {
		hostsSeen[cpu.Host] = true
		key := cpu.Host + "/" + cpu.CPU
		held := cpu.Role == "vm" || cpu.Role == "container"
		if held {
			drawnPins++
		}
		if pins[key] != cpu.Workload || held != (pins[key] != "") {
			t.Errorf("pCPU %s drawn as %s held by %q; the ledger pins it to %q", key, cpu.Role, cpu.Workload, pins[key])
		}
	}
	if drawnPins != len(pins) || len(pins) != 2 {
		t.Errorf("%d pCPUs drawn as held, the ledger pins %d (want 2: the container's and the VM's)", drawnPins, len(pins))
	}
	for _, spec := range hosts() {
		if !hostsSeen[spec.Host] {
			t.Errorf("host %s not drawn (seen %v)", spec.Host, hostsSeen)
		}
	}
	find := func(host string, id int) domCPU {
		for _, cpu := range cpus {
			if cpu.Host == host && cpu.CPU == strconv.Itoa(id) {
				return cpu
			}
		}
		return domCPU{}
	}
	if cpu := find(dw.Host, dw.PinnedCPUs[0]); cpu.Role != "container" || cpu.Workload != ded.UUID ||
		!strings.Contains(cpu.Title, "db-primary") || !strings.Contains(cpu.Title, ded.UUID) {
		t.Errorf("the dedicated container's pCPU %s/%d is drawn as %+v", dw.Host, dw.PinnedCPUs[0], cpu)
	}
	if cpu := find(vw.Host, vw.PinnedCPUs[0]); cpu.Role != "vm" || cpu.Workload != vmID {
		t.Errorf("the VM's pCPU %s/%d is drawn as %+v", vw.Host, vw.PinnedCPUs[0], cpu)
	}
	for _, id := range []int{2, 3} {
		if cpu := find("host-b", id); cpu.Role != "reserved" {
			t.Errorf("host-b's pCPU %d (in no pool) is drawn as %+v", id, cpu)
		}
	}
	if cpu := find("host-b", 0); cpu.Role != "shared" {
		t.Errorf("host-b's pCPU 0 (shared pool) is drawn as %+v", cpu)
	}
	sharedDrawn := false
	for _, cpu := range cpus {
		if cpu.Role == "shared" && strings.Contains(cpu.Title, shared.UUID) {
			sharedDrawn = true
		}
	}
	if !sharedDrawn {
		t.Errorf("no shared pCPU names the shared container %s: %+v", shared.UUID, cpus)
	}
	// Hovering a pinned pCPU says who holds it.
	hover := st.Hover
	if !strings.Contains(hover, ded.UUID) || !strings.Contains(hover, dw.Host) {
		t.Errorf("hover text %q does not name the container %s on %s", hover, ded.UUID, dw.Host)
	}

	// Usage split: the container's host shows container usage of PCPU,
	// the VM's host VM usage.
	usage := st.Usage
	if u := usage[dw.Host+"/PCPU"]; !strings.Contains(u, "VMs 0, containers 1") {
		t.Errorf("PCPU bar of %s: %q", dw.Host, u)
	}
	if u := usage[vw.Host+"/PCPU"]; !strings.Contains(u, "VMs 1, containers 0") {
		t.Errorf("PCPU bar of %s: %q", vw.Host, u)
	}

	// Decisions: Nova's request with the rejected host and its reason,
	// and the refused container with its reason.
	novaRow, refusedRow := st.NovaRow, st.RefusedRow
	if !strings.Contains(novaRow, rejection.Host) || !strings.Contains(novaRow, rejection.Reason) {
		t.Errorf("Nova's decision row says %q, the ledger rejected %s for %q", novaRow, rejection.Host, rejection.Reason)
	}
	if !strings.Contains(refusedRow, "no valid host") || !strings.Contains(refusedRow, string(scheduler.ReasonMemoryMB)) ||
		!strings.Contains(refusedRow, refused.UUID) {
		t.Errorf("refused decision row %q", refusedRow)
	}

	// Outbox: the page's figures are the table's. Events may still be
	// written (an agent's report, a reconciliation), so a reading counts
	// when the table did not change around a fresh page.
	type figures struct{ pending, delivered int }
	table := func() figures {
		var f figures
		if err := env.DB.QueryRow(ctx, `SELECT count(*) FILTER (WHERE delivered_at IS NULL),
	count(*) FILTER (WHERE delivered_at >= now() - interval '5 minutes') FROM bridge_outbox`).Scan(&f.pending, &f.delivered); err != nil {
			t.Fatal(err)
		}
		return f
	}
	var page, before figures
	matched := false
	for deadline := time.Now().Add(time.Minute); !matched && time.Now().Before(deadline); {
		before = table()
		p := run(t, tab, "reading api/state", chromedp.Evaluate[[]string](`fetch('api/state', {cache: 'no-store'}).then(r => r.json()).then(v => [String(v.outbox.pending), String(v.outbox.delivered)])`,
			chromedp.EvalAwaitPromise))
		page.pending, _ = strconv.Atoi(p[0])
		page.delivered, _ = strconv.Atoi(p[1])
		matched = before == table() && page == before
		if !matched {
			time.Sleep(500 * time.Millisecond)
		}
	}
	if !matched || page.delivered == 0 {
		t.Errorf("outbox figures: the dashboard says %+v, the table %+v", page, before)
	}
	pending, delivered := st.Pending, st.Delivered
	if _, err := strconv.Atoi(pending); err != nil {
		t.Errorf("the page's pending figure %q", pending)
	}
	if n, err := strconv.Atoi(delivered); err != nil || n == 0 {
		t.Errorf("the page's delivered figure %q", delivered)
	}
	imagesOutdated := st.Outdated
	if imagesOutdated != "1" {
		t.Errorf("outdated images: %q, want 1", imagesOutdated)
	}

	// The page refreshes itself in place (every 2 s here).
	later := run(t, tab, "waiting for the page to refresh itself", chromedp.Poll[string](
		fmt.Sprintf(`(() => { const d = document.querySelector('#generated').getAttribute('datetime'); return d !== %q ? d : false; })()`, generated),
		chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(50*time.Second)))
	t.Logf("page generated at %s, refreshed at %s", generated, later)

	// A full-page screenshot and the DOM, for the artifacts.
	dir := artifactsDir(t)
	png := run(t, tab, "taking the screenshot", chromedp.FullScreenshot(100))
	html := run(t, tab, "reading the DOM", chromedp.Evaluate[string](`document.documentElement.outerHTML`))
	if !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Errorf("the screenshot is not a PNG (%d bytes)", len(png))
	}
	for name, b := range map[string][]byte{"dashboard.png": png, "dashboard.html": []byte(html)} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("screenshot: %s (%d bytes)", filepath.Join(dir, "dashboard.png"), len(png))

	// Read-only, and nothing but the page and its JSON.
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{http.MethodPost, "", http.StatusMethodNotAllowed},
		{http.MethodDelete, "api/state", http.StatusMethodNotAllowed},
		{http.MethodGet, "api/state", http.StatusOK},
		{http.MethodGet, "v1/containers", http.StatusNotFound},
	} {
		req, _ := http.NewRequestWithContext(ctx, tc.method, dashURL+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s /%s: %s, want %d", tc.method, tc.path, resp.Status, tc.want)
		}
	}
}
