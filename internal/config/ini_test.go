package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

const iniSample = "../../etc/unisched.conf.sample"

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func mustLoad(t *testing.T, path string) Config {
	t.Helper()
	c, err := Load(path)
	if err != nil {
		t.Fatalf("loading %s: %v", filepath.Base(path), err)
	}
	return normalize(c)
}

// The same settings written as YAML and as INI give the same Config, for
// every section, with the INI spellings operators use (oslo booleans,
// comma lists with spaces, bare seconds, JSON for structured values,
// dotted or underscore section names). Each case also checks one field's
// value, so that a key both formats ignored would still fail.
func TestINIEqualsYAML(t *testing.T) {
	cases := []struct {
		section   string
		yaml, ini string
		check     func(c Config) bool
	}{
		{"database", "database:\n  url: postgres://u:p@db/unisched?sslmode=require\n  max_conns: 7\n  migrate: false\n",
			"[database]\nurl = postgres://u:p@db/unisched?sslmode=require\nmax_conns = 7\nmigrate = False\n",
			func(c Config) bool { return c.Database.MaxConns == 7 && !c.Database.Migrate }},
		{"placement", "placement:\n  listen: 0.0.0.0:8778\n  policy: secure_rbac\n  allocation_conflict_retry_count: 3\n  max_body_bytes: 4096\n  cors_allowed_origins: [https://a.example, https://b.example]\n  cors_allow_headers: [openstack-api-version]\n",
			"[placement]\nlisten = 0.0.0.0:8778\npolicy = secure_rbac\nallocation_conflict_retry_count = 3\nmax_body_bytes = 4096\ncors_allowed_origins = https://a.example, https://b.example\ncors_allow_headers = openstack-api-version\n",
			func(c Config) bool {
				return reflect.DeepEqual(c.Placement.CORSAllowedOrigins, []string{"https://a.example", "https://b.example"})
			}},
		{"container_api", "container_api:\n  listen: \"off\"\n  relay_parallelism: 1\n",
			"[container_api]\nlisten = off\nrelay_parallelism = 1\n",
			func(c Config) bool { return !c.ContainerAPI.Enabled() && c.ContainerAPI.RelayParallelism == 1 }},
		{"nova_proxy", "nova_proxy:\n  listen: 0.0.0.0:8775\n  upstream: http://nova:8774\n  intent_retention: 30m\n  lookup_timeout: 2s\n",
			"[nova_proxy]\nlisten = 0.0.0.0:8775\nupstream = http://nova:8774\nintent_retention = 1800\nlookup_timeout = 2s\n",
			func(c Config) bool { return c.NovaProxy.IntentRetention == 30*time.Minute }},
		{"scheduler", "scheduler:\n  filters:\n    - name: numa\n    - name: availability_zone\n      args:\n        default_zone: az1\n  weighers:\n    - name: spread\n      weight: 2\n  max_scored_hosts: 50\n  alternates: 0\n",
			"[scheduler]\nfilters = [{\"name\": \"numa\"},\n  {\"name\": \"availability_zone\", \"args\": {\"default_zone\": \"az1\"}}]\nweighers = [{\"name\": \"spread\", \"weight\": 2}]\nmax_scored_hosts = 50\nalternates = 0\n",
			func(c Config) bool {
				return len(c.Scheduler.Filters) == 2 && c.Scheduler.Weighers[0].Weight == 2 && c.Scheduler.Filters[1].Args["default_zone"] == "az1"
			}},
		{"scheduler_thresholds", "scheduler:\n  thresholds:\n    pack_until: 0.8\n    shared_load: 1\n",
			"[scheduler_thresholds]\npack_until = 0.8\nshared_load = 1\n",
			func(c Config) bool {
				return c.Scheduler.Thresholds.PackUntil == 0.8 && c.Scheduler.Thresholds.SharedLoad == 1 && c.Scheduler.Thresholds.DedicatedUsage == 0.5
			}},
		{"scheduler.thresholds (dotted)", "scheduler:\n  thresholds:\n    dedicated_usage: 0.25\n",
			"[scheduler.thresholds]\ndedicated_usage = 0.25\n",
			func(c Config) bool { return c.Scheduler.Thresholds.DedicatedUsage == 0.25 }},
		{"log", "log:\n  level: warn\n  format: json\n", "[log]\nlevel = warn\nformat = json\n",
			func(c Config) bool { return c.Log.Level == "warn" }},
		{"DEFAULT", "log:\n  level: debug\n  format: json\n", "[DEFAULT]\ndebug = True\nuse_json = yes\n",
			func(c Config) bool { return c.Log.Level == "debug" && c.Log.Format == "json" }},
		{"DEFAULT beaten by [log]", "log:\n  level: error\n", "[DEFAULT]\ndebug = true\n[log]\nlevel = error\n",
			func(c Config) bool { return c.Log.Level == "error" }},
		{"test", "test:\n  reset: true\n", "[test]\nreset = on\n", func(c Config) bool { return c.Test.Reset }},
		{"agent", "agent:\n  host: h1\n  clamp_cpusets: false\n  cells:\n    - id: 0\n      cpus: 0-3\n      siblings: [\"0,2\", \"1,3\"]\n      memory_mb: 4096\n  dedicated_cpus: 2-3\n  disk_gb: 100\n  cpu_allocation_ratio: 2.5\n  heartbeat_interval: 10s\n",
			"[agent]\nhost = h1\nclamp_cpusets = no\ncells = [{\"id\": 0, \"cpus\": \"0-3\", \"siblings\": [\"0,2\", \"1,3\"], \"memory_mb\": 4096}]\ndedicated_cpus = 2-3\ndisk_gb = 100\ncpu_allocation_ratio = 2.5\nheartbeat_interval = 10\n",
			func(c Config) bool {
				return len(c.Agent.Cells) == 1 && c.Agent.Cells[0].MemoryMB == 4096 && c.Agent.Cells[0].Siblings[1] == "1,3" && !c.Agent.ClampCpusets
			}},
		{"nova", "nova:\n  auth_url: http://keystone:5000/v3\n  username: unisched\n  password: \"p#ss;w:rd\"\n  project_name: service\n  interface: internal\n  timeout: 1m\n  candidates: only\n",
			"[nova]\nauth_url = http://keystone:5000/v3\nusername = unisched\npassword = p#ss;w:rd\nproject_name = service\ninterface = internal\ntimeout = 60\ncandidates = only\n",
			func(c Config) bool { return c.Nova.Password == "p#ss;w:rd" && c.Nova.Timeout == time.Minute }},
		{"nova_notifications", "nova:\n  notifications:\n    url: amqp://guest:guest@rabbit:5672/\n    queue: q1\n",
			"[nova_notifications]\nurl = amqp://guest:guest@rabbit:5672/\nqueue = q1\n",
			func(c Config) bool {
				return c.Nova.Notifications.Queue == "q1" && c.Nova.Notifications.Exchange == "nova"
			}},
		{"notifications", "notifications:\n  publish_url: amqp://r/\n  exchange: z\n", "[notifications]\npublish_url = amqp://r/\nexchange = z\n",
			func(c Config) bool { return c.Notifications.Exchange == "z" }},
		{"reconcile", "reconcile:\n  enabled: false\n  interval: 90s\n  grace: 5m\n  dry_run: true\n  retention: 24h\n",
			"[reconcile]\nenabled = FALSE\ninterval = 90\ngrace = 5m\ndry_run = 1\nretention = 24h\n",
			func(c Config) bool { return c.Reconcile.Interval == 90*time.Second && c.Reconcile.DryRun }},
		{"imagesec", "imagesec:\n  work_dir: /var/lib/unisched/images\n  disk_formats: [qcow2]\n  collect_interval: 10m\n",
			"[imagesec]\nwork_dir = /var/lib/unisched/images\ndisk_formats = qcow2\ncollect_interval = 10m\n",
			func(c Config) bool { return reflect.DeepEqual(c.Imagesec.DiskFormats, []string{"qcow2"}) }},
		{"imagesec_glance", "imagesec:\n  glance:\n    endpoint: http://glance:9292\n    token: t\n    timeout: 2m\n",
			"[imagesec_glance]\nendpoint = http://glance:9292\ntoken = 't'\ntimeout = 120\n",
			func(c Config) bool {
				return c.Imagesec.Glance.Endpoint == "http://glance:9292" && c.Imagesec.Glance.Token == "t"
			}},
	}
	defaults := mustLoad(t, "")
	for _, tc := range cases {
		t.Run(tc.section, func(t *testing.T) {
			y := mustLoad(t, writeFile(t, "unisched.yaml", tc.yaml))
			i := mustLoad(t, writeFile(t, "unisched.conf", tc.ini))
			if !reflect.DeepEqual(y, i) {
				t.Errorf("YAML and INI differ:\nyaml: %+v\nini:  %+v", y, i)
			}
			if !tc.check(i) {
				t.Errorf("INI setting not applied: %+v", i)
			}
			if reflect.DeepEqual(i, defaults) {
				t.Error("the file changed nothing")
			}
		})
	}
}

