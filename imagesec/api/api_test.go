package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2"

	"github.com/unisched/unisched/imagesec"
	"github.com/unisched/unisched/imagesec/api"
	"github.com/unisched/unisched/imagesec/collect"
	"github.com/unisched/unisched/imagesec/inspect"
	"github.com/unisched/unisched/imagesec/store"
	"github.com/unisched/unisched/imagesec/testimage"
	"github.com/unisched/unisched/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

type reply struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func do(t *testing.T, srv *httptest.Server, method, path, token, ctype, body string) reply {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("X-Auth-Token", token)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	rp := reply{status: resp.StatusCode, header: resp.Header, raw: string(b)}
	_ = json.Unmarshal(b, &rp.body)
	return rp
}

// errCode is the OpenStack error body's first code, "" when the body is not one.
func errCode(r reply) string {
	errs, _ := r.body["errors"].([]any)
	if len(errs) != 1 {
		return ""
	}
	e, _ := errs[0].(map[string]any)
	if e["request_id"] == nil || int(e["status"].(float64)) != r.status {
		return ""
	}
	code, _ := e["code"].(string)
	return code
}

// waitJob follows the job at path (a Location) until it ends, for a
// minute at most, and returns it.
func waitJob(t *testing.T, srv *httptest.Server, path string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		rp := do(t, srv, "GET", path, "user:project", "", "")
		job, _ := rp.body["job"].(map[string]any)
		if rp.status != 200 || job == nil {
			t.Fatalf("GET %s: %d %s", path, rp.status, rp.raw)
		}
		if job["state"] == "failed" || job["state"] == "succeeded" {
			return job
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s still %s after a minute", path, job["state"])
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestImagesAPI serves /v1/images over a real database and a job runner
// whose Glance does not answer: reads, the job a POST starts (202, then
// failed with the reason) and the refusals, each in the OpenStack error
// body.
func TestImagesAPI(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Pool(t)
	im := testimage.ForTest(t)
	dead, err := collect.NewClient(ctx, collect.Auth{Endpoint: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	r := imagesec.NewRunner(imagesec.RunnerConfig{DB: db, WorkDir: t.TempDir(),
		Glance: func(context.Context) (*gophercloud.ServiceClient, error) { return dead, nil }})
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer r.Stop()
	next := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) })
	srv := httptest.NewServer(api.Mount(api.New(api.Config{DB: db, Runner: r}), next))
	defer srv.Close()
	const admin, member = "admin", "user:project"

	if rp := do(t, srv, "GET", "/v1/images", member, "", ""); rp.status != 200 || rp.raw != `{"images": []}`+"\n" && !strings.Contains(rp.raw, `"images":[]`) {
		t.Errorf("empty list: %d %s", rp.status, rp.raw)
	}
	d, err := imagesec.InspectFile(ctx, db, im.QcowMBR, inspect.Options{WorkDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	idp := "/v1/images/" + strconv.FormatInt(d.ID, 10)
	if rp := do(t, srv, "GET", "/v1/images", member, "", ""); rp.status != 200 || len(rp.body["images"].([]any)) != 1 {
		t.Errorf("list: %d %s", rp.status, rp.raw)
	}
	rp := do(t, srv, "GET", idp, member, "", "")
	if img, _ := rp.body["image"].(map[string]any); rp.status != 200 || img["info"].(map[string]any)["os"].(map[string]any)["version"] != im.OSVersionID {
		t.Errorf("show: %d %s", rp.status, rp.raw)
	}
	if rp := do(t, srv, "GET", idp+"/packages", member, "", ""); rp.status != 200 || len(rp.body["packages"].([]any)) != len(im.Packages) {
		t.Errorf("packages: %d %.300s", rp.status, rp.raw)
	}
	if rp := do(t, srv, "GET", idp+"/advice", member, "", ""); rp.status != 200 || rp.body["advice"] == nil {
		t.Errorf("advice: %d %s", rp.status, rp.raw)
	}

	// a publish job: 202, then failed with why
	rp = do(t, srv, "POST", idp+"/publish", admin, "application/json", `{"file": "`+im.QcowMBR+`", "parent_glance_id": "0b5ad2c5-4f2f-4c47-9d1c-5ad4c1a1b2c3"}`)
	job, _ := rp.body["job"].(map[string]any)
	if rp.status != 202 || job == nil || job["state"] != "queued" || job["kind"] != "publish" || !strings.HasPrefix(rp.header.Get("Location"), "/v1/images/jobs/") {
		t.Fatalf("publish: %d %s", rp.status, rp.raw)
	}
	if job := waitJob(t, srv, rp.header.Get("Location")); job["state"] != "failed" || !strings.Contains(job["error"].(string), "reading parent image") {
		t.Errorf("publish job against a dead glance: %v", job)
	}
	// an advise job: 202, then succeeded with the plan, stored as the
	// image's advice
	rp = do(t, srv, "POST", idp+"/advise", admin, "application/json", `{"feed": "file://`+im.Feed.Dir+`", "advisories": "`+im.Feed.Advisories+`"}`)
	if job, _ := rp.body["job"].(map[string]any); rp.status != 202 || job == nil || job["kind"] != "advise" || !strings.HasPrefix(rp.header.Get("Location"), "/v1/images/jobs/") {
		t.Fatalf("advise: %d %s", rp.status, rp.raw)
	}
	job = waitJob(t, srv, rp.header.Get("Location"))
	if job["state"] != "succeeded" {
		t.Fatalf("advise job: %v", job)
	}
	if ups, _ := job["result"].(map[string]any)["upgrades"].([]any); len(ups) != len(im.Feed.Fixes) {
		t.Errorf("advise job's plan: %v; want %d upgrades", job["result"], len(im.Feed.Fixes))
	}
	rp = do(t, srv, "GET", idp+"/advice", member, "", "")
	if adv, _ := rp.body["advice"].(map[string]any); rp.status != 200 || adv == nil || !strings.Contains(rp.raw, im.Feed.Fixes[0].To) {
		t.Errorf("advice after the advise job: %d %.400s", rp.status, rp.raw)
	}
	// a feed that cannot be read fails the job and keeps the advice
	rp = do(t, srv, "POST", idp+"/advise", admin, "application/json", `{"feed": "file:///nonexistent/feed"}`)
	if rp.status != 202 {
		t.Fatalf("advise with a missing feed: %d %s", rp.status, rp.raw)
	}
	if job := waitJob(t, srv, rp.header.Get("Location")); job["state"] != "failed" || !strings.Contains(job["error"].(string), "nonexistent") {
		t.Errorf("advise job with a missing feed: %v", job)
	}
	if rp := do(t, srv, "GET", idp+"/advice", member, "", ""); !strings.Contains(rp.raw, im.Feed.Fixes[0].To) {
		t.Errorf("advice after a failed advise job: %.400s", rp.raw)
	}

	if rp := do(t, srv, "GET", "/v1/images/jobs?limit=10", member, "", ""); rp.status != 200 || len(rp.body["jobs"].([]any)) != 3 {
		t.Errorf("jobs: %d %s", rp.status, rp.raw)
	}

	for _, tc := range []struct {
		method, path, token, ctype, body string
		status                           int
		detail                           string
	}{
		{"GET", "/v1/images/999", member, "", "", 404, "image 999: image not found"},
		{"GET", "/v1/images/abc", member, "", "", 404, "Image abc not found."},
		{"GET", "/v1/images/999/packages", member, "", "", 404, "image not found"},
		{"GET", "/v1/images/jobs/77", member, "", "", 404, "job 77: job not found"},
		{"GET", "/v1/images/jobs?limit=0", member, "", "", 400, "Invalid limit"},
		{"GET", "/v1/images/nothing/here", member, "", "", 404, "could not be found"},
		{"PUT", "/v1/images", member, "", "", 405, ""},
		{"GET", "/v1/images", "", "", "", 401, ""},
		{"POST", "/v1/images/collect", member, "", "", 403, "Only administrators"},
		{"POST", idp + "/upgrade", admin, "", "", 400, "offline upgrade is not available"},
		{"POST", "/v1/images/999/upgrade", admin, "", "", 400, "offline upgrade is not available"},
		{"POST", idp + "/publish", admin, "", "", 400, "is not the result of an upgrade"},
		{"POST", idp + "/publish", admin, "application/json", "[1]", 400, "must be a JSON object"},
		{"POST", idp + "/publish", admin, "application/json", "{", 400, "Malformed JSON"},
		{"POST", idp + "/publish", admin, "text/plain", "{}", 415, "text/plain is not supported"},
		{"POST", idp + "/publish", admin, "application/json", `{"colour": 1}`, 400, "unknown field"},
		{"POST", "/v1/images/collect", admin, "application/json", `{"keep_files": "yes"}`, 400, "invalid job"},
		{"POST", idp + "/advise", member, "application/json", `{"feed": "/x"}`, 403, "Only administrators"},
		{"POST", idp + "/advise", admin, "", "", 400, "advise needs a feed"},
		{"POST", idp + "/advise", admin, "application/json", `{"feed": "/x", "colour": 1}`, 400, "unknown field"},
		{"POST", "/v1/images/999/advise", admin, "application/json", `{"feed": "/x"}`, 404, "image not found"},
		{"POST", "/v1/images/abc/advise", admin, "application/json", `{"feed": "/x"}`, 404, "Image abc not found."},
		{"GET", idp + "/advise", member, "", "", 405, ""},
	} {
		rp := do(t, srv, tc.method, tc.path, tc.token, tc.ctype, tc.body)
		if rp.status != tc.status || !strings.Contains(rp.raw, tc.detail) {
			t.Errorf("%s %s: %d %s; want %d with %q", tc.method, tc.path, rp.status, rp.raw, tc.status, tc.detail)
		}
		if tc.status != 401 && errCode(rp) != "unisched.undefined_code" && tc.status != 405 {
			t.Errorf("%s %s: not an OpenStack error body: %s", tc.method, tc.path, rp.raw)
		}
	}
	if rp := do(t, srv, "GET", "/v1/workloads", member, "", ""); rp.status != http.StatusTeapot {
		t.Errorf("other paths not passed on: %d", rp.status)
	}
	// a server without Glance: collect is a conflict
	noGlance := imagesec.NewRunner(imagesec.RunnerConfig{DB: db})
	_ = noGlance.Start(ctx)
	defer noGlance.Stop()
	srv2 := httptest.NewServer(api.New(api.Config{DB: db, Runner: noGlance}))
	defer srv2.Close()
	if rp := do(t, srv2, "POST", "/v1/images/collect", admin, "", ""); rp.status != 409 || !strings.Contains(rp.raw, "glance is not configured") {
		t.Errorf("collect without glance: %d %s", rp.status, rp.raw)
	}
}

// TestResolveAPI: GET /v1/images/resolve answers the image to boot for a
// Glance id (itself until a patched image is published from it) or a
// family, and refuses what is not a reference.
func TestResolveAPI(t *testing.T) {
	ctx := context.Background()
	db := pgtest.Pool(t)
	srv := httptest.NewServer(api.New(api.Config{DB: db}))
	defer srv.Close()
	const member = "user:project"
	const parent, patched, patched2 = "6c3f1a52-0000-4000-8000-000000000001", "6c3f1a52-0000-4000-8000-000000000002", "6c3f1a52-0000-4000-8000-000000000003"
	resolved := func(query string) (int, map[string]any, string) {
		t.Helper()
		rp := do(t, srv, "GET", "/v1/images/resolve?"+query, member, "", "")
		res, _ := rp.body["resolved"].(map[string]any)
		return rp.status, res, rp.raw
	}
	if st, res, raw := resolved("glance_id=" + parent); st != 200 || res["glance_id"] != parent || res["patched"] != false || res["requested"] != parent {
		t.Errorf("before any publish: %d %s", st, raw)
	}
	if st, _, raw := resolved("family=" + parent); st != 404 || !strings.Contains(raw, "no patched image in the family") {
		t.Errorf("family before any publish: %d %s", st, raw)
	}
	now := time.Now().UTC()
	for i, id := range []string{patched, patched2} {
		if err := store.SaveLineage(ctx, db, store.Lineage{GlanceID: id, ParentGlanceID: parent, Family: parent, Name: "p",
			PatchedAt: now.Add(time.Duration(i) * time.Minute)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range []string{"glance_id=" + parent, "glance_id=" + patched, "family=" + parent} {
		if st, res, raw := resolved(q); st != 200 || res["glance_id"] != patched2 {
			t.Errorf("%s: %d %s; want %s", q, st, raw, patched2)
		}
	}
	if _, res, _ := resolved("glance_id=" + patched2); res["patched"] != false {
		t.Errorf("the newest patched image resolves to itself: %v", res)
	}
	for _, q := range []string{"", "glance_id=a&family=b", "glance_id=%00", "family=%ff", "family=" + strings.Repeat("x", 256)} {
		if st, _, raw := resolved(q); st != 400 || errCode(reply{status: st, body: decode(raw)}) != "unisched.undefined_code" {
			t.Errorf("%q: %d %s; want 400", q, st, raw)
		}
	}
	if rp := do(t, srv, "GET", "/v1/images/resolve?glance_id=x", "", "", ""); rp.status != 401 {
		t.Errorf("unauthenticated: %d", rp.status)
	}
}

func decode(raw string) map[string]any {
	var m map[string]any
	_ = json.Unmarshal([]byte(raw), &m)
	return m
}
