// Package keystone runs unisched as an operator deploys it in a cloud with
// Keystone: a real Keystone from Debian's packages (tests/keystoneharness),
// `unisched serve` with placement.auth_strategy keystone and two agents on
// a private dockerd (tests/containers), the services registered in the
// catalog with the commands `unisched catalog` prints, and Debian's
// `openstack` CLI (osc-placement, python3-zunclient) with password
// authentication finding them there. It checks the role mapping
// (admin/member in Placement's policy), project isolation of containers,
// and that expired and revoked tokens are refused.
//
// Part of the CI operations step (UNISCHED_REQUIRE_OPERATIONS=1: a missing
// Keystone, CLI or Docker fails instead of skipping).
package keystone

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/unisched/unisched/internal/dockertest"
	"github.com/unisched/unisched/tests/containers"
	"github.com/unisched/unisched/tests/keystoneharness"
)

func TestMain(m *testing.M) {
	if keystoneharness.Required() {
		// the containers half must not skip for a missing Docker either
		os.Setenv(dockertest.EnvRequire, "1")
	}
	os.Exit(containers.Main(m))
}

// tokenLifetime is Keystone's token expiration here: long enough for any
// one CLI command on a loaded machine, short enough to wait out once.
const tokenLifetime = 2 * time.Minute

// cacheTime is serve's keystone_authtoken.token_cache_time: the bound on
// how long a revoked token is still accepted.
const cacheTime = 2 * time.Second

// cli runs Debian's openstack CLI as one Keystone user.
type cli struct {
	env  []string
	name string
	dir  string
}

func (c cli) run(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/usr/bin/openstack", args...)
	// a directory of its own: the package directory may be replaced
	// meanwhile (a checkout), and Python fails on a deleted cwd
	cmd.Env, cmd.Dir = c.env, c.dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	t.Logf("[%s] openstack %s: %.1fs", c.name, strings.Join(args, " "), time.Since(start).Seconds())
	return out.String(), errb.String(), err
}

func (c cli) ok(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := c.run(t, args...)
	if err != nil {
		t.Fatalf("[%s] openstack %s: %v\nstderr: %s\nstdout: %s", c.name, strings.Join(args, " "), err, errOut, out)
	}
	return out
}

// json runs a command with -f json after its first words subcommand words.
func (c cli) json(t *testing.T, v any, words int, args ...string) {
	t.Helper()
	full := append(append(append([]string{}, args[:words]...), "-f", "json"), args[words:]...)
	out := c.ok(t, full...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("[%s] openstack %s: not the JSON expected: %v\n%s", c.name, strings.Join(full, " "), err, out)
	}
}

