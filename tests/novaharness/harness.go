// Package novaharness runs real Nova (Zed, from Debian's packages) against
// unisched's Placement on one machine, for the integration tests under
// tests/: a `unisched serve` built from this tree on a fresh database,
// RabbitMQ (a node of its own: name, ports, epmd, data dir), Glance (file
// store), a Neutron stand-in, nova-api (noauth2), nova-conductor,
// nova-scheduler and N nova-compute processes on Nova's fake virt driver,
// some of them with dedicated CPUs (PCPU) and host NUMA cells. Nova talks
// to Placement through a recorder (Wire) that logs every exchange.
//
// Everything lives under one directory and in fresh databases of the local
// PostgreSQL (UNISCHED_TEST_DATABASE_URL); every process leads its own
// process group and is stopped by its pid; nothing else is signalled.
// Debian's OpenStack code is run with /usr/bin/python3 explicitly.
//
// The packages are installed by install.sh beside this file (apt, only
// what is missing); Start fails, naming them, when any is missing.
//
//	env, err := novaharness.Start(ctx, novaharness.Options{})
//	defer env.Close()
//	env.Nova(ctx, "POST", "/servers", body, &out)
package novaharness

import (
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/client"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/unisched/unisched/internal/dockertest"
	"github.com/unisched/unisched/internal/proctest"
	"github.com/unisched/unisched/internal/rabbittest"
	"github.com/unisched/unisched/tests/harness"
)

// ControllerHost is the host name of nova-api, -conductor and -scheduler.
const ControllerHost = "unisched-controller"

// AdminToken is the noauth2 token of an admin in project admin (nova-api).
const AdminToken = "admin:admin"

// NovaVersion is the compute microversion the helpers send (Zed's max is 2.93).
const NovaVersion = "2.90"

// Packages are the Debian packages the harness needs (install.sh installs
// the missing ones; .ci/run lists them too).
var Packages = []string{
	"rabbitmq-server", "python3-kombu",
	"glance-api", "python3-glanceclient",
	"nova-api", "nova-conductor", "nova-scheduler", "python3-nova",
	"python3-psycopg2", "python3-openstackclient", "python3-novaclient",
}

//go:embed py/*.py
var pyFiles embed.FS

// ComputeSpec is one fake nova-compute host. Zero sizes keep the fake
// driver's own (1000 VCPU, 800000 MB, 600000 GB). With PCPUs or NUMACells
// set the host reports NUMA cells and PCPU like a libvirt host with
// cpu_shared_set/cpu_dedicated_set: VCPUs are then its shared CPUs.
type ComputeSpec struct {
	Host                    string
	Driver                  string // default fake.FakeDriver
	VCPUs, MemoryMB, DiskGB int
	PCPUs, NUMACells        int
}

func (s ComputeSpec) driver() string {
	if s.Driver == "" {
		return "fake.FakeDriver"
	}
	return s.Driver
}

// Pinning reports whether the host reports PCPU and NUMA cells.
func (s ComputeSpec) Pinning() bool { return s.PCPUs > 0 || s.NUMACells > 0 }

// DefaultComputes: compute-1 the fake driver's plain big host (VCPU only),
// compute-2 a pinning host with 2 NUMA cells of 2 shared + 2 dedicated
// CPUs and 8 GiB each (VCPU 4, PCPU 4, MEMORY_MB 16384).
func DefaultComputes() []ComputeSpec {
	return []ComputeSpec{
		{Host: "compute-1"},
		{Host: "compute-2", VCPUs: 4, PCPUs: 4, NUMACells: 2, MemoryMB: 16384},
	}
}

