package dockertest

import (
	"bufio"
	"bytes"
	"context"
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
	"syscall"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"

	"github.com/unisched/unisched/internal/proctest"
)

// DefaultDockerd is Debian's docker.io daemon.
const DefaultDockerd = "/usr/sbin/dockerd"

// Options configures a private dockerd.
type Options struct {
	// Dockerd is the daemon binary (default: $UNISCHED_TEST_DOCKERD, then
	// DefaultDockerd, then dockerd on PATH).
	Dockerd string
	// Dir is the daemon's state directory; empty: a new short temporary
	// directory, removed by Close. Unix socket paths are limited to 107
	// bytes and containerd puts its sockets three levels below it, so it
	// must stay short.
	Dir string
	// ExtraArgs are appended to dockerd's command line (e.g.
	// "--live-restore", "--shutdown-timeout=2").
	ExtraArgs []string
	// StartTimeout bounds the wait for /_ping (default 60 s).
	StartTimeout time.Duration
}

// Daemon is a dockerd this package started, with its own data root, exec
// root, socket and containerd. Nothing is shared with a system docker: no
// bridge, no iptables, no ip forwarding, so it can run beside others.
type Daemon struct {
	// Dir holds data/, exec/, docker.sock, dockerd.pid and dockerd.log.
	Dir string
	// Host is the DOCKER_HOST URL (unix://Dir/docker.sock).
	Host string

	opts    Options
	ownDir  bool
	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
	// orphans are the shims that outlived a Kill. The restarted daemon's
	// containerd adopts those it has state for; one caught half-way
	// through a create has none and runs on by itself. It is the fault
	// the test injected, not a leak of the code under test, so Close ends
	// it (with its container) instead of reporting it.
	orphans map[int]bool
}

// Socket is the path of the daemon's API socket.
func (d *Daemon) Socket() string { return filepath.Join(d.Dir, "docker.sock") }

// LogPath is dockerd's log (its stdout and stderr), appended across restarts.
func (d *Daemon) LogPath() string { return filepath.Join(d.Dir, "dockerd.log") }

// Pid is the running dockerd's pid, 0 when it is not running.
func (d *Daemon) Pid() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cmd == nil || d.cmd.Process == nil {
		return 0
	}
	select {
	case <-d.exited:
		return 0
	default:
		return d.cmd.Process.Pid
	}
}

// DockerdPath resolves the daemon binary: $UNISCHED_TEST_DOCKERD, then
// /usr/sbin/dockerd, then PATH.
func DockerdPath() (string, error) {
	if p := os.Getenv("UNISCHED_TEST_DOCKERD"); p != "" {
		return p, nil
	}
	if _, err := os.Stat(DefaultDockerd); err == nil {
		return DefaultDockerd, nil
	}
	p, err := exec.LookPath("dockerd")
	if err != nil {
		return "", fmt.Errorf("%w: neither %s nor dockerd on PATH (Debian: apt-get install docker.io)", ErrUnavailable, DefaultDockerd)
	}
	return p, nil
}

// NewDaemon prepares a daemon (its directory) without starting it.
func NewDaemon(opts Options) (*Daemon, error) {
	if opts.Dockerd == "" {
		p, err := DockerdPath()
		if err != nil {
			return nil, err
		}
		opts.Dockerd = p
	}
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("%w: dockerd needs root (running as uid %d)", ErrUnavailable, os.Geteuid())
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = time.Minute
	}
	d := &Daemon{opts: opts, Dir: opts.Dir}
	if d.Dir == "" {
		dir, err := shortTempDir()
		if err != nil {
			return nil, err
		}
		d.Dir, d.ownDir = dir, true
	} else if err := os.MkdirAll(d.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating %s: %w", d.Dir, err)
	}
	if n := len(filepath.Join(d.Dir, "exec/containerd/containerd.sock.ttrpc")); n > 107 {
		return nil, fmt.Errorf("daemon directory %s is too long for unix sockets (%d bytes below it)", d.Dir, n)
	}
	d.Host = "unix://" + d.Socket()
	return d, nil
}

// shortTempDir makes a directory under TMPDIR when that leaves room for
// containerd's socket paths, else under /tmp.
func shortTempDir() (string, error) {
	base := os.TempDir()
	if len(base) > 40 {
		base = "/tmp"
	}
	dir, err := os.MkdirTemp(base, "udk")
	if err != nil {
		return "", fmt.Errorf("creating the daemon directory: %w", err)
	}
	return dir, nil
}

// StartDaemon prepares and starts a private dockerd, returning once it
// answers /_ping.
func StartDaemon(ctx context.Context, opts Options) (*Daemon, error) {
	d, err := NewDaemon(opts)
	if err != nil {
		return nil, err
	}
	if err := d.Start(ctx); err != nil {
		_ = d.Close(context.Background())
		return nil, err
	}
	return d, nil
}

