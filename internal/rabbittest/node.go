// Package rabbittest starts private RabbitMQ nodes from Debian's
// rabbitmq-server for tests: each node has its own name, epmd, ports, data
// and logs under a directory of its own, never the machine's service or
// /etc/rabbitmq, and it is stopped by its own pid and process group only.
//
// A test package shares one node per test binary through Main and URL:
//
//	func TestMain(m *testing.M) { os.Exit(rabbittest.Main(m)) }
//
// Tests skip where rabbitmq-server is not installed, unless
// UNISCHED_REQUIRE_RABBITMQ=1 (CI installs it): then they fail.
package rabbittest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/unisched/unisched/internal/proctest"
)

// Paths of Debian's RabbitMQ and Erlang.
const (
	ServerPath = "/usr/lib/rabbitmq/bin/rabbitmq-server"
	EpmdPath   = "/usr/bin/epmd"
)

// ErrUnavailable marks "this machine cannot run a RabbitMQ node" (not
// installed), as opposed to a node that was there and failed.
var ErrUnavailable = errors.New("rabbitmq unavailable")

// Available reports whether a node can be started here.
func Available() error {
	for _, p := range []string{ServerPath, EpmdPath} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrUnavailable, p, err)
		}
	}
	return nil
}

// Options tune StartNode. Zero ports are picked free (and picked again
// when one turns out taken before the node bound it).
type Options struct {
	// Dir holds the node's configuration, data and logs (required).
	Dir string
	// Name is the node name's first half ("rabbittest-<pid>").
	Name string
	// AMQPPort, DistPort, EpmdPort: the node's listeners and its own epmd.
	AMQPPort, DistPort, EpmdPort int
	// StartTimeout bounds one start, until AMQP answers (3m: a loaded
	// two-core machine has needed 90 s).
	StartTimeout time.Duration
}

// Node is a running (or stopped) private RabbitMQ node. Stop and Start
// restart it on the same ports and data, so durable queues and persistent
// messages survive as on a real broker restart.
type Node struct {
	Dir  string
	Name string
	// URL is the AMQP URL (guest over loopback).
	URL string

	opts   Options
	mu     sync.Mutex
	epmd   *proc
	server *proc
}

// StartNode writes the node's configuration and starts epmd and the node.
func StartNode(ctx context.Context, opts Options) (*Node, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	if opts.Dir == "" {
		return nil, errors.New("rabbittest: Options.Dir is required")
	}
	if opts.Name == "" {
		opts.Name = fmt.Sprintf("rabbittest-%d", os.Getpid())
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 3 * time.Minute
	}
	var picked []*int
	for _, p := range []*int{&opts.AMQPPort, &opts.DistPort, &opts.EpmdPort} {
		if *p == 0 {
			picked = append(picked, p)
		}
	}
	if len(picked) == 0 {
		return startNode(ctx, opts)
	}
	var n *Node
	err := proctest.MovePorts(picked, func() error {
		var err error
		n, err = startNode(ctx, opts)
		return err
	})
	return n, err
}

func startNode(ctx context.Context, opts Options) (*Node, error) {
	n := &Node{Dir: opts.Dir, Name: opts.Name + "@localhost", opts: opts,
		URL: fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", opts.AMQPPort)}
	if err := n.writeConfig(); err != nil {
		return nil, err
	}
	epmd, err := startProc("epmd", filepath.Join(n.Dir, "logs", "epmd.log"),
		exec.Command(EpmdPath, "-address", "127.0.0.1", "-port", strconv.Itoa(opts.EpmdPort)))
	if err != nil {
		return nil, err
	}
	n.epmd = epmd
	err = waitUntil(ctx, epmd, time.Minute, func() error {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", opts.EpmdPort), time.Second)
		if err == nil {
			c.Close()
		}
		return err
	})
	if err == nil {
		// An epmd that finds its port taken exits at once, silently, and
		// what answered was the port's owner.
		time.Sleep(500 * time.Millisecond)
		if epmd.exited() {
			err = fmt.Errorf("rabbittest: epmd exited at once (%v): port %d: %w", epmd.err, opts.EpmdPort, syscall.EADDRINUSE)
		}
	}
	if err != nil {
		_ = epmd.stop(10 * time.Second)
		return nil, err
	}
	if err := n.Start(ctx); err != nil {
		_ = n.Close()
		return nil, err
	}
	return n, nil
}

func (n *Node) writeConfig() error {
	data := filepath.Join(n.Dir, "data")
	logs := filepath.Join(n.Dir, "logs")
	for _, d := range []string{filepath.Join(data, "mnesia"), logs} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("rabbittest: %w", err)
		}
	}
	// The Erlang schedulers must not busy-wait: on two shared cores the
	// spinning takes CPU from the tests beside the node.
	env := fmt.Sprintf(`NODENAME=%s
NODE_IP_ADDRESS=127.0.0.1
NODE_PORT=%d
DIST_PORT=%d
MNESIA_BASE=%s
LOG_BASE=%s
PID_FILE=%s
CONFIG_FILE=%s
ENABLED_PLUGINS_FILE=%s
SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1} +sbwt none +sbwtdcpu none +sbwtdio none"
export ERL_EPMD_ADDRESS=127.0.0.1
export ERL_EPMD_PORT=%d
`, n.Name, n.opts.AMQPPort, n.opts.DistPort, filepath.Join(data, "mnesia"), logs,
		filepath.Join(data, "beam.pid"), filepath.Join(data, "rabbitmq.conf"), filepath.Join(data, "enabled_plugins"), n.opts.EpmdPort)
	files := map[string]string{
		"rabbitmq-env.conf": env,
		"rabbitmq.conf":     "loopback_users.guest = true\nlog.console = false\nlog.file.level = info\ndisk_free_limit.absolute = 50MB\n",
		"enabled_plugins":   "[].\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(data, name), []byte(body), 0o644); err != nil {
			return fmt.Errorf("rabbittest: %w", err)
		}
	}
	return nil
}

