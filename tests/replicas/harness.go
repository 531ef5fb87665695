// Package replicas tests several `unisched serve` replicas over one
// PostgreSQL database behind haproxy (Debian's, /usr/sbin/haproxy): claims
// written through any replica stay within capacity, one replica leads the
// outbox relay and one the reconciler (PostgreSQL session advisory locks),
// killing a leader moves its role within seconds, and no agent event is
// lost or delivered out of order per workload across that failover.
//
// The harness builds unisched from this tree, creates one database, starts
// N serve processes on it (each its own placement and container API
// listeners, each its own application_name so pg_locks tells which replica
// holds a lock), writes an haproxy configuration in the test's directory
// that balances round-robin over the replicas' listeners with health
// checks, and starts haproxy and the agents (serve_url: the balancer) on a
// private dockerd (internal/dockertest). Everything it starts runs in its
// own process group and is stopped or killed by its pid.
//
// Under UNISCHED_REQUIRE_OPERATIONS=1 (CI's operations step) a missing
// haproxy or Docker fails the tests instead of skipping them.
package replicas

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/unisched/unisched/bridge/outbox"
	"github.com/unisched/unisched/bridge/reconcile"
	"github.com/unisched/unisched/internal/dockertest"
	"github.com/unisched/unisched/internal/proctest"
	"github.com/unisched/unisched/tests/containers"
	"github.com/unisched/unisched/tests/harness"
)

// HAProxy is Debian's haproxy binary (UNISCHED_HAPROXY overrides).
var HAProxy = "/usr/sbin/haproxy"

// Leader roles, as the unisched_leader gauge labels them.
const (
	RoleRelay      = "relay"
	RoleReconciler = "reconciler"
)

// LockKeys are the session advisory locks whose holders lead each role.
var LockKeys = map[string]int64{RoleRelay: outbox.DefaultLockKey, RoleReconciler: reconcile.DefaultLeaderLockKey}

// Required reports whether the operations tests must fail rather than
// skip when a component is missing (CI).
func Required() bool {
	v := os.Getenv("UNISCHED_REQUIRE_OPERATIONS")
	return v == "1" || strings.EqualFold(v, "true")
}

// Main runs the package's tests: under UNISCHED_REQUIRE_OPERATIONS Docker
// is required too; the private dockerd and the built binary go at the end.
func Main(m *testing.M) int {
	if Required() {
		os.Setenv(dockertest.EnvRequire, "1")
	}
	if v := os.Getenv("UNISCHED_HAPROXY"); v != "" {
		HAProxy = v
	}
	return containers.Main(m)
}

// NeedHAProxy ends the test when haproxy is not installed: a skip, or a
// failure when Required.
func NeedHAProxy(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath(HAProxy); err != nil {
		if Required() {
			t.Fatalf("haproxy is required (UNISCHED_REQUIRE_OPERATIONS=1) but %s is missing: %v", HAProxy, err)
		}
		t.Skipf("no haproxy at %s (apt-get install haproxy): %v", HAProxy, err)
	}
}

// Options configures one cluster.
type Options struct {
	// Replicas is the number of serve processes (3).
	Replicas int
	// Agents are the hosts to start (none by default).
	Agents []containers.AgentSpec
	// TCP connects the replicas to PostgreSQL over 127.0.0.1 instead of
	// the unix socket of the admin URL.
	TCP bool
	// ServeEnv adds UNISCHED_* settings to every replica.
	ServeEnv []string
	// LogLevel of the processes (info).
	LogLevel string
}

// Replica is one serve process and its listeners.
type Replica struct {
	*proctest.Process
	Index        int
	Name         string // also its application_name in pg_stat_activity
	PlacementURL string
	ContainerURL string

	serve harness.Serve
}

// Agent is one running `unisched agent`.
type Agent struct {
	*proctest.Process
	Spec containers.AgentSpec
	URL  string
}

