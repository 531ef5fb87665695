package metrics_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/gorilla/mux"

	"github.com/unisched/unisched/internal/metrics"
	"github.com/unisched/unisched/internal/openstack"
)

// syncBuffer is a log sink the handler goroutines write to.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines(t *testing.T) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s.b.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line not JSON: %q", l)
		}
		out = append(out, m)
	}
	return out
}

// api is a small OpenStack API shaped like Placement's: request id,
// microversion negotiation, a gorilla router with templates.
func api() http.Handler {
	r := mux.NewRouter()
	r.Use(openstack.RouteTemplate)
	r.HandleFunc("/things/{id}", func(w http.ResponseWriter, r *http.Request) {
		switch mux.Vars(r)["id"] {
		case "broken":
			openstack.WriteError(w, r, errors.New("the database said no"))
		case "missing":
			openstack.WriteError(w, r, &openstack.Error{Status: http.StatusNotFound, Detail: "no such thing"})
		default:
			io.WriteString(w, "{}")
		}
	})
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		openstack.WriteError(w, r, &openstack.Error{Status: http.StatusNotFound})
	})
	vr := openstack.VersionRange{Service: "placement", Min: openstack.Version{Major: 1}, Max: openstack.Version{Major: 1, Minor: 39},
		Default: openstack.Version{Major: 1}}
	return openstack.RequestID(openstack.Recover(vr.VersionMiddleware(r)))
}

func TestHTTPMetricsAndLogs(t *testing.T) {
	reg := metrics.NewRegistry()
	var logs syncBuffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	m, err := metrics.NewHTTP(reg, log)
	if err != nil {
		t.Fatal(err)
	}
	// registering twice on one registry is refused, with what was being registered
	if _, err := metrics.NewHTTP(reg, log); err == nil || !strings.Contains(err.Error(), "HTTP request metrics") {
		t.Errorf("second NewHTTP on one registry: %v", err)
	}
	srv := httptest.NewServer(m.Wrap("placement", api()))
	defer srv.Close()

	const global = "req-11111111-2222-3333-4444-555555555555"
	type call struct {
		path, mv, global string
		status           int
	}
	calls := []call{
		{"/things/" + "6f1c5a9e-0000-4000-8000-000000000001", "1.14", global, 200},
		{"/things/" + "6f1c5a9e-0000-4000-8000-000000000002", "1.14", "", 200},
		{"/things/" + "6f1c5a9e-0000-4000-8000-000000000003", "latest", "", 200},
		{"/things/missing", "1.14", "", 404},
		{"/things/broken", "1.20", "", 500},
		{"/no/such/path/6f1c5a9e", "1.14", "", 404},
		{"/things/x", "1.99", "", 406}, // refused before routing: no route, no version
	}
	ids := map[string]call{}
	for _, c := range calls {
		req, _ := http.NewRequest("GET", srv.URL+c.path, nil)
		req.Header.Set("OpenStack-API-Version", "placement "+c.mv)
		if c.global != "" {
			req.Header.Set(openstack.RequestIDHeader, c.global)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != c.status {
			t.Fatalf("GET %s: %d %s", c.path, res.StatusCode, body)
		}
		id := res.Header.Get(openstack.RequestIDHeader)
		if !strings.HasPrefix(id, "req-") || id == c.global {
			t.Fatalf("GET %s: request id %q", c.path, id)
		}
		if c.status >= 400 && !strings.Contains(string(body), id) {
			t.Errorf("GET %s: error body without the request id %s: %s", c.path, id, body)
		}
		ids[id] = c
	}

	res, err := http.Get(srv.URL + "/things/6f1c5a9e-0000-4000-8000-000000000001") // no version header: 1.0
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()

	rec := httptest.NewRecorder()
	metrics.Handler(reg).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	samples, err := metrics.ParseText(rec.Body.String())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		labels map[string]string
		want   float64
	}{
		{map[string]string{"route": "/things/{id}", "status": "2xx", "microversion": "1.14"}, 2},
		{map[string]string{"route": "/things/{id}", "status": "2xx", "microversion": "1.39"}, 1},
		{map[string]string{"route": "/things/{id}", "status": "2xx", "microversion": "1.0"}, 1},
		{map[string]string{"route": "/things/{id}", "status": "4xx", "microversion": "1.14"}, 1},
		{map[string]string{"route": "/things/{id}", "status": "5xx", "microversion": "1.20"}, 1},
		{map[string]string{"route": metrics.Unmatched, "status": "4xx", "microversion": ""}, 1},
		{map[string]string{"route": metrics.Unmatched, "status": "4xx", "microversion": "1.14"}, 1},
		{map[string]string{"listener": "placement", "method": "GET"}, 8},
	} {
		if got := samples.Sum("unisched_http_requests_total", tc.labels); got != tc.want {
			t.Errorf("unisched_http_requests_total%v = %v, want %v", tc.labels, got, tc.want)
		}
	}
	if got := samples.Sum("unisched_http_request_duration_seconds_count", map[string]string{"route": "/things/{id}", "microversion": "1.14"}); got != 3 {
		t.Errorf("duration count for /things/{id} at 1.14 = %v, want 3", got)
	}
	if got := samples.Sum("unisched_http_requests_in_flight", map[string]string{"listener": "placement"}); got != 0 {
		t.Errorf("in flight after the calls: %v", got)
	}
	// no raw path ever became a label
	for _, s := range samples {
		for _, v := range s.Labels {
			if strings.Contains(v, "6f1c5a9e") {
				t.Errorf("raw path in a label: %s %v", s.Name, s.Labels)
			}
		}
	}

	// one request line per call, with the ids the client saw; the 500's
	// error line carries the same request id
	lines := logs.lines(t)
	seen := map[string]bool{}
	var internal int
	for _, l := range lines {
		id, _ := l["request_id"].(string)
		switch l["msg"] {
		case "request":
			c, ok := ids[id]
			if !ok {
				continue
			}
			seen[id] = true
			if l["listener"] != "placement" || l["method"] != "GET" || l["path"] != c.path || l["status"] != float64(c.status) {
				t.Errorf("request line %v for %+v", l, c)
			}
			if _, ok := l["duration_ms"].(float64); !ok {
				t.Errorf("request line without duration: %v", l)
			}
			if c.global != "" && l["global_request_id"] != c.global {
				t.Errorf("request line without the global id: %v", l)
			}
			if c.status == 500 && l["level"] != "WARN" {
				t.Errorf("a 500 logged at %v", l["level"])
			}
			if c.mv == "1.14" && c.status == 200 && (l["microversion"] != "1.14" || l["route"] != "/things/{id}") {
				t.Errorf("request line %v", l)
			}
		case "internal error":
			internal++
			if c, ok := ids[id]; !ok || c.path != "/things/broken" {
				t.Errorf("internal error line without its request id: %v", l)
			}
		}
	}
	if len(seen) != len(calls) {
		t.Errorf("request lines for %d of %d calls:\n%v", len(seen), len(calls), lines)
	}
	if internal != 1 {
		t.Errorf("%d internal error lines, want 1", internal)
	}
}

