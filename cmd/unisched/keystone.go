package main

import (
	"crypto/subtle"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"

	"github.com/unisched/unisched/internal/config"
	"github.com/unisched/unisched/internal/keystone"
	"github.com/unisched/unisched/internal/openstack"
)

// serveAuth are serve's authenticators: users is Placement's, Zun's and
// /v1/images'; agents is the native API's (/v1/workloads, the agents'
// routes), which with Keystone also accepts container_api.agent_token,
// since agents hold no Keystone credentials.
type serveAuth struct {
	users, agents openstack.Authenticator
	// tokens is the Keystone validator alone, for the Nova API proxy to
	// learn whose calls it forwards; nil under noauth2, where nova-api
	// reads the token itself.
	tokens openstack.Authenticator
}

// newServeAuth builds the authenticators placement.auth_strategy asks for.
// One Keystone authenticator serves every listener: one service token and
// one validation cache.
func newServeAuth(cfg *config.Config, log *slog.Logger) (serveAuth, error) {
	switch cfg.Placement.AuthStrategy {
	case "noauth2":
		return serveAuth{users: openstack.NoAuth2{}, agents: openstack.NoAuth2{}}, nil
	case "keystone":
		ks, err := keystone.New(cfg.KeystoneAuthtoken, keystone.Options{Logger: log})
		if err != nil {
			return serveAuth{}, err
		}
		a := serveAuth{users: ks, agents: ks, tokens: ks}
		if t := cfg.ContainerAPI.AgentToken; t != "" {
			a.agents = agentToken{token: t, next: ks}
		} else if cfg.ContainerAPI.Enabled() {
			log.Warn("keystone authentication without container_api.agent_token: agents cannot call serve")
		}
		log.Info("authenticating with keystone", "auth_url", cfg.KeystoneAuthtoken.AuthURL,
			"user", cfg.KeystoneAuthtoken.Username, "token_cache_time", cfg.KeystoneAuthtoken.TokenCacheTime)
		return a, nil
	default:
		return serveAuth{}, fmt.Errorf("placement.auth_strategy %q is not supported (noauth2 or keystone)", cfg.Placement.AuthStrategy)
	}
}

// agentToken lets the agents' shared secret through as an admin and
// hands every other token to Keystone.
type agentToken struct {
	token string
	next  openstack.Authenticator
}

func (a agentToken) Authenticate(r *http.Request) (*openstack.Credentials, error) {
	if t := r.Header.Get("X-Auth-Token"); t != "" && subtle.ConstantTimeCompare([]byte(t), []byte(a.token)) == 1 {
		return &openstack.Credentials{UserID: "unisched-agent", Roles: []string{"admin"}, SystemScope: "all"}, nil
	}
	return a.next.Authenticate(r)
}

// runCatalog prints the `openstack` commands that register serve's
// services in the Keystone catalog: placement (type placement) and the
// container API (type container, name zun: python-zunclient looks the
// endpoint up by type "container").
func runCatalog(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("catalog", flag.ContinueOnError)
	path := fs.String("config", os.Getenv("UNISCHED_CONFIG"), "configuration file (YAML)")
	placementURL := fs.String("placement-url", "", "Placement's public URL (default: from placement.listen)")
	containerURL := fs.String("container-url", "", "the container API's public URL (default: from container_api.listen)")
	region := fs.String("region", "", "region (default keystone_authtoken.region_name)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	if *region == "" {
		*region = cfg.KeystoneAuthtoken.RegionName
	}
	if *region == "" {
		*region = "RegionOne"
	}
	if *placementURL == "" {
		if *placementURL, err = listenURL(cfg.Placement.Listen); err != nil {
			return fmt.Errorf("placement.listen: %w", err)
		}
	}
	if *containerURL == "" && cfg.ContainerAPI.Enabled() {
		if *containerURL, err = listenURL(cfg.ContainerAPI.Listen); err != nil {
			return fmt.Errorf("container_api.listen: %w", err)
		}
	}
	fmt.Fprint(out, catalogCommands(*region, *placementURL, *containerURL, cfg.KeystoneAuthtoken))
	return nil
}

// catalogCommands is the script runCatalog prints; containerURL "" leaves
// the container service out.
func catalogCommands(region, placementURL, containerURL string, ks config.KeystoneAuthtoken) string {
	var b strings.Builder
	q := shellQuote
	fmt.Fprintf(&b, "# unisched in the Keystone catalog (run as a cloud admin; region %s)\n", region)
	if ks.Username != "" && ks.ProjectName != "" {
		fmt.Fprintf(&b, "# the service user of [keystone_authtoken]:\n# openstack user create --domain %s --password-prompt %s\n# openstack role add --project %s --project-domain %s --user %s --user-domain %s service\n",
			q(orDefault(ks.UserDomainName)), q(ks.Username), q(ks.ProjectName), q(orDefault(ks.ProjectDomainName)), q(ks.Username), q(orDefault(ks.UserDomainName)))
	}
	services := []struct{ typ, name, desc, url string }{
		{"placement", "placement", "Placement API (unisched)", placementURL},
		{"container", "zun", "Container service (unisched, Zun API)", containerURL},
	}
	for _, s := range services {
		if s.url == "" {
			continue
		}
		fmt.Fprintf(&b, "openstack service create --name %s --description %s %s\n", q(s.name), q(s.desc), q(s.typ))
		for _, iface := range []string{"public", "internal", "admin"} {
			fmt.Fprintf(&b, "openstack endpoint create --region %s %s %s %s\n", q(region), q(s.typ), iface, q(s.url))
		}
	}
	return b.String()
}

func orDefault(domain string) string {
	if domain == "" {
		return "Default"
	}
	return domain
}

// listenURL turns a listen address into an http URL; a wildcard host
// cannot be a catalog URL.
func listenURL(listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", err
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		return "", errors.New("listens on every address: give the public URL with --placement-url/--container-url")
	}
	return "http://" + net.JoinHostPort(host, port), nil
}

// shellQuote quotes s for sh when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=@,+%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
