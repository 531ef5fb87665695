package api

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/unisched/unisched/bridge/bridgetest"
)

func createOne(t *testing.T, h http.Handler, token, name string) string {
	t.Helper()
	r := do(t, h, "POST", "/v1/workloads", token, `{"workloads": [{"kind": "container", "name": "`+name+`", "cpu": 1, "memory_mb": 64, "image": "busybox"}]}`)
	if r.status != http.StatusAccepted {
		t.Fatalf("create %s: %d %s", name, r.status, r.raw)
	}
	return r.body["workloads"].([]any)[0].(map[string]any)["id"].(string)
}

func listNames(t *testing.T, h http.Handler, token, query string) ([]string, response) {
	t.Helper()
	r := do(t, h, "GET", "/v1/workloads"+query, token, "")
	if r.status != http.StatusOK {
		return nil, r
	}
	var names []string
	for _, w := range r.body["workloads"].([]any) {
		names = append(names, w.(map[string]any)["name"].(string))
	}
	return names, r
}

// A member sees and deletes its own project's workloads only; another
// project's are answered as missing. An admin sees every project's.
func TestProjectIsolation(t *testing.T) {
	tb := newTestbed(t, Config{})
	h := tb.h
	a := createOne(t, h, aliceToken, "a1")
	b := createOne(t, h, bobToken, "b1")

	if names, r := listNames(t, h, aliceToken, ""); strings.Join(names, ",") != "a1" {
		t.Errorf("alice lists %v (%d)", names, r.status)
	}
	if names, r := listNames(t, h, bobToken, ""); strings.Join(names, ",") != "b1" {
		t.Errorf("bob lists %v (%d)", names, r.status)
	}
	if names, r := listNames(t, h, adminToken, ""); strings.Join(names, ",") != "a1,b1" {
		t.Errorf("admin lists %v (%d)", names, r.status)
	}
	if names, r := listNames(t, h, adminToken, "?project_id=projB"); strings.Join(names, ",") != "b1" {
		t.Errorf("admin lists projB: %v (%d)", names, r.status)
	}
	if names, r := listNames(t, h, aliceToken, "?project_id=projA"); strings.Join(names, ",") != "a1" {
		t.Errorf("alice lists her own project by name: %v (%d)", names, r.status)
	}
	if _, r := listNames(t, h, aliceToken, "?project_id=projB"); r.status != http.StatusForbidden {
		t.Errorf("alice lists projB: %d, want 403", r.status)
	}
	if _, r := listNames(t, h, aliceToken, "?host=host1"); r.status != http.StatusForbidden {
		t.Errorf("alice filters by host: %d, want 403", r.status)
	}

	for _, tc := range []struct {
		token, id string
		want      int
	}{
		{aliceToken, a, 200}, {aliceToken, b, 404}, {bobToken, a, 404}, {bobToken, b, 200}, {adminToken, a, 200}, {adminToken, b, 200},
	} {
		if r := do(t, h, "GET", "/v1/workloads/"+tc.id, tc.token, ""); r.status != tc.want {
			t.Errorf("%s GET %s: %d, want %d", tc.token, tc.id, r.status, tc.want)
		}
	}
	if r := do(t, h, "DELETE", "/v1/workloads/"+a, bobToken, ""); r.status != http.StatusNotFound {
		t.Errorf("bob deletes alice's: %d, want 404", r.status)
	}
	if r := do(t, h, "GET", "/v1/workloads/"+a, aliceToken, ""); r.status != http.StatusOK || r.body["state"] != "claimed" {
		t.Errorf("a refused delete reached the coordinator: %d %s", r.status, r.raw)
	}
	if r := do(t, h, "DELETE", "/v1/workloads/"+a+"?stop=true", aliceToken, ""); r.status != http.StatusNoContent {
		t.Errorf("alice deletes hers: %d %s", r.status, r.raw)
	}
	if r := do(t, h, "GET", "/v1/workloads/"+a, aliceToken, ""); r.body["state"] != "deleting" {
		t.Errorf("after alice's delete: %d %s", r.status, r.raw)
	}
	if r := do(t, h, "DELETE", "/v1/workloads/"+b+"?force=1", adminToken, ""); r.status != http.StatusNoContent {
		t.Errorf("admin deletes bob's: %d %s", r.status, r.raw)
	}
	if r := do(t, h, "GET", "/v1/workloads/"+b, bobToken, ""); r.body["state"] != "deleting" {
		t.Errorf("after the admin's delete: %d %s", r.status, r.raw)
	}
	// a system-scoped token has no project: it owns nothing
	req := httptest.NewRequest("GET", "/v1/workloads", nil)
	req.Header.Set("X-Auth-Token", "carol:projC")
	req.Header.Set("OpenStack-System-Scope", "all")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusForbidden {
		t.Errorf("projectless member lists: %d, want 403", rec.Code)
	}
}