// Every known key, set alone to a value that is not its default, reads the
// same from YAML and INI and changes the Config: keys added later (by any
// part) are covered without a new case.
func TestINIEveryKey(t *testing.T) {
	defaults := mustLoad(t, "")
	keys := make([]string, 0, len(defaultsMap()))
	for k := range defaultsMap() {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for n, k := range keys {
		yv, iv := otherValue(k, defaultsMap()[k])
		i := strings.LastIndexByte(k, '.')
		section, leaf := k[:i], k[i+1:]
		if n%2 == 0 {
			section = strings.ReplaceAll(section, ".", "_")
		}
		// the YAML file: the same key with the value, nested
		yamlDoc := nest(map[string]any{k: yv})
		yb, err := yaml.Marshal(yamlDoc)
		if err != nil {
			t.Fatal(err)
		}
		y, errY := Load(writeFile(t, "c.yml", string(yb)))
		c, errI := Load(writeFile(t, "c.ini", fmt.Sprintf("# %s\n[%s]\n%s = %s\n", k, section, leaf, iv)))
		if errY != nil || errI != nil {
			t.Errorf("%s: yaml err %v, ini err %v", k, errY, errI)
			continue
		}
		if !reflect.DeepEqual(normalize(y), normalize(c)) {
			t.Errorf("%s: YAML %v and INI %q differ:\nyaml: %+v\nini:  %+v", k, yv, iv, normalize(y), normalize(c))
		}
		if reflect.DeepEqual(normalize(c), defaults) {
			t.Errorf("%s = %q in INI changed nothing", k, iv)
		}
	}
}

func defaultsMap() map[string]any { return defaults }

// otherValue returns a value unlike def for YAML and its INI spelling.
func otherValue(key string, def any) (any, string) {
	switch d := def.(type) {
	case string:
		return "x-" + key, "x-" + key
	case bool:
		if d {
			return false, "No"
		}
		return true, "Yes"
	case int:
		return d + 3, fmt.Sprint(d + 3)
	case int32:
		return d + 3, fmt.Sprint(d + 3)
	case int64:
		return d + 3, fmt.Sprint(d + 3)
	case float64:
		return d + 0.25, fmt.Sprint(d + 0.25)
	case time.Duration:
		v := d + 90*time.Second
		return v.String(), fmt.Sprint(int(v.Seconds()))
	case []string:
		return []string{"a-" + key, "b"}, "a-" + key + " , b"
	}
	// structured: a list of one plugin-like map
	return []any{map[string]any{"name": "n-" + key, "id": 1, "weight": 2}}, `[{"name": "n-` + key + `", "id": 1,` + "\n  " + `"weight": 2}]`
}

// oslo's file conventions, each with what it reads to.
func TestINIConventions(t *testing.T) {
	path := writeFile(t, "unisched.conf", "\ufeff# a comment\r\n; another\r\n[database]\r\n"+
		"url: postgres://x@/y?host=/run\r\n"+ // key: value
		"max_conns = 3\r\nmax_conns = 4\r\n"+ // last one wins
		"\n[PLACEMENT]\n  # an indented comment line outside a value\n"+
		"policy = \"open\"\n"+ // quotes stripped
		"cors_allowed_origins = a , b,,c\n"+
		"cors-allow-headers = [\"x-a\", \"x-b\"]\n"+ // dash in the name, JSON list
		"[nova]\npassword = se#cret ; not a comment\n"+
		"[database]\nmigrate = off\n") // a section again adds to it
	c := mustLoad(t, path)
	tests := []struct {
		name      string
		got, want any
	}{
		{"key: value", c.Database.URL, "postgres://x@/y?host=/run"},
		{"duplicate key, last wins", c.Database.MaxConns, int32(4)},
		{"quoted value", c.Placement.Policy, "open"},
		{"comma list trimmed, empty items dropped", c.Placement.CORSAllowedOrigins, []string{"a", "b", "c"}},
		{"JSON list, dashed key", c.Placement.CORSAllowHeaders, []string{"x-a", "x-b"}},
		{"# and ; inside a value", c.Nova.Password, "se#cret ; not a comment"},
		{"section reopened", c.Database.Migrate, false},
	}
	for _, tc := range tests {
		if !reflect.DeepEqual(tc.got, tc.want) {
			t.Errorf("%s: got %#v, want %#v", tc.name, tc.got, tc.want)
		}
	}

	// the environment still beats the file
	t.Setenv("UNISCHED_PLACEMENT_POLICY", "legacy")
	if c := mustLoad(t, path); c.Placement.Policy != "legacy" {
		t.Errorf("environment did not override the INI file: %q", c.Placement.Policy)
	}
}

// A bad INI file is refused with its name, the line and what is wrong.
func TestINIErrors(t *testing.T) {
	cases := []struct {
		name, ini string
		line      int
		want      string
	}{
		{"no assignment", "[database]\nurl = x\nmax_conns\n", 3, `"max_conns" is not an assignment`},
		{"unclosed section", "[database]\nurl = x\n\n[placement\n", 4, "must end with ]"},
		{"key before section", "# c\nurl = x\n", 2, "before any [section]"},
		{"continuation at start", "[database]\n\n   url = x\n", 3, "unexpected continuation"},
		{"empty key", "[log]\n= debug\n", 2, "empty key"},
		{"unknown section", "[log]\nlevel = info\n[databse]\nurl = x\n", 4, "unknown section [databse]"},
		{"unknown key", "[database]\n\nurll = x\n", 3, "[database] urll: unknown option (no key database.urll)"},
		{"DEFAULT option", "[DEFAULT]\nlog_dir = /var/log\n", 2, "[DEFAULT] log_dir: unknown option"},
		{"bad boolean", "[database]\nurl = x\nmigrate = maybe\n", 3, `"maybe" is not a boolean`},
		{"bad integer", "[placement]\nmax_body_bytes = 1MB\n", 2, `"1MB" is not an integer`},
		{"int32 overflow", "[database]\nmax_conns = 9999999999\n", 2, "out of range"},
		{"bad float", "[scheduler_thresholds]\npack_until = half\n", 2, "not a number"},
		{"bad duration", "[reconcile]\ninterval = soon\n", 2, "not a duration"},
		{"bad JSON", "[scheduler]\n\nfilters = [{\"name\": \"numa\"\n  ,]\n", 3, "not valid JSON"},
		{"JSON of the wrong shape", "[scheduler]\nweighers = {\"name\": \"pack\"}\n", 2, "JSON map given, a slice is expected"},
		{"bad JSON list", "[imagesec]\ndisk_formats = [qcow2]\n", 2, "not a JSON list of strings"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, "bad.conf", tc.ini)
			_, err := Load(path)
			if err == nil {
				t.Fatal("loaded without error")
			}
			prefix := fmt.Sprintf("%s:%d: ", path, tc.line)
			if !strings.Contains(err.Error(), prefix) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want %q and %q", err, prefix, tc.want)
			}
		})
	}
}

