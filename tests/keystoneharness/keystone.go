// Package keystoneharness runs a real Keystone (Zed, Debian's `keystone`
// and `python3-keystone` under uwsgi) for tests: its own database on the
// local PostgreSQL, its own configuration, fernet and credential key
// repositories in t.TempDir(), bootstrapped with an admin user, project
// and region, listening on a free port of 127.0.0.1. The uwsgi master
// leads its own process group and is stopped by its pid at cleanup;
// nothing else is signalled.
//
// On a machine without the packages Start skips the test, unless
// UNISCHED_REQUIRE_OPERATIONS=1 (the CI operations step): then it fails.
//
//	ks := keystoneharness.Start(t, keystoneharness.Options{})
//	p := ks.CreateProject(t, "a")
//	u := ks.CreateUser(t, "alice", p, "member")
//	tok := ks.Token(t, u.Name, u.Password, p.Name)
//	env := ks.OpenStackEnv(u.Name, u.Password, p.Name) // for the openstack CLI
package keystoneharness

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/unisched/unisched/internal/proctest"
	"github.com/unisched/unisched/tests/harness"
)

// Files of Debian's packages the harness runs. Debian's OpenStack code
// needs /usr/bin/python3 (another python3 may come first on PATH), so the
// commands run with a PATH of the system directories only.
const (
	keystoneManage = "/usr/bin/keystone-manage"
	keystoneWSGI   = "/usr/bin/keystone-wsgi-public"
	uwsgiBin       = "/usr/bin/uwsgi"
	uwsgiPython3   = "/usr/lib/uwsgi/plugins/python3_plugin.so"
	systemPython   = "/usr/bin/python3"
	psycopg2Dir    = "/usr/lib/python3/dist-packages/psycopg2"
)

// EnvRequire set to 1 turns a missing Keystone into a test failure.
const EnvRequire = "UNISCHED_REQUIRE_OPERATIONS"

// Packages are the Debian packages Start needs.
var Packages = []string{"keystone", "python3-keystone", "uwsgi-core", "uwsgi-plugin-python3", "python3-psycopg2"}

// Available says why Keystone cannot run here (nil when it can).
func Available() error {
	for _, f := range []string{keystoneManage, keystoneWSGI, uwsgiBin, uwsgiPython3, systemPython, psycopg2Dir} {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("keystone is not installed (apt-get install %s): %s missing", strings.Join(Packages, " "), f)
		}
	}
	return nil
}

// Required reports whether a missing Keystone must fail the test.
func Required() bool { return os.Getenv(EnvRequire) == "1" }

// Options configures one Keystone. The zero value is usable.
type Options struct {
	// Port on 127.0.0.1; 0 picks a free one.
	Port int
	// AdminPassword of the bootstrap admin; default a random one.
	AdminPassword string
	// Region of the bootstrap endpoints; default RegionOne.
	Region string
	// TokenExpiration is Keystone's [token] expiration (whole seconds,
	// at least 1 s); default one hour. A few seconds make expiring tokens.
	TokenExpiration time.Duration
	// Workers are uwsgi processes (4 threads each); default 1: loading
	// Keystone costs seconds of CPU per process on a shared machine.
	Workers int
	// AdminURL is the PostgreSQL superuser URL (default harness.AdminURL()).
	AdminURL string
	// Debug turns on Keystone's debug logging.
	Debug bool
}

// Keystone is a running Keystone.
type Keystone struct {
	// URL is the identity v3 endpoint, http://127.0.0.1:PORT/v3.
	URL string
	// AdminUser, AdminPassword and AdminProject are the bootstrap admin
	// (role admin on project AdminProject and on the system), domain Default.
	AdminUser, AdminPassword, AdminProject string
	Region                                 string
	// TokenExpiration is the lifetime of every token this Keystone issues.
	TokenExpiration time.Duration
	// Dir holds keystone.conf, uwsgi.ini, the key repositories and LogPath.
	Dir     string
	LogPath string

	db, admin string
	cmd       *exec.Cmd
	exited    chan struct{}
	waitErr   error

	mu         sync.Mutex
	adminToken Token
	client     *http.Client
}

// Start runs a Keystone for the test and stops it (and drops its
// database) at cleanup.
func Start(t testing.TB, o Options) *Keystone {
	t.Helper()
	if err := Available(); err != nil {
		if Required() {
			t.Fatalf("%s=1 but %v", EnvRequire, err)
		}
		t.Skip(err)
	}
	began := time.Now()
	ks, err := start(t, o)
	if err != nil {
		t.Fatalf("starting keystone: %v", err)
	}
	t.Logf("keystone %s up in %s (uwsgi pid %d, log %s)", ks.URL, time.Since(began).Round(time.Millisecond), ks.Pid(), ks.LogPath)
	return ks
}

