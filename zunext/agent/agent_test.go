package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"github.com/google/uuid"

	"github.com/unisched/unisched/bridge/agentproto"
	"github.com/unisched/unisched/internal/dockertest"
	"github.com/unisched/unisched/zunext/docker"
)

const testImage = "unisched/busybox:latest"

func TestMain(m *testing.M) { os.Exit(dockertest.Main(m)) }

// testDockerHost is the test binary's dockerd (internal/dockertest: a
// private one, or UNISCHED_TEST_DOCKER_HOST), with the busybox image.
func testDockerHost(t *testing.T) string {
	t.Helper()
	dockertest.Image(t)
	return dockertest.Host(t)
}

// fakeServe is a stand-in for serve's agent routes (PUT /v1/agents/{host},
// POST .../reports, GET .../desired), recording what the agent sends. The
// real serve is exercised end to end by the scenarios suite.
type fakeServe struct {
	t   *testing.T
	srv *httptest.Server

	mu            sync.Mutex
	registrations []agentproto.Registration
	reports       []agentproto.Report
	desired       agentproto.Desired
	desiredCalls  int
	failRegister  int // answer 503 to this many registrations
	failReports   bool
	desired404    int // answer 404 (host unknown) to this many desired calls
}

func newFakeServe(t *testing.T) *fakeServe {
	f := &fakeServe{t: t}
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /v1/agents/{host}", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Auth-Token") != "admin:admin" {
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
		var reg agentproto.Registration
		if err := json.NewDecoder(r.Body).Decode(&reg); err != nil || reg.Host != r.PathValue("host") {
			http.Error(w, "bad registration", http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.failRegister > 0 {
			f.failRegister--
			http.Error(w, "not yet", http.StatusServiceUnavailable)
			return
		}
		f.registrations = append(f.registrations, reg)
		json.NewEncoder(w).Encode(agentproto.RegistrationResult{ProviderUUID: uuid.NewString(), OwnsInventory: true})
	})
	mux.HandleFunc("POST /v1/agents/{host}/reports", func(w http.ResponseWriter, r *http.Request) {
		var rep agentproto.Report
		if err := json.NewDecoder(r.Body).Decode(&rep); err != nil || rep.WorkloadID == "" || rep.Status == "" {
			http.Error(w, "bad report", http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.failReports {
			http.Error(w, "database down", http.StatusServiceUnavailable)
			return
		}
		f.reports = append(f.reports, rep)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /v1/agents/{host}/desired", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.desiredCalls++
		if f.desired404 > 0 {
			f.desired404--
			http.Error(w, "no such host", http.StatusNotFound)
			return
		}
		d := f.desired
		d.Host = r.PathValue("host")
		if d.Containers == nil {
			d.Containers = []agentproto.Container{}
		}
		json.NewEncoder(w).Encode(d)
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeServe) setDesired(d agentproto.Desired) {
	f.mu.Lock()
	f.desired = d
	f.mu.Unlock()
}

// reportsOf returns the reports about one workload so far.
func (f *fakeServe) reportsOf(wid string) []agentproto.Report {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []agentproto.Report
	for _, r := range f.reports {
		if r.WorkloadID == wid {
			out = append(out, r)
		}
	}
	return out
}

// waitReport waits for a report matching ok.
func (f *fakeServe) waitReport(t *testing.T, wid string, ok func(agentproto.Report) bool) agentproto.Report {
	t.Helper()
	for i := 0; i < 200; i++ {
		for _, r := range f.reportsOf(wid) {
			if ok(r) {
				return r
			}
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("no matching report for %s; got %+v", wid, f.reportsOf(wid))
	return agentproto.Report{}
}

type testAgent struct {
	*Agent
	url   string
	serve *fakeServe
	cli   *client.Client
	// stop ends the agent (as its process would end) and closes it.
	stop func()
}

// twoCells is the configured topology of the tests: on this 2-core
// machine cell 0 is cpu 0 and cell 1 cpu 1; cpu 1 is dedicated.
func twoCells() []agentproto.Cell {
	return []agentproto.Cell{{ID: 0, CPUs: "0", MemoryMB: 1024}, {ID: 1, CPUs: "1", MemoryMB: 1024}}
}

func startAgent(t *testing.T, f *fakeServe, mod func(*Config)) *testAgent {
	t.Helper()
	return serveAgent(t, f, newAgent(t, f, mod))
}

// newAgent builds an agent on the test dockerd, not running yet.
func newAgent(t *testing.T, f *fakeServe, mod func(*Config)) *Agent {
	t.Helper()
	cfg := Config{
		Host:              "test-" + uuid.NewString()[:8],
		ServeURL:          f.srv.URL,
		DockerHost:        testDockerHost(t),
		Cells:             twoCells(),
		DedicatedCPUs:     "1",
		ClampCpusets:      true,
		DiskGB:            10,
		RetryInterval:     20 * time.Millisecond,
		HeartbeatInterval: time.Hour,
		StateFile:         filepath.Join(t.TempDir(), "applied"),
	}
	if mod != nil {
		mod(&cfg)
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// serveAgent runs a until the test ends (or its stop) and waits for its
// first convergence.
func serveAgent(t *testing.T, f *fakeServe, a *Agent) *testAgent {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx, ln) }()
	cli, err := client.NewClientWithOpts(client.WithHost(testDockerHost(t)), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			<-done
			a.Close()
		})
	}
	t.Cleanup(func() {
		stop()
		removeHost(cli, a.cfg.Host)
		cli.Close()
	})
	select {
	case <-a.Converged():
	case <-time.After(30 * time.Second):
		t.Fatal("agent did not converge")
	}
	return &testAgent{Agent: a, url: "http://" + ln.Addr().String(), serve: f, cli: cli, stop: stop}
}

// removeHost removes every container labelled with host.
func removeHost(cli *client.Client, host string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := docker.New(docker.Options{Host: host, DockerHost: cli.DaemonHost()})
	if err != nil {
		return
	}
	defer d.Close()
	obs, _ := d.List(ctx)
	for _, o := range obs {
		_ = d.Remove(ctx, o.WorkloadID, true)
	}
}

func (ta *testAgent) post(t *testing.T, path string, body any) (int, []byte) {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := http.Post(ta.url+path, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

func (ta *testAgent) get(t *testing.T, path string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(ta.url + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

func (ta *testAgent) event(t *testing.T, ev agentproto.Event, want int) {
	t.Helper()
	if ev.Host == "" {
		ev.Host = ta.cfg.Host
	}
	code, body := ta.post(t, "/v1/events", ev)
	if code != want {
		t.Fatalf("event %d %s %s: %d %s, want %d", ev.ID, ev.Type, ev.Action, code, body, want)
	}
}

// waitApplied waits until the agent has applied event id (the answer to
// the POST only says it holds the event).
func (ta *testAgent) waitApplied(t *testing.T, id int64) {
	t.Helper()
	for i := 0; i < 1200; i++ {
		if ta.applied.Has(id) {
			return
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("event %d not applied after 30s", id)
}

func (ta *testAgent) inspect(t *testing.T, wid string) container.InspectResponse {
	t.Helper()
	info, err := ta.cli.ContainerInspect(context.Background(), docker.Name(wid))
	if err != nil {
		t.Fatal(err)
	}
	return info
}

var nextID int64 = 1000

func eventID() int64 { nextID++; return nextID }

func newContainer(policy string, running bool) *agentproto.Container {
	c := &agentproto.Container{
		WorkloadID: uuid.NewString(), Name: "c", ProjectID: "proj", Image: testImage,
		Command: []string{"sh", "-c", "trap 'exit 0' TERM; echo started; sleep 600 & wait"}, CPUPolicy: policy, CPU: 1, MemoryMB: 32, Running: running,
	}
	if policy == "dedicated" {
		c.CpusetCpus, c.CpusetMems = "1", "1"
	} else {
		c.CPU, c.CpusetCpus = 0.5, "0"
	}
	return c
}

func isStatus(eventID int64, status string) func(agentproto.Report) bool {
	return func(r agentproto.Report) bool { return r.EventID == eventID && r.Status == status }
}

func TestRegistrationRetriesUntilServeAnswers(t *testing.T) {
	f := newFakeServe(t)
	f.failRegister = 3
	ta := startAgent(t, f, func(c *Config) { c.AvailabilityZone = "az1"; c.ReservedMemoryMB = 64 })
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.registrations) != 1 || f.failRegister != 0 {
		t.Fatalf("registrations %d, refusals left %d", len(f.registrations), f.failRegister)
	}
	reg := f.registrations[0]
	if reg.Host != ta.cfg.Host || reg.AgentURL != ta.url || reg.DedicatedCPUs != "1" || reg.SharedCPUs != "0" ||
		len(reg.Cells) != 2 || reg.Cells[1].CPUs != "1" || reg.Cells[1].MemoryMB != 1024 || reg.DiskGB != 10 ||
		reg.AvailabilityZone != "az1" || reg.ReservedMemoryMB != 64 || reg.OS == "" || reg.KernelVersion == "" || reg.Architecture == "" {
		t.Fatalf("registration %+v", reg)
	}
	if f.desiredCalls != 1 {
		t.Fatalf("desired fetched %d times", f.desiredCalls)
	}
}

// TestUnknownHostReregisters: serve answering /desired with 404 (it lost
// the host) makes the agent register again before converging.
func TestUnknownHostReregisters(t *testing.T) {
	f := newFakeServe(t)
	f.desired404 = 1
	startAgent(t, f, nil)
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.registrations) != 2 || f.desiredCalls != 2 {
		t.Fatalf("registrations %d, desired calls %d", len(f.registrations), f.desiredCalls)
	}
}

func TestEventLifecycle(t *testing.T) {
	f := newFakeServe(t)
	ta := startAgent(t, f, nil)

	// dedicated create, run
	ded := newContainer("dedicated", true)
	id := eventID()
	ta.event(t, agentproto.Event{ID: id, Type: agentproto.EventCreate, Container: ded}, 202)
	r := f.waitReport(t, ded.WorkloadID, isStatus(id, agentproto.StatusRunning))
	if r.ContainerID == "" || r.StartedAt.IsZero() {
		t.Fatalf("report %+v", r)
	}
	info := ta.inspect(t, ded.WorkloadID)
	// cell 1 does not exist on this machine: its memory node is clamped away
	if info.HostConfig.CpusetCpus != "1" || info.HostConfig.CpusetMems != "" || info.HostConfig.Memory != 32<<20 {
		t.Fatalf("dedicated: cpus %q mems %q memory %d", info.HostConfig.CpusetCpus, info.HostConfig.CpusetMems, info.HostConfig.Memory)
	}
	lb := info.Config.Labels
	if lb[agentproto.LabelHost] != ta.cfg.Host || lb[agentproto.LabelWorkload] != ded.WorkloadID || lb[agentproto.LabelProject] != "proj" {
		t.Fatalf("labels %v", lb)
	}

	// the same event again: answered, not applied twice
	answers := func(id int64) (n int) {
		for _, r := range f.reportsOf(ded.WorkloadID) {
			if r.EventID == id {
				n++
			}
		}
		return n
	}
	ta.event(t, agentproto.Event{ID: id, Type: agentproto.EventCreate, Container: ded}, 202)
	if n := answers(id); n != 1 {
		t.Fatalf("a duplicate event was applied again: %d reports answer it", n)
	}
	// a new create event for an existing container converges, no duplicate
	ta.event(t, agentproto.Event{ID: eventID(), Type: agentproto.EventCreate, Container: ded}, 202)

	// shared, created but not run
	sh := newContainer("shared", false)
	id = eventID()
	ta.event(t, agentproto.Event{ID: id, Type: agentproto.EventCreate, Container: sh}, 202)
	f.waitReport(t, sh.WorkloadID, isStatus(id, agentproto.StatusCreated))
	info = ta.inspect(t, sh.WorkloadID)
	if info.HostConfig.CpusetCpus != "0" || info.HostConfig.NanoCPUs != 5e8 || info.HostConfig.CpusetMems != "" {
		t.Fatalf("shared: cpus %q nano %d mems %q", info.HostConfig.CpusetCpus, info.HostConfig.NanoCPUs, info.HostConfig.CpusetMems)
	}

	// actions
	for _, step := range []struct {
		action, status string
	}{
		{agentproto.ActionStart, agentproto.StatusRunning},
		{agentproto.ActionPause, agentproto.StatusPaused},
		{agentproto.ActionUnpause, agentproto.StatusRunning},
		{agentproto.ActionStop, agentproto.StatusStopped},
		{agentproto.ActionReboot, agentproto.StatusRunning},
		{agentproto.ActionKill, agentproto.StatusStopped},
	} {
		id := eventID()
		ta.event(t, agentproto.Event{ID: id, Type: agentproto.EventAction, Container: sh, Action: step.action, Timeout: 1}, 202)
		f.waitReport(t, sh.WorkloadID, isStatus(id, step.status))
	}
	// an action docker refuses (pause a stopped container) is reported, with the reason
	id = eventID()
	ta.event(t, agentproto.Event{ID: id, Type: agentproto.EventAction, Container: sh, Action: agentproto.ActionPause}, 202)
	if r := f.waitReport(t, sh.WorkloadID, isStatus(id, agentproto.StatusStopped)); r.Reason == "" {
		t.Fatalf("refused action reported without reason: %+v", r)
	}

	// update
	up := *sh
	up.CPU, up.MemoryMB = 0.25, 48
	id = eventID()
	ta.event(t, agentproto.Event{ID: id, Type: agentproto.EventUpdate, Container: &up}, 202)
	f.waitReport(t, sh.WorkloadID, func(r agentproto.Report) bool { return r.EventID == id })
	info = ta.inspect(t, sh.WorkloadID)
	if info.HostConfig.NanoCPUs != 2.5e8 || info.HostConfig.Memory != 48<<20 {
		t.Fatalf("after update: nano %d memory %d", info.HostConfig.NanoCPUs, info.HostConfig.Memory)
	}

	// re-pin: shared containers move, dedicated stay
	hostEvent := eventID() + 50 // later than the next few events
	ta.event(t, agentproto.Event{ID: hostEvent, Type: agentproto.EventHostCPUs, SharedCPUs: "0-1"}, 202)
	ta.waitApplied(t, hostEvent)
	if got := ta.inspect(t, sh.WorkloadID).HostConfig.CpusetCpus; got != "0-1" {
		t.Fatalf("shared after re-pin: %q", got)
	}
	if got := ta.inspect(t, ded.WorkloadID).HostConfig.CpusetCpus; got != "1" {
		t.Fatalf("dedicated after re-pin: %q", got)
	}
	// a create older than the re-pin lands on the new pool
	late := newContainer("shared", false)
	lateID := eventID()
	ta.event(t, agentproto.Event{ID: lateID, Type: agentproto.EventCreate, Container: late}, 202)
	ta.waitApplied(t, lateID)
	if got := ta.inspect(t, late.WorkloadID).HostConfig.CpusetCpus; got != "0-1" {
		t.Fatalf("late create: %q", got)
	}

	// delete
	for _, c := range []*agentproto.Container{ded, sh, late} {
		id := eventID()
		ta.event(t, agentproto.Event{ID: id, Type: agentproto.EventDelete, Container: c, Stop: true, Timeout: 1}, 202)
		f.waitReport(t, c.WorkloadID, isStatus(id, agentproto.StatusDeleted))
		if _, err := ta.cli.ContainerInspect(context.Background(), docker.Name(c.WorkloadID)); err == nil {
			t.Fatalf("%s still exists", c.WorkloadID)
		}
	}
	// a late action for a deleted container does not bring it back
	id = eventID()
	ta.event(t, agentproto.Event{ID: id, Type: agentproto.EventAction, Container: sh, Action: agentproto.ActionStart}, 202)
	f.waitReport(t, sh.WorkloadID, isStatus(id, agentproto.StatusDeleted))
	if _, err := ta.cli.ContainerInspect(context.Background(), docker.Name(sh.WorkloadID)); err == nil {
		t.Fatal("a deleted container came back")
	}
}

func TestMissingImageIsReported(t *testing.T) {
	f := newFakeServe(t)
	ta := startAgent(t, f, nil)
	c := newContainer("shared", true)
	c.Image = "unisched/nope:1"
	id := eventID()
	ta.event(t, agentproto.Event{ID: id, Type: agentproto.EventCreate, Container: c}, 202)
	r := f.waitReport(t, c.WorkloadID, isStatus(id, agentproto.StatusError))
	if r.Reason != "image unisched/nope:1 not found" {
		t.Fatalf("reason %q", r.Reason)
	}
}

func TestBadAndUnappliedEvents(t *testing.T) {
	f := newFakeServe(t)
	ta := startAgent(t, f, nil)
	if code, body := ta.post(t, "/v1/events", "{"); code != 400 || !strings.Contains(string(body), `"errors"`) {
		t.Fatalf("malformed: %d %s", code, body)
	}
	ta.event(t, agentproto.Event{ID: eventID(), Type: agentproto.EventCreate}, 400)
	ta.event(t, agentproto.Event{ID: eventID(), Type: agentproto.EventCreate, Host: "elsewhere", Container: newContainer("shared", true)}, 400)

	// an event of a type the agent does not know is answered and ignored
	ta.event(t, agentproto.Event{ID: eventID(), Type: "container.teleport", Container: newContainer("shared", true)}, 202)

	// serve cannot take the report: the event is taken (202) but not done;
	// the agent retries it itself, and once serve is back the outcome
	// arrives, with one container
	c := newContainer("shared", true)
	id := eventID()
	f.mu.Lock()
	f.failReports = true
	f.mu.Unlock()
	ta.event(t, agentproto.Event{ID: id, Type: agentproto.EventCreate, Container: c}, 202)
	for i := 0; i < 400; i++ {
		if _, retries := ta.EventStats(); retries >= 2 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if pending, retries := ta.EventStats(); pending != 1 || retries < 2 || ta.applied.Has(id) {
		t.Fatalf("while serve refuses reports: %d pending, %d retries, applied %v", pending, retries, ta.applied.Has(id))
	}
	// a redelivery meanwhile is a no-op
	ta.event(t, agentproto.Event{ID: id, Type: agentproto.EventCreate, Container: c}, 202)
	f.mu.Lock()
	f.failReports = false
	f.mu.Unlock()
	f.waitReport(t, c.WorkloadID, isStatus(id, agentproto.StatusRunning))
	ta.waitApplied(t, id)
	if pending, _ := ta.EventStats(); pending != 0 {
		t.Fatalf("%d events pending after the outcome", pending)
	}
	list, err := ta.cli.ContainerList(context.Background(), container.ListOptions{All: true})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, ct := range list {
		if ct.Labels[agentproto.LabelWorkload] == c.WorkloadID {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d containers for the workload", n)
	}
}

func TestSyncRoutes(t *testing.T) {
	f := newFakeServe(t)
	ta := startAgent(t, f, nil)
	c := newContainer("shared", true)
	id := eventID()
	ta.event(t, agentproto.Event{ID: id, Type: agentproto.EventCreate, Container: c}, 202)
	f.waitReport(t, c.WorkloadID, isStatus(id, agentproto.StatusRunning))
	base := "/v1/containers/" + c.WorkloadID

	var logs string
	for i := 0; i < 50 && logs != "started\n"; i++ {
		_, b := ta.get(t, base+"/logs?stdout=True&stderr=True")
		logs = string(b)
		time.Sleep(20 * time.Millisecond)
	}
	if logs != "started\n" {
		t.Fatalf("logs %q", logs)
	}
	if code, b := ta.get(t, base+"/logs?timestamps=true&tail=1"); code != 200 || !strings.HasSuffix(string(b), " started\n") {
		t.Fatalf("logs with timestamps: %d %q", code, b)
	}
	if code, _ := ta.get(t, base+"/logs?tail=x"); code != 400 {
		t.Fatalf("bad tail: %d", code)
	}

	code, b := ta.post(t, base+"/execute", agentproto.ExecRequest{Command: []string{"sh", "-c", "echo out; echo err >&2; exit 3"}})
	var res agentproto.ExecResult
	if json.Unmarshal(b, &res); code != 200 || res.ExitCode != 3 || !strings.Contains(res.Output, "out\n") || !strings.Contains(res.Output, "err\n") {
		t.Fatalf("execute: %d %s", code, b)
	}
	if code, _ := ta.post(t, base+"/execute", agentproto.ExecRequest{}); code != 400 {
		t.Fatalf("empty command: %d", code)
	}

	code, b = ta.get(t, base+"/stats")
	var st agentproto.Stats
	if json.Unmarshal(b, &st); code != 200 || st.MemLimit != 32 || !strings.Contains(string(b), `"MEM USAGE(MiB)"`) {
		t.Fatalf("stats: %d %s", code, b)
	}

	code, b = ta.get(t, base+"/top?ps_args=aux")
	var top agentproto.Top
	if json.Unmarshal(b, &top); code != 200 || len(top.Titles) == 0 || len(top.Processes) != 2 {
		t.Fatalf("top: %d %s", code, b)
	}

	// a container this agent does not run: 404 in the errors shape
	for _, p := range []string{"/logs", "/stats", "/top"} {
		code, b := ta.get(t, "/v1/containers/"+uuid.NewString()+p)
		if code != 404 || !strings.Contains(string(b), `"errors"`) {
			t.Fatalf("%s of an unknown container: %d %s", p, code, b)
		}
	}
	// executing in a stopped container is a conflict, not a 500
	id = eventID()
	ta.event(t, agentproto.Event{ID: id, Type: agentproto.EventAction, Container: c, Action: agentproto.ActionStop, Timeout: 1}, 202)
	f.waitReport(t, c.WorkloadID, isStatus(id, agentproto.StatusStopped))
	if code, b := ta.post(t, base+"/execute", agentproto.ExecRequest{Command: []string{"true"}}); code != 409 {
		t.Fatalf("exec in a stopped container: %d %s", code, b)
	}
	if code, _ := ta.get(t, "/v1/health"); code != 200 {
		t.Fatalf("health %d", code)
	}
}

// TestConvergeOnStart: an agent starting over a host whose containers
// drifted from serve's desired state fixes them and reports each.
func TestConvergeOnStart(t *testing.T) {
	f := newFakeServe(t)
	host := "test-" + uuid.NewString()[:8]
	drv, err := docker.New(docker.Options{Host: host, DockerHost: testDockerHost(t), ClampCpusets: true})
	if err != nil {
		t.Fatal(err)
	}
	defer drv.Close()
	ctx := context.Background()

	missing := newContainer("dedicated", true) // desired running, absent
	stopped := newContainer("shared", true)    // desired running, only created
	wrongCPU := newContainer("shared", false)  // desired stopped, running on the wrong cpus
	orphan := newContainer("shared", true)     // not desired: removed
	badImage := newContainer("shared", true)   // desired, image missing
	badImage.Image = "unisched/nope:2"
	for _, c := range []*agentproto.Container{stopped, wrongCPU, orphan} {
		if _, err := drv.Create(ctx, c, ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := drv.Start(ctx, wrongCPU.WorkloadID); err != nil {
		t.Fatal(err)
	}
	// another host's container on the same dockerd is never touched
	other, err := docker.New(docker.Options{Host: host + "-other", DockerHost: testDockerHost(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	foreign := newContainer("shared", true)
	if _, err := other.Create(ctx, foreign, ""); err != nil {
		t.Fatal(err)
	}
	defer other.Remove(ctx, foreign.WorkloadID, true)

	want := *wrongCPU
	want.CpusetCpus = "0-1"
	f.setDesired(agentproto.Desired{SharedCPUs: "0-1", Containers: []agentproto.Container{*missing, *stopped, want, *badImage}})
	ta := startAgent(t, f, func(c *Config) { c.Host = host })

	f.waitReport(t, missing.WorkloadID, func(r agentproto.Report) bool { return r.Status == agentproto.StatusRunning })
	f.waitReport(t, stopped.WorkloadID, func(r agentproto.Report) bool { return r.Status == agentproto.StatusRunning })
	f.waitReport(t, wrongCPU.WorkloadID, func(r agentproto.Report) bool { return r.Status == agentproto.StatusStopped })
	f.waitReport(t, orphan.WorkloadID, func(r agentproto.Report) bool { return r.Status == agentproto.StatusDeleted })
	r := f.waitReport(t, badImage.WorkloadID, func(r agentproto.Report) bool { return r.Status == agentproto.StatusError })
	if r.Reason != "image unisched/nope:2 not found" {
		t.Fatalf("bad image reason %q", r.Reason)
	}
	if got := ta.inspect(t, wrongCPU.WorkloadID).HostConfig.CpusetCpus; got != "0-1" {
		t.Fatalf("cpuset after convergence: %q", got)
	}
	if _, err := drv.Inspect(ctx, orphan.WorkloadID); !errors.Is(err, docker.ErrNotFound) {
		t.Fatalf("orphan: %v", err)
	}
	if _, err := other.Inspect(ctx, foreign.WorkloadID); err != nil {
		t.Fatalf("another host's container: %v", err)
	}
}

// dockerProxy forwards a unix socket to the test dockerd and can be cut,
// so a test sees Docker go away and come back without restarting it.
type dockerProxy struct {
	path, target string
	mu           sync.Mutex
	ln           net.Listener
	conns        map[net.Conn]bool
}

func newDockerProxy(t *testing.T) *dockerProxy {
	target := strings.TrimPrefix(testDockerHost(t), "unix://")
	dir, err := os.MkdirTemp("/tmp", "agp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	p := &dockerProxy{path: filepath.Join(dir, "d.sock"), target: target, conns: map[net.Conn]bool{}}
	p.up(t)
	t.Cleanup(p.down)
	return p
}

func (p *dockerProxy) up(t *testing.T) {
	ln, err := net.Listen("unix", p.path)
	if err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			d, err := net.Dial("unix", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[c], p.conns[d] = true, true
			p.mu.Unlock()
			go func() { io.Copy(d, c); d.Close() }()
			go func() { io.Copy(c, d); c.Close() }()
		}
	}()
}

func (p *dockerProxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	p.conns = map[net.Conn]bool{}
}

// TestDockerReconnectConverges: when Docker goes away and comes back the
// agent fetches the desired state again and converges.
func TestDockerReconnectConverges(t *testing.T) {
	f := newFakeServe(t)
	p := newDockerProxy(t)
	ta := startAgent(t, f, func(c *Config) { c.DockerHost = "unix://" + p.path })
	f.mu.Lock()
	calls := f.desiredCalls
	f.mu.Unlock()

	p.down()
	// while Docker is away, events are taken and wait in the agent
	c := newContainer("shared", true)
	id := eventID()
	ta.event(t, agentproto.Event{ID: id, Type: agentproto.EventCreate, Container: c}, 202)
	f.setDesired(agentproto.Desired{SharedCPUs: "0", Containers: []agentproto.Container{*c}})
	time.Sleep(100 * time.Millisecond)
	p.up(t)

	f.waitReport(t, c.WorkloadID, func(r agentproto.Report) bool { return r.Status == agentproto.StatusRunning })
	f.mu.Lock()
	after := f.desiredCalls
	f.mu.Unlock()
	if after <= calls {
		t.Fatalf("desired fetched %d times before, %d after the reconnect", calls, after)
	}
	// the agent's own retry of the event finds the container converged
	f.waitReport(t, c.WorkloadID, isStatus(id, agentproto.StatusRunning))
	ta.waitApplied(t, id)

	// Docker's own events become reports: a container dying on its own
	if err := ta.cli.ContainerKill(context.Background(), docker.Name(c.WorkloadID), "TERM"); err != nil {
		t.Fatal(err)
	}
	f.waitReport(t, c.WorkloadID, func(r agentproto.Report) bool { return r.EventID == 0 && r.Status == agentproto.StatusStopped })
}

func TestConfigPools(t *testing.T) {
	for _, tc := range []struct {
		ded, shared, wantDed, wantShared, err string
	}{
		{"", "", "", "0-3", ""},
		{"2-3", "", "2-3", "0-1", ""},
		{"", "0", "1-3", "0", ""},
		{"3", "0-1", "3", "0-1", ""},
		{"0-1", "1", "0-1", "1", ""}, // overlapping pools: cpu 1 floats until pinned
		{"7", "", "", "", "in no cell"},
	} {
		c := Config{Host: "h", Cells: []agentproto.Cell{{ID: 0, CPUs: "0,1"}, {ID: 1, CPUs: "2-3"}}, DedicatedCPUs: tc.ded, SharedCPUs: tc.shared}
		err := c.Defaults()
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%+v: error %v, want %q", tc, err, tc.err)
			}
			continue
		}
		if err != nil || c.DedicatedCPUs != tc.wantDed || c.SharedCPUs != tc.wantShared {
			t.Errorf("%+v: got %q/%q, %v", tc, c.DedicatedCPUs, c.SharedCPUs, err)
		}
	}
	if err := (&Config{Host: "h", Cells: []agentproto.Cell{{ID: 0, CPUs: "0-1"}, {ID: 1, CPUs: "1"}}}).Defaults(); err == nil {
		t.Error("a cpu in two cells was accepted")
	}
	if err := (&Config{Host: "bad host"}).Defaults(); err == nil {
		t.Error("a host name with a space was accepted")
	}
}

func TestSysfsCells(t *testing.T) {
	root := t.TempDir()
	write := func(p, s string) {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("node/node0/cpulist", "0-1,4-5\n")
	write("node/node0/meminfo", "Node 0 MemTotal:       2097152 kB\nNode 0 MemFree: 1 kB\n")
	write("node/node1/cpulist", "2-3,6-7\n")
	write("node/node1/meminfo", "Node 1 MemTotal:       1048576 kB\n")
	for cpu, sib := range map[int]string{0: "0,4", 4: "0,4", 1: "1,5", 5: "1,5", 2: "2,6", 6: "2,6", 3: "3,7", 7: "3,7"} {
		write(fmt.Sprintf("cpu/cpu%d/topology/thread_siblings_list", cpu), sib+"\n")
	}
	cells, err := SysfsCells(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(cells) != 2 || cells[0].CPUs != "0-1,4-5" || cells[0].MemoryMB != 2048 || cells[1].MemoryMB != 1024 ||
		strings.Join(cells[0].Siblings, " ") != "0,4 1,5" || strings.Join(cells[1].Siblings, " ") != "2,6 3,7" {
		t.Fatalf("cells %+v", cells)
	}
	// this machine's own topology reads
	if cells, err := SysfsCells("/sys/devices/system"); err != nil || len(cells) == 0 || cells[0].MemoryMB <= 0 {
		t.Fatalf("this machine: %+v, %v", cells, err)
	}
}

func TestAppliedSet(t *testing.T) {
	path := filepath.Join(t.TempDir(), "applied")
	s, err := newAppliedSet(3, path)
	if err != nil {
		t.Fatal(err)
	}
	for id := int64(1); id <= 10; id++ {
		if err := s.Add(id); err != nil {
			t.Fatal(err)
		}
	}
	if s.Has(7) || !s.Has(8) || !s.Has(10) {
		t.Fatal("bounded set keeps the wrong ids")
	}
	s.Close()
	s, err = newAppliedSet(3, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !s.Has(8) || !s.Has(9) || !s.Has(10) || s.Has(7) {
		t.Fatal("ids not kept across a restart")
	}
}
