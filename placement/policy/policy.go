// Package policy decides whether credentials may perform a Placement
// operation, reproducing upstream Placement 8.0.0's registered defaults and
// oslo.policy's evaluation of them in three configurations: the legacy
// defaults (Zed's enforce_scope=False, enforce_new_defaults=False), secure
// RBAC (both True), and "open", where every rule but admin_api is "@"
// (any authenticated caller).
package policy

import (
	"fmt"
	"slices"

	"github.com/unisched/unisched/internal/openstack"
)

// Mode selects a preset Config.
type Mode string

const (
	// Legacy accepts the new defaults or the deprecated role:admin rules
	// and does not enforce scope.
	Legacy Mode = "legacy"
	// SecureRBAC enforces scope and the new defaults only.
	SecureRBAC Mode = "secure_rbac"
	// Open allows any authenticated caller everything.
	Open Mode = "open"
)

// ParseMode validates a configured mode name.
func ParseMode(s string) (Mode, error) {
	switch Mode(s) {
	case Legacy, SecureRBAC, Open:
		return Mode(s), nil
	case "":
		return Legacy, nil
	}
	return "", fmt.Errorf("unknown policy mode %q (want legacy, secure_rbac or open)", s)
}

// Config mirrors the [oslo_policy] options and a policy file's overrides.
type Config struct {
	EnforceScope       bool
	EnforceNewDefaults bool
	// Overrides maps rule names to check strings, as a policy file does.
	// An overridden rule loses its deprecated alternative.
	Overrides map[string]string
}

// Target is what a rule's "%(...)s" references are checked against. Only
// placement:usages passes one upstream ({'project_id': <query project_id>});
// an empty ProjectID stands for Python's None there, which equals the
// project of a caller that has none (a system-scoped token), as str(None)
// comparisons make it in oslo.policy.
type Target struct {
	ProjectID string
}

// Enforcer checks rules for one Config. It is immutable once built.
type Enforcer struct {
	mode   Mode
	scope  bool
	rules  map[string]check
	scopes map[string][]Scope
}

// New returns an Enforcer for a preset mode.
func New(mode Mode) *Enforcer {
	var cfg Config
	switch mode {
	case SecureRBAC:
		cfg = Config{EnforceScope: true, EnforceNewDefaults: true}
	case Open:
		cfg = Config{Overrides: openOverrides()}
	}
	e := NewFromConfig(cfg)
	e.mode = mode
	return e
}

// NewFromConfig builds an Enforcer the way oslo.policy loads its rules:
// an override wins; otherwise, unless new defaults are enforced, a rule
// with a deprecated check string accepts either.
func NewFromConfig(cfg Config) *Enforcer {
	e := &Enforcer{scope: cfg.EnforceScope, rules: map[string]check{}, scopes: map[string][]Scope{}}
	for _, r := range Defaults {
		e.scopes[r.Name] = r.Scopes
		switch over, ok := cfg.Overrides[r.Name]; {
		case ok:
			e.rules[r.Name] = parseCheck(over)
		case !cfg.EnforceNewDefaults && r.Deprecated != "" && r.Deprecated != r.Check:
			e.rules[r.Name] = orCheck{parseCheck(r.Check), parseCheck(r.Deprecated)}
		default:
			e.rules[r.Name] = parseCheck(r.Check)
		}
	}
	for name, over := range cfg.Overrides {
		if _, ok := e.rules[name]; !ok {
			e.rules[name] = parseCheck(over)
		}
	}
	return e
}

// Mode returns the preset the enforcer was built from ("" for a Config).
func (e *Enforcer) Mode() Mode { return e.mode }

// Registered reports whether rule is one of upstream's registered rules.
// Authorizing any other name is refused (upstream answers it with a 500).
func Registered(rule string) bool {
	return slices.ContainsFunc(Defaults, func(r Rule) bool { return r.Name == rule })
}

// Allowed reports whether c may perform rule on t.
func (e *Enforcer) Allowed(rule string, c *openstack.Credentials, t Target) bool {
	if c == nil {
		return false
	}
	scopes, registered := e.scopes[rule]
	if !registered {
		return false
	}
	cr := newCreds(c)
	if e.scope && len(scopes) > 0 && !slices.Contains(scopes, cr.tokenScope()) {
		return false
	}
	ev := &evaluation{rules: e.rules, creds: cr, target: map[string]string{"project_id": pyStr(t.ProjectID)}}
	return ev.rules[rule].eval(ev)
}

// creds are the values oslo.context's to_policy_values offers, rendered
// as Python's str() would (None for an absent attribute).
type creds struct {
	values map[string]string
	roles  []string
}

func pyStr(s string) string {
	if s == "" {
		return "None"
	}
	return s
}

func newCreds(c *openstack.Credentials) *creds {
	cr := &creds{roles: c.Roles, values: map[string]string{
		"user_id":                   c.UserID,
		"user_domain_id":            "None",
		"system_scope":              pyStr(c.SystemScope),
		"domain_id":                 pyStr(c.DomainID),
		"project_id":                pyStr(c.ProjectID),
		"project_domain_id":         "None",
		"is_admin_project":          "True",
		"service_user_id":           "None",
		"service_user_domain_id":    "None",
		"service_project_id":        "None",
		"service_project_domain_id": "None",
	}}
	if c.SystemScope != "" {
		// oslo.policy copies a truthy system_scope into creds['system'].
		cr.values["system"] = c.SystemScope
	}
	return cr
}

// lookup returns the values a generic check compares against.
func (c *creds) lookup(kind string) ([]string, bool) {
	switch kind {
	case "roles":
		return c.roles, true
	case "service_roles":
		return nil, true
	}
	v, ok := c.values[kind]
	if !ok {
		return nil, false
	}
	return []string{v}, true
}

// tokenScope is oslo.policy's reading of the token's scope.
func (c *creds) tokenScope() Scope {
	if _, ok := c.values["system"]; ok {
		return ScopeSystem
	}
	if c.values["domain_id"] != "None" {
		return ScopeDomain
	}
	return ScopeProject
}
