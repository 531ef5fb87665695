package main

import (
	"reflect"
	"testing"

	"github.com/unisched/unisched/bridge/scheduler"
	"github.com/unisched/unisched/internal/config"
)

// The built-in scheduler section is bridge/scheduler's DefaultConfig (with
// the filters' own default arguments spelled out), and it builds.
func TestSchedulerConfig(t *testing.T) {
	c, err := config.Load("")
	if err != nil {
		t.Fatal(err)
	}
	got, def := schedulerConfig(c.Scheduler), scheduler.DefaultConfig()
	if got.Thresholds != def.Thresholds || got.MaxScoredHosts != def.MaxScoredHosts ||
		got.Alternates != def.Alternates || got.Parallelism != def.Parallelism {
		t.Errorf("scheduler settings %+v, want %+v", got, def)
	}
	names := func(ps []scheduler.PluginConfig) (out []string) {
		for _, p := range ps {
			out = append(out, p.Name)
		}
		return out
	}
	if !reflect.DeepEqual(names(got.Filters), names(def.Filters)) || !reflect.DeepEqual(names(got.Weighers), names(def.Weighers)) {
		t.Errorf("plugins %v %v, want %v %v", names(got.Filters), names(got.Weighers), names(def.Filters), names(def.Weighers))
	}
	if got.Weighers[0].Weight != 1 || got.Filters[0].Args["default_zone"] != "nova" {
		t.Errorf("plugin settings lost: %+v %+v", got.Weighers[0], got.Filters[0])
	}
	if _, err := schedulerEngine(c.Scheduler); err != nil {
		t.Errorf("default scheduler config does not build: %v", err)
	}

	// every key reaches bridge/scheduler
	c.Scheduler = config.Scheduler{
		Thresholds: config.SchedulerThresholds{DedicatedUsage: 0.1, SharedLoad: 0.2, PackUntil: 0.3},
		Filters:    []config.SchedulerPlugin{{Name: "numa"}},
		Weighers:   []config.SchedulerPlugin{{Name: "balance", Weight: 2, Args: map[string]any{"x": 1}}},

		MaxScoredHosts: 5, Alternates: 6, Parallelism: 7,
	}
	want := scheduler.Config{
		Thresholds: scheduler.Thresholds{DedicatedUsage: 0.1, SharedLoad: 0.2, PackUntil: 0.3},
		Filters:    []scheduler.PluginConfig{{Name: "numa"}},
		Weighers:   []scheduler.PluginConfig{{Name: "balance", Weight: 2, Args: scheduler.Args{"x": 1}}},

		MaxScoredHosts: 5, Alternates: 6, Parallelism: 7,
	}
	if got := schedulerConfig(c.Scheduler); !reflect.DeepEqual(got, want) {
		t.Errorf("converted %+v, want %+v", got, want)
	}
	// validation stays bridge/scheduler's, messages included
	c.Scheduler.Thresholds.PackUntil = 2
	if _, err := schedulerEngine(c.Scheduler); err == nil || err.Error() != "scheduler config: threshold pack_until = 2 is not in [0, 1]" {
		t.Errorf("bad threshold: %v", err)
	}
}
