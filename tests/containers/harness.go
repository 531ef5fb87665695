// Package containers is the harness of the container integration tests: it
// builds unisched from this tree, starts `unisched serve` (Placement and
// the container API, test reset on) on a fresh database of the local
// PostgreSQL, and N `unisched agent` processes, each speaking for one
// simulated host with its own NUMA topology and CPU pools, all against a
// private dockerd (internal/dockertest). Everything it starts is stopped by
// its pid when the test ends. The helpers read what the tests assert on:
// the Zun API, Placement usages, the ledger and Docker itself.
//
// A test package using it runs its tests through Main:
//
//	func TestMain(m *testing.M) { os.Exit(containers.Main(m)) }
//
// and starts one environment per test (several agents may share the one
// dockerd; each touches only containers labelled with its host name):
//
//	env := containers.Start(t, containers.Options{})
//	c := env.Zun.MustRun(t, map[string]any{"image": env.Image, "command": []string{"echo", "hello"}})
package containers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/unisched/unisched/bridge/agentproto"
	"github.com/unisched/unisched/internal/dockertest"
	"github.com/unisched/unisched/internal/proctest"
	"github.com/unisched/unisched/tests/harness"
)

// AdminToken is the noauth2 token of an admin in project admin.
const AdminToken = "admin:admin"

// AgentSpec is one simulated host.
type AgentSpec struct {
	Host  string
	Cells []agentproto.Cell
	// DedicatedCPUs and SharedCPUs are the pools (Linux list form).
	DedicatedCPUs, SharedCPUs string
	DiskGB                    int64
	AvailabilityZone          string
	// Allocation ratios and reserved memory of the inventory the agent
	// owns (zero: defaults).
	CPUAllocationRatio, RAMAllocationRatio, DiskAllocationRatio float64
	ReservedMemoryMB                                            int64
	// Extra sets more keys of the agent's configuration section.
	Extra map[string]any
}

// DefaultHosts are two hosts on this machine's two CPUs, each with two
// NUMA cells of one CPU: host-a dedicates cpu 1 (cell 1) and shares cpu 0,
// host-b dedicates cpu 0 (cell 0) and shares cpu 1. Both have 4 GiB per
// cell and 100 GB of disk.
func DefaultHosts() []AgentSpec {
	cells := func() []agentproto.Cell {
		return []agentproto.Cell{{ID: 0, CPUs: "0", MemoryMB: 4096}, {ID: 1, CPUs: "1", MemoryMB: 4096}}
	}
	return []AgentSpec{
		{Host: "host-a", Cells: cells(), DedicatedCPUs: "1", SharedCPUs: "0", DiskGB: 100},
		{Host: "host-b", Cells: cells(), DedicatedCPUs: "0", SharedCPUs: "1", DiskGB: 100},
	}
}

// Options configures one environment.
type Options struct {
	// Agents are the hosts to start; nil: DefaultHosts(). An empty non-nil
	// slice starts serve only.
	Agents []AgentSpec
	// ServeEnv and AgentEnv add UNISCHED_* settings to every serve or agent.
	ServeEnv, AgentEnv []string
	// LogLevel of the processes (default debug: the logs are the first
	// thing to read when a scenario fails).
	LogLevel string
	// Dir receives the logs and configuration files (default: under
	// $ARTIFACTS/containers/<test name> when ARTIFACTS is set, else a
	// temporary directory).
	Dir string
	// StartTimeout bounds each process's start (default 60 s).
	StartTimeout time.Duration
	// OwnDocker gives the environment a dockerd of its own (Env.Daemon)
	// instead of the test binary's, so that a fault test can stop, kill and
	// restart it; DockerArgs are its extra flags (e.g. "--live-restore").
	OwnDocker  bool
	DockerArgs []string
	// Dashboard runs serve's dashboard too, at Env.DashboardURL.
	Dashboard bool
}

