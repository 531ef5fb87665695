package bridge_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/unisched/unisched/bridge"
	"github.com/unisched/unisched/bridge/agentproto"
	"github.com/unisched/unisched/bridge/bridgetest"
	"github.com/unisched/unisched/bridge/scheduler"
)

// PostgreSQL stores a NUL character in neither text nor jsonb: every
// string of a create is refused with ErrInvalid naming it, and nothing is
// written.
func TestCreateRefusesNUL(t *testing.T) {
	f := setup(t)
	f.register(bridgetest.TwoCells("h1"))
	const nul = "a\x00b"
	for _, tc := range []struct {
		name  string
		mod   func(*bridge.CreateRequest)
		field string
	}{
		{"name", func(r *bridge.CreateRequest) { r.Name = nul }, "name"},
		{"project", func(r *bridge.CreateRequest) { r.ProjectID = nul }, "project_id"},
		{"user", func(r *bridge.CreateRequest) { r.UserID = nul }, "user_id"},
		{"request id", func(r *bridge.CreateRequest) { r.RequestID = nul }, "request_id"},
		{"required trait", func(r *bridge.CreateRequest) { r.RequiredTraits = []string{"CUSTOM_A", nul} }, "required_traits"},
		{"forbidden trait", func(r *bridge.CreateRequest) { r.ForbiddenTraits = []string{nul} }, "forbidden_traits"},
		{"member of", func(r *bridge.CreateRequest) { r.MemberOf = [][]string{{nul}} }, "member_of"},
		{"availability zone", func(r *bridge.CreateRequest) { r.AvailabilityZone = nul }, "availability_zone"},
		{"group id", func(r *bridge.CreateRequest) {
			r.Group = &scheduler.Group{ID: nul, Policy: scheduler.AntiAffinity}
		}, "group.id"},
		{"host", func(r *bridge.CreateRequest) { r.Host = nul }, "host"},
		{"image", func(r *bridge.CreateRequest) { r.Container.Image = nul }, "container.image"},
		{"command", func(r *bridge.CreateRequest) { r.Container.Command = []string{"sh", nul} }, "container.command"},
		{"entrypoint", func(r *bridge.CreateRequest) { r.Container.Entrypoint = []string{nul} }, "container.entrypoint"},
		{"env key", func(r *bridge.CreateRequest) { r.Container.Env = map[string]string{nul: "v"} }, "container.environment"},
		{"env value", func(r *bridge.CreateRequest) { r.Container.Env = map[string]string{"K": nul} }, "container.environment.K"},
		{"label key", func(r *bridge.CreateRequest) { r.Container.Labels = map[string]string{nul: "v"} }, "container.labels"},
		{"label value", func(r *bridge.CreateRequest) { r.Container.Labels = map[string]string{"L": nul} }, "container.labels.L"},
		{"workdir", func(r *bridge.CreateRequest) { r.Container.Workdir = nul }, "container.workdir"},
		{"hostname", func(r *bridge.CreateRequest) { r.Container.Hostname = nul }, "container.hostname"},
		{"restart policy", func(r *bridge.CreateRequest) { r.Container.RestartPolicy.Name = nul }, "container.restart_policy.name"},
		{"spec value", func(r *bridge.CreateRequest) { r.Spec = json.RawMessage(`{"a":{"b":["x","y\u0000"]}}`) }, "spec.a.b.1"},
		{"spec key", func(r *bridge.CreateRequest) { r.Spec = json.RawMessage(`{"a":{"k\u0000":1}}`) }, "spec.a"},
		{"spec top", func(r *bridge.CreateRequest) { r.Spec = json.RawMessage(`"\u0000"`) }, "spec"},
		{"spec lone surrogate", func(r *bridge.CreateRequest) { r.Spec = json.RawMessage(`{"a":"\ud800x"}`) }, "spec"},
		{"spec low surrogate", func(r *bridge.CreateRequest) { r.Spec = json.RawMessage(`{"a":"\uDC00"}`) }, "spec"},
		{"invalid utf-8", func(r *bridge.CreateRequest) { r.Name = "a\xffb" }, "name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := shared(1, 128)
			tc.mod(&req)
			_, err := f.c.Create(f.ctx, req)
			var ne *bridge.NULError
			if !errors.Is(err, bridge.ErrInvalid) || !errors.As(err, &ne) || ne.Field != tc.field {
				t.Fatalf("got %v (%#v), want a NULError for %s", err, ne, tc.field)
			}
			if strings.ContainsRune(err.Error(), 0) {
				t.Fatalf("the message %q holds the NUL", err)
			}
		})
	}
	if n := f.scalar(`SELECT count(*) FROM bridge_workloads`); n != 0 {
		t.Fatalf("%d workloads recorded for refused requests", n)
	}
	if n := f.scalar(`SELECT count(*) FROM bridge_outbox`); n != 0 {
		t.Fatalf("%d outbox events for refused requests", n)
	}
	if n := f.scalar(`SELECT count(*) FROM allocations`); n != 0 {
		t.Fatalf("%d allocations for refused requests", n)
	}

	// escapes jsonb takes are no refusal: a surrogate pair, an escaped
	// backslash before u0000
	req := shared(1, 128)
	req.Spec = json.RawMessage(`{"a":"\ud83d\ude00","b":"\\u0000","c":"\u00e9"}`)
	if _, err := f.c.Create(f.ctx, req); err != nil {
		t.Fatalf("valid escapes: %v", err)
	}
}