// Options configures an environment.
type Options struct {
	// Computes to start; nil: DefaultComputes().
	Computes []ComputeSpec
	// Dir receives configuration, state and logs; it must exist or be
	// creatable. Default: a new temporary directory, removed by Close.
	Dir string
	// PortBase: the environment uses PortBase..PortBase+7 on 127.0.0.1
	// (unisched, the Placement recorder, AMQP, Erlang distribution, epmd,
	// Glance, the Neutron stand-in, nova-api, and more). 0:
	// UNISCHED_NOVA_PORT_BASE, else free ports (proctest.FreePort), and a
	// service whose port is taken before it binds it moves to another.
	PortBase int
	// AdminURL is the PostgreSQL superuser URL (default harness.AdminURL()).
	AdminURL string
	// UnischedBin is a built unisched (default: built from this tree).
	UnischedBin string
	// UnischedEnv adds settings to `unisched serve` (UNISCHED_LOG_LEVEL=debug ...).
	UnischedEnv []string
	// Debug turns on nova's debug logging.
	Debug bool
	// ExtraNovaConf is appended to every nova configuration file (later
	// sections override earlier ones in oslo.config).
	ExtraNovaConf string
	// Timeout bounds the whole start (default 10 minutes).
	Timeout time.Duration

	// Placement is "unisched" (default) or "upstream": Debian's Placement
	// 8.0.0 under uwsgi (tests/harness.StartUpstream) in its place, for
	// comparisons; then nothing of unisched runs (no agents, no dockerd).
	Placement string
	// NoContainers leaves out the private dockerd and the agents.
	NoContainers bool
	// ServeConfig is merged into serve's configuration file (nested maps
	// by section, e.g. {"nova": {"candidates": "only"}}).
	ServeConfig map[string]any
	// LogLevel of serve and the agents (default info).
	LogLevel string
	// Keystone, when set, is a running Keystone the environment is
	// registered in and authenticates with (keystone.go): nova-api runs
	// keystonemiddleware instead of noauth2, serve validates tokens with
	// Keystone, the helpers authenticate as Keystone's admin.
	Keystone *Keystone
	// OwnPostgres runs a PostgreSQL cluster of the environment's own for
	// all its databases (Env.Postgres, RestartPostgres) instead of using
	// AdminURL's.
	OwnPostgres bool
}

// stepTimeout bounds each wait for a service: long, because on a shared
// two-core machine with several environments starting at once a RabbitMQ
// node was seen to need 90 s before it even logged (the whole start is
// bounded by Options.Timeout anyway).
const stepTimeout = 8 * time.Minute

type ports struct {
	placement, wire, amqp, dist, epmd, glance, neutron, nova int
	container, proxy, pg                                     int
	// agents[i] is compute i's agent's port (0 until its first start when
	// the ports are picked).
	agents []int
	// picked: the environment chose the ports (no PortBase), so a service
	// whose port turns out taken when it binds moves to another one.
	picked bool
}

// Env is a running environment.
type Env struct {
	Dir string

	// PlacementURL is unisched's Placement (what tests assert on);
	// PlacementWireURL is what Nova uses: the recorder in front of it.
	PlacementURL, PlacementWireURL string
	NovaURL                        string // http://127.0.0.1:port/v2.1
	GlanceURL, NeutronURL          string
	TransportURL, AMQPURL          string
	RabbitNode                     string

	// Upstream is Debian's Placement when Options.Placement is "upstream".
	Upstream *harness.Server
	// Serve is `unisched serve` (StartServe, StopServe, KillServe restart
	// it on the same database); DBName, DBURL and DB (a pool) its database.
	Serve         *proctest.Process
	DBName, DBURL string
	DB            *pgxpool.Pool
	// ContainerURL is serve's container API (Zun v1, /v1/..., /metrics);
	// ProxyURL the compute API through serve's Nova proxy (.../v2.1).
	ContainerURL, ProxyURL string
	// Daemon is the private dockerd the agents use (DockerHost), Docker a
	// client of it, Image the busybox image the containers run.
	Daemon     *dockertest.Daemon
	DockerHost string
	Docker     *client.Client
	Image      string

	// Postgres is the environment's own cluster (Options.OwnPostgres).
	Postgres *Postgres

	Wire *Wire
	// Rabbit is the environment's RabbitMQ node (StopRabbit, StartRabbit).
	Rabbit *rabbittest.Node
	// Processes by name: glance-api, nova-api,
	// nova-conductor, nova-scheduler, nova-compute-<host>, unisched-serve,
	// unisched-agent-<host>.
	Processes map[string]*proctest.Process
	Computes  []ComputeSpec
	// ImageID is the 1 KiB raw image "cirros-fake" (never read by the fake
	// driver); flavor "m1.tiny" (id 1: 1 vCPU, 512 MB, 1 GB) exists too.
	ImageID string
	// Timings of the start's phases, for the test log.
	Timings []Timing

	// Keystone is what Start registered in Options.Keystone (nil: none).
	Keystone *KeystoneEnv

	// NovaAPIDB and NovaCellDB are pgx URLs of nova's API and cell1 databases.
	NovaAPIDB, NovaCellDB string

	opts                                  Options
	admin                                 string
	ports                                 ports
	dbs                                   []string
	novaAPIConn, novaCellConn, glanceConn string
	servers                               []*http.Server
	tempDir                               bool
	binDir, bin                           string
	startedAt                             time.Time
	http                                  *http.Client
	mu                                    sync.Mutex
	// moved: a service moved to another port after the catalog was
	// registered (Keystone): it is registered again at the end of Start.
	moved bool
	// novaAPILog and novaAPILogFrom: nova-api's log and where its current
	// run's lines begin (it logs a failure to bind there, not to stdout).
	novaAPILog     string
	novaAPILogFrom int64
}