// Env is one running environment.
type Env struct {
	T   testing.TB
	Dir string
	Bin string

	// DockerHost is the private dockerd every agent uses; Docker a client
	// of it. Daemon is that dockerd when Options.OwnDocker asked for one.
	DockerHost string
	Docker     *client.Client
	Daemon     *dockertest.Daemon
	// Image is unisched/busybox:latest, present on that daemon.
	Image string

	// DBName and DBURL name the environment's database; DB is a pool on it.
	DBName, DBURL string
	DB            *pgxpool.Pool

	PlacementURL string
	// ContainerURL is the container API (Zun v1, /v1/workloads, agent routes).
	ContainerURL string
	// DashboardURL is the dashboard's page when Options.Dashboard asked for it.
	DashboardURL string
	Serve        *proctest.Process
	Agents       map[string]*Agent

	// Zun is an admin client of the container API; Placement an admin
	// client of Placement.
	Zun       *Zun
	Placement *Placement

	opts  Options
	serve harness.Serve
}

// Agent is one running `unisched agent`.
type Agent struct {
	*proctest.Process
	Spec       AgentSpec
	URL        string
	Listen     string
	ConfigPath string
}

var (
	buildOnce sync.Once
	buildDir  string
	buildBin  string
	buildErr  error
)

// Main runs the package's tests (through dockertest.Main, which stops the
// private dockerd) and removes the unisched binary built for them.
func Main(m *testing.M) int {
	code := dockertest.Main(m)
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	return code
}

// Binary builds ./cmd/unisched once per test binary.
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		root, err := harness.ModuleRoot()
		if err != nil {
			buildErr = err
			return
		}
		buildDir, buildErr = os.MkdirTemp("", "unisched-ctr-bin")
		if buildErr != nil {
			return
		}
		buildBin = filepath.Join(buildDir, "unisched")
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		buildErr = harness.BuildUnisched(ctx, root, buildBin)
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildBin
}

// NeedAgent ends the test when the unisched binary has no agent
// subcommand (a tree from before zunext/agent): a skip on a developer's
// machine, a failure where Docker tests are required (CI), so that the
// container tests can never pass by not running.
func NeedAgent(t testing.TB) {
	t.Helper()
	out, _ := exec.Command(Binary(t), "agent", "--help").CombinedOutput()
	if strings.Contains(string(out), `unknown command "agent"`) {
		if dockertest.Required() {
			t.Fatal("unisched has no agent subcommand")
		}
		t.Skip("unisched has no agent subcommand")
	}
}

// Start brings up serve and the agents of opts; everything stops when t
// ends. Any failure ends the test.
func Start(t testing.TB, opts Options) *Env {
	t.Helper()
	if opts.Agents == nil {
		opts.Agents = DefaultHosts()
	}
	if opts.LogLevel == "" {
		opts.LogLevel = "debug"
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = time.Minute
	}
	env := &Env{T: t, opts: opts, Agents: map[string]*Agent{}}
	if opts.OwnDocker {
		env.startOwnDocker(t)
	} else {
		env.DockerHost = dockertest.Host(t)
		env.Image = dockertest.Image(t)
		env.Docker = dockertest.Client(t)
	}
	env.Bin = Binary(t)

	if env.Dir = opts.Dir; env.Dir == "" {
		env.Dir = harness.ArtifactsDir(t, "containers")
	} else if err := os.MkdirAll(env.Dir, 0o755); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	env.DBName, env.DBURL = harness.TestDatabase(ctx, t, "", "unisched_ctr")
	env.serve = harness.Serve{Name: "unisched serve", Bin: env.Bin, LogPath: filepath.Join(env.Dir, "serve.log"), DBURL: env.DBURL,
		Env: append([]string{"UNISCHED_TEST_RESET=true", "UNISCHED_LOG_LEVEL=" + opts.LogLevel}, opts.ServeEnv...), Timeout: opts.StartTimeout,
		Dashboard: opts.Dashboard}

	// Cleanups run last-registered first: agents stop before serve, and
	// the hosts' containers go after both.
	t.Cleanup(func() { env.removeContainers() })
	if err := env.StartServe(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := env.Serve.Stop(30 * time.Second); err != nil {
			t.Errorf("stopping serve: %v", err)
		}
	})
	env.PlacementURL, env.ContainerURL = env.serve.PlacementURL(), env.serve.ContainerURL()
	if opts.Dashboard {
		env.DashboardURL = env.serve.DashboardURL()
	}
	env.Zun = NewZun(env.ContainerURL, AdminToken)
	env.Placement = &Placement{URL: env.PlacementURL, Token: "admin", HTTP: &http.Client{Timeout: 30 * time.Second}}
	var err error
	if env.DB, err = pgxpool.New(ctx, env.DBURL); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(env.DB.Close)
	t.Cleanup(func() {
		for _, a := range env.Agents {
			if err := a.Stop(30 * time.Second); err != nil {
				t.Errorf("stopping agent %s: %v", a.Spec.Host, err)
			}
		}
	})
	// Leftovers of an earlier environment with the same host names would
	// be taken for orphans; start clean.
	env.removeContainers()
	for _, spec := range opts.Agents {
		if _, err := env.StartAgent(ctx, spec); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("containers env: placement %s, container API %s, db %s, docker %s, logs %s", env.PlacementURL, env.ContainerURL, env.DBName, env.DockerHost, env.Dir)
	return env
}

