// Package keystone authenticates API requests against Keystone v3, as
// keystonemiddleware's auth_token does in front of upstream Placement and
// Zun: the X-Auth-Token of a request is validated with
// GET /v3/auth/tokens (X-Subject-Token), authenticated with the service's
// own token (password authentication of the service user of the
// [keystone_authtoken] section, re-issued before it expires), and the
// token's user, project, domain, system scope and roles become the
// openstack.Credentials that the policy engines read, exactly as the
// noauth2 mode's do.
//
// Validations are cached in memory for the shorter of token_cache_time
// and the token's remaining life. The cache is the bound on revocation:
// a token revoked in Keystone is refused at the latest token_cache_time
// after it was last validated by this process (Keystone itself answers
// 404 at once; keystonemiddleware has the same bound). A token_cache_time
// of 0 (or less) validates every request.
package keystone

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/unisched/unisched/internal/openstack"
)

// Config is the [keystone_authtoken] section, with keystonemiddleware's
// key names.
type Config struct {
	// WWWAuthenticateURI is the Keystone endpoint clients are sent to in
	// a 401's WWW-Authenticate header (the public identity URL); default
	// AuthURL.
	WWWAuthenticateURI string `mapstructure:"www_authenticate_uri"`
	// AuthURL is the identity endpoint the service talks to, with or
	// without the /v3 suffix.
	AuthURL string `mapstructure:"auth_url"`
	// AuthType must be "password" (the only plugin supported).
	AuthType          string `mapstructure:"auth_type"`
	Username          string `mapstructure:"username"`
	Password          string `mapstructure:"password"`
	ProjectName       string `mapstructure:"project_name"`
	UserDomainName    string `mapstructure:"user_domain_name"`
	ProjectDomainName string `mapstructure:"project_domain_name"`
	// RegionName is the service's region (used by the catalog commands).
	RegionName string `mapstructure:"region_name"`
	// TokenCacheTime is how long, in seconds, a validated token is
	// trusted without asking Keystone again (keystonemiddleware's
	// default: 300); 0 or less asks every time.
	TokenCacheTime int `mapstructure:"token_cache_time"`
	// ServiceTokenRoles: a X-Service-Token sent with a request must carry
	// one of these roles to count as a service token.
	ServiceTokenRoles []string `mapstructure:"service_token_roles"`
	// ServiceTokenRolesRequired refuses (401) a request whose
	// X-Service-Token lacks ServiceTokenRoles, instead of ignoring it.
	ServiceTokenRolesRequired bool `mapstructure:"service_token_roles_required"`
	// HTTPConnectTimeout bounds each call to Keystone (seconds; default 10).
	HTTPConnectTimeout int `mapstructure:"http_connect_timeout"`
	// MaxCachedTokens bounds the cache (default 10000 tokens).
	MaxCachedTokens int `mapstructure:"max_cached_tokens"`
}

