package agent

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/unisched/unisched/bridge/agentproto"
)

func TestJournalFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "applied.journal")
	j, pending, err := openJournal(path)
	if err != nil || len(pending) != 0 {
		t.Fatalf("new journal: %v, %d pending", err, len(pending))
	}
	var seqs []int64
	for id := int64(1); id <= 4; id++ {
		seq, err := j.Add(&agentproto.Event{ID: id, Type: agentproto.EventHostCPUs, SharedCPUs: "0"})
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, seq)
	}
	if err := j.Done(seqs[1]); err != nil {
		t.Fatal(err)
	}
	j.Close()
	// a crash in the middle of writing an entry that was never answered
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"seq":9,"event":{"id":9,"ty`)
	f.Close()

	j, pending, err = openJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, q := range pending {
		ids = append(ids, q.ev.ID)
	}
	if !slices.Equal(ids, []int64{1, 3, 4}) || pending[2].ev.SharedCPUs != "0" {
		t.Fatalf("pending after a restart: %v", ids)
	}
	// new entries follow the replayed ones
	seq, err := j.Add(&agentproto.Event{ID: 5, Type: agentproto.EventHostCPUs})
	if err != nil || seq <= pending[2].seq {
		t.Fatalf("seq %d after %d: %v", seq, pending[2].seq, err)
	}
	// the file is trimmed as entries are done
	for _, q := range pending {
		j.Done(q.seq)
	}
	for i := range 1000 {
		s, err := j.Add(&agentproto.Event{ID: int64(100 + i), Type: agentproto.EventHostCPUs})
		if err != nil {
			t.Fatal(err)
		}
		if err := j.Done(s); err != nil {
			t.Fatal(err)
		}
	}
	if j.Len() != 1 {
		t.Fatalf("%d pending, want 1", j.Len())
	}
	j.Close()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "\n"); n > 2*1+256+1 {
		t.Fatalf("journal of one pending event has %d lines: not compacted", n)
	}
	_, pending, err = openJournal(path)
	if err != nil || len(pending) != 1 || pending[0].ev.ID != 5 {
		t.Fatalf("after compaction: %v %+v", err, pending)
	}
}

// eventReports are the ids of the events answered by reports about wid,
// in the order they came.
func eventReports(f *fakeServe, wid string) []int64 {
	var out []int64
	for _, r := range f.reportsOf(wid) {
		if r.EventID != 0 {
			out = append(out, r.EventID)
		}
	}
	return out
}

func waitEventReports(t *testing.T, f *fakeServe, wid string, want []int64) {
	t.Helper()
	for i := 0; i < 1200 && len(eventReports(f, wid)) < len(want); i++ {
		time.Sleep(25 * time.Millisecond)
	}
	if got := eventReports(f, wid); !slices.Equal(got, want) {
		t.Fatalf("workload %s: events reported %v, want %v (in that order); reports %+v", wid, got, want, f.reportsOf(wid))
	}
}

