package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/viper"
)

const sample = "../../etc/unisched.yaml"

// The annotated sample must name every key and give the built-in default,
// so that it can be copied as a starting point without changing behaviour.
func TestSampleMatchesDefaults(t *testing.T) {
	v := viper.New()
	v.SetConfigFile(sample)
	if err := v.ReadInConfig(); err != nil {
		t.Fatalf("parsing %s: %v", sample, err)
	}
	seen := map[string]bool{}
	for _, key := range v.AllKeys() {
		seen[key] = true
		if _, ok := defaults[key]; !ok {
			t.Errorf("%s names %s, which config does not know", sample, key)
		}
	}
	for k := range defaults {
		if !seen[k] {
			t.Errorf("%s does not document %s", sample, k)
		}
	}

	fromFile, err := Load(sample)
	if err != nil {
		t.Fatal(err)
	}
	builtIn, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(normalize(fromFile), normalize(builtIn)) {
		t.Errorf("sample differs from the defaults:\nsample:   %+v\ndefaults: %+v", fromFile, builtIn)
	}
}

// normalize treats an empty and a nil list alike.
func normalize(c *Config) Config {
	n := *c
	if len(n.Placement.CORSAllowedOrigins) == 0 {
		n.Placement.CORSAllowedOrigins = nil
	}
	if len(n.Placement.CORSAllowHeaders) == 0 {
		n.Placement.CORSAllowHeaders = nil
	}
	return n
}

func TestEnvironmentOverrides(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte("placement:\n  listen: 10.0.0.1:1\n  policy: open\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("UNISCHED_DATABASE_URL", "postgres://x@/y")
	t.Setenv("UNISCHED_DATABASE_MAX_CONNS", "7")
	t.Setenv("UNISCHED_DATABASE_MIN_IDLE_CONNS", "3")
	t.Setenv("UNISCHED_PLACEMENT_LISTEN", "127.0.0.1:9999")
	t.Setenv("UNISCHED_PLACEMENT_CORS_ALLOWED_ORIGINS", "http://a.example,http://b.example")
	t.Setenv("UNISCHED_TEST_RESET", "true")
	t.Setenv("UNISCHED_LOG_LEVEL", "debug")
	t.Setenv("UNISCHED_CONTAINER_API_LISTEN", "127.0.0.1:9621")
	t.Setenv("UNISCHED_SCHEDULER_THRESHOLDS_PACK_UNTIL", "0.8")
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		got, want any
	}{
		{"database.url from env", c.Database.URL, "postgres://x@/y"},
		{"database.max_conns from env", c.Database.MaxConns, int32(7)},
		{"database.min_idle_conns from env", c.Database.MinIdleConns, int32(3)},
		{"env beats file", c.Placement.Listen, "127.0.0.1:9999"},
		{"file beats default", c.Placement.Policy, "open"},
		{"list from env", strings.Join(c.Placement.CORSAllowedOrigins, " "), "http://a.example http://b.example"},
		{"bool from env", c.Test.Reset, true},
		{"log.level from env", c.Log.Level, "debug"},
		{"default kept", c.Database.Migrate, true},
		{"container_api.listen from env", c.ContainerAPI.Listen, "127.0.0.1:9621"},
		{"nested scheduler key from env", c.Scheduler.Thresholds.PackUntil, 0.8},
		{"sibling scheduler key kept", c.Scheduler.Thresholds.SharedLoad, 0.5},
		{"scheduler lists kept", len(c.Scheduler.Filters), 7},
	}
	for _, tc := range tests {
		if !reflect.DeepEqual(tc.got, tc.want) {
			t.Errorf("%s: got %#v, want %#v", tc.name, tc.got, tc.want)
		}
	}
}

func TestMissingFile(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "absent.yaml")); err == nil {
		t.Fatal("loading a missing file succeeded")
	}
}

// The built-in scheduler section keeps the plugins' settings (cmd/unisched's
// TestSchedulerConfig holds it equal to bridge/scheduler's DefaultConfig),
// and a file's list replaces a default list as a whole.
func TestSchedulerDefaults(t *testing.T) {
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	got := c.Scheduler
	if len(got.Filters) != 7 || len(got.Weighers) != 2 || got.Weighers[0].Weight != 1 || got.Filters[0].Args["default_zone"] != "nova" {
		t.Errorf("plugin settings lost: %+v", got)
	}

	// a file naming only some filters replaces the whole list
	path := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(path, []byte("scheduler:\n  filters:\n    - name: numa\n  thresholds:\n    shared_load: 0.9\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err = Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Scheduler.Filters) != 1 || c.Scheduler.Filters[0].Name != "numa" || c.Scheduler.Thresholds.SharedLoad != 0.9 ||
		c.Scheduler.Thresholds.PackUntil != 0.5 || len(c.Scheduler.Weighers) != 2 {
		t.Errorf("partial scheduler file: %+v", c.Scheduler)
	}
}
