package openstack_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/unisched/unisched/internal/openstack"
)

// A package's own logger names the request once it logs with the
// request's context; the request's logger names it once, not twice.
func TestContextHandlerAndRequestLogger(t *testing.T) {
	var buf bytes.Buffer
	base := slog.New(openstack.ContextHandler(slog.NewTextHandler(&buf, nil)))
	const global = "req-11111111-2222-3333-4444-555555555555"
	var seen string
	h := openstack.RequestID(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = openstack.RequestIDFrom(r.Context())
		base.InfoContext(r.Context(), "package logger")
		openstack.Logger(r.Context()).InfoContext(r.Context(), "request logger")
		base.Info("no context")
	}))
	req := httptest.NewRequest("GET", "/x", nil)
	req.Header.Set(openstack.RequestIDHeader, global)
	ctx := openstack.WithLogger(req.Context(), base)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req.WithContext(ctx))
	if got := rec.Header().Get(openstack.RequestIDHeader); got != seen || !strings.HasPrefix(seen, "req-") {
		t.Fatalf("response id %q, handler saw %q", got, seen)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("log:\n%s", buf.String())
	}
	for _, l := range lines[:2] {
		if strings.Count(l, "request_id="+seen) != 1 || strings.Count(l, "global_request_id="+global) != 1 {
			t.Errorf("line without exactly one of each id: %s", l)
		}
	}
	if strings.Contains(lines[2], "request_id") {
		t.Errorf("line without a context names a request: %s", lines[2])
	}

	// an id given by an outer middleware is kept, not replaced
	ctx, id := openstack.StartRequest(req.Context(), req)
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req.WithContext(ctx))
	if seen != id || rec.Header().Get(openstack.RequestIDHeader) != id {
		t.Errorf("outer id %s, handler saw %s, response %s", id, seen, rec.Header().Get(openstack.RequestIDHeader))
	}
}
