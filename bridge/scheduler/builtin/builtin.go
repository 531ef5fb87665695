// Package builtin assembles the scheduler from the built-in filters and
// weighers. It is the one place that knows both lists (package scheduler
// cannot import its own plugins), so serve and the tests build the same
// engine from the same configuration.
package builtin

import (
	"fmt"

	"github.com/unisched/unisched/bridge/scheduler"
	"github.com/unisched/unisched/bridge/scheduler/filters"
	"github.com/unisched/unisched/bridge/scheduler/weighers"
)

// Registry returns a registry holding every built-in filter and weigher.
func Registry() (*scheduler.Registry, error) {
	reg := scheduler.NewRegistry()
	if err := filters.Register(reg); err != nil {
		return nil, fmt.Errorf("registering scheduler filters: %w", err)
	}
	if err := weighers.Register(reg); err != nil {
		return nil, fmt.Errorf("registering scheduler weighers: %w", err)
	}
	return reg, nil
}

// Engine builds the engine cfg describes from the built-in plugins, so
// that a typo in a plugin name is an error here rather than at the first
// placement.
func Engine(cfg scheduler.Config) (*scheduler.Engine, error) {
	reg, err := Registry()
	if err != nil {
		return nil, err
	}
	return reg.Build(cfg)
}
