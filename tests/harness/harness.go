// Package harness starts the two Placement servers the bench and the
// differential test compare: upstream Placement 8.0.0 from Debian's packages
// under uwsgi, and unisched built from this tree, each on its own fresh
// database of the local PostgreSQL. Every process it starts runs in its own
// process group and is stopped by that pid; nothing else is ever signalled.
package harness

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/unisched/unisched/internal/proctest"
)

// DefaultAdminURL is the local PostgreSQL's superuser over the unix socket,
// the same default the test suite uses (UNISCHED_TEST_DATABASE_URL).
const DefaultAdminURL = "postgres://postgres@/postgres?host=/var/run/postgresql"

// AdminURL is UNISCHED_TEST_DATABASE_URL or the default.
func AdminURL() string {
	if u := os.Getenv("UNISCHED_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultAdminURL
}

// Server is a Placement process the harness started.
type Server struct {
	Name    string
	URL     string
	DB      string
	LogPath string

	admin  string
	cmd    *exec.Cmd
	exited chan struct{}
	err    error // cmd.Wait's result, valid once exited is closed
}

// Pid is the server's (for uwsgi: the master's) process id.
func (s *Server) Pid() int { return s.cmd.Process.Pid }

// Memory sums VmRSS and VmHWM (peak) in KiB over the server's process group:
// for unisched that is the one process, for uwsgi the master and its workers.
func (s *Server) Memory() (map[string]int, error) {
	pids, err := proctest.GroupMembers(s.Pid())
	if err != nil {
		return nil, err
	}
	out := map[string]int{"processes": len(pids)}
	for _, pid := range pids {
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue // exited meanwhile
		}
		for line := range strings.SplitSeq(string(st), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok || (k != "VmRSS" && k != "VmHWM") {
				continue
			}
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err == nil {
				out[k] += n
			}
		}
	}
	return out, nil
}

// Stop sends SIGTERM to the server, waits up to 30 s for it and its process
// group to be gone (SIGKILL to that group after that), then drops its
// database. It is safe to call twice.
func (s *Server) Stop() error {
	if s == nil || s.cmd == nil || s.cmd.Process == nil {
		return nil
	}
	pid := s.Pid()
	select {
	case <-s.exited:
	default:
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			<-s.exited
		}
	}
	// uwsgi workers may outlive the master by a moment; the group is ours.
	deadline := time.Now().Add(10 * time.Second)
	for {
		left, _ := proctest.GroupMembers(pid)
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if s.DB == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := DropDatabase(ctx, s.admin, s.DB)
	s.DB = ""
	return err
}

// start runs cmd in its own process group with output to logPath and
// waits until ready(ctx) succeeds, failing early if the process exits.
func start(ctx context.Context, s *Server, cmd *exec.Cmd, timeout time.Duration, ready func(context.Context) bool) error {
	logf, err := os.OpenFile(s.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("opening %s: %w", s.LogPath, err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting %s: %w", s.Name, err)
	}
	s.cmd = cmd
	s.exited = make(chan struct{})
	go func() {
		s.err = cmd.Wait()
		logf.Close()
		close(s.exited)
	}()
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-s.exited:
			return fmt.Errorf("%s exited during startup (%v); log %s:\n%s", s.Name, s.err, s.LogPath, proctest.Tail(s.LogPath, 25))
		default:
		}
		if ready(ctx) {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %s; log %s:\n%s", s.Name, timeout, s.LogPath, proctest.Tail(s.LogPath, 25))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// answers reports whether GET url/ returns 200.
func answers(ctx context.Context, base string) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", base+"/", nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// CheckPortFree refuses a port something already listens on: measuring
// someone else's server by mistake would be worse than failing.
func CheckPortFree(port int) error {
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("port 127.0.0.1:%d is already in use", port)
	}
	return nil
}

// FreePort asks the kernel for an unused loopback port.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// CreateDatabase (re)creates an empty database through the admin URL.
func CreateDatabase(ctx context.Context, admin, name string) error {
	if err := DropDatabase(ctx, admin, name); err != nil {
		return err
	}
	return adminExec(ctx, admin, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
}

// DropDatabase drops name, disconnecting its sessions.
func DropDatabase(ctx context.Context, admin, name string) error {
	return adminExec(ctx, admin, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
}

func adminExec(ctx context.Context, admin, stmt string) error {
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return fmt.Errorf("connecting to PostgreSQL at %s: %w", admin, err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, stmt); err != nil {
		return fmt.Errorf("%s: %w", stmt, err)
	}
	return nil
}

// DatabaseURL points the admin URL at another database.
func DatabaseURL(admin, name string) (string, error) {
	u, err := url.Parse(admin)
	if err != nil {
		return "", fmt.Errorf("parsing database url: %w", err)
	}
	u.Path = "/" + name
	return u.String(), nil
}

// ServerVersion is PostgreSQL's version string, for the bench's machine description.
func ServerVersion(ctx context.Context, admin string) (string, error) {
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return "", fmt.Errorf("connecting to PostgreSQL at %s: %w", admin, err)
	}
	defer conn.Close(ctx)
	var v string
	err = conn.QueryRow(ctx, "SHOW server_version").Scan(&v)
	return v, err
}

// ModuleRoot finds the directory holding this module's go.mod, upwards from
// the working directory (go test runs in the package directory).
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/unisched/unisched\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod of github.com/unisched/unisched not found above the working directory")
		}
		dir = parent
	}
}
