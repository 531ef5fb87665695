package placement

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/unisched/unisched/internal/pgtest"
	"github.com/unisched/unisched/placement/store"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// newTestServer serves a Placement API on a fresh database with the
// standard classes and traits loaded.
func newTestServer(t *testing.T) *httptest.Server {
	t.Helper()
	pool := pgtest.Pool(t)
	if err := store.EnsureStandard(context.Background(), pool); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(Config{Pool: pool}))
	t.Cleanup(srv.Close)
	return srv
}

// do sends a request with the admin token at the given microversion.
func do(t *testing.T, srv *httptest.Server, method, path, mv, body string) (*http.Response, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Auth-Token", "admin")
	if mv != "" {
		req.Header.Set("OpenStack-API-Version", "placement "+mv)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestMiddleware(t *testing.T) {
	srv := newTestServer(t)
	cases := []struct {
		name       string
		method     string
		path       string
		mv         string
		wantStatus int
		wantInBody string
		wantHeader [2]string
	}{
		{"root", "GET", "/", "", 200, `"max_version":"1.39"`, [2]string{"Openstack-Api-Version", "placement 1.0"}},
		{"latest", "GET", "/", "latest", 200, "v1.0", [2]string{"Openstack-Api-Version", "placement 1.39"}},
		{"too new", "GET", "/", "1.40", 406, `"max_version":"1.39"`, [2]string{}},
		{"garbage version", "GET", "/", "pony.horse", 400, "invalid version string: pony.horse", [2]string{}},
		{"wrong method", "PATCH", "/resource_providers", "", 405, "The method PATCH is not allowed", [2]string{"Allow", "GET, POST"}},
		{"unknown path", "GET", "/nope", "", 404, "The resource could not be found.", [2]string{}},
		{"below min version", "GET", "/traits", "1.5", 404, "", [2]string{}},
		{"delete inventories below 1.5", "DELETE", "/resource_providers/x/inventories", "1.4", 405, "", [2]string{}},
		{"error code from 1.23", "GET", "/nope", "1.23", 404, "placement.undefined_code", [2]string{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := do(t, srv, tc.method, tc.path, tc.mv, "")
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.wantStatus, body)
			}
			if !strings.Contains(body, tc.wantInBody) {
				t.Errorf("body %q lacks %q", body, tc.wantInBody)
			}
			if tc.wantHeader[0] != "" && resp.Header.Get(tc.wantHeader[0]) != tc.wantHeader[1] {
				t.Errorf("header %s = %q, want %q", tc.wantHeader[0], resp.Header.Get(tc.wantHeader[0]), tc.wantHeader[1])
			}
			if resp.Header.Get("X-Openstack-Request-Id") == "" {
				t.Error("no request id")
			}
		})
	}
}

func TestNoTokenIs401(t *testing.T) {
	srv := newTestServer(t)
	resp, err := srv.Client().Get(srv.URL + "/resource_providers")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Fatalf("status %d, want 401", resp.StatusCode)
	}
}
