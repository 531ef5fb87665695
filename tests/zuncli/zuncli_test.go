// Package zuncli drives Debian's python3-zunclient through the real
// `openstack appcontainer ...` CLI against unisched's container API (serve
// and two agents on a private dockerd, tests/containers): what Zun users
// type must work unchanged. There is no Keystone: the CLI talks to the
// endpoint with keystoneauth's admin_token plugin (--os-auth-type
// admin_token, --os-endpoint, --os-token), and python-zunclient, asked for
// its default "1.latest", negotiates the microversion from GET / of that
// endpoint. A missing CLI or zunclient fails the test (it never skips for
// that); a machine without Docker skips unless UNISCHED_REQUIRE_DOCKER=1.
package zuncli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/unisched/unisched/tests/containers"
)

func TestMain(m *testing.M) { os.Exit(containers.Main(m)) }

// cli runs `openstack` against one container endpoint.
type cli struct {
	bin      string
	endpoint string
	home     string
}

func newCLI(t *testing.T, endpoint string) cli {
	t.Helper()
	bin, err := exec.LookPath("openstack")
	if err != nil {
		t.Fatalf("the openstack CLI is not installed (Debian: apt-get install python3-openstackclient python3-zunclient): %v", err)
	}
	return cli{bin: bin, endpoint: endpoint, home: t.TempDir()}
}

// run executes one command; stdout, stderr and the error of a non-zero exit.
func (c cli) run(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, args...)
	// A clean environment: no OS_CLOUD or PYTHON* of the caller may steer
	// the CLI. Debian's OpenStack code runs on /usr/bin/python3 (the
	// script's shebang), so PATH needs nothing else.
	cmd.Env = []string{
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=" + c.home,
		"LANG=C.UTF-8",
		"OS_AUTH_TYPE=admin_token",
		"OS_ENDPOINT=" + c.endpoint,
		"OS_TOKEN=" + containers.AdminToken,
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	t.Logf("openstack %s: %.1fs", strings.Join(args, " "), time.Since(start).Seconds())
	return out.String(), errb.String(), err
}

// ok runs a command that must succeed and returns its stdout.
func (c cli) ok(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := c.run(t, args...)
	if err != nil {
		hint := ""
		if strings.Contains(errOut, "Unknown command") {
			hint = " (no appcontainer commands: apt-get install python3-zunclient)"
		}
		t.Fatalf("openstack %s: %v%s\nstderr: %s\nstdout: %s", strings.Join(args, " "), err, hint, errOut, out)
	}
	return out
}

// json runs a command with -f json inserted after the subcommand words
// (before any positional REMAINDER such as run's command) and decodes it.
func (c cli) json(t *testing.T, v any, words int, args ...string) {
	t.Helper()
	full := append(append(append([]string{}, args[:words]...), "-f", "json"), args[words:]...)
	out := c.ok(t, full...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("openstack %s: output is not the JSON expected: %v\n%s", strings.Join(full, " "), err, out)
	}
}

type listed struct {
	UUID   string `json:"uuid"`
	Name   string `json:"name"`
	Image  string `json:"image"`
	Status string `json:"status"`
}