// Cluster is the running replicas, their balancer and agents.
type Cluster struct {
	T   testing.TB
	Dir string
	Bin string

	DBName string
	// DBURL is the admin's view of the database (unix socket); DB a pool
	// on it for the tests' reads.
	DBURL string
	DB    *pgxpool.Pool

	Replicas []*Replica
	Balancer *proctest.Process
	// PlacementURL and ContainerURL are the balancer's frontends; StatsURL
	// haproxy's statistics page.
	PlacementURL, ContainerURL, StatsURL string
	// HealthPath is the route haproxy checks the replicas on.
	HealthPath string

	// Zun and Placement are admin clients through the balancer.
	Zun       *containers.Zun
	Placement *containers.Placement

	DockerHost, Image string
	Agents            map[string]*Agent

	opts       Options
	serveDBURL string
}

// Start brings up the cluster; everything stops when t ends. Any failure
// ends the test.
func Start(t testing.TB, opts Options) *Cluster {
	t.Helper()
	NeedHAProxy(t)
	if opts.Replicas == 0 {
		opts.Replicas = 3
	}
	if opts.LogLevel == "" {
		opts.LogLevel = "info"
	}
	c := &Cluster{T: t, opts: opts, Agents: map[string]*Agent{}}
	if len(opts.Agents) > 0 {
		c.DockerHost = dockertest.Host(t)
		c.Image = dockertest.Image(t)
		containers.NeedAgent(t)
	}
	c.Bin = containers.Binary(t)
	c.Dir = harness.ArtifactsDir(t, "replicas")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c.DBName, c.DBURL = harness.TestDatabase(ctx, t, "", "unisched_rep")
	c.serveDBURL = c.DBURL
	if opts.TCP {
		c.serveDBURL = "postgres://postgres@127.0.0.1:5432/" + c.DBName
	}

	for i := range opts.Replicas {
		r := &Replica{Index: i, Name: fmt.Sprintf("unisched-r%d", i)}
		r.serve = harness.Serve{Name: r.Name, Bin: c.Bin, LogPath: filepath.Join(c.Dir, r.Name+".log"), DBURL: c.replicaDBURL(r),
			Env: c.serveEnv(), Timeout: 2 * time.Minute}
		c.Replicas = append(c.Replicas, r)
	}
	// Cleanups run last-registered first: agents, then haproxy, then the
	// replicas, then the hosts' containers, then the database.
	t.Cleanup(c.removeContainers)
	t.Cleanup(func() {
		for _, r := range c.Replicas {
			if r.Process != nil {
				if err := r.Stop(30 * time.Second); err != nil {
					t.Errorf("stopping %s: %v", r.Name, err)
				}
			}
		}
	})
	// All replicas start together on the empty database, as after a
	// cluster-wide restart: one migrates it, the others wait for it (the
	// migrations' advisory lock).
	errs := make([]error, len(c.Replicas))
	var wg sync.WaitGroup
	for i, r := range c.Replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.StartReplica(ctx, r)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	var err error
	if c.DB, err = pgxpool.New(ctx, c.DBURL); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.DB.Close)

	c.HealthPath = c.healthPath(ctx)
	if err := c.startBalancer(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Balancer.Stop(10 * time.Second); err != nil {
			t.Errorf("stopping haproxy: %v", err)
		}
	})
	c.Zun = containers.NewZun(c.ContainerURL, containers.AdminToken)
	c.Placement = &containers.Placement{URL: c.PlacementURL, Token: "admin", HTTP: &http.Client{Timeout: 30 * time.Second}}

	t.Cleanup(func() {
		for _, a := range c.Agents {
			if err := a.Stop(30 * time.Second); err != nil {
				t.Errorf("stopping agent %s: %v", a.Spec.Host, err)
			}
		}
	})
	c.removeContainers()
	for _, spec := range opts.Agents {
		if err := c.StartAgent(ctx, spec); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("cluster: %d replicas on db %s (%s), balancer placement %s container %s (health %s), logs %s",
		len(c.Replicas), c.DBName, map[bool]string{true: "tcp", false: "unix socket"}[opts.TCP], c.PlacementURL, c.ContainerURL, c.HealthPath, c.Dir)
	return c
}

// replicaDBURL is the database URL of replica r: its name as
// application_name, so that pg_stat_activity tells its sessions.
func (c *Cluster) replicaDBURL(r *Replica) string {
	u, _ := url.Parse(c.serveDBURL)
	q := u.Query()
	q.Set("application_name", r.Name)
	u.RawQuery = q.Encode()
	return u.String()
}