// Section names: both spellings of every nested map, and no two maps
// sharing a name.
func TestINISections(t *testing.T) {
	s := iniSections()
	for _, want := range []string{"database", "container_api", "scheduler_thresholds", "scheduler.thresholds", "nova_notifications", "imagesec_glance"} {
		if _, ok := s[want]; !ok {
			t.Errorf("no section %s", want)
		}
	}
	owner := map[string]string{}
	for k := range defaults {
		for i := range k {
			if k[i] != '.' {
				continue
			}
			p := k[:i]
			name := strings.ReplaceAll(p, ".", "_")
			if o, ok := owner[name]; ok && o != p {
				t.Errorf("section [%s] would be both %s and %s", name, o, p)
			}
			owner[name] = p
		}
	}
}

// etc/unisched.conf.sample is INISample of etc/unisched.yaml; read as it
// is it changes nothing, and with every option uncommented it gives the
// defaults too (so every value in it is valid and is the default).
func TestINISampleInSync(t *testing.T) {
	y, err := os.ReadFile(sample)
	if err != nil {
		t.Fatal(err)
	}
	want, err := INISample(y)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(iniSample)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		if os.Getenv("UNISCHED_UPDATE_SAMPLES") == "1" {
			if err := os.WriteFile(iniSample, want, 0o644); err != nil {
				t.Fatal(err)
			}
		} else {
			t.Fatalf("%s is out of date with %s: regenerate it with\n  go run ./cmd/unisched config sample --format ini > etc/unisched.conf.sample\n(or UNISCHED_UPDATE_SAMPLES=1 go test ./internal/config/)", iniSample, sample)
		}
	}
	defaults := mustLoad(t, "")
	if c := mustLoad(t, iniSample); !reflect.DeepEqual(c, defaults) {
		t.Errorf("the sample as it is differs from the defaults:\n%+v\n%+v", c, defaults)
	}

	// uncomment every option and its continuation lines
	option := regexp.MustCompile(`^#[a-z_]+ =`)
	var out []string
	inValue := false
	set := 0
	for _, line := range strings.Split(string(want), "\n") {
		switch {
		case option.MatchString(line):
			line, inValue = line[1:], true
			set++
		case inValue && strings.HasPrefix(line, "#    "):
			line = line[1:]
		default:
			inValue = false
		}
		out = append(out, line)
	}
	if set != len(defaultsMap())+2 { // and [DEFAULT]'s debug and use_json
		t.Errorf("%d options in the sample, %d keys known", set, len(defaultsMap()))
	}
	c := mustLoad(t, writeFile(t, "uncommented.conf", strings.Join(out, "\n")))
	if !reflect.DeepEqual(c, defaults) {
		t.Errorf("the uncommented sample differs from the defaults:\nsample:   %+v\ndefaults: %+v", c, defaults)
	}
	if len(c.Scheduler.Filters) != len(schedulerDefaults["scheduler.filters"].([]any)) || c.Scheduler.Filters[2].Args["always_forbidden"] == nil {
		t.Errorf("scheduler filters from the sample: %+v", c.Scheduler.Filters)
	}
}
