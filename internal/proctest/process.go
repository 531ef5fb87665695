package proctest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// Process is one process a test harness started (serve, an agent, haproxy),
// in its own process group, with its output in LogPath. It is signalled by
// its pid (and its group) only: never by name.
type Process struct {
	Name    string
	LogPath string

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
}

// Pid is the process id; 0 once it has exited.
func (p *Process) Pid() int {
	if p == nil || p.cmd == nil || p.cmd.Process == nil || p.Exited() {
		return 0
	}
	return p.cmd.Process.Pid
}

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// Err is the process's exit error, once it exited.
func (p *Process) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waitErr
}

// Log is the last lines of the process's output, for failure messages.
func (p *Process) Log(lines int) string { return Tail(p.LogPath, lines) }

// Start runs cmd with its output appended to logPath and waits until
// ready returns nil, failing early (with the log's tail) if the process
// exits or timeout passes.
func Start(ctx context.Context, name, logPath string, cmd *exec.Cmd, timeout time.Duration, ready func(context.Context) error) (*Process, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", logPath, err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	// Own group; and if the test binary dies, the process goes with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &Process{Name: name, LogPath: logPath, cmd: cmd, exited: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		logf.Close()
		p.mu.Lock()
		p.waitErr = err
		p.mu.Unlock()
		close(p.exited)
	}()
	deadline := time.Now().Add(timeout)
	var last error
	for {
		if p.Exited() {
			return nil, fmt.Errorf("%s exited during startup (%v); log %s:\n%s", name, p.Err(), logPath, p.Log(30))
		}
		if last = ready(ctx); last == nil {
			return p, nil
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			_ = p.Stop(10 * time.Second)
			return nil, fmt.Errorf("%s not ready after %s (%v); log %s:\n%s", name, timeout, last, logPath, p.Log(30))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop sends SIGTERM and waits up to grace for the process and its group;
// then SIGKILL to that group. Safe to call twice.
func (p *Process) Stop(grace time.Duration) error {
	return p.signal(syscall.SIGTERM, grace)
}

// Kill ends the process with SIGKILL (a crash) and waits for it.
func (p *Process) Kill() error {
	return p.signal(syscall.SIGKILL, 10*time.Second)
}

func (p *Process) signal(sig syscall.Signal, grace time.Duration) error {
	if p == nil || p.cmd == nil || p.cmd.Process == nil {
		return nil
	}
	pid := p.cmd.Process.Pid
	var err error
	if !p.Exited() {
		_ = syscall.Kill(pid, sig)
		select {
		case <-p.exited:
		case <-time.After(grace):
			err = fmt.Errorf("%s (pid %d) still ran %s after %v: killed", p.Name, pid, grace, sig)
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			<-p.exited
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for members, _ := GroupMembers(pid); len(members) > 0; members, _ = GroupMembers(pid) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	return err
}