// serveEnv is what every replica runs with: short leader and reconcile
// intervals, so that the tests see failovers and runs in seconds.
func (c *Cluster) serveEnv() []string {
	return append([]string{
		"UNISCHED_TEST_RESET=false",
		"UNISCHED_LOG_LEVEL=" + c.opts.LogLevel,
		"UNISCHED_LEADER_RETRY_INTERVAL=250ms",
		"UNISCHED_RECONCILE_INTERVAL=2s",
	}, c.opts.ServeEnv...)
}

// StartReplica starts (or restarts, after Kill or Stop) one replica and
// waits until both its listeners answer.
func (c *Cluster) StartReplica(ctx context.Context, r *Replica) error {
	if r.Process != nil && !r.Exited() {
		return fmt.Errorf("%s already runs (pid %d)", r.Name, r.Pid())
	}
	p, err := r.serve.Start(ctx)
	if err != nil {
		return err
	}
	r.Process = p
	r.PlacementURL, r.ContainerURL = r.serve.PlacementURL(), r.serve.ContainerURL()
	return nil
}

// get is harness.Get: GET url; want 0 accepts any HTTP status.
var get = harness.Get

// healthPath is the route haproxy checks: serve's readiness endpoint when
// this tree has one (/readyz, then /healthz), else GET / of Placement
// (the version document, answered without the database).
func (c *Cluster) healthPath(ctx context.Context) string {
	r := c.Replicas[0]
	for _, p := range []string{"/readyz", "/healthz"} {
		if get(ctx, r.PlacementURL+p, http.StatusOK) == nil && get(ctx, r.ContainerURL+p, http.StatusOK) == nil {
			return p
		}
	}
	return "/"
}

// haproxyConfig balances round-robin over the replicas' placement and
// container API listeners. A replica is taken out after three failed
// checks in a row (every 250 ms: one slow /readyz on a loaded machine must
// not empty a backend) and back after two good ones; a request whose
// connection to a dead replica fails is sent to another (redispatch), so
// a killed replica costs only the requests it was answering.
func (c *Cluster) haproxyConfig(placementPort, containerPort, statsPort int) string {
	var b strings.Builder
	fmt.Fprintf(&b, `global
    maxconn 4096
    log stdout format raw local0 info

defaults
    mode http
    log global
    option httplog
    option redispatch
    retries 3
    timeout connect 2s
    timeout client 5m
    timeout server 5m
    timeout check 3s
    default-server inter 250ms fall 3 rise 2

frontend placement
    bind 127.0.0.1:%d
    default_backend placement

frontend container
    bind 127.0.0.1:%d
    default_backend container

listen stats
    bind 127.0.0.1:%d
    stats enable
    stats uri /stats
`, placementPort, containerPort, statsPort)
	expect := "http-check expect status 200"
	cexpect := expect
	if c.HealthPath == "/" {
		// the container API has no route at /: any answer but a 5xx
		cexpect = "http-check expect rstatus ^[234]"
	}
	for _, be := range []struct {
		name, expect string
		port         func(*Replica) int
	}{
		{"placement", expect, func(r *Replica) int { return r.serve.PlacementPort }},
		{"container", cexpect, func(r *Replica) int { return r.serve.ContainerPort }},
	} {
		fmt.Fprintf(&b, "\nbackend %s\n    balance roundrobin\n    option httpchk GET %s\n    %s\n", be.name, c.HealthPath, be.expect)
		for _, r := range c.Replicas {
			fmt.Fprintf(&b, "    server %s 127.0.0.1:%d check\n", r.Name, be.port(r))
		}
	}
	return b.String()
}