// Timing is how long one phase of Start took.
type Timing struct {
	Phase string
	Took  time.Duration
}

func (e *Env) timed(phase string, since time.Time) {
	e.mu.Lock()
	e.Timings = append(e.Timings, Timing{phase, time.Since(since)})
	e.mu.Unlock()
}

// Missing lists the packages of Packages that dpkg does not have installed.
func Missing() []string {
	var out []string
	for _, p := range Packages {
		b, err := exec.Command("dpkg-query", "-W", "-f=${db:Status-Status}", p).Output()
		if err != nil || strings.TrimSpace(string(b)) != "installed" {
			out = append(out, p)
		}
	}
	return out
}

// Start brings the whole environment up and returns once nova-api answers,
// every service consumes its RPC queue, the computes are mapped to cell1
// and their resource providers (with their inventories) are in unisched's
// Placement. On failure everything started so far is stopped again.
func Start(ctx context.Context, opts Options) (env *Env, err error) {
	if missing := Missing(); len(missing) > 0 {
		return nil, fmt.Errorf("novaharness: Debian packages missing: %s (run tests/novaharness/install.sh as root)", strings.Join(missing, " "))
	}
	if opts.Computes == nil {
		opts.Computes = DefaultComputes()
	}
	if opts.Timeout == 0 {
		opts.Timeout = 10 * time.Minute
	}
	if opts.AdminURL == "" {
		opts.AdminURL = harness.AdminURL()
	}
	switch opts.Placement {
	case "", "unisched":
		opts.Placement = "unisched"
	case "upstream":
		opts.NoContainers = true
		if err := harness.UpstreamAvailable(); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("novaharness: Options.Placement %q: want unisched or upstream", opts.Placement)
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	e := &Env{opts: opts, admin: opts.AdminURL, Processes: map[string]*proctest.Process{}, Computes: opts.Computes,
		startedAt: time.Now(), http: &http.Client{Timeout: 5 * time.Minute}}
	defer func() {
		if err != nil {
			_ = e.Close()
			env = nil
		}
	}()
	if e.Dir = opts.Dir; e.Dir == "" {
		if e.Dir, err = os.MkdirTemp("", "novaharness-"); err != nil {
			return nil, err
		}
		e.tempDir = true
	}
	for _, d := range []string{"logs", "py"} {
		if err := os.MkdirAll(filepath.Join(e.Dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	if err := e.writePython(); err != nil {
		return nil, err
	}
	if err := e.pickPorts(); err != nil {
		return nil, err
	}
	if opts.OwnPostgres {
		t0 := time.Now()
		pgc, err := startPostgres(ctx, e.ports.pg, filepath.Join(e.Dir, "logs"))
		if err != nil {
			return nil, err
		}
		e.Postgres, e.admin = pgc, pgc.AdminURL
		e.timed("own postgresql", t0)
	}
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	id := hex.EncodeToString(suffix)
	e.RabbitNode = "unisched-nova-" + id + "@localhost"
	e.setRabbitURLs()
	e.setGlanceURL()
	e.setNovaURL()
	e.setServeURLs()
	// the stand-ins first: they bind ports of their own at once
	if err := e.startStandIns(); err != nil {
		return nil, err
	}
	if opts.Keystone != nil {
		if err := e.setupKeystone(ctx); err != nil {
			return nil, err
		}
	}
	prefix := "unisched_nova_" + id
	apiDB, cellDB, cell0DB, glanceDB := prefix+"_api", prefix+"_cell1", prefix+"_cell0", prefix+"_glance"
	for _, db := range []string{apiDB, cellDB, cell0DB, glanceDB} {
		c, err := sqlalchemyURL(e.admin, db)
		if err != nil {
			return nil, err
		}
		switch db {
		case apiDB:
			e.novaAPIConn = c
		case cellDB:
			e.novaCellConn = c
		case glanceDB:
			e.glanceConn = c
		}
	}
	if e.NovaAPIDB, err = harness.DatabaseURL(e.admin, apiDB); err != nil {
		return nil, err
	}
	if e.NovaCellDB, err = harness.DatabaseURL(e.admin, cellDB); err != nil {
		return nil, err
	}
	cell0Conn, err := sqlalchemyURL(e.admin, cell0DB)
	if err != nil {
		return nil, err
	}

	// Everything starts as soon as what it needs is there: the nova
	// controllers once RabbitMQ, their databases and Glance are (their
	// configuration names RabbitMQ's and Glance's final ports: a service
	// whose port was taken moves), serve once RabbitMQ is, the computes
	// once serve is too (a compute that finds no Placement retries only
	// at its next periodic update, a minute later). nova.conf is written
	// now for nova-manage and again, final, before the controllers start.
	if err := e.writeNovaConf(); err != nil {
		return nil, err
	}
	rabbit := async(func() error { return e.startRabbit(ctx) })
	unisched := async(func() error {
		if opts.Placement == "upstream" {
			return e.startUpstream(ctx, prefix+"_placement")
		}
		return e.startUnisched(ctx, prefix+"_placement", rabbit)
	})
	docker := async(func() error {
		if opts.NoContainers {
			return nil
		}
		return e.startDocker(ctx)
	})
	dbs := async(func() error { return e.setupNovaDBs(ctx, apiDB, cellDB, cell0DB) })
	glance := async(func() error { return e.startGlance(ctx, glanceDB) })
	controllers := async(func() error {
		deps := []*task{rabbit, dbs, glance}
		if opts.Keystone != nil {
			// with Keystone, nova-conductor discovers Placement through
			// the catalog as it starts and exits when it finds no version
			// there (openstack.exceptions.NotSupported): it waits for serve
			deps = append(deps, unisched)
		}
		if err := after(deps...); err != nil {
			return err
		}
		if err := e.mapCells(ctx, cell0Conn); err != nil {
			return err
		}
		if err := e.writeNovaConf(); err != nil {
			return err
		}
		return e.startControllers()
	})
	computes := async(func() error {
		if err := after(rabbit, unisched, controllers); err != nil {
			return err
		}
		return e.startComputes()
	})
	if err := firstErrors(unisched, rabbit, dbs, glance, controllers, computes, docker); err != nil {
		return nil, err
	}
	t1 := time.Now()
	if err := e.waitNova(ctx); err != nil {
		return nil, err
	}
	e.timed("nova services ready (after the last start)", t1)
	if !opts.NoContainers {
		// after the computes' providers exist: an agent finding none
		// would create one of its own under the compute's name
		if err := e.startAgents(ctx); err != nil {
			return nil, err
		}
	}
	if e.moved && e.Keystone != nil {
		if err := e.registerCatalog(ctx, e.Keystone); err != nil {
			return nil, err
		}
	}
	t2 := time.Now()
	if err := e.seed(ctx); err != nil {
		return nil, err
	}
	e.timed("flavor and image", t2)
	e.timed("total", e.startedAt)
	return e, nil
}

func (e *Env) writePython() error {
	entries, err := pyFiles.ReadDir("py")
	if err != nil {
		return err
	}
	for _, f := range entries {
		b, err := pyFiles.ReadFile("py/" + f.Name())
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(e.Dir, "py", f.Name()), b, 0o755); err != nil {
			return err
		}
	}
	return nil
}

// pickPorts chooses every port up front, so that each configuration file
// and the catalog can be written before the services start: base..base+N
// (PortBase), or free ones (proctest.FreePort) that a service moves off
// when one was taken before it bound it.
func (e *Env) pickPorts() error {
	base := e.opts.PortBase
	if base == 0 {
		if v := os.Getenv("UNISCHED_NOVA_PORT_BASE"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 || n > 65000 {
				return fmt.Errorf("UNISCHED_NOVA_PORT_BASE=%q: want a port number", v)
			}
			base = n
		}
	}
	all := []*int{&e.ports.placement, &e.ports.wire, &e.ports.amqp, &e.ports.dist, &e.ports.epmd, &e.ports.glance, &e.ports.neutron, &e.ports.nova,
		&e.ports.container, &e.ports.proxy, &e.ports.pg}
	e.ports.agents = make([]int, len(e.Computes))
	if base == 0 {
		// the stand-ins bind port 0; the agents pick at their first start
		e.ports.picked = true
		for _, p := range all {
			if p == &e.ports.wire || p == &e.ports.neutron {
				continue
			}
			n, err := proctest.FreePort()
			if err != nil {
				return err
			}
			*p = n
		}
		return nil
	}
	for i := range e.ports.agents {
		all = append(all, &e.ports.agents[i])
	}
	for i, p := range all {
		*p = base + i
		if err := harness.CheckPortFree(*p); err != nil {
			return fmt.Errorf("novaharness: %w", err)
		}
	}
	return nil
}

// movePorts runs start on ports and, when the environment picked them and
// one turns out taken, again on new ones (start sets what refers to them).
func (e *Env) movePorts(ports []*int, start func() error) error {
	if !e.ports.picked {
		return start()
	}
	attempt := 0
	return proctest.MovePorts(ports, func() error {
		if attempt++; attempt > 1 {
			e.mu.Lock()
			e.moved = true
			e.mu.Unlock()
		}
		return start()
	})
}

func (e *Env) setRabbitURLs() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.AMQPURL = fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", e.ports.amqp)
	e.TransportURL = fmt.Sprintf("rabbit://guest:guest@127.0.0.1:%d/", e.ports.amqp)
}

func (e *Env) setGlanceURL() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.GlanceURL = fmt.Sprintf("http://127.0.0.1:%d", e.ports.glance)
}

func (e *Env) setNovaURL() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.NovaURL = fmt.Sprintf("http://127.0.0.1:%d/v2.1", e.ports.nova)
}

