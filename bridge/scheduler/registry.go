package scheduler

import (
	"fmt"
	"sort"
)

// FilterFactory builds a filter from its arguments, refusing bad ones.
type FilterFactory func(args Args, th Thresholds) (Filter, error)

// WeigherFactory builds a weigher from its arguments, refusing bad ones.
type WeigherFactory func(args Args, th Thresholds) (Weigher, error)

// Registry maps plugin names to constructors. The built-in plugins are
// added by filters.Register and weighers.Register; the configuration then
// picks which ones run and in what order.
type Registry struct {
	filters  map[string]FilterFactory
	weighers map[string]WeigherFactory
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{filters: map[string]FilterFactory{}, weighers: map[string]WeigherFactory{}}
}

// RegisterFilter adds a filter constructor under a new name.
func (r *Registry) RegisterFilter(name string, f FilterFactory) error {
	if _, dup := r.filters[name]; dup || name == "" || f == nil {
		return fmt.Errorf("filter %q: empty, nil or already registered", name)
	}
	r.filters[name] = f
	return nil
}

// RegisterWeigher adds a weigher constructor under a new name.
func (r *Registry) RegisterWeigher(name string, f WeigherFactory) error {
	if _, dup := r.weighers[name]; dup || name == "" || f == nil {
		return fmt.Errorf("weigher %q: empty, nil or already registered", name)
	}
	r.weighers[name] = f
	return nil
}

// FilterNames lists the registered filters, sorted.
func (r *Registry) FilterNames() []string { return sortedKeys(r.filters) }

// WeigherNames lists the registered weighers, sorted.
func (r *Registry) WeigherNames() []string { return sortedKeys(r.weighers) }

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Config is the scheduler section of the configuration (see
// etc/scheduler.sample.yaml). Decode it over DefaultConfig() so that keys
// left out keep their defaults.
type Config struct {
	Thresholds Thresholds `mapstructure:"thresholds"`
	// Filters in the order they run: cheap and selective first.
	Filters []PluginConfig `mapstructure:"filters"`
	// Weighers and their weights.
	Weighers       []PluginConfig `mapstructure:"weighers"`
	MaxScoredHosts int            `mapstructure:"max_scored_hosts"`
	Alternates     int            `mapstructure:"alternates"`
	Parallelism    int            `mapstructure:"parallelism"`
}

// PluginConfig names a plugin and its settings. Weight is read for
// weighers only; 0 means 1.
type PluginConfig struct {
	Name   string  `mapstructure:"name"`
	Weight float64 `mapstructure:"weight"`
	Args   Args    `mapstructure:"args"`
}

// DefaultConfig runs every built-in filter, cheapest first, and weighs
// with the balance weigher (threshold 3) and the soft group policies.
func DefaultConfig() Config {
	return Config{
		Thresholds: DefaultThresholds(),
		Filters: []PluginConfig{
			{Name: "availability_zone"}, {Name: "aggregates"}, {Name: "traits"}, {Name: "affinity"},
			{Name: "resources"}, {Name: "numa"}, {Name: "pool_pressure"},
		},
		Weighers:       []PluginConfig{{Name: "balance", Weight: 1}, {Name: "soft_affinity", Weight: 1}},
		MaxScoredHosts: 1000,
		Alternates:     2,
		Parallelism:    1,
	}
}

// Build constructs the configured plugins and the engine.
func (r *Registry) Build(cfg Config) (*Engine, error) {
	if err := cfg.Thresholds.Validate(); err != nil {
		return nil, fmt.Errorf("scheduler config: %w", err)
	}
	filters := make([]Filter, 0, len(cfg.Filters))
	for _, pc := range cfg.Filters {
		mk, ok := r.filters[pc.Name]
		if !ok {
			return nil, fmt.Errorf("scheduler config: unknown filter %q (known: %v)", pc.Name, r.FilterNames())
		}
		f, err := mk(pc.Args, cfg.Thresholds)
		if err != nil {
			return nil, fmt.Errorf("scheduler config: filter %s: %w", pc.Name, err)
		}
		if f == nil {
			return nil, fmt.Errorf("scheduler config: filter %s: constructor returned nil", pc.Name)
		}
		if f.Name() != pc.Name {
			return nil, fmt.Errorf("scheduler config: filter registered as %q calls itself %q", pc.Name, f.Name())
		}
		filters = append(filters, f)
	}
	weighers := make([]WeightedWeigher, 0, len(cfg.Weighers))
	for _, pc := range cfg.Weighers {
		mk, ok := r.weighers[pc.Name]
		if !ok {
			return nil, fmt.Errorf("scheduler config: unknown weigher %q (known: %v)", pc.Name, r.WeigherNames())
		}
		w, err := mk(pc.Args, cfg.Thresholds)
		if err != nil {
			return nil, fmt.Errorf("scheduler config: weigher %s: %w", pc.Name, err)
		}
		if w == nil {
			return nil, fmt.Errorf("scheduler config: weigher %s: constructor returned nil", pc.Name)
		}
		if w.Name() != pc.Name {
			return nil, fmt.Errorf("scheduler config: weigher registered as %q calls itself %q", pc.Name, w.Name())
		}
		weight := pc.Weight
		if weight == 0 {
			weight = 1
		}
		weighers = append(weighers, WeightedWeigher{Weigher: w, Weight: weight})
	}
	e, err := NewEngine(filters, weighers, Options{MaxScoredHosts: cfg.MaxScoredHosts, Alternates: cfg.Alternates, Parallelism: cfg.Parallelism})
	if err != nil {
		return nil, fmt.Errorf("scheduler config: %w", err)
	}
	return e, nil
}
