package docker

import (
	"context"
	"errors"
	"fmt"
	"net/http"
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
	daemon := func(status int, msg string) error {
		return wrap(errdefs.FromStatusCode(errors.New("Error response from daemon: "+msg), status))
	}
	cases := []struct {
		name      string
		err       error
		transient bool
		stale     bool
	}{
		{"nil", nil, false, false},
		{"stale task 500", daemon(http.StatusInternalServerError, "task d939ab: already exists"), true, true},
		{"stale task 409", daemon(http.StatusConflict, "task d939ab: already exists"), true, true},
		{"stale task containerd type", wrap(fmt.Errorf("task d939ab: %w", cerrdefs.ErrAlreadyExists)), true, true},
		{"containerd failure 500", daemon(http.StatusInternalServerError, "failed to create shim task: ttrpc: closed"), true, false},
		{"daemon unavailable 503", daemon(http.StatusServiceUnavailable, "shutting down"), true, false},
		{"connection failed", wrap(client.ErrorConnectionFailed("unix:///run/docker.sock")), true, false},
		{"deadline", wrap(context.DeadlineExceeded), true, false},
		{"image not found", wrap(&ImageNotFoundError{Image: "nope:1"}), false, false},
		{"not found", wrap(ErrNotFound), false, false},
		{"name in use", wrap(ErrExists), false, false},
		{"invalid parameter 400", daemon(http.StatusBadRequest, "invalid CpusetCpus 9-12"), false, false},
		{"conflict 409", daemon(http.StatusConflict, "cannot start a paused container, try unpause instead"), false, false},
		{"container name conflict 409", daemon(http.StatusConflict, `Conflict. The container name "/unisched-x" is already in use`), false, false},
		{"no such container 404", daemon(http.StatusNotFound, "No such container: x"), false, false},
		{"not implemented 501", daemon(http.StatusNotImplemented, "checkpoint"), false, false},
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
