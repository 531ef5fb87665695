package placement

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/unisched/unisched/internal/jsonschema"
	"github.com/unisched/unisched/internal/openstack"
)

var fuzzSchema = jsonschema.MustCompile(`{
	"type": "object",
	"properties": {
		"name": {"type": "string", "maxLength": 200},
		"uuid": {"type": "string", "format": "uuid"},
		"total": {"type": "integer", "minimum": 1}
	},
	"required": ["name"],
	"additionalProperties": false
}`)

// FuzzReadJSON: whatever the body and content type, readJSON either
// succeeds or answers one of upstream's client errors; it never panics.
func FuzzReadJSON(f *testing.F) {
	for _, seed := range []struct{ ct, body string }{
		{"application/json", `{"name": "x"}`},
		{"application/json", `{"name": "x", "total": 1e400}`},
		{"application/json; charset=utf-8", `{"name": "\ud800"}`},
		{"application/json", `{bad`},
		{"application/json", `{"name": "x"} {"name": "y"}`},
		{"application/json", `[]`},
		{"application/json", ``},
		{"text/plain", `{}`},
		{"", `{}`},
		{"APPLICATION/JSON", `{}`},
		{"application/json", `{"name": 12345678901234567890123456789}`},
		{"application/json", strings.Repeat("[", 5000)},
		// PostgreSQL stores no NUL character: refused before any handler
		{"application/json", `{"name": "x\u0000"}`},
		{"application/json", `{"name": "x", "a\u0000": 1}`},
	} {
		f.Add(seed.ct, []byte(seed.body))
	}
	s := New(Config{MaxBodyBytes: 64 << 10})
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		for _, schema := range []validator{nil, fuzzSchema} {
			r := httptest.NewRequest("POST", "/x", bytes.NewReader(body))
			r.Header.Set("Content-Type", ct)
			var into struct {
				Name  string `json:"name"`
				UUID  string `json:"uuid"`
				Total int    `json:"total"`
			}
			err := s.readJSON(r, schema, &into)
			if err == nil {
				if strings.ContainsRune(into.Name+into.UUID, 0) {
					t.Fatalf("ct %q body %q: a NUL character got through", ct, body)
				}
				continue
			}
			var apiErr *openstack.Error
			if !errors.As(err, &apiErr) {
				t.Fatalf("ct %q body %q: not an API error: %v", ct, body, err)
			}
			switch apiErr.Status {
			case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
			default:
				t.Fatalf("ct %q body %q: status %d", ct, body, apiErr.Status)
			}
		}
	})
}

// FuzzRequestHeaders drives the middleware chain (request id, CORS, auth,
// microversion, routing, content checks, error rendering) with arbitrary
// methods and header values on paths that never reach the database: no
// panic, no 500, and an error body in the negotiated format.
func FuzzRequestHeaders(f *testing.F) {
	f.Add("GET", "/", "", "", "", "", "admin", "")
	f.Add("DELETE", "/resource_providers", "text/html", "placement 1.2.3", "", "", "admin", "")
	f.Add("POST", "/nope", "*/*", "placement latest", "", "", "admin", "x")
	f.Add("OPTIONS", "/", "foo", "placement 0.9", "text/plain;a=\"b", "http://valid.example.com", "", "")
	f.Add("PATCH", "/traits", "text/html;level=1", "placement 1.5", "application/json", "", "user", "{}")
	s := New(Config{})
	paths := map[string]bool{"/": true, "/nope": true, "/resource_providers": true, "/traits": true, "/a/b/c": true}
	f.Fuzz(func(t *testing.T, method, path, accept, version, contentType, origin, token, body string) {
		if !paths[path] {
			path = "/nope"
		}
		// only methods that no handler on these paths implements, except GET /
		if method == "GET" && path != "/" || method == "POST" && path == "/resource_providers" {
			method = "PATCH"
		}
		r := httptest.NewRequest("GET", path, strings.NewReader(body))
		r.Method = method
		for k, v := range map[string]string{"Accept": accept, "OpenStack-API-Version": version, "Content-Type": contentType, "Origin": origin, "X-Auth-Token": token} {
			if v != "" {
				r.Header.Set(k, v)
			}
		}
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		if w.Code >= 500 {
			t.Fatalf("%s %s accept=%q version=%q ct=%q: %d %s", method, path, accept, version, contentType, w.Code, w.Body.String())
		}
		if w.Code >= 400 && method != "HEAD" {
			ct := w.Header().Get("Content-Type")
			if !strings.HasPrefix(ct, "application/json") && !strings.HasPrefix(ct, "text/html") && !strings.HasPrefix(ct, "text/plain") {
				t.Fatalf("error with content type %q", ct)
			}
			if w.Body.Len() == 0 {
				t.Fatal("empty error body")
			}
		}
	})
}