// Validate checks what serve needs to start in keystone mode.
func (c Config) Validate() error {
	var missing []string
	for _, f := range []struct{ key, v string }{
		{"auth_url", c.AuthURL}, {"username", c.Username}, {"password", c.Password}, {"project_name", c.ProjectName},
	} {
		if f.v == "" {
			missing = append(missing, "keystone_authtoken."+f.key)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("keystone authentication needs %s", strings.Join(missing, ", "))
	}
	if c.AuthType != "" && c.AuthType != "password" {
		return fmt.Errorf("keystone_authtoken.auth_type %q is not supported (password only)", c.AuthType)
	}
	return nil
}

// IdentityURL is AuthURL with exactly one /v3 suffix.
func (c Config) IdentityURL() string {
	u := strings.TrimRight(c.AuthURL, "/")
	if !strings.HasSuffix(u, "/v3") {
		u += "/v3"
	}
	return u
}

// Authenticator implements openstack.Authenticator with Keystone.
type Authenticator struct {
	cfg      Config
	identity string // .../v3
	www      string // the WWW-Authenticate header's value
	ttl      time.Duration
	client   *http.Client
	log      *slog.Logger
	now      func() time.Time

	svcMu  sync.Mutex
	svcTok serviceToken

	mu    sync.Mutex
	cache map[[32]byte]cached
}

var _ openstack.Authenticator = (*Authenticator)(nil)

type serviceToken struct {
	id       string
	renewAt  time.Time
	expireAt time.Time
}

type cached struct {
	creds   openstack.Credentials
	service bool // carries one of service_token_roles
	until   time.Time
}

// Options are the Authenticator's collaborators; zero values are fine.
type Options struct {
	Client *http.Client
	Logger *slog.Logger
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

// New builds an Authenticator. It does not contact Keystone: the service
// token is fetched at the first request, so serve starts while Keystone
// is still coming up.
func New(cfg Config, o Options) (*Authenticator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.UserDomainName == "" {
		cfg.UserDomainName = "Default"
	}
	if cfg.ProjectDomainName == "" {
		cfg.ProjectDomainName = "Default"
	}
	if len(cfg.ServiceTokenRoles) == 0 {
		cfg.ServiceTokenRoles = []string{"service"}
	}
	if cfg.MaxCachedTokens <= 0 {
		cfg.MaxCachedTokens = 10000
	}
	timeout := 10 * time.Second
	if cfg.HTTPConnectTimeout > 0 {
		timeout = time.Duration(cfg.HTTPConnectTimeout) * time.Second
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: timeout}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	www := cfg.WWWAuthenticateURI
	if www == "" {
		www = cfg.AuthURL
	}
	return &Authenticator{
		cfg:      cfg,
		identity: cfg.IdentityURL(),
		www:      fmt.Sprintf("Keystone uri=%q", www),
		ttl:      time.Duration(cfg.TokenCacheTime) * time.Second,
		client:   o.Client,
		log:      o.Logger.With("component", "keystone-auth"),
		now:      o.Now,
		cache:    map[[32]byte]cached{},
	}, nil
}

// Authenticate implements openstack.Authenticator: a missing, invalid,
// expired or revoked token is a 401 carrying WWW-Authenticate; Keystone
// not answering is a 503, as keystonemiddleware answers.
func (a *Authenticator) Authenticate(r *http.Request) (*openstack.Credentials, error) {
	token := r.Header.Get("X-Auth-Token")
	if token == "" {
		return nil, a.unauthorized("The request you have made requires authentication.")
	}
	c, _, err := a.validate(r.Context(), token)
	if err != nil {
		return nil, err
	}
	if st := r.Header.Get("X-Service-Token"); st != "" {
		_, service, err := a.validate(r.Context(), st)
		if err != nil {
			return nil, err
		}
		if !service && a.cfg.ServiceTokenRolesRequired {
			return nil, a.unauthorized("The service token lacks the roles service_token_roles requires.")
		}
	}
	return c, nil
}

// validate returns the credentials of token (a copy: callers may keep it)
// and whether it carries one of the service roles.
func (a *Authenticator) validate(ctx context.Context, token string) (*openstack.Credentials, bool, error) {
	key := sha256.Sum256([]byte(token))
	now := a.now()
	a.mu.Lock()
	e, ok := a.cache[key]
	a.mu.Unlock()
	if ok && now.Before(e.until) {
		c := e.creds
		c.Roles = append([]string(nil), e.creds.Roles...)
		return &c, e.service, nil
	}
	info, err := a.check(ctx, token, true)
	if err != nil {
		return nil, false, err
	}
	if !info.ExpiresAt.IsZero() && !now.Before(info.ExpiresAt) {
		return nil, false, a.unauthorized("The token has expired.")
	}
	creds := info.credentials()
	service := false
	for _, want := range a.cfg.ServiceTokenRoles {
		service = service || creds.HasRole(want)
	}
	if a.ttl > 0 {
		until := now.Add(a.ttl)
		if !info.ExpiresAt.IsZero() && info.ExpiresAt.Before(until) {
			until = info.ExpiresAt
		}
		a.store(key, cached{creds: creds, service: service, until: until}, now)
	}
	c := creds
	c.Roles = append([]string(nil), creds.Roles...)
	return &c, service, nil
}

// store caches one validation; a full cache first drops what expired
// and, if still full, everything (a flood of distinct tokens costs
// Keystone calls, never unbounded memory).
func (a *Authenticator) store(key [32]byte, e cached, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.cache) >= a.cfg.MaxCachedTokens {
		for k, v := range a.cache {
			if !now.Before(v.until) {
				delete(a.cache, k)
			}
		}
		if len(a.cache) >= a.cfg.MaxCachedTokens {
			clear(a.cache)
		}
	}
	a.cache[key] = e
}

// check asks Keystone about token with the service token; a 401 for the
// service token (expired or revoked meanwhile) gets a new one, once.
func (a *Authenticator) check(ctx context.Context, token string, retry bool) (*tokenInfo, error) {
	svc, err := a.serviceToken(ctx)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, "GET", a.identity+"/auth/tokens?nocatalog", nil)
	if err != nil {
		return nil, fmt.Errorf("validating a token: %w", err)
	}
	req.Header.Set("X-Auth-Token", svc)
	req.Header.Set("X-Subject-Token", token)
	req.Header.Set("Accept", "application/json")
	resp, err := a.client.Do(req)
	if err != nil {
		a.log.Warn("keystone unreachable", "url", a.identity, "error", err)
		return nil, unavailable()
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, unavailable()
	}
	switch resp.StatusCode {
	case http.StatusOK:
		var doc tokenDoc
		if err := json.Unmarshal(body, &doc); err != nil {
			a.log.Warn("keystone token document", "error", err)
			return nil, unavailable()
		}
		return &doc.Token, nil
	case http.StatusNotFound:
		// unknown, expired or revoked
		return nil, a.unauthorized("The request you have made requires authentication.")
	case http.StatusUnauthorized, http.StatusForbidden:
		a.dropServiceToken(svc)
		if retry {
			return a.check(ctx, token, false)
		}
		a.log.Warn("keystone refuses the service token", "status", resp.StatusCode, "user", a.cfg.Username)
		return nil, unavailable()
	default:
		a.log.Warn("keystone token validation", "status", resp.StatusCode, "body", string(bytes.TrimSpace(body)))
		return nil, unavailable()
	}
}

