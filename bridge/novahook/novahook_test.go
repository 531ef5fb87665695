package novahook_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/unisched/unisched/bridge"
	"github.com/unisched/unisched/bridge/agentproto"
	"github.com/unisched/unisched/bridge/bridgetest"
	"github.com/unisched/unisched/bridge/ledger"
	"github.com/unisched/unisched/bridge/novahook"
	"github.com/unisched/unisched/bridge/scheduler"
	"github.com/unisched/unisched/internal/pgtest"
	"github.com/unisched/unisched/placement"
	"github.com/unisched/unisched/placement/qs"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

type env struct {
	t    *testing.T
	ctx  context.Context
	c    *bridge.Coordinator
	pool *pgxpool.Pool
	srv  *httptest.Server
	// rp by host name
	rp map[string]string
}

// newEnv is Placement with the Nova hooks over a coordinator, as serve
// wires them, on a fresh database.
func newEnv(t *testing.T, mode bridge.CandidatesMode) *env {
	t.Helper()
	c, pool := bridgetest.Coordinator(t)
	srv := httptest.NewServer(placement.New(placement.Config{Pool: pool, Hooks: novahook.New(c, mode)}))
	t.Cleanup(srv.Close)
	return &env{t: t, ctx: context.Background(), c: c, pool: pool, srv: srv, rp: map[string]string{}}
}