func (e *Env) setServeURLs() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.PlacementURL = fmt.Sprintf("http://127.0.0.1:%d", e.ports.placement)
	e.ContainerURL = fmt.Sprintf("http://127.0.0.1:%d", e.ports.container)
	e.ProxyURL = fmt.Sprintf("http://127.0.0.1:%d/v2.1", e.ports.proxy)
}

// parallel runs fns at once and returns their errors (all finish first).
func parallel(fns ...func() error) error {
	errs := make([]error, len(fns))
	var wg sync.WaitGroup
	for i, fn := range fns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn()
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// task is a step of the start running in its own goroutine.
type task struct {
	done chan struct{}
	err  error
}

func async(fn func() error) *task {
	t := &task{done: make(chan struct{})}
	go func() {
		defer close(t.done)
		t.err = fn()
	}()
	return t
}

// errDependency marks a step not run because one it needs failed (that
// failure is reported by its own step).
var errDependency = errors.New("not started: a step it needs failed")

// after waits for tasks and returns errDependency if any failed.
func after(tasks ...*task) error {
	failed := false
	for _, t := range tasks {
		<-t.done
		failed = failed || t.err != nil
	}
	if failed {
		return errDependency
	}
	return nil
}

// firstErrors waits for every task and joins their own errors.
func firstErrors(tasks ...*task) error {
	var errs []error
	for _, t := range tasks {
		<-t.done
		if t.err != nil && !errors.Is(t.err, errDependency) {
			errs = append(errs, t.err)
		}
	}
	return errors.Join(errs...)
}

func (e *Env) addProcess(p *proctest.Process) {
	e.mu.Lock()
	e.Processes[p.Name] = p
	e.mu.Unlock()
}

// pythonCmd runs a Debian OpenStack script on /usr/bin/python3 with a clean
// environment (no PYTHON* or virtualenv of the caller; another python3 may
// be first on PATH), with the harness's own Python files importable.
func (e *Env) pythonCmd(args ...string) *exec.Cmd {
	cmd := exec.Command("/usr/bin/python3", args...)
	cmd.Env = []string{
		"PATH=/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=" + e.Dir,
		"LANG=C.UTF-8",
		"PYTHONDONTWRITEBYTECODE=1",
		"PYTHONPATH=" + filepath.Join(e.Dir, "py"),
	}
	cmd.Dir = e.Dir
	return cmd
}

// run runs a one-shot command with its output in logs/<name>.log.
func (e *Env) run(ctx context.Context, name string, cmd *exec.Cmd) error {
	logPath := filepath.Join(e.Dir, "logs", name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	cmd.Stdout, cmd.Stderr = f, f
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		<-done
		err = ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("%s (%s): %w; last lines of %s:\n%s", name, strings.Join(cmd.Args, " "), err, logPath, proctest.Tail(logPath, 30))
	}
	e.timed(name, t0)
	return nil
}

// startUpstream runs Debian's Placement in unisched's place (on a port of
// its own choosing unless PortBase fixed it).
func (e *Env) startUpstream(ctx context.Context, db string) error {
	t0 := time.Now()
	port := e.ports.placement
	if e.ports.picked {
		port = 0
	}
	s, err := harness.StartUpstream(ctx, harness.UpstreamOptions{Port: port, Workers: 4, DB: db,
		Dir: filepath.Join(e.Dir, "logs", "upstream-placement"), Admin: e.admin})
	if err != nil {
		return err
	}
	e.mu.Lock()
	e.Upstream = s
	e.PlacementURL = s.URL
	e.moved = e.moved || s.URL != fmt.Sprintf("http://127.0.0.1:%d", e.ports.placement)
	e.mu.Unlock()
	if err := e.Wire.setTarget(s.URL); err != nil {
		return err
	}
	e.timed("upstream placement", t0)
	return nil
}

// startStandIns serves the Neutron stand-in and the Placement recorder
// from the test binary, on listeners bound at once (port 0 unless
// PortBase fixed them): their URLs go into nova.conf.
func (e *Env) startStandIns() error {
	w, proxy, err := newWire(e.PlacementURL, filepath.Join(e.Dir, "logs", "placement-wire.log"))
	if err != nil {
		return err
	}
	e.Wire = w
	for _, s := range []struct {
		port *int
		url  *string
		h    http.Handler
	}{{&e.ports.neutron, &e.NeutronURL, neutronStandIn()}, {&e.ports.wire, &e.PlacementWireURL, proxy}} {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *s.port))
		if err != nil {
			return fmt.Errorf("novaharness: %w", err)
		}
		*s.port = l.Addr().(*net.TCPAddr).Port
		*s.url = fmt.Sprintf("http://127.0.0.1:%d", *s.port)
		srv := &http.Server{Handler: s.h, ReadHeaderTimeout: 10 * time.Second}
		e.mu.Lock()
		e.servers = append(e.servers, srv)
		e.mu.Unlock()
		go func() { _ = srv.Serve(l) }()
	}
	return nil
}