// Start starts the node (again, after Stop) and waits until AMQP answers.
func (n *Node) Start(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.server != nil && !n.server.exited() {
		return errors.New("rabbittest: node already running")
	}
	data := filepath.Join(n.Dir, "data")
	cmd := exec.Command(ServerPath)
	cmd.Env = []string{
		"PATH=/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=" + data,
		"LANG=C.UTF-8",
		"RABBITMQ_CONF_ENV_FILE=" + filepath.Join(data, "rabbitmq-env.conf"),
		"ERL_EPMD_ADDRESS=127.0.0.1",
		fmt.Sprintf("ERL_EPMD_PORT=%d", n.opts.EpmdPort),
	}
	cmd.Dir = data
	p, err := startProc("rabbitmq-server", filepath.Join(n.Dir, "logs", "rabbitmq-server.out"), cmd)
	if err != nil {
		return err
	}
	n.server = p
	return waitUntil(ctx, p, n.opts.StartTimeout, func() error {
		c, err := amqp.DialConfig(n.URL, amqp.Config{Dial: amqp.DefaultDial(2 * time.Second)})
		if err != nil {
			return err
		}
		return c.Close()
	})
}

// Stop stops the node (SIGTERM, then its group gets SIGKILL after a
// minute), keeping epmd, ports and data for Start.
func (n *Node) Stop() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.server == nil {
		return nil
	}
	err := n.server.stop(time.Minute)
	n.server = nil
	return err
}

// Close stops the node and its epmd. The directory stays (the caller owns
// it: a test's TempDir, or kept for the logs).
func (n *Node) Close() error {
	err := n.Stop()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.epmd != nil {
		err = errors.Join(err, n.epmd.stop(10*time.Second))
		n.epmd = nil
	}
	return err
}

// Log is the end of the node's log, for a failure message.
func (n *Node) Log(lines int) string {
	logs, _ := filepath.Glob(filepath.Join(n.Dir, "logs", "*.log"))
	out := ""
	for _, l := range logs {
		if t := proctest.Tail(l, lines); t != "" {
			out += "== " + l + "\n" + t + "\n"
		}
	}
	return out + "== rabbitmq-server.out\n" + proctest.Tail(filepath.Join(n.Dir, "logs", "rabbitmq-server.out"), lines)
}

// proc is one process started by the package, leading its own group.
type proc struct {
	name string
	log  string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func startProc(name, logPath string, cmd *exec.Cmd) (*proc, error) {
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("rabbittest: %w", err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	// Its own group, so that the whole node (beam and its helpers) can be
	// stopped without touching anything else; if the test binary dies the
	// node gets SIGTERM.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("rabbittest: starting %s: %w", name, err)
	}
	p := &proc{name: name, log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM to the process and waits for its group; what is left
// after grace gets SIGKILL (by group id: only what the package started).
func (p *proc) stop(grace time.Duration) error {
	pid := p.cmd.Process.Pid
	var err error
	if !p.exited() {
		_ = syscall.Kill(pid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(grace):
			err = fmt.Errorf("rabbittest: %s (pid %d) still ran %s after SIGTERM: killed its group", p.name, pid, grace)
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			<-p.done
		}
	}
	deadline := time.Now().Add(grace)
	for {
		members, _ := proctest.GroupMembers(pid)
		if len(members) == 0 {
			return err
		}
		if time.Now().After(deadline) {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			time.Sleep(200 * time.Millisecond)
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func waitUntil(ctx context.Context, p *proc, timeout time.Duration, ready func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		if p.exited() {
			return fmt.Errorf("rabbittest: %s exited (%v); last lines of %s:\n%s", p.name, p.err, p.log, proctest.Tail(p.log, 30))
		}
		err := ready()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return fmt.Errorf("rabbittest: %s not ready after %s: %v (log %s)", p.name, timeout, err, p.log)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
