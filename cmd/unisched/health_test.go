package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/unisched/unisched/bridge"
	"github.com/unisched/unisched/internal/metrics"
	"github.com/unisched/unisched/internal/pgtest"
)

// Ports of the observability tests (obs range 24000-24999).
const (
	obsPlacementAddr = "127.0.0.1:24010"
	obsContainerAddr = "127.0.0.1:24011"
)

// Every listener of serve answers the probes and /metrics without a
// token, outside its API's routes; the request metrics carry route
// templates and microversions, never raw paths.
func TestServeObservability(t *testing.T) {
	dbURL := pgtest.URL(t)
	t.Setenv("UNISCHED_DATABASE_URL", dbURL)
	t.Setenv("UNISCHED_PLACEMENT_LISTEN", obsPlacementAddr)
	t.Setenv("UNISCHED_CONTAINER_API_LISTEN", obsContainerAddr)
	t.Setenv("UNISCHED_LOG_LEVEL", "error")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- runServe(ctx, nil) }()
	waitFor(t, "http://"+obsPlacementAddr+"/healthz", done)
	waitFor(t, "http://"+obsContainerAddr+"/healthz", done)

	for _, addr := range []string{obsPlacementAddr, obsContainerAddr} {
		for _, path := range []string{"/healthz", "/readyz"} {
			code, body := get(t, "http://"+addr+path, "") // no token
			var rep struct {
				Status string
				Checks map[string]struct{ Status string }
			}
			if err := json.Unmarshal([]byte(body), &rep); err != nil || code != 200 || rep.Status != "ok" {
				t.Errorf("GET %s%s: %d %s", addr, path, code, body)
			}
			if path == "/readyz" && (rep.Checks["database"].Status != "ok" || rep.Checks["migrations"].Status != "ok") {
				t.Errorf("GET %s%s: checks %s", addr, path, body)
			}
		}
		if code, _ := send(t, "POST", "http://"+addr+"/metrics", "", ""); code != http.StatusMethodNotAllowed {
			t.Errorf("POST %s/metrics: %d", addr, code)
		}
	}

	const rp = "http://" + obsPlacementAddr + "/resource_providers/"
	const missing = "6f1c5a9e-0000-4000-8000-00000000abcd"
	if code, body := sendMV(t, "GET", rp+missing, "1.14", ""); code != 404 {
		t.Fatalf("GET a missing provider: %d %s", code, body)
	}
	if code, body := sendMV(t, "GET", rp+missing, "1.14", ""); code != 404 {
		t.Fatalf("GET a missing provider: %d %s", code, body)
	}
	if code, body := sendMV(t, "GET", "http://"+obsPlacementAddr+"/resource_providers", "latest", ""); code != 200 {
		t.Fatalf("GET /resource_providers: %d %s", code, body)
	}
	// the root document is untouched by the wrapping
	if code, body := get(t, "http://"+obsPlacementAddr+"/", ""); code != 200 || !strings.Contains(body, `"max_version":"1.39"`) {
		t.Errorf("GET /: %d %s", code, body)
	}
	req, _ := http.NewRequest("GET", "http://"+obsContainerAddr+"/v1/containers", nil)
	req.Header.Set("X-Auth-Token", "admin")
	req.Header.Set("OpenStack-API-Version", "container 1.40")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("GET /v1/containers: %d", res.StatusCode)
	}

	var samples metrics.Samples
	for _, addr := range []string{obsPlacementAddr, obsContainerAddr} {
		code, body := get(t, "http://"+addr+"/metrics", "")
		if code != 200 {
			t.Fatalf("GET %s/metrics: %d", addr, code)
		}
		if samples, err = metrics.ParseText(body); err != nil {
			t.Fatal(err)
		}
	}
	// the last scrape: one registry behind both listeners
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"unisched_http_requests_total", map[string]string{"listener": "placement", "route": "/resource_providers/{uuid}",
			"method": "GET", "status": "4xx", "microversion": "1.14"}, 2},
		{"unisched_http_requests_total", map[string]string{"listener": "placement", "route": "/resource_providers",
			"method": "GET", "status": "2xx", "microversion": "1.39"}, 1},
		{"unisched_http_requests_total", map[string]string{"listener": "placement", "route": "/", "status": "2xx"}, 1},
		{"unisched_http_requests_total", map[string]string{"listener": "container", "route": "/v1/containers",
			"method": "GET", "status": "2xx", "microversion": "1.40"}, 1},
		{"unisched_http_requests_total", map[string]string{"listener": "container", "route": "/readyz", "status": "2xx"}, 1},
		{"unisched_http_requests_total", map[string]string{"listener": "placement", "route": "/metrics", "status": "4xx"}, 1},
		{"unisched_http_request_duration_seconds_count", map[string]string{"listener": "placement",
			"route": "/resource_providers/{uuid}", "microversion": "1.14"}, 2},
		// the outbox collector's query ran: nothing pending
		{"unisched_outbox_pending_events", map[string]string{"topic": "agent"}, 0},
		{"unisched_outbox_oldest_pending_age_seconds", map[string]string{"topic": "agent"}, 0},
		{"unisched_outbox_scrape_errors_total", nil, 0},
	} {
		if got := samples.Sum(tc.name, tc.labels); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	for _, s := range samples {
		for _, v := range s.Labels {
			if strings.Contains(v, missing) {
				t.Errorf("raw path in a label: %s %v", s.Name, s.Labels)
			}
		}
	}
	// the coordinator's claim conflicts: every reason the bridge gives, at 0
	for _, reason := range bridge.ClaimConflictReasons {
		if got := samples.Find("unisched_bridge_claim_conflicts_total", map[string]string{"reason": reason}); len(got) != 1 || got[0].Value != 0 {
			t.Errorf("unisched_bridge_claim_conflicts_total{reason=%q}: %+v", reason, got)
		}
	}
	if n := len(samples.Find("unisched_bridge_claim_conflicts_total", nil)); n != len(bridge.ClaimConflictReasons) {
		t.Errorf("%d claim conflict series, want %d", n, len(bridge.ClaimConflictReasons))
	}
	// the other parts' metrics are on the same registry
	for _, name := range []string{"unisched_reconcile_runs_total", "go_goroutines", "unisched_outbox_pending_events",
		"unisched_placement_candidates_index_providers", "unisched_placement_allocation_conflicts_total"} {
		if len(samples.Find(name, nil)) == 0 {
			t.Errorf("%s missing from /metrics", name)
		}
	}

	// a schema behind the binary takes every listener out of the
	// balancer; liveness does not follow
	conn, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(context.Background(), `UPDATE schema_migrations SET version = version - 1`); err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{obsPlacementAddr, obsContainerAddr} {
		if code, body := get(t, "http://"+addr+"/readyz", ""); code != http.StatusServiceUnavailable ||
			!strings.Contains(body, `"migrations":{"status":"fail"`) || !strings.Contains(body, "unisched migrate") {
			t.Errorf("GET %s/readyz with the schema behind: %d %s", addr, code, body)
		}
		if code, _ := get(t, "http://"+addr+"/healthz", ""); code != 200 {
			t.Errorf("GET %s/healthz with the schema behind: %d", addr, code)
		}
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop")
	}
}