func TestRenameActionReportRegisterRefuseNUL(t *testing.T) {
	f := setup(t)
	f.register(bridgetest.TwoCells("h1"))
	w, err := f.c.Create(f.ctx, shared(1, 128))
	if err != nil {
		t.Fatal(err)
	}
	events := len(f.events(w.ID))
	var ne *bridge.NULError
	if _, err := f.c.Rename(f.ctx, w.ID, "x\x00"); !errors.As(err, &ne) || !errors.Is(err, bridge.ErrInvalid) || ne.Field != "name" {
		t.Fatalf("rename: %v", err)
	}
	if _, err := f.c.Action(f.ctx, w.ID, agentproto.ActionKill, bridge.ActionArgs{Signal: "SIG\x00KILL"}); !errors.As(err, &ne) || ne.Field != "signal" {
		t.Fatalf("action: %v", err)
	}
	got, err := f.c.Get(f.ctx, w.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "s" || !got.Container.Running || len(f.events(w.ID)) != events {
		t.Fatalf("a refused rename/action changed the workload: %+v, %d events", got.Workload, len(f.events(w.ID)))
	}
	if err := f.c.Report(f.ctx, "h1", agentproto.Report{WorkloadID: w.ID, Status: agentproto.StatusRunning, ContainerID: "c\x00"}); !errors.As(err, &ne) || ne.Field != "container_id" {
		t.Fatalf("report container id: %v", err)
	}
	if err := f.c.Report(f.ctx, "h\x001", agentproto.Report{WorkloadID: w.ID, Status: agentproto.StatusRunning}); !errors.As(err, &ne) || ne.Field != "host" {
		t.Fatalf("report host: %v", err)
	}
	// a reason from Docker is kept readable, not refused
	if err := f.c.Report(f.ctx, "h1", agentproto.Report{WorkloadID: w.ID, Status: agentproto.StatusError, Reason: "bad\x00byte \xff"}); err != nil {
		t.Fatalf("report reason: %v", err)
	}
	if got, err = f.c.Get(f.ctx, w.ID); err != nil || got.Runtime.Reason != "bad\uFFFDbyte \uFFFD" {
		t.Fatalf("reason %q, %v", got.Runtime.Reason, err)
	}
	for _, field := range []string{"host", "agent_url", "os", "cells.cpus"} {
		reg := bridgetest.TwoCells("h2")
		switch field {
		case "host":
			reg.Host = "h\x002"
		case "agent_url":
			reg.AgentURL = "http://x/\x00"
		case "os":
			reg.OS = "\x00"
		case "cells.cpus":
			reg.Cells[0].CPUs = "0-3\x00"
		}
		if _, err := f.c.RegisterHost(f.ctx, reg); !errors.As(err, &ne) || ne.Field != field {
			t.Fatalf("register with a NUL in %s: %v", field, err)
		}
	}
	if n := f.scalar(`SELECT count(*) FROM bridge_hosts`); n != 1 {
		t.Fatalf("%d hosts, want only h1", n)
	}
	// a filter holding a NUL matches nothing rather than failing the query
	if ws, err := f.c.List(f.ctx, bridge.ListFilter{Host: "h\x00"}); err != nil || len(ws) != 0 {
		t.Fatalf("list: %v %v", ws, err)
	}
}
