// Package dockertest gives Go tests a Docker daemon and the tiny image
// unisched/busybox:latest, with no system docker service and no registry.
//
// Each test binary gets its own private dockerd (own data root, exec root,
// socket and containerd; no bridge, no iptables), started on first use and
// stopped by its pid when the binary's tests end, or the daemon named by
// UNISCHED_TEST_DOCKER_HOST (a DOCKER_HOST URL) when that is set: then
// nothing is started or stopped and the tests must clean up their own
// containers. A package using it calls Main from its TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(dockertest.Main(m)) }
//
// Where dockerd is missing (or the tests do not run as root) the tests
// skip, unless UNISCHED_REQUIRE_DOCKER=1 (set by the test scripts and CI):
// then they fail, because a container test that skips proves nothing.
package dockertest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/client"
)

// ErrUnavailable marks errors meaning "this machine cannot run Docker
// tests" (no dockerd, not root, no busybox-static), as opposed to a
// daemon that was there and failed.
var ErrUnavailable = errors.New("docker unavailable")

// Environment variables the package reads.
const (
	// EnvHost names an existing daemon to use instead of starting one.
	EnvHost = "UNISCHED_TEST_DOCKER_HOST"
	// EnvRequire=1 turns every skip for a missing Docker into a failure.
	EnvRequire = "UNISCHED_REQUIRE_DOCKER"
)

// Required reports whether a missing Docker must fail the tests.
func Required() bool {
	v := os.Getenv(EnvRequire)
	return v == "1" || strings.EqualFold(v, "true")
}

// Unavailable ends the test for a machine without Docker: a skip, or a
// failure when Required.
func Unavailable(t testing.TB, err error) {
	t.Helper()
	if Required() {
		t.Fatalf("Docker is required (%s=1) but unusable: %v", EnvRequire, err)
	}
	t.Skipf("Docker unusable, skipping (set %s=1 to fail instead): %v", EnvRequire, err)
}

// NewClient connects to a DOCKER_HOST URL, negotiating the API version
// (Debian's dockerd 20.10 speaks 1.41, older than the client's default).
func NewClient(host string) (*client.Client, error) {
	cli, err := client.NewClientWithOpts(client.WithHost(host), client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("docker client for %s: %w", host, err)
	}
	return cli, nil
}

// shared is the test binary's daemon (or the external one).
var shared struct {
	sync.Mutex
	mainCalled bool
	host       string
	daemon     *Daemon
	err        error
	imageID    string
	imageErr   error
	imageDone  bool
}

// Main runs the tests and then stops the binary's private dockerd, if one
// was started; it returns m.Run's code (or 1 when stopping failed). When
// the tests failed and ARTIFACTS is set, dockerd's log is copied to
// $ARTIFACTS/dockerd/.
func Main(m *testing.M) int {
	shared.Lock()
	shared.mainCalled = true
	shared.Unlock()
	code := m.Run()
	shared.Lock()
	d := shared.daemon
	shared.daemon = nil
	shared.Unlock()
	if d == nil {
		return code
	}
	if code != 0 {
		keepLog(d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := d.Close(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "dockertest: stopping the private dockerd: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

func keepLog(d *Daemon) {
	dir := os.Getenv("ARTIFACTS")
	if dir == "" {
		return
	}
	b, err := os.ReadFile(d.LogPath())
	if err != nil {
		return
	}
	dir = filepath.Join(dir, "dockerd")
	if os.MkdirAll(dir, 0o755) != nil {
		return
	}
	name := fmt.Sprintf("%s-%s.log", filepath.Base(os.Args[0]), filepath.Base(d.Dir))
	if os.WriteFile(filepath.Join(dir, name), b, 0o644) == nil {
		fmt.Fprintf(os.Stderr, "dockertest: dockerd log kept in %s\n", filepath.Join(dir, name))
	}
}

// Host is the DOCKER_HOST URL of the binary's daemon, started on the first
// call. A machine without Docker skips the test (fails it when Required).
func Host(t testing.TB) string {
	t.Helper()
	host, err := sharedHost()
	if err != nil {
		if errors.Is(err, ErrUnavailable) {
			Unavailable(t, err)
		}
		t.Fatal(err)
	}
	return host
}

func sharedHost() (string, error) {
	shared.Lock()
	defer shared.Unlock()
	if shared.host != "" || shared.err != nil {
		return shared.host, shared.err
	}
	if h := os.Getenv(EnvHost); h != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := Ping(ctx, h); err != nil {
			shared.err = fmt.Errorf("%s=%s: %w", EnvHost, h, err)
			return "", shared.err
		}
		shared.host = h
		return h, nil
	}
	if !shared.mainCalled {
		// Without Main nobody would stop the daemon: refuse, loudly.
		return "", errors.New("dockertest: the package must run its tests through dockertest.Main: func TestMain(m *testing.M) { os.Exit(dockertest.Main(m)) }")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d, err := StartDaemon(ctx, Options{})
	if err != nil {
		shared.err = err
		return "", err
	}
	shared.daemon, shared.host = d, d.Host
	return d.Host, nil
}

// Ping checks that a daemon answers at a DOCKER_HOST URL.
func Ping(ctx context.Context, host string) error {
	cli, err := NewClient(host)
	if err != nil {
		return err
	}
	defer cli.Close()
	if _, err := cli.Ping(ctx); err != nil {
		return fmt.Errorf("pinging docker at %s: %w", host, err)
	}
	return nil
}

// Client is a client of the binary's daemon, closed when t ends.
func Client(t testing.TB) *client.Client {
	t.Helper()
	cli, err := NewClient(Host(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// Image makes sure ImageName exists on the binary's daemon (imported once
// per binary) and returns its name.
func Image(t testing.TB) string {
	t.Helper()
	host := Host(t)
	shared.Lock()
	defer shared.Unlock()
	if !shared.imageDone {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cli, err := NewClient(host)
		if err != nil {
			t.Fatal(err)
		}
		defer cli.Close()
		shared.imageID, shared.imageErr = EnsureImage(ctx, cli)
		shared.imageDone = true
	}
	if shared.imageErr != nil {
		if errors.Is(shared.imageErr, ErrUnavailable) {
			Unavailable(t, shared.imageErr)
		}
		t.Fatal(shared.imageErr)
	}
	return ImageName
}
