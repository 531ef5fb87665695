// Package api is the bridge's own HTTP surface on the container API
// listener: the native /v1/workloads API (a VM and containers in one
// instruction, without going through Zun's or Nova's shapes) and the
// routes agents call (/v1/agents/{host}/...; see bridge/agentproto).
// Both are thin: they check the request and the caller, call
// bridge.Service and render its answer; every rule about scheduling and
// claiming lives behind that interface. Zun's API (package zunext) shares
// the listener; Mount puts them on one handler.
//
// Errors use the OpenStack body of internal/openstack ({"errors": [...]}
// with a request id and a code), so one client library reads Placement's,
// Zun's and these errors alike.
package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/gorilla/mux"

	"github.com/unisched/unisched/bridge"
	"github.com/unisched/unisched/bridge/ledger"
	"github.com/unisched/unisched/internal/jsonschema"
	"github.com/unisched/unisched/internal/openstack"
)

// Config is what the handlers need.
type Config struct {
	// Service is the coordinator (required).
	Service bridge.Service
	// Auth authenticates every request (openstack.NoAuth2{} when nil).
	Auth openstack.Authenticator
	// LatestDecision reads the scheduler's newest decision about a
	// workload (ledger.LatestDecision over serve's pool): the "why this
	// host" of GET /v1/workloads/{id}. nil leaves decisions out.
	LatestDecision func(ctx context.Context, workloadID string) (ledger.Decision, error)
	// Reconciliation reads stored reconciliation runs for GET
	// /v1/reconciliation (reconciliation.go); nil: that route is a 404.
	Reconciliation Reconciliation
	// MaxBodyBytes bounds request bodies (1 MiB when 0).
	MaxBodyBytes int64
	Logger       *slog.Logger
}

// Handler serves the native and agent routes. It carries its own request
// id, recovery and authentication, so it can be mounted beside handlers
// that carry theirs (Zun's) without doing any of it twice.
type Handler struct {
	cfg     Config
	log     *slog.Logger
	handler http.Handler
}

// Error codes of the body's "code" field.
const (
	codeUndefined   = "unisched.undefined_code"
	codeNoValidHost = "unisched.no_valid_host"
	codeConflict    = "unisched.conflict"
)

// New builds the handler.
func New(cfg Config) *Handler {
	if cfg.Auth == nil {
		cfg.Auth = openstack.NoAuth2{}
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	h := &Handler{cfg: cfg, log: cfg.Logger}
	var inner http.Handler = h.router()
	inner = openstack.Authenticate(cfg.Auth, nil, inner)
	inner = openstack.WithErrorFormatter(formatter{}, inner)
	inner = openstack.Recover(inner)
	h.handler = openstack.RequestID(inner)
	return h
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.handler.ServeHTTP(w, r) }

// Owns reports whether the path is one of this handler's.
func Owns(path string) bool {
	return path == "/v1/workloads" || strings.HasPrefix(path, "/v1/workloads/") || strings.HasPrefix(path, "/v1/agents/") ||
		path == "/v1/reconciliation"
}

// Mount returns the container API listener's handler: the native and
// agent routes go to native, everything else to zun (Zun's v1 API and
// its version documents). With zun nil, every other path is a 404 in the
// OpenStack error format.
func Mount(native *Handler, zun http.Handler) http.Handler {
	if zun == nil {
		zun = openstack.RequestID(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			openstack.WriteError(w, r, &openstack.Error{Status: http.StatusNotFound, Detail: "The resource could not be found."})
		}))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if Owns(r.URL.Path) {
			native.ServeHTTP(w, r)
			return
		}
		zun.ServeHTTP(w, r)
	})
}

type formatter struct{}

func (formatter) IncludeCode(*http.Request) bool { return true }
func (formatter) DefaultCode() string            { return codeUndefined }

// handlerFunc writes a success itself and returns any error for the
// caller to render.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

type route struct {
	method  string
	handler handlerFunc
	// admin restricts the route to the admin role (the agents' routes).
	admin bool
}

func (h *Handler) router() http.Handler {
	m := mux.NewRouter()
	m.Use(openstack.RouteTemplate) // the route label of serve's request metrics
	table := []struct {
		path   string
		routes []route
	}{
		{"/v1/workloads", []route{{method: "GET", handler: h.listWorkloads}, {method: "POST", handler: h.createWorkloads}}},
		{"/v1/workloads/{id}", []route{{method: "GET", handler: h.getWorkload}, {method: "DELETE", handler: h.deleteWorkload}}},
		{"/v1/agents/{host}", []route{{method: "PUT", handler: h.registerAgent, admin: true}}},
		{"/v1/agents/{host}/reports", []route{{method: "POST", handler: h.agentReport, admin: true}}},
		{"/v1/agents/{host}/desired", []route{{method: "GET", handler: h.agentDesired, admin: true}}},
		{"/v1/reconciliation", []route{{method: "GET", handler: h.getReconciliation, admin: true}}},
	}
	for _, p := range table {
		m.Handle(p.path, h.dispatch(p.routes))
	}
	m.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		openstack.WriteError(w, r, &openstack.Error{Status: http.StatusNotFound, Detail: "The resource could not be found."})
	})
	return m
}

func (h *Handler) dispatch(routes []route) http.Handler {
	ms := make([]openstack.Method, 0, len(routes))
	for _, rt := range routes {
		ms = append(ms, openstack.Method{Name: rt.method, Serve: func(w http.ResponseWriter, r *http.Request) error {
			return h.serve(rt, w, r)
		}})
	}
	return openstack.Dispatch(ms)
}

