// Package api is imagesec's HTTP surface on the container API listener,
// under /v1/images: the inventory (images, their packages and advice) and
// the long jobs (collect, advise, upgrade, publish), which answer 202 with
// the job to follow at /v1/images/jobs/{id}. Errors use the OpenStack body
// of internal/openstack, as the rest of the listener does.
//
//	GET  /v1/images                 {"images": [...]}
//	GET  /v1/images/{id}            {"image": {...}}
//	GET  /v1/images/{id}/packages   {"packages": [...]}
//	GET  /v1/images/{id}/advice     {"advice": {...}}
//	POST /v1/images/collect         202 {"job": {...}}
//	POST /v1/images/{id}/advise     202 {"job": {...}}   body: imagesec.AdviseParams (feed and/or advisories)
//	POST /v1/images/{id}/upgrade    202 {"job": {...}}   body: the upgrade's options (optional)
//	POST /v1/images/{id}/publish    202 {"job": {...}}   body: imagesec.PublishParams (optional)
//	GET  /v1/images/resolve         {"resolved": {...}}  ?glance_id=ID or ?family=F: the image to boot
//	GET  /v1/images/jobs            {"jobs": [...]}      ?limit=N (default 50)
//	GET  /v1/images/jobs/{id}       {"job": {...}}
//
// Reads need any authenticated caller; actions need the admin role.
package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gorilla/mux"

	"github.com/unisched/unisched/imagesec"
	"github.com/unisched/unisched/imagesec/collect"
	"github.com/unisched/unisched/imagesec/store"
	"github.com/unisched/unisched/internal/openstack"
)

// Config is what the handlers need.
type Config struct {
	DB     collect.DB
	Runner *imagesec.Runner
	// Auth authenticates every request (openstack.NoAuth2{} when nil).
	Auth         openstack.Authenticator
	MaxBodyBytes int64 // 1 MiB when 0
	Logger       *slog.Logger
}

// Handler serves /v1/images.
type Handler struct {
	cfg     Config
	handler http.Handler
}

const codeUndefined = "unisched.undefined_code"

type formatter struct{}

func (formatter) IncludeCode(*http.Request) bool { return true }
func (formatter) DefaultCode() string            { return codeUndefined }

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
	h := &Handler{cfg: cfg}
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
func Owns(path string) bool { return path == "/v1/images" || strings.HasPrefix(path, "/v1/images/") }

// Mount sends /v1/images... to images and everything else to next.
func Mount(images http.Handler, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if Owns(r.URL.Path) {
			images.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

type route struct {
	method string
	fn     func(w http.ResponseWriter, r *http.Request) error
	admin  bool
}

func (h *Handler) router() http.Handler {
	m := mux.NewRouter()
	m.Use(openstack.RouteTemplate) // the route label of serve's request metrics
	for _, p := range []struct {
		path   string
		routes []route
	}{
		{"/v1/images", []route{{method: "GET", fn: h.list}}},
		{"/v1/images/collect", []route{{method: "POST", fn: h.action(store.JobCollect, false), admin: true}}},
		{"/v1/images/jobs", []route{{method: "GET", fn: h.listJobs}}},
		{"/v1/images/jobs/{job}", []route{{method: "GET", fn: h.getJob}}},
		{"/v1/images/resolve", []route{{method: "GET", fn: h.resolve}}},
		{"/v1/images/{id}", []route{{method: "GET", fn: h.imageRead("image", "reading an image", getImage)}}},
		{"/v1/images/{id}/packages", []route{{method: "GET", fn: h.imageRead("packages", "listing packages", listPackages)}}},
		{"/v1/images/{id}/advice", []route{{method: "GET", fn: h.imageRead("advice", "reading advice", getAdvice)}}},
		{"/v1/images/{id}/advise", []route{{method: "POST", fn: h.action(store.JobAdvise, true), admin: true}}},
		{"/v1/images/{id}/upgrade", []route{{method: "POST", fn: h.action(store.JobUpgrade, true), admin: true}}},
		{"/v1/images/{id}/publish", []route{{method: "POST", fn: h.action(store.JobPublish, true), admin: true}}},
	} {
		ms := make([]openstack.Method, 0, len(p.routes))
		for _, rt := range p.routes {
			ms = append(ms, openstack.Method{Name: rt.method, Serve: func(w http.ResponseWriter, r *http.Request) error {
				if rt.admin && !isAdmin(r) {
					return openstack.Errorf(http.StatusForbidden, "", "Only administrators may call %s %s.", r.Method, r.URL.Path)
				}
				return rt.fn(w, r)
			}})
		}
		m.Handle(p.path, openstack.Dispatch(ms))
	}
	m.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		openstack.WriteError(w, r, &openstack.Error{Status: http.StatusNotFound, Detail: "The resource could not be found."})
	})
	return m
}

