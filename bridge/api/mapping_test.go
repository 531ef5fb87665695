package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/unisched/unisched/bridge"
	"github.com/unisched/unisched/bridge/agentproto"
	"github.com/unisched/unisched/bridge/bridgetest"
	"github.com/unisched/unisched/bridge/ledger"
)

const (
	adminToken = "admin:admin"
	aliceToken = "alice:projA"
	bobToken   = "bob:projB"
)

type response struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

// do sends one request to h. body is JSON text ("" for none).
func do(t *testing.T, h http.Handler, method, path, token, body string) response {
	t.Helper()
	var req *http.Request
	if body != "" {
		req = httptest.NewRequest(method, path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
	} else {
		req = httptest.NewRequest(method, path, nil)
	}
	if token != "" {
		req.Header.Set("X-Auth-Token", token)
	}
	req.Header.Set("Accept", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	res := response{status: rec.Code, header: rec.Header(), raw: rec.Body.String()}
	if strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") && rec.Body.Len() > 0 {
		if err := json.Unmarshal(rec.Body.Bytes(), &res.body); err != nil {
			t.Fatalf("%s %s: body is not JSON: %v\n%s", method, path, err, rec.Body.String())
		}
	}
	return res
}

// errorDetail is the detail of an {"errors": [...]} body, failing the
// test when the body is not one.
func errorDetail(t *testing.T, r response) string {
	t.Helper()
	errs, ok := r.body["errors"].([]any)
	if !ok || len(errs) != 1 {
		t.Fatalf("status %d: not an OpenStack error body: %s", r.status, r.raw)
	}
	e := errs[0].(map[string]any)
	if int(e["status"].(float64)) != r.status || e["request_id"] == "" || e["code"] == "" {
		t.Errorf("error body %v does not carry status %d, a request id and a code", e, r.status)
	}
	return e["detail"].(string)
}

// testbed is the handler over the real coordinator on a fresh database
// with host1 (bridgetest.TwoCells) registered, so that creates are placed.
type testbed struct {
	h    *Handler
	c    *bridge.Coordinator
	pool *pgxpool.Pool
}

func newTestbed(t *testing.T, cfg Config) *testbed {
	t.Helper()
	c, pool := bridgetest.Coordinator(t)
	bridgetest.Register(t, c, bridgetest.TwoCells("host1"))
	cfg.Service = c
	cfg.LatestDecision = func(ctx context.Context, id string) (ledger.Decision, error) {
		return ledger.LatestDecision(ctx, pool, id)
	}
	return &testbed{h: New(cfg), c: c, pool: pool}
}

func (tb *testbed) count(t *testing.T, table string) int {
	t.Helper()
	var n int
	if err := tb.pool.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		t.Fatalf("counting %s: %v", table, err)
	}
	return n
}

// assertNothingCreated proves refused requests never reached the
// coordinator: no workload, no claim, no event for the agents.
func (tb *testbed) assertNothingCreated(t *testing.T, what string) {
	t.Helper()
	for _, table := range []string{"bridge_workloads", "allocations", "bridge_outbox"} {
		if n := tb.count(t, table); n != 0 {
			t.Errorf("%s: %d rows in %s, want none", what, n, table)
		}
	}
}

const container = `{"kind": "container", "name": "web", "cpu": 1, "memory_mb": 64, "image": "busybox"}`

