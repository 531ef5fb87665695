package novaext_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/unisched/unisched/bridge/ledger"
	"github.com/unisched/unisched/internal/pgtest"
	"github.com/unisched/unisched/novaext"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// seen is one request as the upstream received it.
type seen struct {
	Method, Path, RawQuery, Host string
	Header                       http.Header
	Body                         []byte
	// IntentAtArrival: for a create, whether the ledger held an intent
	// under the forwarded request id when nova-api got the request.
	IntentAtArrival bool
	IntentErr       error
}

// upstream is a stand-in of nova-api that records what reaches it: the
// proxy's contract is about what goes through, so the test double only
// needs to answer and remember. It answers creates with 202 and its own
// local id, flavors from its table, and whatever a test sets for the rest.
type upstream struct {
	t    *testing.T
	pool *pgxpool.Pool
	srv  *httptest.Server

	mu      sync.Mutex
	seen    []seen
	flavors map[string]string // id -> JSON of the flavor at 2.61
	// flavorStatus, when set, is the status of every flavor lookup.
	flavorStatus int
	// createStatus is the status of creates (202 when 0).
	createStatus int
	// handle, when set, answers paths that are not creates or flavors.
	handle http.HandlerFunc
}

func newUpstream(t *testing.T, pool *pgxpool.Pool) *upstream {
	u := &upstream{t: t, pool: pool, flavors: map[string]string{
		"42": `{"id": "42", "name": "m1.pinned", "vcpus": 2, "ram": 1024, "disk": 10, "OS-FLV-EXT-DATA:ephemeral": 1, "swap": "",
			"extra_specs": {"hw:cpu_policy": "dedicated", "hw:numa_nodes": "1"}}`,
	}}
	u.srv = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *upstream) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s := seen{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Host: r.Host, Header: r.Header.Clone(), Body: body}
	isCreate := r.Method == http.MethodPost && (strings.HasSuffix(r.URL.Path, "/servers") || strings.HasSuffix(r.URL.Path, "/os-volumes_boot"))
	if isCreate {
		if id := r.Header.Get("X-Openstack-Request-Id"); id != "" {
			_, s.IntentErr = ledger.IntentByRequestID(r.Context(), u.pool, id)
			s.IntentAtArrival = s.IntentErr == nil
		}
	}
	u.mu.Lock()
	u.seen = append(u.seen, s)
	flavorStatus, createStatus, handle := u.flavorStatus, u.createStatus, u.handle
	u.mu.Unlock()

	local := "req-" + uuid.NewString()
	w.Header().Set("X-Openstack-Request-Id", local)
	w.Header().Set("X-Compute-Request-Id", local)
	switch {
	case isCreate:
		if createStatus == 0 {
			createStatus = http.StatusAccepted
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(createStatus)
		fmt.Fprintf(w, `{"server": {"id": %q}}`, uuid.NewString())
	case r.Method == http.MethodGet && flavorPath.MatchString(r.URL.Path):
		id := flavorPath.FindStringSubmatch(r.URL.Path)[1]
		f, ok := u.flavors[id]
		switch {
		case flavorStatus != 0:
			w.WriteHeader(flavorStatus)
		case !ok:
			w.WriteHeader(http.StatusNotFound)
		default:
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"flavor": %s}`, f)
		}
	case handle != nil:
		handle(w, r)
	default:
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Upstream", "yes")
		w.WriteHeader(http.StatusOK)
		fmt.Fprintf(w, `{"path": %q}`, r.URL.Path)
	}
}

var flavorPath = regexp.MustCompile(`/flavors/([^/]+)$`)

func (u *upstream) requests(method, pathSuffix string) []seen {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []seen
	for _, s := range u.seen {
		if s.Method == method && strings.HasSuffix(s.Path, pathSuffix) {
			out = append(out, s)
		}
	}
	return out
}

type env struct {
	ctx   context.Context
	pool  *pgxpool.Pool
	up    *upstream
	proxy *httptest.Server
}

func setup(t *testing.T) *env {
	t.Helper()
	return setupOn(t, pgtest.Pool(t))
}

// setupOn is a fresh upstream and proxy over an existing database (one
// database per test function: creating one takes seconds here).
func setupOn(t *testing.T, pool *pgxpool.Pool) *env {
	t.Helper()
	up := newUpstream(t, pool)
	return &env{ctx: context.Background(), pool: pool, up: up, proxy: newProxy(t, pool, up.srv.URL)}
}

func newProxy(t *testing.T, pool *pgxpool.Pool, upstreamURL string) *httptest.Server {
	t.Helper()
	p, err := novaext.New(novaext.Config{Upstream: upstreamURL, DB: pool, MaxIntentBody: 64 << 10, LookupTimeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p)
	t.Cleanup(func() { srv.Close(); p.Close() })
	return srv
}

func (e *env) do(t *testing.T, method, path string, header http.Header, body string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(e.ctx, method, e.proxy.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body == "" {
		req.Body = http.NoBody
		req.ContentLength = 0
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := e.proxy.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func (e *env) intents(t *testing.T) int {
	t.Helper()
	var n int
	if err := e.pool.QueryRow(e.ctx, `SELECT count(*) FROM bridge_vm_intents`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestPassThrough(t *testing.T) {
	e := setup(t)
	cases := []struct {
		method, path, body string
		header             http.Header
	}{
		{"GET", "/v2.1/servers/detail?all_tenants=1&name=a%20b", "", http.Header{
			"X-Auth-Token": {"user:proj"}, "Openstack-Api-Version": {"compute 2.90"},
			"X-Openstack-Nova-Api-Version": {"2.90"}, "X-Custom": {"a", "b"}}},
		{"PUT", "/v2.1/servers/abc", `{"server": {"name":   "x"}}`, http.Header{
			"X-Auth-Token": {"tok"}, "Content-Type": {"application/json"}}},
		{"POST", "/v2.1/servers/abc/action", `{"os-stop": null}`, http.Header{"X-Auth-Token": {"tok"}}},
		{"DELETE", "/v2.1/servers/abc", "", http.Header{"X-Auth-Token": {"tok"}, "X-Openstack-Request-Id": {"req-ABC"}}},
		{"POST", "/v2.1/flavors", `{"flavor": {"name": "f", "ram": 1, "vcpus": 1, "disk": 0}}`, http.Header{"X-Auth-Token": {"admin:admin"}}},
	}
	for _, c := range cases {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			before := len(e.up.requests(c.method, ""))
			resp, body := e.do(t, c.method, c.path, c.header, c.body)
			if resp.StatusCode != 200 || resp.Header.Get("X-Upstream") != "yes" || resp.Header.Get("X-Compute-Request-Id") == "" {
				t.Fatalf("status %d header %v", resp.StatusCode, resp.Header)
			}
			got := e.up.requests(c.method, "")
			if len(got) != before+1 {
				t.Fatalf("upstream saw %d requests, want %d", len(got), before+1)
			}
			s := got[len(got)-1]
			wantPath, wantQuery, _ := strings.Cut(c.path, "?")
			if s.Path != wantPath || s.RawQuery != wantQuery || string(s.Body) != c.body {
				t.Errorf("upstream saw %s %s?%s %q", s.Method, s.Path, s.RawQuery, s.Body)
			}
			for k, v := range c.header {
				if fmt.Sprint(s.Header.Values(k)) != fmt.Sprint(v) {
					t.Errorf("header %s: upstream saw %v, want %v", k, s.Header.Values(k), v)
				}
			}
			if host := strings.TrimPrefix(e.proxy.URL, "http://"); s.Host != host {
				t.Errorf("Host %q, want the client's %q", s.Host, host)
			}
			if want := fmt.Sprintf(`{"path": %q}`, wantPath); string(body) != want {
				t.Errorf("body %s, want %s", body, want)
			}
		})
	}
	if n := e.intents(t); n != 0 {
		t.Errorf("%d intents recorded for calls that are not creates", n)
	}
	// only creates get an id from the proxy
	for _, s := range e.up.requests("GET", "/detail") {
		if s.Header.Get("X-Openstack-Request-Id") != "" {
			t.Errorf("a GET got a request id: %v", s.Header)
		}
	}
}

func TestCreateRecordsIntent(t *testing.T) {
	clientID := "req-" + uuid.NewString()
	cases := []struct {
		name, path, body string
		header           http.Header
		// keepID: the client's id must be forwarded as is
		keepID       bool
		wantProject  string
		wantUser     string
		wantImage    string
		wantHints    map[string]any
		wantMin      int
		wantMax      int
		wantFlavorID string
	}{
		{name: "plain", path: "/v2.1/servers",
			body: `{"server": {"name": "vm1", "flavorRef": "42", "imageRef": "img-1", "min_count": 2, "max_count": "3",
				"networks": "none"}, "os:scheduler_hints": {"group": "g1"}}`,
			header:   http.Header{"X-Auth-Token": {"alice:proj1"}, "Openstack-Api-Version": {"compute 2.90"}},
			wantUser: "alice", wantProject: "proj1", wantImage: "img-1", wantHints: map[string]any{"group": "g1"},
			wantMin: 2, wantMax: 3, wantFlavorID: "42"},
		{name: "client id kept", path: "/v2.1/servers",
			body:   `{"server": {"name": "vm2", "flavorRef": "http://nova/v2.1/flavors/42", "imageRef": "img-2"}, "OS-SCH-HNT:scheduler_hints": {"same_host": ["x"]}}`,
			header: http.Header{"X-Auth-Token": {"keystone-token"}, "X-Openstack-Request-Id": {clientID}},
			keepID: true, wantImage: "img-2", wantHints: map[string]any{"same_host": []any{"x"}}, wantMin: 1, wantMax: 1, wantFlavorID: "42"},
		{name: "upper-case client id replaced", path: "/v2/proj9/servers",
			body:     `{"server": {"name": "vm3", "flavorRef": 42, "imageRef": "img-3"}}`,
			header:   http.Header{"X-Auth-Token": {"bob:other"}, "X-Openstack-Request-Id": {strings.ToUpper("req-" + uuid.NewString())}},
			wantUser: "bob", wantProject: "proj9", wantImage: "img-3", wantMin: 1, wantMax: 1, wantFlavorID: "42"},
		{name: "boot from volume", path: "/v2.1/os-volumes_boot",
			body: `{"server": {"name": "vm4", "flavorRef": "42", "block_device_mapping_v2": [
				{"source_type": "blank", "boot_index": -1}, {"source_type": "image", "uuid": "img-4", "boot_index": "0"}]}}`,
			header:   http.Header{"X-Auth-Token": {"carol:p"}},
			wantUser: "carol", wantProject: "p", wantImage: "img-4", wantMin: 1, wantMax: 1, wantFlavorID: "42"},
	}
	pool := pgtest.Pool(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := setupOn(t, pool)
			before := e.intents(t)
			resp, body := e.do(t, "POST", c.path, c.header, c.body)
			if resp.StatusCode != 202 || !strings.Contains(string(body), `"server"`) {
				t.Fatalf("status %d body %s", resp.StatusCode, body)
			}
			creates := e.up.requests("POST", "")
			if len(creates) != 1 {
				t.Fatalf("upstream saw %d creates", len(creates))
			}
			s := creates[0]
			if string(s.Body) != c.body {
				t.Errorf("body changed: %q", s.Body)
			}
			id := s.Header.Get("X-Openstack-Request-Id")
			if !novaext.ValidRequestID(id) || (c.keepID && id != clientID) || (!c.keepID && id == c.header.Get("X-Openstack-Request-Id")) {
				t.Errorf("forwarded request id %q (client sent %q)", id, c.header.Get("X-Openstack-Request-Id"))
			}
			if !s.IntentAtArrival {
				t.Errorf("no intent when nova-api got the create: %v", s.IntentErr)
			}
			for k, v := range c.header {
				if k != "X-Openstack-Request-Id" && fmt.Sprint(s.Header.Values(k)) != fmt.Sprint(v) {
					t.Errorf("header %s: %v, want %v", k, s.Header.Values(k), v)
				}
			}
			// the flavor was read with the user's token at 2.61
			lookups := e.up.requests("GET", "/flavors/42")
			if len(lookups) != 1 {
				t.Fatalf("%d flavor lookups", len(lookups))
			}
			l := lookups[0]
			if l.Header.Get("X-Auth-Token") != c.header.Get("X-Auth-Token") || l.Header.Get("Openstack-Api-Version") != "compute 2.61" ||
				l.Header.Get("X-Openstack-Nova-Api-Version") != "2.61" || l.Header.Get("X-Openstack-Request-Id") != id {
				t.Errorf("flavor lookup headers %v", l.Header)
			}
			version, _, _ := strings.Cut(strings.TrimPrefix(c.path, "/"), "/")
			if want := "/" + version + "/"; !strings.HasPrefix(l.Path, want) || (c.wantProject == "proj9" && l.Path != "/v2/proj9/flavors/42") {
				t.Errorf("flavor lookup at %s", l.Path)
			}

			// nova-api's local id is an alias of the intent once the client has the answer
			local := resp.Header.Get("X-Openstack-Request-Id")
			in, err := ledger.IntentByRequestID(e.ctx, e.pool, local)
			if err != nil {
				t.Fatalf("intent by nova-api's id %s: %v", local, err)
			}
			if in.RequestID != id || in.ResponseStatus != 202 || len(in.Aliases) != 1 || in.Aliases[0] != local {
				t.Errorf("intent %+v", in)
			}
			if in.UserID != c.wantUser || in.ProjectID != c.wantProject || in.ImageRef != c.wantImage ||
				in.MinCount != c.wantMin || in.MaxCount != c.wantMax {
				t.Errorf("intent %+v", in)
			}
			if fmt.Sprint(in.SchedulerHints) != fmt.Sprint(c.wantHints) && !(len(in.SchedulerHints) == 0 && c.wantHints == nil) {
				t.Errorf("hints %v, want %v", in.SchedulerHints, c.wantHints)
			}
			f := in.Flavor
			if f == nil || f.ID != c.wantFlavorID || f.VCPUs != 2 || f.RAMMB != 1024 || f.DiskGB != 10 || f.EphemeralGB != 1 ||
				f.ExtraSpecs["hw:cpu_policy"] != "dedicated" || f.Name != "m1.pinned" {
				t.Errorf("flavor %+v", f)
			}
			if n := e.intents(t) - before; n != 1 {
				t.Errorf("%d intents recorded", n)
			}
		})
	}
}

func TestCreateBadBodies(t *testing.T) {
	e := setup(t)
	e.up.createStatus = http.StatusBadRequest
	huge := `{"server": {"flavorRef": "42", "name": "` + strings.Repeat("x", 80<<10) + `"}}`
	for _, body := range []string{
		``, `not json`, `[]`, `{"server": null}`, `{"server": "x"}`, `{"server": {"name": "no flavor"}}`,
		`{"server": {"flavorRef": {"id": 1}}}`, `{"server": {"flavorRef": "42"`, huge,
	} {
		name := body
		if len(name) > 40 {
			name = name[:40]
		}
		t.Run(name, func(t *testing.T) {
			before := len(e.up.requests("POST", "/servers"))
			resp, _ := e.do(t, "POST", "/v2.1/servers", http.Header{"X-Auth-Token": {"a:b"}}, body)
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("status %d, want nova-api's 400", resp.StatusCode)
			}
			got := e.up.requests("POST", "/servers")
			if len(got) != before+1 {
				t.Fatalf("not forwarded")
			}
			if s := got[len(got)-1]; string(s.Body) != body || s.Header.Get("X-Openstack-Request-Id") != "" {
				t.Errorf("forwarded %d bytes (want %d), id %q", len(s.Body), len(body), s.Header.Get("X-Openstack-Request-Id"))
			}
		})
	}
	if n := e.intents(t); n != 0 {
		t.Errorf("%d intents from bad bodies", n)
	}

	// a body Nova refuses for its values still has an intent, answered 400:
	// a waiting scheduler is released
	resp, _ := e.do(t, "POST", "/v2.1/servers", http.Header{"X-Auth-Token": {"a:b"}}, `{"server": {"flavorRef": "42", "name": "x", "imageRef": 7}}`)
	in, err := ledger.IntentByRequestID(e.ctx, e.pool, resp.Header.Get("X-Openstack-Request-Id"))
	if err != nil || in.ResponseStatus != 400 || in.ImageRef != "7" {
		t.Errorf("refused create: %+v %v", in, err)
	}
}

func TestFlavorLookupFailures(t *testing.T) {
	pool := pgtest.Pool(t)
	for _, c := range []struct {
		name   string
		status int
		flavor string
	}{
		{"unknown flavor", 0, "nope"},
		{"nova-api error", http.StatusInternalServerError, "42"},
		{"forbidden", http.StatusForbidden, "42"},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := setupOn(t, pool)
			e.up.flavorStatus = c.status
			resp, _ := e.do(t, "POST", "/v2.1/servers", http.Header{"X-Auth-Token": {"a:b"}},
				`{"server": {"name": "x", "flavorRef": "`+c.flavor+`", "imageRef": "i"}}`)
			if resp.StatusCode != 202 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			s := e.up.requests("POST", "/servers")[0]
			in, err := ledger.IntentByRequestID(e.ctx, e.pool, s.Header.Get("X-Openstack-Request-Id"))
			if err != nil || !s.IntentAtArrival || in.Flavor != nil || in.FlavorRef != c.flavor || in.ImageRef != "i" {
				t.Errorf("intent %+v (%v, at arrival %v)", in, err, s.IntentAtArrival)
			}
		})
	}

	t.Run("lookup slower than its bound", func(t *testing.T) {
		up := newUpstream(t, pool)
		release := make(chan struct{})
		defer close(release)
		inner := up.srv.Config.Handler
		up.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.URL.Path, "/flavors/") {
				select {
				case <-release:
				case <-r.Context().Done():
				}
				return
			}
			inner.ServeHTTP(w, r)
		})
		p, err := novaext.New(novaext.Config{Upstream: up.srv.URL, DB: pool, LookupTimeout: 300 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		proxy := httptest.NewServer(p)
		defer func() { proxy.Close(); p.Close() }()
		e := &env{ctx: context.Background(), pool: pool, up: up, proxy: proxy}
		start := time.Now()
		resp, _ := e.do(t, "POST", "/v2.1/servers", http.Header{"X-Auth-Token": {"a:b"}}, `{"server": {"name": "slow", "flavorRef": "42"}}`)
		if took := time.Since(start); resp.StatusCode != 202 || took > 3*time.Second {
			t.Fatalf("status %d after %v", resp.StatusCode, took)
		}
		s := up.requests("POST", "/servers")[0]
		in, err := ledger.IntentByRequestID(e.ctx, pool, resp.Header.Get("X-Openstack-Request-Id"))
		if err != nil || !s.IntentAtArrival || in.Flavor != nil || in.ServerName != "slow" {
			t.Errorf("intent %+v (%v, at arrival %v)", in, err, s.IntentAtArrival)
		}
	})

	t.Run("nova-api before 2.61", func(t *testing.T) {
		e := setupOn(t, pool)
		e.up.flavors["7"] = `{"id": "7", "name": "old", "vcpus": 1, "ram": 512, "disk": 1, "swap": 256}`
		e.up.handle = func(w http.ResponseWriter, r *http.Request) {
			if strings.HasSuffix(r.URL.Path, "/os-extra_specs") {
				fmt.Fprint(w, `{"extra_specs": {"hw:cpu_policy": "shared"}}`)
				return
			}
			w.WriteHeader(404)
		}
		// the stand-in answers 406 to a microversion, as a nova-api older than 2.61
		old := e.up.srv.Config.Handler
		e.up.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.Contains(r.URL.Path, "/flavors/") && r.Header.Get("X-Openstack-Nova-Api-Version") != "" {
				w.WriteHeader(http.StatusNotAcceptable)
				return
			}
			old.ServeHTTP(w, r)
		})
		resp, _ := e.do(t, "POST", "/v2.1/servers", http.Header{"X-Auth-Token": {"a:b"}}, `{"server": {"name": "x", "flavorRef": "7"}}`)
		in, err := ledger.IntentByRequestID(e.ctx, e.pool, resp.Header.Get("X-Openstack-Request-Id"))
		if err != nil || in.Flavor == nil || in.Flavor.VCPUs != 1 || in.Flavor.SwapMB != 256 || in.Flavor.ExtraSpecs["hw:cpu_policy"] != "shared" {
			t.Errorf("intent %+v flavor %+v (%v)", in, in.Flavor, err)
		}
	})
}

func TestUpstreamDown(t *testing.T) {
	pool := pgtest.Pool(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	proxy := newProxy(t, pool, "http://"+addr)
	resp, err := proxy.Client().Post(proxy.URL+"/v2.1/servers", "application/json",
		strings.NewReader(`{"server": {"name": "x", "flavorRef": "42"}}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var doc map[string]map[string]any
	if resp.StatusCode != http.StatusBadGateway || json.Unmarshal(body, &doc) != nil || doc["computeFault"]["code"] != 502.0 {
		t.Errorf("status %d body %s", resp.StatusCode, body)
	}
	// the intent is answered, so nobody waits for it
	var status int
	if err := pool.QueryRow(context.Background(), `SELECT response_status FROM bridge_vm_intents`).Scan(&status); err != nil || status != 502 {
		t.Errorf("intent answer %d (%v)", status, err)
	}
	start := time.Now()
	if _, err := ledger.AwaitIntent(context.Background(), pool, "req-"+uuid.NewString(), 5*time.Second); !errors.Is(err, ledger.ErrNotFound) || time.Since(start) > 2*time.Second {
		t.Errorf("await after a failed create: %v after %v", err, time.Since(start))
	}
}

func TestStreaming(t *testing.T) {
	e := setup(t)
	release := make(chan struct{})
	e.up.handle = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "first\n")
		w.(http.Flusher).Flush()
		<-release
		io.WriteString(w, "second\n")
	}
	resp, err := e.proxy.Client().Get(e.proxy.URL + "/v2.1/servers/x/console-log")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 6)
	got := make(chan error, 1)
	go func() { _, err := io.ReadFull(resp.Body, buf); got <- err }()
	select {
	case err := <-got:
		if err != nil || string(buf) != "first\n" {
			t.Fatalf("first chunk %q (%v)", buf, err)
		}
	case <-time.After(5 * time.Second):
		close(release)
		t.Fatal("the first chunk was held back until the upstream finished")
	}
	close(release)
	rest, _ := io.ReadAll(resp.Body)
	if string(rest) != "second\n" {
		t.Errorf("rest %q", rest)
	}
}

