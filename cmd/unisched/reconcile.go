package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/unisched/unisched/bridge"
	"github.com/unisched/unisched/bridge/reconcile"
	"github.com/unisched/unisched/internal/config"
	"github.com/unisched/unisched/novaext"
)

const reconcileUsage = `usage: unisched reconcile [--config FILE] [--dry-run] [--json] [--wait DURATION]

Runs one reconciliation now: compares the ledger, Placement's allocations,
Nova's servers (when nova.* configures a client) and the agents' reports,
repairs what diverged (unless --dry-run), stores the run and prints its
report. The reconcile.* keys give the grace period. When serve's reconciler
is running a pass, this waits for it (up to --wait).
`

// runReconcile is `unisched reconcile`.
func runReconcile(ctx context.Context, args []string) error {
	return reconcileCommand(ctx, args, os.Stdout)
}

func reconcileCommand(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("reconcile", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), reconcileUsage) }
	path := fs.String("config", os.Getenv("UNISCHED_CONFIG"), "configuration file (YAML)")
	dry := fs.Bool("dry-run", false, "find and record divergences, repair nothing")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	wait := fs.Duration("wait", 30*time.Second, "how long to wait while another reconciler runs")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	if cfg.Database.URL == "" {
		return errors.New("no database configured: set UNISCHED_DATABASE_URL or database.url")
	}
	log := newLogger(cfg.Log)
	slog.SetDefault(log)
	pool, err := pgxpool.New(ctx, cfg.Database.URL)
	if err != nil {
		return fmt.Errorf("connecting to database: %w", err)
	}
	defer pool.Close()
	engine, err := schedulerEngine(cfg.Scheduler)
	if err != nil {
		return err
	}
	coord := bridge.New(pool, engine, bridge.Options{Logger: log.With("component", "coordinator")})
	rcfg := reconcileConfig(cfg, coord, log)
	rcfg.DryRun = rcfg.DryRun || *dry
	r := reconcile.New(pool, rcfg)
	deadline := time.Now().Add(*wait)
	for {
		rep, err := r.Run(ctx)
		if errors.Is(err, reconcile.ErrNotLeader) && time.Now().Before(deadline) {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(500 * time.Millisecond):
			}
			continue
		}
		if err != nil {
			return err
		}
		if *asJSON {
			enc := json.NewEncoder(out)
			enc.SetIndent("", "  ")
			return enc.Encode(rep)
		}
		printReport(out, rep)
		return nil
	}
}

// reconcileConfig is the reconciler of the configuration: Nova's servers
// when a Nova client is configured, the coordinator's VM claim to record
// missing VMs.
func reconcileConfig(cfg *config.Config, coord *bridge.Coordinator, log *slog.Logger) reconcile.Config {
	rc := reconcile.Config{
		Logger: log.With("component", "reconcile"), Interval: cfg.Reconcile.Interval, Grace: cfg.Reconcile.Grace,
		Retention: cfg.Reconcile.Retention, DryRun: cfg.Reconcile.DryRun,
	}
	if coord != nil {
		rc.CreateVM = coord.VMMoved
	}
	if cfg.Nova.Configured() {
		rc.Servers = &lazyServers{cfg: cfg.Nova}
	}
	return rc
}

// lazyServers builds the Nova client at the first listing and again after
// a failure to build it, so that Keystone being down when serve starts
// costs the runs until it is back (recorded in their reports), not the
// reconciler's view of Nova for good.
type lazyServers struct {
	cfg config.Nova

	mu      sync.Mutex
	servers *novaext.Servers
}

func (l *lazyServers) ListServers(ctx context.Context) ([]reconcile.Server, error) {
	l.mu.Lock()
	s := l.servers
	if s == nil {
		c, err := novaext.NewNovaClient(ctx, l.cfg)
		if err != nil {
			l.mu.Unlock()
			return nil, err
		}
		s = novaext.NewServers(c)
		l.servers = s
	}
	l.mu.Unlock()
	return s.ListServers(ctx)
}

// startReconciler runs serve's periodic reconciliation (when
// reconcile.enabled), its counts exported through reg; nil when it does
// not run.
func startReconciler(ctx context.Context, pool *pgxpool.Pool, cfg *config.Config, svc bridge.Service, reg prometheus.Registerer, lead leadership, log *slog.Logger) *reconcile.Reconciler {
	if !cfg.Reconcile.Enabled {
		return nil
	}
	coord, _ := svc.(*bridge.Coordinator)
	rc := reconcileConfig(cfg, coord, log)
	if reg != nil {
		m, err := reconcile.NewMetrics(reg)
		if err != nil {
			log.Error("reconcile: running without metrics", "error", err)
		}
		rc.Metrics = m
	}
	rc.LeaderRetry, rc.Keepalive, rc.OnLeader = lead.cfg.RetryInterval, lead.keepalive(), lead.observer("reconciler")
	r := reconcile.New(pool, rc)
	if err := r.Start(ctx); err != nil {
		log.Error("reconcile: not started", "error", err)
		return nil
	}
	return r
}

// printReport writes the report for a person: the counts, then one line
// per divergence.
func printReport(w io.Writer, rep *reconcile.Report) {
	mode := ""
	if rep.DryRun {
		mode = " (dry run)"
	}
	fmt.Fprintf(w, "reconciliation run %d%s by %s at %s\n", rep.RunID, mode, rep.Leader, rep.StartedAt.UTC().Format(time.RFC3339))
	servers := "unknown"
	if rep.Stats.Servers >= 0 {
		servers = fmt.Sprint(rep.Stats.Servers)
	}
	fmt.Fprintf(w, "views: %d hosts, %d workloads, %d Placement consumers, Nova servers %s\n",
		rep.Stats.Hosts, rep.Stats.Workloads, rep.Stats.Consumers, servers)
	for _, e := range rep.Errors {
		fmt.Fprintf(w, "error: %s\n", e)
	}
	kinds := slices.Clone(reconcile.Kinds)
	for k := range rep.Counts {
		if !slices.Contains(kinds, k) {
			kinds = append(kinds, k)
		}
	}
	fmt.Fprintf(w, "divergences: %d (repaired %d, failed %d)\n", rep.Total, rep.Repaired, rep.Failed)
	for _, k := range kinds {
		fmt.Fprintf(w, "  %-22s %d\n", k, rep.Counts[k])
	}
	if len(rep.Divergences) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tID\tHOST\tACTION\tRESULT\tDETAIL")
	for _, d := range rep.Divergences {
		id := d.WorkloadID
		if id == "" {
			id = d.ConsumerUUID
		}
		detail := d.Detail
		if d.Error != "" {
			detail += " [" + d.Error + "]"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", d.Kind, id, d.Host, d.Action, d.Result, detail)
	}
	tw.Flush()
}
