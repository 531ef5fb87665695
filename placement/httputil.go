package placement

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/mux"

	"github.com/unisched/unisched/internal/jsonschema"
	"github.com/unisched/unisched/internal/openstack"
	"github.com/unisched/unisched/placement/policy"
)

// authorize checks rule for the caller; a refusal is upstream's 403. A
// rule name upstream never registered is refused too (upstream fails with a
// 500) and logged, since it can only be a typo in a handler.
func (s *Server) authorize(r *http.Request, rule string, t policy.Target) error {
	if s.current().Policy.Allowed(rule, openstack.CredentialsFrom(r.Context()), t) {
		return nil
	}
	if !policy.Registered(rule) {
		s.log.ErrorContext(r.Context(), "authorizing an unregistered policy rule", "rule", rule)
	}
	return &openstack.Error{Status: http.StatusForbidden, Escaped: true,
		Detail: fmt.Sprintf("Policy does not allow %s to be performed.", rule)}
}

// pathVar returns a path parameter of the route. Upstream's router
// ignores one newline ending a path ("%0A"), so it is dropped here too.
func pathVar(r *http.Request, name string) string { return strings.TrimSuffix(mux.Vars(r)[name], "\n") }

// version is the request's negotiated microversion.
func version(r *http.Request) openstack.Version { return openstack.VersionFrom(r.Context()) }

// setLastModified adds the cache headers of microversion 1.15: responses
// carry when their content last changed and must not be cached.
func setLastModified(w http.ResponseWriter, r *http.Request, t time.Time) {
	if !version(r).AtLeast(15) {
		return
	}
	if t.IsZero() {
		t = time.Now()
	}
	w.Header().Set("Last-Modified", t.UTC().Format(http.TimeFormat))
	w.Header().Set("Cache-Control", "no-cache")
}

// location makes an absolute URL for a Location header, as WebOb does.
func location(r *http.Request, path string) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if p := r.Header.Get("X-Forwarded-Proto"); p != "" {
		scheme = p
	}
	return scheme + "://" + r.Host + path
}

// normalizeUUID accepts what Python's uuid.UUID accepts (dashed or not,
// braces, urn prefix, any case) and returns the canonical dashed form.
func normalizeUUID(s string) (string, bool) {
	u, err := uuid.Parse(s)
	if err != nil {
		return "", false
	}
	return u.String(), true
}

// validator is a compiled JSON schema (internal/jsonschema).
type validator interface {
	Validate(instance any) error
}

// requireJSON is upstream's require_content decorator: a write handler
// answers 415 unless the body's media type (the Content-Type up to any
// ";", compared exactly, as WebOb's req.content_type is) is
// application/json, before its policy check or any lookup. The route
// table applies it already; handlers may repeat it.
func requireJSON(r *http.Request) error {
	mt, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";")
	if mt == "application/json" {
		return nil
	}
	if mt == "" {
		mt = "None"
	}
	return &openstack.Error{Status: http.StatusUnsupportedMediaType,
		Detail: "The media type " + mt + " is not supported, use application/json"}
}