// serviceToken is the service user's token, re-issued once half its
// life (at most two minutes before expiry, as keystoneauth) has passed.
func (a *Authenticator) serviceToken(ctx context.Context) (string, error) {
	a.svcMu.Lock()
	defer a.svcMu.Unlock()
	now := a.now()
	if a.svcTok.id != "" && now.Before(a.svcTok.renewAt) {
		return a.svcTok.id, nil
	}
	tok, err := a.issue(ctx)
	if err != nil {
		if a.svcTok.id != "" && now.Before(a.svcTok.expireAt) {
			a.log.Warn("renewing the service token failed; the old one is still valid", "error", err)
			return a.svcTok.id, nil
		}
		a.log.Warn("getting the service token", "url", a.identity, "user", a.cfg.Username, "error", err)
		return "", unavailable()
	}
	a.svcTok = tok
	return tok.id, nil
}

func (a *Authenticator) dropServiceToken(id string) {
	a.svcMu.Lock()
	defer a.svcMu.Unlock()
	if a.svcTok.id == id {
		a.svcTok = serviceToken{}
	}
}

// issue is the service user's password authentication, scoped to its
// project.
func (a *Authenticator) issue(ctx context.Context) (serviceToken, error) {
	body, err := json.Marshal(map[string]any{"auth": map[string]any{
		"identity": map[string]any{"methods": []string{"password"}, "password": map[string]any{
			"user": map[string]any{"name": a.cfg.Username, "password": a.cfg.Password, "domain": map[string]any{"name": a.cfg.UserDomainName}}}},
		"scope": map[string]any{"project": map[string]any{"name": a.cfg.ProjectName, "domain": map[string]any{"name": a.cfg.ProjectDomainName}}},
	}})
	if err != nil {
		return serviceToken{}, err
	}
	req, err := http.NewRequestWithContext(ctx, "POST", a.identity+"/auth/tokens?nocatalog", bytes.NewReader(body))
	if err != nil {
		return serviceToken{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	sent := a.now()
	resp, err := a.client.Do(req)
	if err != nil {
		return serviceToken{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return serviceToken{}, err
	}
	if resp.StatusCode != http.StatusCreated {
		return serviceToken{}, fmt.Errorf("POST %s/auth/tokens: %s: %s", a.identity, resp.Status, bytes.TrimSpace(b))
	}
	id := resp.Header.Get("X-Subject-Token")
	var doc tokenDoc
	if err := json.Unmarshal(b, &doc); err != nil || id == "" {
		return serviceToken{}, fmt.Errorf("POST %s/auth/tokens: no token in the answer (%v)", a.identity, err)
	}
	exp := doc.Token.ExpiresAt
	if exp.IsZero() {
		exp = sent.Add(time.Hour)
	}
	margin := min(exp.Sub(sent)/2, 2*time.Minute)
	return serviceToken{id: id, expireAt: exp, renewAt: exp.Add(-margin)}, nil
}

func (a *Authenticator) unauthorized(detail string) error {
	return &openstack.Error{Status: http.StatusUnauthorized, Bare: true, Detail: detail,
		Header: http.Header{"Www-Authenticate": {a.www}}}
}

func unavailable() error {
	return &openstack.Error{Status: http.StatusServiceUnavailable, Bare: true,
		Detail: "The Keystone service is temporarily unavailable."}
}

// tokenDoc is the part of Keystone's token document mapped to credentials.
type tokenDoc struct {
	Token tokenInfo `json:"token"`
}

type tokenInfo struct {
	ExpiresAt time.Time `json:"expires_at"`
	User      struct {
		ID string `json:"id"`
	} `json:"user"`
	Project *struct {
		ID     string `json:"id"`
		Domain struct {
			ID string `json:"id"`
		} `json:"domain"`
	} `json:"project"`
	Domain *struct {
		ID string `json:"id"`
	} `json:"domain"`
	System map[string]any `json:"system"`
	Roles  []struct {
		Name string `json:"name"`
	} `json:"roles"`
}

// credentials maps a token as oslo.context's from_environ maps
// keystonemiddleware's headers: the role names (implied roles included,
// Keystone expands them), the project of a project-scoped token, the
// domain of a domain-scoped one, "all" for system scope.
func (t *tokenInfo) credentials() openstack.Credentials {
	c := openstack.Credentials{UserID: t.User.ID}
	if t.Project != nil {
		c.ProjectID = t.Project.ID
	}
	if t.Domain != nil {
		c.DomainID = t.Domain.ID
	}
	if all, _ := t.System["all"].(bool); all {
		c.SystemScope = "all"
	}
	for _, r := range t.Roles {
		c.Roles = append(c.Roles, r.Name)
	}
	return c
}
