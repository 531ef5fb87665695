package novaharness

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// Keystone is a running Keystone an environment authenticates against
// (Options.Keystone): nova-api validates tokens with keystonemiddleware,
// Nova reaches Placement as a service user finding it in the catalog,
// unisched serve validates both Nova's service tokens and the users'.
// The harness registers its services, endpoints and service users in it
// with the admin's credentials; it never starts or stops Keystone.
type Keystone struct {
	// URL is the identity endpoint, http://host:port/v3.
	URL string
	// AdminUser (domain Default) has the admin role on AdminProject
	// (domain Default): what `keystone-manage bootstrap` creates.
	AdminUser, AdminPassword, AdminProject string
	// Region of the endpoints registered ("": RegionOne).
	Region string
}

func (k Keystone) region() string {
	if k.Region == "" {
		return "RegionOne"
	}
	return k.Region
}

// ServiceProject is the project the service users belong to.
const ServiceProject = "service"

// Service users the harness creates in Keystone, each with the admin and
// service roles on ServiceProject (what a deployment tool gives them:
// Keystone's token validation and Placement's legacy policy want admin,
// Nova's service-token check wants service).
const (
	NovaServiceUser     = "nova"
	UnischedServiceUser = "unisched"
	GlanceServiceUser   = "glance"
)

// Credentials are a Keystone user's password credentials, project-scoped
// (domain Default for both).
type Credentials struct {
	Username, Password, Project string
}

// KeystoneEnv is what Start registered in Keystone.
type KeystoneEnv struct {
	Keystone
	// ServiceProjectID is the id of ServiceProject.
	ServiceProjectID string
	// Users are the service users by name (NovaServiceUser ...).
	Users map[string]Credentials
	// AgentToken is the secret the agents send serve (its
	// container_api.agent_token), not a Keystone token.
	AgentToken string

	http *http.Client
	mu   sync.Mutex
	// tokens caches project-scoped tokens by user and project.
	tokens map[string]cachedToken
}

type cachedToken struct {
	id      string
	expires time.Time
}

func (k *KeystoneEnv) admin() Credentials {
	return Credentials{Username: k.AdminUser, Password: k.AdminPassword, Project: k.AdminProject}
}

// Token is a project-scoped token of c (password auth), cached until a
// few minutes before it expires.
func (k *KeystoneEnv) Token(ctx context.Context, c Credentials) (string, error) {
	key := c.Username + "\x00" + c.Project
	k.mu.Lock()
	t, ok := k.tokens[key]
	k.mu.Unlock()
	if ok && time.Until(t.expires) > 5*time.Minute {
		return t.id, nil
	}
	body := map[string]any{"auth": map[string]any{
		"identity": map[string]any{"methods": []string{"password"}, "password": map[string]any{
			"user": map[string]any{"name": c.Username, "password": c.Password, "domain": map[string]any{"name": "Default"}}}},
		"scope": map[string]any{"project": map[string]any{"name": c.Project, "domain": map[string]any{"name": "Default"}}},
	}}
	var out struct {
		Token struct {
			ExpiresAt time.Time `json:"expires_at"`
		} `json:"token"`
	}
	hdr, err := k.call(ctx, http.MethodPost, "/auth/tokens", "", body, &out)
	if err != nil {
		return "", fmt.Errorf("keystone: token of %s in project %s: %w", c.Username, c.Project, err)
	}
	id := hdr.Get("X-Subject-Token")
	if id == "" {
		return "", fmt.Errorf("keystone: token of %s: no X-Subject-Token in the answer", c.Username)
	}
	k.mu.Lock()
	k.tokens[key] = cachedToken{id: id, expires: out.Token.ExpiresAt}
	k.mu.Unlock()
	return id, nil
}

// AdminToken is the admin's token in AdminProject.
func (k *KeystoneEnv) AdminToken(ctx context.Context) (string, error) { return k.Token(ctx, k.admin()) }

// call sends one identity API request (path below /v3) with token (""
// none) and decodes the JSON answer into out; a non-2xx answer is an
// *APIError.
func (k *KeystoneEnv) call(ctx context.Context, method, path, token string, body, out any) (http.Header, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	u := strings.TrimSuffix(k.URL, "/") + path
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("X-Auth-Token", token)
	}
	resp, err := k.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, u, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: reading the answer: %w", method, u, err)
	}
	if resp.StatusCode/100 != 2 {
		return resp.Header, &APIError{Method: method, URL: u, Status: resp.StatusCode, Body: string(data)}
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return resp.Header, fmt.Errorf("%s %s: decoding %q: %w", method, u, data, err)
		}
	}
	return resp.Header, nil
}