func start(t testing.TB, o Options) (*Keystone, error) {
	if o.Region == "" {
		o.Region = "RegionOne"
	}
	if o.AdminPassword == "" {
		o.AdminPassword = "admin-" + randomHex(8)
	}
	if o.TokenExpiration <= 0 {
		o.TokenExpiration = time.Hour
	}
	if o.TokenExpiration < time.Second {
		o.TokenExpiration = time.Second
	}
	if o.Workers < 1 {
		o.Workers = 1
	}
	if o.AdminURL == "" {
		o.AdminURL = harness.AdminURL()
	}
	if o.Port == 0 {
		p, err := harness.FreePort()
		if err != nil {
			return nil, err
		}
		o.Port = p
	} else if err := harness.CheckPortFree(o.Port); err != nil {
		return nil, err
	}
	dir := t.TempDir()
	ks := &Keystone{
		URL:             fmt.Sprintf("http://127.0.0.1:%d/v3", o.Port),
		AdminUser:       "admin",
		AdminPassword:   o.AdminPassword,
		AdminProject:    "admin",
		Region:          o.Region,
		TokenExpiration: o.TokenExpiration.Truncate(time.Second),
		Dir:             dir,
		LogPath:         filepath.Join(dir, "keystone.log"),
		db:              "keystone_" + dbSuffix(t.Name()),
		admin:           o.AdminURL,
		client:          &http.Client{Timeout: 3 * time.Minute}, // minutes: a loaded machine
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	if err := harness.CreateDatabase(ctx, o.AdminURL, ks.db); err != nil {
		return nil, err
	}
	t.Cleanup(func() {
		if err := ks.stop(); err != nil {
			t.Errorf("stopping keystone: %v", err)
		}
	})
	conn, err := connection(o.AdminURL, ks.db)
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "keystone.conf")
	for _, d := range []string{"fernet-keys", "credential-keys"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			return nil, err
		}
	}
	// password_hash_rounds 4 (bcrypt's minimum): every password
	// authentication costs a few ms instead of ~0.2 s of a shared core.
	text := fmt.Sprintf(`# written by tests/keystoneharness
[DEFAULT]
debug = %t
use_stderr = true
[database]
connection = %s
[token]
provider = fernet
expiration = %d
[fernet_tokens]
key_repository = %s
[credential]
key_repository = %s
[identity]
password_hash_rounds = 4
[cache]
enabled = false
`, o.Debug, conn, int(ks.TokenExpiration/time.Second), filepath.Join(dir, "fernet-keys"), filepath.Join(dir, "credential-keys"))
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		return nil, err
	}
	who, err := user.Current()
	if err != nil {
		return nil, fmt.Errorf("current user: %w", err)
	}
	grp, err := user.LookupGroupId(who.Gid)
	if err != nil {
		return nil, fmt.Errorf("current group: %w", err)
	}
	// the key repositories do not touch the database: set them up while
	// db_sync runs
	steps := [][]string{
		{"db_sync"},
		{"fernet_setup", "--keystone-user", who.Username, "--keystone-group", grp.Name},
		{"credential_setup", "--keystone-user", who.Username, "--keystone-group", grp.Name},
	}
	errs := make(chan error, len(steps))
	for _, s := range steps {
		go func() { errs <- manage(ctx, dir, conf, s...) }()
	}
	var all []error
	for range steps {
		all = append(all, <-errs)
	}
	if err := errors.Join(all...); err != nil {
		return nil, err
	}
	if err := manage(ctx, dir, conf, "bootstrap",
		"--bootstrap-username", ks.AdminUser, "--bootstrap-password", ks.AdminPassword,
		"--bootstrap-project-name", ks.AdminProject, "--bootstrap-role-name", "admin",
		"--bootstrap-service-name", "keystone", "--bootstrap-region-id", ks.Region,
		"--bootstrap-public-url", ks.URL, "--bootstrap-internal-url", ks.URL, "--bootstrap-admin-url", ks.URL); err != nil {
		return nil, err
	}
	ini := fmt.Sprintf(`# written by tests/keystoneharness
[uwsgi]
plugins = python3
http-socket = 127.0.0.1:%d
wsgi-file = %s
env = OS_KEYSTONE_CONFIG_FILES=%s
master = true
processes = %d
threads = 4
enable-threads = true
lazy-apps = true
thunder-lock = true
buffer-size = 65535
die-on-term = true
no-orphans = true
add-header = Connection: close
listen = 100
`, o.Port, keystoneWSGI, conf, o.Workers)
	iniPath := filepath.Join(dir, "uwsgi.ini")
	if err := os.WriteFile(iniPath, []byte(ini), 0o600); err != nil {
		return nil, err
	}
	if err := ks.run(ctx, iniPath, o.Workers); err != nil {
		return nil, err
	}
	return ks, nil
}

