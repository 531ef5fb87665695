package novaharness

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
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/unisched/unisched/internal/dockertest"
	"github.com/unisched/unisched/internal/proctest"
	"github.com/unisched/unisched/tests/harness"
)

// The unisched side of an environment: `unisched serve` (Placement, the
// container API, the Nova proxy, the notification consumer) on a database
// kept across its restarts, a private dockerd, and one `unisched agent`
// per Nova compute, speaking for the compute's host with the fake
// driver's topology.

// AgentTopology is what an agent registers for a compute: the fake
// driver's layout (fake_compute.py): cell c is one block of CPU ids, its
// share of the shared CPUs first, then its share of the dedicated ones;
// memory split over the cells, remainders to the lower cells. A compute
// without NUMA cells is one cell of its VCPUs.
type AgentTopology struct {
	Cells                     []AgentCell
	DedicatedCPUs, SharedCPUs string
	DiskGB                    int64
}

// AgentCell is one NUMA cell as `unisched agent` is configured with it.
type AgentCell struct {
	ID       int    `json:"id"`
	CPUs     string `json:"cpus"`
	MemoryMB int64  `json:"memory_mb"`
}

// fake driver defaults (nova/virt/fake.py FakeDriver)
const fakeVCPUs, fakeMemoryMB, fakeDiskGB = 1000, 800000, 600000

func split(total, parts int) []int {
	out := make([]int, parts)
	for i := range out {
		out[i] = total / parts
		if i < total%parts {
			out[i]++
		}
	}
	return out
}

// cpuList formats ids as a Linux list (ranges of consecutive ids).
func cpuList(ids []int) string {
	var parts []string
	for i := 0; i < len(ids); {
		j := i
		for j+1 < len(ids) && ids[j+1] == ids[j]+1 {
			j++
		}
		if i == j {
			parts = append(parts, fmt.Sprint(ids[i]))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", ids[i], ids[j]))
		}
		i = j + 1
	}
	return strings.Join(parts, ",")
}

// Topology is the NUMA layout the fake driver reports for the compute.
func (s ComputeSpec) Topology() AgentTopology {
	vcpus, mem, disk := s.VCPUs, s.MemoryMB, s.DiskGB
	if vcpus == 0 {
		vcpus = fakeVCPUs
	}
	if mem == 0 {
		mem = fakeMemoryMB
	}
	if disk == 0 {
		disk = fakeDiskGB
	}
	t := AgentTopology{DiskGB: int64(disk)}
	if !s.Pinning() {
		ids := make([]int, vcpus)
		for i := range ids {
			ids[i] = i
		}
		t.Cells = []AgentCell{{ID: 0, CPUs: cpuList(ids), MemoryMB: int64(mem)}}
		t.SharedCPUs = cpuList(ids)
		return t
	}
	n := s.NUMACells
	if n < 1 {
		n = 1
	}
	var shared, dedicated []int
	start := 0
	mems := split(mem, n)
	for c, pair := range zip(split(vcpus, n), split(s.PCPUs, n)) {
		var cell []int
		for i := 0; i < pair[0]; i++ {
			shared = append(shared, start+i)
			cell = append(cell, start+i)
		}
		for i := 0; i < pair[1]; i++ {
			dedicated = append(dedicated, start+pair[0]+i)
			cell = append(cell, start+pair[0]+i)
		}
		start += pair[0] + pair[1]
		t.Cells = append(t.Cells, AgentCell{ID: c, CPUs: cpuList(cell), MemoryMB: int64(mems[c])})
	}
	t.SharedCPUs, t.DedicatedCPUs = cpuList(shared), cpuList(dedicated)
	return t
}

func zip(a, b []int) [][2]int {
	out := make([][2]int, len(a))
	for i := range a {
		out[i] = [2]int{a[i], b[i]}
	}
	return out
}

// serveConfig is serve's configuration file (JSON, which YAML reads). Keys
// a serve does not know are ignored by viper, so the file can name the
// parts of issue 5 before they exist.
func (e *Env) serveConfig() map[string]any {
	cfg := map[string]any{
		"database":  map[string]any{"url": e.DBURL},
		"placement": map[string]any{"listen": fmt.Sprintf("127.0.0.1:%d", e.ports.placement)},
		"container_api": map[string]any{
			"listen": fmt.Sprintf("127.0.0.1:%d", e.ports.container),
		},
		"log":  map[string]any{"level": e.logLevel()},
		"test": map[string]any{"reset": false},
		"nova_proxy": map[string]any{
			"listen":   fmt.Sprintf("127.0.0.1:%d", e.ports.proxy),
			"upstream": strings.TrimSuffix(e.NovaURL, "/v2.1"),
		},
		"nova": map[string]any{
			// alone: Nova's own weighers reorder the candidates it gets,
			// so only a single one makes the decision log's host Nova's
			"candidates":    "only",
			"notifications": map[string]any{"url": e.AMQPURL},
			// the compute API without Keystone: nova-api runs noauth2
			"endpoint": e.NovaURL,
			"auth_url": "",
			"token":    AdminToken,
		},
		"notifications": map[string]any{"publish_url": e.AMQPURL},
		"reconcile":     map[string]any{"interval": "15s"},
	}
	if e.Keystone != nil {
		merge(cfg, e.keystoneServe())
	}
	merge(cfg, e.opts.ServeConfig)
	return cfg
}

