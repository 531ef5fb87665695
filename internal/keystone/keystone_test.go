package keystone

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/unisched/unisched/internal/openstack"
	"github.com/unisched/unisched/internal/proctest"
	"github.com/unisched/unisched/tests/keystoneharness"
)

// counting counts the requests that reach Keystone.
type counting struct{ n atomic.Int64 }

func (c *counting) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return http.DefaultTransport.RoundTrip(r)
}

// clock stands still at its creation time until the test moves it: on a
// loaded machine a Keystone call can take seconds of real time.
type clock struct {
	mu   sync.Mutex
	base time.Time
	off  time.Duration
}

func newClock() *clock { return &clock{base: time.Now()} }

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.base.Add(c.off)
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

type env struct {
	ks      *keystoneharness.Keystone
	project keystoneharness.Project
	member  keystoneharness.User
	svc     keystoneharness.User
	admin   string // admin project id
}

// One Keystone for every test of the package: starting one is the
// expensive part.
var (
	shared     *env
	sharedOnce sync.Once
)

func setup(t *testing.T) *env {
	t.Helper()
	// the first caller's t owns Keystone; later tests share it, so it
	// must outlive them: TestMain-less packages run tests in sequence,
	// and TestAuthenticator runs everything as subtests of one test.
	sharedOnce.Do(func() {
		ks := keystoneharness.Start(t, keystoneharness.Options{TokenExpiration: 10 * time.Minute})
		e := &env{ks: ks}
		e.project = ks.CreateProject(t, "project-a")
		e.member = ks.CreateUser(t, "alice", e.project, "member")
		var out struct {
			Projects []keystoneharness.Project `json:"projects"`
		}
		ks.Admin(t, "GET", "/projects?name="+ks.AdminProject, nil, &out)
		if len(out.Projects) != 1 {
			t.Fatalf("admin project: %+v", out.Projects)
		}
		e.admin = out.Projects[0].ID
		e.svc = ks.CreateUser(t, "unisched", keystoneharness.Project{ID: e.admin, Name: ks.AdminProject}, "service")
		shared = e
	})
	if shared == nil {
		t.Fatal("keystone did not start (see the first test)")
	}
	return shared
}

func (e *env) config(cacheSeconds int) Config {
	return Config{
		WWWAuthenticateURI: e.ks.URL, AuthURL: e.ks.URL, AuthType: "password",
		Username: e.svc.Name, Password: e.svc.Password, ProjectName: e.ks.AdminProject,
		UserDomainName: "Default", ProjectDomainName: "Default", TokenCacheTime: cacheSeconds,
		HTTPConnectTimeout: 120, // a loaded machine's Keystone takes seconds
	}
}

func request(token string, header ...string) *http.Request {
	r := httptest.NewRequest("GET", "/resource_providers", nil)
	if token != "" {
		r.Header.Set("X-Auth-Token", token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	return r
}

// wantStatus checks that err is an *openstack.Error with status (and,
// for a 401, keystonemiddleware's WWW-Authenticate).
func wantStatus(t *testing.T, err error, status int, uri string) {
	t.Helper()
	var e *openstack.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T), want an HTTP %d", err, err, status)
	}
	if e.Status != status {
		t.Fatalf("status %d (%v), want %d", e.Status, err, status)
	}
	if status == http.StatusUnauthorized {
		if got, want := e.Header.Get("WWW-Authenticate"), `Keystone uri="`+uri+`"`; got != want {
			t.Errorf("WWW-Authenticate %q, want %q", got, want)
		}
	}
}