// Query strings and path ids that cannot be answered are 400s and 404s.
func TestWorkloadQueryAndPathInput(t *testing.T) {
	h := newTestbed(t, Config{}).h
	id := createOne(t, h, aliceToken, "a1")
	tests := []struct {
		method, path string
		want         int
		detail       string
	}{
		{"GET", "/v1/workloads?kind=pod", 400, "kind"},
		{"GET", "/v1/workloads?limit=0", 400, "limit"},
		{"GET", "/v1/workloads?limit=1001", 400, "limit"},
		{"GET", "/v1/workloads?limit=x", 400, "limit"},
		{"GET", "/v1/workloads?limit=1&limit=2", 400, "given 2 times"},
		{"GET", "/v1/workloads?marker=abc", 400, "marker"},
		{"GET", "/v1/workloads?colour=red", 400, "colour"},
		{"GET", "/v1/workloads?%zz", 400, "query string"},
		{"GET", "/v1/workloads?host=", 403, ""},
		{"GET", "/v1/workloads/not-a-uuid", 404, "not-a-uuid"},
		{"GET", "/v1/workloads/" + id + "?x=1", 400, "takes none"},
		{"DELETE", "/v1/workloads/" + id + "?force=maybe", 400, "force"},
		{"DELETE", "/v1/workloads/" + id + "?stop=2", 400, "stop"},
		{"DELETE", "/v1/workloads/" + id + "?purge=1", 400, "purge"},
		{"DELETE", "/v1/workloads/00000000-0000-0000-0000-000000000001", 404, ""},
	}
	for _, tc := range tests {
		r := do(t, h, tc.method, tc.path, aliceToken, "")
		if r.status != tc.want {
			t.Errorf("%s %s: %d, want %d: %s", tc.method, tc.path, r.status, tc.want, r.raw)
			continue
		}
		if d := errorDetail(t, r); !strings.Contains(d, tc.detail) {
			t.Errorf("%s %s: detail %q lacks %q", tc.method, tc.path, d, tc.detail)
		}
	}
	if r := do(t, h, "GET", "/v1/workloads?host=", adminToken, ""); r.status != 400 {
		t.Errorf("admin empty host filter: %d, want 400", r.status)
	}
	// paging: a full page links the next one
	createOne(t, h, aliceToken, "a2")
	r := do(t, h, "GET", "/v1/workloads?limit=2&kind=container", aliceToken, "")
	if next, _ := r.body["next"].(string); !strings.Contains(next, "marker=") || !strings.Contains(next, "kind=container") {
		t.Errorf("full page without a next link: %v", r.body)
	}
}

const registration = `{"agent_url": "http://127.0.0.1:9518", "cells": [{"id": 0, "cpus": "0-3", "siblings": ["0,2", "1,3"], "memory_mb": 4096},
  {"id": 1, "cpus": "4-7", "memory_mb": 4096}], "dedicated_cpus": "0-1,4-5", "shared_cpus": "2-3,6-7", "disk_gb": 100}`

// Only admins (the agents' token) may call the agent routes.
func TestAgentRoutesAdminOnly(t *testing.T) {
	tb := newTestbed(t, Config{})
	h := tb.h
	wl := createOne(t, h, aliceToken, "w")
	routes := []struct{ method, path, body string }{
		{"PUT", "/v1/agents/host1", registration},
		{"POST", "/v1/agents/host1/reports", `{"workload_id": "` + wl + `", "status": "Running"}`},
		{"GET", "/v1/agents/host1/desired", ""},
	}
	for _, rt := range routes {
		if r := do(t, h, rt.method, rt.path, aliceToken, rt.body); r.status != http.StatusForbidden {
			t.Errorf("member %s %s: %d, want 403", rt.method, rt.path, r.status)
		} else {
			errorDetail(t, r)
		}
		if r := do(t, h, rt.method, rt.path, "", rt.body); r.status != http.StatusUnauthorized {
			t.Errorf("anonymous %s %s: %d, want 401", rt.method, rt.path, r.status)
		}
		// a user named admin whose roles say otherwise is no admin
		req := httptest.NewRequest(rt.method, rt.path, strings.NewReader(rt.body))
		req.Header.Set("X-Auth-Token", adminToken)
		req.Header.Set("X-Roles", "member")
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusForbidden {
			t.Errorf("admin user with role member %s %s: %d, want 403", rt.method, rt.path, rec.Code)
		}
	}
	hosts, err := tb.c.ListHosts(context.Background())
	if err != nil || len(hosts) != 1 || hosts[0].Name != "host1" || hosts[0].AgentURL != "http://127.0.0.1:1" {
		t.Fatalf("a refused registration reached the coordinator: %+v (%v)", hosts, err)
	}
	if got, err := tb.c.Get(context.Background(), wl); err != nil || got.Runtime.Status != "" {
		t.Fatalf("a refused report reached the coordinator: %+v (%v)", got.Runtime, err)
	}
	want := []int{200, 204, 200}
	for i, rt := range routes {
		r := do(t, h, rt.method, rt.path, adminToken, rt.body)
		if r.status != want[i] {
			t.Errorf("admin %s %s: %d, want %d: %s", rt.method, rt.path, r.status, want[i], r.raw)
		}
	}
	if url, err := tb.c.AgentURL(context.Background(), "host1"); err != nil || url != "http://127.0.0.1:9518" {
		t.Errorf("registration reached the coordinator as %q (%v)", url, err)
	}
	if got, err := tb.c.Get(context.Background(), wl); err != nil || got.Runtime.Status != "Running" {
		t.Errorf("report reached the coordinator as %+v (%v)", got.Runtime, err)
	}
	// a host with nothing on it: containers is still a list
	bridgetest.Register(t, tb.c, bridgetest.TwoCells("host2"))
	r := do(t, h, "GET", "/v1/agents/host2/desired", adminToken, "")
	if cs, ok := r.body["containers"].([]any); !ok || len(cs) != 0 || r.body["host"] != "host2" {
		t.Errorf("desired body %v: containers must be a list", r.body)
	}
}

