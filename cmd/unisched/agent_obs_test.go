package main

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/unisched/unisched/bridge/agentproto"
	"github.com/unisched/unisched/internal/health"
	"github.com/unisched/unisched/internal/metrics"
	"github.com/unisched/unisched/zunext/agent"
)

// An agent that reaches no dockerd and never converged is alive but not
// ready; its requests are counted by route pattern.
func TestAgentObservability(t *testing.T) {
	var a *agent.Agent
	wrap, err := agentObservability(func() *agent.Agent { return a }, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	a, err = agent.New(agent.Config{Host: "obs-host", DockerHost: "unix:///nonexistent/docker.sock",
		Cells: []agentproto.Cell{{ID: 0, CPUs: "0-1", MemoryMB: 1024}}, DiskGB: 1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	h := wrap(a.Handler())
	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		return rec.Code, rec.Body.String()
	}
	if code, body := get("/healthz"); code != 200 {
		t.Errorf("healthz: %d %s", code, body)
	}
	code, body := get("/readyz")
	var rep health.Report
	if err := json.Unmarshal([]byte(body), &rep); err != nil || code != http.StatusServiceUnavailable ||
		rep.Checks["docker"].Status != "fail" || rep.Checks["converged"].Status != "fail" {
		t.Errorf("readyz: %d %s", code, body)
	}
	get("/v1/health")
	get("/v1/containers/abc/logs")
	get("/v1/containers/def/logs")
	get("/no/such")
	code, body = get("/metrics")
	if code != 200 {
		t.Fatalf("metrics: %d", code)
	}
	ss, err := metrics.ParseText(body)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"unisched_agent_docker_up", nil, 0},
		{"unisched_agent_converged", nil, 0},
		{"unisched_agent_events_pending", nil, 0},
		{"unisched_agent_event_retries_total", nil, 0},
		{"unisched_http_requests_total", map[string]string{"listener": "agent", "route": "/v1/health", "status": "5xx"}, 1},
		{"unisched_http_requests_total", map[string]string{"listener": "agent", "route": "/v1/containers/{id}/logs"}, 2},
		{"unisched_http_requests_total", map[string]string{"listener": "agent", "route": metrics.Unmatched, "status": "4xx"}, 1},
		{"unisched_http_requests_total", map[string]string{"listener": "agent", "route": "/readyz", "status": "5xx"}, 1},
	} {
		if got := ss.Find(tc.name, tc.labels); len(got) == 0 || ss.Sum(tc.name, tc.labels) != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
}
