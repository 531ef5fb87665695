// Package packaging_test checks the systemd units and the Dockerfile: the
// settings they must have, that they agree with the configuration's
// defaults, and systemd's own verdict (systemd-analyze verify) where it is
// installed. The static build and the image are tested in tests/packaging.
package packaging_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/unisched/unisched/internal/config"
)

// unit is a parsed unit file: section -> key -> values in order.
type unit map[string]map[string][]string

// parseUnit reads a unit file as systemd does for what is tested here:
// [Section] lines, Key=Value, # and ; comments, trailing backslash
// continuations.
func parseUnit(t *testing.T, path string) unit {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(f)
	n, pending := 0, ""
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if pending != "" {
			line, pending = pending+" "+line, ""
		}
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			pending = strings.TrimSuffix(line, "\\")
			continue
		}
		if line[0] == '[' {
			if !strings.HasSuffix(line, "]") {
				t.Fatalf("%s:%d: bad section %q", path, n, line)
			}
			section = line[1 : len(line)-1]
			if u[section] == nil {
				u[section] = map[string][]string{}
			}
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || section == "" {
			t.Fatalf("%s:%d: not an assignment in a section: %q", path, n, line)
		}
		u[section][strings.TrimSpace(k)] = append(u[section][strings.TrimSpace(k)], strings.TrimSpace(v))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

func (u unit) get(section, key string) []string { return u[section][key] }

func TestSystemdUnits(t *testing.T) {
	hardening := map[string]string{
		"NoNewPrivileges":         "yes",
		"ProtectSystem":           "strict",
		"ProtectHome":             "yes",
		"PrivateTmp":              "yes",
		"PrivateDevices":          "yes",
		"RestrictSUIDSGID":        "yes",
		"CapabilityBoundingSet":   "",
		"SystemCallArchitectures": "native",
		"User":                    "unisched",
		"Group":                   "unisched",
	}
	cases := []struct {
		file    string
		want    map[string]string // [Service] key -> its only value
		exec    []string          // ExecStart lines
		rw      []string          // ReadWritePaths that must be listed
		install bool
	}{
		{"unisched-serve.service", map[string]string{"Type": "notify", "NotifyAccess": "main", "Restart": "on-failure", "StateDirectory": "unisched"},
			[]string{"/usr/bin/unisched serve"}, []string{"/var/lib/unisched"}, true},
		{"unisched-agent.service", map[string]string{"Type": "exec", "Restart": "on-failure", "SupplementaryGroups": "docker", "StateDirectory": "unisched-agent"},
			[]string{"/usr/bin/unisched agent"}, []string{"/var/lib/unisched-agent", "-/run/docker.sock"}, true},
		{"unisched-migrate.service", map[string]string{"Type": "oneshot"},
			[]string{"/usr/bin/unisched migrate", "/usr/bin/unisched migrate status"}, nil, false},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			u := parseUnit(t, filepath.Join("systemd", tc.file))
			for _, s := range []string{"Unit", "Service"} {
				if u[s] == nil {
					t.Fatalf("no [%s]", s)
				}
			}
			if len(u.get("Unit", "Description")) != 1 {
				t.Error("no Description")
			}
			want := map[string]string{}
			for k, v := range hardening {
				want[k] = v
			}
			for k, v := range tc.want {
				want[k] = v
			}
			for k, v := range want {
				if got := u.get("Service", k); len(got) != 1 || got[0] != v {
					t.Errorf("%s=%q, want %q", k, got, v)
				}
			}
			if got := u.get("Service", "ExecStart"); !slices.Equal(got, tc.exec) {
				t.Errorf("ExecStart %q, want %q", got, tc.exec)
			}
			rw := strings.Fields(strings.Join(u.get("Service", "ReadWritePaths"), " "))
			for _, p := range tc.rw {
				if !slices.Contains(rw, p) {
					t.Errorf("ReadWritePaths %q lacks %s", rw, p)
				}
			}
			if tc.install != (len(u.get("Install", "WantedBy")) == 1) {
				t.Errorf("[Install] WantedBy=%q (install %v)", u.get("Install", "WantedBy"), tc.install)
			}
			// the environment the unit sets must be configuration unisched
			// reads: set it and see it in the loaded configuration
			for _, env := range u.get("Service", "Environment") {
				k, v, _ := strings.Cut(env, "=")
				switch k {
				case "UNISCHED_CONFIG":
					if !strings.HasPrefix(v, "/etc/unisched/") || !strings.HasSuffix(v, ".conf") {
						t.Errorf("UNISCHED_CONFIG=%s: not an INI file under /etc/unisched", v)
					}
				case "UNISCHED_AGENT_STATE_FILE":
					t.Setenv(k, v)
					c, err := config.Load("")
					if err != nil || c.Agent.StateFile != v {
						t.Errorf("%s did not set agent.state_file: %v", env, err)
					}
					if !strings.HasPrefix(v, "/var/lib/unisched-agent/") {
						t.Errorf("the state file %s is outside the agent's state directory", v)
					}
				default:
					t.Errorf("Environment %s not checked by this test", env)
				}
			}
		})
	}
}

