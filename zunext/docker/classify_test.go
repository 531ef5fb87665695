package docker

import (
	"context"
	"errors"
	"fmt"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/client"
	"github.com/docker/docker/errdefs"
)

// TestClassify checks which Docker failures are the daemon's (retried)
// and which are the request's (reported as the container's error). The
// errors are built as the client builds them: errdefs wrappers of the
// daemon's message by HTTP status, the client's connection error.
func TestClassify(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("starting container unisched-x: %w", err) }
	// the client turns a daemon's answer into its message wrapped as the
	// errdefs class of its status
	daemon := func(class func(error) error, msg string) error {
		return wrap(class(errors.New("Error response from daemon: " + msg)))
	}
	// a real connection failure: a client on a socket nobody listens on
	cli, err := client.NewClientWithOpts(client.WithHost("unix://"+t.TempDir()+"/none.sock"), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	_, connErr := cli.Ping(context.Background())
	if !client.IsErrConnectionFailed(connErr) {
		t.Fatalf("ping of a missing socket: %v is not a connection failure", connErr)
	}
	cases := []struct {
		name      string
		err       error
		transient bool
		stale     bool
	}{
		{"nil", nil, false, false},
		{"stale task 500", daemon(errdefs.System, "task d939ab: already exists"), true, true},
		{"stale task 409", daemon(errdefs.Conflict, "task d939ab: already exists"), true, true},
		{"stale containerd container 500", daemon(errdefs.System, "id already in use"), true, true},
		{"stale task containerd type", wrap(fmt.Errorf("task d939ab: %w", cerrdefs.ErrAlreadyExists)), true, true},
		{"containerd failure 500", daemon(errdefs.System, "failed to create shim task: ttrpc: closed"), true, false},
		{"daemon unavailable 503", daemon(errdefs.Unavailable, "shutting down"), true, false},
		{"connection failed", wrap(connErr), true, false},
		{"deadline", wrap(context.DeadlineExceeded), true, false},
		{"image not found", wrap(&ImageNotFoundError{Image: "nope:1"}), false, false},
		{"not found", wrap(ErrNotFound), false, false},
		{"name in use", wrap(ErrExists), false, false},
		{"invalid parameter 400", daemon(errdefs.InvalidParameter, "invalid CpusetCpus 9-12"), false, false},
		{"conflict 409", daemon(errdefs.Conflict, "cannot start a paused container, try unpause instead"), false, false},
		{"container name conflict 409", daemon(errdefs.Conflict, `Conflict. The container name "/unisched-x" is already in use`), false, false},
		{"no such container 404", daemon(errdefs.NotFound, "No such container: x"), false, false},
		{"not implemented 501", daemon(errdefs.NotImplemented, "checkpoint"), false, false},
		{"untyped error", errors.New("unknown action"), false, false},
		{"already exists without a type", errors.New("task x: already exists"), false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsTransient(tc.err); got != tc.transient {
				t.Errorf("IsTransient(%v) = %v, want %v", tc.err, got, tc.transient)
			}
			if got := IsStaleTask(tc.err); got != tc.stale {
				t.Errorf("IsStaleTask(%v) = %v, want %v", tc.err, got, tc.stale)
			}
		})
	}
}