// Start runs dockerd (again, after Stop or Kill: same data, so images and
// stopped containers survive) and waits for /_ping.
func (d *Daemon) Start(ctx context.Context) error {
	if d.Pid() != 0 {
		return fmt.Errorf("dockerd in %s already runs (pid %d)", d.Dir, d.Pid())
	}
	// A socket or pid file left by a killed daemon makes dockerd refuse to
	// start. A killed containerd may linger as a zombie (PID 1 here does not
	// always reap): dockerd takes a zombie's pid for a live containerd and
	// waits for its socket forever, so a pid file naming no live process goes.
	_ = os.Remove(d.Socket())
	_ = os.Remove(filepath.Join(d.Dir, "dockerd.pid"))
	ctrPid := filepath.Join(d.Dir, "exec", "containerd", "containerd.pid")
	if b, err := os.ReadFile(ctrPid); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err != nil || !proctest.Alive(pid) {
			_ = os.Remove(ctrPid)
		}
	}
	args := []string{
		"--data-root", filepath.Join(d.Dir, "data"),
		"--exec-root", filepath.Join(d.Dir, "exec"),
		"-H", d.Host,
		"--pidfile", filepath.Join(d.Dir, "dockerd.pid"),
		"--iptables=false", "--ip-forward=false", "--ip-masq=false", "--bridge=none",
		// A private daemon must not read the system's /etc/docker/daemon.json.
		"--config-file", filepath.Join(d.Dir, "daemon.json"),
	}
	if err := os.WriteFile(filepath.Join(d.Dir, "daemon.json"), []byte("{}\n"), 0o600); err != nil {
		return fmt.Errorf("writing daemon.json: %w", err)
	}
	args = append(args, d.opts.ExtraArgs...)
	logf, err := os.OpenFile(d.LogPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("opening dockerd log: %w", err)
	}
	cmd := exec.Command(d.opts.Dockerd, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// dockerd finds containerd, runc, docker-init and docker-proxy on PATH.
	cmd.Env = append(os.Environ(), "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	// Own process group (a ^C to the test does not race our Stop); if the
	// test binary dies (timeout panic), dockerd gets SIGTERM and takes its
	// containerd down with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting %s: %w", d.opts.Dockerd, err)
	}
	exited := make(chan struct{})
	d.mu.Lock()
	d.cmd, d.exited = cmd, exited
	d.mu.Unlock()
	go func() {
		err := cmd.Wait()
		logf.Close()
		d.mu.Lock()
		d.waitErr = err
		d.mu.Unlock()
		close(exited)
	}()

	deadline := time.Now().Add(d.opts.StartTimeout)
	for {
		select {
		case <-exited:
			return fmt.Errorf("dockerd exited during startup (%v); log %s:\n%s", d.waitError(), d.LogPath(), proctest.Tail(d.LogPath(), 30))
		default:
		}
		if pingSocket(ctx, d.Socket()) == nil {
			return nil
		}
		if err := ctx.Err(); err != nil {
			_ = d.Stop(context.Background())
			return fmt.Errorf("waiting for dockerd: %w", err)
		}
		if time.Now().After(deadline) {
			_ = d.Stop(context.Background())
			return fmt.Errorf("dockerd did not answer /_ping within %s; log %s:\n%s", d.opts.StartTimeout, d.LogPath(), proctest.Tail(d.LogPath(), 30))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (d *Daemon) waitError() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.waitErr
}

// pingSocket is GET /_ping over the unix socket.
func pingSocket(ctx context.Context, sock string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var dl net.Dialer
		return dl.DialContext(ctx, "unix", sock)
	}}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://docker/_ping", nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/_ping: %s", resp.Status)
	}
	return nil
}

// Stop ends dockerd with SIGTERM (it stops its containers, each within its
// stop timeout, and its containerd) and waits until dockerd, containerd
// and every shim of this daemon are gone; what is still there after 60 s
// gets SIGKILL. Data stays: Start brings the same daemon back.
func (d *Daemon) Stop(ctx context.Context) error {
	return d.halt(ctx, syscall.SIGTERM, 60*time.Second)
}

