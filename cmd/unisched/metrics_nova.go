package main

import (
	"net/http"
	"regexp"
	"strings"

	"github.com/unisched/unisched/internal/openstack"
)

// novaRoutes labels the Nova proxy's requests with a route template. The
// proxy passes every path to nova-api without routing it, so the template
// is made here from the path: the version, Nova's project id segment (old
// clients' /v2.1/{project_id}/...), a resource from Nova's own list, an id
// and, under servers, a sub-resource from Nova's list. Anything else is
// metrics.Unmatched (left unset), so a client's paths can never add series
// without bound.
func novaRoutes(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if t := novaRoute(r.URL.Path); t != "" {
			openstack.SetRoute(r.Context(), t)
		}
		next.ServeHTTP(w, r)
	})
}

var (
	novaVersion   = regexp.MustCompile(`^v2(\.[01])?$`)
	novaProjectID = regexp.MustCompile(`^[0-9a-fA-F]{32}$|^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
)

// novaResources are nova-api's top-level collections (api-ref); the ones
// whose next segment is a word, not an id, are listed in novaWords.
var novaResources = set("servers", "flavors", "images", "limits", "extensions", "os-aggregates",
	"os-availability-zone", "os-hypervisors", "os-services", "os-keypairs", "os-quota-sets",
	"os-quota-class-sets", "os-server-groups", "os-simple-tenant-usage", "os-migrations",
	"os-server-external-events", "os-instance-usage-audit-log", "os-assisted-volume-snapshots",
	"os-volumes", "os-volumes_boot", "os-snapshots", "os-networks", "os-floating-ips",
	"os-floating-ip-pools", "os-security-groups", "os-security-group-rules", "os-hosts",
	"os-console-auth-tokens", "os-tenant-networks", "os-baremetal-nodes", "os-cells", "os-agents")

// novaSub are the sub-resources of a server (and of the other
// collections: os-extra_specs of flavors, ...), and the words that take
// an id's place (servers/detail).
var (
	novaSub = set("action", "ips", "metadata", "os-interface", "os-volume_attachments", "os-instance-actions",
		"migrations", "diagnostics", "remote-consoles", "tags", "topology", "os-server-password",
		"os-security-groups", "os-extra_specs", "os-flavor-access", "hosts", "servers", "os-virtual-interfaces",
		"search", "statistics", "uptime", "detail", "defaults")
	novaWords = set("detail", "statistics", "defaults")
)

func set(words ...string) map[string]bool {
	m := make(map[string]bool, len(words))
	for _, w := range words {
		m[w] = true
	}
	return m
}

func novaRoute(path string) string {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	if len(segs) == 1 && segs[0] == "" {
		return "/"
	}
	if !novaVersion.MatchString(segs[0]) {
		return ""
	}
	out := []string{segs[0]}
	rest := segs[1:]
	if len(rest) > 0 && novaProjectID.MatchString(rest[0]) {
		out, rest = append(out, "{project_id}"), rest[1:]
	}
	if len(rest) == 0 {
		return "/" + strings.Join(out, "/")
	}
	if !novaResources[rest[0]] {
		return ""
	}
	out, rest = append(out, rest[0]), rest[1:]
	for i, seg := range rest {
		switch {
		case i >= 3:
			return "/" + strings.Join(out, "/") + "/..."
		case i%2 == 0 && novaWords[seg]:
			out = append(out, seg)
		case i%2 == 0:
			out = append(out, "{id}")
		case novaSub[seg]:
			out = append(out, seg)
		default:
			out = append(out, "{other}")
		}
	}
	return "/" + strings.Join(out, "/")
}
