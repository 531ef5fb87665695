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

// Process is one process a test harness started (serve, an agent, haproxy,
// uwsgi, a Nova service), leading its own process group, with its output
// appended to LogPath. It is signalled by its pid (and its group) only:
// never by name.
type Process struct {
	Name    string
	LogPath string

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
	// logFrom is LogPath's size when this process started: its own part
	// of a log that earlier runs appended to.
	logFrom int64
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

// Failed describes a process that ended although it should run: its exit
// status and the end of what this run of it wrote (so that AddrInUse can
// tell a port taken from another failure).
func (p *Process) Failed() error {
	return fmt.Errorf("%s exited (%v); last lines of %s:\n%s", p.Name, p.Err(), p.LogPath, TailFrom(p.LogPath, p.logFrom, 30))
}

// Launch starts cmd in its own process group with its output appended to
// logPath, without waiting for anything. SysProcAttr settings of cmd (a
// Credential) are kept.
func Launch(name, logPath string, cmd *exec.Cmd) (*Process, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", logPath, err)
	}
	var from int64
	if st, err := logf.Stat(); err == nil {
		from = st.Size()
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	// Own group; and if the test binary dies, the process goes with it.
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid, cmd.SysProcAttr.Pdeathsig = true, syscall.SIGTERM
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &Process{Name: name, LogPath: logPath, cmd: cmd, exited: make(chan struct{}), logFrom: from}
	go func() {
		err := cmd.Wait()
		logf.Close()
		p.mu.Lock()
		p.waitErr = err
		p.mu.Unlock()
		close(p.exited)
	}()
	return p, nil
}

// Start is Launch, then Wait for ready; a process that is not ready in
// time is stopped again.
func Start(ctx context.Context, name, logPath string, cmd *exec.Cmd, timeout time.Duration, ready func(context.Context) error) (*Process, error) {
	p, err := Launch(name, logPath, cmd)
	if err != nil {
		return nil, err
	}
	if err := p.Wait(ctx, timeout, ready); err != nil {
		_ = p.Stop(10 * time.Second)
		return nil, err
	}
	return p, nil
}

// Wait polls ready until it returns nil, failing early (with the log's
// tail) when the process exits, and when timeout passes or ctx ends.
func (p *Process) Wait(ctx context.Context, timeout time.Duration, ready func(context.Context) error) error {
	deadline := time.Now().Add(timeout)
	for {
		if p.Exited() {
			return p.Failed()
		}
		last := ready(ctx)
		if last == nil {
			return nil
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %s (%v); last lines of %s:\n%s", p.Name, timeout, last, p.LogPath, TailFrom(p.LogPath, p.logFrom, 30))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop sends SIGTERM and waits up to grace for the process and its group;
// then SIGKILL to that group. Safe to call twice.
func (p *Process) Stop(grace time.Duration) error {
	return p.Signal(syscall.SIGTERM, grace)
}

// Kill ends the process with SIGKILL (a crash) and waits for it.
func (p *Process) Kill() error {
	return p.Signal(syscall.SIGKILL, 10*time.Second)
}

// Signal sends sig (SIGINT: PostgreSQL's fast shutdown) and waits up to
// grace for the process, then for its group; what is left gets SIGKILL.
func (p *Process) Signal(sig syscall.Signal, grace time.Duration) error {
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