// merge sets src's keys into dst, descending into maps present in both.
func merge(dst, src map[string]any) {
	for k, v := range src {
		if sm, ok := v.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				merge(dm, sm)
				continue
			}
		}
		dst[k] = v
	}
}

func (e *Env) logLevel() string {
	if e.opts.LogLevel != "" {
		return e.opts.LogLevel
	}
	return "info"
}

// createServeDB creates the database serve migrates and keeps across its
// restarts (dropped by Close).
func (e *Env) createServeDB(ctx context.Context, name string) error {
	if err := e.createDB(ctx, name); err != nil {
		return err
	}
	u, err := harness.DatabaseURL(e.admin, name)
	if err != nil {
		return err
	}
	e.mu.Lock()
	e.DBName, e.DBURL = name, u
	e.mu.Unlock()
	return nil
}

func (e *Env) buildUnisched(ctx context.Context) (string, error) {
	if e.opts.UnischedBin != "" {
		return e.opts.UnischedBin, nil
	}
	t0 := time.Now()
	root, err := harness.ModuleRoot()
	if err != nil {
		return "", err
	}
	// outside Dir: Dir may be kept as artifacts, the binary need not be
	tmp, err := os.MkdirTemp("", "novaharness-bin-")
	if err != nil {
		return "", err
	}
	e.mu.Lock()
	e.binDir = tmp
	e.mu.Unlock()
	bin := filepath.Join(tmp, "unisched")
	if err := harness.BuildUnisched(ctx, root, bin); err != nil {
		return "", err
	}
	e.timed("go build unisched", t0)
	return bin, nil
}

// startUnisched builds unisched, creates its database and starts serve
// once rabbit, whose AMQP URL its configuration names, runs: on ports that
// move when one was taken (the recorder follows Placement).
func (e *Env) startUnisched(ctx context.Context, db string, rabbit *task) error {
	t0 := time.Now()
	bin, err := e.buildUnisched(ctx)
	if err != nil {
		return err
	}
	e.mu.Lock()
	e.bin = bin
	e.mu.Unlock()
	if err := e.createServeDB(ctx, db); err != nil {
		return err
	}
	if err := after(rabbit); err != nil {
		return err
	}
	if err := e.movePorts([]*int{&e.ports.placement, &e.ports.container, &e.ports.proxy}, func() error {
		e.setServeURLs()
		if err := e.Wire.setTarget(e.PlacementURL); err != nil {
			return err
		}
		return e.StartServe(ctx)
	}); err != nil {
		return err
	}
	pool, err := pgxpool.New(ctx, e.DBURL)
	if err != nil {
		return fmt.Errorf("connecting to unisched's database: %w", err)
	}
	e.mu.Lock()
	e.DB = pool
	e.mu.Unlock()
	e.timed("unisched serve", t0)
	return nil
}

// StartServe starts `unisched serve` (again, after StopServe or KillServe:
// same database, ports and configuration) and waits until Placement and
// the container API answer.
func (e *Env) StartServe(ctx context.Context) error {
	e.mu.Lock()
	old := e.Serve
	e.mu.Unlock()
	if old != nil && !old.Exited() {
		return fmt.Errorf("unisched serve already runs (pid %d)", old.Pid())
	}
	path := filepath.Join(e.Dir, "unisched", "serve.yaml")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(e.serveConfig(), "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return err
	}
	cmd := exec.Command(e.bin, "serve", "--config", path)
	cmd.Env = append(os.Environ(), e.opts.UnischedEnv...)
	p, err := proctest.Launch("unisched-serve", filepath.Join(e.Dir, "logs", "unisched.log"), cmd)
	if err != nil {
		return err
	}
	e.addProcess(p)
	e.mu.Lock()
	e.Serve = p
	e.mu.Unlock()
	err = p.Wait(ctx, 2*time.Minute, func(ctx context.Context) error {
		if err := e.expectStatus(ctx, e.PlacementURL+"/", http.StatusOK); err != nil {
			return err
		}
		return e.expectStatus(ctx, e.ContainerURL+"/", 0)
	})
	if err != nil {
		_ = p.Stop(10 * time.Second)
	}
	return err
}

// StopServe stops serve with SIGTERM (a clean stop).
func (e *Env) StopServe() error { return e.Serve.Stop(30 * time.Second) }

