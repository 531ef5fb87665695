package api

import (
	"net/http"
	"strings"
	"testing"

	"github.com/unisched/unisched/bridge/bridgetest"
)

// No body, however broken, gets a 500 or a panic from the workloads or
// agent routes: the schema and the checks after it answer 4xx.
func FuzzBodies(f *testing.F) {
	for _, seed := range []string{
		`{"workloads": [` + container + `]}`,
		`{"workloads": [{"kind": "vm", "cpu": 2, "memory_mb": 1024, "numa": {"cells": 2, "memory_mb": [512, 512]}}]}`,
		`{"workloads": [{"kind": "container", "cpu": 1.5, "memory_mb": 64, "image": "x", "restart_policy": {"name": "on-failure", "maximum_retry_count": 1e2}}]}`,
		registration,
		`{"workload_id": "5d9f5f0e-8a55-4b8e-9a6b-3f1d2b8a7c10", "status": "Running", "exit_code": null, "observed_at": "2026-01-01T00:00:00Z"}`,
		`{"workloads": [{"kind": "container", "cpu": 1e-300, "memory_mb": 6.0, "image": "x", "numa": {"cells": 1.0}}]}`,
		`{"agent_url": "http://a", "cells": [{"id": 0, "cpus": "0-99999999", "memory_mb": 1}], "dedicated_cpus": "", "shared_cpus": ""}`,
		// PostgreSQL stores no NUL character in text or jsonb
		`{"workloads": [{"kind": "container", "cpu": 1, "memory_mb": 64, "image": "x", "workdir": "/\u0000", "environment": {"A": "\u0000"}}]}`,
		`{"workloads": [{"kind": "vm", "cpu": 1, "memory_mb": 64, "flavor": "\ud800"}]}`,
		`{"agent_url": "http://a", "cells": [{"id": 0, "cpus": "0-3", "memory_mb": 1}], "dedicated_cpus": "", "shared_cpus": "", "os": "\u0000"}`,
		`{"workload_id": "5d9f5f0e-8a55-4b8e-9a6b-3f1d2b8a7c10", "status": "Running", "container_id": "\u0000", "reason": "\u0000"}`,
	} {
		f.Add(seed)
	}
	c, _ := bridgetest.Coordinator(f)
	bridgetest.Register(f, c, bridgetest.TwoCells("h1"))
	h := New(Config{Service: c})
	f.Fuzz(func(t *testing.T, body string) {
		for _, rt := range []struct{ method, path string }{
			{"POST", "/v1/workloads"}, {"PUT", "/v1/agents/h1"}, {"POST", "/v1/agents/h1/reports"},
		} {
			r := do(t, h, rt.method, rt.path, adminToken, body)
			if r.status >= 500 {
				t.Fatalf("%s %s %q: %d %s", rt.method, rt.path, body, r.status, r.raw)
			}
			if r.status >= 400 && !strings.Contains(r.raw, `"errors"`) && r.status != http.StatusUnsupportedMediaType {
				t.Fatalf("%s %s %q: %d without the error body: %s", rt.method, rt.path, body, r.status, r.raw)
			}
		}
	})
}