func TestHTTPMethodsAndPanics(t *testing.T) {
	reg := metrics.NewRegistry()
	m, err := metrics.NewHTTP(reg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	h := m.Wrap("container", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		openstack.SetRoute(r.Context(), "/boom")
		panic(http.ErrAbortHandler)
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	for _, method := range []string{"GET", "BREW"} {
		req, _ := http.NewRequest(method, srv.URL+"/boom", nil)
		if res, err := http.DefaultClient.Do(req); err == nil {
			res.Body.Close()
		}
	}
	rec := httptest.NewRecorder()
	metrics.Handler(reg).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	samples, err := metrics.ParseText(rec.Body.String())
	if err != nil {
		t.Fatal(err)
	}
	if got := samples.Sum("unisched_http_requests_total", map[string]string{"listener": "container", "route": "/boom", "status": "5xx", "method": "GET"}); got != 1 {
		t.Errorf("aborted GET counted %v times as a 5xx", got)
	}
	if got := samples.Sum("unisched_http_requests_total", map[string]string{"method": "OTHER"}); got != 1 {
		t.Errorf("unknown method counted %v times as OTHER", got)
	}
}

func TestParseText(t *testing.T) {
	ss, err := metrics.ParseText("# HELP x y\n# TYPE x counter\nx{a=\"1\",b=\"q\\\"z\"} 3\ny 4.5\nz{} 1e3 1700000000\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(ss) != 3 || ss.Sum("x", map[string]string{"b": `q"z`}) != 3 || ss.Sum("y", nil) != 4.5 || ss.Sum("z", nil) != 1000 {
		t.Errorf("parsed %+v", ss)
	}
	if _, err := metrics.ParseText("x{a=\"1} 2\n"); err == nil {
		t.Error("unterminated label value parsed")
	}
}

// A proxied answer's own request id (nova-api's) is named in the line,
// beside ours.
func TestHTTPResponseRequestID(t *testing.T) {
	var logs syncBuffer
	m, err := metrics.NewHTTP(metrics.NewRegistry(), slog.New(slog.NewJSONHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	const nova = "req-99999999-8888-7777-6666-555555555555"
	h := m.Wrap("nova_proxy", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(openstack.RequestIDHeader, nova)
		w.WriteHeader(http.StatusAccepted)
	}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/v2.1/servers", nil))
	lines := logs.lines(t)
	if len(lines) != 1 || lines[0]["response_request_id"] != nova || lines[0]["request_id"] == nova ||
		!strings.HasPrefix(lines[0]["request_id"].(string), "req-") || lines[0]["status"] != float64(202) {
		t.Errorf("log lines %v", lines)
	}
}