func TestAuthenticator(t *testing.T) {
	e := setup(t)
	ks := e.ks

	t.Run("project member", func(t *testing.T) {
		a, err := New(e.config(300), Options{})
		if err != nil {
			t.Fatal(err)
		}
		tok := ks.Token(t, e.member.Name, e.member.Password, e.project.Name)
		c, err := a.Authenticate(request(tok.ID))
		if err != nil {
			t.Fatal(err)
		}
		if c.UserID != e.member.ID || c.ProjectID != e.project.ID || c.SystemScope != "" || c.DomainID != "" {
			t.Errorf("credentials %+v, want user %s project %s", c, e.member.ID, e.project.ID)
		}
		if !c.HasRole("member") || !c.HasRole("reader") || c.HasRole("admin") {
			t.Errorf("roles %v, want member and reader (implied), not admin", c.Roles)
		}
	})
	t.Run("system admin", func(t *testing.T) {
		a, _ := New(e.config(300), Options{})
		tok := ks.SystemToken(t, ks.AdminUser, ks.AdminPassword)
		c, err := a.Authenticate(request(tok.ID))
		if err != nil {
			t.Fatal(err)
		}
		if c.SystemScope != "all" || c.ProjectID != "" || !c.HasRole("admin") {
			t.Errorf("credentials %+v, want system scope all, no project, admin", c)
		}
	})
	t.Run("refused", func(t *testing.T) {
		a, _ := New(e.config(300), Options{})
		_, err := a.Authenticate(request(""))
		wantStatus(t, err, 401, ks.URL)
		_, err = a.Authenticate(request("gAAAAAB-not-a-token"))
		wantStatus(t, err, 401, ks.URL)
		cfg := e.config(300)
		cfg.WWWAuthenticateURI = "https://keystone.example/identity"
		a, _ = New(cfg, Options{})
		_, err = a.Authenticate(request("bogus"))
		wantStatus(t, err, 401, "https://keystone.example/identity")
	})
	t.Run("cached", func(t *testing.T) {
		var calls counting
		a, _ := New(e.config(300), Options{Client: &http.Client{Transport: &calls, Timeout: time.Minute}})
		tok := ks.Token(t, e.member.Name, e.member.Password, e.project.Name)
		for i := range 3 {
			if _, err := a.Authenticate(request(tok.ID)); err != nil {
				t.Fatalf("request %d: %v", i, err)
			}
		}
		// the service token, then one validation
		if n := calls.n.Load(); n != 2 {
			t.Errorf("%d calls to keystone for 3 requests with one token, want 2", n)
		}
	})
	t.Run("revoked within the cache time", func(t *testing.T) {
		clk := newClock()
		var calls counting
		a, _ := New(e.config(30), Options{Now: clk.now, Client: &http.Client{Transport: &calls, Timeout: time.Minute}})
		tok := ks.Token(t, e.member.Name, e.member.Password, e.project.Name)
		if _, err := a.Authenticate(request(tok.ID)); err != nil {
			t.Fatal(err)
		}
		ks.RevokeToken(t, tok.ID)
		// the documented bound: still accepted from the cache...
		clk.advance(29 * time.Second)
		if _, err := a.Authenticate(request(tok.ID)); err != nil {
			t.Fatalf("within token_cache_time: %v, want the cached validation", err)
		}
		// ...and refused once token_cache_time has passed
		clk.advance(2 * time.Second)
		_, err := a.Authenticate(request(tok.ID))
		wantStatus(t, err, 401, ks.URL)
		// a fresh authenticator (another replica) refuses at once
		b, _ := New(e.config(30), Options{})
		_, err = b.Authenticate(request(tok.ID))
		wantStatus(t, err, 401, ks.URL)
	})
	t.Run("no cache", func(t *testing.T) {
		var calls counting
		a, _ := New(e.config(0), Options{Client: &http.Client{Transport: &calls, Timeout: time.Minute}})
		tok := ks.Token(t, e.member.Name, e.member.Password, e.project.Name)
		for range 2 {
			if _, err := a.Authenticate(request(tok.ID)); err != nil {
				t.Fatal(err)
			}
		}
		if n := calls.n.Load(); n != 3 {
			t.Errorf("%d calls with token_cache_time 0, want 3 (service token + 2 validations)", n)
		}
		ks.RevokeToken(t, tok.ID)
		_, err := a.Authenticate(request(tok.ID))
		wantStatus(t, err, 401, ks.URL)
	})
	t.Run("expiry caps the cache", func(t *testing.T) {
		clk := newClock()
		a, _ := New(e.config(3600), Options{Now: clk.now})
		tok := ks.Token(t, e.member.Name, e.member.Password, e.project.Name)
		if _, err := a.Authenticate(request(tok.ID)); err != nil {
			t.Fatal(err)
		}
		// past the token's expiry (10 min) but within token_cache_time (1 h)
		clk.advance(tok.ExpiresAt.Sub(clk.now()) + time.Second)
		_, err := a.Authenticate(request(tok.ID))
		wantStatus(t, err, 401, ks.URL)
	})
	t.Run("service token renewed", func(t *testing.T) {
		a, _ := New(e.config(0), Options{})
		tok := ks.Token(t, e.member.Name, e.member.Password, e.project.Name)
		if _, err := a.Authenticate(request(tok.ID)); err != nil {
			t.Fatal(err)
		}
		a.svcMu.Lock()
		old := a.svcTok
		a.svcMu.Unlock()
		if old.id == "" || !old.renewAt.Before(old.expireAt) {
			t.Fatalf("service token %+v", old)
		}
		// revoked behind the authenticator's back: Keystone answers 401
		// for the service token, which is re-issued
		ks.RevokeToken(t, old.id)
		if _, err := a.Authenticate(request(tok.ID)); err != nil {
			t.Fatalf("after the service token was revoked: %v", err)
		}
		a.svcMu.Lock()
		renewed := a.svcTok.id
		a.svcMu.Unlock()
		if renewed == old.id || renewed == "" {
			t.Errorf("service token not re-issued")
		}
	})
	t.Run("service token header", func(t *testing.T) {
		cfg := e.config(300)
		cfg.ServiceTokenRolesRequired = true
		a, _ := New(cfg, Options{})
		user := ks.Token(t, e.member.Name, e.member.Password, e.project.Name)
		svc := ks.Token(t, e.svc.Name, e.svc.Password, ks.AdminProject)
		c, err := a.Authenticate(request(user.ID, "X-Service-Token", svc.ID))
		if err != nil {
			t.Fatalf("with a service token: %v", err)
		}
		if c.UserID != e.member.ID {
			t.Errorf("credentials are the service's (%s), want the user's", c.UserID)
		}
		_, err = a.Authenticate(request(user.ID, "X-Service-Token", user.ID))
		wantStatus(t, err, 401, ks.URL)
		_, err = a.Authenticate(request(user.ID, "X-Service-Token", "bogus"))
		wantStatus(t, err, 401, ks.URL)
	})
	t.Run("wrong service password", func(t *testing.T) {
		cfg := e.config(300)
		cfg.Password = "wrong"
		a, _ := New(cfg, Options{})
		tok := ks.Token(t, e.member.Name, e.member.Password, e.project.Name)
		_, err := a.Authenticate(request(tok.ID))
		wantStatus(t, err, 503, "")
	})
}

