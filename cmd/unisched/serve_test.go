package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/unisched/unisched/bridge/agentproto"
	"github.com/unisched/unisched/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// Ports of this package's tests (the wiring engineer's range).
const (
	testPlacementAddr = "127.0.0.1:9624"
	testContainerAddr = "127.0.0.1:9625"
)

func get(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Auth-Token", token)
	req.Header.Set("Accept", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func send(t *testing.T, method, url, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Auth-Token", token)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// sendMV sends a Placement request as admin at a microversion.
func sendMV(t *testing.T, method, url, mv, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Auth-Token", "admin")
	req.Header.Set("OpenStack-API-Version", "placement "+mv)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func waitFor(t *testing.T, url string, done <-chan error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			t.Fatalf("serve ended while starting: %v", err)
		default:
		}
		if code, _ := get(t, url, "admin"); code != 0 {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s never answered", url)
}

// serve runs both listeners on one process and stops both, and the
// relay, when its context ends.
func TestServeBothListeners(t *testing.T) {
	t.Setenv("UNISCHED_DATABASE_URL", pgtest.URL(t))
	t.Setenv("UNISCHED_PLACEMENT_LISTEN", testPlacementAddr)
	t.Setenv("UNISCHED_CONTAINER_API_LISTEN", testContainerAddr)
	t.Setenv("UNISCHED_LOG_LEVEL", "error")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- runServe(ctx, nil) }()
	waitFor(t, "http://"+testPlacementAddr+"/", done)
	waitFor(t, "http://"+testContainerAddr+"/v1/workloads", done)

	if code, body := get(t, "http://"+testPlacementAddr+"/resource_providers", "admin"); code != 200 || !strings.Contains(body, "resource_providers") {
		t.Errorf("placement: %d %s", code, body)
	}
	// the native API, over the coordinator
	if code, body := get(t, "http://"+testContainerAddr+"/v1/workloads", "alice:projA"); code != 200 || body != "{\"workloads\":[]}\n" {
		t.Errorf("native API: %d %s", code, body)
	}
	// Zun's API on the same listener
	if code, body := get(t, "http://"+testContainerAddr+"/v1/containers", "alice:projA"); code != 200 || !strings.Contains(body, "containers") {
		t.Errorf("Zun API: %d %s", code, body)
	}
	if code, _ := get(t, "http://"+testContainerAddr+"/v1/agents/h1/desired", "alice:projA"); code != 403 {
		t.Errorf("agent route as a member: %d, want 403", code)
	}
	// the relay runs: a registered host's agent gets the create event
	events := make(chan agentproto.Event, 10)
	agent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev agentproto.Event
		if r.URL.Path != "/v1/events" || json.NewDecoder(r.Body).Decode(&ev) != nil {
			w.WriteHeader(400)
			return
		}
		events <- ev
	}))
	defer agent.Close()
	reg := `{"agent_url": "` + agent.URL + `", "cells": [{"id": 0, "cpus": "0-3", "memory_mb": 4096}],
		"dedicated_cpus": "0-1", "shared_cpus": "2-3", "disk_gb": 10}`
	code, regBody := send(t, "PUT", "http://"+testContainerAddr+"/v1/agents/h1", "admin", reg)
	if code != 200 || !strings.Contains(regBody, "provider_uuid") {
		t.Fatalf("registration: %d %s", code, regBody)
	}
	code, body := send(t, "POST", "http://"+testContainerAddr+"/v1/workloads", "alice:projA",
		`{"workloads": [{"kind": "container", "name": "c1", "cpu_policy": "dedicated", "cpu": 1, "memory_mb": 64, "image": "busybox"}]}`)
	if code != 202 || !strings.Contains(body, `"host":"h1"`) {
		t.Fatalf("create: %d %s", code, body)
	}
	select {
	case ev := <-events:
		if ev.Type != agentproto.EventCreate || ev.Host != "h1" || ev.Container == nil || ev.Container.Name != "c1" || ev.ID == 0 {
			t.Errorf("event %+v", ev)
		}
	case <-time.After(10 * time.Second):
		t.Error("the relay delivered no event")
	}

	// the relay observed that delivery: /metrics on the container API
	// shows the notify-lag histogram of the agent topic
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := get(t, "http://"+testContainerAddr+"/metrics", "")
		if code == 200 && strings.Contains(body, `unisched_notify_lag_seconds_count{topic="agent"} 1`) {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("/metrics: %d, no observed agent delivery:\n%.2000s", code, body)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Nova's claim on the agent's host is recorded as a VM by the hooks
	// serve wires into Placement (nova.candidates first by default).
	var regResult struct {
		ProviderUUID string `json:"provider_uuid"`
	}
	if err := json.Unmarshal([]byte(regBody), &regResult); err != nil || regResult.ProviderUUID == "" {
		t.Fatalf("provider of h1 in %s: %v", regBody, err)
	}
	rp := regResult.ProviderUUID
	vm := "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b"
	claim := `{"allocations": {"` + rp + `": {"resources": {"PCPU": 1, "MEMORY_MB": 64}}}, "project_id": "p1", "user_id": "u1", "consumer_generation": null}`
	if code, body := sendMV(t, "PUT", "http://"+testPlacementAddr+"/allocations/"+vm, "1.36", claim); code != 204 {
		t.Fatalf("Nova's claim: %d %s", code, body)
	}
	if code, body := get(t, "http://"+testContainerAddr+"/v1/workloads/"+vm, "admin:p1"); code != 200 || !strings.Contains(body, `"kind":"vm"`) {
		t.Errorf("the VM in the ledger: %d %s", code, body)
	}

	// placement's routes are not on the container listener
	if code, _ := get(t, "http://"+testContainerAddr+"/resource_providers", "admin"); code != 404 {
		t.Errorf("placement route on the container API: %d, want 404", code)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop")
	}
	for _, addr := range []string{testPlacementAddr, testContainerAddr} {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after shutdown", addr)
		}
	}
}