// adminCall is call with the admin's token.
func (k *KeystoneEnv) adminCall(ctx context.Context, method, path string, body, out any) error {
	tok, err := k.AdminToken(ctx)
	if err != nil {
		return err
	}
	_, err = k.call(ctx, method, path, tok, body, out)
	return err
}

// findOrCreate returns the id of the entity of kind (projects, users,
// roles, services) listed by query, creating it with body when the list
// is empty.
func (k *KeystoneEnv) findOrCreate(ctx context.Context, kind, query string, body map[string]any) (string, bool, error) {
	var list map[string]json.RawMessage
	if err := k.adminCall(ctx, http.MethodGet, "/"+kind+"?"+query, nil, &list); err != nil {
		return "", false, err
	}
	var found []struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(list[kind], &found); err != nil {
		return "", false, fmt.Errorf("keystone: GET /%s: %w", kind, err)
	}
	if len(found) > 0 {
		return found[0].ID, false, nil
	}
	single := strings.TrimSuffix(kind, "s")
	var created map[string]struct {
		ID string `json:"id"`
	}
	if err := k.adminCall(ctx, http.MethodPost, "/"+kind, map[string]any{single: body}, &created); err != nil {
		return "", false, err
	}
	return created[single].ID, true, nil
}

// catalogEntry is one service of the catalog and its endpoints by
// interface.
type catalogEntry struct {
	Type, Name string
	URLs       map[string]string // interface -> URL
}

// catalog is what an environment registers: the compute API is unisched's
// Nova proxy for users (public) and nova-api itself inside (internal:
// serve's own Nova client); Placement is unisched for users and the wire
// recorder in front of it for Nova (internal, what Nova's report client
// prefers); Glance; unisched's container API (Zun's service type).
func (e *Env) catalog() []catalogEntry {
	return []catalogEntry{
		{Type: "compute", Name: "nova", URLs: map[string]string{"public": e.ProxyURL, "internal": e.NovaURL}},
		{Type: "placement", Name: "placement", URLs: map[string]string{"public": e.PlacementURL, "internal": e.PlacementWireURL}},
		{Type: "image", Name: "glance", URLs: map[string]string{"public": e.GlanceURL, "internal": e.GlanceURL}},
		{Type: "container", Name: "zun", URLs: map[string]string{"public": e.ContainerURL + "/v1", "internal": e.ContainerURL + "/v1"}},
	}
}

// setupKeystone registers the environment in Keystone: project service,
// role service, the service users with fresh passwords and their roles,
// and the catalog. An environment owns its service types' endpoints in
// its region: endpoints a previous environment left there are replaced.
func (e *Env) setupKeystone(ctx context.Context) error {
	t0 := time.Now()
	k := &KeystoneEnv{Keystone: *e.opts.Keystone, Users: map[string]Credentials{}, AgentToken: randomPassword(),
		// one connection per request: uwsgi's http-socket may close a
		// kept-alive connection, and a POST is not retried on another;
		// minutes: a loaded machine's Keystone was seen to take over one
		http: &http.Client{Timeout: 3 * time.Minute, Transport: &http.Transport{DisableKeepAlives: true}}, tokens: map[string]cachedToken{}}
	if k.URL == "" || k.AdminUser == "" || k.AdminProject == "" {
		return errors.New("novaharness: Options.Keystone needs URL, AdminUser and AdminProject")
	}
	k.URL = strings.TrimSuffix(k.URL, "/")
	e.Keystone = k
	var err error
	if _, err := k.AdminToken(ctx); err != nil {
		return err
	}
	var domain struct {
		Domain struct {
			ID string `json:"id"`
		} `json:"domain"`
	}
	if err := k.adminCall(ctx, http.MethodGet, "/domains/default", nil, &domain); err != nil {
		return fmt.Errorf("keystone: domain default: %w", err)
	}
	k.ServiceProjectID, _, err = k.findOrCreate(ctx, "projects", "name="+ServiceProject+"&domain_id="+domain.Domain.ID,
		map[string]any{"name": ServiceProject, "domain_id": domain.Domain.ID, "description": "OpenStack services"})
	if err != nil {
		return fmt.Errorf("keystone: project %s: %w", ServiceProject, err)
	}
	roles := map[string]string{}
	for _, r := range []string{"admin", "service"} {
		id, _, err := k.findOrCreate(ctx, "roles", "name="+r, map[string]any{"name": r})
		if err != nil {
			return fmt.Errorf("keystone: role %s: %w", r, err)
		}
		roles[r] = id
	}
	for _, name := range []string{NovaServiceUser, UnischedServiceUser, GlanceServiceUser} {
		pw := randomPassword()
		id, created, err := k.findOrCreate(ctx, "users", "name="+name+"&domain_id="+domain.Domain.ID,
			map[string]any{"name": name, "domain_id": domain.Domain.ID, "password": pw, "default_project_id": k.ServiceProjectID})
		if err != nil {
			return fmt.Errorf("keystone: user %s: %w", name, err)
		}
		if !created {
			if err := k.adminCall(ctx, http.MethodPatch, "/users/"+id, map[string]any{"user": map[string]any{"password": pw}}, nil); err != nil {
				return fmt.Errorf("keystone: resetting %s's password: %w", name, err)
			}
		}
		for _, r := range []string{"admin", "service"} {
			if err := k.adminCall(ctx, http.MethodPut, "/projects/"+k.ServiceProjectID+"/users/"+id+"/roles/"+roles[r], nil, nil); err != nil {
				return fmt.Errorf("keystone: role %s for %s: %w", r, name, err)
			}
		}
		k.Users[name] = Credentials{Username: name, Password: pw, Project: ServiceProject}
	}
	if err := e.registerCatalog(ctx, k); err != nil {
		return err
	}
	e.timed("keystone: service users and catalog", t0)
	return nil
}

