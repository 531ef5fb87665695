// Package reconcile compares the four views of what runs where — the
// bridge's ledger, Placement's allocations, Nova's servers and the agents'
// reports of their Docker containers — and repairs what a crash, a lost
// message or an operator's hand left out of line (ARCHITECTURE.md section
// 6). The coordinator writes the ledger, Placement and its outbox in one
// transaction, so the views part only where a manager acted without it (a
// Nova server deleted while serve was down, an allocation written straight
// through the Placement API, an agent that never answered a delete).
//
// A run reads one consistent snapshot of the database (and Nova's servers
// just before it), derives the divergences, then repairs each one in its
// own transaction that first re-checks, under the row locks, that the
// divergence is still what the snapshot showed: a repair never undoes work
// that moved on meanwhile, and running it twice changes nothing more.
// Work younger than the grace period is in flight and left alone.
//
// Only one reconciler of a database runs at a time (a PostgreSQL advisory
// lock, taken per run on its own connection), and of serve's replicas only
// the leader runs periodic ones: the one holding a second, session-long
// advisory lock (internal/pg.Leader, as the outbox relay's leader does). Every run is stored with its divergences and what was
// done about them (GET /v1/reconciliation, `unisched reconcile`).
package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/unisched/unisched/internal/pg"
)

// Kinds of divergence.
const (
	// KindAllocationLeak: a Placement consumer holds resources on a ledger
	// host though no ledger workload holds them, no Nova server and no
	// container is behind it. Repair: delete its allocations.
	KindAllocationLeak = "allocation_leak"
	// KindLedgerOrphan: a ledger workload holds a host though its
	// Placement allocation is gone, or it is a VM Nova has no server for.
	// Repair: release and delete it (a container's agent is told to
	// remove it).
	KindLedgerOrphan = "ledger_orphan"
	// KindMissingVM: a Nova server holds an allocation on a ledger host
	// but the ledger has no workload for it. Repair: create the VM
	// workload from its allocation (Config.CreateVM).
	KindMissingVM = "missing_vm"
	// KindStuckDeleting: a container has been deleting past the grace
	// period (its agent never confirmed). Repair: send the delete again;
	// still deleting a grace period later, it is reaped (released and
	// forgotten; the agent's convergence removes what is left).
	KindStuckDeleting = "stuck_deleting"
	// KindAllocationMismatch: the ledger's resources of a workload differ
	// from its Placement allocation (amounts, or another host). Reported
	// only: which side is right needs a person.
	KindAllocationMismatch = "allocation_mismatch"
	// KindContainerUnreported: a container claimed a host past the grace
	// period and its agent never reported it. Reported only.
	KindContainerUnreported = "container_unreported"
)

// Kinds lists every kind, in the order reports show them.
var Kinds = []string{KindAllocationLeak, KindLedgerOrphan, KindMissingVM, KindStuckDeleting,
	KindAllocationMismatch, KindContainerUnreported}

// Actions.
const (
	ActionDeleteAllocation = "delete_allocation"
	ActionReleaseDelete    = "release_delete"
	ActionCreateVM         = "create_vm"
	ActionResendDelete     = "resend_delete"
	ActionReap             = "reap"
	ActionNone             = "none"
)

// Results.
const (
	ResultRepaired = "repaired"
	ResultDryRun   = "dry_run"
	// ResultSkipped: not repaired on purpose (report-only kind, a source
	// it depends on failed, no code to repair it); Error says why.
	ResultSkipped = "skipped"
	// ResultResolved: gone or changed by the time of the repair (someone
	// else fixed it, or the work moved on): nothing done.
	ResultResolved = "resolved"
	ResultFailed   = "failed"
)

// DefaultLockKey is the advisory lock (one-bigint form) the reconcilers of
// one database compete for.
const DefaultLockKey int64 = 0x756e6973_72636e6c // "unisrcnl"

// DefaultLeaderLockKey is the session advisory lock whose holder, among
// serve's replicas, runs the periodic reconciliations.
const DefaultLeaderLockKey int64 = 0x756e6973_72636c64 // "unisrcld"

// ErrNotLeader: another reconciler holds the lock; this run did nothing.
var ErrNotLeader = errors.New("another reconciler is running")

// ErrNotFound: no stored run has the id (or no run finished yet).
var ErrNotFound = errors.New("reconciliation run not found")

// Server is one of Nova's servers as the reconciler needs it.
type Server struct {
	ID string
	// Host is the compute host (OS-EXT-SRV-ATTR:host); "" before one.
	Host      string
	Status    string
	TaskState string
}

// Servers lists every Nova server of every project (all_tenants),
// deleted ones excluded. novaext implements it over Nova's API.
type Servers interface {
	ListServers(ctx context.Context) ([]Server, error)
}

