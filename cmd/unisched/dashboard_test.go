package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/unisched/unisched/dashboard"
	"github.com/unisched/unisched/internal/pgtest"
)

// Ports of the dashboard's tests (the dashboard engineer's range).
const (
	dashPlacementAddr = "127.0.0.1:25021"
	dashContainerAddr = "127.0.0.1:25022"
	dashAddr          = "127.0.0.1:25023"
)

// serve runs the dashboard on its own listener with the process's relay
// and metrics registry: a host registered through the agents' route is
// drawn, and once the relay delivered an event the page says this process
// leads and shows its notify-lag histogram.
func TestServeDashboard(t *testing.T) {
	t.Setenv("UNISCHED_DATABASE_URL", pgtest.URL(t))
	t.Setenv("UNISCHED_PLACEMENT_LISTEN", dashPlacementAddr)
	t.Setenv("UNISCHED_CONTAINER_API_LISTEN", dashContainerAddr)
	t.Setenv("UNISCHED_DASHBOARD_LISTEN", dashAddr)
	t.Setenv("UNISCHED_LOG_LEVEL", "error")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runServe(ctx, nil) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	waitFor(t, "http://"+dashAddr+"/", done)
	waitFor(t, "http://"+dashContainerAddr+"/v1/workloads", done)

	agent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer agent.Close()
	reg := `{"agent_url": "` + agent.URL + `", "cells": [{"id": 0, "cpus": "0-3", "memory_mb": 4096}],
		"dedicated_cpus": "0-1", "shared_cpus": "2-3", "disk_gb": 10}`
	if code, body := send(t, "PUT", "http://"+dashContainerAddr+"/v1/agents/dash-h1", "admin", reg); code != 200 {
		t.Fatalf("registration: %d %s", code, body)
	}
	if code, body := send(t, "POST", "http://"+dashContainerAddr+"/v1/workloads", "alice:projA",
		`{"workloads": [{"kind": "container", "name": "c1", "cpu_policy": "dedicated", "cpu": 1, "memory_mb": 64, "image": "busybox"}]}`); code != 202 {
		t.Fatalf("create: %d %s", code, body)
	}
	var v dashboard.View
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, body := get(t, "http://"+dashAddr+"/api/state", "")
		if code != 200 {
			t.Fatalf("api/state: %d %s", code, body)
		}
		if err := json.Unmarshal([]byte(body), &v); err != nil {
			t.Fatal(err)
		}
		o := v.Outbox
		if o.Pending == 0 && o.Delivered > 0 && o.Histogram != nil && o.Leader != nil && *o.Leader {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the dashboard never showed the delivery and the leadership: %+v", o)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(v.Hosts) != 1 || v.Hosts[0].Name != "dash-h1" || v.Totals.Containers != 1 || v.Totals.PinnedCPUs != 1 {
		t.Errorf("view: hosts %+v, totals %+v", v.Hosts, v.Totals)
	}
	code, body := get(t, "http://"+dashAddr+"/", "")
	if code != 200 || !strings.Contains(body, `data-host="dash-h1"`) || !strings.Contains(body, "This process leads the relay") {
		t.Errorf("page: %d %.500s", code, body)
	}
}

// A dashboard on a non-loopback address is refused unless allow_remote
// says so; serve does not start.
func TestServeDashboardRemoteRefused(t *testing.T) {
	t.Setenv("UNISCHED_DATABASE_URL", pgtest.URL(t))
	t.Setenv("UNISCHED_PLACEMENT_LISTEN", dashPlacementAddr)
	t.Setenv("UNISCHED_CONTAINER_API_LISTEN", "off")
	t.Setenv("UNISCHED_DASHBOARD_LISTEN", "0.0.0.0:25024")
	t.Setenv("UNISCHED_LOG_LEVEL", "error")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := runServe(ctx, nil)
	if err == nil || !strings.Contains(err.Error(), "not a loopback address") {
		t.Fatalf("serve with dashboard.listen 0.0.0.0: %v", err)
	}
}
