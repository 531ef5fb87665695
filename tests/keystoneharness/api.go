package keystoneharness

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// DefaultDomain is the domain every project and user of the harness is in.
const DefaultDomain = "default"

// Project is a Keystone project.
type Project struct{ ID, Name string }

// User is a Keystone user with the password the harness gave it.
type User struct{ ID, Name, Password string }

// Token is an issued token and what Keystone said about it.
type Token struct {
	ID        string
	ExpiresAt time.Time
	UserID    string
	ProjectID string // empty unless project-scoped
	System    bool   // system-scoped (system: {all: true})
	Roles     []string
}

// Do sends one request to the identity API (path relative to URL, e.g.
// "/projects") with token as X-Auth-Token ("" for none); body, when not
// nil, is sent as JSON, and a 2xx answer is decoded into out when out is
// not nil. It returns the response (body consumed) and an error for a
// transport failure or a non-2xx status, carrying Keystone's answer.
func (ks *Keystone) Do(ctx context.Context, method, path, token string, body, out any, header ...string) (*http.Response, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, ks.URL+path, r)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("X-Auth-Token", token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := ks.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp, fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return resp, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(b))
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return resp, fmt.Errorf("%s %s: decoding %s: %w", method, path, b, err)
		}
	}
	return resp, nil
}

// IssueToken authenticates user (domain Default) with password; project
// "" asks for a system-scoped token (system: all).
func (ks *Keystone) IssueToken(ctx context.Context, user, password, project string) (Token, error) {
	scope := map[string]any{"system": map[string]any{"all": true}}
	if project != "" {
		scope = map[string]any{"project": map[string]any{"name": project, "domain": map[string]any{"id": DefaultDomain}}}
	}
	body := map[string]any{"auth": map[string]any{
		"identity": map[string]any{"methods": []string{"password"}, "password": map[string]any{
			"user": map[string]any{"name": user, "domain": map[string]any{"id": DefaultDomain}, "password": password}}},
		"scope": scope,
	}}
	var out tokenBody
	resp, err := ks.Do(ctx, "POST", "/auth/tokens?nocatalog", "", body, &out)
	if err != nil {
		return Token{}, fmt.Errorf("token for %s (project %q): %w", user, project, err)
	}
	return out.token(resp.Header.Get("X-Subject-Token")), nil
}

// tokenBody is the part of Keystone's token document the harness reads.
type tokenBody struct {
	Token struct {
		ExpiresAt time.Time `json:"expires_at"`
		User      struct {
			ID string `json:"id"`
		} `json:"user"`
		Project *struct {
			ID string `json:"id"`
		} `json:"project"`
		System map[string]any `json:"system"`
		Roles  []struct {
			Name string `json:"name"`
		} `json:"roles"`
	} `json:"token"`
}

func (b tokenBody) token(id string) Token {
	t := Token{ID: id, ExpiresAt: b.Token.ExpiresAt, UserID: b.Token.User.ID, System: b.Token.System["all"] == true}
	if b.Token.Project != nil {
		t.ProjectID = b.Token.Project.ID
	}
	for _, r := range b.Token.Roles {
		t.Roles = append(t.Roles, r.Name)
	}
	return t
}