// run starts uwsgi and waits until every worker loaded Keystone and GET
// /v3 answers.
func (ks *Keystone) run(ctx context.Context, iniPath string, workers int) error {
	logf, err := os.OpenFile(ks.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(uwsgiBin, "--ini", iniPath)
	cmd.Env, cmd.Dir = debianEnv(ks.Dir), ks.Dir
	cmd.Stdout, cmd.Stderr = logf, logf
	// own group: the workers are waited for and, as a last resort, killed
	// with it; if the test binary dies, uwsgi gets SIGTERM.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting uwsgi: %w", err)
	}
	ks.cmd, ks.exited = cmd, make(chan struct{})
	go func() {
		ks.waitErr = cmd.Wait()
		logf.Close()
		close(ks.exited)
	}()
	// minutes, not seconds: on a loaded 2-core machine loading Keystone
	// has taken over two
	deadline := time.Now().Add(5 * time.Minute)
	for {
		select {
		case <-ks.exited:
			return fmt.Errorf("keystone (uwsgi) exited during startup (%v); %s:\n%s", ks.waitErr, ks.LogPath, proctest.Tail(ks.LogPath, 30))
		default:
		}
		b, _ := os.ReadFile(ks.LogPath)
		if strings.Count(string(b), "WSGI app 0 (mountpoint='') ready") >= workers && ks.answers(ctx) {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("keystone not ready after 5m; %s:\n%s", ks.LogPath, proctest.Tail(ks.LogPath, 30))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (ks *Keystone) answers(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", ks.URL, nil)
	if err != nil {
		return false
	}
	resp, err := ks.client.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Pid is the uwsgi master's process id (0 when not running).
func (ks *Keystone) Pid() int {
	if ks.cmd == nil || ks.cmd.Process == nil {
		return 0
	}
	return ks.cmd.Process.Pid
}

// Log is the end of Keystone's log, for failure messages.
func (ks *Keystone) Log(lines int) string { return proctest.Tail(ks.LogPath, lines) }

// stop sends SIGTERM to uwsgi, waits for its group to be gone (SIGKILL
// to that group after 60 s), then drops the database.
func (ks *Keystone) stop() error {
	var errs []error
	if pid := ks.Pid(); pid != 0 {
		select {
		case <-ks.exited:
		default:
			_ = syscall.Kill(pid, syscall.SIGTERM)
			select {
			case <-ks.exited:
			case <-time.After(60 * time.Second):
				// a loaded machine, not a fault of the code under test
				fmt.Fprintf(os.Stderr, "keystoneharness: uwsgi %d still ran 60s after SIGTERM: killed its group\n", pid)
				_ = syscall.Kill(-pid, syscall.SIGKILL)
				<-ks.exited
			}
		}
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
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := harness.DropDatabase(ctx, ks.admin, ks.db); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// manage runs keystone-manage with the harness's configuration.
func manage(ctx context.Context, dir, conf string, args ...string) error {
	cmd := exec.CommandContext(ctx, keystoneManage, append([]string{"--config-file", conf}, args...)...)
	cmd.Env, cmd.Dir = debianEnv(dir), dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("keystone-manage %s: %w\n%s", args[0], err, lastLines(string(out), 20))
	}
	return nil
}

// debianEnv is a clean environment for Debian's OpenStack Python code: the
// machine's other python3 and any PYTHONPATH or OS_* must not leak in.
func debianEnv(home string) []string {
	return []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + home, "LANG=C.UTF-8", "PYTHONDONTWRITEBYTECODE=1"}
}

// connection is Keystone's SQLAlchemy URL for database db on the server of
// the pgx admin URL (psycopg2 takes the socket directory as ?host=).
func connection(admin, db string) (string, error) {
	u, err := harness.DatabaseURL(admin, db)
	if err != nil {
		return "", err
	}
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok || (scheme != "postgres" && scheme != "postgresql") {
		return "", fmt.Errorf("database url %s: want a postgres:// url", admin)
	}
	return "postgresql+psycopg2://" + rest, nil
}

var nonIdent = regexp.MustCompile(`[^a-z0-9]+`)

// dbSuffix makes a database name unique per test and run.
func dbSuffix(name string) string {
	s := strings.Trim(nonIdent.ReplaceAllString(strings.ToLower(name), "_"), "_")
	if len(s) > 30 {
		s = s[:30]
	}
	return s + "_" + randomHex(4)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func lastLines(s string, n int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}
