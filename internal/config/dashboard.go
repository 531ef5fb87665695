package config

import (
	"fmt"
	"net"
	"strings"
	"time"
)

// Dashboard configures serve's read-only dashboard (package dashboard). It
// is off unless listen is set, and it listens on its own address, not on
// an API listener: a browser cannot send X-Auth-Token, and the page needs
// no token at all, so its protection is where it listens. A loopback
// address is the default shape (reach it with an SSH tunnel); any other
// address needs allow_remote, for an operator who puts it behind a proxy
// that authenticates.
type Dashboard struct {
	// Listen is its address; "" or "off": no dashboard.
	Listen string `mapstructure:"listen"`
	// AllowRemote lets Listen be a non-loopback address.
	AllowRemote bool `mapstructure:"allow_remote"`
	// Refresh is how often the page reloads its data.
	Refresh time.Duration `mapstructure:"refresh"`
	// Decisions is how many recent scheduling decisions it lists.
	Decisions int `mapstructure:"decisions"`
	// MaxHosts is how many hosts it draws (the rest are counted).
	MaxHosts int `mapstructure:"max_hosts"`
}

var dashboardDefaults = map[string]any{
	"dashboard.listen":       "",
	"dashboard.allow_remote": false,
	"dashboard.refresh":      5 * time.Second,
	"dashboard.decisions":    20,
	"dashboard.max_hosts":    200,
}

func init() {
	for k, v := range dashboardDefaults {
		defaults[k] = v
	}
}

// Enabled says whether serve runs the dashboard.
func (d Dashboard) Enabled() bool { return d.Listen != "" && d.Listen != "off" }

// Check refuses a listen address that is not loopback unless AllowRemote
// says the operator meant it. A host name counts as remote: what it
// resolves to may change.
func (d Dashboard) Check() error {
	if !d.Enabled() || d.AllowRemote {
		return nil
	}
	host, _, err := net.SplitHostPort(d.Listen)
	if err != nil {
		return fmt.Errorf("dashboard.listen %q: %w", d.Listen, err)
	}
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("dashboard.listen %q is not a loopback address: the dashboard has no authentication of its own; "+
		"listen on 127.0.0.1 (and use an SSH tunnel), or set dashboard.allow_remote behind an authenticating proxy", d.Listen)
}
