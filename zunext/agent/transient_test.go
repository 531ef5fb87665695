package agent

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unisched/unisched/bridge/agentproto"
)

// faultyDocker is an HTTP proxy in front of the test dockerd that answers
// container starts the way a dockerd restarted after a crash does while
// the shim of the container survived: 500 "task <id>: already exists".
type faultyDocker struct {
	path string

	mu         sync.Mutex
	failStarts int // starts still to refuse
	// hold, when set, keeps every container create waiting until it is
	// closed
	hold    chan struct{}
	starts  int // starts seen (refused or passed on)
	creates int // creates seen
}

func newFaultyDocker(t *testing.T) *faultyDocker {
	t.Helper()
	target := strings.TrimPrefix(testDockerHost(t), "unix://")
	dir, err := os.MkdirTemp("/tmp", "agf")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	fd := &faultyDocker{path: filepath.Join(dir, "d.sock")}
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: "docker"})
	rp.FlushInterval = -1 // the event stream
	rp.Transport = &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", target)
	}}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.Contains(r.URL.Path, "/containers/") {
			fd.mu.Lock()
			switch {
			case strings.HasSuffix(r.URL.Path, "/containers/create"):
				fd.creates++
				if hold := fd.hold; hold != nil {
					fd.mu.Unlock()
					select {
					case <-hold:
					case <-r.Context().Done():
					}
					fd.mu.Lock()
				}
			case strings.HasSuffix(r.URL.Path, "/start"):
				fd.starts++
				if fd.failStarts > 0 {
					fd.failStarts--
					fd.mu.Unlock()
					id := strings.TrimSuffix(r.URL.Path[strings.Index(r.URL.Path, "/containers/")+len("/containers/"):], "/start")
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(http.StatusInternalServerError)
					json.NewEncoder(w).Encode(map[string]string{"message": "task " + id + ": already exists"})
					return
				}
			}
			fd.mu.Unlock()
		}
		rp.ServeHTTP(w, r)
	})
	ln, err := net.Listen("unix", fd.path)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		srv.Close()
	})
	return fd
}

func (fd *faultyDocker) set(failStarts int) {
	fd.mu.Lock()
	fd.failStarts = failStarts
	fd.mu.Unlock()
}

func (fd *faultyDocker) counts() (starts, creates int) {
	fd.mu.Lock()
	defer fd.mu.Unlock()
	return fd.starts, fd.creates
}

// TestStaleTaskRecreated: a start refused for a stale containerd task is
// repaired by removing the container and creating it again, once; the
// event succeeds and no error is reported.
func TestStaleTaskRecreated(t *testing.T) {
	f := newFakeServe(t)
	fd := newFaultyDocker(t)
	ta := startAgent(t, f, func(c *Config) { c.DockerHost = "unix://" + fd.path })
	starts0, creates0 := fd.counts()
	fd.set(1)
	c := newContainer("shared", true)
	id := eventID()
	ta.event(t, agentproto.Event{ID: id, Type: agentproto.EventCreate, Container: c}, 202)
	r := f.waitReport(t, c.WorkloadID, isStatus(id, agentproto.StatusRunning))
	starts, creates := fd.counts()
	if starts-starts0 != 2 || creates-creates0 != 2 {
		t.Fatalf("%d starts and %d creates, want 2 and 2 (recreated once)", starts-starts0, creates-creates0)
	}
	info := ta.inspect(t, c.WorkloadID)
	if !info.State.Running || r.ContainerID != info.ID {
		t.Fatalf("container %s running %v; reported %s", info.ID, info.State.Running, r.ContainerID)
	}
	for _, r := range f.reportsOf(c.WorkloadID) {
		if r.Status == agentproto.StatusError {
			t.Fatalf("reported in error: %+v", r)
		}
	}
}

// TestTransientStartFailureRetried: a start that keeps failing on the
// daemon's side is not the request's fault: the event is taken (202) and
// retried by the agent, nothing is reported in error, and the container
// starts once Docker recovers, without a new event.
func TestTransientStartFailureRetried(t *testing.T) {
	f := newFakeServe(t)
	fd := newFaultyDocker(t)
	ta := startAgent(t, f, func(c *Config) {
		c.DockerHost = "unix://" + fd.path
		c.HeartbeatInterval = 300 * time.Millisecond
	})
	fd.set(1 << 20)
	c := newContainer("shared", true)
	f.setDesired(agentproto.Desired{SharedCPUs: "0", Containers: []agentproto.Container{*c}})
	id := eventID()
	ta.event(t, agentproto.Event{ID: id, Type: agentproto.EventCreate, Container: c}, 202)
	// the agent's retries and a periodic convergence or two meet the same
	// failure
	time.Sleep(time.Second)
	for _, r := range f.reportsOf(c.WorkloadID) {
		if r.Status == agentproto.StatusError {
			t.Fatalf("reported in error on a transient failure: %+v", r)
		}
	}
	if starts, _ := fd.counts(); starts < 3 {
		t.Fatalf("%d starts: the periodic convergence did not retry", starts)
	}
	// each retry removes and creates it again (the stale-task repair):
	// look more than once
	var ierr error
	for range 10 {
		if _, ierr = ta.Driver().Inspect(context.Background(), c.WorkloadID); ierr == nil {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if ierr != nil {
		t.Fatalf("the container should exist, created but not started: %v", ierr)
	}

	fd.set(0)
	f.waitReport(t, c.WorkloadID, func(r agentproto.Report) bool { return r.EventID == 0 && r.Status == agentproto.StatusRunning })
	if !ta.inspect(t, c.WorkloadID).State.Running {
		t.Fatal("not running after the recovery")
	}
	// the agent's retry of the event finds it converged; a redelivery is
	// a no-op
	f.waitReport(t, c.WorkloadID, isStatus(id, agentproto.StatusRunning))
	ta.waitApplied(t, id)
	ta.event(t, agentproto.Event{ID: id, Type: agentproto.EventCreate, Container: c}, 202)
	for _, r := range f.reportsOf(c.WorkloadID) {
		if r.Status == agentproto.StatusError {
			t.Fatalf("reported in error: %+v", r)
		}
	}
}
