package builtin_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/unisched/unisched/bridge/scheduler"
	"github.com/unisched/unisched/bridge/scheduler/builtin"
)

func TestRegistryHoldsTheDefaults(t *testing.T) {
	reg, err := builtin.Registry()
	if err != nil {
		t.Fatal(err)
	}
	def := scheduler.DefaultConfig()
	for _, p := range def.Filters {
		if !slices.Contains(reg.FilterNames(), p.Name) {
			t.Errorf("default filter %s not registered (have %v)", p.Name, reg.FilterNames())
		}
	}
	for _, p := range def.Weighers {
		if !slices.Contains(reg.WeigherNames(), p.Name) {
			t.Errorf("default weigher %s not registered (have %v)", p.Name, reg.WeigherNames())
		}
	}
}

func TestEngine(t *testing.T) {
	for _, tc := range []struct {
		name    string
		change  func(*scheduler.Config)
		wantErr string
	}{
		{name: "default"},
		{name: "unknown filter", change: func(c *scheduler.Config) {
			c.Filters = append(c.Filters, scheduler.PluginConfig{Name: "nosuch"})
		}, wantErr: `unknown filter "nosuch"`},
		{name: "unknown weigher", change: func(c *scheduler.Config) {
			c.Weighers = []scheduler.PluginConfig{{Name: "nosuch"}}
		}, wantErr: `unknown weigher "nosuch"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := scheduler.DefaultConfig()
			if tc.change != nil {
				tc.change(&cfg)
			}
			e, err := builtin.Engine(cfg)
			switch {
			case tc.wantErr == "" && (err != nil || e == nil):
				t.Fatalf("engine %v, error %v", e, err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}
