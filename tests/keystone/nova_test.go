package keystone

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/unisched/unisched/tests/keystoneharness"
	"github.com/unisched/unisched/tests/novaharness"
)

// TestNovaWithKeystone runs real Nova (tests/novaharness: Debian's Nova Zed
// on the fake driver) in a cloud with Keystone: nova-api behind
// keystonemiddleware, Nova reaching unisched's Placement as its service
// user through the catalog, unisched serve validating Nova's service tokens
// and the users' tokens. A member of project A boots a server with the
// `openstack` CLI and password auth; the catalog's compute endpoint is
// unisched's Nova proxy, which validates the user's token with serve's
// Keystone validator and passes it on to nova-api. The server is ACTIVE on
// the host the bridge's decision log chose, the proxy's intent for it names
// the member's project and user, unisched's ledger holds it under project
// A, and a member of project B can neither see nor delete it (Nova's own
// policy, through the proxy); a bogus token gets the proxy's 401, the one
// nova-api's keystonemiddleware answers, without reaching nova-api.
func TestNovaWithKeystone(t *testing.T) {
	if missing := novaharness.Missing(); len(missing) > 0 {
		msg := fmt.Sprintf("Nova's Debian packages are missing: %s (tests/novaharness/install.sh)", strings.Join(missing, " "))
		if keystoneharness.Required() {
			t.Fatalf("%s=1 but %s", keystoneharness.EnvRequire, msg)
		}
		t.Skip(msg)
	}
	ks := keystoneharness.Start(t, keystoneharness.Options{})
	dir := ""
	if a := os.Getenv("ARTIFACTS"); a != "" {
		dir = filepath.Join(a, "keystone-nova")
		_ = os.RemoveAll(dir)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 18*time.Minute)
	defer cancel()
	t0 := time.Now()
	env, err := novaharness.Start(ctx, novaharness.Options{Dir: dir,
		Keystone: &novaharness.Keystone{URL: ks.URL, AdminUser: ks.AdminUser, AdminPassword: ks.AdminPassword,
			AdminProject: ks.AdminProject, Region: ks.Region}})
	if err != nil {
		t.Fatalf("starting real Nova with Keystone against unisched: %v", err)
	}
	t.Cleanup(func() {
		if err := env.Close(); err != nil {
			t.Errorf("stopping the nova environment: %v", err)
		}
	})
	for _, tm := range env.Timings {
		t.Logf("start: %-45s %6.1fs", tm.Phase, tm.Took.Seconds())
	}
	t.Logf("nova with keystone up in %.1fs: keystone %s, compute (catalog, public) %s, logs in %s", time.Since(t0).Seconds(), ks.URL, env.ProxyURL, env.Dir)
	t.Cleanup(func() {
		for _, x := range env.Wire.Failures() {
			if x.Status >= 500 || x.Status == http.StatusUnauthorized || x.Status == http.StatusForbidden {
				t.Errorf("placement refused nova (its service token):\n%s", x)
			}
		}
	})

	suffix := fmt.Sprint(time.Now().UnixNano() % 1e6)
	projA := ks.CreateProject(t, "nova-a-"+suffix)
	projB := ks.CreateProject(t, "nova-b-"+suffix)
	alice := ks.CreateUser(t, "nova-alice-"+suffix, projA, "member")
	bob := ks.CreateUser(t, "nova-bob-"+suffix, projB, "member")
	asAlice := novaharness.Credentials{Username: alice.Name, Password: alice.Password, Project: projA.Name}
	asBob := novaharness.Credentials{Username: bob.Name, Password: bob.Password, Project: projB.Name}

	// Alice boots: password auth, the catalog leads the CLI to the proxy.
	const name = "vm-keystone"
	t1 := time.Now()
	out, err := novaCLI(ctx, env, asAlice, "server", "create", "--image", "cirros-fake", "--flavor", "m1.tiny",
		"--nic", "none", "--wait", "-f", "json", name)
	took := time.Since(t1)
	if err != nil {
		t.Fatalf("%v\n%s", err, env.Logs(30))
	}
	var created struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	if err := json.Unmarshal([]byte(out), &created); err != nil {
		t.Fatalf("server create: not the JSON expected: %v\n%s", err, out)
	}
	s, err := env.GetServer(ctx, created.ID)
	if err != nil {
		t.Fatal(err)
	}
	if created.Status != "ACTIVE" || s.Status != "ACTIVE" {
		t.Fatalf("server %s: status %s / %s, fault %v, want ACTIVE\n%s", s.ID, created.Status, s.Status, s.Fault, env.Logs(30))
	}
	if s.TenantID != projA.ID {
		t.Errorf("server %s: tenant_id %q, want project A's %s", s.ID, s.TenantID, projA.ID)
	}
	nova := "?"
	c, err1 := time.Parse(time.RFC3339, s.Created)
	l, err2 := time.Parse("2006-01-02T15:04:05.000000", s.LaunchedAt)
	if err1 == nil && err2 == nil {
		nova = fmt.Sprintf("%.1fs", l.Sub(c).Seconds())
	}
	t.Logf("boot through keystone and the proxy: ACTIVE on %s; openstack server create --wait %.1fs; nova created->launched_at %s",
		s.Hypervisor, took.Seconds(), nova)

	t.Run("decision", func(t *testing.T) { novaOnDecidedHost(ctx, t, env, s, projA.ID, alice.ID) })
	t.Run("ledger", func(t *testing.T) { novaInLedger(ctx, t, env, s, projA.ID) })
	t.Run("isolation", func(t *testing.T) {
		// the CLI of project B's member: not found, not deletable
		if out, err := novaCLI(ctx, env, asBob, "server", "show", s.ID); err == nil {
			t.Errorf("project B's member sees project A's server:\n%s", out)
		} else if !strings.Contains(err.Error(), "No server with a name or ID") {
			t.Errorf("project B's member: server show failed otherwise than not found: %v", err)
		}
		out, err := novaCLI(ctx, env, asBob, "server", "list", "-f", "json")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(out, s.ID) {
			t.Errorf("project B's server list shows project A's server:\n%s", out)
		}
		if _, err := novaCLI(ctx, env, asBob, "server", "delete", s.ID); err == nil {
			t.Errorf("project B's member deleted project A's server")
		}
		// the raw API through the proxy with each one's token
		bobTok := ks.Token(t, bob.Name, bob.Password, projB.Name).ID
		aliceTok := ks.Token(t, alice.Name, alice.Password, projA.Name).ID
		if st := novaProxyGet(ctx, t, env, bobTok, "/servers/"+s.ID); st != http.StatusNotFound {
			t.Errorf("GET /servers/%s through the proxy with project B's token: %d, want 404", s.ID, st)
		}
		if st := novaProxyGet(ctx, t, env, aliceTok, "/servers/"+s.ID); st != http.StatusOK {
			t.Errorf("GET /servers/%s through the proxy with project A's token: %d, want 200", s.ID, st)
		}
		novaBogusToken(ctx, t, env, suffix)
		if got, err := env.GetServer(ctx, s.ID); err != nil || got.Status != "ACTIVE" {
			t.Errorf("after project B's attempts the server is %q (%v), want still ACTIVE", got.Status, err)
		}
	})

	// Alice deletes it: Nova, Placement and the ledger let it go.
	if _, err := novaCLI(ctx, env, asAlice, "server", "delete", "--wait", s.ID); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		allocs, err := env.Allocations(ctx, s.ID)
		if err != nil {
			t.Fatal(err)
		}
		var n int
		err = env.DB.QueryRow(ctx, `SELECT count(*) FROM bridge_workloads WHERE id = $1`, s.ID).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		if len(allocs) == 0 && n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the delete: allocations %v, %d ledger workload(s) for %s", allocs, n, s.ID)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// novaCLI runs Debian's `openstack` CLI as c (password auth, endpoints
// from the catalog: the compute API is unisched's Nova proxy).
func novaCLI(ctx context.Context, env *novaharness.Env, c novaharness.Credentials, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 4*time.Minute)
	defer cancel()
	cmd, err := env.CLIAs(ctx, c, args...)
	if err != nil {
		return "", err
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("openstack %s (as %s): %w\nstderr: %s\nstdout: %s", strings.Join(args, " "), c.Username, err, errb.String(), out.String())
	}
	return out.String(), nil
}

