package novaext_test

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/unisched/unisched/bridge/ledger"
	"github.com/unisched/unisched/internal/keystone"
	"github.com/unisched/unisched/internal/pgtest"
	"github.com/unisched/unisched/novaext"
)

// identityAPI is the part of Keystone v3 the validator talks to (its
// service user's password authentication and GET /v3/auth/tokens), so the
// proxy runs with internal/keystone's real Authenticator, cache and all;
// the real Keystone is tests/keystone's (TestNovaWithKeystone).
type identityAPI struct {
	srv *httptest.Server

	mu     sync.Mutex
	tokens map[string]string // user token -> its token document
	down   bool              // validations answer 500

	validations atomic.Int64
}

const serviceToken = "svc-token"

func newIdentityAPI(t *testing.T) *identityAPI {
	k := &identityAPI{tokens: map[string]string{}}
	k.srv = httptest.NewServer(http.HandlerFunc(k.serve))
	t.Cleanup(k.srv.Close)
	return k
}

// addToken files a project-scoped member token of user in project.
func (k *identityAPI) addToken(token, user, project string) {
	exp := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	k.mu.Lock()
	defer k.mu.Unlock()
	k.tokens[token] = `{"token": {"expires_at": "` + exp + `", "user": {"id": "` + user + `"},
		"project": {"id": "` + project + `", "domain": {"id": "default"}}, "roles": [{"name": "member"}, {"name": "reader"}]}}`
}