// readJSON enforces upstream's body rules in order: a JSON content type
// (415), a parseable body ("Malformed JSON"), the schema for this
// microversion ("JSON does not validate"), then decodes into dst.
func (s *Server) readJSON(r *http.Request, schema validator, dst any) error {
	if err := requireJSON(r); err != nil {
		return err
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return &openstack.Error{Status: http.StatusRequestEntityTooLarge,
				Detail: fmt.Sprintf("Request body larger than %d bytes.", s.cfg.MaxBodyBytes)}
		}
		return &openstack.Error{Status: http.StatusBadRequest, Detail: "Malformed JSON: " + err.Error()}
	}
	if msg, bad := openstack.PythonJSONError(body); bad {
		return &openstack.Error{Status: http.StatusBadRequest, Detail: "Malformed JSON: " + msg}
	}
	var instance any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&instance); err != nil {
		return &openstack.Error{Status: http.StatusBadRequest, Detail: "Malformed JSON: " + err.Error()}
	}
	if dec.More() {
		return &openstack.Error{Status: http.StatusBadRequest, Detail: "Malformed JSON: Extra data after the JSON document"}
	}
	if schema != nil {
		// validate the document with its keys in written order, as Python
		// does: it decides which error is reported and how it is worded
		ordered, err := jsonschema.Decode(body)
		if err != nil {
			return &openstack.Error{Status: http.StatusBadRequest, Detail: "Malformed JSON: " + err.Error()}
		}
		if err := schema.Validate(ordered); err != nil {
			// WebOb renders the detail's line breaks (python-jsonschema's
			// message has several) as spaces.
			return &openstack.Error{Status: http.StatusBadRequest,
				Detail: "JSON does not validate: " + strings.ReplaceAll(err.Error(), "\n", " ")}
		}
	}
	if path, ok := nulIn(instance, ""); ok {
		return &openstack.Error{Status: http.StatusBadRequest,
			Detail: "JSON does not validate: " + nulDetail(path)}
	}
	if dst == nil {
		return nil
	}
	if p, ok := dst.(*any); ok {
		*p = instance
		return nil
	}
	if err := json.Unmarshal(body, dst); err != nil {
		return &openstack.Error{Status: http.StatusBadRequest, Detail: "JSON does not validate: " + err.Error()}
	}
	return nil
}

// badRequest is a 400 with the undefined code.
func badRequest(format string, args ...any) *openstack.Error {
	return openstack.Errorf(http.StatusBadRequest, "", format, args...)
}

// notFound is a 404 with the undefined code.
func notFound(format string, args ...any) *openstack.Error {
	return openstack.Errorf(http.StatusNotFound, "", format, args...)
}

// conflict is a 409 with the given code.
func conflict(code, format string, args ...any) *openstack.Error {
	return openstack.Errorf(http.StatusConflict, code, format, args...)
}

// writeJSON writes a 200 (or other) JSON body.
func writeJSON(w http.ResponseWriter, status int, v any) { openstack.WriteJSON(w, status, v) }

// nulIn finds a key or string value holding a NUL character in a decoded
// JSON document: PostgreSQL stores none in text, so a request carrying
// one is refused before anything is written. (Upstream on MySQL takes it
// in some fields, names and project or user ids; a 400 is our choice.) A
// key is named by the object holding it; keys are walked in sorted order
// so that the answer does not vary.
func nulIn(v any, path string) (string, bool) {
	switch v := v.(type) {
	case string:
		return path, strings.IndexByte(v, 0) >= 0
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			if strings.IndexByte(k, 0) >= 0 {
				return path, true
			}
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if p, ok := nulIn(v[k], path+"['"+k+"']"); ok {
				return p, true
			}
		}
	case []any:
		for i, e := range v {
			if p, ok := nulIn(e, path+"["+strconv.Itoa(i)+"]"); ok {
				return p, true
			}
		}
	}
	return "", false
}

func nulDetail(path string) string {
	if path == "" {
		return "the document contains a NUL character, which cannot be stored"
	}
	return path + " contains a NUL character, which cannot be stored"
}

// checkURLNUL refuses a name in the path or a query string holding a NUL
// character (%00) before a handler hands it to PostgreSQL, which takes
// none in text: nothing can be named so (a read is a 404, a write a 400),
// and a query parameter holding one is a 400. Uuids in the path are left
// to the handlers, which refuse or answer them as any malformed uuid.
func checkURLNUL(r *http.Request) error {
	for k, v := range mux.Vars(r) {
		if strings.Contains(k, "uuid") || strings.IndexByte(v, 0) < 0 {
			continue
		}
		if r.Method == http.MethodGet || r.Method == http.MethodHead || r.Method == http.MethodDelete {
			return notFound("The %s in the path contains a NUL character: there is no such resource.", k)
		}
		return badRequest("The %s in the path contains a NUL character, which cannot be stored.", k)
	}
	if !strings.Contains(r.URL.RawQuery, "%00") {
		return nil
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil // the handler reports the query as it does any malformed one
	}
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		bad := strings.IndexByte(k, 0) >= 0
		for _, v := range q[k] {
			bad = bad || strings.IndexByte(v, 0) >= 0
		}
		if bad {
			return badRequest("Invalid query string parameters: %q contains a NUL character.", k)
		}
	}
	return nil
}
