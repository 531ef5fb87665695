package main

import (
	"github.com/unisched/unisched/bridge/scheduler"
	"github.com/unisched/unisched/bridge/scheduler/builtin"
	"github.com/unisched/unisched/internal/config"
)

// schedulerEngine builds the engine the scheduler section describes from
// the built-in plugins, so that a typo in a plugin name or a bad argument
// is an error at start rather than at the first placement.
func schedulerEngine(c config.Scheduler) (*scheduler.Engine, error) {
	return builtin.Engine(schedulerConfig(c))
}

// schedulerConfig is the scheduler section as bridge/scheduler's Config
// (internal/config imports no domain package, so the wiring converts).
func schedulerConfig(c config.Scheduler) scheduler.Config {
	plugins := func(ps []config.SchedulerPlugin) []scheduler.PluginConfig {
		if ps == nil {
			return nil
		}
		out := make([]scheduler.PluginConfig, len(ps))
		for i, p := range ps {
			out[i] = scheduler.PluginConfig{Name: p.Name, Weight: p.Weight, Args: scheduler.Args(p.Args)}
		}
		return out
	}
	return scheduler.Config{
		Thresholds:     scheduler.Thresholds(c.Thresholds),
		Filters:        plugins(c.Filters),
		Weighers:       plugins(c.Weighers),
		MaxScoredHosts: c.MaxScoredHosts,
		Alternates:     c.Alternates,
		Parallelism:    c.Parallelism,
	}
}
