package zunext

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/unisched/unisched/bridge"
	"github.com/unisched/unisched/bridge/agentproto"
	"github.com/unisched/unisched/bridge/bridgetest"
)

// testbed is the handler over the real coordinator on a fresh database
// with host1 (bridgetest.TwoCells: 8 GB, 4 dedicated and 4 shared CPUs)
// registered, so that creates are placed and claimed as in serve.
type testbed struct {
	h    http.Handler
	c    *bridge.Coordinator
	pool *pgxpool.Pool
	// now is the handler's clock (services' up/down); nil: time.Now.
	now func() time.Time
}

func newTestHandler(t *testing.T) (http.Handler, *testbed) {
	t.Helper()
	tb := newBareTestbed(t)
	reg := bridgetest.TwoCells("host1")
	reg.OS, reg.KernelVersion, reg.Architecture = "Debian GNU/Linux 12", "6.1.0", "x86_64"
	bridgetest.Register(t, tb.c, reg)
	return tb.h, tb
}

// newBareTestbed is a testbed without any host registered.
func newBareTestbed(t *testing.T) *testbed {
	t.Helper()
	c, pool := bridgetest.Coordinator(t)
	tb := &testbed{c: c, pool: pool}
	tb.h = NewHandler(c, Options{Now: func() time.Time {
		if tb.now != nil {
			return tb.now()
		}
		return time.Now()
	}})
	return tb
}

// report records what host1's agent observed of a container, as the
// agent's POST /v1/agents/{host}/reports does.
func (tb *testbed) report(t *testing.T, id, status, reason string, exitCode *int) {
	t.Helper()
	err := tb.c.Report(context.Background(), "host1", agentproto.Report{WorkloadID: id, Status: status, Reason: reason,
		ExitCode: exitCode, ObservedAt: time.Now()})
	if err != nil {
		t.Fatalf("report %s of %s: %v", status, id, err)
	}
}

func (tb *testbed) get(t *testing.T, id string) bridge.Workload {
	t.Helper()
	w, err := tb.c.Get(context.Background(), id)
	if err != nil {
		t.Fatalf("loading workload %s: %v", id, err)
	}
	return w
}

func (tb *testbed) count(t *testing.T, table string) int {
	t.Helper()
	var n int
	if err := tb.pool.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		t.Fatalf("counting %s: %v", table, err)
	}
	return n
}

// rows counts what a request could have left behind: workloads, Placement
// allocations, events for the agents.
func (tb *testbed) rows(t *testing.T) [3]int {
	t.Helper()
	return [3]int{tb.count(t, "bridge_workloads"), tb.count(t, "allocations"), tb.count(t, "bridge_outbox")}
}

// events are the agent events of the given type written to the outbox
// for the agents, oldest first.
func (tb *testbed) events(t *testing.T, typ string) []agentproto.Event {
	t.Helper()
	rows, err := tb.pool.Query(context.Background(),
		`SELECT payload FROM bridge_outbox WHERE topic = $1 AND payload->>'type' = $2 ORDER BY id`, bridge.AgentTopic, typ)
	if err != nil {
		t.Fatalf("reading the outbox: %v", err)
	}
	defer rows.Close()
	var out []agentproto.Event
	for rows.Next() {
		var raw []byte
		if err := rows.Scan(&raw); err != nil {
			t.Fatalf("reading the outbox: %v", err)
		}
		var ev agentproto.Event
		if err := json.Unmarshal(raw, &ev); err != nil {
			t.Fatalf("outbox payload %s: %v", raw, err)
		}
		out = append(out, ev)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("reading the outbox: %v", err)
	}
	return out
}

// apiCall is one request to the handler.
type apiCall struct {
	method, path, token, version, body string
	header                             map[string]string
}

type apiResult struct {
	status int
	header http.Header
	body   []byte
}

func (r apiResult) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body %q is not a JSON object: %v", r.body, err)
	}
	return m
}

// errorOf returns the first element of a Zun error body.
func (r apiResult) errorOf(t *testing.T) map[string]any {
	t.Helper()
	m := r.json(t)
	errs, ok := m["errors"].([]any)
	if !ok || len(errs) != 1 {
		t.Fatalf("no errors list in %s", r.body)
	}
	return errs[0].(map[string]any)
}

func do(t *testing.T, h http.Handler, c apiCall) apiResult {
	t.Helper()
	var body io.Reader
	if c.body != "" {
		body = strings.NewReader(c.body)
	}
	req := httptest.NewRequest(c.method, "http://zun.test"+c.path, body)
	if c.token != "-" {
		tok := c.token
		if tok == "" {
			tok = "admin:admin"
		}
		req.Header.Set("X-Auth-Token", tok)
	}
	if c.version != "" {
		req.Header.Set(versionHeader, c.version)
	}
	if c.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return apiResult{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
}

const latest = "container 1.40"

// create runs a container as project's member and returns its view.
func create(t *testing.T, h http.Handler, token, body string) map[string]any {
	t.Helper()
	res := do(t, h, apiCall{method: "POST", path: "/v1/containers", token: token, version: latest, body: body})
	if res.status != http.StatusAccepted {
		t.Fatalf("create %s: %d %s", body, res.status, res.body)
	}
	return res.json(t)
}

func newRecorder() *httptest.ResponseRecorder { return httptest.NewRecorder() }

// allocations are a consumer's Placement allocations by resource class.
func (tb *testbed) allocations(t *testing.T, consumer string) map[string]int {
	t.Helper()
	rows, err := tb.pool.Query(context.Background(), `SELECT rc.name, a.used FROM allocations a
		JOIN consumers c ON c.id = a.consumer_id JOIN resource_classes rc ON rc.id = a.resource_class_id
		WHERE c.uuid = $1`, consumer)
	if err != nil {
		t.Fatalf("reading the allocations of %s: %v", consumer, err)
	}
	out := map[string]int{}
	var class string
	var used int
	if _, err := pgx.ForEachRow(rows, []any{&class, &used}, func() error { out[class] = used; return nil }); err != nil {
		t.Fatalf("reading the allocations of %s: %v", consumer, err)
	}
	return out
}
