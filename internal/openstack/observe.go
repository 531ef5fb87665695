package openstack

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/gorilla/mux"
)

// RequestInfo is what the routers learn about a request that the
// listener's middleware (internal/metrics.HTTP) reports once the handler
// has returned: the route template matched and the negotiated
// microversion. The middleware puts an empty one in the context; routers
// fill it in with SetRoute and SetMicroversion. Labels come from here
// rather than from the raw path so that a metric has one series per route,
// not one per provider UUID.
type RequestInfo struct {
	// Route is the matched route's path template ("/resource_providers/{uuid}"),
	// "" when no route matched.
	Route string
	// Microversion is the negotiated version ("1.39"), "" when the API
	// has none or negotiation failed.
	Microversion string
}

type requestInfoKey struct{}
type loggerKey struct{}

// WithRequestInfo returns ctx carrying a fresh RequestInfo to fill in.
func WithRequestInfo(ctx context.Context) (context.Context, *RequestInfo) {
	ri := &RequestInfo{}
	return context.WithValue(ctx, requestInfoKey{}, ri), ri
}

// RequestInfoFrom returns the context's RequestInfo, nil when no
// middleware asked for one.
func RequestInfoFrom(ctx context.Context) *RequestInfo {
	ri, _ := ctx.Value(requestInfoKey{}).(*RequestInfo)
	return ri
}

// SetRoute records the matched route template. Nested routers each set
// it; the innermost, most specific one is called last and wins.
func SetRoute(ctx context.Context, template string) {
	if ri := RequestInfoFrom(ctx); ri != nil {
		ri.Route = template
	}
}

// SetMicroversion records the negotiated microversion.
func SetMicroversion(ctx context.Context, v Version) {
	if ri := RequestInfoFrom(ctx); ri != nil {
		ri.Microversion = v.String()
	}
}

// RouteTemplate is a gorilla/mux middleware (router.Use) recording the
// matched route's path template.
func RouteTemplate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rt := mux.CurrentRoute(r); rt != nil {
			if t, err := rt.GetPathTemplate(); err == nil {
				SetRoute(r.Context(), t)
			}
		}
		next.ServeHTTP(w, r)
	})
}

// WithLogger returns ctx carrying l, the request's logger.
func WithLogger(ctx context.Context, l *slog.Logger) context.Context {
	return context.WithValue(ctx, loggerKey{}, l)
}

// Logger is the request's logger: the one StartRequest made (it carries
// the request ids) or, outside a request, slog.Default(). Handlers log
// through it so that every error line names its request.
func Logger(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(loggerKey{}).(*slog.Logger); ok && l != nil {
		return l
	}
	l := slog.Default()
	if id := RequestIDFrom(ctx); id != "" {
		l = l.With("request_id", id)
	}
	return l
}

// StartRequest gives the request its id (req-<uuid>), keeps a well-formed
// incoming global request id, and carries a logger with both: the logger
// already in ctx (or slog.Default()) plus the ids. Called once per request,
// by the listener's middleware or, when there is none (tests, handlers
// used alone), by RequestID.
func StartRequest(ctx context.Context, r *http.Request) (context.Context, string) {
	id := newRequestID()
	ctx = context.WithValue(ctx, requestIDKey{}, id)
	l, ok := ctx.Value(loggerKey{}).(*slog.Logger)
	if !ok || l == nil {
		l = slog.Default()
	}
	attrs := []any{"request_id", id}
	if g := r.Header.Get(RequestIDHeader); globalIDPattern.MatchString(g) {
		ctx = context.WithValue(ctx, globalRequestIDKey{}, g)
		attrs = append(attrs, "global_request_id", g)
	}
	return WithLogger(ctx, l.With(attrs...)), id
}

// ContextHandler adds the request ids of the context to every record
// logged with one (logger.InfoContext(ctx, ...)), so a package's own
// logger (placement's, the bridge's) names the request without being
// derived from Logger(ctx). A logger that already carries request_id
// (Logger's) is left as it is.
func ContextHandler(h slog.Handler) slog.Handler { return &ctxHandler{h: h} }

type ctxHandler struct {
	h     slog.Handler
	hasID bool
}

func (c *ctxHandler) Enabled(ctx context.Context, l slog.Level) bool { return c.h.Enabled(ctx, l) }

func (c *ctxHandler) Handle(ctx context.Context, rec slog.Record) error {
	if !c.hasID && ctx != nil {
		if id := RequestIDFrom(ctx); id != "" {
			rec = rec.Clone()
			rec.AddAttrs(slog.String("request_id", id))
			if g := GlobalRequestIDFrom(ctx); g != "" {
				rec.AddAttrs(slog.String("global_request_id", g))
			}
		}
	}
	return c.h.Handle(ctx, rec)
}

func (c *ctxHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	has := c.hasID
	for _, a := range attrs {
		if a.Key == "request_id" {
			has = true
		}
	}
	return &ctxHandler{h: c.h.WithAttrs(attrs), hasID: has}
}

func (c *ctxHandler) WithGroup(name string) slog.Handler {
	return &ctxHandler{h: c.h.WithGroup(name), hasID: c.hasID}
}
