package openstack

import (
	"context"
	"net/http"
	"regexp"
	"runtime/debug"

	"github.com/google/uuid"
)

func contextWith(ctx context.Context, k, v any) context.Context { return context.WithValue(ctx, k, v) }

type requestIDKey struct{}
type globalRequestIDKey struct{}

// RequestIDHeader carries the per-request id on responses and, on
// requests, the caller's global request id.
const RequestIDHeader = "X-OpenStack-Request-ID"

var globalIDPattern = regexp.MustCompile(`^req-[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// RequestIDFrom returns the id this service gave the request.
func RequestIDFrom(ctx context.Context) string {
	s, _ := ctx.Value(requestIDKey{}).(string)
	return s
}

// GlobalRequestIDFrom returns the caller's X-OpenStack-Request-ID when it
// was well formed, which is how Nova threads one id through services.
func GlobalRequestIDFrom(ctx context.Context) string {
	s, _ := ctx.Value(globalRequestIDKey{}).(string)
	return s
}

// RequestID gives every request an id, echoes it on the response and keeps
// a valid incoming global id for correlation. A request that already has
// one (the listener's middleware gave it: serve logs and counts every
// request before the API sees it) keeps it, so the id in the log line,
// the error body and the response header is the same.
func RequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		id := RequestIDFrom(ctx)
		if id == "" {
			ctx, id = StartRequest(ctx, r)
			r = r.WithContext(ctx)
		}
		w.Header().Set(RequestIDHeader, id)
		next.ServeHTTP(w, r)
	})
}

func newRequestID() string { return "req-" + uuid.NewString() }

// Recover turns a panic in a handler into a logged 500 in the API's error
// format, so one bad request never takes the process down.
func Recover(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				Logger(r.Context()).ErrorContext(r.Context(), "panic serving request", "panic", p,
					"stack", string(debug.Stack()))
				WriteError(w, r, &Error{Status: http.StatusInternalServerError, Detail: "An internal error occurred."})
			}
		}()
		next.ServeHTTP(w, r)
	})
}
