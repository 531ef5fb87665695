// Command unisched is the unified scheduling coordinator: `serve` runs the
// APIs, `migrate` brings the database schema up to date.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/unisched/unisched/bridge"
	"github.com/unisched/unisched/bridge/novahook"
	"github.com/unisched/unisched/bridge/outbox"
	"github.com/unisched/unisched/internal/config"
	"github.com/unisched/unisched/internal/metrics"
	"github.com/unisched/unisched/internal/openstack"
	"github.com/unisched/unisched/internal/sdnotify"
	"github.com/unisched/unisched/placement"
	"github.com/unisched/unisched/placement/policy"
	"github.com/unisched/unisched/placement/store"
)

// Version is set at build time with -ldflags "-X main.Version=...".
var Version = "dev"

const usage = `usage: unisched <command> [--config FILE]

commands:
  serve     run the Placement API, the container API (Zun, /v1/workloads, agents)
            and, with nova_proxy.listen set, the Nova API proxy
  migrate   apply database migrations (migrate status|down N|force N|repair: migrate help)
  reconcile run one reconciliation and print its report (--dry-run repairs nothing)
  config    print the annotated sample (config sample --format yaml|ini) or check a file
  catalog   print the openstack commands registering the services in Keystone's catalog
  version   print the version

Configuration: etc/unisched.yaml keys, each overridable as UNISCHED_<SECTION>_<KEY>
(e.g. UNISCHED_DATABASE_URL, UNISCHED_PLACEMENT_LISTEN, UNISCHED_CONTAINER_API_LISTEN,
UNISCHED_NOVA_PROXY_LISTEN).
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	cmd, args := os.Args[1], os.Args[2:]
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch cmd {
	case "serve":
		err = runServe(ctx, args)
	case "migrate":
		err = runMigrate(ctx, args, os.Stdout) // cmd/unisched/migrate.go
	case "agent":
		err = runAgent(ctx, args) // cmd/unisched/agent.go
	case "reconcile":
		err = runReconcile(ctx, args) // cmd/unisched/reconcile.go
	case "images":
		err = runImages(ctx, args) // cmd/unisched/images.go
	case "config":
		err = runConfig(args, os.Stdout) // cmd/unisched/config.go
	case "catalog":
		err = runCatalog(args, os.Stdout) // cmd/unisched/keystone.go
	case "version":
		fmt.Println("unisched", Version)
	case "-h", "--help", "help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "unknown command %q\n\n%s", cmd, usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "unisched:", err)
		os.Exit(1)
	}
}

func loadConfig(name string, args []string) (*config.Config, []string, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	path := fs.String("config", os.Getenv("UNISCHED_CONFIG"), "configuration file (YAML, or oslo-style INI for .conf/.ini)")
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return nil, nil, err
	}
	if cfg.Database.URL == "" {
		return nil, nil, errors.New("no database configured: set UNISCHED_DATABASE_URL or database.url")
	}
	return cfg, fs.Args(), nil
}

func newLogger(c config.Log) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.Level)); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(os.Stderr, opts)
	if strings.EqualFold(c.Format, "json") {
		h = slog.NewJSONHandler(os.Stderr, opts)
	}
	// every line logged with a request's context names the request
	return slog.New(openstack.ContextHandler(h))
}

// poolConfig is the pool serve opens: database.url's settings, then
// max_conns and min_idle_conns. `config check` builds it too, so that it
// refuses what serve would.
func poolConfig(db config.Database) (*pgxpool.Config, error) {
	c, err := pgxpool.ParseConfig(db.URL)
	if err != nil {
		return nil, fmt.Errorf("parsing database url: %w", err)
	}
	if db.MaxConns > 0 {
		c.MaxConns = db.MaxConns
	}
	if db.MinIdleConns < 0 || db.MinIdleConns > c.MaxConns {
		return nil, fmt.Errorf("database.min_idle_conns %d must be between 0 and database.max_conns (%d)", db.MinIdleConns, c.MaxConns)
	}
	c.MinIdleConns = db.MinIdleConns
	return c, nil
}

func runServe(ctx context.Context, args []string) error {
	cfg, _, err := loadConfig("serve", args)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log)
	slog.SetDefault(log)
	// Built before anything starts, so that a typo in a plugin name stops
	// serve at start rather than at the first placement.
	engine, err := schedulerEngine(cfg.Scheduler)
	if err != nil {
		return err
	}

	if err := prepareSchema(ctx, cfg.Database, log); err != nil { // cmd/unisched/migrate.go
		return err
	}
	poolCfg, err := poolConfig(cfg.Database)
	if err != nil {
		return err
	}
	pool, err := pgxpool.NewWithConfig(ctx, poolCfg)
	if err != nil {
		return fmt.Errorf("connecting to database: %w", err)
	}
	defer pool.Close()
	if err := store.EnsureStandard(ctx, pool); err != nil {
		return err
	}

	mode, err := policy.ParseMode(cfg.Placement.Policy)
	if err != nil {
		return err
	}
	settings := placement.Settings{Policy: policy.New(mode)}
	if len(cfg.Placement.CORSAllowedOrigins) > 0 {
		settings.CORS = &placement.CORS{AllowedOrigins: cfg.Placement.CORSAllowedOrigins, AllowHeaders: cfg.Placement.CORSAllowHeaders}
	}
	auth, err := newServeAuth(cfg, log) // cmd/unisched/keystone.go
	if err != nil {
		return err
	}
	if cfg.Test.Reset {
		log.Warn("test reset endpoint enabled: POST /_test/reset empties the database")
	}
	// One registry for serve, passed down (no global one), served at
	// /metrics on every listener.
	reg := metrics.NewRegistry()
	// The coordinator is built before Placement: Nova's candidates and
	// claims go through it (nova.candidates) when the container side runs.
	var parts bridgeParts
	var hooks placement.Hooks
	if cfg.ContainerAPI.Enabled() {
		mode, err := bridge.ParseCandidatesMode(cfg.Nova.Candidates)
		if err != nil {
			return err
		}
		if parts, err = newBridge(pool, engine, cfg.Notifications.Enabled(), reg, log); err != nil {
			return err
		}
		hooks = novahook.New(parts.coord, mode)
	}
	api := placement.New(placement.Config{
		Auth:                        auth.users,
		Hooks:                       hooks,
		Pool:                        pool,
		Settings:                    settings,
		IncompleteConsumerProjectID: cfg.Placement.IncompleteConsumerProjectID,
		IncompleteConsumerUserID:    cfg.Placement.IncompleteConsumerUserID,
		AllocationConflictRetries:   cfg.Placement.AllocationConflictRetries,
		MaxBodyBytes:                cfg.Placement.MaxBodyBytes,
		TestReset:                   cfg.Test.Reset,
		Logger:                      log,
	})
	api.Start(ctx)
	defer api.Stop()

	// the container side (coordinator, its listener and the outbox relay)
	// runs unless container_api.listen is off: then serve is placement
	// alone, as the Placement conformance and benchmark harnesses run it.
	servers := []*namedServer{{name: "placement API", addr: cfg.Placement.Listen, handler: api}}
	lead := newLeadership(cfg.Leader, reg, log) // cmd/unisched/leader.go
	if cfg.ContainerAPI.Enabled() {
		np, err := setupNotify(cfg, &parts, reg)
		if err != nil {
			return err
		}
		if np.publisher != nil {
			defer np.publisher.Close()
		}
		stopConsumer, err := startNovaConsumer(ctx, cfg, parts.coord, reg, log)
		if err != nil {
			return err
		}
		defer stopConsumer()
		// imagesec's /v1/images and its job runner share the listener
		runner, handler, err := startImagesec(ctx, pool, cfg, log, reg, lead, auth.users, containerHandler(parts, pool, cfg, auth, log))
		if err != nil {
			return err
		}
		defer runner.Stop()
		servers = append(servers, &namedServer{name: "container API", addr: cfg.ContainerAPI.Listen, handler: handler})
	}
	if cfg.NovaProxy.Enabled() {
		proxy, err := newNovaProxy(cfg.NovaProxy, pool, auth.tokens, log) // cmd/unisched/novaproxy.go
		if err != nil {
			return err
		}
		defer proxy.Close()
		servers = append(servers, &namedServer{name: "Nova API proxy", addr: cfg.NovaProxy.Listen, handler: proxy})
		trimmer := startIntentTrimmer(ctx, pool, cfg.NovaProxy.IntentRetention, log)
		defer trimmer.Stop()
	}
	var relay *outbox.Relay
	if ds, err := dashboardServer(cfg.Dashboard, pool, reg, parts.deliverer != nil, &relay, log); err != nil { // cmd/unisched/dashboard.go
		return err
	} else if ds != nil {
		servers = append(servers, ds)
	}
	// probes, /metrics, request metrics and logs on every listener
	obs, err := newObservability(cfg, pool, reg, api, log) // cmd/unisched/health.go
	if err != nil {
		return err
	}
	for _, s := range servers {
		s.handler = obs.wrap(s.name, s.handler)
	}
	for _, s := range servers {
		if err := s.listen(); err != nil {
			closeAll(servers)
			return err
		}
	}
	if parts.deliverer != nil {
		if relay, err = startRelay(ctx, pool, parts, cfg.ContainerAPI.RelayParallelism, lead, log); err != nil {
			closeAll(servers)
			return err
		}
	}
	if parts.svc != nil {
		if rec := startReconciler(ctx, pool, cfg, parts.svc, reg, lead, log); rec != nil { // cmd/unisched/reconcile.go
			defer rec.Stop()
		}
	}
	errc := make(chan error, len(servers))
	for _, s := range servers {
		go func() {
			log.Info(s.name+" listening", "addr", s.ln.Addr().String())
			if err := s.serve(); err != nil {
				errc <- fmt.Errorf("serving %s: %w", s.name, err)
			}
		}()
	}
	notifySystemd(log, sdnotify.Ready) // cmd/unisched/sdnotify.go
	var serveErr error
	select {
	case serveErr = <-errc:
	case <-ctx.Done():
	}
	notifySystemd(log, sdnotify.Stopping)
	// both listeners stop taking requests and finish the ones in flight;
	// then the relay stops (events written meanwhile wait in the outbox
	// for the next leader).
	obs.health.Drain()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	shutdownErr := shutdownAll(shutdownCtx, servers)
	if relay != nil {
		relay.Stop()
	}
	if serveErr != nil {
		return serveErr
	}
	return shutdownErr
}

// namedServer is one of serve's listeners.
type namedServer struct {
	name    string
	addr    string
	handler http.Handler
	ln      net.Listener
	srv     *http.Server
}

func (s *namedServer) listen() error {
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("%s: listening on %s: %w", s.name, s.addr, err)
	}
	s.ln = ln
	s.srv = &http.Server{Handler: s.handler, ReadHeaderTimeout: 10 * time.Second}
	return nil
}

// serve runs until Shutdown; requests Go refuses before any handler still
// get the OpenStack error body.
func (s *namedServer) serve() error {
	err := s.srv.Serve(openstack.ProtocolErrorListener(s.ln, nil))
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

func closeAll(servers []*namedServer) {
	for _, s := range servers {
		if s.ln != nil {
			s.ln.Close()
		}
	}
}

// shutdownAll shuts the listeners down together, so one slow request on
// either does not eat the other's grace period.
func shutdownAll(ctx context.Context, servers []*namedServer) error {
	errs := make(chan error, len(servers))
	for _, s := range servers {
		go func() {
			if s.srv == nil {
				errs <- nil
				return
			}
			if err := s.srv.Shutdown(ctx); err != nil {
				errs <- fmt.Errorf("shutting down %s: %w", s.name, err)
				return
			}
			errs <- nil
		}()
	}
	var all []error
	for range servers {
		if err := <-errs; err != nil {
			all = append(all, err)
		}
	}
	return errors.Join(all...)
}