func TestKeystoneDown(t *testing.T) {
	port, err := proctest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	url := "http://127.0.0.1:" + itoa(port) + "/v3"
	a, err := New(Config{AuthURL: url, Username: "u", Password: "p", ProjectName: "service", TokenCacheTime: 300}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = a.Authenticate(request("some-token"))
	wantStatus(t, err, 503, "")
	_, err = a.Authenticate(request(""))
	wantStatus(t, err, 401, url) // www_authenticate_uri defaults to auth_url
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestConfig(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     Config
		wantErr bool
		url     string
	}{
		{"complete", Config{AuthURL: "http://k:5000", Username: "u", Password: "p", ProjectName: "service"}, false, "http://k:5000/v3"},
		{"v3 suffix kept", Config{AuthURL: "http://k/identity/v3/", Username: "u", Password: "p", ProjectName: "s", AuthType: "password"}, false, "http://k/identity/v3"},
		{"no url", Config{Username: "u", Password: "p", ProjectName: "s"}, true, ""},
		{"no password", Config{AuthURL: "http://k", Username: "u", ProjectName: "s"}, true, ""},
		{"other plugin", Config{AuthURL: "http://k", Username: "u", Password: "p", ProjectName: "s", AuthType: "v3applicationcredential"}, true, ""},
	} {
		err := tc.cfg.Validate()
		if (err != nil) != tc.wantErr {
			t.Errorf("%s: Validate() = %v, want error %v", tc.name, err, tc.wantErr)
		}
		if !tc.wantErr && tc.cfg.IdentityURL() != tc.url {
			t.Errorf("%s: IdentityURL() = %q, want %q", tc.name, tc.cfg.IdentityURL(), tc.url)
		}
	}
}

// The mapping of Keystone's token document, scope by scope.
func TestCredentials(t *testing.T) {
	for _, tc := range []struct {
		name string
		doc  string
		want openstack.Credentials
	}{
		{"project", `{"token": {"user": {"id": "u1"}, "project": {"id": "p1", "domain": {"id": "default"}}, "roles": [{"name": "member"}, {"name": "reader"}]}}`,
			openstack.Credentials{UserID: "u1", ProjectID: "p1", Roles: []string{"member", "reader"}}},
		{"domain", `{"token": {"user": {"id": "u2"}, "domain": {"id": "d1", "name": "D"}, "roles": [{"name": "admin"}]}}`,
			openstack.Credentials{UserID: "u2", DomainID: "d1", Roles: []string{"admin"}}},
		{"system", `{"token": {"user": {"id": "u3"}, "system": {"all": true}, "roles": [{"name": "reader"}]}}`,
			openstack.Credentials{UserID: "u3", SystemScope: "all", Roles: []string{"reader"}}},
		{"unscoped", `{"token": {"user": {"id": "u4"}}}`, openstack.Credentials{UserID: "u4"}},
	} {
		var d tokenDoc
		if err := json.Unmarshal([]byte(tc.doc), &d); err != nil {
			t.Fatal(err)
		}
		got := d.Token.credentials()
		if got.UserID != tc.want.UserID || got.ProjectID != tc.want.ProjectID || got.DomainID != tc.want.DomainID ||
			got.SystemScope != tc.want.SystemScope || !slices.Equal(got.Roles, tc.want.Roles) {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}
