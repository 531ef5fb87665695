// Package config loads unisched's configuration with viper: built-in
// defaults, then an optional YAML file, then UNISCHED_<SECTION>_<KEY>
// environment variables, so every key can be overridden in a container
// or a CI job without a file.
package config

import (
	"fmt"
	"strings"

	"github.com/spf13/viper"
)

// Config is the whole configuration; sections mirror etc/unisched.yaml.
type Config struct {
	Database  Database  `mapstructure:"database"`
	Placement Placement `mapstructure:"placement"`
	// ContainerAPI is the second listener of serve: Zun's API, the native
	// /v1/workloads API and the agents' routes.
	ContainerAPI ContainerAPI `mapstructure:"container_api"`
	// Scheduler is the bridge's scheduler (scheduler.go).
	Scheduler Scheduler `mapstructure:"scheduler"`
	Log       Log       `mapstructure:"log"`
	Test      Test      `mapstructure:"test"`
	Agent     Agent     `mapstructure:"agent"`
	// Nova is the compute cloud's API and notification bus (nova.go).
	Nova Nova `mapstructure:"nova"`
	// Notifications are the container notifications serve publishes.
	Notifications Notifications `mapstructure:"notifications"`
	// NovaProxy is serve's Nova API proxy listener (novaproxy.go).
	NovaProxy NovaProxy `mapstructure:"nova_proxy"`
	// Reconcile is the periodic reconciliation (reconcile.go).
	Reconcile Reconcile `mapstructure:"reconcile"`
	// Imagesec is the image security server (imagesec.go).
	Imagesec Imagesec `mapstructure:"imagesec"`
	// Leader is the election of the replica that relays and reconciles (leader.go).
	Leader Leader `mapstructure:"leader"`
	// Dashboard is serve's read-only dashboard listener (dashboard.go).
	Dashboard Dashboard `mapstructure:"dashboard"`
	// KeystoneAuthtoken is Keystone token validation (keystone.go).
	KeystoneAuthtoken KeystoneAuthtoken `mapstructure:"keystone_authtoken"`
}

// ContainerAPI configures the container API listener.
type ContainerAPI struct {
	// Listen is its address; "off" (or "" in a file) runs placement only.
	Listen       string `mapstructure:"listen"`
	MaxBodyBytes int64  `mapstructure:"max_body_bytes"`
	// RelayParallelism is how many keys (workloads) the outbox relay
	// delivers to agents at once; 1 delivers one event at a time.
	RelayParallelism int `mapstructure:"relay_parallelism"`
	// AgentToken is the X-Auth-Token agents send when serve authenticates
	// with Keystone (keystone.go); unused with noauth2.
	AgentToken string `mapstructure:"agent_token"`
}

// Database is where all state lives.
type Database struct {
	URL      string `mapstructure:"url"`
	MaxConns int32  `mapstructure:"max_conns"`
	// MinIdleConns is how many idle connections the pool keeps open
	// (opened at start, topped up every minute), so that a burst after
	// a quiet spell or a restart does not wait for new connections: a
	// new PostgreSQL session costs a backend start and the first
	// statements' preparation, tens to hundreds of milliseconds on a
	// busy host, on the path of the relay's deliveries.
	MinIdleConns int32 `mapstructure:"min_idle_conns"`
	// Migrate applies pending migrations when serve starts.
	Migrate bool `mapstructure:"migrate"`
}

// Placement configures the Placement API.
type Placement struct {
	Listen                      string   `mapstructure:"listen"`
	AuthStrategy                string   `mapstructure:"auth_strategy"`
	Policy                      string   `mapstructure:"policy"`
	IncompleteConsumerProjectID string   `mapstructure:"incomplete_consumer_project_id"`
	IncompleteConsumerUserID    string   `mapstructure:"incomplete_consumer_user_id"`
	AllocationConflictRetries   int      `mapstructure:"allocation_conflict_retry_count"`
	MaxBodyBytes                int64    `mapstructure:"max_body_bytes"`
	CORSAllowedOrigins          []string `mapstructure:"cors_allowed_origins"`
	CORSAllowHeaders            []string `mapstructure:"cors_allow_headers"`
}

// Log configures structured logging.
type Log struct {
	Level  string `mapstructure:"level"`
	Format string `mapstructure:"format"`
}

// Test holds switches that must never be on in production.
type Test struct {
	// Reset enables POST /_test/reset, which empties the database.
	Reset bool `mapstructure:"reset"`
}

var defaults = map[string]any{
	"database.url":                              "",
	"database.max_conns":                        int32(20),
	"database.min_idle_conns":                   int32(8),
	"database.migrate":                          true,
	"placement.listen":                          "127.0.0.1:8778",
	"placement.auth_strategy":                   "noauth2",
	"placement.policy":                          "legacy",
	"placement.incomplete_consumer_project_id":  "00000000-0000-0000-0000-000000000000",
	"placement.incomplete_consumer_user_id":     "00000000-0000-0000-0000-000000000000",
	"placement.allocation_conflict_retry_count": 10,
	"placement.max_body_bytes":                  int64(1 << 20),
	"placement.cors_allowed_origins":            []string{},
	"placement.cors_allow_headers":              []string{},
	"container_api.listen":                      "127.0.0.1:9517",
	"container_api.max_body_bytes":              int64(1 << 20),
	"container_api.relay_parallelism":           8,
	"log.level":                                 "info",
	"log.format":                                "text",
	"test.reset":                                false,
}

// Enabled says whether serve runs the container API listener. "off" is
// the way to turn it off from the environment, where an empty variable
// counts as unset.
func (c ContainerAPI) Enabled() bool { return c.Listen != "" && c.Listen != "off" }

// Load reads the file at path (optional; YAML, or oslo-style INI for .conf
// and .ini) and the environment.
func Load(path string) (*Config, error) {
	v := viper.New()
	for k, d := range defaults {
		v.SetDefault(k, d)
	}
	v.SetEnvPrefix("UNISCHED")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	if path != "" {
		if err := readFile(v, path); err != nil { // format.go: YAML or INI
			return nil, err
		}
	}
	var c Config
	if err := v.Unmarshal(&c); err != nil {
		return nil, fmt.Errorf("decoding config: %w", err)
	}
	return &c, nil
}