func (e *env) do(method, path, mv, reqID, body string) (int, string) {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("X-Auth-Token", "admin")
	if mv != "" {
		req.Header.Set("OpenStack-API-Version", "placement "+mv)
	}
	if reqID != "" {
		req.Header.Set("x-openstack-request-id", reqID) // any case
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// ledgerHost registers an agent's host of two cells (2 dedicated pCPUs
// and 4 GB each).
func (e *env) ledgerHost(name string) {
	e.t.Helper()
	e.register(bridgetest.TwoCells(name))
}

func (e *env) register(reg agentproto.Registration) {
	e.t.Helper()
	e.rp[reg.Host] = bridgetest.Register(e.t, e.c, reg).ProviderUUID
}

// novaHost is a compute provider no agent describes.
func (e *env) novaHost(name string) {
	e.t.Helper()
	u := uuid.NewString()
	if st, b := e.do("POST", "/resource_providers", "1.20", "", fmt.Sprintf(`{"name": %q, "uuid": %q}`, name, u)); st != 200 {
		e.t.Fatalf("creating provider %s: %d %s", name, st, b)
	}
	body := `{"resource_provider_generation": 0, "inventories": {"PCPU": {"total": 8}, "VCPU": {"total": 8},
		"MEMORY_MB": {"total": 16384}, "DISK_GB": {"total": 100}}}`
	if st, b := e.do("PUT", "/resource_providers/"+u+"/inventories", "1.20", "", body); st != 200 {
		e.t.Fatalf("inventory of %s: %d %s", name, st, b)
	}
	e.rp[name] = u
}

func (e *env) hostOf(rp string) string {
	for h, u := range e.rp {
		if u == rp {
			return h
		}
	}
	return rp
}

// candidates returns the hosts of the allocation requests, in order.
func (e *env) candidates(query, reqID string) []string {
	e.t.Helper()
	st, body := e.do("GET", "/allocation_candidates?"+query, "1.36", reqID, "")
	if st != 200 {
		e.t.Fatalf("candidates: %d %s", st, body)
	}
	var out struct {
		AllocationRequests []struct {
			Allocations map[string]json.RawMessage `json:"allocations"`
		} `json:"allocation_requests"`
		Summaries map[string]json.RawMessage `json:"provider_summaries"`
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		e.t.Fatal(err)
	}
	var hosts []string
	used := map[string]bool{}
	for _, ar := range out.AllocationRequests {
		var names []string
		for rp := range ar.Allocations {
			names = append(names, e.hostOf(rp))
			used[rp] = true
		}
		slices.Sort(names)
		hosts = append(hosts, strings.Join(names, "+"))
	}
	for rp := range out.Summaries {
		if !used[rp] {
			e.t.Errorf("summary of provider %s (%s) that no allocation request uses", rp, e.hostOf(rp))
		}
	}
	return hosts
}

// pinBothCells takes one dedicated pCPU in each cell of a host: a
// container in one, a VM Nova claimed (its decision naming the other
// cell) in the other. Placement then still counts 2 free PCPU, in no
// single cell.
func (e *env) pinBothCells(host string) {
	e.t.Helper()
	w, err := e.c.Create(e.ctx, bridge.CreateRequest{Kind: scheduler.KindContainer, ProjectID: "p", UserID: "u",
		CPUPolicy: scheduler.CPUDedicated, CPU: 1, MemoryMB: 128, Host: host,
		Container: &agentproto.Container{Image: "busybox", Running: true}})
	if err != nil {
		e.t.Fatal(err)
	}
	other := 1 - w.Assignment.Cells[0].Cell
	reqID := "req-" + uuid.NewString()
	rec := ledger.Decision{RequestID: reqID, Kind: scheduler.KindVM, Host: host, ProviderUUID: e.rp[host],
		Placement: &ledger.PlacementRecord{Dedicated: true, Cells: []ledger.CellRecord{{Cell: other, MemoryMB: 128}}}}
	if err := ledger.RecordDecision(e.ctx, e.pool, &rec); err != nil {
		e.t.Fatal(err)
	}
	if st, b := e.do("PUT", "/allocations/"+uuid.NewString(), "1.36", reqID, claimBody(e.rp[host], 1, 128)); st != 204 {
		e.t.Fatalf("VM claim: %d %s", st, b)
	}
	var cells int
	if err := e.pool.QueryRow(e.ctx, `SELECT count(DISTINCT p.cell) FROM bridge_workload_cpus p JOIN bridge_hosts h ON h.id = p.host_id WHERE h.name = $1`, host).Scan(&cells); err != nil {
		e.t.Fatal(err)
	}
	if cells != 2 {
		e.t.Fatalf("pins of %s in %d cells, want 2", host, cells)
	}
}

func TestCandidatesOrder(t *testing.T) {
	const dedicated2 = "resources=PCPU:2,MEMORY_MB:1024&root_required=!COMPUTE_STATUS_DISABLED&limit=1000"
	const shared1 = "resources=VCPU:1,MEMORY_MB:512"
	cases := []struct {
		name  string
		mode  bridge.CandidatesMode
		setup func(e *env)
		query string
		// want is the exact list of hosts; wantFirst only the head.
		want      []string
		wantFirst string
		// wantDecision: a decision is logged (host "" = no valid host).
		wantDecision   bool
		decisionHost   string
		wantRejections []string
	}{
		{
			name: "dedicated needs one cell: the host with a pin in each cell is left out, the Nova host kept after",
			mode: bridge.CandidatesFirst,
			setup: func(e *env) {
				e.ledgerHost("h1")
				e.ledgerHost("h2")
				e.novaHost("n1")
				e.pinBothCells("h1")
			},
			query: dedicated2, want: []string{"h2", "n1"},
			wantDecision: true, decisionHost: "h2", wantRejections: []string{"h1"},
		},
		{
			name: "no ledger host fits: only the Nova host is left",
			mode: bridge.CandidatesFirst,
			setup: func(e *env) {
				e.ledgerHost("h1")
				e.novaHost("n1")
				e.pinBothCells("h1")
			},
			query: dedicated2, want: []string{"n1"},
			wantDecision: true, decisionHost: "", wantRejections: []string{"h1"},
		},
		{
			name: "no ledger host fits and no other host: the empty list (NoValidHost)",
			mode: bridge.CandidatesFirst,
			setup: func(e *env) {
				e.ledgerHost("h1")
				e.pinBothCells("h1")
			},
			query: dedicated2, want: []string{},
			wantDecision: true, decisionHost: "",
		},
		{
			name: "mode only answers the choice alone among ledger hosts",
			mode: bridge.CandidatesOnly,
			setup: func(e *env) {
				e.ledgerHost("h1")
				e.ledgerHost("h2")
				e.ledgerHost("h3")
				e.novaHost("n1")
			},
			query: dedicated2, wantFirst: "h?", want: nil,
			wantDecision: true, decisionHost: "*",
		},
		{
			name: "mode off is Placement's answer",
			mode: bridge.CandidatesOff,
			setup: func(e *env) {
				e.ledgerHost("h1")
				e.novaHost("n1")
				e.pinBothCells("h1")
			},
			query: dedicated2, want: []string{"h1", "n1"},
		},
		{
			name:  "no ledger host among the candidates: unchanged, nothing logged",
			mode:  bridge.CandidatesFirst,
			setup: func(e *env) { e.novaHost("n1"); e.novaHost("n2") },
			query: shared1, want: []string{"n1", "n2"},
		},
		{
			name: "shared request: every ledger host that fits, the choice first",
			mode: bridge.CandidatesFirst,
			setup: func(e *env) {
				e.ledgerHost("h1")
				e.ledgerHost("h2")
				e.novaHost("n1")
			},
			query: shared1, wantFirst: "h?", want: nil,
			wantDecision: true, decisionHost: "*",
		},
		{
			name: "thresholds: a host whose dedicated pool is mostly pinned comes after for a shared request",
			mode: bridge.CandidatesFirst,
			setup: func(e *env) {
				e.ledgerHost("h1")
				e.ledgerHost("h2")
				e.novaHost("n1")
				for range 3 {
					if _, err := e.c.Create(e.ctx, bridge.CreateRequest{Kind: scheduler.KindContainer, ProjectID: "p", UserID: "u",
						CPUPolicy: scheduler.CPUDedicated, CPU: 1, MemoryMB: 64, Host: "h1",
						Container: &agentproto.Container{Image: "busybox"}}); err != nil {
						e.t.Fatal(err)
					}
				}
			},
			query: shared1, want: []string{"h2", "h1", "n1"},
			wantDecision: true, decisionHost: "h2",
		},
		{
			name: "mixed VCPU and PCPU is left to Placement",
			mode: bridge.CandidatesFirst,
			setup: func(e *env) {
				e.ledgerHost("h1")
			},
			query: "resources=VCPU:1,PCPU:1,MEMORY_MB:128", want: []string{"h1"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.mode)
			tc.setup(e)
			reqID := "req-" + uuid.NewString()
			got := e.candidates(tc.query, reqID)
			if got == nil {
				got = []string{}
			}
			if tc.want != nil {
				a, b := slices.Clone(got), slices.Clone(tc.want)
				if tc.mode == bridge.CandidatesOff || !tc.wantDecision {
					// Placement's own order: compare as sets.
					slices.Sort(a)
					slices.Sort(b)
				}
				if !slices.Equal(a, b) {
					t.Fatalf("candidates %v, want %v", got, tc.want)
				}
			}
			ds, err := ledger.DecisionsForRequest(e.ctx, e.pool, reqID)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.wantDecision {
				if len(ds) != 0 {
					t.Fatalf("decisions logged: %+v", ds)
				}
				return
			}
			if len(ds) != 1 {
				t.Fatalf("%d decisions for the request", len(ds))
			}
			d := ds[0]
			switch tc.decisionHost {
			case "*":
				if d.Host == "" || len(got) == 0 || got[0] != d.Host {
					t.Fatalf("decision %q, candidates %v: the choice is not first", d.Host, got)
				}
			default:
				if d.Host != tc.decisionHost {
					t.Fatalf("decision host %q, want %q (error %s)", d.Host, tc.decisionHost, d.Error)
				}
			}
			if tc.decisionHost == "" && d.Error == "" {
				t.Fatal("a no-valid-host decision without its error")
			}
			if tc.mode == bridge.CandidatesOnly {
				ledgerN := 0
				for _, h := range got {
					if strings.HasPrefix(h, "h") {
						ledgerN++
					}
				}
				if ledgerN != 1 || !slices.Contains(got, "n1") {
					t.Fatalf("mode only: candidates %v", got)
				}
			}
			for _, h := range tc.wantRejections {
				if !slices.ContainsFunc(d.Rejected, func(r ledger.RejectedRecord) bool { return r.Host == h && r.Reason != "" }) {
					t.Fatalf("rejection of %s not logged: %+v", h, d.Rejected)
				}
			}
		})
	}
}

func TestQueryReduction(t *testing.T) {
	params, qerr := qs.ParseQuery("resources=PCPU:2,MEMORY_MB:1024&required=HW_CPU_X86_AVX,!CUSTOM_X&resources1=DISK_GB:5&root_required=COMPUTE_A,!COMPUTE_STATUS_DISABLED&member_of=in:5e2f3a4b-0000-4000-8000-000000000001,5e2f3a4b-0000-4000-8000-000000000002")
	if qerr != nil {
		t.Fatal(qerr)
	}
	q, qerr := qs.ParseCandidates(params, 36)
	if qerr != nil {
		t.Fatal(qerr)
	}
	got := novahook.Query(q)
	if got.Resources["PCPU"] != 2 || got.Resources["MEMORY_MB"] != 1024 || got.Resources["DISK_GB"] != 5 {
		t.Errorf("resources %v", got.Resources)
	}
	if !slices.Equal(got.RequiredTraits, []string{"COMPUTE_A", "HW_CPU_X86_AVX"}) {
		t.Errorf("required %v", got.RequiredTraits)
	}
	if !slices.Equal(got.ForbiddenTraits, []string{"COMPUTE_STATUS_DISABLED", "CUSTOM_X"}) {
		t.Errorf("forbidden %v", got.ForbiddenTraits)
	}
	if len(got.MemberOf) != 1 || len(got.MemberOf[0]) != 2 {
		t.Errorf("member_of %v", got.MemberOf)
	}
	if r := novahook.Query(nil); len(r.Resources) != 0 {
		t.Errorf("nil query: %+v", r)
	}
}

func claimBody(rp string, pcpu, mem int) string {
	return fmt.Sprintf(`{"allocations": {%q: {"resources": {"PCPU": %d, "MEMORY_MB": %d}}}, "mappings": {"": [%q]},
		"project_id": "p1", "user_id": "u1", "consumer_generation": null}`, rp, pcpu, mem, rp)
}

// Nova's boot as Placement sees it: candidates, then the claim with the
// same request id; the ledger records the VM in the decided cell, with
// the host's event (its shared pool holds the dedicated pCPUs, so the pins
// shrink it); DELETE releases it.
func TestNovaBootClaimAndDelete(t *testing.T) {
	e := newEnv(t, bridge.CandidatesFirst)
	reg := bridgetest.TwoCells("h1")
	reg.SharedCPUs = "0-7"
	e.register(reg)
	reqID := "req-" + uuid.NewString()
	got := e.candidates("resources=PCPU:2,MEMORY_MB:1024", reqID)
	if len(got) != 1 || got[0] != "h1" {
		t.Fatalf("candidates %v", got)
	}
	ds, _ := ledger.DecisionsForRequest(e.ctx, e.pool, reqID)
	if len(ds) != 1 || ds[0].Placement == nil || len(ds[0].Placement.Cells) != 1 {
		t.Fatalf("decision %+v", ds)
	}
	cell := ds[0].Placement.Cells[0].Cell
	vm := uuid.NewString()
	if st, b := e.do("PUT", "/allocations/"+vm, "1.36", reqID, claimBody(e.rp["h1"], 2, 1024)); st != 204 {
		t.Fatalf("claim: %d %s", st, b)
	}
	w, err := ledger.GetWorkload(e.ctx, e.pool, vm)
	if err != nil {
		t.Fatal(err)
	}
	if w.Kind != scheduler.KindVM || w.Host != "h1" || w.State != ledger.StateClaimed || w.RequestID != reqID || w.ProjectID != "p1" {
		t.Fatalf("workload %+v", w)
	}
	a, _ := ledger.GetAssignment(e.ctx, e.pool, vm)
	if len(a.Cells) != 1 || a.Cells[0].Cell != cell || a.Pinned().Size() != 2 || a.Cells[0].MemoryMB != 1024 {
		t.Fatalf("assignment %+v, want cell %d", a, cell)
	}
	if d, err := ledger.LatestDecision(e.ctx, e.pool, vm); err != nil || d.RequestID != reqID || d.Host != "h1" {
		t.Fatalf("decision not linked to the VM: %+v %v", d, err)
	}
	var events int
	if err := e.pool.QueryRow(e.ctx, `SELECT count(*) FROM bridge_outbox WHERE key = 'host:h1'`).Scan(&events); err != nil || events == 0 {
		t.Fatalf("no host event (%v)", err)
	}
	// A second dedicated container now cannot take that cell's pCPUs.
	ct, err := e.c.Create(e.ctx, bridge.CreateRequest{Kind: scheduler.KindContainer, ProjectID: "p", UserID: "u",
		CPUPolicy: scheduler.CPUDedicated, CPU: 2, MemoryMB: 128, Container: &agentproto.Container{Image: "busybox"}})
	if err != nil {
		t.Fatal(err)
	}
	if ct.Assignment.Cells[0].Cell == cell {
		t.Fatalf("container pinned in the VM's cell %d", cell)
	}
	// DELETE /allocations releases the VM.
	if st, b := e.do("DELETE", "/allocations/"+vm, "", reqID, ""); st != 204 {
		t.Fatalf("delete: %d %s", st, b)
	}
	if _, err := ledger.GetWorkload(e.ctx, e.pool, vm); err == nil {
		t.Fatal("VM kept after its allocations were deleted")
	}
	if st, _ := e.do("DELETE", "/allocations/"+vm, "", "", ""); st != 404 {
		t.Fatalf("second delete: %d", st)
	}
	// PUT with no allocations releases too.
	vm2 := uuid.NewString()
	if st, b := e.do("PUT", "/allocations/"+vm2, "1.36", "", claimBody(e.rp["h1"], 1, 256)); st != 204 {
		t.Fatalf("claim 2: %d %s", st, b)
	}
	if _, err := ledger.GetWorkload(e.ctx, e.pool, vm2); err != nil {
		t.Fatal(err)
	}
	empty := `{"allocations": {}, "project_id": "p1", "user_id": "u1", "consumer_generation": 1}`
	if st, b := e.do("PUT", "/allocations/"+vm2, "1.36", "", empty); st != 204 {
		t.Fatalf("empty put: %d %s", st, b)
	}
	if _, err := ledger.GetWorkload(e.ctx, e.pool, vm2); err == nil {
		t.Fatal("VM kept after an empty PUT")
	}
	// POST /allocations: a migration moves the allocation to another consumer.
	mig := uuid.NewString()
	body := fmt.Sprintf(`{%q: {"allocations": {%q: {"resources": {"PCPU": 2, "MEMORY_MB": 512}}}, "project_id": "p1", "user_id": "u1", "consumer_generation": null}}`,
		mig, e.rp["h1"])
	if st, b := e.do("POST", "/allocations", "1.36", "", body); st != 204 {
		t.Fatalf("post: %d %s", st, b)
	}
	if w, err := ledger.GetWorkload(e.ctx, e.pool, mig); err != nil || w.Host != "h1" {
		t.Fatalf("migration consumer: %+v %v", w, err)
	}
}

// Bad input through the hooked paths gets Placement's errors, never a 500.
func TestHookedBadInput(t *testing.T) {
	e := newEnv(t, bridge.CandidatesFirst)
	e.ledgerHost("h1")
	cases := []struct {
		method, path, mv, reqID, body string
		want                          int
	}{
		{"GET", "/allocation_candidates?resources=PCPU:x", "1.36", "", "", 400},
		{"GET", "/allocation_candidates?resources=PCPU:1&required=!!", "1.36", "", "", 400},
		{"GET", "/allocation_candidates?resources=PCPU:1,MEMORY_MB:1", "1.36", "req-NOT-A-UUID", "", 200},
		{"GET", "/allocation_candidates?resources=PCPU:1000", "1.36", "", "", 200},
		{"GET", "/allocation_candidates?resources=MEMORY_MB:1", "1.36", "", "", 200},
		{"PUT", "/allocations/" + uuid.NewString(), "1.36", "", `{"allocations": {}}`, 400},
		{"PUT", "/allocations/" + uuid.NewString(), "1.36", "", claimBody(e.rp["h1"], 99, 1), 409},
		{"PUT", "/allocations/" + uuid.NewString(), "1.36", "", claimBody(uuid.NewString(), 1, 1), 400},
		{"PUT", "/allocations/not-a-uuid", "1.36", "", claimBody(e.rp["h1"], 1, 1), 400},
		{"PUT", "/allocations/" + uuid.NewString(), "1.36", "", `{"allocations": {"` + e.rp["h1"] + `": {"resources": {"MEMORY_MB": 64}}}, "project_id": "p", "user_id": "u", "consumer_generation": null}`, 204},
		{"DELETE", "/allocations/not-a-uuid", "", "", "", 404},
		{"POST", "/allocations", "1.36", "", `{"nope": {}}`, 400},
	}
	for _, tc := range cases {
		st, b := e.do(tc.method, tc.path, tc.mv, tc.reqID, tc.body)
		if st != tc.want {
			t.Errorf("%s %s: %d %s, want %d", tc.method, tc.path, st, b, tc.want)
		}
	}
}

// Many Nova claims at once on one host through the API: Placement and the
// ledger agree, no pCPU is held twice, every refusal is Placement's 409.
func TestConcurrentNovaClaims(t *testing.T) {
	e := newEnv(t, bridge.CandidatesFirst)
	reg := bridgetest.TwoCells("h1")
	reg.Cells = []agentproto.Cell{{ID: 0, CPUs: "0-9", MemoryMB: 65536}, {ID: 1, CPUs: "10-19", MemoryMB: 65536}}
	reg.DedicatedCPUs, reg.SharedCPUs = "2-9,12-19", "0,1,10,11"
	e.rp["h1"] = bridgetest.Register(t, e.c, reg).ProviderUUID
	const n = 12
	status := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			req, _ := http.NewRequest("PUT", e.srv.URL+"/allocations/"+uuid.NewString(), strings.NewReader(claimBody(e.rp["h1"], 2, 256)))
			req.Header.Set("X-Auth-Token", "admin")
			req.Header.Set("OpenStack-API-Version", "placement 1.36")
			req.Header.Set("Content-Type", "application/json")
			resp, err := e.srv.Client().Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			status[i] = resp.StatusCode
		})
	}
	wg.Wait()
	ok := 0
	for _, st := range status {
		switch st {
		case 204:
			ok++
		case 409:
		default:
			t.Errorf("status %d", st)
		}
	}
	var used, pins, vms, dup int64
	q := func(sql string, dst *int64) {
		if err := e.pool.QueryRow(e.ctx, sql).Scan(dst); err != nil {
			t.Fatal(err)
		}
	}
	q(`SELECT COALESCE(sum(a.used), 0)::bigint FROM allocations a JOIN resource_classes rc ON rc.id = a.resource_class_id WHERE rc.name = 'PCPU'`, &used)
	q(`SELECT count(*) FROM bridge_workload_cpus`, &pins)
	q(`SELECT count(*) FROM bridge_workloads WHERE kind = 'vm' AND host_id IS NOT NULL`, &vms)
	q(`SELECT count(*) FROM (SELECT workload_id FROM bridge_workload_cpus GROUP BY workload_id HAVING count(DISTINCT cell) > 1) x`, &dup)
	if ok != 8 || used != 16 || pins != 16 || vms != 8 || dup != 0 {
		t.Fatalf("ok %d, Placement PCPU %d, ledger pins %d, VMs %d, VMs across cells %d; want 8 16 16 8 0", ok, used, pins, vms, dup)
	}
}