func (e *Env) startGlance(ctx context.Context, db string) error {
	t0 := time.Now()
	if err := e.createDB(ctx, db); err != nil {
		return err
	}
	conf, err := e.writeGlanceConf()
	if err != nil {
		return err
	}
	if err := e.run(ctx, "glance-manage", e.pythonCmd("/usr/bin/glance-manage", "--config-file", conf, "db", "sync")); err != nil {
		return err
	}
	// glance-api itself retries a taken port for 30 s before it gives up
	if err := e.movePorts([]*int{&e.ports.glance}, func() error {
		e.setGlanceURL()
		if _, err := e.writeGlanceConf(); err != nil {
			return err
		}
		p, err := proctest.Launch("glance-api", filepath.Join(e.Dir, "logs", "glance-api.out"), e.pythonCmd("/usr/bin/glance-api", "--config-file", conf))
		if err != nil {
			return err
		}
		e.addProcess(p)
		err = p.Wait(ctx, stepTimeout, func(ctx context.Context) error {
			return e.expectStatus(ctx, e.GlanceURL+"/versions", http.StatusOK)
		})
		if err != nil {
			_ = p.Stop(10 * time.Second)
		}
		return err
	}); err != nil {
		return err
	}
	e.timed("glance", t0)
	return nil
}

