package zunext

import (
	"net/http"

	"github.com/unisched/unisched/internal/openstack"
)

// rule is one of Zun's default check strings (zun/common/policies/base.py).
type rule int

const (
	// adminOrOwner is "is_admin:True or project_id:%(project_id)s".
	adminOrOwner rule = iota
	// adminAPI is "rule:context_is_admin" (role:admin).
	adminAPI
	// denyEverybody is "!".
	denyEverybody
)

// policies are Zun's defaults for the rules this API checks
// (zun/common/policies/container.py, host.py, zun_service.py). Rules not
// listed (container:get_one:<field> for most fields) do not exist and
// pass, as Zun checks them with might_not_exist.
var policies = map[string]rule{
	"container:create":                       adminOrOwner,
	"container:create:runtime":               adminAPI,
	"container:create:privileged":            denyEverybody,
	"container:create:requested_destination": adminAPI,
	"container:create:image_pull_policy":     adminAPI,
	"container:delete":                       adminOrOwner,
	"container:delete_all_projects":          adminAPI,
	"container:delete_force":                 adminAPI,
	"container:get_one":                      adminOrOwner,
	"container:get_one:host":                 adminAPI,
	"container:get_one:image_pull_policy":    adminAPI,
	"container:get_one:privileged":           adminAPI,
	"container:get_one:runtime":              adminAPI,
	"container:get_one_all_projects":         adminAPI,
	"container:get_all":                      adminOrOwner,
	"container:get_all_all_projects":         adminAPI,
	"container:update":                       adminOrOwner,
	"container:start":                        adminOrOwner,
	"container:stop":                         adminOrOwner,
	"container:reboot":                       adminOrOwner,
	"container:pause":                        adminOrOwner,
	"container:unpause":                      adminOrOwner,
	"container:logs":                         adminOrOwner,
	"container:execute":                      adminOrOwner,
	"container:execute_resize":               adminOrOwner,
	"container:kill":                         adminOrOwner,
	"container:rename":                       adminOrOwner,
	"container:attach":                       adminOrOwner,
	"container:resize":                       adminOrOwner,
	"container:top":                          adminOrOwner,
	"container:get_archive":                  adminOrOwner,
	"container:put_archive":                  adminOrOwner,
	"container:stats":                        adminOrOwner,
	"container:commit":                       adminOrOwner,
	"container:add_security_group":           adminOrOwner,
	"container:network_detach":               adminOrOwner,
	"container:network_attach":               adminOrOwner,
	"container:remove_security_group":        adminOrOwner,
	"container:rebuild":                      adminOrOwner,
	"container:resize_container":             adminOrOwner,
	"container:actions":                      adminOrOwner,
	"availability_zones:get_all":             adminOrOwner,
	"host:get_all":                           adminAPI,
	"host:get":                               adminAPI,
	"zun-service:get_all":                    adminAPI,
	"zun-service:delete":                     adminAPI,
	"zun-service:enable":                     adminAPI,
	"zun-service:disable":                    adminAPI,
	"zun-service:force_down":                 adminAPI,
}

// isAdmin is Zun's context.is_admin: the policy context_is_admin
// (role:admin).
func isAdmin(r *http.Request) bool {
	c := openstack.CredentialsFrom(r.Context())
	return c != nil && c.HasRole("admin")
}

func projectOf(r *http.Request) string {
	if c := openstack.CredentialsFrom(r.Context()); c != nil {
		return c.ProjectID
	}
	return ""
}

func userOf(r *http.Request) string {
	if c := openstack.CredentialsFrom(r.Context()); c != nil {
		return c.UserID
	}
	return ""
}

// allowed evaluates action for the caller against a target project ("" is
// the caller's own, as Zun's default target is).
func allowed(r *http.Request, action, targetProject string) bool {
	rl, ok := policies[action]
	if !ok {
		return true
	}
	switch rl {
	case adminAPI:
		return isAdmin(r)
	case denyEverybody:
		return false
	}
	if isAdmin(r) {
		return true
	}
	if targetProject == "" {
		targetProject = projectOf(r)
	}
	p := projectOf(r)
	return p != "" && p == targetProject
}

// authorize is Zun's policy.enforce: a 403 naming the rule.
func authorize(r *http.Request, action, targetProject string) error {
	if !allowed(r, action, targetProject) {
		return errPolicy(action)
	}
	return nil
}