// startBalancer starts haproxy on three free ports (new ones while one
// turns out taken) and waits until it sees every replica UP.
func (c *Cluster) startBalancer(ctx context.Context) error {
	return proctest.RetryPorts(3, func(ports []int) error {
		c.PlacementURL = fmt.Sprintf("http://127.0.0.1:%d", ports[0])
		c.ContainerURL = fmt.Sprintf("http://127.0.0.1:%d", ports[1])
		c.StatsURL = fmt.Sprintf("http://127.0.0.1:%d/stats", ports[2])
		cfg := filepath.Join(c.Dir, "haproxy.cfg")
		if err := os.WriteFile(cfg, []byte(c.haproxyConfig(ports[0], ports[1], ports[2])), 0o644); err != nil {
			return err
		}
		if out, err := exec.CommandContext(ctx, HAProxy, "-c", "-f", cfg).CombinedOutput(); err != nil {
			return fmt.Errorf("haproxy -c -f %s: %v\n%s", cfg, err, out)
		}
		// -db: foreground, logs to stdout; the harness owns its pid.
		cmd := exec.Command(HAProxy, "-db", "-f", cfg)
		p, err := proctest.Start(ctx, "haproxy", filepath.Join(c.Dir, "haproxy.log"), cmd, time.Minute, func(ctx context.Context) error {
			return c.backendsUp(ctx, len(c.Replicas))
		})
		if err != nil {
			return err
		}
		c.Balancer = p
		return nil
	})
}

// Backends is haproxy's view: backend -> server -> status (UP, DOWN, ...).
func (c *Cluster) Backends(ctx context.Context) (map[string]map[string]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.StatsURL+";csv", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	rd := csv.NewReader(resp.Body)
	rd.FieldsPerRecord = -1
	rows, err := rd.ReadAll()
	if err != nil || len(rows) == 0 {
		return nil, fmt.Errorf("reading haproxy's stats: %v", err)
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[strings.TrimPrefix(h, "# ")] = i
	}
	out := map[string]map[string]string{}
	for _, row := range rows[1:] {
		px, sv := row[col["pxname"]], row[col["svname"]]
		if sv == "FRONTEND" || sv == "BACKEND" || px == "stats" {
			continue
		}
		if out[px] == nil {
			out[px] = map[string]string{}
		}
		out[px][sv] = row[col["status"]]
	}
	return out, nil
}

// backendsUp is nil when both backends have want servers UP.
func (c *Cluster) backendsUp(ctx context.Context, want int) error {
	b, err := c.Backends(ctx)
	if err != nil {
		return err
	}
	for _, be := range []string{"placement", "container"} {
		up := 0
		for _, st := range b[be] {
			if st == "UP" {
				up++
			}
		}
		if up != want {
			return fmt.Errorf("backend %s: %d servers UP, want %d (%v)", be, up, want, b[be])
		}
	}
	return nil
}

// WaitBackends waits until haproxy sees want replicas UP in each backend.
func (c *Cluster) WaitBackends(ctx context.Context, want int, timeout time.Duration) error {
	return containers.Eventually(ctx, timeout, func(ctx context.Context) error { return c.backendsUp(ctx, want) })
}

// Holders is, per role, the replicas (application_name) whose sessions
// hold the role's lock now, from pg_locks.
func (c *Cluster) Holders(ctx context.Context) (map[string][]string, error) {
	out := map[string][]string{}
	for role, key := range LockKeys {
		rows, err := c.DB.Query(ctx, `
			SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
			 WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
			   AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
			   AND ((l.classid::bigint << 32) | l.objid::bigint) = $1
			 ORDER BY 1`, key)
		if err != nil {
			return nil, fmt.Errorf("reading pg_locks: %w", err)
		}
		names, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return nil, fmt.Errorf("reading pg_locks: %w", err)
		}
		out[role] = names
	}
	return out, nil
}

// Leader is the replica holding role's lock ("" when none, an error when
// more than one do).
func (c *Cluster) Leader(ctx context.Context, role string) (*Replica, error) {
	h, err := c.Holders(ctx)
	if err != nil {
		return nil, err
	}
	switch len(h[role]) {
	case 0:
		return nil, nil
	case 1:
		for _, r := range c.Replicas {
			if r.Name == h[role][0] {
				return r, nil
			}
		}
		return nil, fmt.Errorf("%s held by %q, not one of the replicas", role, h[role][0])
	default:
		return nil, fmt.Errorf("%s held by %d sessions: %v", role, len(h[role]), h[role])
	}
}

var leaderLine = regexp.MustCompile(`(?m)^unisched_leader\{role="([a-z]+)"\} ([0-9.e+-]+)$`)

