package harness

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/unisched/unisched/internal/proctest"
)

// What the suites that run `unisched serve` for each test share
// (tests/containers, tests/replicas): a directory for the test's logs, a
// database of its own, and serve on ports of its own.

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// ArtifactsDir is the directory of a test's logs and configuration:
// $ARTIFACTS/<suite>/<test name>, emptied, when ARTIFACTS is set (CI keeps
// it), else a t.TempDir().
func ArtifactsDir(t testing.TB, suite string) string {
	t.Helper()
	a := os.Getenv("ARTIFACTS")
	if a == "" {
		return t.TempDir()
	}
	dir := filepath.Join(a, suite, unsafeName.ReplaceAllString(t.Name(), "_"))
	_ = os.RemoveAll(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestDatabase creates an empty database prefix_<random hex> through the
// admin URL ("": AdminURL()), dropped when t ends, and returns its name
// and URL.
func TestDatabase(ctx context.Context, t testing.TB, admin, prefix string) (name, url string) {
	t.Helper()
	suffix := make([]byte, 5)
	_, _ = rand.Read(suffix)
	name = prefix + "_" + hex.EncodeToString(suffix)
	if admin == "" {
		admin = AdminURL()
	}
	if err := CreateDatabase(ctx, admin, name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := DropDatabase(ctx, admin, name); err != nil {
			t.Errorf("dropping %s: %v", name, err)
		}
	})
	url, err := DatabaseURL(admin, name)
	if err != nil {
		t.Fatal(err)
	}
	return name, url
}

// Serve runs `unisched serve` with Placement and the container API on
// 127.0.0.1. Zero ports are picked at the first Start, and picked again
// while one turns out taken before serve binds it; later Starts (after a
// Stop or Kill) keep them, as a restarted server keeps its address.
type Serve struct {
	Name    string // the process's name in errors
	Bin     string
	LogPath string
	DBURL   string
	// Env adds settings after the harness's own (UNISCHED_TEST_RESET,
	// UNISCHED_LOG_LEVEL, ...).
	Env []string
	// Timeout bounds each start (default 2 minutes).
	Timeout time.Duration

	PlacementPort, ContainerPort int
	// Dashboard adds serve's dashboard listener on DashboardPort, picked
	// and moved with the other two.
	Dashboard     bool
	DashboardPort int
}

// PlacementURL is http://127.0.0.1:PlacementPort.
func (s *Serve) PlacementURL() string { return fmt.Sprintf("http://127.0.0.1:%d", s.PlacementPort) }

// ContainerURL is http://127.0.0.1:ContainerPort.
func (s *Serve) ContainerURL() string { return fmt.Sprintf("http://127.0.0.1:%d", s.ContainerPort) }

// DashboardURL is http://127.0.0.1:DashboardPort/.
func (s *Serve) DashboardURL() string { return fmt.Sprintf("http://127.0.0.1:%d/", s.DashboardPort) }

// Start runs serve and waits until Placement answers GET / with 200 and
// the container API answers at all.
func (s *Serve) Start(ctx context.Context) (*proctest.Process, error) {
	ports := []*int{&s.PlacementPort, &s.ContainerPort}
	if s.Dashboard {
		ports = append(ports, &s.DashboardPort)
	}
	if !slices.ContainsFunc(ports, func(p *int) bool { return *p == 0 }) {
		return s.start(ctx)
	}
	var p *proctest.Process
	err := proctest.RetryPorts(len(ports), func(ps []int) error {
		for i, port := range ps {
			*ports[i] = port
		}
		var err error
		p, err = s.start(ctx)
		return err
	})
	if err != nil {
		for _, port := range ports {
			*port = 0
		}
	}
	return p, err
}

func (s *Serve) start(ctx context.Context) (*proctest.Process, error) {
	timeout := s.Timeout
	if timeout == 0 {
		timeout = 2 * time.Minute
	}
	cmd := exec.Command(s.Bin, "serve")
	cmd.Env = append(os.Environ(),
		"UNISCHED_DATABASE_URL="+s.DBURL,
		fmt.Sprintf("UNISCHED_PLACEMENT_LISTEN=127.0.0.1:%d", s.PlacementPort),
		fmt.Sprintf("UNISCHED_CONTAINER_API_LISTEN=127.0.0.1:%d", s.ContainerPort),
	)
	if s.Dashboard {
		// serve binds every listener before it serves any: Placement
		// answering means the dashboard's port was bound too
		cmd.Env = append(cmd.Env, fmt.Sprintf("UNISCHED_DASHBOARD_LISTEN=127.0.0.1:%d", s.DashboardPort))
	}
	cmd.Env = append(cmd.Env, s.Env...)
	return proctest.Start(ctx, s.Name, s.LogPath, cmd, timeout, func(ctx context.Context) error {
		if err := Get(ctx, s.PlacementURL()+"/", http.StatusOK); err != nil {
			return err
		}
		return Get(ctx, s.ContainerURL()+"/", 0)
	})
}

// Get GETs url within two seconds; want 0 accepts any HTTP status.
func Get(ctx context.Context, url string, want int) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if want != 0 && resp.StatusCode != want {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// AgentRegistered is nil once host's row of bridge_hosts carries an agent
// URL and a heartbeat not older than since: an agent started at since is
// ready (a restarted one registers again).
func AgentRegistered(ctx context.Context, db *pgxpool.Pool, host string, since time.Time) error {
	if db == nil {
		return errors.New("no database pool")
	}
	var url string
	var hb *time.Time
	err := db.QueryRow(ctx, `SELECT agent_url, heartbeat_at FROM bridge_hosts WHERE name = $1`, host).Scan(&url, &hb)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("host %s not registered yet", host)
	}
	if err != nil {
		return err
	}
	if url == "" || hb == nil || hb.Before(since.Add(-2*time.Second)) {
		return fmt.Errorf("host %s: agent_url %q, heartbeat %v: not (re)registered yet", host, url, hb)
	}
	return nil
}
