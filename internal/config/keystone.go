package config

import "github.com/unisched/unisched/internal/keystone"

// KeystoneAuthtoken is the [keystone_authtoken] section (keystonemiddleware's
// keys), read when placement.auth_strategy is keystone; see
// internal/keystone for what each key does.
type KeystoneAuthtoken = keystone.Config

var keystoneDefaults = map[string]any{
	"keystone_authtoken.www_authenticate_uri":         "",
	"keystone_authtoken.auth_url":                     "",
	"keystone_authtoken.auth_type":                    "password",
	"keystone_authtoken.username":                     "",
	"keystone_authtoken.password":                     "",
	"keystone_authtoken.project_name":                 "",
	"keystone_authtoken.user_domain_name":             "Default",
	"keystone_authtoken.project_domain_name":          "Default",
	"keystone_authtoken.region_name":                  "RegionOne",
	"keystone_authtoken.token_cache_time":             300,
	"keystone_authtoken.service_token_roles":          []string{"service"},
	"keystone_authtoken.service_token_roles_required": false,
	"keystone_authtoken.http_connect_timeout":         10,
	"keystone_authtoken.max_cached_tokens":            10000,
	// the shared secret agents send as X-Auth-Token when serve runs with
	// keystone (agents do not authenticate with Keystone)
	"container_api.agent_token": "",
}

func init() {
	for k, v := range keystoneDefaults {
		defaults[k] = v
	}
}