// LeaderGauges reads unisched_leader{role} from a replica's /metrics.
func (c *Cluster) LeaderGauges(ctx context.Context, r *Replica) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.ContainerURL+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s/metrics: %s", r.ContainerURL, resp.Status)
	}
	out := map[string]float64{}
	for _, m := range leaderLine.FindAllStringSubmatch(string(b), -1) {
		v, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			return nil, err
		}
		out[m[1]] = v
	}
	return out, nil
}

// agentConfig is the YAML (as JSON) of one agent: its serve is the
// balancer's container API.
func (c *Cluster) agentConfig(spec containers.AgentSpec, listen string) map[string]any {
	// JSON logs: the tests read the agents' "event applied" lines.
	return map[string]any{
		"agent": containers.AgentSection(spec, listen, c.ContainerURL, c.DockerHost, c.Dir),
		"log":   map[string]any{"level": c.opts.LogLevel, "format": "json"},
	}
}

// StartAgent starts one agent and waits until its host is registered.
func (c *Cluster) StartAgent(ctx context.Context, spec containers.AgentSpec) error {
	return proctest.RetryPorts(1, func(ports []int) error {
		listen := fmt.Sprintf("127.0.0.1:%d", ports[0])
		path := filepath.Join(c.Dir, "agent-"+spec.Host+".yaml")
		b, err := json.MarshalIndent(c.agentConfig(spec, listen), "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return err
		}
		cmd := exec.Command(c.Bin, "agent", "--config", path)
		cmd.Env = append(os.Environ(), "UNISCHED_LOG_LEVEL="+c.opts.LogLevel, "UNISCHED_LOG_FORMAT=json")
		started := time.Now()
		p, err := proctest.Start(ctx, "agent "+spec.Host, filepath.Join(c.Dir, "agent-"+spec.Host+".log"), cmd, 2*time.Minute,
			func(ctx context.Context) error { return harness.AgentRegistered(ctx, c.DB, spec.Host, started) })
		if err != nil {
			return err
		}
		c.Agents[spec.Host] = &Agent{Process: p, Spec: spec, URL: "http://" + listen}
		return nil
	})
}

// AppliedEvent is one "event applied" line of an agent's log.
type AppliedEvent struct {
	Host     string
	ID       int64
	Type     string
	Action   string
	Workload string
}

// Applied reads the events each agent applied, in its log's order (an
// event is logged once applied; a duplicate delivery the agent recognises
// is answered without a line).
func (c *Cluster) Applied() ([]AppliedEvent, error) {
	var out []AppliedEvent
	for host, a := range c.Agents {
		f, err := os.Open(a.LogPath)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var line struct {
				Msg      string `json:"msg"`
				Event    int64  `json:"event"`
				Type     string `json:"type"`
				Action   string `json:"action"`
				Workload string `json:"workload"`
			}
			if json.Unmarshal(sc.Bytes(), &line) != nil || line.Msg != "event applied" {
				continue
			}
			out = append(out, AppliedEvent{Host: host, ID: line.Event, Type: line.Type, Action: line.Action, Workload: line.Workload})
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// removeContainers force-removes the Docker containers of the cluster's
// hosts.
func (c *Cluster) removeContainers() {
	if c.DockerHost == "" {
		return
	}
	cli, err := dockertest.NewClient(c.DockerHost)
	if err != nil {
		c.T.Logf("docker client: %v", err)
		return
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, s := range c.opts.Agents {
		if err := containers.RemoveHostContainers(ctx, cli, s.Host); err != nil {
			c.T.Logf("removing containers of %s: %v", s.Host, err)
		}
	}
}

// Logs is the tail of every process's log, for failure messages.
func (c *Cluster) Logs(lines int) string {
	var b strings.Builder
	for _, r := range c.Replicas {
		if r.Process != nil {
			fmt.Fprintf(&b, "--- %s (%s)\n%s\n", r.Name, r.LogPath, r.Log(lines))
		}
	}
	for _, s := range c.opts.Agents {
		if a := c.Agents[s.Host]; a != nil {
			fmt.Fprintf(&b, "--- agent %s (%s)\n%s\n", s.Host, a.LogPath, a.Log(lines))
		}
	}
	return b.String()
}
