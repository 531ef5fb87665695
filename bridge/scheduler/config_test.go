package scheduler_test

import (
	"reflect"
	"testing"

	"github.com/spf13/viper"
	"github.com/unisched/unisched/bridge/scheduler"
)

// The sample file is what operators copy: it must load through viper, as
// the service will load it, and say exactly what DefaultConfig says.
func TestSampleConfig(t *testing.T) {
	v := viper.New()
	v.SetConfigFile("../../etc/scheduler.sample.yaml")
	if err := v.ReadInConfig(); err != nil {
		t.Fatal(err)
	}
	cfg := scheduler.DefaultConfig()
	cfg.Filters, cfg.Weighers = nil, nil
	if err := v.UnmarshalKey("scheduler", &cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := registry(t).Build(cfg); err != nil {
		t.Fatalf("sample does not build: %v", err)
	}
	def := scheduler.DefaultConfig()
	if cfg.Thresholds != def.Thresholds || cfg.MaxScoredHosts != def.MaxScoredHosts || cfg.Alternates != def.Alternates || cfg.Parallelism != def.Parallelism {
		t.Errorf("sample settings %+v differ from DefaultConfig %+v", cfg, def)
	}
	names := func(ps []scheduler.PluginConfig) []string {
		var out []string
		for _, p := range ps {
			out = append(out, p.Name)
		}
		return out
	}
	if !reflect.DeepEqual(names(cfg.Filters), names(def.Filters)) || !reflect.DeepEqual(names(cfg.Weighers), names(def.Weighers)) {
		t.Errorf("sample plugins %v %v differ from DefaultConfig %v %v", names(cfg.Filters), names(cfg.Weighers), names(def.Filters), names(def.Weighers))
	}
	if th := cfg.Thresholds; th.DedicatedUsage != 0.5 || th.SharedLoad != 0.5 || th.PackUntil != 0.5 {
		t.Errorf("thresholds %+v, want 0.5 each", th)
	}

	// A partial file keeps the defaults of what it leaves out.
	v = viper.New()
	v.Set("scheduler.thresholds.pack_until", 0.8)
	cfg = scheduler.DefaultConfig()
	if err := v.UnmarshalKey("scheduler", &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Thresholds.PackUntil != 0.8 || cfg.Thresholds.DedicatedUsage != 0.5 || len(cfg.Filters) != len(def.Filters) {
		t.Errorf("partial config: %+v", cfg)
	}
}