func (k *identityAPI) serve(w http.ResponseWriter, r *http.Request) {
	exp := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/v3/auth/tokens":
		w.Header().Set("X-Subject-Token", serviceToken)
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"token": {"expires_at": "` + exp + `", "user": {"id": "svc"}, "roles": [{"name": "service"}]}}`))
	case r.Method == http.MethodGet && r.URL.Path == "/v3/auth/tokens":
		k.validations.Add(1)
		k.mu.Lock()
		doc, ok := k.tokens[r.Header.Get("X-Subject-Token")]
		down := k.down
		k.mu.Unlock()
		switch {
		case down:
			w.WriteHeader(http.StatusInternalServerError)
		case r.Header.Get("X-Auth-Token") != serviceToken:
			w.WriteHeader(http.StatusUnauthorized)
		case !ok:
			w.WriteHeader(http.StatusNotFound)
		default:
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(doc))
		}
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

// count is how many requests reached the upstream.
func (u *upstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.seen)
}

// keystoneProxy is a proxy validating tokens against k, as serve builds
// it in keystone mode.
func keystoneProxy(t *testing.T, e *env, k *identityAPI) {
	t.Helper()
	a, err := keystone.New(keystone.Config{AuthURL: k.srv.URL, WWWAuthenticateURI: "http://keystone.example/identity",
		Username: "unisched", Password: "pw", ProjectName: "service", TokenCacheTime: 300},
		keystone.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	p, err := novaext.New(novaext.Config{Upstream: e.up.srv.URL, DB: e.pool, Auth: a, LookupTimeout: 3 * time.Second,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	e.proxy.Close()
	e.proxy = httptest.NewServer(p)
	t.Cleanup(func() { e.proxy.Close(); p.Close() })
}

// With Keystone the intent carries the token's project and user (not a
// legacy URL's project, nor anything read from the token's text), the
// call reaches nova-api exactly as sent, and the validation is cached:
// the create's own flavor lookup and later calls with the same token do
// not ask Keystone again.
func TestKeystoneIntentIdentity(t *testing.T) {
	pool := pgtest.Pool(t)
	e := setupOn(t, pool)
	k := newIdentityAPI(t)
	keystoneProxy(t, e, k)
	k.addToken("tok-alice", "user-alice", "project-a")

	body := `{"server": {"name": "ks-vm", "flavorRef": "42", "imageRef": "img-1", "networks": "none"}}`
	header := http.Header{"X-Auth-Token": {"tok-alice"}, "Openstack-Api-Version": {"compute 2.90"}, "X-Custom": {"a"}}
	for i, path := range []string{"/v2.1/servers", "/v2/project-other/servers"} {
		before := len(e.up.requests("POST", ""))
		resp, b := e.do(t, "POST", path, header, body)
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("create %s: status %d %s", path, resp.StatusCode, b)
		}
		creates := e.up.requests("POST", "")
		if len(creates) != before+1 {
			t.Fatalf("create %s: upstream saw %d creates, want %d", path, len(creates), before+1)
		}
		s := creates[len(creates)-1]
		if string(s.Body) != body || s.Path != path {
			t.Errorf("create %s: upstream got %s %q", path, s.Path, s.Body)
		}
		for h, v := range header {
			if got := s.Header.Values(h); strings.Join(got, ",") != strings.Join(v, ",") {
				t.Errorf("create %s: header %s reached nova-api as %v, want %v", path, h, got, v)
			}
		}
		if !s.IntentAtArrival {
			t.Fatalf("create %s: no intent when nova-api got it: %v", path, s.IntentErr)
		}
		in, err := ledger.IntentByRequestID(e.ctx, e.pool, s.Header.Get(novaext.HeaderRequestID))
		if err != nil {
			t.Fatal(err)
		}
		if in.ProjectID != "project-a" || in.UserID != "user-alice" {
			t.Errorf("create %s: intent of project %q user %q, want the token's project-a, user-alice", path, in.ProjectID, in.UserID)
		}
		if in.Flavor == nil || in.Flavor.ID != "42" {
			t.Errorf("create %s: flavor %+v (looked up with the user's token)", path, in.Flavor)
		}
		if n := k.validations.Load(); n != 1 {
			t.Errorf("after %d creates: Keystone validated %d times, want 1 (cached)", i+1, n)
		}
	}
	// other calls pass through with the same cached validation
	resp, _ := e.do(t, "GET", "/v2.1/servers/detail", header, "")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Upstream") != "yes" {
		t.Errorf("GET through the proxy: %d %v", resp.StatusCode, resp.Header)
	}
	if n := k.validations.Load(); n != 1 {
		t.Errorf("Keystone validated %d times, want 1", n)
	}
}

// A call nova-api's keystonemiddleware would refuse is refused by the
// proxy the same way, before nova-api or the ledger see it; version
// documents stay open; Keystone down is a 503, nothing forwarded.
func TestKeystoneRefusals(t *testing.T) {
	e := setup(t)
	k := newIdentityAPI(t)
	keystoneProxy(t, e, k)
	k.addToken("tok-bob", "user-bob", "project-b")
	create := `{"server": {"name": "nope", "flavorRef": "42", "imageRef": "img-1"}}`

	const wantBody = `{"error": {"code": 401, "title": "Unauthorized", "message": "The request you have made requires authentication."}}`
	cases := []struct {
		name, method, path, body string
		header                   http.Header
	}{
		{"no token", "GET", "/v2.1/servers", "", nil},
		{"empty token", "GET", "/v2.1/servers", "", http.Header{"X-Auth-Token": {""}}},
		{"bogus token", "GET", "/v2.1/servers", "", http.Header{"X-Auth-Token": {"not-a-token"}}},
		{"noauth2 token", "GET", "/v2/p1/servers/detail", "", http.Header{"X-Auth-Token": {"admin:admin"}}},
		{"bogus token create", "POST", "/v2.1/servers", create, http.Header{"X-Auth-Token": {"not-a-token"}, "Accept": {"text/html"}}},
		{"bad service token", "GET", "/v2.1/flavors", "", http.Header{"X-Auth-Token": {"tok-bob"}, "X-Service-Token": {"not-a-token"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := e.up.count()
			resp, b := e.do(t, c.method, c.path, c.header, c.body)
			if resp.StatusCode != http.StatusUnauthorized || string(b) != wantBody {
				t.Fatalf("status %d body %s, want 401 %s", resp.StatusCode, b, wantBody)
			}
			if got := resp.Header.Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type %q", got)
			}
			if got, want := resp.Header.Get("WWW-Authenticate"), `Keystone uri="http://keystone.example/identity"`; got != want {
				t.Errorf("WWW-Authenticate %q, want %q", got, want)
			}
			if id := resp.Header.Get(novaext.HeaderRequestID); !novaext.ValidRequestID(id) || resp.Header.Get("X-Compute-Request-Id") != id {
				t.Errorf("request id headers %q / %q, want nova-api's pair", id, resp.Header.Get("X-Compute-Request-Id"))
			}
			if n := e.up.count() - before; n != 0 {
				t.Errorf("nova-api saw %d requests", n)
			}
		})
	}
	if n := e.intents(t); n != 0 {
		t.Errorf("%d intents recorded for refused creates", n)
	}

	// version documents need no token (nova-api's pipeline for them has
	// no auth_token)
	for _, path := range []string{"/", "/v2.1", "/v2.1/", "/v2", "/v2/"} {
		resp, _ := e.do(t, "GET", path, nil, "")
		if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Upstream") != "yes" {
			t.Errorf("GET %s without a token: %d, want nova-api's answer", path, resp.StatusCode)
		}
	}

	// Keystone failing: keystonemiddleware's 503, nothing forwarded
	k.mu.Lock()
	k.down = true
	k.mu.Unlock()
	before := e.up.count()
	resp, b := e.do(t, "GET", "/v2.1/servers", http.Header{"X-Auth-Token": {"tok-unknown"}, "Accept": {"application/json"}}, "")
	var doc map[string]any
	_ = json.Unmarshal(b, &doc)
	if msg, _ := doc["message"].(string); resp.StatusCode != http.StatusServiceUnavailable ||
		!strings.Contains(msg, "The Keystone service is temporarily unavailable.") {
		t.Errorf("keystone down: %d %s, want 503 naming Keystone", resp.StatusCode, b)
	}
	if n := e.up.count() - before; n != 0 {
		t.Errorf("keystone down: nova-api saw %d requests", n)
	}
	// a token validated before is still served from the cache
	resp, _ = e.do(t, "GET", "/v2.1/servers", http.Header{"X-Auth-Token": {"tok-bob"}}, "")
	if resp.StatusCode != http.StatusOK {
		t.Errorf("keystone down, cached token: %d, want 200", resp.StatusCode)
	}
}