// Token is a project-scoped token of user (domain Default) on project
// (a name); project "" gives a system-scoped token.
func (ks *Keystone) Token(t testing.TB, user, password, project string) Token {
	t.Helper()
	tok, err := ks.IssueToken(context.Background(), user, password, project)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// SystemToken is a system-scoped (system: all) token of user.
func (ks *Keystone) SystemToken(t testing.TB, user, password string) Token {
	t.Helper()
	return ks.Token(t, user, password, "")
}

// AdminToken is a token of the bootstrap admin on the admin project,
// re-issued once half its lifetime has passed.
func (ks *Keystone) AdminToken(t testing.TB) string {
	t.Helper()
	id, err := ks.adminTokenID(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func (ks *Keystone) adminTokenID(ctx context.Context) (string, error) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	if ks.adminToken.ID != "" && time.Until(ks.adminToken.ExpiresAt) > ks.TokenExpiration/2 {
		return ks.adminToken.ID, nil
	}
	tok, err := ks.IssueToken(ctx, ks.AdminUser, ks.AdminPassword, ks.AdminProject)
	if err != nil {
		return "", err
	}
	ks.adminToken = tok
	return tok.ID, nil
}

// Admin sends a request as the bootstrap admin (see Do) and fails the test
// on any error.
func (ks *Keystone) Admin(t testing.TB, method, path string, body, out any) {
	t.Helper()
	if _, err := ks.Do(context.Background(), method, path, ks.AdminToken(t), body, out); err != nil {
		t.Fatal(err)
	}
}

// ValidateToken is GET /v3/auth/tokens for id as the admin: the status
// (200 valid, 404 expired, revoked or unknown) and the token on 200.
func (ks *Keystone) ValidateToken(t testing.TB, id string) (int, Token) {
	t.Helper()
	var out tokenBody
	resp, err := ks.Do(context.Background(), "GET", "/auth/tokens?nocatalog", ks.AdminToken(t), nil, &out, "X-Subject-Token", id)
	if resp == nil {
		t.Fatal(err)
	}
	if err != nil {
		return resp.StatusCode, Token{}
	}
	return resp.StatusCode, out.token(id)
}

// RevokeToken revokes the token id (DELETE /v3/auth/tokens, as the admin),
// as `openstack token revoke` does.
func (ks *Keystone) RevokeToken(t testing.TB, id string) {
	t.Helper()
	if _, err := ks.Do(context.Background(), "DELETE", "/auth/tokens", ks.AdminToken(t), nil, nil, "X-Subject-Token", id); err != nil {
		t.Fatal(err)
	}
}

// CreateProject creates project name in domain Default.
func (ks *Keystone) CreateProject(t testing.TB, name string) Project {
	t.Helper()
	var out struct {
		Project Project `json:"project"`
	}
	ks.Admin(t, "POST", "/projects", map[string]any{"project": map[string]any{"name": name, "domain_id": DefaultDomain}}, &out)
	out.Project.Name = name
	return out.Project
}

// EnsureRole returns the id of role name, creating it when missing
// (bootstrap creates admin, member and reader; service is created here).
func (ks *Keystone) EnsureRole(t testing.TB, name string) string {
	t.Helper()
	var list struct {
		Roles []struct{ ID, Name string } `json:"roles"`
	}
	ks.Admin(t, "GET", "/roles?name="+name, nil, &list)
	for _, r := range list.Roles {
		if strings.EqualFold(r.Name, name) {
			return r.ID
		}
	}
	var out struct {
		Role struct{ ID string } `json:"role"`
	}
	ks.Admin(t, "POST", "/roles", map[string]any{"role": map[string]any{"name": name}}, &out)
	return out.Role.ID
}

// CreateUser creates user name (domain Default, a random password) with
// roles on project p (none when p is the zero Project), e.g. "member",
// "reader", "admin", "service".
func (ks *Keystone) CreateUser(t testing.TB, name string, p Project, roles ...string) User {
	t.Helper()
	u := User{Name: name, Password: "pw-" + randomHex(8)}
	body := map[string]any{"user": map[string]any{"name": name, "domain_id": DefaultDomain, "password": u.Password, "enabled": true}}
	if p.ID != "" {
		body["user"].(map[string]any)["default_project_id"] = p.ID
	}
	var out struct {
		User struct{ ID string } `json:"user"`
	}
	ks.Admin(t, "POST", "/users", body, &out)
	u.ID = out.User.ID
	for _, r := range roles {
		ks.AssignProjectRole(t, u, p, r)
	}
	return u
}

// AssignProjectRole gives u role on p.
func (ks *Keystone) AssignProjectRole(t testing.TB, u User, p Project, role string) {
	t.Helper()
	ks.Admin(t, "PUT", "/projects/"+p.ID+"/users/"+u.ID+"/roles/"+ks.EnsureRole(t, role), nil, nil)
}

// AssignSystemRole gives u role on the whole system (system: all).
func (ks *Keystone) AssignSystemRole(t testing.TB, u User, role string) {
	t.Helper()
	ks.Admin(t, "PUT", "/system/users/"+u.ID+"/roles/"+ks.EnsureRole(t, role), nil, nil)
}

// RegisterService puts a service of type typ named name into the catalog,
// with public, internal and admin endpoints at url in the harness's
// region, as `openstack service create` + `openstack endpoint create` do.
// It returns the service id.
func (ks *Keystone) RegisterService(t testing.TB, typ, name, url string) string {
	t.Helper()
	var out struct {
		Service struct{ ID string } `json:"service"`
	}
	ks.Admin(t, "POST", "/services", map[string]any{"service": map[string]any{"type": typ, "name": name, "enabled": true}}, &out)
	for _, iface := range []string{"public", "internal", "admin"} {
		ks.Admin(t, "POST", "/endpoints", map[string]any{"endpoint": map[string]any{
			"service_id": out.Service.ID, "interface": iface, "url": url, "region_id": ks.Region, "enabled": true}}, nil)
	}
	return out.Service.ID
}

// OpenStackEnv is the environment for the `openstack` CLI (keystoneauth's
// password plugin) as user with password on project (a name, domain
// Default); project "" scopes to the system. Append it to a clean
// environment: OS_* variables already set would be mixed in otherwise.
func (ks *Keystone) OpenStackEnv(user, password, project string) []string {
	env := []string{
		"OS_AUTH_TYPE=password",
		"OS_AUTH_URL=" + ks.URL,
		"OS_IDENTITY_API_VERSION=3",
		"OS_USERNAME=" + user,
		"OS_PASSWORD=" + password,
		"OS_USER_DOMAIN_ID=" + DefaultDomain,
		"OS_REGION_NAME=" + ks.Region,
		"OS_INTERFACE=public",
	}
	if project == "" {
		return append(env, "OS_SYSTEM_SCOPE=all")
	}
	return append(env, "OS_PROJECT_NAME="+project, "OS_PROJECT_DOMAIN_ID="+DefaultDomain)
}

// CLIEnv is a clean environment for Debian's `openstack` CLI (PATH of the
// system directories only, so /usr/bin/python3 runs it; HOME set to the
// harness's directory) plus OpenStackEnv(user, password, project).
func (ks *Keystone) CLIEnv(user, password, project string) []string {
	return append(ks.BaseEnv(), ks.OpenStackEnv(user, password, project)...)
}

// BaseEnv is the clean environment of CLIEnv without any OS_* variable,
// for the CLI with another auth plugin (admin_token and a raw token).
func (ks *Keystone) BaseEnv() []string { return debianEnv(ks.Dir) }
