package bridge_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/unisched/unisched/bridge"
	"github.com/unisched/unisched/bridge/agentproto"
	"github.com/unisched/unisched/bridge/bridgetest"
	"github.com/unisched/unisched/bridge/outbox"
)

// notifications are the container notifications written for a workload,
// oldest first.
func (f *fixture) notifications(id string) []bridge.Notification {
	f.t.Helper()
	rows, err := outbox.ListKey(f.ctx, f.pool, "notify:"+id)
	if err != nil {
		f.t.Fatal(err)
	}
	var out []bridge.Notification
	for _, r := range rows {
		var n bridge.Notification
		if err := json.Unmarshal(r.Payload, &n); err != nil {
			f.t.Fatal(err)
		}
		if r.Topic != bridge.NotificationTopicPrefix+n.EventType {
			f.t.Errorf("event %d: topic %q for event type %q", r.ID, r.Topic, n.EventType)
		}
		out = append(out, n)
	}
	return out
}

func eventTypes(ns []bridge.Notification) string {
	var s []string
	for _, n := range ns {
		s = append(s, n.EventType+"/"+n.Payload.Data.Status)
	}
	return strings.Join(s, " ")
}

// A container's life writes its notifications in the transactions of the
// changes: create.start at the create, create.end at the first report,
// the action's start and end (the report answering its event), delete
// start and end; a refused create ends in create.error.
func TestContainerNotifications(t *testing.T) {
	_, pool := bridgetest.Coordinator(t)
	// The same database, a coordinator that publishes.
	c := bridge.New(pool, bridgetest.Engine(t), bridge.Options{Notifications: true})
	f := &fixture{t: t, ctx: t.Context(), pool: pool, c: c}
	f.register(bridgetest.TwoCells("h1"))

	req := shared(1, 256)
	req.Name = "web"
	w, err := c.Create(f.ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	id := w.ID
	if got := eventTypes(f.notifications(id)); got != "container.create.start/Creating" {
		t.Fatalf("after create: %s", got)
	}
	now := time.Now()
	report := func(status string, eventID int64) {
		t.Helper()
		now = now.Add(time.Millisecond)
		if err := c.Report(f.ctx, "h1", agentproto.Report{WorkloadID: id, EventID: eventID, Status: status, ObservedAt: now}); err != nil {
			t.Fatal(err)
		}
	}
	report(agentproto.StatusRunning, 0)
	report(agentproto.StatusRunning, 0) // the same state again: nothing more
	if _, err := c.Action(f.ctx, id, agentproto.ActionStop, bridge.ActionArgs{}); err != nil {
		t.Fatal(err)
	}
	evs := f.events(id)
	stop := evs[len(evs)-1]
	if stop.Type != agentproto.EventAction || stop.Action != agentproto.ActionStop {
		t.Fatalf("last agent event %+v", stop)
	}
	report(agentproto.StatusStopped, stop.ID)
	if err := c.Delete(f.ctx, id, false, false); err != nil {
		t.Fatal(err)
	}
	report(agentproto.StatusDeleted, 0)

	ns := f.notifications(id)
	want := "container.create.start/Creating container.create.end/Running container.stop.start/Running " +
		"container.stop.end/Stopped container.delete.start/Deleting container.delete.end/Deleted"
	if got := eventTypes(ns); got != want {
		t.Errorf("notifications:\n got %s\nwant %s", got, want)
	}
	ids := map[string]bool{}
	for _, n := range ns {
		d := n.Payload.Data
		if d.UUID != id || d.Name != "web" || d.ProjectID != "p1" || d.UserID != "u1" || d.Image != "busybox" ||
			d.CPU != 1 || d.Memory != "256" || n.Priority != "INFO" || n.Payload.Name != "ContainerPayload" {
			t.Errorf("%s: %+v", n.EventType, n)
		}
		if _, err := time.Parse("2006-01-02 15:04:05.000000", n.Timestamp); err != nil {
			t.Errorf("%s: timestamp %q: %v", n.EventType, n.Timestamp, err)
		}
		if ids[n.MessageID] || n.MessageID == "" {
			t.Errorf("%s: message id %q empty or repeated", n.EventType, n.MessageID)
		}
		ids[n.MessageID] = true
		if n.EventType != "container.create.start" && (d.Host == nil || *d.Host != "h1") {
			t.Errorf("%s: host %v", n.EventType, d.Host)
		}
	}

	// No host fits: create.start, then create.error with the reason.
	big := dedicated(64, 256)
	w, err = c.Create(f.ctx, big)
	if !errors.Is(err, bridge.ErrNoValidHost) {
		t.Fatalf("a create no host fits: %v", err)
	}
	ns = f.notifications(w.ID)
	if got := eventTypes(ns); got != "container.create.start/Creating container.create.error/Error" {
		t.Fatalf("refused create: %s", got)
	}
	if r := ns[1].Payload.Data.StatusReason; ns[1].Priority != "ERROR" || r == nil || !strings.HasPrefix(*r, bridge.NoHostsReason) {
		t.Errorf("create.error: priority %s, reason %v", ns[1].Priority, r)
	}
}

// A coordinator that does not publish writes none.
func TestNoNotificationsByDefault(t *testing.T) {
	f := setup(t)
	f.register(bridgetest.TwoCells("h1"))
	w, err := f.c.Create(f.ctx, shared(1, 256))
	if err != nil {
		t.Fatal(err)
	}
	if ns := f.notifications(w.ID); len(ns) != 0 {
		t.Errorf("notifications written: %s", eventTypes(ns))
	}
}

// The notify lag runs from an event's INSERT: a report that waits for a
// lock (its delete releasing the consumer's allocations while a Placement
// write holds the consumer) writes its notification after the wait, not
// before it.
func TestReportWritesItsNotificationLast(t *testing.T) {
	_, pool := bridgetest.Coordinator(t)
	c := bridge.New(pool, bridgetest.Engine(t), bridge.Options{Notifications: true})
	f := &fixture{t: t, ctx: t.Context(), pool: pool, c: c}
	f.register(bridgetest.TwoCells("h1"))
	w, err := c.Create(f.ctx, shared(1, 256))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := c.Report(f.ctx, "h1", agentproto.Report{WorkloadID: w.ID, Status: agentproto.StatusRunning, ObservedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(f.ctx, w.ID, false, false); err != nil {
		t.Fatal(err)
	}

	// Another transaction holds the consumer, as a Placement write does.
	holder, err := pool.Begin(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback(f.ctx)
	if _, err := holder.Exec(f.ctx, `SELECT 1 FROM consumers WHERE uuid = $1 FOR UPDATE`, w.ID); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- c.Report(f.ctx, "h1", agentproto.Report{WorkloadID: w.ID, Status: agentproto.StatusDeleted, ObservedAt: now.Add(time.Second)})
	}()
	select {
	case err := <-done:
		t.Fatalf("the report did not wait for the consumer's lock: %v", err)
	case <-time.After(time.Second):
	}
	released := time.Now()
	if err := holder.Commit(f.ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	rows, err := outbox.ListKey(f.ctx, pool, "notify:"+w.ID)
	if err != nil {
		t.Fatal(err)
	}
	last := rows[len(rows)-1]
	if last.Topic != bridge.NotificationTopicPrefix+"container.delete.end" {
		t.Fatalf("last notification %s", last.Topic)
	}
	// Written first, the INSERT would come up to a second before the release.
	if early := released.Sub(last.CreatedAt); early > 300*time.Millisecond {
		t.Errorf("delete.end written %s before the lock it waited for was released", early)
	}
}