// A container API port already taken stops serve at start, naming it, and
// leaves the placement port free again.
func TestServeContainerPortTaken(t *testing.T) {
	ln, err := net.Listen("tcp", testContainerAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	t.Setenv("UNISCHED_DATABASE_URL", pgtest.URL(t))
	t.Setenv("UNISCHED_PLACEMENT_LISTEN", testPlacementAddr)
	t.Setenv("UNISCHED_CONTAINER_API_LISTEN", testContainerAddr)
	t.Setenv("UNISCHED_LOG_LEVEL", "error")
	err = runServe(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), "container API") || !strings.Contains(err.Error(), testContainerAddr) {
		t.Fatalf("serve on a taken port: %v", err)
	}
	pl, err := net.Listen("tcp", testPlacementAddr)
	if err != nil {
		t.Fatalf("placement port left bound: %v", err)
	}
	pl.Close()
}

// "off" runs placement alone.
func TestServeContainerAPIOff(t *testing.T) {
	t.Setenv("UNISCHED_DATABASE_URL", pgtest.URL(t))
	t.Setenv("UNISCHED_PLACEMENT_LISTEN", testPlacementAddr)
	t.Setenv("UNISCHED_CONTAINER_API_LISTEN", "off")
	t.Setenv("UNISCHED_LOG_LEVEL", "error")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- runServe(ctx, nil) }()
	waitFor(t, "http://"+testPlacementAddr+"/", done)
	if c, err := net.DialTimeout("tcp", testContainerAddr, time.Second); err == nil {
		c.Close()
		t.Errorf("container API listening although off")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// An unknown nova.candidates mode stops serve at start.
func TestServeBadCandidatesMode(t *testing.T) {
	t.Setenv("UNISCHED_DATABASE_URL", pgtest.URL(t))
	t.Setenv("UNISCHED_PLACEMENT_LISTEN", testPlacementAddr)
	t.Setenv("UNISCHED_CONTAINER_API_LISTEN", testContainerAddr)
	t.Setenv("UNISCHED_NOVA_CANDIDATES", "sometimes")
	t.Setenv("UNISCHED_LOG_LEVEL", "error")
	err := runServe(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), "nova.candidates") {
		t.Fatalf("serve with nova.candidates sometimes: %v", err)
	}
}

// A scheduler section naming an unknown filter stops serve at start.
func TestServeBadSchedulerConfig(t *testing.T) {
	path := t.TempDir() + "/c.yaml"
	if err := os.WriteFile(path, []byte("scheduler:\n  filters:\n    - name: astrology\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("UNISCHED_DATABASE_URL", pgtest.URL(t))
	t.Setenv("UNISCHED_PLACEMENT_LISTEN", testPlacementAddr)
	t.Setenv("UNISCHED_CONTAINER_API_LISTEN", testContainerAddr)
	err := runServe(context.Background(), []string{"--config", path})
	if err == nil || !strings.Contains(err.Error(), "astrology") {
		t.Fatalf("serve with an unknown filter: %v", err)
	}
}

// More idle connections than the pool may hold stops serve at start.
func TestServeBadPoolSizes(t *testing.T) {
	t.Setenv("UNISCHED_DATABASE_URL", pgtest.URL(t))
	t.Setenv("UNISCHED_PLACEMENT_LISTEN", testPlacementAddr)
	t.Setenv("UNISCHED_CONTAINER_API_LISTEN", testContainerAddr)
	t.Setenv("UNISCHED_DATABASE_MAX_CONNS", "4")
	t.Setenv("UNISCHED_DATABASE_MIN_IDLE_CONNS", "5")
	t.Setenv("UNISCHED_LOG_LEVEL", "error")
	err := runServe(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), "database.min_idle_conns 5 must be between 0 and database.max_conns (4)") {
		t.Fatalf("serve with min_idle_conns over max_conns: %v", err)
	}
}
