package novaharness

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSQLAlchemyURL(t *testing.T) {
	for _, tc := range []struct {
		admin, want, err string
	}{
		{admin: "postgres://postgres@/postgres?host=/var/run/postgresql",
			want: "postgresql+psycopg2://postgres@/nova_api?host=%2Fvar%2Frun%2Fpostgresql"},
		{admin: "postgres://u:p%40ss@127.0.0.1:5433/x?sslmode=disable&pool_max_conns=4",
			want: "postgresql+psycopg2://u:p%40ss@127.0.0.1:5433/nova_api?sslmode=disable"},
		{admin: "postgresql://db.example:5432/",
			want: "postgresql+psycopg2://db.example:5432/nova_api"},
		{admin: "mysql://root@localhost/x", err: "want a postgres:// URL"},
		{admin: "postgres://%zz", err: "parsing database url"},
	} {
		got, err := sqlalchemyURL(tc.admin, "nova_api")
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("sqlalchemyURL(%q): %q, %v; want error %q", tc.admin, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("sqlalchemyURL(%q) = %q, %v; want %q", tc.admin, got, err, tc.want)
		}
	}
}

func TestNeutronStandIn(t *testing.T) {
	srv := httptest.NewServer(neutronStandIn())
	defer srv.Close()
	for _, tc := range []struct {
		method, path string
		status       int
		key          string // a key the JSON body must have
	}{
		{"GET", "/", 200, "versions"},
		{"GET", "/v2.0/", 200, "resources"},
		{"GET", "/v2.0/ports?device_id=x", 200, "ports"},
		{"GET", "/v2.0/security-groups.json", 200, "security_groups"},
		{"GET", "/v2.0/networks/abc", 404, "NeutronError"},
		{"POST", "/v2.0/ports", 404, "NeutronError"},
		{"DELETE", "/v2.0/ports/abc", 404, "NeutronError"},
		{"GET", "/v3/other", 404, "NeutronError"},
	} {
		req, _ := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader("{}"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || err != nil || body[tc.key] == nil {
			t.Errorf("%s %s: %d %v (%v), want %d with %q", tc.method, tc.path, resp.StatusCode, body, err, tc.status, tc.key)
		}
	}
}

func TestWireRecordsExchanges(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.Method == http.MethodPut {
			w.WriteHeader(http.StatusConflict)
			_, _ = w.Write([]byte(`{"errors": [{"code": "placement.concurrent_update"}]}`))
			return
		}
		if r.URL.Path == "/missing" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(append([]byte("echo:"), b...))
	}))
	defer backend.Close()
	w, h, err := newWire(backend.URL, filepath.Join(t.TempDir(), "wire.log"))
	if err != nil {
		t.Fatal(err)
	}
	front := httptest.NewServer(h)
	defer front.Close()
	send := func(method, path, body string) (int, string) {
		req, _ := http.NewRequest(method, front.URL+path, strings.NewReader(body))
		req.Header.Set("OpenStack-API-Version", "placement 1.36")
		req.Header.Set("X-Openstack-Request-Id", "req-1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := send("POST", "/allocations", `{"a":1}`); code != 200 || body != `echo:{"a":1}` {
		t.Fatalf("proxied POST: %d %q", code, body)
	}
	send("GET", "/missing", "")
	send("PUT", "/allocations/x", `{"b":2}`)
	xs := w.Exchanges()
	if len(xs) != 3 || xs[0].RequestBody != `{"a":1}` || xs[0].Version != "placement 1.36" || xs[0].RequestID != "req-1" {
		t.Fatalf("exchanges: %+v", xs)
	}
	f := w.Failures()
	if len(f) != 1 || f[0].Status != 409 || f[0].Method != "PUT" || !strings.Contains(f[0].ResponseBody, "concurrent_update") {
		t.Fatalf("failures (a GET 404 is not one, the 409 is): %+v", f)
	}
	if err := w.close(); err != nil {
		t.Fatal(err)
	}
	logged, _ := os.ReadFile(w.LogPath)
	if !strings.Contains(string(logged), "PUT /allocations/x [placement 1.36] [req-1] -> 409") {
		t.Fatalf("wire log:\n%s", logged)
	}
}