// startOwnDocker starts the environment's own dockerd, closed when t ends.
func (e *Env) startOwnDocker(t testing.TB) {
	t.Helper()
	if os.Getenv(dockertest.EnvHost) != "" {
		t.Skipf("an environment with its own dockerd cannot run on the shared %s", dockertest.EnvHost)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d, err := dockertest.StartDaemon(ctx, dockertest.Options{ExtraArgs: e.opts.DockerArgs})
	if errors.Is(err, dockertest.ErrUnavailable) {
		dockertest.Unavailable(t, err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := d.Close(ctx); err != nil {
			t.Errorf("closing the environment's dockerd: %v", err)
		}
	})
	e.Daemon, e.DockerHost = d, d.Host
	if e.Docker, err = dockertest.NewClient(d.Host); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Docker.Close() })
	if _, err := dockertest.EnsureImage(ctx, e.Docker); err != nil {
		if errors.Is(err, dockertest.ErrUnavailable) {
			dockertest.Unavailable(t, err)
		}
		t.Fatal(err)
	}
	e.Image = dockertest.ImageName
}

// StartServe starts `unisched serve` on the environment's database and
// ports (again, after Serve.Stop or Serve.Kill: the same ports) and waits
// until both listeners answer.
func (e *Env) StartServe(ctx context.Context) error {
	p, err := e.serve.Start(ctx)
	if err != nil {
		return err
	}
	e.Serve = p
	return nil
}

// agentConfig is the YAML (written as JSON, which YAML reads) of one agent.
func (e *Env) agentConfig(spec AgentSpec, listen string) map[string]any {
	return map[string]any{
		"agent": AgentSection(spec, listen, e.ContainerURL, e.DockerHost, e.Dir),
		"log":   map[string]any{"level": e.opts.LogLevel},
	}
}

// AgentSection is the agent section of the configuration of spec's agent:
// listening on listen, registering with the container API at serveURL,
// running containers on dockerHost, its state file in dir.
func AgentSection(spec AgentSpec, listen, serveURL, dockerHost, dir string) map[string]any {
	cells := make([]map[string]any, len(spec.Cells))
	for i, c := range spec.Cells {
		m := map[string]any{"id": c.ID, "cpus": c.CPUs, "memory_mb": c.MemoryMB}
		if len(c.Siblings) > 0 {
			m["siblings"] = c.Siblings
		}
		cells[i] = m
	}
	a := map[string]any{
		"host":           spec.Host,
		"listen":         listen,
		"serve_url":      serveURL,
		"token":          AdminToken,
		"docker_host":    dockerHost,
		"cells":          cells,
		"dedicated_cpus": spec.DedicatedCPUs,
		"shared_cpus":    spec.SharedCPUs,
		"state_file":     filepath.Join(dir, "agent-"+spec.Host+".state"),
	}
	set := func(k string, v any, zero bool) {
		if !zero {
			a[k] = v
		}
	}
	set("disk_gb", spec.DiskGB, spec.DiskGB == 0)
	set("availability_zone", spec.AvailabilityZone, spec.AvailabilityZone == "")
	set("cpu_allocation_ratio", spec.CPUAllocationRatio, spec.CPUAllocationRatio == 0)
	set("ram_allocation_ratio", spec.RAMAllocationRatio, spec.RAMAllocationRatio == 0)
	set("disk_allocation_ratio", spec.DiskAllocationRatio, spec.DiskAllocationRatio == 0)
	set("reserved_host_memory_mb", spec.ReservedMemoryMB, spec.ReservedMemoryMB == 0)
	for k, v := range spec.Extra {
		a[k] = v
	}
	return a
}