// TestAnswerBeforeDockerWork: the agent answers an event once it holds it
// (202), while Docker is still creating the container; a redelivery while
// it applies is a no-op, and a later event of the workload waits for the
// create.
func TestAnswerBeforeDockerWork(t *testing.T) {
	f := newFakeServe(t)
	fd := newFaultyDocker(t)
	ta := startAgent(t, f, func(c *Config) { c.DockerHost = "unix://" + fd.path })
	hold := make(chan struct{})
	released := false
	release := func() {
		if !released {
			released = true
			close(hold)
		}
	}
	defer release()
	fd.mu.Lock()
	fd.hold = hold
	fd.mu.Unlock()
	_, creates0 := fd.counts()

	c := newContainer("shared", true)
	id := eventID()
	began := time.Now()
	ta.event(t, agentproto.Event{ID: id, Type: agentproto.EventCreate, Container: c}, 202)
	took := time.Since(began)
	for i := 0; i < 400; i++ {
		if _, n := fd.counts(); n > creates0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, n := fd.counts(); n != creates0+1 {
		t.Fatalf("%d creates reached Docker, want 1 (held there)", n-creates0)
	}
	t.Logf("answered in %s while Docker's create is held", took.Round(time.Microsecond))
	if len(f.reportsOf(c.WorkloadID)) != 0 || ta.applied.Has(id) {
		t.Fatal("the event counts as applied while Docker still creates its container")
	}
	// the redelivery of the event being applied: answered, dropped
	code, body := ta.post(t, "/v1/events", agentproto.Event{ID: id, Host: ta.cfg.Host, Type: agentproto.EventCreate, Container: c})
	var ans struct {
		Duplicate bool `json:"duplicate"`
	}
	if json.Unmarshal(body, &ans); code != 202 || !ans.Duplicate {
		t.Fatalf("redelivery during the apply: %d %s", code, body)
	}
	// the workload's next event waits behind the create
	stop := eventID()
	ta.event(t, agentproto.Event{ID: stop, Type: agentproto.EventAction, Container: c, Action: agentproto.ActionStop, Timeout: 1}, 202)
	if pending, _ := ta.EventStats(); pending != 2 {
		t.Fatalf("%d events pending, want 2", pending)
	}
	// another workload is not held up by this one... except in Docker's
	// create, which the proxy holds for everyone: a host event goes through
	host := eventID()
	ta.event(t, agentproto.Event{ID: host, Type: agentproto.EventHostCPUs, SharedCPUs: "0"}, 202)
	ta.waitApplied(t, host)

	release()
	waitEventReports(t, f, c.WorkloadID, []int64{id, stop})
	if _, n := fd.counts(); n != creates0+1 {
		t.Fatalf("%d creates, want 1: the redelivery was applied again", n-creates0)
	}
	rs := f.reportsOf(c.WorkloadID)
	var last agentproto.Report
	for _, r := range rs {
		if r.EventID == stop {
			last = r
		}
	}
	if last.Status != agentproto.StatusStopped {
		t.Fatalf("after the stop: %+v", last)
	}
	ta.waitApplied(t, stop)
	if pending, _ := ta.EventStats(); pending != 0 {
		t.Fatalf("%d events pending after both applied", pending)
	}
}

// TestDockerDownEventsRetriedInOrder: events taken while Docker is away
// are neither lost nor refused: the agent retries them itself and, once
// Docker is back, applies each workload's events in id order.
func TestDockerDownEventsRetriedInOrder(t *testing.T) {
	f := newFakeServe(t)
	p := newDockerProxy(t)
	ta := startAgent(t, f, func(c *Config) { c.DockerHost = "unix://" + p.path })
	w1, w2 := newContainer("shared", true), newContainer("shared", true)
	f.setDesired(agentproto.Desired{SharedCPUs: "0", Containers: []agentproto.Container{*w1, *w2}})
	p.down()
	ids := []int64{eventID(), eventID(), eventID(), eventID()}
	ta.event(t, agentproto.Event{ID: ids[0], Type: agentproto.EventCreate, Container: w1}, 202)
	ta.event(t, agentproto.Event{ID: ids[1], Type: agentproto.EventCreate, Container: w2}, 202)
	ta.event(t, agentproto.Event{ID: ids[2], Type: agentproto.EventAction, Container: w1, Action: agentproto.ActionStop, Timeout: 1}, 202)
	ta.event(t, agentproto.Event{ID: ids[3], Type: agentproto.EventAction, Container: w1, Action: agentproto.ActionStart}, 202)
	for i := 0; i < 400; i++ {
		if _, r := ta.EventStats(); r >= 4 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if pending, retries := ta.EventStats(); pending != 4 || retries < 4 {
		t.Fatalf("with Docker away: %d pending, %d retries; want 4 pending, retried", pending, retries)
	}
	p.up(t)
	waitEventReports(t, f, w1.WorkloadID, []int64{ids[0], ids[2], ids[3]})
	waitEventReports(t, f, w2.WorkloadID, []int64{ids[1]})
	for _, id := range ids {
		ta.waitApplied(t, id)
	}
	for _, w := range []*agentproto.Container{w1, w2} {
		if !ta.inspect(t, w.WorkloadID).State.Running {
			t.Errorf("%s does not run", w.WorkloadID)
		}
		for _, r := range f.reportsOf(w.WorkloadID) {
			if r.Status == agentproto.StatusError {
				t.Errorf("reported in error: %+v", r)
			}
		}
	}
}

// TestJournalReplayedAfterRestart: events taken by an agent that stops
// before it could apply them (Docker away) are applied by the next agent
// process from its journal, in order, before a new event of the same
// workload.
func TestJournalReplayedAfterRestart(t *testing.T) {
	f := newFakeServe(t)
	p := newDockerProxy(t)
	host := "test-" + uuid.NewString()[:8]
	state := filepath.Join(t.TempDir(), "applied")
	mod := func(c *Config) { c.Host, c.StateFile, c.DockerHost = host, state, "unix://"+p.path }
	ta := startAgent(t, f, mod)
	w := newContainer("shared", false)
	p.down()
	ids := []int64{eventID(), eventID(), eventID()}
	ta.event(t, agentproto.Event{ID: ids[0], Type: agentproto.EventCreate, Container: w}, 202)
	ta.event(t, agentproto.Event{ID: ids[1], Type: agentproto.EventAction, Container: w, Action: agentproto.ActionStart}, 202)
	ta.event(t, agentproto.Event{ID: ids[2], Type: agentproto.EventAction, Container: w, Action: agentproto.ActionStop, Timeout: 1}, 202)
	ta.stop()
	if got := eventReports(f, w.WorkloadID); len(got) != 0 {
		t.Fatalf("events reported before the restart: %v", got)
	}

	p.up(t)
	f.setDesired(agentproto.Desired{SharedCPUs: "0", Containers: []agentproto.Container{*w}})
	next := newAgent(t, f, mod)
	if pending, _ := next.EventStats(); pending != 3 {
		t.Fatalf("the restarted agent holds %d events, want 3", pending)
	}
	// a new event of the workload, taken before the agent runs, comes
	// after the replayed ones
	last := eventID()
	b, _ := json.Marshal(agentproto.Event{ID: last, Host: host, Type: agentproto.EventAction, Container: w, Action: agentproto.ActionStart})
	rec := httptest.NewRecorder()
	next.Handler().ServeHTTP(rec, httptest.NewRequestWithContext(context.Background(), http.MethodPost, "/v1/events", strings.NewReader(string(b))))
	if rec.Code != 202 {
		t.Fatalf("new event: %d %s", rec.Code, rec.Body)
	}
	// and a redelivery of a replayed one is a no-op
	b, _ = json.Marshal(agentproto.Event{ID: ids[1], Host: host, Type: agentproto.EventAction, Container: w, Action: agentproto.ActionStart})
	rec = httptest.NewRecorder()
	next.Handler().ServeHTTP(rec, httptest.NewRequestWithContext(context.Background(), http.MethodPost, "/v1/events", strings.NewReader(string(b))))
	if rec.Code != 202 || !strings.Contains(rec.Body.String(), `"duplicate":true`) {
		t.Fatalf("redelivery of a journaled event: %d %s", rec.Code, rec.Body)
	}
	tb := serveAgent(t, f, next)
	waitEventReports(t, f, w.WorkloadID, append(ids, last))
	want := []string{agentproto.StatusCreated, agentproto.StatusRunning, agentproto.StatusStopped, agentproto.StatusRunning}
	var got []string
	for _, r := range f.reportsOf(w.WorkloadID) {
		if r.EventID != 0 {
			got = append(got, r.Status)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("statuses reported %v, want %v", got, want)
	}
	tb.waitApplied(t, last)
	if pending, _ := tb.EventStats(); pending != 0 {
		t.Fatalf("%d events pending after the replay", pending)
	}
	tb.stop()
	j, pending, err := openJournal(state + ".journal")
	if err != nil || len(pending) != 0 {
		t.Fatalf("journal after the replay: %v, %d pending", err, len(pending))
	}
	j.Close()
}