// Kill ends dockerd with SIGKILL, as a crash would, and waits for it and
// its containerd (Debian's dockerd gives containerd a parent-death
// signal). Container processes and their shims keep running, as after a
// real crash; the next Start's containerd takes them over.
func (d *Daemon) Kill(ctx context.Context) error {
	pid := d.Pid()
	if pid == 0 {
		return nil
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	select {
	case <-d.exited:
	case <-ctx.Done():
		return ctx.Err()
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		left := 0
		for _, cmdline := range d.processes() {
			if !strings.Contains(cmdline, "containerd-shim") {
				left++
			}
		}
		if left == 0 {
			d.mu.Lock()
			if d.orphans == nil {
				d.orphans = map[int]bool{}
			}
			for pid := range d.processes() {
				d.orphans[pid] = true
			}
			d.mu.Unlock()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("containerd of %s outlived its killed dockerd by 15 s", d.Dir)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (d *Daemon) halt(ctx context.Context, sig syscall.Signal, grace time.Duration) error {
	var errs []error
	if pid := d.Pid(); pid != 0 {
		_ = syscall.Kill(pid, sig)
		select {
		case <-d.exited:
		case <-time.After(grace):
			errs = append(errs, fmt.Errorf("dockerd (pid %d) still ran %s after %v: killed", pid, grace, sig))
			_ = syscall.Kill(pid, syscall.SIGKILL)
			<-d.exited
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	// containerd and its shims outlive dockerd for a moment (or for good
	// after a Kill): wait for every process of this daemon's directory.
	if err := d.reap(ctx, 30*time.Second); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// reap waits until no process whose command line names this daemon's
// directory is left (containerd, containerd-shim-runc-v2: only this
// daemon's children carry it), sending SIGTERM at once to a containerd
// whose dockerd is gone and SIGKILL to anything left after grace.
func (d *Daemon) reap(ctx context.Context, grace time.Duration) error {
	deadline := time.Now().Add(grace)
	termSent := map[int]bool{}
	for {
		procs := d.processes()
		d.mu.Lock()
		for pid := range procs {
			if d.orphans[pid] && !d.running() {
				killTree(pid)
				delete(procs, pid)
			}
		}
		d.mu.Unlock()
		if len(procs) == 0 {
			return nil
		}
		for pid, cmdline := range procs {
			if strings.Contains(cmdline, "containerd-shim") || termSent[pid] {
				continue
			}
			_ = syscall.Kill(pid, syscall.SIGTERM)
			termSent[pid] = true
		}
		if time.Now().After(deadline) {
			for pid := range procs {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			time.Sleep(200 * time.Millisecond)
			return fmt.Errorf("processes of %s still ran %s after dockerd: killed %v", d.Dir, grace, procs)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// processes lists live dockerd, containerd and shim processes whose
// command line mentions d.Dir (other programs naming the directory, such as
// an agent given the socket path, are not the daemon's).
func (d *Daemon) processes() map[int]string {
	out := map[int]string{}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return out
	}
	needle := []byte(d.Dir + "/")
	self := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		comm, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if err != nil || !(bytes.HasPrefix(comm, []byte("containerd")) || bytes.HasPrefix(comm, []byte("dockerd"))) {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(cmdline, needle) {
			continue
		}
		if !proctest.Alive(pid) {
			continue // a zombie is gone for our purpose
		}
		out[pid] = string(bytes.ReplaceAll(bytes.TrimRight(cmdline, "\x00"), []byte{0}, []byte{' '}))
	}
	return out
}

// RemoveAllContainers force-removes every container of the daemon (they
// are all the tests'), so that Stop does not wait out stop timeouts.
func (d *Daemon) RemoveAllContainers(ctx context.Context) error {
	cli, err := NewClient(d.Host)
	if err != nil {
		return err
	}
	defer cli.Close()
	list, err := cli.ContainerList(ctx, container.ListOptions{All: true})
	if err != nil {
		return fmt.Errorf("listing containers: %w", err)
	}
	var errs []error
	for _, c := range list {
		if err := cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("removing container %s: %w", c.ID, err))
		}
	}
	return errors.Join(errs...)
}

// Close force-removes the containers, stops the daemon and, when the
// directory was made by NewDaemon, unmounts what dockerd left mounted
// there and removes it. Safe to call twice.
func (d *Daemon) Close(ctx context.Context) error {
	var errs []error
	if d.Pid() != 0 {
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		if err := d.RemoveAllContainers(rctx); err != nil {
			errs = append(errs, err)
		}
		cancel()
	}
	if err := d.Stop(ctx); err != nil {
		errs = append(errs, err)
	}
	if d.ownDir && d.Dir != "" {
		if err := unmountUnder(d.Dir); err != nil {
			errs = append(errs, err)
		}
		if err := os.RemoveAll(d.Dir); err != nil {
			errs = append(errs, fmt.Errorf("removing %s: %w", d.Dir, err))
		}
	}
	return errors.Join(errs...)
}

// unmountUnder detaches every mount point below dir, deepest first
// (dockerd bind-mounts its data root and overlay layers there).
func unmountUnder(dir string) error {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return fmt.Errorf("reading mountinfo: %w", err)
	}
	defer f.Close()
	var points []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMount(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			points = append(points, mp)
		}
	}
	var errs []error
	for i := len(points) - 1; i >= 0; i-- {
		if err := syscall.Unmount(points[i], syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, fmt.Errorf("unmounting %s: %w", points[i], err))
		}
	}
	return errors.Join(errs...)
}

// unescapeMount decodes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// running reports whether dockerd runs; d.mu held.
func (d *Daemon) running() bool {
	if d.exited == nil {
		return false
	}
	select {
	case <-d.exited:
		return false
	default:
		return true
	}
}

// killTree kills a shim's children (its container's processes) and then
// the shim: killing the shim alone would leave the container running,
// reparented to init.
func killTree(pid int) {
	entries, err := os.ReadDir("/proc")
	if err == nil {
		for _, e := range entries {
			child, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
			if err != nil {
				continue
			}
			// pid (comm) state ppid ...: comm may hold spaces, so read after ')'.
			rest := stat[bytes.LastIndexByte(stat, ')')+1:]
			f := strings.Fields(string(rest))
			if len(f) > 1 && f[1] == strconv.Itoa(pid) {
				_ = syscall.Kill(child, syscall.SIGKILL)
			}
		}
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
}
