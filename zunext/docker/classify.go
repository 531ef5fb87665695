package docker

import (
	"errors"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
)

// IsStaleTask says whether err is dockerd refusing to start a container
// because containerd still holds a task for it: after dockerd is killed
// while starting a container, the shim survives and the next start is
// answered "task <id>: already exists", or, when containerd kept the
// container object itself, "id already in use". The container itself is
// fine to recreate (a new Docker container has a new id); the request was
// not at fault.
//
// The Docker API has no error type of its own for this case: depending
// on the daemon version it comes as a 500 (internal) or a 409 (conflict),
// so the daemon's message is matched ("task " ... "already exists", "id
// already in use"). The typed check narrows the match to those two classes.
func IsStaleTask(err error) bool {
	if err == nil || !(cerrdefs.IsInternal(err) || cerrdefs.IsConflict(err) || cerrdefs.IsAlreadyExists(err)) {
		return false
	}
	msg := err.Error()
	return strings.Contains(msg, "already exists") && strings.Contains(msg, "task ") ||
		strings.Contains(msg, "id already in use")
}

// IsTransient says whether err is the daemon's (or the connection's)
// trouble rather than the request's: the daemon away (IsUnavailable), a
// 5xx answer (containerd failing, a stale task after a daemon crash), a
// deadline. The caller tries again later instead of reporting the
// container in error. A missing image, a 4xx refusal (invalid parameter,
// conflict, not found) or any error Docker did not answer with are not
// transient.
func IsTransient(err error) bool {
	if err == nil {
		return false
	}
	var inf *ImageNotFoundError
	switch {
	case errors.As(err, &inf), errors.Is(err, ErrNotFound), errors.Is(err, ErrExists):
		return false
	case IsUnavailable(err), IsStaleTask(err):
		return true
	case cerrdefs.IsInvalidArgument(err), cerrdefs.IsNotFound(err), cerrdefs.IsConflict(err),
		cerrdefs.IsPermissionDenied(err), cerrdefs.IsUnauthorized(err), cerrdefs.IsNotImplemented(err),
		cerrdefs.IsFailedPrecondition(err):
		return false
	}
	return cerrdefs.IsInternal(err) || cerrdefs.IsDeadlineExceeded(err) || cerrdefs.IsUnavailable(err) ||
		cerrdefs.IsResourceExhausted(err) || cerrdefs.IsAborted(err) || cerrdefs.IsDataLoss(err)
}