// KillServe ends serve with SIGKILL, as a crash would.
func (e *Env) KillServe() error { return e.Serve.Kill() }

// startDocker starts the environment's private dockerd and imports the
// busybox image its containers run.
func (e *Env) startDocker(ctx context.Context) error {
	t0 := time.Now()
	d, err := dockertest.StartDaemon(ctx, dockertest.Options{})
	if err != nil {
		return fmt.Errorf("starting the private dockerd: %w", err)
	}
	e.mu.Lock()
	e.Daemon, e.DockerHost = d, d.Host
	e.mu.Unlock()
	cli, err := dockertest.NewClient(d.Host)
	if err != nil {
		return err
	}
	e.mu.Lock()
	e.Docker = cli
	e.mu.Unlock()
	if _, err := dockertest.EnsureImage(ctx, cli); err != nil {
		return fmt.Errorf("importing %s: %w", dockertest.ImageName, err)
	}
	e.Image = dockertest.ImageName
	e.timed("dockerd and image", t0)
	return nil
}

// agentConfig is one agent's configuration file (JSON, which YAML reads).
func (e *Env) agentConfig(spec ComputeSpec, port int) map[string]any {
	t := spec.Topology()
	return map[string]any{
		"agent": map[string]any{
			"host":           spec.Host,
			"listen":         fmt.Sprintf("127.0.0.1:%d", port),
			"serve_url":      e.ContainerURL,
			"token":          AdminToken,
			"docker_host":    e.DockerHost,
			"clamp_cpusets":  true,
			"cells":          t.Cells,
			"dedicated_cpus": t.DedicatedCPUs,
			"shared_cpus":    t.SharedCPUs,
			"disk_gb":        t.DiskGB,
			"state_file":     filepath.Join(e.Dir, "unisched", "agent-"+spec.Host+".state"),
		},
		"log": map[string]any{"level": e.logLevel()},
	}
}

// StartAgent starts (or restarts) the agent of compute host and waits
// until serve has its registration. An agent starts only once Nova's
// compute created the host's provider: the agent then finds it by name and
// leaves its inventory to Nova.
func (e *Env) StartAgent(ctx context.Context, host string) error {
	i := -1
	for j, c := range e.Computes {
		if c.Host == host {
			i = j
		}
	}
	if i < 0 {
		return fmt.Errorf("no compute %s", host)
	}
	name := "unisched-agent-" + host
	e.mu.Lock()
	old := e.Processes[name]
	e.mu.Unlock()
	if old != nil && !old.Exited() {
		return fmt.Errorf("agent %s already runs (pid %d)", host, old.Pid())
	}
	start := func() error {
		path := filepath.Join(e.Dir, "unisched", "agent-"+host+".yaml")
		cfg := e.agentConfig(e.Computes[i], e.ports.agents[i])
		if err := e.keystoneAgent(ctx, cfg); err != nil {
			return err
		}
		b, err := json.MarshalIndent(cfg, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return err
		}
		started := time.Now()
		p, err := proctest.Launch(name, filepath.Join(e.Dir, "logs", name+".log"), exec.Command(e.bin, "agent", "--config", path))
		if err != nil {
			return err
		}
		e.addProcess(p)
		err = p.Wait(ctx, 2*time.Minute, func(ctx context.Context) error { return harness.AgentRegistered(ctx, e.DB, host, started) })
		if err != nil {
			_ = p.Stop(10 * time.Second)
		}
		return err
	}
	if old != nil {
		return start() // the same address again, as a restarted host keeps its own
	}
	// its first start picks the agent's port: no one else refers to it
	return e.movePorts([]*int{&e.ports.agents[i]}, start)
}

// startAgents starts one agent per compute, at once.
func (e *Env) startAgents(ctx context.Context) error {
	t0 := time.Now()
	var fns []func() error
	for _, c := range e.Computes {
		fns = append(fns, func() error { return e.StartAgent(ctx, c.Host) })
	}
	if err := parallel(fns...); err != nil {
		return err
	}
	e.timed("unisched agents registered", t0)
	return nil
}

// Agent is the running agent process of a compute host (nil: none).
func (e *Env) Agent(host string) *proctest.Process {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.Processes["unisched-agent-"+host]
}

// StopRabbit stops the RabbitMQ node (its epmd keeps running); StartRabbit
// brings it back on the same name, ports and data.
func (e *Env) StopRabbit() error {
	e.mu.Lock()
	n := e.Rabbit
	e.mu.Unlock()
	if n == nil {
		return errors.New("no rabbitmq node")
	}
	return n.Stop()
}

// StartRabbit starts the node StopRabbit stopped and waits until AMQP answers.
func (e *Env) StartRabbit(ctx context.Context) error {
	e.mu.Lock()
	n := e.Rabbit
	e.mu.Unlock()
	if n == nil {
		return errors.New("no rabbitmq node")
	}
	return n.Start(ctx)
}