// Every field of a workload entry refuses what it cannot take with a 400
// naming the field, before the coordinator is asked anything.
func TestCreateBadInput(t *testing.T) {
	tb := newTestbed(t, Config{})
	h := tb.h
	entry := func(extra string) string {
		return `{"workloads": [{"kind": "container", "cpu": 1, "memory_mb": 64, "image": "busybox"` + extra + `}]}`
	}
	vm := func(extra string) string {
		return `{"workloads": [{"kind": "vm", "cpu": 2, "memory_mb": 1024` + extra + `}]}`
	}
	tests := []struct {
		name, body, want string
	}{
		{"not an object", `[]`, "is not of type 'object'"},
		{"no workloads", `{}`, "'workloads' is a required property"},
		{"workloads not a list", `{"workloads": {}}`, "Invalid input for workloads"},
		{"empty list", `{"workloads": []}`, "[] is too short"},
		{"unknown top-level key", `{"workloads": [` + container + `], "x": 1}`, "Additional properties are not allowed"},
		{"too many", `{"workloads": [` + strings.Repeat(container+",", 32) + container + `]}`, "is too long"},
		{"entry not an object", `{"workloads": [1]}`, "workloads[0]"},
		{"kind missing", `{"workloads": [{"cpu": 1, "memory_mb": 64}]}`, "'kind' is a required property"},
		{"kind unknown", `{"workloads": [{"kind": "pod", "cpu": 1, "memory_mb": 64}]}`, "workloads[0].kind"},
		{"kind not a string", `{"workloads": [{"kind": 1, "cpu": 1, "memory_mb": 64}]}`, "workloads[0].kind"},
		{"unknown field", entry(`, "colour": "red"`), "'colour' was unexpected"},
		{"id not a uuid", entry(`, "id": "abc"`), "workloads[0].id"},
		{"id not a string", entry(`, "id": 5`), "workloads[0].id"},
		{"name empty", entry(`, "name": ""`), "workloads[0].name"},
		{"name bad chars", entry(`, "name": "a b"`), "workloads[0].name"},
		{"name too long", entry(`, "name": "` + strings.Repeat("a", 256) + `"`), "workloads[0].name"},
		{"cpu_policy unknown", entry(`, "cpu_policy": "isolated"`), "workloads[0].cpu_policy"},
		{"cpu missing", `{"workloads": [{"kind": "container", "memory_mb": 64, "image": "busybox"}]}`, "'cpu' is a required property"},
		{"cpu zero", `{"workloads": [{"kind": "container", "cpu": 0, "memory_mb": 64, "image": "busybox"}]}`, "workloads[0].cpu: 0 is less than or equal to the minimum of 0"},
		{"cpu negative", `{"workloads": [{"kind": "container", "cpu": -1, "memory_mb": 64, "image": "busybox"}]}`, "workloads[0].cpu"},
		{"cpu huge", `{"workloads": [{"kind": "container", "cpu": 1e300, "memory_mb": 64, "image": "busybox"}]}`, "workloads[0].cpu"},
		{"cpu string", `{"workloads": [{"kind": "container", "cpu": "1", "memory_mb": 64, "image": "busybox"}]}`, "workloads[0].cpu"},
		{"dedicated fractional cpu", entry(`, "cpu_policy": "dedicated", "cpu": 1.5`), "workloads[0].cpu: 1.5 is not of type 'integer'"},
		{"memory missing", `{"workloads": [{"kind": "container", "cpu": 1, "image": "busybox"}]}`, "'memory_mb' is a required property"},
		{"memory too small", `{"workloads": [{"kind": "container", "cpu": 1, "memory_mb": 5, "image": "busybox"}]}`, "workloads[0].memory_mb: 5 is less than the minimum of 6"},
		{"memory fractional", `{"workloads": [{"kind": "container", "cpu": 1, "memory_mb": 64.5, "image": "busybox"}]}`, "workloads[0].memory_mb"},
		{"memory past int32", `{"workloads": [{"kind": "container", "cpu": 1, "memory_mb": 2147483648, "image": "busybox"}]}`, "workloads[0].memory_mb"},
		{"disk negative", entry(`, "disk_gb": -1`), "workloads[0].disk_gb"},
		{"disk string", entry(`, "disk_gb": "1"`), "workloads[0].disk_gb"},
		{"numa not an object", entry(`, "numa": 2`), "workloads[0].numa"},
		{"numa cells missing", entry(`, "numa": {}`), "'cells' is a required property"},
		{"numa cells zero", entry(`, "numa": {"cells": 0}`), "workloads[0].numa.cells"},
		{"numa cells too many", entry(`, "numa": {"cells": 9}`), "workloads[0].numa.cells"},
		{"numa memory count", entry(`, "numa": {"cells": 1, "memory_mb": [32, 32]}`), "1 cells but memory given for 2"},
		{"numa memory sum", entry(`, "numa": {"cells": 1, "memory_mb": [32]}`), "adds up to 32, not memory_mb 64"},
		{"numa cpu split", vm(`, "cpu": 3, "numa": {"cells": 2}`), "3 CPUs cannot be split evenly over 2"},
		{"numa memory split", vm(`, "memory_mb": 1025, "numa": {"cells": 2}`), "1025 MB cannot be split evenly over 2"},
		{"numa unknown key", entry(`, "numa": {"cells": 1, "x": 1}`), "'x' was unexpected"},
		{"required_traits not a list", entry(`, "required_traits": "HW_CPU_X86_AVX"`), "workloads[0].required_traits"},
		{"required_traits lowercase", entry(`, "required_traits": ["avx"]`), "workloads[0].required_traits[0]"},
		{"required_traits duplicate", entry(`, "required_traits": ["A", "A"]`), "has non-unique elements"},
		{"forbidden_traits bad", entry(`, "forbidden_traits": [1]`), "workloads[0].forbidden_traits[0]"},
		{"trait required and forbidden", entry(`, "required_traits": ["A"], "forbidden_traits": ["A"]`), "trait A is both required and forbidden"},
		{"member_of flat", entry(`, "member_of": ["5d9f5f0e-8a55-4b8e-9a6b-3f1d2b8a7c10"]`), "workloads[0].member_of[0]"},
		{"member_of empty group", entry(`, "member_of": [[]]`), "workloads[0].member_of[0]"},
		{"member_of not uuid", entry(`, "member_of": [["agg"]]`), "workloads[0].member_of[0][0]"},
		{"availability_zone empty", entry(`, "availability_zone": ""`), "workloads[0].availability_zone"},
		{"host bad", entry(`, "host": "a/b"`), "workloads[0].host"},
		{"group not an object", entry(`, "group": "g"`), "workloads[0].group"},
		{"group policy missing", entry(`, "group": {"id": "g"}`), "'policy' is a required property"},
		{"group policy unknown", entry(`, "group": {"id": "g", "policy": "together"}`), "workloads[0].group.policy"},
		{"group max_per_host zero", entry(`, "group": {"id": "g", "policy": "anti-affinity", "max_per_host": 0}`), "workloads[0].group.max_per_host"},
		{"image missing", `{"workloads": [{"kind": "container", "cpu": 1, "memory_mb": 64}]}`, "'image' is a required property"},
		{"image empty", `{"workloads": [{"kind": "container", "cpu": 1, "memory_mb": 64, "image": ""}]}`, "workloads[0].image"},
		{"image with space", `{"workloads": [{"kind": "container", "cpu": 1, "memory_mb": 64, "image": "a b"}]}`, "workloads[0].image"},
		{"command not a list", entry(`, "command": "sleep 1"`), "workloads[0].command"},
		{"command element", entry(`, "command": ["sleep", 1]`), "workloads[0].command[1]"},
		{"entrypoint element", entry(`, "entrypoint": [null]`), "workloads[0].entrypoint[0]"},
		{"environment list", entry(`, "environment": ["A=1"]`), "workloads[0].environment"},
		{"environment value", entry(`, "environment": {"A": 1}`), "workloads[0].environment.A"},
		{"environment key with =", entry(`, "environment": {"A=B": "1"}`), "workloads[0].environment"},
		{"labels value", entry(`, "labels": {"a": true}`), "workloads[0].labels.a"},
		{"labels reserved", entry(`, "labels": {"org.unisched.host": "x"}`), "workloads[0].labels"},
		{"workdir relative", entry(`, "workdir": "tmp"`), "workloads[0].workdir"},
		{"hostname bad", entry(`, "hostname": "-x"`), "workloads[0].hostname"},
		{"tty string", entry(`, "tty": "yes"`), "workloads[0].tty"},
		{"interactive number", entry(`, "interactive": 1`), "workloads[0].interactive"},
		{"privileged string", entry(`, "privileged": "true"`), "workloads[0].privileged"},
		{"auto_remove null", entry(`, "auto_remove": null`), "workloads[0].auto_remove"},
		{"run string", entry(`, "run": "false"`), "workloads[0].run"},
		{"restart_policy string", entry(`, "restart_policy": "always"`), "workloads[0].restart_policy"},
		{"restart_policy name", entry(`, "restart_policy": {"name": "sometimes"}`), "workloads[0].restart_policy.name"},
		{"restart_policy count negative", entry(`, "restart_policy": {"name": "on-failure", "maximum_retry_count": -1}`), "workloads[0].restart_policy.maximum_retry_count"},
		{"restart_policy count without on-failure", entry(`, "restart_policy": {"name": "always", "maximum_retry_count": 3}`), "on-failure policy only"},
		{"auto_remove with restart", entry(`, "auto_remove": true, "restart_policy": {"name": "always"}`), "auto_remove conflicts"},
		{"vm with image field of container", vm(`, "command": ["x"]`), "'command' was unexpected"},
		{"vm fractional cpu", `{"workloads": [{"kind": "vm", "cpu": 0.5, "memory_mb": 1024}]}`, "workloads[0].cpu"},
		{"vm memory zero", `{"workloads": [{"kind": "vm", "cpu": 1, "memory_mb": 0}]}`, "workloads[0].memory_mb"},
		{"vm flavor empty", vm(`, "flavor": ""`), "workloads[0].flavor"},
		{"second entry bad", `{"workloads": [` + container + `, {"kind": "vm", "cpu": 1}]}`, "'memory_mb' is a required property"},
		{"duplicate ids", `{"workloads": [{"kind": "vm", "cpu": 1, "memory_mb": 1, "id": "5d9f5f0e-8a55-4b8e-9a6b-3f1d2b8a7c10"},
			{"kind": "vm", "cpu": 1, "memory_mb": 1, "id": "5D9F5F0E8A554B8E9A6B3F1D2B8A7C10"}]}`, "is also the id of workloads[0]"},
		{"malformed JSON", `{"workloads": [`, "Malformed JSON"},
		{"trailing data", `{"workloads": []} x`, "Malformed JSON"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, h, "POST", "/v1/workloads", aliceToken, tc.body)
			if r.status != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", r.status, r.raw)
			}
			if d := errorDetail(t, r); !strings.Contains(d, tc.want) {
				t.Errorf("detail %q does not contain %q", d, tc.want)
			}
		})
	}
	tb.assertNothingCreated(t, "bad input")
}

