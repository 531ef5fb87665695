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
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
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
	Name string
	URL  string
	// Port is URL's port: the one asked for, or the one picked last.
	Port    int
	DB      string
	LogPath string

	admin string
	proc  *proctest.Process
}

// Pid is the server's (for uwsgi: the master's) process id; 0 once it
// has exited.
func (s *Server) Pid() int { return s.proc.Pid() }

// Memory sums VmRSS and VmHWM (peak) in KiB over the server's process group:
// for unisched that is the one process, for uwsgi the master and its workers.
func (s *Server) Memory() (map[string]int, error) {
	pid := s.Pid()
	if pid == 0 {
		return nil, fmt.Errorf("%s is not running", s.Name)
	}
	pids, err := proctest.GroupMembers(pid)
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
	if s == nil {
		return nil
	}
	err := s.proc.Stop(30 * time.Second)
	if s.DB == "" {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = errors.Join(err, DropDatabase(ctx, s.admin, s.DB))
	s.DB = ""
	return err
}

// startOnPort runs the server built by launch on port (0: a free one,
// again on a new one while the port turns out taken), waiting until
// ready; on failure nothing of it runs and its database is dropped.
func startOnPort(ctx context.Context, s *Server, port int, timeout time.Duration,
	launch func(port int) (*exec.Cmd, error), ready func(context.Context) bool) error {
	run := func(port int) error {
		s.URL, s.Port = fmt.Sprintf("http://127.0.0.1:%d", port), port
		cmd, err := launch(port)
		if err != nil {
			return err
		}
		s.proc, err = proctest.Start(ctx, s.Name, s.LogPath, cmd, timeout, func(ctx context.Context) error {
			if !ready(ctx) {
				return fmt.Errorf("%s does not answer yet", s.URL)
			}
			return nil
		})
		return err
	}
	var err error
	if port != 0 {
		if err = CheckPortFree(port); err == nil {
			err = run(port)
		}
	} else {
		err = proctest.RetryPorts(1, func(ps []int) error { return run(ps[0]) })
	}
	if err != nil {
		_ = s.Stop()
		return fmt.Errorf("%s: %w", s.Name, err)
	}
	return nil
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