// The proxy's intent gives the flavor's NUMA spread: the candidates query
// (under nova-api's id, an alias of the intent) is scheduled over two
// cells, and the claim that follows takes one pCPU in each.
func TestIntentNUMASpread(t *testing.T) {
	e := newEnv(t, bridge.CandidatesFirst)
	e.ledgerHost("h1")
	clientID, novaID := "req-"+uuid.NewString(), "req-"+uuid.NewString()
	in := ledger.Intent{RequestID: clientID, ProjectID: "p1", UserID: "u1", FlavorRef: "f",
		Flavor: &ledger.IntentFlavor{ID: "f", VCPUs: 2, RAMMB: 1024, ExtraSpecs: map[string]string{"hw:cpu_policy": "dedicated", "hw:numa_nodes": "2"}}}
	if err := ledger.RecordIntent(e.ctx, e.pool, &in); err != nil {
		t.Fatal(err)
	}
	if err := ledger.AliasIntent(e.ctx, e.pool, clientID, novaID); err != nil {
		t.Fatal(err)
	}
	if got := e.candidates("resources=PCPU:2,MEMORY_MB:1024", novaID); len(got) != 1 || got[0] != "h1" {
		t.Fatalf("candidates %v", got)
	}
	ds, err := ledger.DecisionsForRequest(e.ctx, e.pool, novaID)
	if err != nil || len(ds) != 1 || ds[0].Placement == nil || len(ds[0].Placement.Cells) != 2 {
		t.Fatalf("decision %+v %v: want two cells", ds, err)
	}
	vm := uuid.NewString()
	if st, b := e.do("PUT", "/allocations/"+vm, "1.36", novaID, claimBody(e.rp["h1"], 2, 1024)); st != 204 {
		t.Fatalf("claim: %d %s", st, b)
	}
	a, _ := ledger.GetAssignment(e.ctx, e.pool, vm)
	if len(a.Cells) != 2 || a.Pinned().Size() != 2 {
		t.Fatalf("assignment %+v, want two cells", a)
	}
}