func TestConcurrentCreates(t *testing.T) {
	e := setup(t)
	const n = 40
	type result struct {
		local string
		err   error
	}
	results := make(chan result, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := fmt.Sprintf(`{"server": {"name": "vm-%d", "flavorRef": "42", "imageRef": "img"}}`, i)
			req, _ := http.NewRequest("POST", e.proxy.URL+"/v2.1/servers", strings.NewReader(body))
			req.Header.Set("X-Auth-Token", "u:p")
			resp, err := e.proxy.Client().Do(req)
			if err != nil {
				results <- result{err: err}
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 202 {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
			results <- result{local: resp.Header.Get("X-Openstack-Request-Id"), err: err}
		}()
	}
	wg.Wait()
	close(results)
	names := map[string]bool{}
	for r := range results {
		if r.err != nil {
			t.Error(r.err)
			continue
		}
		in, err := ledger.IntentByRequestID(e.ctx, e.pool, r.local)
		if err != nil || in.ResponseStatus != 202 {
			t.Errorf("intent of %s: %+v %v", r.local, in, err)
			continue
		}
		names[in.ServerName] = true
	}
	creates := e.up.requests("POST", "/servers")
	ids := map[string]bool{}
	for _, s := range creates {
		if !s.IntentAtArrival {
			t.Errorf("create without intent at arrival: %v", s.IntentErr)
		}
		ids[s.Header.Get("X-Openstack-Request-Id")] = true
	}
	if len(creates) != n || len(ids) != n || len(names) != n || e.intents(t) != n {
		t.Errorf("creates %d, distinct ids %d, distinct names by alias %d, intents %d; want %d each",
			len(creates), len(ids), len(names), e.intents(t), n)
	}
}

func TestVersionLinks(t *testing.T) {
	e := setup(t)
	proxyHost := strings.TrimPrefix(e.proxy.URL, "http://")
	upURL := e.up.srv.URL
	e.up.handle = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/":
			// as nova-api with [api] compute_link_prefix set to its own URL
			fmt.Fprintf(w, `{"versions": [{"id": "v2.1", "status": "CURRENT", "links": [{"rel": "self", "href": "%s/v2.1/"}]},
				{"id": "v2.0", "links": [{"rel": "self", "href": "%s/v2/"}]}]}`, upURL, upURL)
		case "/v2.1/":
			// as nova-api by default: links from the request's Host
			fmt.Fprintf(w, `{"version": {"id": "v2.1", "links": [{"rel": "self", "href": "http://%s/v2.1/"},
				{"rel": "describedby", "href": "http://docs.openstack.org/"}]}}`, r.Host)
		case "/v2.1/servers":
			fmt.Fprintf(w, `{"servers": [], "servers_links": [{"rel": "next", "href": "%s/v2.1/servers?marker=x"}]}`, upURL)
		}
	}
	for _, c := range []struct{ path, want string }{
		{"/", fmt.Sprintf(`{"versions": [{"id": "v2.1", "status": "CURRENT", "links": [{"rel": "self", "href": "http://%s/v2.1/"}]},
				{"id": "v2.0", "links": [{"rel": "self", "href": "http://%s/v2/"}]}]}`, proxyHost, proxyHost)},
		{"/v2.1/", fmt.Sprintf(`{"version": {"id": "v2.1", "links": [{"rel": "self", "href": "http://%s/v2.1/"},
				{"rel": "describedby", "href": "http://docs.openstack.org/"}]}}`, proxyHost)},
		// not a version document: as nova-api wrote it
		{"/v2.1/servers", fmt.Sprintf(`{"servers": [], "servers_links": [{"rel": "next", "href": "%s/v2.1/servers?marker=x"}]}`, upURL)},
	} {
		resp, body := e.do(t, "GET", c.path, nil, "")
		if string(body) != c.want {
			t.Errorf("GET %s:\n%s\nwant\n%s", c.path, body, c.want)
		}
		if resp.ContentLength != int64(len(body)) {
			t.Errorf("GET %s: Content-Length %d for %d bytes", c.path, resp.ContentLength, len(body))
		}
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	pool := pgtest.Pool(t)
	for _, u := range []string{"", "nova:8774", "ftp://x", "http://", "http://x?a=b"} {
		if _, err := novaext.New(novaext.Config{Upstream: u, DB: pool}); err == nil {
			t.Errorf("upstream %q accepted", u)
		}
	}
	if _, err := novaext.New(novaext.Config{Upstream: "http://x"}); err == nil {
		t.Error("no database accepted")
	}
}

