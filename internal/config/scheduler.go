package config

// Scheduler is the scheduler section: which filters and weighers the
// bridge's engine runs, in what order, and its settings. It stays plain
// data here; cmd/unisched turns it into bridge/scheduler's Config, whose
// registry checks the plugin names, their args and the thresholds.
type Scheduler struct {
	Thresholds SchedulerThresholds `mapstructure:"thresholds"`
	// Filters in the order they run: cheap and selective first.
	Filters []SchedulerPlugin `mapstructure:"filters"`
	// Weighers and their weights.
	Weighers       []SchedulerPlugin `mapstructure:"weighers"`
	MaxScoredHosts int               `mapstructure:"max_scored_hosts"`
	Alternates     int               `mapstructure:"alternates"`
	Parallelism    int               `mapstructure:"parallelism"`
}

// SchedulerThresholds are the scheduler's three ratios (their meaning is
// documented on bridge/scheduler's Thresholds and in etc/unisched.yaml).
type SchedulerThresholds struct {
	DedicatedUsage float64 `mapstructure:"dedicated_usage"`
	SharedLoad     float64 `mapstructure:"shared_load"`
	PackUntil      float64 `mapstructure:"pack_until"`
}

// SchedulerPlugin names a filter or weigher and its settings. Weight is
// read for weighers only; 0 means 1.
type SchedulerPlugin struct {
	Name   string         `mapstructure:"name"`
	Weight float64        `mapstructure:"weight"`
	Args   map[string]any `mapstructure:"args"`
}

// schedulerDefaults are bridge/scheduler's DefaultConfig with the
// arguments etc/unisched.yaml spells out (the filters' own defaults), the
// plugin lists in the shape a YAML file decodes to; cmd/unisched's tests
// hold them equal to DefaultConfig.
var schedulerDefaults = map[string]any{
	"scheduler.thresholds.dedicated_usage": 0.5,
	"scheduler.thresholds.shared_load":     0.5,
	"scheduler.thresholds.pack_until":      0.5,
	"scheduler.filters": []any{
		map[string]any{"name": "availability_zone", "args": map[string]any{"default_zone": "nova"}},
		map[string]any{"name": "aggregates"},
		map[string]any{"name": "traits", "args": map[string]any{"always_forbidden": []any{"COMPUTE_STATUS_DISABLED"}}},
		map[string]any{"name": "affinity"},
		map[string]any{"name": "resources"},
		map[string]any{"name": "numa"},
		map[string]any{"name": "pool_pressure"},
	},
	"scheduler.weighers": []any{
		map[string]any{"name": "balance", "weight": 1},
		map[string]any{"name": "soft_affinity", "weight": 1},
	},
	"scheduler.max_scored_hosts": 1000,
	"scheduler.alternates":       2,
	"scheduler.parallelism":      1,
}

// init adds the scheduler keys to the defaults.
func init() {
	for k, v := range schedulerDefaults {
		defaults[k] = v
	}
}