func (e *Env) registerCatalog(ctx context.Context, k *KeystoneEnv) error {
	region := k.region()
	var regions struct {
		Regions []struct {
			ID string `json:"id"`
		} `json:"regions"`
	}
	if err := k.adminCall(ctx, http.MethodGet, "/regions", nil, &regions); err != nil {
		return fmt.Errorf("keystone: regions: %w", err)
	}
	found := false
	for _, r := range regions.Regions {
		found = found || r.ID == region
	}
	if !found {
		if err := k.adminCall(ctx, http.MethodPost, "/regions", map[string]any{"region": map[string]any{"id": region}}, nil); err != nil {
			return fmt.Errorf("keystone: region %s: %w", region, err)
		}
	}
	for _, s := range e.catalog() {
		id, _, err := k.findOrCreate(ctx, "services", "type="+url.QueryEscape(s.Type),
			map[string]any{"type": s.Type, "name": s.Name, "enabled": true})
		if err != nil {
			return fmt.Errorf("keystone: service %s: %w", s.Type, err)
		}
		var eps struct {
			Endpoints []struct {
				ID       string `json:"id"`
				RegionID string `json:"region_id"`
			} `json:"endpoints"`
		}
		if err := k.adminCall(ctx, http.MethodGet, "/endpoints?service_id="+id, nil, &eps); err != nil {
			return fmt.Errorf("keystone: endpoints of %s: %w", s.Type, err)
		}
		for _, ep := range eps.Endpoints {
			if ep.RegionID != region {
				continue
			}
			if err := k.adminCall(ctx, http.MethodDelete, "/endpoints/"+ep.ID, nil, nil); err != nil {
				return fmt.Errorf("keystone: replacing endpoint %s of %s: %w", ep.ID, s.Type, err)
			}
		}
		for iface, u := range s.URLs {
			if err := k.adminCall(ctx, http.MethodPost, "/endpoints", map[string]any{"endpoint": map[string]any{
				"service_id": id, "interface": iface, "url": u, "region_id": region, "enabled": true}}, nil); err != nil {
				return fmt.Errorf("keystone: %s endpoint of %s: %w", iface, s.Type, err)
			}
		}
	}
	return nil
}

func randomPassword() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// authToken is the token the helpers (Nova, Placement) send as the admin:
// noauth2's "admin:admin" without Keystone, else the Keystone admin's.
func (e *Env) authToken(ctx context.Context, noauth string) (string, error) {
	if e.Keystone == nil {
		return noauth, nil
	}
	return e.Keystone.AdminToken(ctx)
}

// ksAuthSection is a keystoneauth password-plugin section for a service
// user (oslo.config key/value pairs).
func (e *Env) ksAuthSection(user string, extra ...string) []string {
	k := e.Keystone
	c := k.Users[user]
	return append([]string{
		"auth_type", "password",
		"auth_url", k.URL,
		"username", c.Username,
		"password", c.Password,
		"project_name", c.Project,
		"user_domain_name", "Default",
		"project_domain_name", "Default",
		"region_name", k.region(),
	}, extra...)
}

