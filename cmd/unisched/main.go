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

	"github.com/unisched/unisched/internal/config"
	"github.com/unisched/unisched/internal/openstack"
	"github.com/unisched/unisched/migrations"
	"github.com/unisched/unisched/placement"
	"github.com/unisched/unisched/placement/policy"
	"github.com/unisched/unisched/placement/store"
)

// Version is set at build time with -ldflags "-X main.Version=...".
var Version = "dev"

const usage = `usage: unisched <command> [--config FILE]

commands:
  serve     run the Placement API (and, later, the other APIs)
  migrate   apply database migrations (migrate down reverts them all)
  version   print the version

Configuration: etc/unisched.yaml keys, each overridable as UNISCHED_<SECTION>_<KEY>
(e.g. UNISCHED_DATABASE_URL, UNISCHED_PLACEMENT_LISTEN).
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
		err = runMigrate(args)
	case "agent":
		err = runAgent(ctx, args) // cmd/unisched/agent.go
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
	path := fs.String("config", os.Getenv("UNISCHED_CONFIG"), "configuration file (YAML)")
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
	if strings.EqualFold(c.Format, "json") {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

func runMigrate(args []string) error {
	cfg, rest, err := loadConfig("migrate", args)
	if err != nil {
		return err
	}
	if len(rest) > 0 && rest[0] == "down" {
		return migrations.Down(cfg.Database.URL)
	}
	if err := migrations.Up(cfg.Database.URL); err != nil {
		return err
	}
	v, _, err := migrations.Version(cfg.Database.URL)
	if err != nil {
		return err
	}
	fmt.Println("database at migration", v)
	return nil
}

func runServe(ctx context.Context, args []string) error {
	cfg, _, err := loadConfig("serve", args)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log)
	slog.SetDefault(log)

	if cfg.Database.Migrate {
		if err := migrations.Up(cfg.Database.URL); err != nil {
			return err
		}
	}
	poolCfg, err := pgxpool.ParseConfig(cfg.Database.URL)
	if err != nil {
		return fmt.Errorf("parsing database url: %w", err)
	}
	if cfg.Database.MaxConns > 0 {
		poolCfg.MaxConns = cfg.Database.MaxConns
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
	if cfg.Placement.AuthStrategy != "noauth2" {
		return fmt.Errorf("placement.auth_strategy %q is not supported yet (noauth2 only)", cfg.Placement.AuthStrategy)
	}
	if cfg.Test.Reset {
		log.Warn("test reset endpoint enabled: POST /_test/reset empties the database")
	}
	api := placement.New(placement.Config{
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
	srv := &http.Server{
		Addr:              cfg.Placement.Listen,
		Handler:           api,
		ReadHeaderTimeout: 10 * time.Second,
	}
	ln, err := net.Listen("tcp", cfg.Placement.Listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", cfg.Placement.Listen, err)
	}
	errc := make(chan error, 1)
	go func() {
		log.Info("placement API listening", "addr", ln.Addr().String())
		// requests Go refuses before any handler still get Placement's error body
		errc <- srv.Serve(openstack.ProtocolErrorListener(ln, nil))
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("serving placement API: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(shutdownCtx)
}