// StartAgent starts one agent (or the same host again after a Stop) and
// waits until its host is registered with serve.
func (e *Env) StartAgent(ctx context.Context, spec AgentSpec) (*Agent, error) {
	if old := e.Agents[spec.Host]; old != nil && !old.Exited() {
		return nil, fmt.Errorf("agent %s already runs (pid %d)", spec.Host, old.Pid())
	}
	start := func(listen string) error {
		path := filepath.Join(e.Dir, "agent-"+spec.Host+".yaml")
		b, err := json.MarshalIndent(e.agentConfig(spec, listen), "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return err
		}
		// Only what the agent needs: no database (an agent never reads it).
		cmd := exec.Command(e.Bin, "agent", "--config", path)
		cmd.Env = append(os.Environ(), "UNISCHED_LOG_LEVEL="+e.opts.LogLevel)
		cmd.Env = append(cmd.Env, e.opts.AgentEnv...)
		started := time.Now()
		p, err := proctest.Start(ctx, "unisched agent "+spec.Host, filepath.Join(e.Dir, "agent-"+spec.Host+".log"), cmd, e.opts.StartTimeout,
			func(ctx context.Context) error { return harness.AgentRegistered(ctx, e.DB, spec.Host, started) })
		if err != nil {
			return err
		}
		e.Agents[spec.Host] = &Agent{Process: p, Spec: spec, URL: "http://" + listen, Listen: listen, ConfigPath: path}
		return nil
	}
	var err error
	if old := e.Agents[spec.Host]; old != nil {
		err = start(old.Listen) // same URL across restarts, as a real host keeps its address
	} else {
		err = proctest.RetryPorts(1, func(ps []int) error { return start(fmt.Sprintf("127.0.0.1:%d", ps[0])) })
	}
	if err != nil {
		return nil, err
	}
	return e.Agents[spec.Host], nil
}

// removeContainers force-removes the Docker containers of the
// environment's hosts.
func (e *Env) removeContainers() {
	if e.Docker == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, s := range e.opts.Agents {
		if err := RemoveHostContainers(ctx, e.Docker, s.Host); err != nil {
			e.T.Logf("removing containers of %s: %v", s.Host, err)
		}
	}
}

// RemoveHostContainers force-removes every container labelled with host
// (one list per host: Docker ANDs label filters).
func RemoveHostContainers(ctx context.Context, cli *client.Client, host string) error {
	list, err := cli.ContainerList(ctx, container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", agentproto.LabelHost+"="+host))})
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range list {
		if err := cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Reset empties the database through serve's test reset (POST
// /_test/reset on the placement listener) and re-registers nothing: use it
// between phases only when the agents are stopped.
func (e *Env) Reset(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.PlacementURL+"/_test/reset", nil)
	if err != nil {
		return err
	}
	req.Header.Set("X-Auth-Token", "admin")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("test reset: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("test reset: %s", resp.Status)
	}
	return nil
}

// Logs is the tail of every process's log, for failure messages.
func (e *Env) Logs(lines int) string {
	var b strings.Builder
	if e.Serve != nil {
		fmt.Fprintf(&b, "--- serve (%s)\n%s\n", e.Serve.LogPath, e.Serve.Log(lines))
	}
	for _, s := range e.opts.Agents {
		if a := e.Agents[s.Host]; a != nil {
			fmt.Fprintf(&b, "--- agent %s (%s)\n%s\n", s.Host, a.LogPath, a.Log(lines))
		}
	}
	return b.String()
}
