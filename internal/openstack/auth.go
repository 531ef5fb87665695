package openstack

import (
	"context"
	"net/http"
	"strings"
)

// Credentials are who is calling, as the policy engine sees them. noauth2
// tokens and (later) Keystone tokens are both mapped onto this one shape.
type Credentials struct {
	UserID    string
	ProjectID string // empty when the token is not project-scoped
	// DomainID is set for domain-scoped tokens.
	DomainID    string
	Roles       []string
	SystemScope string // "all" for system-scoped tokens
}

// HasRole reports whether the credentials carry role (case-insensitive, as
// oslo.policy compares roles).
func (c *Credentials) HasRole(role string) bool {
	for _, r := range c.Roles {
		if strings.EqualFold(r, role) {
			return true
		}
	}
	return false
}

type credentialsKey struct{}

// CredentialsFrom returns the authenticated caller, or nil.
func CredentialsFrom(ctx context.Context) *Credentials {
	c, _ := ctx.Value(credentialsKey{}).(*Credentials)
	return c
}

// WithCredentials stores c in ctx.
func WithCredentials(ctx context.Context, c *Credentials) context.Context {
	return context.WithValue(ctx, credentialsKey{}, c)
}

// Authenticator turns a request into credentials. It is the seam between
// the development noauth2 mode and Keystone token validation.
type Authenticator interface {
	Authenticate(r *http.Request) (*Credentials, error)
}

// ErrUnauthorized is returned by authenticators for a missing or invalid token.
var ErrUnauthorized = &Error{Status: http.StatusUnauthorized, Bare: true}

// NoAuth2 treats the token as "user[:project]", as upstream Placement's
// noauth2 middleware followed by oslo.context's from_environ does: any
// X-Auth-Token (even an empty one) authenticates; X-Roles, when present,
// replaces the roles (the user "admin" otherwise gets role admin); the
// token's project applies only when the request is not system-scoped, and
// X-Project-Id overrides it. It is for development and tests only.
type NoAuth2 struct{}

// Authenticate implements Authenticator.
func (NoAuth2) Authenticate(r *http.Request) (*Credentials, error) {
	tokens, ok := r.Header["X-Auth-Token"]
	if !ok || len(tokens) == 0 {
		return nil, ErrUnauthorized
	}
	user, project, _ := strings.Cut(tokens[0], ":")
	if project == "" {
		project = user
	}
	c := &Credentials{UserID: user, SystemScope: r.Header.Get("OpenStack-System-Scope"), DomainID: r.Header.Get("X-Domain-Id")}
	if roles, ok := r.Header["X-Roles"]; ok {
		for _, role := range strings.Split(strings.Join(roles, ","), ",") {
			if role = strings.TrimSpace(role); role != "" {
				c.Roles = append(c.Roles, role)
			}
		}
	} else if user == "admin" {
		c.Roles = []string{"admin"}
	}
	switch {
	case len(r.Header["X-Project-Id"]) > 0:
		c.ProjectID = r.Header.Get("X-Project-Id")
	case c.SystemScope == "":
		c.ProjectID = project
	case len(r.Header["X-Tenant-Id"]) > 0:
		c.ProjectID = r.Header.Get("X-Tenant-Id")
	default:
		c.ProjectID = r.Header.Get("X-Tenant")
	}
	return c, nil
}

// Authenticate requires credentials for every request except those public
// says are open (the version documents at the root).
func Authenticate(a Authenticator, public func(*http.Request) bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if public != nil && public(r) {
			next.ServeHTTP(w, r)
			return
		}
		c, err := a.Authenticate(r)
		if err != nil {
			WriteError(w, r, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(WithCredentials(r.Context(), c)))
	})
}
