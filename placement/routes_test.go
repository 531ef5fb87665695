package placement

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// upstreamRoutes is Placement 8.0.0's ROUTE_DECLARATIONS (placement/
// handler.py) with each handler's decorators (placement/handlers/*.py):
// the lowest microversion of its version_handler, the status below it,
// check_accept, require_content (and the last version it applies to), and
// whether those checks come before the version check.
var upstreamRoutes = []struct {
	path, method string
	minVersion   int
	belowMin     int
	accept       bool
	body         bool
	bodyMax      int
	checksFirst  bool
}{
	{"/", "GET", 0, 0, false, false, 0, false},
	{"/resource_classes", "GET", 2, 404, true, false, 0, false},
	{"/resource_classes", "POST", 2, 404, false, true, 0, false},
	{"/resource_classes/{name}", "GET", 2, 404, true, false, 0, false},
	{"/resource_classes/{name}", "PUT", 2, 404, false, true, 6, false},
	{"/resource_classes/{name}", "DELETE", 2, 404, false, false, 0, false},
	{"/resource_providers", "GET", 0, 0, true, false, 0, false},
	{"/resource_providers", "POST", 0, 0, false, true, 0, false},
	{"/resource_providers/{uuid}", "GET", 0, 0, true, false, 0, false},
	{"/resource_providers/{uuid}", "DELETE", 0, 0, false, false, 0, false},
	{"/resource_providers/{uuid}", "PUT", 0, 0, false, true, 0, false},
	{"/resource_providers/{uuid}/inventories", "GET", 0, 0, true, false, 0, false},
	{"/resource_providers/{uuid}/inventories", "POST", 0, 0, false, true, 0, false},
	{"/resource_providers/{uuid}/inventories", "PUT", 0, 0, false, true, 0, false},
	{"/resource_providers/{uuid}/inventories", "DELETE", 5, 405, false, false, 0, false},
	{"/resource_providers/{uuid}/inventories/{resource_class}", "GET", 0, 0, true, false, 0, false},
	{"/resource_providers/{uuid}/inventories/{resource_class}", "PUT", 0, 0, false, true, 0, false},
	{"/resource_providers/{uuid}/inventories/{resource_class}", "DELETE", 0, 0, false, false, 0, false},
	{"/resource_providers/{uuid}/usages", "GET", 0, 0, true, false, 0, false},
	{"/resource_providers/{uuid}/aggregates", "GET", 1, 404, true, false, 0, true},
	{"/resource_providers/{uuid}/aggregates", "PUT", 1, 404, false, true, 0, true},
	{"/resource_providers/{uuid}/allocations", "GET", 0, 0, true, false, 0, false},
	{"/allocations", "POST", 13, 404, false, true, 0, false},
	{"/allocations/{consumer_uuid}", "GET", 0, 0, true, false, 0, false},
	{"/allocations/{consumer_uuid}", "PUT", 0, 0, false, true, 0, false},
	{"/allocations/{consumer_uuid}", "DELETE", 0, 0, false, false, 0, false},
	{"/allocation_candidates", "GET", 10, 404, true, false, 0, false},
	{"/traits", "GET", 6, 404, true, false, 0, false},
	{"/traits/{name}", "GET", 6, 404, false, false, 0, false},
	{"/traits/{name}", "PUT", 6, 404, false, false, 0, false},
	{"/traits/{name}", "DELETE", 6, 404, false, false, 0, false},
	{"/resource_providers/{uuid}/traits", "GET", 6, 404, true, false, 0, false},
	{"/resource_providers/{uuid}/traits", "PUT", 6, 404, false, true, 0, false},
	{"/resource_providers/{uuid}/traits", "DELETE", 6, 404, false, false, 0, false},
	{"/usages", "GET", 9, 404, true, false, 0, false},
	{"/reshaper", "POST", 30, 404, false, true, 0, false},
}

func TestRouteTableMatchesUpstream(t *testing.T) {
	s := New(Config{})
	type key struct{ path, method string }
	got := map[key]route{}
	var order []key
	for _, rp := range s.routes() {
		for _, rt := range rp.methods {
			k := key{rp.path, rt.method}
			if _, dup := got[k]; dup {
				t.Errorf("%s %s declared twice", rt.method, rp.path)
			}
			got[k] = rt
			order = append(order, k)
		}
	}
	if len(order) != len(upstreamRoutes) {
		t.Errorf("%d routes, upstream has %d", len(order), len(upstreamRoutes))
	}
	for i, u := range upstreamRoutes {
		k := key{u.path, u.method}
		rt, ok := got[k]
		if !ok {
			t.Errorf("missing %s %s", u.method, u.path)
			continue
		}
		if i < len(order) && order[i] != k {
			t.Errorf("route %d is %v, upstream declares %v there", i, order[i], k)
		}
		below := rt.belowMin
		if rt.minVersion > 0 && below == 0 {
			below = http.StatusNotFound
		}
		if rt.minVersion != u.minVersion || below != u.belowMin || rt.acceptJSON != u.accept ||
			rt.jsonBody != u.body || rt.jsonBodyMax != u.bodyMax || rt.checksFirst != u.checksFirst {
			t.Errorf("%s %s: got min=%d below=%d accept=%v body=%v bodyMax=%d first=%v, upstream %+v",
				u.method, u.path, rt.minVersion, below, rt.acceptJSON, rt.jsonBody, rt.jsonBodyMax, rt.checksFirst, u)
		}
		if rt.handler == nil {
			t.Errorf("%s %s has no handler", u.method, u.path)
		}
	}
}