// What the body cannot say: its media type, its size, who sends it.
func TestCreateRequestChecks(t *testing.T) {
	tb := newTestbed(t, Config{MaxBodyBytes: 512})
	h := tb.h
	body := `{"workloads": [` + container + `]}`

	req := httptest.NewRequest("POST", "/v1/workloads", strings.NewReader(body))
	req.Header.Set("X-Auth-Token", aliceToken)
	req.Header.Set("Content-Type", "text/plain")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusUnsupportedMediaType {
		t.Errorf("text/plain body: %d, want 415", rec.Code)
	}

	big := `{"workloads": [` + strings.Repeat(container+",", 20) + container + `]}`
	if r := do(t, h, "POST", "/v1/workloads", aliceToken, big); r.status != http.StatusRequestEntityTooLarge {
		t.Errorf("large body: %d, want 413", r.status)
	}
	if r := do(t, h, "POST", "/v1/workloads", "", body); r.status != http.StatusUnauthorized {
		t.Errorf("no token: %d, want 401", r.status)
	}
	if r := do(t, h, "POST", "/v1/workloads", aliceToken, `{"workloads": [{"kind": "container", "cpu": 1, "memory_mb": 64, "image": "busybox", "host": "host1"}]}`); r.status != http.StatusForbidden {
		t.Errorf("member choosing the host: %d, want 403", r.status)
	}
	if r := do(t, h, "POST", "/v1/workloads", aliceToken, `{"workloads": [{"kind": "container", "cpu": 1, "memory_mb": 64, "image": "busybox", "privileged": true}]}`); r.status != http.StatusForbidden {
		t.Errorf("member asking privileged: %d, want 403", r.status)
	}
	if r := do(t, h, "PATCH", "/v1/workloads", aliceToken, body); r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != "GET, POST" {
		t.Errorf("PATCH: %d Allow %q, want 405 with GET, POST", r.status, r.header.Get("Allow"))
	}
	if r := do(t, h, "GET", "/v1/workloads/x/y", aliceToken, ""); r.status != http.StatusNotFound {
		t.Errorf("unknown path: %d, want 404", r.status)
	}
	tb.assertNothingCreated(t, "refused requests")
	if r := do(t, h, "POST", "/v1/workloads", adminToken, `{"workloads": [{"kind": "container", "cpu": 1, "memory_mb": 64, "image": "busybox", "host": "host1", "privileged": true}]}`); r.status != http.StatusAccepted {
		t.Errorf("admin choosing the host, privileged: %d, want 202: %s", r.status, r.raw)
	}
}

