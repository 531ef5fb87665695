package harness

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Files of Debian's upstream Placement and uwsgi that the harness runs.
const (
	placementAPI    = "/usr/bin/placement-api"
	placementManage = "/usr/bin/placement-manage"
	uwsgiBin        = "/usr/bin/uwsgi"
	uwsgiPython3    = "/usr/lib/uwsgi/plugins/python3_plugin.so"
)

// ErrNoUpstream says Debian's Placement is not installed; tests skip on it.
var ErrNoUpstream = errors.New("upstream placement is not installed (scripts/install-upstream-placement.sh: placement-api python3-placement uwsgi-core uwsgi-plugin-python3 python3-psycopg2)")

// UpstreamAvailable reports whether the packages are installed.
func UpstreamAvailable() error {
	for _, f := range []string{placementAPI, placementManage, uwsgiBin, uwsgiPython3} {
		if _, err := os.Stat(f); err != nil {
			return fmt.Errorf("%w: %s missing", ErrNoUpstream, f)
		}
	}
	return nil
}

// UpstreamOptions configures one upstream Placement.
type UpstreamOptions struct {
	// Port on 127.0.0.1; 0 picks a free one (and another if it is taken
	// before uwsgi binds it).
	Port    int
	Workers int    // uwsgi processes, 1 thread each (issue 3's anchor: 4)
	DB      string // database to (re)create
	Dir     string // placement.conf, uwsgi.ini and the log go here
	Admin   string // PostgreSQL admin URL (default AdminURL())
}

// StartUpstream creates a fresh database, runs placement-manage db sync
// and starts placement-api under uwsgi (noauth2, legacy policy, the same
// settings as the lab's openstack-lab.sh), returning once every worker
// has loaded the application.
func StartUpstream(ctx context.Context, o UpstreamOptions) (*Server, error) {
	if err := UpstreamAvailable(); err != nil {
		return nil, err
	}
	if o.Workers < 1 {
		o.Workers = 4
	}
	if o.Admin == "" {
		o.Admin = AdminURL()
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	conn, err := sqlalchemyURL(o.Admin, o.DB)
	if err != nil {
		return nil, err
	}
	if err := CreateDatabase(ctx, o.Admin, o.DB); err != nil {
		return nil, err
	}
	s := &Server{Name: "upstream placement", DB: o.DB, LogPath: filepath.Join(o.Dir, "placement.log"), admin: o.Admin}
	cleanup := func(err error) (*Server, error) {
		_ = s.Stop()
		return nil, err
	}
	conf := fmt.Sprintf(`# written by tests/harness
[DEFAULT]
debug = false
[api]
auth_strategy = noauth2
[placement_database]
connection = %s
[oslo_policy]
enforce_scope = false
enforce_new_defaults = false
`, conn)
	if err := os.WriteFile(filepath.Join(o.Dir, "placement.conf"), []byte(conf), 0o644); err != nil {
		return cleanup(err)
	}
	sync := exec.CommandContext(ctx, placementManage, "--config-file", filepath.Join(o.Dir, "placement.conf"), "db", "sync")
	sync.Env = debianEnv("OS_PLACEMENT_CONFIG_DIR=" + o.Dir)
	sync.Dir = "/"
	if out, err := sync.CombinedOutput(); err != nil {
		return cleanup(fmt.Errorf("placement-manage db sync: %w\n%s", err, out))
	}
	iniPath := filepath.Join(o.Dir, "uwsgi.ini")
	// Ready when every worker logged that it loaded the app: GET / alone
	// would answer as soon as the first one is up and the first measured
	// requests would wait for the others' imports.
	var from int64
	launch := func(port int) (*exec.Cmd, error) {
		from = LogSize(s.LogPath)
		// uwsgi settings as the lab runs placement-api: one thread per
		// worker, the WSGI script loaded in every worker, no keep-alive.
		ini := UWSGIConfig(port, placementAPI, "OS_PLACEMENT_CONFIG_DIR="+o.Dir, o.Workers, 1,
			"http-auto-chunked = true\nhttp-chunked-input = true\nhttp-raw-body = true\nwsgi-manage-chunked-input = true\n")
		if err := os.WriteFile(iniPath, []byte(ini), 0o644); err != nil {
			return nil, err
		}
		cmd := exec.Command(uwsgiBin, "--ini", iniPath)
		cmd.Env = debianEnv()
		cmd.Dir = "/"
		return cmd, nil
	}
	if err := startOnPort(ctx, s, o.Port, 3*time.Minute, launch, func(ctx context.Context) bool {
		return UWSGIReady(s.LogPath, from, o.Workers) && Get(ctx, s.URL+"/", http.StatusOK) == nil
	}); err != nil {
		return nil, err
	}
	return s, nil
}

// debianEnv is a clean environment for Debian's OpenStack Python code: the
// machine's other python3 and any PYTHONPATH must not leak in.
func debianEnv(extra ...string) []string {
	env := []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C.UTF-8", "PYTHONDONTWRITEBYTECODE=1"}
	if h := os.Getenv("HOME"); h != "" {
		env[1] = "HOME=" + h
	}
	return append(env, extra...)
}

// sqlalchemyURL turns the pgx admin URL into placement's connection string
// for database db (psycopg2 takes the unix socket directory as ?host=).
func sqlalchemyURL(admin, db string) (string, error) {
	u, err := url.Parse(admin)
	if err != nil {
		return "", fmt.Errorf("parsing database url: %w", err)
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return "", fmt.Errorf("database url %s: want a postgres:// url", admin)
	}
	u.Scheme = "postgresql+psycopg2"
	u.Path = "/" + db
	return u.String(), nil
}

// UWSGIConfig is the uwsgi.ini the harnesses run Debian's WSGI
// applications with (placement-api, keystone-wsgi-public): a master and
// processes workers of threads threads on 127.0.0.1:port, the script
// loaded in every worker, env one KEY=value setting, no keep-alive; extra
// adds lines.
func UWSGIConfig(port int, wsgiFile, env string, processes, threads int, extra string) string {
	return fmt.Sprintf(`# written by tests/harness
[uwsgi]
plugins = python3
http-socket = 127.0.0.1:%d
wsgi-file = %s
env = %s
master = true
processes = %d
threads = %d
enable-threads = true
lazy-apps = true
thunder-lock = true
buffer-size = 65535
add-header = Connection: close
die-on-term = true
no-orphans = true
listen = 100
%s`, port, wsgiFile, env, processes, threads, extra)
}

// LogSize is the size of the log at path (0 when there is none yet): where
// the next run's lines begin.
func LogSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// UWSGIReady reports whether uwsgi logged, after the first from bytes of
// its log, that all its workers loaded the application.
func UWSGIReady(logPath string, from int64, workers int) bool {
	b, _ := os.ReadFile(logPath)
	if from > int64(len(b)) {
		from = 0
	}
	return strings.Count(string(b[from:]), "WSGI app 0 (mountpoint='') ready") >= workers
}