func (h *Handler) serve(rt route, w http.ResponseWriter, r *http.Request) error {
	if rt.admin && !isAdmin(r) {
		return forbidden("Only administrators (agents) may call %s %s.", r.Method, r.URL.Path)
	}
	return rt.handler(w, r)
}

func isAdmin(r *http.Request) bool {
	c := openstack.CredentialsFrom(r.Context())
	return c != nil && c.HasRole("admin")
}

// project is the caller's project; a token without one may not own
// workloads.
func project(r *http.Request) (string, error) {
	c := openstack.CredentialsFrom(r.Context())
	if c == nil || c.ProjectID == "" {
		return "", forbidden("A project-scoped token is required.")
	}
	return c.ProjectID, nil
}

// visible says whether the caller may see a workload of projectID: an
// admin sees every project's, a member its own project's only.
func visible(r *http.Request, projectID string) bool {
	if isAdmin(r) {
		return true
	}
	c := openstack.CredentialsFrom(r.Context())
	return c != nil && c.ProjectID != "" && c.ProjectID == projectID
}

// requestID is the id the coordinator records with a decision: the
// caller's global request id when it sent one, else ours.
func requestID(r *http.Request) string {
	if g := openstack.GlobalRequestIDFrom(r.Context()); g != "" {
		return g
	}
	return openstack.RequestIDFrom(r.Context())
}

// credentials is the authenticated caller (never nil under Authenticate).
func credentials(r *http.Request) *openstack.Credentials {
	if c := openstack.CredentialsFrom(r.Context()); c != nil {
		return c
	}
	return &openstack.Credentials{}
}

// prefixDetail puts prefix before an API error's detail (which entry of a
// request failed); other errors pass unchanged.
func prefixDetail(err error, prefix string) error {
	var apiErr *openstack.Error
	if !errors.As(err, &apiErr) {
		return err
	}
	c := *apiErr
	c.Detail = prefix + c.Detail
	return &c
}

func badRequest(format string, args ...any) *openstack.Error {
	return openstack.Errorf(http.StatusBadRequest, "", format, args...)
}

func forbidden(format string, args ...any) *openstack.Error {
	return openstack.Errorf(http.StatusForbidden, "", format, args...)
}

func notFound(format string, args ...any) *openstack.Error {
	return openstack.Errorf(http.StatusNotFound, "", format, args...)
}

// serviceError maps the coordinator's errors onto statuses; anything else
// is a fault of ours (a 500, logged with what was being done).
func serviceError(err error, what string) error {
	switch {
	case errors.Is(err, bridge.ErrNotFound):
		return notFound("%s", err.Error())
	case errors.Is(err, bridge.ErrInvalid):
		return badRequest("%s", err.Error())
	case errors.Is(err, bridge.ErrConflict):
		return openstack.Errorf(http.StatusConflict, codeConflict, "%s", err.Error())
	case errors.Is(err, bridge.ErrNoValidHost):
		return openstack.Errorf(http.StatusConflict, codeNoValidHost, "%s", err.Error())
	}
	return fmt.Errorf("%s: %w", what, err)
}

// readJSON reads a JSON body: 415 unless it says application/json, 413
// past the size limit, 400 when it is not JSON or breaks the schema,
// then decodes it into dst.
func (h *Handler) readJSON(r *http.Request, schema *jsonschema.Schema, dst any) error {
	mt, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";")
	if strings.TrimSpace(mt) != "application/json" {
		if mt == "" {
			mt = "None"
		}
		return &openstack.Error{Status: http.StatusUnsupportedMediaType,
			Detail: "The media type " + mt + " is not supported, use application/json"}
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, h.cfg.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return &openstack.Error{Status: http.StatusRequestEntityTooLarge,
				Detail: fmt.Sprintf("Request body larger than %d bytes.", h.cfg.MaxBodyBytes)}
		}
		return badRequest("Malformed JSON: %v", err)
	}
	// JSON is UTF-8 (RFC 8259); the decoder would quietly turn bad bytes
	// into U+FFFD in the values it returns, yet entries are also kept as
	// raw JSON, which PostgreSQL refuses to store.
	if !utf8.Valid(body) {
		return badRequest("Malformed JSON: the body is not valid UTF-8")
	}
	doc, err := jsonschema.Decode(body)
	if err != nil {
		return badRequest("Malformed JSON: %v", err)
	}
	if err := schema.Validate(doc); err != nil {
		return badRequest("%s", describe(err))
	}
	if err := decodeStrict(body, dst); err != nil {
		return badRequest("Invalid input: %v", err)
	}
	return nil
}

// describe turns a schema failure into one line naming the field:
// "Invalid input for workloads[0].memory_mb: 0 is less than the minimum
// of 6".
func describe(err error) string {
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return "Invalid input: " + err.Error()
	}
	field := fieldPath(ve.Path)
	if field == "" {
		return "Invalid input: " + ve.Message
	}
	return "Invalid input for " + field + ": " + ve.Message
}

func fieldPath(path []any) string {
	var b strings.Builder
	for _, p := range path {
		switch v := p.(type) {
		case int:
			fmt.Fprintf(&b, "[%d]", v)
		default:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			fmt.Fprint(&b, v)
		}
	}
	return b.String()
}

func writeJSON(w http.ResponseWriter, status int, v any) { openstack.WriteJSON(w, status, v) }

// pathVar is a route parameter.
func pathVar(r *http.Request, name string) string { return mux.Vars(r)[name] }