// What the coordinator stores is what the entries asked for.
func TestCreateRequestMapping(t *testing.T) {
	tb := newTestbed(t, Config{})
	h := tb.h
	ctx := context.Background()
	// host1 has the trait and is in the aggregate the entries ask for, so
	// both are placed and what the coordinator stored can be read back.
	if _, err := tb.pool.Exec(ctx, `INSERT INTO resource_provider_traits (resource_provider_id, trait_id)
		SELECT rp.id, t.id FROM resource_providers rp, traits t WHERE rp.name = 'host1' AND t.name = 'HW_CPU_X86_AVX2'`); err != nil {
		t.Fatal(err)
	}
	if _, err := tb.pool.Exec(ctx, `WITH a AS (INSERT INTO placement_aggregates (uuid) VALUES ('1b9e0c5a-0d1f-4b6e-8f7a-2c3d4e5f6a7b') RETURNING id)
		INSERT INTO resource_provider_aggregates (resource_provider_id, aggregate_id) SELECT rp.id, a.id FROM resource_providers rp, a WHERE rp.name = 'host1'`); err != nil {
		t.Fatal(err)
	}
	body := `{"workloads": [
	  {"kind": "container", "name": "web", "cpu_policy": "dedicated", "cpu": 2, "memory_mb": 512.0, "disk_gb": 1,
	   "image": "busybox", "command": ["sleep", "60"], "environment": {"A": "1"}, "labels": {"tier": "web"},
	   "numa": {"cells": 1}, "required_traits": ["HW_CPU_X86_AVX2"], "restart_policy": {"name": "on-failure", "maximum_retry_count": 2},
	   "run": false, "group": {"id": "g1", "policy": "anti-affinity", "max_per_host": 2}},
	  {"kind": "vm", "name": "db", "cpu": 4, "memory_mb": 2048, "flavor": "m1.large",
	   "id": "5D9F5F0E-8A55-4B8E-9A6B-3F1D2B8A7C10", "member_of": [["1b9e0c5a-0d1f-4b6e-8f7a-2c3d4e5f6a7b"]]}
	]}`
	req := httptest.NewRequest("POST", "/v1/workloads", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Auth-Token", aliceToken)
	req.Header.Set("X-OpenStack-Request-ID", "req-11111111-2222-3333-4444-555555555555")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusAccepted {
		t.Fatalf("status %d: %s", rec.Code, rec.Body.String())
	}
	var out struct {
		Workloads []map[string]any `json:"workloads"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || len(out.Workloads) != 2 {
		t.Fatalf("body %s: %v", rec.Body.String(), err)
	}
	if n := tb.count(t, "bridge_workloads"); n != 2 {
		t.Fatalf("%d workloads stored, want 2", n)
	}
	c, err := tb.c.Get(ctx, out.Workloads[0]["id"].(string))
	if err != nil {
		t.Fatal(err)
	}
	v, err := tb.c.Get(ctx, "5d9f5f0e-8a55-4b8e-9a6b-3f1d2b8a7c10")
	if err != nil {
		t.Fatalf("the VM is not stored under its normalized id: %v", err)
	}
	var ccont agentproto.Container
	if c.Container != nil {
		ccont = *c.Container
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"kind", c.Kind, "container"},
		{"project", c.ProjectID, "projA"},
		{"user", c.UserID, "alice"},
		{"global request id", c.RequestID, "req-11111111-2222-3333-4444-555555555555"},
		{"policy", string(c.CPUPolicy), "dedicated"},
		{"cpu", c.Resources.PCPU, int64(2)},
		{"memory", c.Resources.MemoryMB, int64(512)},
		{"disk", c.Resources.DiskGB, int64(1)},
		{"numa", len(c.Assignment.Cells), 1},
		{"traits: placed on the host that has it", c.Host, "host1"},
		{"group", c.ServerGroup, "g1"},
		{"container image", ccont.Image, "busybox"},
		{"container command", fmt.Sprint(ccont.Command), "[sleep 60]"},
		{"container env", ccont.Env["A"], "1"},
		{"container labels", ccont.Labels["tier"], "web"},
		{"container not running", ccont.Running, false},
		{"container project", ccont.ProjectID, "projA"},
		{"container workload id", ccont.WorkloadID, c.ID},
		{"restart", fmt.Sprint(ccont.RestartPolicy), "{on-failure 2}"},
		{"generated id", len(c.ID), 36},
		{"spec kept", strings.Contains(string(c.Spec), `"image": "busybox"`), true},
		{"vm id normalized", v.ID, "5d9f5f0e-8a55-4b8e-9a6b-3f1d2b8a7c10"},
		{"vm no container", v.Container == nil, true},
		{"vm policy default", string(v.CPUPolicy), "shared"},
		{"vm member_of: placed in the aggregate", v.Host, "host1"},
		{"vm cpu", v.Resources.VCPU, int64(4)},
	}
	for _, tc := range checks {
		if fmt.Sprint(tc.got) != fmt.Sprint(tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	if out.Workloads[0]["host"] != "host1" || out.Workloads[1]["id"] != v.ID || out.Workloads[0]["state"] != "claimed" {
		t.Errorf("views: %v", out.Workloads)
	}
	// the traits and member_of reach the scheduler: a host without them
	// is refused
	for _, extra := range []string{`"forbidden_traits": ["HW_CPU_X86_AVX2"]`, `"member_of": [["0c2a6f9e-3b1d-4e5f-8a7b-9c0d1e2f3a4b"]]`} {
		r := do(t, h, "POST", "/v1/workloads", aliceToken, `{"workloads": [{"kind": "container", "cpu": 1, "memory_mb": 64, "image": "busybox", `+extra+`}]}`)
		if r.status != http.StatusAccepted || workloads(t, r)[0]["state"] != "error" {
			t.Errorf("%s: %d %s, want 202 in state error", extra, r.status, r.raw)
		}
	}
}

// The coordinator's errors become statuses; no host is a workload in
// state error, not a failed request; a refusal after some entries were
// created undoes them. Every error comes from the real coordinator.
func TestServiceErrorMapping(t *testing.T) {
	t.Run("no valid host", func(t *testing.T) {
		tb := newTestbed(t, Config{})
		r := do(t, tb.h, "POST", "/v1/workloads", aliceToken, `{"workloads": [`+container+`, {"kind": "vm", "name": "big", "cpu": 1, "memory_mb": 1000000}]}`)
		if r.status != http.StatusAccepted {
			t.Fatalf("status %d, want 202: %s", r.status, r.raw)
		}
		ws := r.body["workloads"].([]any)
		first, second := ws[0].(map[string]any), ws[1].(map[string]any)
		reason, _ := second["status_reason"].(string)
		if first["state"] != "claimed" || second["state"] != "error" || !strings.Contains(reason, "not enough hosts") || second["host"] != nil {
			t.Errorf("views %v / %v", first, second)
		}
		// the placed one was not undone
		if r := do(t, tb.h, "GET", "/v1/workloads/"+first["id"].(string), aliceToken, ""); r.status != 200 || r.body["state"] != "claimed" {
			t.Errorf("a workload without a host undid the others: %d %s", r.status, r.raw)
		}
		if n := tb.count(t, "allocations"); n == 0 {
			t.Errorf("the placed workload lost its claim")
		}
	})
	const unknown = "00000000-0000-0000-0000-000000000009"
	tests := []struct {
		name         string
		prepare      func(t *testing.T, tb *testbed) (method, path, body string)
		status       int
		detailPrefix string
	}{
		{"unknown id", func(*testing.T, *testbed) (string, string, string) { return "GET", "/v1/workloads/" + unknown, "" }, 404, ""},
		{"delete unknown id", func(*testing.T, *testbed) (string, string, string) { return "DELETE", "/v1/workloads/" + unknown, "" }, 404, ""},
		{"id taken", func(t *testing.T, tb *testbed) (string, string, string) {
			id := createOne(t, tb.h, aliceToken, "a")
			return "POST", "/v1/workloads", `{"workloads": [{"kind": "vm", "cpu": 1, "memory_mb": 64, "id": "` + id + `"}]}`
		}, 409, "workloads[0]: "},
		{"delete running without stop", func(t *testing.T, tb *testbed) (string, string, string) {
			id := createOne(t, tb.h, aliceToken, "a")
			if r := do(t, tb.h, "POST", "/v1/agents/host1/reports", adminToken, `{"workload_id": "`+id+`", "status": "Running"}`); r.status != 204 {
				t.Fatalf("report: %d %s", r.status, r.raw)
			}
			return "DELETE", "/v1/workloads/" + id, ""
		}, 409, ""},
		{"coordinator refuses", func(*testing.T, *testbed) (string, string, string) {
			return "POST", "/v1/workloads", `{"workloads": [` + container + `]}`
		}, 400, "workloads[0]: invalid request: project and user ids are at most 255 characters"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tb := newTestbed(t, Config{})
			method, path, body := tc.prepare(t, tb)
			token := aliceToken
			if tc.status == 400 {
				// a project id the API passes on and the coordinator refuses
				token = "alice:" + strings.Repeat("p", 300)
			}
			r := do(t, tb.h, method, path, token, body)
			if r.status != tc.status {
				t.Fatalf("%s %s: %d, want %d: %s", method, path, r.status, tc.status, r.raw)
			}
			if d := errorDetail(t, r); !strings.Contains(d, tc.detailPrefix) {
				t.Errorf("detail %q lacks %q", d, tc.detailPrefix)
			}
			if tc.status == 400 {
				tb.assertNothingCreated(t, "a refused create")
			}
		})
	}
	t.Run("database gone is a 500 without internals", func(t *testing.T) {
		tb := newTestbed(t, Config{})
		id := createOne(t, tb.h, aliceToken, "a")
		tb.pool.Close()
		for _, rq := range []struct{ method, path, body string }{
			{"POST", "/v1/workloads", `{"workloads": [` + container + `]}`},
			{"GET", "/v1/workloads/" + id, ""},
			{"GET", "/v1/workloads", ""},
			{"DELETE", "/v1/workloads/" + id, ""},
		} {
			r := do(t, tb.h, rq.method, rq.path, aliceToken, rq.body)
			if r.status != 500 {
				t.Errorf("%s %s: %d, want 500: %s", rq.method, rq.path, r.status, r.raw)
				continue
			}
			if d := errorDetail(t, r); strings.Contains(d, "closed") || strings.Contains(d, "pool") {
				t.Errorf("a 500 shows internals: %q", d)
			}
		}
	})
	t.Run("refusal undoes earlier entries", func(t *testing.T) {
		tb := newTestbed(t, Config{})
		taken := createOne(t, tb.h, aliceToken, "first")
		r := do(t, tb.h, "POST", "/v1/workloads", aliceToken, `{"workloads": [`+container+`, {"kind": "container", "cpu": 1, "memory_mb": 64, "image": "busybox", "id": "`+taken+`"}]}`)
		if r.status != http.StatusConflict {
			t.Fatalf("status %d, want 409: %s", r.status, r.raw)
		}
		if d := errorDetail(t, r); !strings.Contains(d, "workloads[1]: ") {
			t.Errorf("detail %q does not name the entry", d)
		}
		ws, err := tb.c.List(context.Background(), bridge.ListFilter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(ws) != 1 || ws[0].ID != taken {
			t.Errorf("the first entry was not undone: %d workloads left", len(ws))
		}
		var n int
		if err := tb.pool.QueryRow(context.Background(), `SELECT count(DISTINCT consumer_id) FROM allocations`).Scan(&n); err != nil || n != 1 {
			t.Errorf("consumers holding allocations: %d (%v), want 1", n, err)
		}
	})
}