// The store's reads of one image, as imageRead takes them.
func getImage(ctx context.Context, db collect.DB, id int64) (any, error) {
	return store.GetImage(ctx, db, id)
}
func listPackages(ctx context.Context, db collect.DB, id int64) (any, error) {
	return store.ListPackages(ctx, db, id)
}
func getAdvice(ctx context.Context, db collect.DB, id int64) (any, error) {
	return store.GetAdvice(ctx, db, id)
}

func isAdmin(r *http.Request) bool {
	c := openstack.CredentialsFrom(r.Context())
	return c != nil && c.HasRole("admin")
}

func notFound(format string, args ...any) *openstack.Error {
	return openstack.Errorf(http.StatusNotFound, "", format, args...)
}

func badRequest(format string, args ...any) *openstack.Error {
	return openstack.Errorf(http.StatusBadRequest, "", format, args...)
}

// id parses a positive integer path parameter.
func id(r *http.Request, name, what string) (int64, error) {
	v := mux.Vars(r)[name]
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return 0, notFound("%s %s not found.", what, v)
	}
	return n, nil
}

// storeError maps the store's and the runner's errors onto statuses;
// anything else is ours (a 500, logged with what was being done).
func storeError(err error, what string) error {
	switch {
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrJobNotFound):
		return notFound("%s", err.Error())
	case errors.Is(err, imagesec.ErrBadJob):
		return badRequest("%s", err.Error())
	case errors.Is(err, imagesec.ErrNoGlance):
		return openstack.Errorf(http.StatusConflict, "", "%s", err.Error())
	}
	return fmt.Errorf("%s: %w", what, err)
}

func (h *Handler) list(w http.ResponseWriter, r *http.Request) error {
	list, err := store.ListImages(r.Context(), h.cfg.DB)
	if err != nil {
		return storeError(err, "listing images")
	}
	if list == nil {
		list = []store.Image{}
	}
	openstack.WriteJSON(w, http.StatusOK, map[string]any{"images": list})
	return nil
}

// imageRead is the handler of a GET of one image's data: the image id in
// the path, read reads it, and it answers {key: data}; what says what was
// being read when the store fails.
func (h *Handler) imageRead(key, what string, read func(ctx context.Context, db collect.DB, id int64) (any, error)) func(w http.ResponseWriter, r *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		n, err := id(r, "id", "Image")
		if err != nil {
			return err
		}
		v, err := read(r.Context(), h.cfg.DB, n)
		if err != nil {
			return storeError(err, what)
		}
		openstack.WriteJSON(w, http.StatusOK, map[string]any{key: v})
		return nil
	}
}

// body reads an optional JSON object body: empty is nil.
func (h *Handler) body(r *http.Request) (json.RawMessage, error) {
	b, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, h.cfg.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, &openstack.Error{Status: http.StatusRequestEntityTooLarge,
				Detail: fmt.Sprintf("Request body larger than %d bytes.", h.cfg.MaxBodyBytes)}
		}
		return nil, badRequest("Malformed JSON: %v", err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, nil
	}
	mt, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";")
	if strings.TrimSpace(mt) != "application/json" {
		if mt == "" {
			mt = "None"
		}
		return nil, &openstack.Error{Status: http.StatusUnsupportedMediaType,
			Detail: "The media type " + mt + " is not supported, use application/json"}
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(b, &obj); err != nil {
		return nil, badRequest("Malformed JSON: the body must be a JSON object: %v", err)
	}
	return b, nil
}

