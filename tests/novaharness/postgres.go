package novaharness

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/unisched/unisched/internal/proctest"
)

// Postgres is a PostgreSQL cluster of the environment's own
// (Options.OwnPostgres): initdb'd into a directory of its own, listening
// only on a unix socket there (and its own port number), run as the
// postgres user. Every database of the environment lives in it, so that a
// fault test can restart PostgreSQL without touching the machine's.
type Postgres struct {
	Dir  string // data/, the socket and postgres.log
	Port int
	// AdminURL is the superuser's URL (libpq form, unix socket).
	AdminURL string

	bin      string
	uid, gid uint32
	proc     *proctest.Process
}

// postgresBin is the newest installed server's bin directory.
func postgresBin() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	if len(dirs) == 0 {
		return "", fmt.Errorf("no PostgreSQL server under /usr/lib/postgresql (apt-get install postgresql)")
	}
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(dirs[i]))))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(dirs[j]))))
		return vi < vj
	})
	return filepath.Dir(dirs[len(dirs)-1]), nil
}

// startPostgres initdb's and starts a cluster on port.
func startPostgres(ctx context.Context, port int, logs string) (*Postgres, error) {
	bin, err := postgresBin()
	if err != nil {
		return nil, err
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("own PostgreSQL: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	// its own short directory (socket paths are limited), owned by postgres
	dir, err := os.MkdirTemp("", "novapg")
	if err != nil {
		return nil, err
	}
	p := &Postgres{Dir: dir, Port: port, bin: bin, uid: uint32(uid), gid: uint32(gid)}
	if err := os.Chown(dir, uid, gid); err != nil {
		return nil, err
	}
	initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), "-D", filepath.Join(dir, "data"), "-U", "postgres",
		"--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: p.uid, Gid: p.gid}}
	initdb.Dir = dir
	if out, err := initdb.CombinedOutput(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	conf := fmt.Sprintf("listen_addresses = ''\nunix_socket_directories = '%s'\nport = %d\nmax_connections = 400\n"+
		"fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nshared_buffers = 64MB\n", dir, port)
	f, err := os.OpenFile(filepath.Join(dir, "data", "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	_, err = f.WriteString(conf)
	f.Close()
	if err != nil {
		return nil, err
	}
	q := url.Values{"host": {dir}, "port": {strconv.Itoa(port)}}
	p.AdminURL = "postgres://postgres@/postgres?" + q.Encode()
	if err := p.Start(ctx, logs); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return p, nil
}

// Start runs the server (again, after Stop) and waits until it accepts
// connections.
func (p *Postgres) Start(ctx context.Context, logs string) error {
	cmd := exec.Command(filepath.Join(p.bin, "postgres"), "-D", filepath.Join(p.Dir, "data"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: p.uid, Gid: p.gid}}
	cmd.Dir = p.Dir
	proc, err := proctest.Launch("postgres", filepath.Join(logs, "postgres.log"), cmd)
	if err != nil {
		return err
	}
	p.proc = proc
	return proc.Wait(ctx, 2*time.Minute, func(ctx context.Context) error {
		c, err := pgx.Connect(ctx, p.AdminURL)
		if err != nil {
			return fmt.Errorf("own PostgreSQL not accepting connections: %w", err)
		}
		return c.Close(ctx)
	})
}

// Stop shuts the server down fast (SIGINT: clients are disconnected,
// transactions rolled back, a clean checkpoint).
func (p *Postgres) Stop() error {
	if p == nil || p.proc == nil || p.proc.Exited() {
		return nil
	}
	return p.proc.Signal(syscall.SIGINT, 60*time.Second)
}

// Restart is Stop then Start: every client loses its connections.
func (p *Postgres) Restart(ctx context.Context, logs string) error {
	if err := p.Stop(); err != nil {
		return err
	}
	return p.Start(ctx, logs)
}

// close stops the server and removes its directory.
func (p *Postgres) close() error {
	err := p.Stop()
	if err == nil {
		_ = os.RemoveAll(p.Dir)
	}
	return err
}

// RestartPostgres restarts the environment's own PostgreSQL
// (Options.OwnPostgres).
func (e *Env) RestartPostgres(ctx context.Context) error {
	if e.Postgres == nil {
		return fmt.Errorf("the environment has no PostgreSQL of its own (Options.OwnPostgres)")
	}
	return e.Postgres.Restart(ctx, filepath.Join(e.Dir, "logs"))
}