// Every field of a registration and a report refuses bad input with 400.
func TestAgentBadInput(t *testing.T) {
	c, pool := bridgetest.Coordinator(t)
	h := New(Config{Service: c})
	reg := func(old, new string) string {
		if !strings.Contains(registration, old) {
			t.Fatalf("registration lacks %q", old)
		}
		return strings.Replace(registration, old, new, 1)
	}
	tests := []struct {
		name, method, path, body, want string
	}{
		{"host mismatch", "PUT", "/v1/agents/host1", reg(`{"agent_url"`, `{"host": "host2", "agent_url"`), "not the host of the path"},
		{"host path bad", "PUT", "/v1/agents/-x", registration, "Invalid host name"},
		{"agent_url missing", "PUT", "/v1/agents/host1", reg(`"agent_url": "http://127.0.0.1:9518", `, ""), "'agent_url' is a required property"},
		{"agent_url not http", "PUT", "/v1/agents/host1", reg("http://127.0.0.1:9518", "ftp://x"), "agent_url"},
		{"agent_url number", "PUT", "/v1/agents/host1", reg(`"http://127.0.0.1:9518"`, "9518"), "agent_url"},
		{"cells empty", "PUT", "/v1/agents/host1", `{"agent_url": "http://a:1", "cells": [], "dedicated_cpus": "", "shared_cpus": ""}`, "cells"},
		{"cell id negative", "PUT", "/v1/agents/host1", reg(`"id": 1`, `"id": -1`), "cells[1].id"},
		{"cell id twice", "PUT", "/v1/agents/host1", reg(`"id": 1`, `"id": 0`), "cell 0 is listed twice"},
		{"cell cpus bad", "PUT", "/v1/agents/host1", reg(`"cpus": "4-7"`, `"cpus": "4-x"`), "cells[1].cpus"},
		{"cell cpus reversed", "PUT", "/v1/agents/host1", reg(`"cpus": "4-7"`, `"cpus": "7-4"`), "cells[1].cpus"},
		{"cell cpus overlap", "PUT", "/v1/agents/host1", reg(`"cpus": "4-7"`, `"cpus": "3-7"`), "in another cell"},
		{"cell memory negative", "PUT", "/v1/agents/host1", reg(`"memory_mb": 4096}]`, `"memory_mb": -1}]`), "cells[1].memory_mb"},
		{"cell unknown key", "PUT", "/v1/agents/host1", reg(`"memory_mb": 4096}]`, `"memory_mb": 4096, "x": 1}]`), "'x' was unexpected"},
		{"siblings outside cell", "PUT", "/v1/agents/host1", reg(`"1,3"`, `"1,5"`), "siblings[1]"},
		{"cell cpus huge range", "PUT", "/v1/agents/host1", reg(`"cpus": "4-7"`, `"cpus": "4-99999999"`), "past the largest CPU id"},
		{"cell cpus huge number", "PUT", "/v1/agents/host1", reg(`"cpus": "4-7"`, `"cpus": "4-99999999999999999999"`), "past the largest CPU id"},
		{"shared huge range", "PUT", "/v1/agents/host1", reg(`"2-3,6-7"`, `"0-8192"`), "past the largest CPU id"},
		{"dedicated bad list", "PUT", "/v1/agents/host1", reg(`"0-1,4-5"`, `"0-1,,4"`), "dedicated_cpus"},
		{"dedicated outside cells", "PUT", "/v1/agents/host1", reg(`"0-1,4-5"`, `"0-1,8"`), "CPUs 8 are in no cell"},
		{"shared missing", "PUT", "/v1/agents/host1", reg(`, "shared_cpus": "2-3,6-7"`, ""), "'shared_cpus' is a required property"},
		{"disk negative", "PUT", "/v1/agents/host1", reg(`"disk_gb": 100`, `"disk_gb": -1`), "disk_gb"},
		{"ratio negative", "PUT", "/v1/agents/host1", reg(`"disk_gb": 100`, `"disk_gb": 100, "cpu_allocation_ratio": -1`), "cpu_allocation_ratio"},
		{"reserved string", "PUT", "/v1/agents/host1", reg(`"disk_gb": 100`, `"disk_gb": 100, "reserved_host_memory_mb": "1"`), "reserved_host_memory_mb"},
		{"unknown key", "PUT", "/v1/agents/host1", reg(`"disk_gb": 100`, `"disk_gb": 100, "gpus": 1`), "'gpus' was unexpected"},
		{"registration query", "PUT", "/v1/agents/host1?x=1", registration, "takes none"},
		{"report not JSON", "POST", "/v1/agents/host1/reports", `{`, "Malformed JSON"},
		{"report id missing", "POST", "/v1/agents/host1/reports", `{"status": "Running"}`, "'workload_id' is a required property"},
		{"report id bad", "POST", "/v1/agents/host1/reports", `{"workload_id": "x", "status": "Running"}`, "workload_id"},
		{"report status unknown", "POST", "/v1/agents/host1/reports", `{"workload_id": "5d9f5f0e-8a55-4b8e-9a6b-3f1d2b8a7c10", "status": "running"}`, "status"},
		{"report exit code string", "POST", "/v1/agents/host1/reports", `{"workload_id": "5d9f5f0e-8a55-4b8e-9a6b-3f1d2b8a7c10", "status": "Dead", "exit_code": "1"}`, "exit_code"},
		{"report event id negative", "POST", "/v1/agents/host1/reports", `{"workload_id": "5d9f5f0e-8a55-4b8e-9a6b-3f1d2b8a7c10", "status": "Dead", "event_id": -1}`, "event_id"},
		{"report time bad", "POST", "/v1/agents/host1/reports", `{"workload_id": "5d9f5f0e-8a55-4b8e-9a6b-3f1d2b8a7c10", "status": "Dead", "observed_at": "yesterday"}`, "Invalid input"},
		{"report unknown key", "POST", "/v1/agents/host1/reports", `{"workload_id": "5d9f5f0e-8a55-4b8e-9a6b-3f1d2b8a7c10", "status": "Dead", "pid": 1}`, "'pid' was unexpected"},
		{"desired host bad", "GET", "/v1/agents/a%20b/desired", "", "Invalid host name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, h, tc.method, tc.path, adminToken, tc.body)
			if r.status != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", r.status, r.raw)
			}
			if d := errorDetail(t, r); !strings.Contains(d, tc.want) {
				t.Errorf("detail %q does not contain %q", d, tc.want)
			}
		})
	}
	for _, table := range []string{"bridge_hosts", "resource_providers", "bridge_workloads"} {
		var n int
		if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM "+table).Scan(&n); err != nil || n != 0 {
			t.Errorf("bad agent input reached the coordinator: %d rows in %s (%v)", n, table, err)
		}
	}
}

// The shared listener sends the native and agent paths here and the rest
// to Zun's handler; without one, the rest is a 404 in the error format.
func TestMount(t *testing.T) {
	native := newTestbed(t, Config{}).h
	zun := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(299) })
	m := Mount(native, zun)
	for path, want := range map[string]int{
		"/v1/workloads": 200, "/v1/workloads/x": 404, "/v1/agents/host1/desired": 200,
		"/v1/containers": 299, "/": 299, "/v1/": 299, "/v1/workloadsx": 299, "/v1/agents": 299,
	} {
		if r := do(t, m, "GET", path, adminToken, ""); r.status != want {
			t.Errorf("GET %s: %d, want %d", path, r.status, want)
		}
	}
	bare := Mount(native, nil)
	r := do(t, bare, "GET", "/v1/containers", adminToken, "")
	if r.status != http.StatusNotFound {
		t.Fatalf("no zun: %d", r.status)
	}
	if r.header.Get("X-OpenStack-Request-ID") == "" {
		t.Errorf("404 without a request id")
	}
	errorDetail(t, r)
}
