package zunext

import (
	"net/http"
	"testing"
)

func TestVersionHistorySequential(t *testing.T) {
	for i, e := range versionHistory {
		if e.minor != i+1 || e.what == "" {
			t.Fatalf("entry %d is 1.%d %q: want 1.%d with a description", i, e.minor, e.what, i+1)
		}
	}
	if maxVersion.String() != "1.40" {
		t.Fatalf("max version %s, want 1.40", maxVersion)
	}
}

func TestMicroversionNegotiation(t *testing.T) {
	h, _ := newTestHandler(t)
	tests := []struct {
		name, header string
		multi        []string
		status       int
		want         string // OpenStack-API-Version on the response, "" for none
		code         string
	}{
		{"default is the minimum", "", nil, 200, "container 1.1", ""},
		{"explicit", "container 1.20", nil, 200, "container 1.20", ""},
		{"maximum", "container 1.40", nil, 200, "container 1.40", ""},
		{"latest", "container latest", nil, 200, "container 1.40", ""},
		{"LATEST any case, any service", "compute LATEST", nil, 200, "container 1.40", ""},
		{"python int forms", "container 1.+0_5", nil, 200, "container 1.5", ""},
		{"above maximum", "container 1.41", nil, 406, "container 1.41", "container.microversion-unsupported"},
		{"below minimum", "container 1.0", nil, 406, "container 1.0", "container.microversion-unsupported"},
		{"other major", "container 2.1", nil, 406, "container 2.1", "container.microversion-unsupported"},
		{"other service", "compute 2.1", nil, 406, "", "container."},
		{"no version", "container", nil, 406, "", "container."},
		{"three parts", "container 1.2.3", nil, 406, "", "container."},
		{"not a number", "container 1.x", nil, 406, "", "container."},
		{"two headers joined", "", []string{"container 1.2", "compute 2.1"}, 406, "", "container."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := apiCall{method: "GET", path: "/v1/containers", version: tc.header}
			var res apiResult
			if tc.multi != nil {
				rq, _ := http.NewRequest("GET", "http://zun.test/v1/containers", nil)
				rq.Header.Set("X-Auth-Token", "admin:admin")
				for _, v := range tc.multi {
					rq.Header.Add(versionHeader, v)
				}
				rec := newRecorder()
				h.ServeHTTP(rec, rq)
				res = apiResult{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
			} else {
				res = do(t, h, req)
			}
			if res.status != tc.status {
				t.Fatalf("status %d, want %d: %s", res.status, tc.status, res.body)
			}
			if got := res.header.Get(versionHeader); got != tc.want {
				t.Fatalf("%s: %q, want %q", versionHeader, got, tc.want)
			}
			if tc.want != "" {
				if res.header.Get(minVersionHeader) != "container 1.1" || res.header.Get(maxVersionHeader) != "container 1.40" ||
					res.header.Get("Vary") != versionHeader {
					t.Fatalf("range headers missing: %v", res.header)
				}
			}
			if tc.status == 406 {
				e := res.errorOf(t)
				if e["code"] != tc.code || e["status"] != float64(406) {
					t.Fatalf("error %v, want code %q", e, tc.code)
				}
				if tc.code == "container.microversion-unsupported" && (e["max_version"] != "1.40" || e["min_version"] != "1.1") {
					t.Fatalf("406 without the range: %v", e)
				}
			}
		})
	}
}

func TestVersionDocuments(t *testing.T) {
	h, _ := newTestHandler(t)
	res := do(t, h, apiCall{method: "GET", path: "/", token: "-"})
	if res.status != 200 {
		t.Fatalf("GET /: %d %s", res.status, res.body)
	}
	root := res.json(t)
	dv := root["default_version"].(map[string]any)
	if dv["max_version"] != "1.40" || dv["min_version"] != "1.1" || dv["status"] != "CURRENT" || dv["id"] != "v1" {
		t.Fatalf("default_version %v", dv)
	}
	if l := dv["links"].([]any)[0].(map[string]any); l["href"] != "http://zun.test/v1/" {
		t.Fatalf("link %v", l)
	}
	if res.header.Get(versionHeader) != "" {
		t.Fatalf("the root document carries no version headers, got %v", res.header)
	}
	for _, p := range []string{"/v1", "/v1/"} {
		res = do(t, h, apiCall{method: "GET", path: p, token: "-"})
		if res.status != 200 {
			t.Fatalf("GET %s: %d %s", p, res.status, res.body)
		}
		v1 := res.json(t)
		c := v1["containers"].([]any)
		if c[0].(map[string]any)["href"] != "http://zun.test/v1/containers/" || c[1].(map[string]any)["href"] != "http://zun.test/containers/" {
			t.Fatalf("containers links %v", c)
		}
		if res.header.Get(versionHeader) != "container 1.1" {
			t.Fatalf("GET %s version header %q", p, res.header.Get(versionHeader))
		}
	}
	// resources without /v1 are served as under it (Zun's bookmarks)
	res = do(t, h, apiCall{method: "GET", path: "/containers", version: latest})
	if res.status != 200 {
		t.Fatalf("GET /containers: %d %s", res.status, res.body)
	}
	// authentication is required below /v1/
	res = do(t, h, apiCall{method: "GET", path: "/v1/containers", token: "-"})
	if res.status != 401 {
		t.Fatalf("no token: %d", res.status)
	}
}

func TestVersionedRoutes(t *testing.T) {
	h, _ := newTestHandler(t)
	c := create(t, h, "demo:demo", `{"image": "busybox"}`)
	id := c["uuid"].(string)
	tests := []struct {
		method, path, version string
		status                int
	}{
		{"GET", "/v1/hosts", "container 1.3", 406},
		{"GET", "/v1/hosts", "container 1.4", 200},
		{"POST", "/v1/containers/" + id + "/rename?name=new1", "container 1.14", 406},
		{"POST", "/v1/containers/" + id + "/resize_container", "container 1.18", 406},
		{"GET", "/v1/containers/" + id + "/nosuch", latest, 404},
		{"PUT", "/v1/containers/" + id, latest, 405},
	}
	for _, tc := range tests {
		res := do(t, h, apiCall{method: tc.method, path: tc.path, version: tc.version, body: "{}"[:map[bool]int{true: 2, false: 0}[tc.method == "POST"]]})
		if res.status != tc.status {
			t.Errorf("%s %s at %s: %d, want %d: %s", tc.method, tc.path, tc.version, res.status, tc.status, res.body)
		}
	}
}
