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
	// Port on 127.0.0.1; 0 picks a free one (and another while the one
	// picked turns out taken when uwsgi binds it).
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

	db   string
	proc *proctest.Process

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
	if o.Port != 0 {
		if err := harness.CheckPortFree(o.Port); err != nil {
			return nil, err
		}
	}
	dir := t.TempDir()
	ks := &Keystone{
		AdminUser:       "admin",
		AdminPassword:   o.AdminPassword,
		AdminProject:    "admin",
		Region:          o.Region,
		TokenExpiration: o.TokenExpiration.Truncate(time.Second),
		Dir:             dir,
		LogPath:         filepath.Join(dir, "keystone.log"),
		client:          &http.Client{Timeout: 3 * time.Minute}, // minutes: a loaded machine
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	ks.db, _ = harness.TestDatabase(ctx, t, o.AdminURL, "keystone_"+testName(t.Name()))
	t.Cleanup(func() {
		// SIGKILL to its group after a minute: a loaded machine, not a
		// fault of the code under test
		if err := ks.proc.Stop(60 * time.Second); err != nil {
			t.Logf("stopping keystone: %v", err)
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
	// The port is in the catalog bootstrap writes (a second bootstrap
	// updates the endpoints) and in uwsgi.ini: both again on a new port.
	run := func(port int) error {
		ks.URL = fmt.Sprintf("http://127.0.0.1:%d/v3", port)
		if err := manage(ctx, dir, conf, "bootstrap",
			"--bootstrap-username", ks.AdminUser, "--bootstrap-password", ks.AdminPassword,
			"--bootstrap-project-name", ks.AdminProject, "--bootstrap-role-name", "admin",
			"--bootstrap-service-name", "keystone", "--bootstrap-region-id", ks.Region,
			"--bootstrap-public-url", ks.URL, "--bootstrap-internal-url", ks.URL, "--bootstrap-admin-url", ks.URL); err != nil {
			return err
		}
		return ks.run(ctx, port, conf, o.Workers)
	}
	if o.Port != 0 {
		err = run(o.Port)
	} else {
		err = proctest.RetryPorts(1, func(ps []int) error { return run(ps[0]) })
	}
	if err != nil {
		return nil, err
	}
	return ks, nil
}

// run starts uwsgi on port and waits until every worker loaded Keystone
// and GET /v3 answers.
func (ks *Keystone) run(ctx context.Context, port int, conf string, workers int) error {
	iniPath := filepath.Join(ks.Dir, "uwsgi.ini")
	ini := harness.UWSGIConfig(port, keystoneWSGI, "OS_KEYSTONE_CONFIG_FILES="+conf, workers, 4, "")
	if err := os.WriteFile(iniPath, []byte(ini), 0o600); err != nil {
		return err
	}
	cmd := exec.Command(uwsgiBin, "--ini", iniPath)
	cmd.Env, cmd.Dir = debianEnv(ks.Dir), ks.Dir
	from := harness.LogSize(ks.LogPath)
	// minutes, not seconds: on a loaded 2-core machine loading Keystone
	// has taken over two
	p, err := proctest.Start(ctx, "keystone (uwsgi)", ks.LogPath, cmd, 5*time.Minute, func(ctx context.Context) error {
		if !harness.UWSGIReady(ks.LogPath, from, workers) {
			return errors.New("workers still loading keystone")
		}
		return ks.answers(ctx)
	})
	if err != nil {
		return err
	}
	ks.proc = p
	return nil
}

func (ks *Keystone) answers(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", ks.URL, nil)
	if err != nil {
		return err
	}
	resp, err := ks.client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", ks.URL, resp.Status)
	}
	return nil
}

// Pid is the uwsgi master's process id (0 when not running).
func (ks *Keystone) Pid() int { return ks.proc.Pid() }

// Log is the end of Keystone's log, for failure messages.
func (ks *Keystone) Log(lines int) string { return proctest.Tail(ks.LogPath, lines) }

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

// testName is the test's name as part of a database name.
func testName(name string) string {
	s := strings.Trim(nonIdent.ReplaceAllString(strings.ToLower(name), "_"), "_")
	if len(s) > 30 {
		s = s[:30]
	}
	return s
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