// A resize as Nova writes it: one POST /allocations gives the instance
// its destination and the migration its source; both are followed in the
// ledger, and confirming (the migration's allocations deleted) frees the
// source.
func TestResizeFollowsAllocations(t *testing.T) {
	e := newEnv(t, bridge.CandidatesFirst)
	e.ledgerHost("h1")
	e.ledgerHost("h2")
	vm, mig := uuid.NewString(), uuid.NewString()
	if st, b := e.do("PUT", "/allocations/"+vm, "1.36", "", claimBody(e.rp["h1"], 2, 1024)); st != 204 {
		t.Fatalf("claim: %d %s", st, b)
	}
	body := fmt.Sprintf(`{
		%q: {"allocations": {%q: {"resources": {"PCPU": 1, "MEMORY_MB": 512}}}, "project_id": "p1", "user_id": "u1", "consumer_generation": 1},
		%q: {"allocations": {%q: {"resources": {"PCPU": 2, "MEMORY_MB": 1024}}}, "project_id": "p1", "user_id": "u1", "consumer_generation": null}}`,
		vm, e.rp["h2"], mig, e.rp["h1"])
	if st, b := e.do("POST", "/allocations", "1.36", "", body); st != 204 {
		t.Fatalf("move: %d %s", st, b)
	}
	hostPins := func(host string) int {
		var n int
		if err := e.pool.QueryRow(e.ctx, `SELECT count(*) FROM bridge_workload_cpus p JOIN bridge_hosts h ON h.id = p.host_id WHERE h.name = $1`, host).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	w, err := ledger.GetWorkload(e.ctx, e.pool, vm)
	if err != nil || w.Host != "h2" || w.Resources.PCPU != 1 {
		t.Fatalf("instance %+v %v", w, err)
	}
	m, err := ledger.GetWorkload(e.ctx, e.pool, mig)
	if err != nil || m.Host != "h1" || m.Kind != scheduler.KindVM {
		t.Fatalf("migration %+v %v", m, err)
	}
	if hostPins("h1") != 2 || hostPins("h2") != 1 {
		t.Fatalf("pins h1 %d h2 %d, want 2 and 1", hostPins("h1"), hostPins("h2"))
	}
	if st, b := e.do("DELETE", "/allocations/"+mig, "", "", ""); st != 204 {
		t.Fatalf("confirm: %d %s", st, b)
	}
	if hostPins("h1") != 0 || hostPins("h2") != 1 {
		t.Fatalf("after confirm: pins h1 %d h2 %d", hostPins("h1"), hostPins("h2"))
	}
}

// POST /reshaper's allocations go through the hook too.
func TestReshaperRecordsVM(t *testing.T) {
	e := newEnv(t, bridge.CandidatesFirst)
	e.ledgerHost("h1")
	st, invs := e.do("GET", "/resource_providers/"+e.rp["h1"]+"/inventories", "1.30", "", "")
	if st != 200 {
		t.Fatalf("inventories: %d %s", st, invs)
	}
	var cur struct {
		Generation  int             `json:"resource_provider_generation"`
		Inventories json.RawMessage `json:"inventories"`
	}
	if err := json.Unmarshal([]byte(invs), &cur); err != nil {
		t.Fatal(err)
	}
	vm := uuid.NewString()
	body := fmt.Sprintf(`{"inventories": {%q: {"resource_provider_generation": %d, "inventories": %s}},
		"allocations": {%q: {"allocations": {%q: {"resources": {"PCPU": 2, "MEMORY_MB": 512}}}, "project_id": "p1", "user_id": "u1", "consumer_generation": null}}}`,
		e.rp["h1"], cur.Generation, cur.Inventories, vm, e.rp["h1"])
	if st, b := e.do("POST", "/reshaper", "1.30", "", body); st != 204 {
		t.Fatalf("reshape: %d %s", st, b)
	}
	a, err := ledger.GetAssignment(e.ctx, e.pool, vm)
	if err != nil || a.Host != "h1" || a.Pinned().Size() != 2 {
		t.Fatalf("VM after reshape: %+v %v", a, err)
	}
}

// Disk from a sharing provider (no DISK_GB on the compute host) does not
// make the bridge reject the ledger host Placement found.
func TestSharedDiskKeepsLedgerHost(t *testing.T) {
	e := newEnv(t, bridge.CandidatesFirst)
	e.ledgerHost("h1")
	u := uuid.NewString()
	if st, b := e.do("POST", "/resource_providers", "1.20", "", fmt.Sprintf(`{"name": "nfs", "uuid": %q}`, u)); st != 200 {
		t.Fatalf("%d %s", st, b)
	}
	if st, b := e.do("PUT", "/resource_providers/"+u+"/inventories", "1.20", "", `{"resource_provider_generation": 0, "inventories": {"DISK_GB": {"total": 1000}}}`); st != 200 {
		t.Fatalf("%d %s", st, b)
	}
	if st, b := e.do("PUT", "/resource_providers/"+u+"/traits", "1.20", "", `{"resource_provider_generation": 1, "traits": ["MISC_SHARES_VIA_AGGREGATE"]}`); st != 200 {
		t.Fatalf("%d %s", st, b)
	}
	e.rp["nfs"] = u
	agg := uuid.NewString()
	for _, rp := range []string{u, e.rp["h1"]} {
		_, g := e.do("GET", "/resource_providers/"+rp, "1.20", "", "")
		var p struct {
			Generation int `json:"generation"`
		}
		_ = json.Unmarshal([]byte(g), &p)
		if st, b := e.do("PUT", "/resource_providers/"+rp+"/aggregates", "1.20", "", fmt.Sprintf(`{"resource_provider_generation": %d, "aggregates": [%q]}`, p.Generation, agg)); st != 200 {
			t.Fatalf("%d %s", st, b)
		}
	}
	got := e.candidates("resources=PCPU:1,MEMORY_MB:128,DISK_GB:2000", "")
	if len(got) != 0 {
		t.Fatalf("disk beyond the sharing provider: %v", got)
	}
	reqID := "req-" + uuid.NewString()
	got = e.candidates("resources=PCPU:1,MEMORY_MB:128,DISK_GB:200", reqID)
	if len(got) != 1 || got[0] != "h1+nfs" {
		t.Fatalf("candidates %v, want h1 with the shared disk", got)
	}
	if ds, _ := ledger.DecisionsForRequest(e.ctx, e.pool, reqID); len(ds) != 1 || ds[0].Host != "h1" {
		t.Fatalf("decision %+v", ds)
	}
}

// A ledger host whose pCPUs sit on a nested provider (not on its root) is
// left to Placement: kept, and no decision is made about it.
func TestNestedCPUsLeftToPlacement(t *testing.T) {
	e := newEnv(t, bridge.CandidatesFirst)
	root, child := uuid.NewString(), uuid.NewString()
	if st, b := e.do("POST", "/resource_providers", "1.20", "", fmt.Sprintf(`{"name": "h9", "uuid": %q}`, root)); st != 200 {
		t.Fatalf("%d %s", st, b)
	}
	if st, b := e.do("PUT", "/resource_providers/"+root+"/inventories", "1.20", "", `{"resource_provider_generation": 0, "inventories": {"MEMORY_MB": {"total": 8192}}}`); st != 200 {
		t.Fatalf("%d %s", st, b)
	}
	if st, b := e.do("POST", "/resource_providers", "1.20", "", fmt.Sprintf(`{"name": "h9_numa0", "uuid": %q, "parent_provider_uuid": %q}`, child, root)); st != 200 {
		t.Fatalf("%d %s", st, b)
	}
	if st, b := e.do("PUT", "/resource_providers/"+child+"/inventories", "1.20", "", `{"resource_provider_generation": 0, "inventories": {"PCPU": {"total": 4}}}`); st != 200 {
		t.Fatalf("%d %s", st, b)
	}
	reg := bridgetest.TwoCells("h9")
	if res := bridgetest.Register(t, e.c, reg); res.OwnsInventory || res.ProviderUUID != root {
		t.Fatalf("registration %+v", res)
	}
	e.rp["h9"], e.rp["h9_numa0"] = root, child
	reqID := "req-" + uuid.NewString()
	got := e.candidates("resources=PCPU:1,MEMORY_MB:128", reqID)
	if len(got) != 1 || got[0] != "h9+h9_numa0" {
		t.Fatalf("candidates %v", got)
	}
	if ds, _ := ledger.DecisionsForRequest(e.ctx, e.pool, reqID); len(ds) != 0 {
		t.Fatalf("decisions %+v", ds)
	}
}
