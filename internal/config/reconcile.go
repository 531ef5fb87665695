package config

import "time"

// Reconcile configures serve's reconciler (bridge/reconcile): the periodic
// comparison of the ledger, Placement, Nova's servers (when nova.* is
// configured) and the agents' reports, which repairs leaks and orphans.
type Reconcile struct {
	// Enabled runs it in serve (with the container API); `unisched
	// reconcile` runs once whatever this says.
	Enabled bool `mapstructure:"enabled"`
	// Interval between runs; one also runs at start.
	Interval time.Duration `mapstructure:"interval"`
	// Grace is how old a divergence must be to be repaired: younger ones
	// are work in flight.
	Grace time.Duration `mapstructure:"grace"`
	// DryRun finds and records divergences, repairs nothing.
	DryRun bool `mapstructure:"dry_run"`
	// Retention is how long runs are kept.
	Retention time.Duration `mapstructure:"retention"`
}

var reconcileDefaults = map[string]any{
	"reconcile.enabled":   true,
	"reconcile.interval":  time.Minute,
	"reconcile.grace":     2 * time.Minute,
	"reconcile.dry_run":   false,
	"reconcile.retention": 7 * 24 * time.Hour,
}

// init adds the reconcile keys to the defaults.
func init() {
	for k, v := range reconcileDefaults {
		defaults[k] = v
	}
}