// fails runs a command that must fail, with stderr (or stdout) naming one
// of want (case-insensitive).
func (c cli) fails(t *testing.T, want []string, args ...string) {
	t.Helper()
	out, errOut, err := c.run(t, args...)
	if err == nil {
		t.Fatalf("[%s] openstack %s succeeded, want a failure (%v)\nstdout: %s", c.name, strings.Join(args, " "), want, out)
	}
	text := strings.ToLower(errOut + out)
	for _, w := range want {
		if strings.Contains(text, strings.ToLower(w)) {
			return
		}
	}
	t.Fatalf("[%s] openstack %s failed without %v in its output:\nstderr: %s\nstdout: %s", c.name, strings.Join(args, " "), want, errOut, out)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func TestOpenStackCLIWithKeystone(t *testing.T) {
	if _, err := os.Stat("/usr/bin/openstack"); err != nil {
		if keystoneharness.Required() {
			t.Fatalf("%s=1 but the openstack CLI is missing (apt-get install python3-openstackclient python3-osc-placement python3-zunclient): %v", keystoneharness.EnvRequire, err)
		}
		t.Skip("the openstack CLI is not installed")
	}
	containers.NeedAgent(t)
	ks := keystoneharness.Start(t, keystoneharness.Options{TokenExpiration: tokenLifetime})
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()

	// Keystone's side of the deployment: the service user serve validates
	// tokens with, and two projects with a member each.
	adminProject := keystoneharness.Project{Name: ks.AdminProject}
	var found struct {
		Projects []keystoneharness.Project `json:"projects"`
	}
	ks.Admin(t, "GET", "/projects?name="+ks.AdminProject, nil, &found)
	if len(found.Projects) != 1 {
		t.Fatalf("admin project: %+v", found.Projects)
	}
	adminProject.ID = found.Projects[0].ID
	svc := ks.CreateUser(t, "unisched", adminProject, "service")
	projA, projB := ks.CreateProject(t, "project-a"), ks.CreateProject(t, "project-b")
	alice := ks.CreateUser(t, "alice", projA, "member")
	bob := ks.CreateUser(t, "bob", projB, "member")

	agentToken := "agent-" + randomHex(16)
	env := containers.Start(t, containers.Options{
		ServeEnv: []string{
			"UNISCHED_PLACEMENT_AUTH_STRATEGY=keystone",
			"UNISCHED_KEYSTONE_AUTHTOKEN_WWW_AUTHENTICATE_URI=" + ks.URL,
			"UNISCHED_KEYSTONE_AUTHTOKEN_AUTH_URL=" + ks.URL,
			"UNISCHED_KEYSTONE_AUTHTOKEN_USERNAME=" + svc.Name,
			"UNISCHED_KEYSTONE_AUTHTOKEN_PASSWORD=" + svc.Password,
			"UNISCHED_KEYSTONE_AUTHTOKEN_PROJECT_NAME=" + ks.AdminProject,
			"UNISCHED_KEYSTONE_AUTHTOKEN_REGION_NAME=" + ks.Region,
			fmt.Sprintf("UNISCHED_KEYSTONE_AUTHTOKEN_TOKEN_CACHE_TIME=%d", int(cacheTime/time.Second)),
			"UNISCHED_KEYSTONE_AUTHTOKEN_HTTP_CONNECT_TIMEOUT=60", // a loaded machine's Keystone
			"UNISCHED_CONTAINER_API_AGENT_TOKEN=" + agentToken,
		},
		AgentEnv: []string{"UNISCHED_AGENT_TOKEN=" + agentToken},
	})

	// issued now, checked last: it expires while the rest runs
	early := ks.Token(t, alice.Name, alice.Password, projA.Name)
	earlyOK, err := env.Zun.As(early.ID).Do(ctx, "GET", "/v1/containers", nil)
	if err != nil {
		t.Fatal(err)
	}
	if earlyOK.Status != http.StatusOK {
		t.Fatalf("alice's fresh token refused: %d %s\n%s", earlyOK.Status, earlyOK.Body, env.Logs(40))
	}

	admin := cli{env: ks.CLIEnv(ks.AdminUser, ks.AdminPassword, ks.AdminProject), name: "admin", dir: ks.Dir}
	asAlice := cli{env: ks.CLIEnv(alice.Name, alice.Password, projA.Name), name: "alice", dir: ks.Dir}
	asBob := cli{env: ks.CLIEnv(bob.Name, bob.Password, projB.Name), name: "bob", dir: ks.Dir}

	t.Run("catalog", func(t *testing.T) {
		cmd := exec.Command(env.Bin, "catalog", "--placement-url", env.PlacementURL, "--container-url", env.ContainerURL, "--region", ks.Region)
		cmd.Env = append(os.Environ(), "UNISCHED_DATABASE_URL=")
		script, err := cmd.Output()
		if err != nil {
			t.Fatalf("unisched catalog: %v", err)
		}
		if n := strings.Count(string(script), "openstack endpoint create"); n != 6 {
			t.Fatalf("unisched catalog printed %d endpoint commands, want 6:\n%s", n, script)
		}
		// what an operator does: run the printed commands as a cloud admin
		sh := exec.Command("/bin/sh", "-e", "-x")
		sh.Stdin = bytes.NewReader(script)
		sh.Env, sh.Dir = admin.env, ks.Dir
		if out, err := sh.CombinedOutput(); err != nil {
			t.Fatalf("running the catalog commands: %v\n%s", err, out)
		}
		var entries []struct{ Name, Type string }
		asAlice.json(t, &entries, 2, "catalog", "list")
		got := map[string]string{}
		for _, e := range entries {
			got[e.Type] = e.Name
		}
		if got["placement"] != "placement" || got["container"] != "zun" {
			t.Fatalf("catalog seen by alice: %+v, want placement and container (zun)", entries)
		}
	})

	var rpUUID string
	t.Run("placement as admin", func(t *testing.T) {
		var rp map[string]any
		admin.json(t, &rp, 3, "resource", "provider", "create", "rp-keystone")
		rpUUID, _ = rp["uuid"].(string)
		if rpUUID == "" {
			t.Fatalf("resource provider create printed %v", rp)
		}
		admin.ok(t, "resource", "provider", "inventory", "set", rpUUID, "--resource", "VCPU=8", "--resource", "MEMORY_MB=4096")
		var cands []map[string]any
		admin110 := cli{name: "admin", dir: ks.Dir, env: append(slices.Clone(admin.env), "OS_PLACEMENT_API_VERSION=1.10")}
		admin110.json(t, &cands, 3, "allocation", "candidate", "list", "--resource", "VCPU=2", "--resource", "MEMORY_MB=512")
		var providers []string
		for _, c := range cands {
			providers = append(providers, fmt.Sprint(c["resource provider"]))
		}
		if !slices.Contains(providers, rpUUID) {
			t.Fatalf("allocation candidates %v lack rp-keystone %s", cands, rpUUID)
		}
	})
	t.Run("placement refuses a member", func(t *testing.T) {
		// Placement's legacy policy: admin only; alice is a member
		asAlice.fails(t, []string{"403", "forbidden", "policy"}, "resource", "provider", "list")
	})

	var ctrA string
	t.Run("run a container in project A", func(t *testing.T) {
		var c map[string]any
		asAlice.json(t, &c, 2, "appcontainer", "run", "--wait", "--name", "a1", "--memory", "64", env.Image,
			"sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done")
		if c["status"] != "Running" {
			t.Fatalf("run --wait: status %v (%v), want Running\n%s", c["status"], c["status_reason"], env.Logs(40))
		}
		ctrA, _ = c["uuid"].(string)
		if pid, _ := c["project_id"].(string); pid != "" && pid != projA.ID {
			t.Errorf("container project %s, want project-a %s", pid, projA.ID)
		}
	})
	if ctrA == "" {
		t.Fatal("no container in project A; the isolation checks need one")
	}
	t.Run("project B cannot see or touch it", func(t *testing.T) {
		var list []map[string]any
		asBob.json(t, &list, 2, "appcontainer", "list")
		for _, c := range list {
			if c["uuid"] == ctrA {
				t.Errorf("bob (project B) lists alice's container: %v", c)
			}
		}
		asBob.fails(t, []string{"not found", "404", "could not be found"}, "appcontainer", "show", ctrA)
		// the CLI reports a failed stop or delete and exits 0: check what
		// it says
		for _, args := range [][]string{{"appcontainer", "stop", ctrA}, {"appcontainer", "delete", "--force", ctrA}} {
			out, errOut, _ := asBob.run(t, args...)
			if text := strings.ToLower(out + errOut); !strings.Contains(text, "fail") && !strings.Contains(text, "not found") {
				t.Errorf("bob's %s of alice's container printed %q %q, want a failure", args[1], out, errOut)
			}
		}
		// the API answers, with bob's own token
		bobTok := ks.Token(t, bob.Name, bob.Password, projB.Name)
		zb := env.Zun.As(bobTok.ID)
		for _, req := range []struct{ method, path string }{
			{"GET", "/v1/containers/" + ctrA},
			{"DELETE", "/v1/containers/" + ctrA + "?force=true"},
			{"POST", "/v1/containers/" + ctrA + "/stop"},
			{"POST", "/v1/containers/" + ctrA + "/kill"},
		} {
			r, err := zb.Do(ctx, req.method, req.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if r.Status != http.StatusNotFound && r.Status != http.StatusForbidden {
				t.Errorf("bob %s %s: %d %s, want 404 or 403", req.method, req.path, r.Status, r.Body)
			}
		}
		// alice's container is untouched
		za := env.Zun.As(ks.Token(t, alice.Name, alice.Password, projA.Name).ID)
		c, err := za.Get(ctx, ctrA)
		if err != nil || c.Status != "Running" {
			t.Fatalf("alice's container after bob's attempts: %+v %v, want Running", c, err)
		}
		// an admin sees every project's
		var all []map[string]any
		admin.json(t, &all, 2, "appcontainer", "list", "--all-projects")
		if !slices.ContainsFunc(all, func(c map[string]any) bool { return c["uuid"] == ctrA }) {
			t.Errorf("admin --all-projects list lacks %s: %v", ctrA, all)
		}
	})

	// wantRefused checks that serve's APIs answer 401 to token, with
	// keystonemiddleware's WWW-Authenticate.
	wantRefused := func(t *testing.T, token, why string) {
		t.Helper()
		for _, u := range []string{env.ContainerURL + "/v1/containers", env.PlacementURL + "/resource_providers"} {
			req, _ := http.NewRequestWithContext(ctx, "GET", u, nil)
			req.Header.Set("X-Auth-Token", token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s token: GET %s answered %d, want 401", why, u, resp.StatusCode)
			}
			if got, want := resp.Header.Get("WWW-Authenticate"), `Keystone uri="`+ks.URL+`"`; got != want {
				t.Errorf("%s token: WWW-Authenticate %q, want %q", why, got, want)
			}
		}
		// the CLI with that token, straight at the container endpoint
		c := cli{name: why, dir: ks.Dir, env: append(ks.BaseEnv(), "OS_AUTH_TYPE=admin_token", "OS_ENDPOINT="+env.ContainerURL, "OS_TOKEN="+token)}
		c.fails(t, []string{"401", "unauthorized", "authentication"}, "appcontainer", "list")
	}
	accepted := func(t *testing.T, token, why string) {
		t.Helper()
		r, err := env.Zun.As(token).Do(ctx, "GET", "/v1/containers", nil)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status != http.StatusOK {
			t.Fatalf("%s token refused before the test: %d %s", why, r.Status, r.Body)
		}
	}

	t.Run("revoked token", func(t *testing.T) {
		id := strings.TrimSpace(asAlice.ok(t, "token", "issue", "-f", "value", "-c", "id"))
		accepted(t, id, "alice's")
		admin.ok(t, "token", "revoke", id)
		// refused at the latest token_cache_time after its last validation
		time.Sleep(cacheTime + time.Second)
		wantRefused(t, id, "revoked")
	})
	t.Run("expired token", func(t *testing.T) {
		wait := time.Until(early.ExpiresAt) + cacheTime + time.Second
		t.Logf("waiting %s for the early token to expire", wait.Round(time.Second))
		time.Sleep(wait)
		wantRefused(t, early.ID, "expired")
	})
	t.Run("no token", func(t *testing.T) {
		req, _ := http.NewRequestWithContext(ctx, "GET", env.PlacementURL+"/resource_providers", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("no token: %d, WWW-Authenticate %q; want 401 with the header", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	})
	t.Run("cleanup as alice", func(t *testing.T) {
		out := asAlice.ok(t, "appcontainer", "delete", "--stop", "--wait", ctrA)
		if !strings.Contains(out, "success") {
			t.Errorf("delete --stop --wait printed %q", out)
		}
	})
}