func (h *Handler) submit(w http.ResponseWriter, r *http.Request, kind string, image int64, params any) error {
	if h.cfg.Runner == nil {
		return openstack.Errorf(http.StatusServiceUnavailable, "", "Image jobs are not running in this server.")
	}
	j, err := h.cfg.Runner.Submit(r.Context(), kind, image, params)
	if err != nil {
		return storeError(err, "submitting a "+kind+" job")
	}
	w.Header().Set("Location", "/v1/images/jobs/"+strconv.FormatInt(j.ID, 10))
	openstack.WriteJSON(w, http.StatusAccepted, map[string]any{"job": j})
	return nil
}

// action is the handler of a POST starting a job of kind, on the image in
// the path when onImage, with the optional JSON body as its parameters.
func (h *Handler) action(kind string, onImage bool) func(w http.ResponseWriter, r *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		var n int64
		if onImage {
			var err error
			if n, err = id(r, "id", "Image"); err != nil {
				return err
			}
		}
		b, err := h.body(r)
		if err != nil {
			return err
		}
		return h.submit(w, r, kind, n, b)
	}
}

// Resolved answers GET /v1/images/resolve: the Glance image to boot for
// the one (or the family) asked about.
type Resolved struct {
	GlanceID string `json:"glance_id"`
	// Requested is the glance_id or family asked about.
	Requested string `json:"requested"`
	// Patched: GlanceID is a patched image published by imagesec (not
	// the requested image itself).
	Patched bool `json:"patched"`
}

// resolve is imagesec.ResolveImage (?glance_id) and ResolveFamily
// (?family) over HTTP, for whoever boots a VM and wants the current
// patched image: the coordinator does not substitute images on its own
// (docs/imagesec.md).
func (h *Handler) resolve(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	gid, fam := q.Get("glance_id"), q.Get("family")
	if (gid == "") == (fam == "") {
		return badRequest("Give exactly one of glance_id and family.")
	}
	ref := gid + fam
	if !utf8.ValidString(ref) || strings.ContainsRune(ref, 0) || len(ref) > 255 {
		return badRequest("Invalid image reference: at most 255 characters of UTF-8 text, no NUL.")
	}
	var res Resolved
	var err error
	if gid != "" {
		res.GlanceID, err = imagesec.ResolveImage(r.Context(), h.cfg.DB, gid)
	} else {
		res.GlanceID, err = imagesec.ResolveFamily(r.Context(), h.cfg.DB, fam)
	}
	if errors.Is(err, store.ErrNoPatchedImage) {
		return notFound("%s", err.Error())
	}
	if err != nil {
		return storeError(err, "resolving an image")
	}
	res.Requested, res.Patched = ref, res.GlanceID != gid
	openstack.WriteJSON(w, http.StatusOK, map[string]any{"resolved": res})
	return nil
}

func (h *Handler) listJobs(w http.ResponseWriter, r *http.Request) error {
	limit := 50
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return badRequest("Invalid limit %q: an integer from 1 to 1000.", v)
		}
		limit = n
	}
	jobs, err := store.ListJobs(r.Context(), h.cfg.DB, limit)
	if err != nil {
		return storeError(err, "listing jobs")
	}
	if jobs == nil {
		jobs = []*store.Job{}
	}
	openstack.WriteJSON(w, http.StatusOK, map[string]any{"jobs": jobs})
	return nil
}

func (h *Handler) getJob(w http.ResponseWriter, r *http.Request) error {
	n, err := id(r, "job", "Job")
	if err != nil {
		return err
	}
	j, err := store.GetJob(r.Context(), h.cfg.DB, n)
	if err != nil {
		return storeError(err, "reading a job")
	}
	openstack.WriteJSON(w, http.StatusOK, map[string]any{"job": j})
	return nil
}