// expectStatus GETs url; want 0 accepts any HTTP answer.
func (e *Env) expectStatus(ctx context.Context, url string, want int) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := e.http.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if want != 0 && resp.StatusCode != want {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

func (e *Env) createDB(ctx context.Context, name string) error {
	if err := harness.CreateDatabase(ctx, e.admin, name); err != nil {
		return err
	}
	e.mu.Lock()
	e.dbs = append(e.dbs, name)
	e.mu.Unlock()
	return nil
}

// setupNovaDBs creates nova's API, cell1 and cell0 databases. The API and
// cell1 schemas are synced at once; cell0 (the same schema) is copied from
// cell1 as a template instead of being migrated a second time; the cell
// mappings nova-manage's map_cell0/create_cell would write are inserted
// directly (each nova-manage run costs seconds of Python start-up).
func (e *Env) setupNovaDBs(ctx context.Context, apiDB, cellDB, cell0DB string) error {
	t0 := time.Now()
	if err := e.createDB(ctx, apiDB); err != nil {
		return err
	}
	if err := e.createDB(ctx, cellDB); err != nil {
		return err
	}
	conf := filepath.Join(e.Dir, "nova", "nova.conf")
	err := parallel(
		func() error {
			return e.run(ctx, "nova-manage-api_db-sync", e.pythonCmd("/usr/bin/nova-manage", "--config-file", conf, "api_db", "sync"))
		},
		func() error {
			return e.run(ctx, "nova-manage-db-sync", e.pythonCmd("/usr/bin/nova-manage", "--config-file", conf, "db", "sync", "--local_cell"))
		},
	)
	if err != nil {
		return err
	}
	if err := harness.DropDatabase(ctx, e.admin, cell0DB); err != nil {
		return err
	}
	if err := adminExec(ctx, e.admin, "CREATE DATABASE "+pgx.Identifier{cell0DB}.Sanitize()+" TEMPLATE "+pgx.Identifier{cellDB}.Sanitize()); err != nil {
		return err
	}
	e.mu.Lock()
	e.dbs = append(e.dbs, cell0DB)
	e.mu.Unlock()
	e.timed("nova databases", t0)
	return nil
}

// mapCells inserts the cell mappings (once RabbitMQ runs: cell1's names
// its transport URL).
func (e *Env) mapCells(ctx context.Context, cell0Conn string) error {
	conn, err := pgx.Connect(ctx, e.NovaAPIDB)
	if err != nil {
		return fmt.Errorf("connecting to nova's API database: %w", err)
	}
	defer conn.Close(ctx)
	cell1 := newUUID()
	_, err = conn.Exec(ctx, `INSERT INTO cell_mappings (created_at, uuid, name, transport_url, database_connection, disabled)
		VALUES (now() AT TIME ZONE 'utc', '00000000-0000-0000-0000-000000000000', 'cell0', 'none:///', $1, false),
		       (now() AT TIME ZONE 'utc', $2, 'cell1', $3, $4, false)`, cell0Conn, cell1, e.TransportURL, e.novaCellConn)
	if err != nil {
		return fmt.Errorf("inserting nova's cell mappings: %w", err)
	}
	return nil
}

func newUUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func adminExec(ctx context.Context, admin, stmt string) error {
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return fmt.Errorf("connecting to PostgreSQL: %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, stmt); err != nil {
		return fmt.Errorf("%s: %w", stmt, err)
	}
	return nil
}

// startControllers starts nova-conductor, nova-scheduler and nova-api.
func (e *Env) startControllers() error {
	for _, name := range []string{"nova-conductor", "nova-scheduler", "nova-api"} {
		if _, err := e.launchController(name); err != nil {
			return err
		}
	}
	e.timed("nova controllers started at", e.startedAt)
	return nil
}

func (e *Env) launchController(name string) (*proctest.Process, error) {
	conf := filepath.Join(e.Dir, "nova", "nova.conf")
	logs := filepath.Join(e.Dir, "logs")
	logPath := filepath.Join(logs, name+".log")
	if name == "nova-api" {
		e.mu.Lock()
		e.novaAPILog, e.novaAPILogFrom = logPath, harness.LogSize(logPath)
		e.mu.Unlock()
	}
	p, err := proctest.Launch(name, filepath.Join(logs, name+".out"),
		e.pythonCmd("/usr/bin/"+name, "--config-file", conf, "--log-file", logPath))
	if err != nil {
		return nil, err
	}
	e.addProcess(p)
	return p, nil
}

// novaAPIPortTaken reports whether nova-api ended because its port was
// taken (oslo.log writes that to its log file, not to stdout).
func (e *Env) novaAPIPortTaken(p *proctest.Process) bool {
	e.mu.Lock()
	log, from := e.novaAPILog, e.novaAPILogFrom
	e.mu.Unlock()
	return e.ports.picked && (proctest.AddrInUse(p.Failed()) || proctest.AddrInUse(errors.New(proctest.TailFrom(log, from, 30))))
}

// moveNovaAPI starts nova-api again on a new port after its own was taken.
// nova.conf names the new one (the other services never read it), and so
// must serve's configuration (its Nova proxy and client): serve restarts,
// with the recorder holding Nova's Placement requests meanwhile.
func (e *Env) moveNovaAPI(ctx context.Context) (*proctest.Process, error) {
	port, err := proctest.FreePort()
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	e.ports.nova, e.moved = port, true
	e.mu.Unlock()
	e.setNovaURL()
	if err := e.writeNovaConf(); err != nil {
		return nil, err
	}
	p, err := e.launchController("nova-api")
	if err != nil {
		return nil, err
	}
	if e.Serve != nil {
		release := e.Wire.hold()
		defer release()
		if err := e.StopServe(); err != nil {
			return nil, err
		}
		if err := e.StartServe(ctx); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// startComputes starts one fake nova-compute per ComputeSpec.
func (e *Env) startComputes() error {
	logs := filepath.Join(e.Dir, "logs")
	for i, spec := range e.Computes {
		cconf, err := e.writeComputeConf(i, spec)
		if err != nil {
			return err
		}
		name := "nova-compute-" + spec.Host
		cmd := e.pythonCmd(filepath.Join(e.Dir, "py", "fake_compute.py"), "--config-file", cconf, "--log-file", filepath.Join(logs, name+".log"))
		cmd.Env = append(cmd.Env, "UNISCHED_FAKE_DRIVER="+spec.driver())
		for k, v := range map[string]int{"VCPUS": spec.VCPUs, "MEMORY_MB": spec.MemoryMB, "DISK_GB": spec.DiskGB, "PCPUS": spec.PCPUs, "NUMA_CELLS": spec.NUMACells} {
			if v > 0 {
				cmd.Env = append(cmd.Env, fmt.Sprintf("UNISCHED_FAKE_%s=%d", k, v))
			}
		}
		p, err := proctest.Launch(name, filepath.Join(logs, name+".out"), cmd)
		if err != nil {
			return err
		}
		e.addProcess(p)
	}
	e.timed("nova computes started at", e.startedAt)
	return nil
}

// Close stops every process (nova first, RabbitMQ last, each by its pid
// and group), the in-process servers, and drops the databases. The
// directory is removed only when Start made it.
func (e *Env) Close() error {
	if e == nil {
		return nil
	}
	var errs []error
	stop := func(names ...string) {
		var wg sync.WaitGroup
		var mu sync.Mutex
		for _, n := range names {
			p := e.Processes[n]
			if p == nil {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := p.Stop(30 * time.Second); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
	}
	var novas []string
	for n := range e.Processes {
		if strings.HasPrefix(n, "nova-") {
			novas = append(novas, n)
		}
	}
	var agents []string
	for n := range e.Processes {
		if strings.HasPrefix(n, "unisched-agent-") {
			agents = append(agents, n)
		}
	}
	stop(novas...)
	stop(agents...)
	stop("unisched-serve")
	stop("glance-api")
	if e.Rabbit != nil {
		if err := e.Rabbit.Close(); err != nil {
			errs = append(errs, fmt.Errorf("stopping rabbitmq: %w", err))
		}
	}
	for _, s := range e.servers {
		_ = s.Close()
	}
	if e.Wire != nil {
		_ = e.Wire.close()
	}
	if e.Upstream != nil {
		if err := e.Upstream.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("stopping upstream placement: %w", err))
		}
	}
	if e.DB != nil {
		e.DB.Close()
	}
	if e.Docker != nil {
		_ = e.Docker.Close()
	}
	if e.Daemon != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		if err := e.Daemon.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stopping the private dockerd: %w", err))
		}
		cancel()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if e.Postgres != nil {
		e.dbs = nil // they go with the cluster
		if err := e.Postgres.close(); err != nil {
			errs = append(errs, fmt.Errorf("stopping the own postgresql: %w", err))
		}
	}
	for _, db := range e.dbs {
		if err := harness.DropDatabase(ctx, e.admin, db); err != nil {
			errs = append(errs, err)
		}
	}
	e.dbs = nil
	if e.binDir != "" {
		_ = os.RemoveAll(e.binDir)
	}
	if e.tempDir && len(errs) == 0 {
		_ = os.RemoveAll(e.Dir)
	}
	return errors.Join(errs...)
}

// Logs is the tail of each service's log, for failure messages.
func (e *Env) Logs(lines int) string {
	var b strings.Builder
	for _, name := range []string{"nova-api", "nova-conductor", "nova-scheduler"} {
		fmt.Fprintf(&b, "--- %s\n%s\n", name, proctest.Tail(filepath.Join(e.Dir, "logs", name+".log"), lines))
	}
	for _, c := range e.Computes {
		name := "nova-compute-" + c.Host
		fmt.Fprintf(&b, "--- %s\n%s\n", name, proctest.Tail(filepath.Join(e.Dir, "logs", name+".log"), lines))
	}
	for _, name := range []string{"unisched-serve"} {
		if p := e.Processes[name]; p != nil {
			fmt.Fprintf(&b, "--- %s\n%s\n", name, p.Log(lines))
		}
	}
	for _, c := range e.Computes {
		if p := e.Processes["unisched-agent-"+c.Host]; p != nil {
			fmt.Fprintf(&b, "--- %s\n%s\n", p.Name, p.Log(lines))
		}
	}
	if e.Upstream != nil {
		fmt.Fprintf(&b, "--- upstream placement\n%s\n", proctest.Tail(e.Upstream.LogPath, lines))
	}
	return b.String()
}
