package api

import (
	"context"
	"net/http"
	"strings"
	"testing"
)

// A NUL character (the JSON escape \u0000) in any string of a workload is
// a 400 naming it, and no entry of the request is created: PostgreSQL
// stores none in text or jsonb.
func TestCreateRefusesNUL(t *testing.T) {
	h, pool := realHandler(t)
	registerHost(t, h, "h1")
	const ok = `{"kind": "container", "name": "first", "cpu": 1, "memory_mb": 64, "image": "busybox"}`
	const base = `"cpu": 1, "memory_mb": 64, `
	for _, tc := range []struct {
		name, entry, want string
	}{
		{"workdir", `"kind": "container", "image": "b", "workdir": "/a\u0000"`, "container.workdir contains a NUL character"},
		{"environment value", `"kind": "container", "image": "b", "environment": {"K": "v\u0000"}`, "container.environment.K contains a NUL character"},
		{"command", `"kind": "container", "image": "b", "command": ["sh", "-c\u0000"]`, "container.command contains a NUL character"},
		{"entrypoint", `"kind": "container", "image": "b", "entrypoint": ["\u0000"]`, "container.entrypoint contains a NUL character"},
		{"label value", `"kind": "container", "image": "b", "labels": {"l": "\u0000"}`, "container.labels.l contains a NUL character"},
		{"label key", `"kind": "container", "image": "b", "labels": {"l\u0000": "v"}`, "container.labels contains a NUL character"},
		{"image", `"kind": "container", "image": "busy\u0000box"`, "container.image contains a NUL character"},
		{"availability zone", `"kind": "container", "image": "b", "availability_zone": "az\u0000"`, "availability_zone contains a NUL character"},
		{"restart policy", `"kind": "container", "image": "b", "restart_policy": {"name": "no\u0000"}`, "workloads[1]"},
		{"flavor", `"kind": "vm", "flavor": "m1\u0000"`, "spec.flavor contains a NUL character"},
		// the schema's patterns already refuse these
		{"environment key", `"kind": "container", "image": "b", "environment": {"K\u0000": "v"}`, "workloads[1].environment"},
		{"name", `"kind": "container", "image": "b", "name": "n\u0000"`, "workloads[1].name"},
		{"hostname", `"kind": "container", "image": "b", "hostname": "h\u0000"`, "workloads[1].hostname"},
		{"required trait", `"kind": "container", "image": "b", "required_traits": ["CUSTOM_\u0000"]`, "workloads[1]"},
		{"group id", `"kind": "vm", "group": {"id": "g\u0000", "policy": "affinity"}`, "workloads[1]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, h, "POST", "/v1/workloads", aliceToken, `{"workloads": [`+ok+`, {`+base+tc.entry+`}]}`)
			if r.status != http.StatusBadRequest {
				t.Fatalf("got %d %s, want 400", r.status, r.raw)
			}
			if d := errorDetail(t, r); !strings.Contains(d, tc.want) || !strings.Contains(d, "workloads[1]") {
				t.Fatalf("detail %q does not say %q", d, tc.want)
			}
		})
	}
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM bridge_workloads`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d workloads recorded (%v): a refused request must create none", n, err)
	}
}
