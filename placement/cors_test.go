package placement

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// Expectations are oslo.middleware's CORS filter as upstream installs it.
func TestCORS(t *testing.T) {
	s := New(Config{Settings: Settings{CORS: &CORS{
		AllowedOrigins: []string{"http://valid.example.com"},
		AllowHeaders:   []string{"openstack-api-version"},
	}}})
	cases := []struct {
		name    string
		method  string
		path    string
		headers map[string]string
		status  int
		want    map[string]string // "" means absent
	}{
		{"preflight", "OPTIONS", "/", map[string]string{"Origin": "http://valid.example.com",
			"Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "openstack-api-version, Accept"}, 200,
			map[string]string{"Access-Control-Allow-Origin": "http://valid.example.com", "Access-Control-Allow-Methods": "GET",
				"Access-Control-Allow-Headers": "openstack-api-version,Accept", "Access-Control-Allow-Credentials": "true",
				"Access-Control-Max-Age": "3600", "Vary": "Origin", "Openstack-Api-Version": ""}},
		{"preflight from elsewhere", "OPTIONS", "/", map[string]string{"Origin": "http://invalid.example.com", "Access-Control-Request-Method": "GET"}, 200,
			map[string]string{"Access-Control-Allow-Origin": ""}},
		{"preflight with a header not allowed", "OPTIONS", "/", map[string]string{"Origin": "http://valid.example.com",
			"Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "x-auth-token"}, 200,
			map[string]string{"Access-Control-Allow-Origin": ""}},
		{"preflight with a method not allowed", "OPTIONS", "/", map[string]string{"Origin": "http://valid.example.com",
			"Access-Control-Request-Method": "CONNECT"}, 200, map[string]string{"Access-Control-Allow-Origin": ""}},
		{"OPTIONS needs no token", "OPTIONS", "/resource_providers", nil, 200, map[string]string{"Access-Control-Allow-Origin": ""}},
		{"actual request", "GET", "/", map[string]string{"Origin": "http://valid.example.com"}, 200,
			map[string]string{"Access-Control-Allow-Origin": "http://valid.example.com", "Access-Control-Allow-Credentials": "true"}},
		{"actual request from elsewhere", "GET", "/", map[string]string{"Origin": "http://invalid.example.com"}, 200,
			map[string]string{"Access-Control-Allow-Origin": ""}},
		{"errors carry CORS headers too", "GET", "/resource_providers", map[string]string{"Origin": "http://valid.example.com"}, 401,
			map[string]string{"Access-Control-Allow-Origin": "http://valid.example.com"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, tc.path, nil)
			for k, v := range tc.headers {
				r.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			s.ServeHTTP(w, r)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			for k, v := range tc.want {
				if got := w.Header().Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
		})
	}

	// without origins configured, OPTIONS is an ordinary 405
	plain := New(Config{})
	w := httptest.NewRecorder()
	r := httptest.NewRequest("OPTIONS", "/", nil)
	r.Header.Set("Origin", "http://valid.example.com")
	plain.ServeHTTP(w, r)
	if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("no CORS: got %d %v", w.Code, w.Header())
	}
}