// novaBogusToken requires a bogus token's call through the proxy to be
// refused by the proxy itself with nova-api's own 401 (keystonemiddleware's
// body and WWW-Authenticate scheme): the same call straight to nova-api
// gives the reference answer and, once nova-api's log shows it, proves the
// log current, so the proxied call's absence from it means nova-api never
// saw that one.
func novaBogusToken(ctx context.Context, t *testing.T, env *novaharness.Env, suffix string) {
	t.Helper()
	direct, proxied := "/servers?name=bogus-direct-"+suffix, "/servers?name=bogus-proxied-"+suffix
	want := novaRawGet(ctx, t, env.NovaURL, "not-a-token", direct)
	got := novaRawGet(ctx, t, env.ProxyURL, "not-a-token", proxied)
	if want.status != http.StatusUnauthorized {
		t.Fatalf("nova-api with a bogus token: %d %s, want 401", want.status, want.body)
	}
	if got.status != http.StatusUnauthorized || got.body != want.body {
		t.Errorf("the proxy with a bogus token: %d %s\nwant nova-api's %d %s", got.status, got.body, want.status, want.body)
	}
	for _, h := range []string{"Content-Type"} {
		if got.header.Get(h) != want.header.Get(h) {
			t.Errorf("the proxy's 401: %s %q, nova-api's %q", h, got.header.Get(h), want.header.Get(h))
		}
	}
	if w := got.header.Get("WWW-Authenticate"); !strings.HasPrefix(w, `Keystone uri="`) {
		t.Errorf("the proxy's 401: WWW-Authenticate %q (nova-api's %q)", w, want.header.Get("WWW-Authenticate"))
	}
	if id := got.header.Get("X-Openstack-Request-Id"); !strings.HasPrefix(id, "req-") || got.header.Get("X-Compute-Request-Id") != id {
		t.Errorf("the proxy's 401: request ids %q / %q, want nova-api's pair", id, got.header.Get("X-Compute-Request-Id"))
	}
	// nova-api's --log-file (its eventlet server logs each request line
	// there, query string included)
	logPath := filepath.Join(env.Dir, "logs", "nova-api.log")
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := os.ReadFile(logPath)
		if err != nil {
			t.Fatalf("nova-api's log: %v", err)
		}
		if bytes.Contains(b, []byte("bogus-direct-"+suffix)) {
			if bytes.Contains(b, []byte("bogus-proxied-"+suffix)) {
				t.Errorf("the proxy forwarded a bogus token's call to nova-api (in %s)", logPath)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nova-api's log %s does not show the direct call %s after 30 s", logPath, direct)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("bogus token: the proxy answered %d %s itself; nova-api answers the same", got.status, got.body)
}

type rawAnswer struct {
	status int
	header http.Header
	body   string
}

// novaRawGet is a GET of base+path with token, the answer in full.
func novaRawGet(ctx context.Context, t *testing.T, base, token, path string) rawAnswer {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Auth-Token", token)
	req.Header.Set("OpenStack-API-Version", "compute "+novaharness.NovaVersion)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return rawAnswer{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// novaProxyGet is a GET of the compute API through serve's Nova proxy with
// token; the status.
func novaProxyGet(ctx context.Context, t *testing.T, env *novaharness.Env, token, path string) int {
	t.Helper()
	return novaRawGet(ctx, t, env.ProxyURL, token, path).status
}

// novaOnDecidedHost requires s on the host the bridge's decision log chose
// for the request the proxy recorded (its intent, under the token's
// project and user, which the proxy knows from validating the token): with
// keystonemiddleware nova-api keeps the proxy's X-OpenStack-Request-ID as
// the global id its services send Placement.
func novaOnDecidedHost(ctx context.Context, t *testing.T, env *novaharness.Env, s novaharness.Server, project, user string) {
	var reqID, intentProject, intentUser string
	var aliases []string
	err := env.DB.QueryRow(ctx, `SELECT i.request_id, i.project_id, i.user_id,
	COALESCE((SELECT array_agg(alias) FROM bridge_vm_intent_aliases a WHERE a.request_id = i.request_id), '{}')
FROM bridge_vm_intents i WHERE i.server_name = $1 ORDER BY created_at DESC LIMIT 1`, s.Name).Scan(&reqID, &intentProject, &intentUser, &aliases)
	if errors.Is(err, pgx.ErrNoRows) {
		t.Fatalf("the proxy recorded no intent for %s", s.Name)
	}
	if err != nil {
		t.Fatal(err)
	}
	if intentProject != project || intentUser != user {
		t.Errorf("intent %s: project %q, user %q; want the member's token's project %s, user %s", reqID, intentProject, intentUser, project, user)
	}
	ids := append([]string{reqID}, aliases...)
	var host *string
	var n int
	err = env.DB.QueryRow(ctx, `SELECT (SELECT host FROM bridge_decisions WHERE request_id = ANY($1) ORDER BY id DESC LIMIT 1),
	(SELECT count(*) FROM bridge_decisions WHERE request_id = ANY($1))`, ids).Scan(&host, &n)
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 || host == nil {
		t.Fatalf("server %s (request %v): no decision with a host logged", s.ID, ids)
	}
	if *host != s.Hypervisor {
		t.Fatalf("server %s (request %v) is on %s; the bridge's decision chose %q", s.ID, ids, s.Hypervisor, *host)
	}
	asked := false
	for _, x := range env.Wire.Exchanges() {
		if strings.HasPrefix(x.URI, "/allocation_candidates") && slices.ContainsFunc(ids, func(id string) bool { return strings.EqualFold(x.RequestID, id) }) {
			asked = true
		}
	}
	if !asked {
		t.Fatalf("nova sent no GET /allocation_candidates with request id %v", ids)
	}
	t.Logf("%s: request %s (aliases %v), %d decision(s), chosen %s = Nova's host", s.Name, reqID, aliases, n, *host)
}

// novaInLedger requires the VM in unisched's ledger under project on its
// host, active once the notification consumer (serve's Nova client, with
// Keystone) read its topology.
func novaInLedger(ctx context.Context, t *testing.T, env *novaharness.Env, s novaharness.Server, project string) {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var kind, proj, state, host string
		err := env.DB.QueryRow(ctx, `SELECT w.kind, w.project_id, w.state, COALESCE(h.name, '')
FROM bridge_workloads w LEFT JOIN bridge_hosts h ON h.id = w.host_id WHERE w.id = $1`, s.ID).Scan(&kind, &proj, &state, &host)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			err = fmt.Errorf("no workload %s", s.ID)
		case err != nil:
			t.Fatal(err)
		case kind != "vm" || proj != project || host != s.Hypervisor:
			t.Fatalf("ledger workload %s: kind %s, project %q, host %q; want vm, %q, %q", s.ID, kind, proj, host, project, s.Hypervisor)
		case state == "active":
			t.Logf("ledger: %s vm of project %s on %s, %s", s.ID, proj, host, state)
			return
		default:
			err = fmt.Errorf("workload %s is %s", s.ID, state)
		}
		if time.Now().After(deadline) {
			t.Fatalf("ledger after 2 minutes: %v", err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