// TestDispatchOrder exercises the gating over HTTP on paths that never
// reach a handler: what upstream answers first when several checks fail.
func TestDispatchOrder(t *testing.T) {
	srv := httptest.NewServer(New(Config{}))
	t.Cleanup(srv.Close)
	const rp = "/resource_providers/d3a64825-8228-4ccb-8a6c-1c6d3eb6a3e8"
	cases := []struct {
		name, method, path, mv, accept, contentType, body string
		status                                            int
		inBody                                            string
		header                                            [2]string
	}{
		{"aggregates: 406 before the version's 404", "GET", rp + "/aggregates", "1.0", "text/plain", "", "", 406, "Only application/json is provided", [2]string{}},
		{"aggregates: 404 below 1.1", "GET", rp + "/aggregates", "1.0", "", "", "", 404, `"The resource could not be found.\n\n   "`, [2]string{}},
		{"aggregates: 415 before the version's 404", "PUT", rp + "/aggregates", "1.0", "", "text/plain", "x", 415, "The media type text/plain is not supported", [2]string{}},
		{"reshaper: 404 before 415", "POST", "/reshaper", "1.29", "", "text/plain", "x", 404, "", [2]string{}},
		{"reshaper: 415 at 1.30", "POST", "/reshaper", "1.30", "", "text/plain", "x", 415, "The request media type text/plain is not supported by this server", [2]string{}},
		{"traits: 404 below 1.6 before 406", "GET", "/traits", "1.5", "text/plain", "", "", 404, "", [2]string{}},
		{"traits: 406 at 1.6", "GET", "/traits", "1.6", "text/plain", "", "", 406, "Only application/json is provided", [2]string{}},
		{"usages: 404 below 1.9", "GET", "/usages", "1.8", "", "", "", 404, "", [2]string{}},
		{"candidates: 404 below 1.10", "GET", "/allocation_candidates", "1.9", "", "", "", 404, "", [2]string{}},
		{"POST allocations: 404 below 1.13", "POST", "/allocations", "1.12", "", "application/json", "{}", 404, "", [2]string{}},
		{"resource classes: 404 below 1.2", "GET", "/resource_classes", "1.1", "", "", "", 404, "", [2]string{}},
		{"DELETE inventories: 405 below 1.5, no Allow", "DELETE", rp + "/inventories", "1.4", "", "", "", 405,
			`"The method DELETE is not allowed for this resource. \n\n "`, [2]string{"Allow", ""}},
		{"media type compared exactly", "PUT", rp, "1.0", "", "APPLICATION/JSON", "{}", 415, "The media type APPLICATION/JSON is not supported", [2]string{}},
		{"no content type on a bodiless PUT", "PUT", rp, "1.0", "", "", "", 415, "The media type None is not supported, use application/json", [2]string{}},
		{"parameters keep their case in the 415 template", "PUT", rp, "1.0", "", ";charset=utf-8", "", 415, "The request media type None;charset=utf-8 is not supported", [2]string{}},
		{"body without content type", "POST", "/resource_providers", "", "", "", "abc", 400, "content-type header required when content-length > 0", [2]string{}},
		{"body without content type on an unknown path", "POST", "/nope", "", "", "", "abc", 400, "content-type header required", [2]string{}},
		{"unknown path", "GET", "/nope", "", "", "", "", 404, `"The resource could not be found.\n\n   "`, [2]string{}},
		{"trailing slash is another path", "GET", "/resource_providers/", "", "", "", "", 404, "", [2]string{}},
		{"sub-resource that does not exist", "GET", rp + "/cows", "", "", "", "", 404, "", [2]string{}},
		{"405 with upstream's Allow order", "PATCH", rp, "", "", "", "", 405, "The method PATCH is not allowed for this resource. \\n\\n The method specified is not allowed for this resource.", [2]string{"Allow", "GET, DELETE, PUT"}},
		{"405 inventories Allow", "PATCH", rp + "/inventories", "", "", "", "", 405, "", [2]string{"Allow", "GET, POST, PUT, DELETE"}},
		{"405 at root", "POST", "/", "", "", "application/xml", "<x/>", 405, "", [2]string{"Allow", "GET"}},
		{"405 HEAD", "HEAD", "/resource_providers", "", "", "", "", 405, "", [2]string{"Allow", "GET, POST"}},
		{"405 keeps the version header", "POST", "/", "1.30", "", "", "", 405, "", [2]string{"Openstack-Api-Version", "placement 1.30"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var rd io.Reader
			if tc.body != "" {
				rd = strings.NewReader(tc.body)
			}
			req, err := http.NewRequest(tc.method, srv.URL+tc.path, rd)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("X-Auth-Token", "admin")
			if tc.mv != "" {
				req.Header.Set("OpenStack-API-Version", "placement "+tc.mv)
			}
			if tc.accept != "" {
				req.Header.Set("Accept", tc.accept)
			}
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body := readBody(t, resp)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if !strings.Contains(body, tc.inBody) {
				t.Errorf("body %q lacks %q", body, tc.inBody)
			}
			if tc.header[0] != "" {
				if got := resp.Header.Get(tc.header[0]); got != tc.header[1] {
					t.Errorf("%s = %q, want %q", tc.header[0], got, tc.header[1])
				}
			}
		})
	}
}

func readBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
