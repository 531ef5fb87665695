package novaharness

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/unisched/unisched/internal/proctest"
	"github.com/unisched/unisched/tests/harness"
)

// GlancePackages are the Debian packages StartGlance needs (a subset of
// Packages: install.sh and .ci/run install them with the rest).
var GlancePackages = []string{"glance-api", "python3-psycopg2"}

// GlanceOptions configures a standalone Glance.
type GlanceOptions struct {
	// Dir receives configuration, the file store and logs. Default: a new
	// temporary directory, removed by Close when nothing failed.
	Dir string
	// Port on 127.0.0.1; 0 picks a free one (another one if it turns out
	// taken when glance-api binds it).
	Port int
	// AdminURL is the PostgreSQL superuser URL (default harness.AdminURL()).
	AdminURL string
	// Timeout bounds the start (db sync and the first answer; default 5 min).
	Timeout time.Duration
}

// Glance is a real glance-api (Debian's, the same configuration as the
// Nova environment's: no Keystone, so every request is an unauthenticated
// admin context; file store) on a fresh database, for tests that need an
// image service without Nova (imagesec's collect and publish).
type Glance struct {
	// URL is the endpoint without a version: http://127.0.0.1:port.
	URL string
	// Dir holds glance/glance-api.conf, glance/images (the file store,
	// one file per image id) and logs/glance-api.log.
	Dir string
	// Took is how long the start took (db sync and first answer).
	Took time.Duration

	env *Env
}

// StartGlance starts glance-api and returns once GET /versions answers.
// On failure whatever was started is stopped and the database dropped.
func StartGlance(ctx context.Context, opts GlanceOptions) (g *Glance, err error) {
	var missing []string
	for _, p := range GlancePackages {
		if !installed(p) {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("novaharness: Debian packages missing: %s (run tests/novaharness/install.sh as root)", strings.Join(missing, " "))
	}
	if opts.Timeout == 0 {
		opts.Timeout = 5 * time.Minute
	}
	if opts.AdminURL == "" {
		opts.AdminURL = harness.AdminURL()
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	t0 := time.Now()
	e := &Env{opts: Options{AdminURL: opts.AdminURL}, admin: opts.AdminURL, Processes: map[string]*proctest.Process{},
		startedAt: t0, http: &http.Client{Timeout: 60 * time.Second}}
	g = &Glance{env: e}
	defer func() {
		if err != nil {
			_ = e.Close()
			g = nil
		}
	}()
	if e.Dir = opts.Dir; e.Dir == "" {
		if e.Dir, err = os.MkdirTemp("", "glanceharness-"); err != nil {
			return nil, err
		}
		e.tempDir = true
	}
	if err := os.MkdirAll(filepath.Join(e.Dir, "logs"), 0o755); err != nil {
		return nil, err
	}
	if e.ports.glance = opts.Port; e.ports.glance == 0 {
		// picked: startGlance moves it when it turns out taken
		e.ports.picked = true
		if e.ports.glance, err = proctest.FreePort(); err != nil {
			return nil, err
		}
	} else if err := harness.CheckPortFree(e.ports.glance); err != nil {
		return nil, fmt.Errorf("novaharness: %w", err)
	}
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	db := "unisched_glance_" + hex.EncodeToString(suffix)
	if e.glanceConn, err = sqlalchemyURL(e.admin, db); err != nil {
		return nil, err
	}
	if err := e.startGlance(ctx, db); err != nil {
		return nil, err
	}
	g.URL, g.Dir, g.Took = e.GlanceURL, e.Dir, time.Since(t0)
	return g, nil
}

func installed(pkg string) bool {
	b, err := exec.Command("dpkg-query", "-W", "-f=${db:Status-Status}", pkg).Output()
	return err == nil && strings.TrimSpace(string(b)) == "installed"
}

// StoreDir is the file store: one file per active image, named by its id.
func (g *Glance) StoreDir() string { return filepath.Join(g.Dir, "glance", "images") }

// LogPath is glance-api's log (one line per request: method, path, status).
func (g *Glance) LogPath() string { return filepath.Join(g.Dir, "logs", "glance-api.log") }

// Log is the tail of glance-api's log and output, for failure messages.
func (g *Glance) Log(lines int) string {
	out := proctest.Tail(g.LogPath(), lines)
	if p := g.env.Processes["glance-api"]; p != nil {
		out += "\n--- glance-api.out\n" + p.Log(lines)
	}
	return out
}

// Requests counts the lines of glance-api's log that contain every one of
// parts (e.g. "GET /v2/images/<id>/file", " 206 "): its eventlet access
// log writes one line per request.
func (g *Glance) Requests(parts ...string) (int, error) {
	b, err := os.ReadFile(g.LogPath())
	if err != nil {
		return 0, err
	}
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(l, p)
		}
		if ok {
			n++
		}
	}
	return n, nil
}

// AwaitRequests is Requests for a count the caller expects: eventlet
// writes a request's access line only after the response has gone out, so
// a client that has read the whole answer can look before the line exists.
// It polls until want lines match or timeout passes, and returns the last
// count (more than want is returned at once).
func (g *Glance) AwaitRequests(want int, timeout time.Duration, parts ...string) (int, error) {
	deadline := time.Now().Add(timeout)
	for {
		n, err := g.Requests(parts...)
		if err != nil || n >= want || time.Now().After(deadline) {
			return n, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Close stops glance-api (by its pid and group), drops the database and
// removes the directory when StartGlance made it. Safe on nil.
func (g *Glance) Close() error {
	if g == nil || g.env == nil {
		return nil
	}
	err := g.env.Close()
	g.env = nil
	if err != nil {
		return errors.Join(errors.New("novaharness: closing glance"), err)
	}
	return nil
}