// keystoneNova writes the sections every nova process reads with
// Keystone: keystonemiddleware's authtoken (only nova-api uses it), the
// service user's token sent beside the user's on calls to other services,
// and Placement found in the catalog (internal: the wire recorder)
// with the nova service user's password.
func (e *Env) keystoneNova(c *ini) {
	c.section("keystone_authtoken", e.ksAuthSection(NovaServiceUser,
		"www_authenticate_uri", e.Keystone.URL,
		// the identity endpoint keystonemiddleware validates tokens at:
		// every Keystone has a public one (bootstrap), not always more
		"interface", "public",
		"service_token_roles_required", "true",
		"service_type", "compute")...)
	c.section("service_user", e.ksAuthSection(NovaServiceUser, "send_service_user_token", "true")...)
	c.section("placement", e.ksAuthSection(NovaServiceUser, append([]string{"valid_interfaces", "internal"}, placementRetries...)...)...)
}

// keystoneServe is the part of serve's configuration that makes it
// validate tokens with Keystone, and reach Nova (topology,
// reconciliation) as its service user through the catalog's internal
// compute endpoint (nova-api itself).
func (e *Env) keystoneServe() map[string]any {
	k := e.Keystone
	u := k.Users[UnischedServiceUser]
	return map[string]any{
		"placement":     map[string]any{"auth_strategy": "keystone"},
		"container_api": map[string]any{"agent_token": k.AgentToken},
		"keystone_authtoken": map[string]any{
			"www_authenticate_uri": k.URL,
			"auth_url":             k.URL,
			"username":             u.Username,
			"password":             u.Password,
			"project_name":         u.Project,
			"user_domain_name":     "Default",
			"project_domain_name":  "Default",
			"region_name":          k.region(),
			// Keystone on a loaded test machine answers in seconds, not
			// milliseconds: a refused validation fails Nova's call
			"http_connect_timeout": 120,
		},
		"nova": map[string]any{
			"auth_url":            k.URL,
			"username":            u.Username,
			"password":            u.Password,
			"project_name":        u.Project,
			"user_domain_name":    "Default",
			"project_domain_name": "Default",
			"region_name":         k.region(),
			"interface":           "internal",
			"endpoint":            "",
			"token":               "",
		},
	}
}

// keystoneAgent gives an agent's configuration the shared secret serve
// accepts from agents beside Keystone's tokens (container_api.agent_token:
// agents hold no Keystone credentials).
func (e *Env) keystoneAgent(_ context.Context, cfg map[string]any) error {
	if e.Keystone == nil {
		return nil
	}
	cfg["agent"].(map[string]any)["token"] = e.Keystone.AgentToken
	return nil
}

// OpenStackEnv is the environment of the `openstack` CLI authenticating
// as c with its password (the catalog then leads it to unisched's Nova
// proxy, Placement, Glance).
func (e *Env) OpenStackEnv(c Credentials) []string {
	k := e.Keystone
	return []string{
		"OS_AUTH_TYPE=password",
		"OS_AUTH_URL=" + k.URL,
		"OS_IDENTITY_API_VERSION=3",
		"OS_USERNAME=" + c.Username,
		"OS_PASSWORD=" + c.Password,
		"OS_PROJECT_NAME=" + c.Project,
		"OS_USER_DOMAIN_NAME=Default",
		"OS_PROJECT_DOMAIN_NAME=Default",
		"OS_REGION_NAME=" + k.region(),
		"OS_INTERFACE=public",
		"OS_COMPUTE_API_VERSION=" + NovaVersion,
	}
}

// CLIAs is the real `openstack` command (Debian's, on /usr/bin/python3,
// clean environment) authenticating as c against Keystone with its
// password; the catalog gives it the endpoints.
func (e *Env) CLIAs(ctx context.Context, c Credentials, args ...string) (*exec.Cmd, error) {
	if e.Keystone == nil {
		return nil, errors.New("novaharness: CLIAs needs an environment started with Options.Keystone")
	}
	const bin = "/usr/bin/openstack"
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("the openstack CLI is not installed (apt-get install python3-openstackclient): %w", err)
	}
	cmd := exec.CommandContext(ctx, "/usr/bin/python3", append([]string{bin}, args...)...)
	cmd.Env = append([]string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + e.Dir, "LANG=C.UTF-8"}, e.OpenStackEnv(c)...)
	return cmd, nil
}
