package reconcile

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/unisched/unisched/bridge/ledger"
	"github.com/unisched/unisched/bridge/scheduler"
	"github.com/unisched/unisched/internal/pg"
)

// Placement consumer types (the bridge's own and Nova's).
const (
	consumerContainer = "CONTAINER"
	consumerInstance  = "INSTANCE"
)

// resentMarker is the status reason of a container whose delete the
// reconciler sent again: still deleting a grace period later, it is reaped.
const resentMarker = "reconcile: delete sent again"

// snapshot is the database's side of a run, read in one transaction.
type snapshot struct {
	now time.Time
	// hostOf maps a ledger host's provider uuid to the host's name;
	// providerOf the other way.
	hostOf, providerOf map[string]string
	hosts              []string
	workloads          []workload
	consumers          []*consumer
	consumerByID       map[string]*consumer
}

type workload struct {
	ledger.Workload
	hasContainer bool
	runtime      string
}

// consumer is a Placement consumer's allocations, by root provider.
type consumer struct {
	uuid       string
	ctype      string
	generation int
	// updated is when the consumer or any of its allocations last changed.
	updated time.Time
	// used[root provider][class] sums the allocations in each tree.
	used  map[string]map[string]int64
	roots []string
}

func readSnapshot(ctx context.Context, pool *pgxpool.Pool) (*snapshot, error) {
	s := &snapshot{hostOf: map[string]string{}, providerOf: map[string]string{}, consumerByID: map[string]*consumer{}}
	err := pg.WithTx(ctx, pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		*s = snapshot{hostOf: map[string]string{}, providerOf: map[string]string{}, consumerByID: map[string]*consumer{}}
		if err := tx.QueryRow(ctx, sqlNow).Scan(&s.now); err != nil {
			return fmt.Errorf("reading the clock: %w", err)
		}
		rows, err := tx.Query(ctx, sqlHosts)
		if err != nil {
			return fmt.Errorf("reading ledger hosts: %w", err)
		}
		var name, prov string
		_, err = pgx.ForEachRow(rows, []any{&name, &prov}, func() error {
			s.hostOf[prov], s.providerOf[name] = name, prov
			s.hosts = append(s.hosts, name)
			return nil
		})
		if err != nil {
			return fmt.Errorf("reading ledger hosts: %w", err)
		}
		lws, err := ledger.ListWorkloads(ctx, tx, ledger.WorkloadFilter{})
		if err != nil {
			return err
		}
		type extra struct {
			ct      bool
			runtime string
		}
		extras := map[string]extra{}
		rows, err = tx.Query(ctx, sqlWorkloadExtras)
		if err != nil {
			return fmt.Errorf("reading workloads' containers: %w", err)
		}
		var id, runtime string
		var ct bool
		_, err = pgx.ForEachRow(rows, []any{&id, &ct, &runtime}, func() error {
			extras[id] = extra{ct, runtime}
			return nil
		})
		if err != nil {
			return fmt.Errorf("reading workloads' containers: %w", err)
		}
		for _, lw := range lws {
			e := extras[lw.ID]
			s.workloads = append(s.workloads, workload{Workload: lw, hasContainer: e.ct, runtime: e.runtime})
		}
		rows, err = tx.Query(ctx, sqlAllocations)
		if err != nil {
			return fmt.Errorf("reading Placement allocations: %w", err)
		}
		var uuid, ctype, rp, root, class string
		var gen, used int32
		var stamp time.Time
		_, err = pgx.ForEachRow(rows, []any{&uuid, &ctype, &gen, &rp, &root, &class, &used, &stamp}, func() error {
			c := s.consumerByID[uuid]
			if c == nil {
				c = &consumer{uuid: uuid, ctype: ctype, generation: int(gen), used: map[string]map[string]int64{}}
				s.consumerByID[uuid] = c
				s.consumers = append(s.consumers, c)
			}
			if stamp.After(c.updated) {
				c.updated = stamp
			}
			if c.used[root] == nil {
				c.used[root] = map[string]int64{}
				c.roots = append(c.roots, root)
			}
			c.used[root][class] += int64(used)
			return nil
		})
		if err != nil {
			return fmt.Errorf("reading Placement allocations: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reconcile: reading the ledger and Placement: %w", err)
	}
	return s, nil
}

// onHost is the first ledger host the consumer's allocations are on.
func (s *snapshot) onHost(c *consumer) (host, provider string) {
	for _, r := range c.roots {
		if h, ok := s.hostOf[r]; ok {
			return h, r
		}
	}
	return "", ""
}

// migrating reports whether any Nova server is being moved: its migration
// consumer (typed MIGRATION, or untyped by an older Nova) then
// legitimately holds the source host's allocation without being a server.
func migrating(servers map[string]Server) bool {
	for _, s := range servers {
		st, ts := strings.ToUpper(s.Status), strings.ToLower(s.TaskState)
		if st == "VERIFY_RESIZE" || st == "RESIZE" || st == "MIGRATING" || strings.Contains(ts, "resiz") || strings.Contains(ts, "migrat") {
			return true
		}
	}
	return false
}

var ledgerClasses = []scheduler.ResourceClass{scheduler.VCPU, scheduler.PCPU, scheduler.MemoryMB, scheduler.DiskGB}

// detect derives the divergences of a snapshot. servers is nil when Nova's
// view is unknown (novaConfigured says whether a source was set at all);
// canCreateVM whether missing VMs can be repaired. Each divergence carries
// its action, or ActionNone with its result and reason already set.
func detect(s *snapshot, servers map[string]Server, novaConfigured bool, grace time.Duration, canCreateVM bool) []Divergence {
	old := func(t time.Time) bool { return s.now.Sub(t) > grace }
	novaUnknown := "Nova's servers are unknown (no servers source configured)"
	if novaConfigured {
		novaUnknown = "Nova's servers could not be listed"
	}
	skip := func(d Divergence, why string) Divergence {
		d.Action, d.Result, d.Error = ActionNone, ResultSkipped, why
		return d
	}
	var out []Divergence
	moving := migrating(servers)
	inLedger := map[string]bool{}
	for _, w := range s.workloads {
		inLedger[w.ID] = true
		c := s.consumerByID[w.ID]
		base := Divergence{WorkloadID: w.ID, Host: w.Host, seenState: string(w.State), seenReason: w.StatusReason}
		if c != nil {
			base.ConsumerUUID = w.ID
			base.seenGeneration = c.generation
		}
		// A VM workload may be a migration's consumer (the ledger follows
		// Nova's allocations, and Nova moves the source host's to a
		// migration uuid), which no server has: while a server is moving,
		// only consumers typed INSTANCE are taken for orphans.
		migration := c != nil && c.ctype != consumerInstance
		_, hasServer := servers[w.ID]
		noServer := w.Kind == scheduler.KindVM && servers != nil && !hasServer && !(migration && moving)
		if w.Host == "" {
			if !old(w.CreatedAt) || (c != nil && !old(c.updated)) {
				continue
			}
			if noServer && old(w.UpdatedAt) {
				// A VM in error (or never placed) that Nova no longer has:
				// nothing will ever delete it but us.
				d := base
				d.Kind, d.Action = KindLedgerOrphan, ActionReleaseDelete
				d.Detail = fmt.Sprintf("VM in state %s holds no host and has no Nova server", w.State)
				out = append(out, d)
				continue
			}
			// Holds nothing by the ledger: an allocation left is a leak.
			if c == nil {
				continue
			}
			host, prov := s.onHost(c)
			d := base
			d.Kind, d.Host, d.ProviderUUID = KindAllocationLeak, host, prov
			d.Detail = fmt.Sprintf("workload in state %s holds no host, but its Placement consumer holds allocations", w.State)
			d.Action = ActionDeleteAllocation
			if w.Kind == scheduler.KindVM {
				switch srv, ok := servers[w.ID]; {
				case servers == nil:
					d = skip(d, novaUnknown)
				case migration && moving:
					d = skip(d, "a Nova server is being moved: its migration consumers are left alone")
				case ok:
					d.Kind, d.ServerID = KindAllocationMismatch, srv.ID
					d = skip(d, fmt.Sprintf("Nova server %s (%s) still holds the allocation the ledger released", srv.ID, srv.Status))
				}
			}
			out = append(out, d)
			continue
		}
		// The coordinator changes the ledger and Placement together, in
		// one transaction, and the snapshot is consistent: only Nova's
		// view (listed before it) and the agents lag behind. The grace
		// period keeps what was created or changed since out of it.
		if !old(w.CreatedAt) || (c != nil && !old(c.updated)) {
			continue
		}
		if noServer {
			d := base
			d.Kind, d.Action = KindLedgerOrphan, ActionReleaseDelete
			d.Detail = fmt.Sprintf("VM in state %s on host %s has no Nova server", w.State, w.Host)
			out = append(out, d)
			continue
		}
		if c == nil {
			d := base
			d.Kind, d.Action = KindLedgerOrphan, ActionReleaseDelete
			d.Detail = fmt.Sprintf("%s in state %s on host %s has no Placement allocation", w.Kind, w.State, w.Host)
			out = append(out, d)
			continue
		}
		if w.State == ledger.StateDeleting && w.Kind == scheduler.KindContainer {
			if !old(w.UpdatedAt) {
				continue // its agent is at it (or reported lately)
			}
			d := base
			d.Kind, d.Action = KindStuckDeleting, ActionResendDelete
			d.Detail = fmt.Sprintf("container deleting on host %s since %s", w.Host, w.UpdatedAt.UTC().Format(time.RFC3339))
			if w.StatusReason == resentMarker {
				d.Action = ActionReap
				d.Detail += "; its delete was sent again and never confirmed"
			}
			out = append(out, d)
			continue
		}
		prov := s.providerOf[w.Host]
		d := base
		d.Kind, d.ProviderUUID = KindAllocationMismatch, prov
		var diffs []string
		for _, r := range c.roots {
			// Another ledger host's tree; a sharing provider (a
			// non-host root: shared storage) is not the ledger's.
			if _, ledgerHost := s.hostOf[r]; ledgerHost && r != prov {
				diffs = append(diffs, fmt.Sprintf("allocation on provider %s (host %q), the ledger has it on %s", r, s.hostOf[r], w.Host))
			}
		}
		for _, rc := range ledgerClasses {
			if got, want := c.used[prov][string(rc)], w.Resources.Amount(rc); got != want {
				diffs = append(diffs, fmt.Sprintf("%s: Placement %d, ledger %d", rc, got, want))
			}
		}
		if len(diffs) > 0 {
			d.Detail = strings.Join(diffs, "; ")
			out = append(out, skip(d, "reported only: which side is right needs an operator"))
			continue
		}
		if w.Kind == scheduler.KindContainer && w.hasContainer && w.State == ledger.StateClaimed && w.runtime == "" && old(w.UpdatedAt) {
			d := base
			d.Kind = KindContainerUnreported
			d.Detail = fmt.Sprintf("container claimed on host %s at %s; its agent never reported it", w.Host, w.UpdatedAt.UTC().Format(time.RFC3339))
			out = append(out, skip(d, "reported only: the agent's convergence creates it"))
		}
	}
	for _, c := range s.consumers {
		if inLedger[c.uuid] {
			continue
		}
		host, prov := s.onHost(c)
		if host == "" || !old(c.updated) {
			continue
		}
		d := Divergence{ConsumerUUID: c.uuid, Host: host, ProviderUUID: prov, seenGeneration: c.generation}
		if srv, ok := servers[c.uuid]; ok {
			d.Kind, d.ServerID, d.WorkloadID = KindMissingVM, srv.ID, c.uuid
			d.Detail = fmt.Sprintf("Nova server %s (%s on %q) holds an allocation on host %s; the ledger has no workload", srv.ID, srv.Status, srv.Host, host)
			d.Action = ActionCreateVM
			if !canCreateVM {
				d = skip(d, "no VM claim code configured to record it")
			}
			out = append(out, d)
			continue
		}
		d.Kind, d.Action = KindAllocationLeak, ActionDeleteAllocation
		ctype := c.ctype
		if ctype == "" {
			ctype = "untyped"
		}
		d.Detail = fmt.Sprintf("%s consumer holds allocations on host %s; no workload, Nova server or container is behind it", ctype, host)
		switch {
		case c.ctype == consumerContainer:
		case servers == nil:
			d = skip(d, novaUnknown)
		case c.ctype != consumerInstance && moving:
			d = skip(d, "a Nova server is being moved: its migration consumers are left alone")
		}
		out = append(out, d)
	}
	slices.SortStableFunc(out, func(a, b Divergence) int {
		return slices.Index(Kinds, a.Kind) - slices.Index(Kinds, b.Kind)
	})
	return out
}