// The upstream may be given as the catalog's versioned endpoint, or with
// a path prefix nova-api is served under: the client's paths land under
// the prefix once, creates and flavor lookups included, and version
// documents that name the prefix point at the proxy's root.
func TestUpstreamPaths(t *testing.T) {
	pool := pgtest.Pool(t)
	up := newUpstream(t, pool)
	up.handle = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"version": {"links": [{"rel": "self", "href": "http://%s%s"}]}}`, r.Host, r.URL.Path)
	}
	for _, c := range []struct{ upstream, prefix string }{
		{up.srv.URL + "/v2.1/", ""},
		{up.srv.URL + "/v2", ""},
		{up.srv.URL + "/compute", "/compute"},
		{up.srv.URL + "/compute/v2.1", "/compute"},
	} {
		t.Run(c.upstream, func(t *testing.T) {
			proxy := newProxy(t, pool, c.upstream)
			e := &env{ctx: context.Background(), pool: pool, up: up, proxy: proxy}
			host := strings.TrimPrefix(proxy.URL, "http://")
			_, body := e.do(t, "GET", "/v2.1/", nil, "")
			if want := fmt.Sprintf(`{"version": {"links": [{"rel": "self", "href": "http://%s/v2.1/"}]}}`, host); string(body) != want {
				t.Errorf("version document %s, want %s", body, want)
			}
			resp, _ := e.do(t, "POST", "/v2.1/servers", http.Header{"X-Auth-Token": {"a:b"}}, `{"server": {"name": "x", "flavorRef": "42"}}`)
			creates := up.requests("POST", "/servers")
			lookups := up.requests("GET", "/flavors/42")
			if resp.StatusCode != 202 || creates[len(creates)-1].Path != c.prefix+"/v2.1/servers" || lookups[len(lookups)-1].Path != c.prefix+"/v2.1/flavors/42" {
				t.Errorf("status %d, create at %s, lookup at %s", resp.StatusCode, creates[len(creates)-1].Path, lookups[len(lookups)-1].Path)
			}
			in, err := ledger.IntentByRequestID(e.ctx, pool, resp.Header.Get("X-Openstack-Request-Id"))
			if err != nil || in.Flavor == nil {
				t.Errorf("intent %+v (%v)", in, err)
			}
		})
	}
}

// Nova's scheduler can ask for candidates, with nova-api's local id, before
// nova-api's 202 has come back through the proxy (44 ms before, in a run
// against real Nova): a waiter started while the create is in flight finds
// the intent once the proxy aliases the id.
func TestSchedulerAheadOfTheAnswer(t *testing.T) {
	pool := pgtest.Pool(t)
	e := setupOn(t, pool)
	type found struct {
		in  ledger.Intent
		err error
	}
	waiter := make(chan found, 1)
	local := "req-" + uuid.NewString()
	inner := e.up.srv.Config.Handler
	e.up.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "POST" && r.URL.Path == "/v2.1/servers" {
			go func() {
				in, err := ledger.AwaitIntent(context.Background(), pool, local, 10*time.Second)
				waiter <- found{in, err}
			}()
			time.Sleep(200 * time.Millisecond) // the cast to the conductor, the scheduler's query
			io.Copy(io.Discard, r.Body)
			w.Header().Set("X-Openstack-Request-Id", local)
			w.WriteHeader(http.StatusAccepted)
			return
		}
		inner.ServeHTTP(w, r)
	})
	resp, _ := e.do(t, "POST", "/v2.1/servers", http.Header{"X-Auth-Token": {"a:b"}}, `{"server": {"name": "raced", "flavorRef": "42"}}`)
	if resp.StatusCode != 202 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	select {
	case f := <-waiter:
		if f.err != nil || f.in.ServerName != "raced" || f.in.Flavor == nil || f.in.Flavor.ExtraSpecs["hw:cpu_policy"] != "dedicated" {
			t.Errorf("waiter got %+v (%v)", f.in, f.err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the waiter never returned")
	}
}

// A client that sends every create under one global id (openstacksdk's
// global_request_id): each create is forwarded with it, and the intent is
// the newest create's, with the newest nova-api id as its alias.
func TestCreateReusedRequestID(t *testing.T) {
	e := setup(t)
	e.up.flavors["8"] = `{"id": "8", "name": "m1.small", "vcpus": 4, "ram": 2048, "disk": 20}`
	id := "req-" + uuid.NewString()
	var locals []string
	for _, f := range []string{"42", "8"} {
		resp, _ := e.do(t, "POST", "/v2.1/servers", http.Header{"X-Auth-Token": {"a:b"}, "X-Openstack-Request-Id": {id}},
			`{"server": {"name": "vm-`+f+`", "flavorRef": "`+f+`"}}`)
		if resp.StatusCode != 202 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		locals = append(locals, resp.Header.Get("X-Openstack-Request-Id"))
	}
	for _, s := range e.up.requests("POST", "/servers") {
		if s.Header.Get("X-Openstack-Request-Id") != id || !s.IntentAtArrival {
			t.Errorf("create forwarded with %q (intent at arrival %v)", s.Header.Get("X-Openstack-Request-Id"), s.IntentAtArrival)
		}
	}
	in, err := ledger.IntentByRequestID(e.ctx, e.pool, id)
	if err != nil || in.ServerName != "vm-8" || in.Flavor == nil || in.Flavor.VCPUs != 4 || in.ResponseStatus != 202 ||
		len(in.Aliases) != 1 || in.Aliases[0] != locals[1] {
		t.Errorf("intent %+v flavor %+v (%v)", in, in.Flavor, err)
	}
	if n := e.intents(t); n != 1 {
		t.Errorf("%d intents", n)
	}
}