// Config tunes a Reconciler. Zero fields take the defaults in parentheses.
type Config struct {
	Logger *slog.Logger
	// Interval between periodic runs (60s).
	Interval time.Duration
	// Grace is how old a divergence must be before it is repaired (2m):
	// younger ones are work in flight (a claim being written, a server
	// booting, an agent removing a container).
	Grace time.Duration
	// Retention is how long stored runs are kept (7 days).
	Retention time.Duration
	// DryRun finds and stores divergences but repairs nothing.
	DryRun bool
	// Servers is Nova's view; nil leaves Nova out: nothing whose repair
	// depends on knowing Nova's servers (VM orphans, leaks of Nova
	// consumers, missing VMs) is repaired.
	Servers Servers
	// ServersTimeout bounds the listing of Nova's servers (30s).
	ServersTimeout time.Duration
	// CreateVM records a Nova server's VM workload from its Placement
	// allocations (the coordinator's VM claim); nil leaves missing VMs
	// reported but not repaired.
	CreateVM func(ctx context.Context, id string) error
	// Metrics, when set, exports each run's counts (NewMetrics).
	Metrics *Metrics
	// LockKey is the advisory lock a run holds (DefaultLockKey).
	LockKey int64
	// LeaderLockKey is the session advisory lock whose holder runs the
	// periodic reconciliations (DefaultLeaderLockKey); LeaderRetry is how
	// often a standby tries it (1s), Keepalive how soon a vanished
	// leader's session ends; OnLeader, when set, hears of this replica
	// starting (true) and stopping (false) to lead.
	LeaderLockKey int64
	LeaderRetry   time.Duration
	Keepalive     pg.Keepalive
	OnLeader      func(leading bool)
	// Leader names this reconciler in stored runs (host name and pid).
	Leader string
}

func (c *Config) setDefaults() {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.Interval, time.Minute)
	def(&c.Grace, 2*time.Minute)
	def(&c.Retention, 7*24*time.Hour)
	def(&c.ServersTimeout, 30*time.Second)
	if c.LockKey == 0 {
		c.LockKey = DefaultLockKey
	}
	if c.LeaderLockKey == 0 {
		c.LeaderLockKey = DefaultLeaderLockKey
	}
	if c.Leader == "" {
		h, _ := os.Hostname()
		c.Leader = fmt.Sprintf("%s:%d", h, os.Getpid())
	}
}

// Reconciler runs reconciliations over one database.
type Reconciler struct {
	pool *pgxpool.Pool
	cfg  Config

	mu      sync.Mutex
	elector *pg.Leader
	cancel  context.CancelFunc
	done    chan struct{}
}

// New makes a reconciler; Run runs once, Start periodically.
func New(pool *pgxpool.Pool, cfg Config) *Reconciler {
	cfg.setDefaults()
	return &Reconciler{pool: pool, cfg: cfg}
}

// Start campaigns for the reconciler's lead (the session advisory lock
// LeaderLockKey, internal/pg.Leader) in the background, until ctx ends or
// Stop is called: of the replicas of one database, only the one holding it
// runs periodic reconciliations, one as soon as it leads and then every
// Interval. Each run still takes the run lock (LockKey), which keeps a
// `unisched reconcile` from running alongside.
func (r *Reconciler) Start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done != nil {
		return errors.New("reconciler: already started")
	}
	elector, err := pg.NewLeader(r.pool, pg.LeaderConfig{Role: "reconcile", Key: r.cfg.LeaderLockKey,
		Retry: r.cfg.LeaderRetry, Keepalive: r.cfg.Keepalive, Logger: r.cfg.Logger, OnChange: r.cfg.OnLeader})
	if err != nil {
		return err
	}
	r.elector = elector
	ctx, r.cancel = context.WithCancel(ctx)
	r.done = make(chan struct{})
	go func() {
		defer close(r.done)
		elector.Run(ctx, r.lead)
	}()
	return nil
}

// IsLeader reports whether this reconciler holds the lead (false before
// Start).
func (r *Reconciler) IsLeader() bool {
	r.mu.Lock()
	e := r.elector
	r.mu.Unlock()
	return e != nil && e.Leading()
}

// lead runs reconciliations every Interval for as long as the leader's
// connection lives.
func (r *Reconciler) lead(ctx context.Context, conn *pgx.Conn) error {
	for {
		_, err := r.Run(ctx)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, ErrNotLeader):
			r.cfg.Logger.Debug("reconcile: another reconciliation is running (unisched reconcile); skipped")
		case err != nil:
			r.cfg.Logger.Error("reconcile: run failed", "error", err)
		}
		if err := pg.Hold(ctx, conn, r.cfg.Interval); err != nil {
			return err
		}
	}
}

// Stop ends the periodic runs and waits for the one in progress.
func (r *Reconciler) Stop() {
	r.mu.Lock()
	cancel, done := r.cancel, r.done
	r.mu.Unlock()
	if done == nil {
		return
	}
	cancel()
	<-done
}