func TestAppcontainerCLI(t *testing.T) {
	containers.NeedAgent(t)
	env := containers.Start(t, containers.Options{})
	c := newCLI(t, env.ContainerURL)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	t.Run("host list", func(t *testing.T) {
		var hosts []map[string]any
		c.json(t, &hosts, 3, "appcontainer", "host", "list")
		var names []string
		for _, h := range hosts {
			names = append(names, h["hostname"].(string))
		}
		slices.Sort(names)
		if !slices.Equal(names, []string{"host-a", "host-b"}) {
			t.Fatalf("host list: %v, want host-a and host-b", hosts)
		}
	})

	var hello map[string]any
	t.Run("run echo hello", func(t *testing.T) {
		c.json(t, &hello, 2, "appcontainer", "run", "--name", "hello", "--host", "host-a", "--cpu", "0.5", "--memory", "64",
			env.Image, "echo", "hello")
		if hello["name"] != "hello" || hello["image"] != env.Image || hello["uuid"] == "" {
			t.Fatalf("run printed %v", hello)
		}
		// The command exits at once: the container ends Stopped.
		if _, err := env.Zun.WaitStatus(ctx, hello["uuid"].(string), "Stopped"); err != nil {
			t.Fatalf("%v\n%s", err, env.Logs(40))
		}
		var shown map[string]any
		c.json(t, &shown, 2, "appcontainer", "show", "hello")
		if shown["status"] != "Stopped" || shown["host"] != "host-a" || shown["uuid"] != hello["uuid"] {
			t.Fatalf("show hello: status %v host %v uuid %v; want Stopped on host-a, %v", shown["status"], shown["host"], shown["uuid"], hello["uuid"])
		}
		logs := c.ok(t, "appcontainer", "logs", "hello")
		if !strings.Contains(logs, "hello") {
			t.Fatalf("logs hello: %q, want the echoed hello", logs)
		}
	})

	t.Run("run --wait sleep", func(t *testing.T) {
		var sleeper map[string]any
		// A shell that ends on SIGTERM (a bare sleep as PID 1 ignores it and
		// every stop would wait out its timeout).
		c.json(t, &sleeper, 2, "appcontainer", "run", "--wait", "--name", "sleeper", "--memory", "64", env.Image,
			"sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done")
		if sleeper["status"] != "Running" {
			t.Fatalf("run --wait: status %v (%v), want Running\n%s", sleeper["status"], sleeper["status_reason"], env.Logs(40))
		}
		var list []listed
		c.json(t, &list, 2, "appcontainer", "list")
		got := map[string]string{}
		for _, l := range list {
			got[l.Name] = l.Status
		}
		if len(list) != 2 || got["hello"] != "Stopped" || got["sleeper"] != "Running" {
			t.Fatalf("list: %+v; want hello Stopped and sleeper Running", list)
		}
	})

	t.Run("stop and start", func(t *testing.T) {
		out := c.ok(t, "appcontainer", "stop", "--timeout", "5", "sleeper")
		if !strings.Contains(out, "sleeper") {
			t.Errorf("stop printed %q", out)
		}
		if _, err := env.Zun.WaitStatus(ctx, "sleeper", "Stopped"); err != nil {
			t.Fatalf("%v\n%s", err, env.Logs(40))
		}
		var shown map[string]any
		c.json(t, &shown, 2, "appcontainer", "show", "sleeper")
		if shown["status"] != "Stopped" {
			t.Fatalf("show after stop: %v", shown["status"])
		}
		c.ok(t, "appcontainer", "start", "sleeper")
		if _, err := env.Zun.WaitStatus(ctx, "sleeper", "Running"); err != nil {
			t.Fatalf("%v\n%s", err, env.Logs(40))
		}
		c.json(t, &shown, 2, "appcontainer", "show", "sleeper")
		if shown["status"] != "Running" {
			t.Fatalf("show after start: %v", shown["status"])
		}
	})

	t.Run("delete", func(t *testing.T) {
		// A running container is not deleted without --stop or --force;
		// the CLI reports the 409 and still exits 0.
		out := c.ok(t, "appcontainer", "delete", "sleeper")
		if !strings.Contains(out, "failed") {
			t.Fatalf("delete of a running container printed %q, want a failure", out)
		}
		if _, err := env.Zun.Get(ctx, "sleeper"); err != nil {
			t.Fatalf("sleeper after the refused delete: %v", err)
		}
		out = c.ok(t, "appcontainer", "delete", "--stop", "--wait", "sleeper")
		if !strings.Contains(out, "Delete for container sleeper success.") {
			t.Fatalf("delete --stop --wait printed %q\n%s", out, env.Logs(40))
		}
		out = c.ok(t, "appcontainer", "delete", "--wait", "hello")
		if !strings.Contains(out, "Delete for container hello success.") {
			t.Fatalf("delete --wait hello printed %q\n%s", out, env.Logs(40))
		}
		if _, errOut, err := c.run(t, "appcontainer", "show", "sleeper"); err == nil || !strings.Contains(strings.ToLower(errOut), "not") {
			t.Fatalf("show of a deleted container: %v, stderr %q; want a not-found failure", err, errOut)
		}
		var list []listed
		c.json(t, &list, 2, "appcontainer", "list")
		if len(list) != 0 {
			t.Fatalf("list after the deletes: %+v", list)
		}
		if err := containers.Eventually(ctx, 30*time.Second, func(ctx context.Context) error {
			for _, h := range []string{"host-a", "host-b"} {
				left, err := env.HostContainers(ctx, h)
				if err != nil {
					return err
				}
				if len(left) > 0 {
					return &leftover{host: h, n: len(left)}
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	})
}

type leftover struct {
	host string
	n    int
}

func (l *leftover) Error() string { return l.host + " still has docker containers" }