// systemd's own check of the units, offline: systemd-analyze verify with
// ExecStart pointed at an existing binary (the units name /usr/bin/unisched,
// absent here). verify exits 0 even for values it ignores, so any line of
// its output about our units is a failure.
func TestSystemdAnalyzeVerify(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("UNISCHED_REQUIRE_PACKAGING") == "1" {
			t.Fatal("systemd-analyze not installed")
		}
		t.Skip("systemd-analyze not installed")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob("systemd/*.service")
	if err != nil || len(files) != 3 {
		t.Fatalf("units: %v %v", files, err)
	}
	dir := t.TempDir()
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, filepath.Base(f))
		if err := os.WriteFile(dst, []byte(strings.ReplaceAll(string(b), "/usr/bin/unisched", self)), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(sa, "verify", dst).CombinedOutput()
		var ours []string
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, filepath.Base(f)) || strings.Contains(line, dir) {
				ours = append(ours, line)
			}
		}
		if err != nil || len(ours) > 0 {
			t.Errorf("systemd-analyze verify %s: %v\n%s", filepath.Base(f), err, strings.Join(ours, "\n"))
		}
	}

	// and it does complain about a bad value (the check above can fail)
	bad := filepath.Join(dir, "unisched-bad.service")
	if err := os.WriteFile(bad, []byte("[Service]\nType=notifyy\nExecStart="+self+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, _ := exec.Command(sa, "verify", bad).CombinedOutput(); !strings.Contains(string(out), "unisched-bad.service") {
		t.Errorf("systemd-analyze accepted Type=notifyy: %s", out)
	}
}

// The Dockerfile's images agree with the build script, the listeners'
// ports and the non-root user.
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	df := string(b)
	stages := regexp.MustCompile(`(?m)^FROM (\S+)(?: AS (\S+))?$`).FindAllStringSubmatch(df, -1)
	var names []string
	for _, s := range stages {
		names = append(names, s[2])
	}
	if !slices.Equal(names, []string{"runtime-prebuilt", "build", "runtime"}) {
		t.Fatalf("stages %q: runtime-prebuilt must come first (the legacy builder builds every stage before the target) and runtime last (the default)", names)
	}
	for _, s := range stages {
		if s[2] != "build" && s[1] != "scratch" {
			t.Errorf("stage %s is FROM %s, want scratch", s[2], s[1])
		}
	}
	// both runtime stages are the same apart from where the files come from
	parts := strings.Split(df, "\nFROM ")
	norm := func(s string) string {
		s = regexp.MustCompile(`(?m)^ARG ROOTFS.*\n`).ReplaceAllString(s, "")
		s = strings.ReplaceAll(s, "--from=build ", "")
		s = strings.ReplaceAll(s, "/out/rootfs", "${ROOTFS}")
		s = strings.SplitN(s, "\n", 2)[1]
		return strings.TrimSpace(regexp.MustCompile(`(?m)^#.*\n`).ReplaceAllString(s, ""))
	}
	if len(parts) != 4 || norm(parts[1]) != norm(parts[3]) {
		t.Errorf("the runtime stages differ:\n%s\n---\n%s", norm(parts[1]), norm(parts[3]))
	}
	for _, want := range []string{"USER 10001:10001", "EXPOSE 8778 9517 9518", `ENTRYPOINT ["/usr/bin/unisched"]`, "RUN VERSION=${VERSION} packaging/docker/build-static.sh /out"} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	// the exposed ports are the default listeners'
	c, err := config.Load("")
	if err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{c.Placement.Listen, c.ContainerAPI.Listen, c.Agent.Listen} {
		port := addr[strings.LastIndexByte(addr, ':')+1:]
		if !strings.Contains(df, "EXPOSE") || !regexp.MustCompile(`(?m)^EXPOSE .*\b`+port+`\b`).MatchString(df) {
			t.Errorf("port %s of %s not exposed", port, addr)
		}
		if !strings.Contains(df, "0.0.0.0:"+port) {
			t.Errorf("the image does not listen on 0.0.0.0:%s", port)
		}
	}
	script, err := os.ReadFile("docker/build-static.sh")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", `-ldflags "-s -w -X main.Version=$version"`, "not a dynamic executable"} {
		if !strings.Contains(string(script), want) {
			t.Errorf("build-static.sh lacks %q", want)
		}
	}
}
