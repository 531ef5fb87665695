// Package cli drives the real `openstack` CLI (python3-openstackclient with
// the python3-osc-placement plugin) against unisched built from this tree:
// what operators type must work unchanged. It needs the CLI installed and a
// PostgreSQL (UNISCHED_TEST_DATABASE_URL); without the CLI it fails, because
// a test that skips where the tool is missing proves nothing in CI.
package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/unisched/unisched/tests/harness"
)

// client runs `openstack` with admin_token auth against one endpoint.
type client struct {
	bin      string
	endpoint string
}

// run executes one command at microversion mv ("" for the CLI's default,
// 1.0) and returns stdout, stderr and the error of a non-zero exit.
func (c client) run(t *testing.T, mv string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, args...)
	// A clean environment: no OS_CLOUD or PYTHON* of the caller may steer the CLI.
	cmd.Env = []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=" + t.TempDir(),
		"LANG=C.UTF-8",
		"OS_AUTH_TYPE=admin_token",
		"OS_ENDPOINT=" + c.endpoint,
		"OS_TOKEN=admin",
	}
	if mv != "" {
		cmd.Env = append(cmd.Env, "OS_PLACEMENT_API_VERSION="+mv)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	return out.String(), errb.String(), err
}

// json runs a command with `-f json` and decodes its output into v; any
// failure ends the test.
func (c client) json(t *testing.T, mv string, v any, args ...string) {
	t.Helper()
	out, errOut, err := c.run(t, mv, append(args, "-f", "json")...)
	if err != nil {
		t.Fatalf("openstack %s (microversion %s): %v\nstderr: %s\nstdout: %s", strings.Join(args, " "), mv, err, errOut, out)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("openstack %s: output is not the JSON expected: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// fails runs a command that must fail and returns its stderr.
func (c client) fails(t *testing.T, mv string, args ...string) string {
	t.Helper()
	out, errOut, err := c.run(t, mv, args...)
	if err == nil {
		t.Fatalf("openstack %s succeeded, want a failure; stdout: %s", strings.Join(args, " "), out)
	}
	return errOut
}

type provider struct {
	UUID       string  `json:"uuid"`
	Name       string  `json:"name"`
	Generation int     `json:"generation"`
	Root       string  `json:"root_provider_uuid"`
	Parent     *string `json:"parent_provider_uuid"`
}

type inventory struct {
	ResourceClass   string  `json:"resource_class"`
	AllocationRatio float64 `json:"allocation_ratio"`
	MinUnit         int     `json:"min_unit"`
	MaxUnit         int     `json:"max_unit"`
	Reserved        int     `json:"reserved"`
	StepSize        int     `json:"step_size"`
	Total           int     `json:"total"`
	Used            *int    `json:"used"`
}

type named struct {
	Name string `json:"name"`
}

func names(rows []named) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.Name
	}
	return out
}

// startServer builds unisched and serves it on a free port over a fresh
// database; both go away when t ends.
func startServer(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	root, err := harness.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if a := os.Getenv("ARTIFACTS"); a != "" {
		// Keep the server log where the test runner collects artefacts.
		dir = filepath.Join(a, "cli")
	}
	bin := filepath.Join(t.TempDir(), "unisched")
	if err := harness.BuildUnisched(ctx, root, bin); err != nil {
		t.Fatal(err)
	}
	suffix := make([]byte, 6)
	_, _ = rand.Read(suffix)
	srv, err := harness.StartUnisched(ctx, harness.UnischedOptions{
		Bin: bin, Dir: dir, DB: "unisched_cli_" + hex.EncodeToString(suffix),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Stop(); err != nil {
			t.Errorf("stopping unisched: %v", err)
		}
	})
	t.Logf("unisched pid %d at %s, log %s", srv.Pid(), srv.URL, srv.LogPath)
	return srv.URL
}

func TestOpenStackCLI(t *testing.T) {
	bin, err := exec.LookPath("openstack")
	if err != nil {
		t.Fatalf("the openstack CLI is not installed (%v): apt-get install python3-openstackclient python3-osc-placement; "+
			"this test drives the real CLI and fails rather than skip without it", err)
	}
	c := client{bin: bin, endpoint: startServer(t)}

	// Each step builds on the previous ones; the first failure ends the test.
	var compute, child provider
	steps := []struct {
		name string
		fn   func(t *testing.T)
	}{
		{"resource class list", func(t *testing.T) {
			var rows []named
			c.json(t, "1.2", &rows, "resource", "class", "list")
			got := names(rows)
			if len(got) != 21 {
				t.Errorf("%d resource classes, want the 21 standard ones: %v", len(got), got)
			}
			for _, want := range []string{"VCPU", "MEMORY_MB", "DISK_GB", "PCPU", "VGPU", "SRIOV_NET_VF"} {
				if !slices.Contains(got, want) {
					t.Errorf("resource class list lacks %s: %v", want, got)
				}
			}
		}},
		{"trait list", func(t *testing.T) {
			var rows []named
			c.json(t, "1.6", &rows, "trait", "list")
			got := names(rows)
			if len(got) != 345 {
				t.Errorf("%d traits, want the 345 of os-traits 2.9.0", len(got))
			}
			for _, want := range []string{"HW_CPU_X86_AVX2", "COMPUTE_STATUS_DISABLED", "MISC_SHARES_VIA_AGGREGATE"} {
				if !slices.Contains(got, want) {
					t.Errorf("trait list lacks %s", want)
				}
			}
		}},
		{"resource provider create", func(t *testing.T) {
			c.json(t, "1.20", &compute, "resource", "provider", "create", "cli-compute-1")
			if compute.UUID == "" || compute.Name != "cli-compute-1" || compute.Generation != 0 {
				t.Fatalf("created %+v, want name cli-compute-1, a uuid, generation 0", compute)
			}
			if compute.Root != compute.UUID || compute.Parent != nil {
				t.Errorf("root %q parent %v, want root = own uuid %s and no parent", compute.Root, compute.Parent, compute.UUID)
			}
			c.json(t, "1.14", &child, "resource", "provider", "create", "cli-numa-0", "--parent-provider", compute.UUID)
			if child.Parent == nil || *child.Parent != compute.UUID || child.Root != compute.UUID {
				t.Errorf("child %+v, want parent and root %s", child, compute.UUID)
			}
		}},
		{"resource provider create duplicate name", func(t *testing.T) {
			if stderr := c.fails(t, "1.20", "resource", "provider", "create", "cli-compute-1"); !strings.Contains(stderr, "HTTP 409") {
				t.Errorf("duplicate name: stderr %q, want an HTTP 409", stderr)
			}
		}},
		{"resource provider list", func(t *testing.T) {
			var rows []provider
			c.json(t, "", &rows, "resource", "provider", "list")
			if len(rows) != 2 {
				t.Fatalf("listed %+v, want the 2 providers", rows)
			}
			c.json(t, "1.14", &rows, "resource", "provider", "list", "--name", "cli-numa-0")
			if len(rows) != 1 || rows[0].UUID != child.UUID || rows[0].Parent == nil || *rows[0].Parent != compute.UUID {
				t.Errorf("--name cli-numa-0 listed %+v, want only %s with parent %s", rows, child.UUID, compute.UUID)
			}
		}},
		{"resource provider show", func(t *testing.T) {
			var got provider
			c.json(t, "1.14", &got, "resource", "provider", "show", compute.UUID)
			if got.UUID != compute.UUID || got.Name != "cli-compute-1" || got.Root != compute.UUID || got.Parent != nil {
				t.Errorf("show gave %+v, want %+v", got, compute)
			}
		}},
		{"resource provider inventory set", func(t *testing.T) {
			var rows []inventory
			c.json(t, "", &rows, "resource", "provider", "inventory", "set", compute.UUID,
				"--resource", "VCPU=8", "--resource", "VCPU:allocation_ratio=4.0",
				"--resource", "MEMORY_MB=4096", "--resource", "MEMORY_MB:reserved=512", "--resource", "MEMORY_MB:max_unit=2048")
			byClass := map[string]inventory{}
			for _, r := range rows {
				byClass[r.ResourceClass] = r
			}
			want := map[string]inventory{
				"VCPU":      {ResourceClass: "VCPU", Total: 8, AllocationRatio: 4, MinUnit: 1, MaxUnit: 2147483647, StepSize: 1},
				"MEMORY_MB": {ResourceClass: "MEMORY_MB", Total: 4096, Reserved: 512, AllocationRatio: 1, MinUnit: 1, MaxUnit: 2048, StepSize: 1},
			}
			if len(byClass) != len(want) {
				t.Fatalf("inventory set printed %+v, want VCPU and MEMORY_MB", rows)
			}
			for rc, w := range want {
				if g := byClass[rc]; g != w {
					t.Errorf("%s: got %+v, want %+v", rc, g, w)
				}
			}
		}},
		{"resource provider inventory list", func(t *testing.T) {
			var rows []inventory
			c.json(t, "", &rows, "resource", "provider", "inventory", "list", compute.UUID)
			if len(rows) != 2 {
				t.Fatalf("inventory list %+v, want 2 rows", rows)
			}
			for _, r := range rows {
				if r.Used == nil || *r.Used != 0 {
					t.Errorf("%s used %v, want 0", r.ResourceClass, r.Used)
				}
				if r.ResourceClass == "VCPU" && (r.Total != 8 || r.AllocationRatio != 4) {
					t.Errorf("VCPU %+v, want total 8 ratio 4.0", r)
				}
			}
			var gen provider
			c.json(t, "1.14", &gen, "resource", "provider", "show", compute.UUID)
			if gen.Generation != 1 {
				t.Errorf("generation after one inventory PUT = %d, want 1", gen.Generation)
			}
		}},
		{"resource provider trait set", func(t *testing.T) {
			if _, stderr, err := c.run(t, "1.6", "trait", "create", "CUSTOM_CLI_FAST_DISK"); err != nil {
				t.Fatalf("trait create: %v: %s", err, stderr)
			}
			var rows []named
			c.json(t, "1.6", &rows, "resource", "provider", "trait", "set", compute.UUID,
				"--trait", "HW_CPU_X86_AVX2", "--trait", "CUSTOM_CLI_FAST_DISK")
			got := names(rows)
			slices.Sort(got)
			if want := []string{"CUSTOM_CLI_FAST_DISK", "HW_CPU_X86_AVX2"}; !slices.Equal(got, want) {
				t.Errorf("trait set printed %v, want %v", got, want)
			}
			c.json(t, "1.6", &rows, "resource", "provider", "trait", "list", compute.UUID)
			if got := names(rows); len(got) != 2 {
				t.Errorf("trait list of the provider: %v, want the 2 set", got)
			}
			if stderr := c.fails(t, "1.6", "resource", "provider", "trait", "set", compute.UUID, "--trait", "CUSTOM_NOT_THERE"); !strings.Contains(stderr, "HTTP 400") {
				t.Errorf("unknown trait: stderr %q, want an HTTP 400", stderr)
			}
		}},
		{"allocation candidate list", func(t *testing.T) {
			var rows []map[string]any
			// From 1.27 provider summaries list every class a provider has, not only the requested ones.
			c.json(t, "1.39", &rows, "allocation", "candidate", "list", "--resource", "VCPU=1")
			if len(rows) != 1 {
				t.Fatalf("candidates %v, want exactly one (only %s has VCPU)", rows, compute.UUID)
			}
			r := rows[0]
			if r["resource provider"] != compute.UUID || r["allocation"] != "VCPU=1" {
				t.Errorf("candidate %v, want VCPU=1 from %s", r, compute.UUID)
			}
			capacity, _ := r["inventory used/capacity"].(string)
			for _, want := range []string{"VCPU=0/32", "MEMORY_MB=0/3584"} {
				if !strings.Contains(capacity, want) {
					t.Errorf("inventory used/capacity %q lacks %s", capacity, want)
				}
			}
			traits, _ := r["traits"].(string)
			if !strings.Contains(traits, "HW_CPU_X86_AVX2") || !strings.Contains(traits, "CUSTOM_CLI_FAST_DISK") {
				t.Errorf("traits %q, want HW_CPU_X86_AVX2 and CUSTOM_CLI_FAST_DISK", traits)
			}
			c.json(t, "1.39", &rows, "allocation", "candidate", "list", "--resource", "VCPU=33")
			if len(rows) != 0 {
				t.Errorf("VCPU=33 exceeds the capacity of 32, yet candidates: %v", rows)
			}
		}},
		{"resource provider delete", func(t *testing.T) {
			if stderr := c.fails(t, "", "resource", "provider", "delete", compute.UUID); !strings.Contains(stderr, "HTTP 409") {
				t.Errorf("deleting a parent: stderr %q, want an HTTP 409", stderr)
			}
			for _, u := range []string{child.UUID, compute.UUID} {
				if _, stderr, err := c.run(t, "", "resource", "provider", "delete", u); err != nil {
					t.Fatalf("delete %s: %v: %s", u, err, stderr)
				}
			}
			if stderr := c.fails(t, "", "resource", "provider", "show", compute.UUID); !strings.Contains(stderr, "HTTP 404") {
				t.Errorf("show after delete: stderr %q, want an HTTP 404", stderr)
			}
			var rows []provider
			c.json(t, "", &rows, "resource", "provider", "list")
			if len(rows) != 0 {
				t.Errorf("providers left after delete: %+v", rows)
			}
		}},
	}
	for _, s := range steps {
		if !t.Run(s.name, s.fn) {
			t.Fatalf("step %q failed; the steps after it depend on it", s.name)
		}
	}
}
