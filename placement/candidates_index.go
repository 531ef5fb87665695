package placement

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/unisched/unisched/internal/pg"
	"github.com/unisched/unisched/placement/candidates"
	"github.com/unisched/unisched/placement/store"
)

// candidatesIndex keeps the allocation-candidates snapshot current with the
// database, on every replica, without a leader. It remembers the PostgreSQL
// snapshot S it is current as of; catching up reads, under a newer snapshot
// S2, the change-feed rows of the transactions visible in S2 but not in S
// (placement_changes, written by triggers), reloads just those providers in
// the same transaction and applies them to the in-memory snapshot
// (candidates.Snapshot.Apply), then remembers S2. Snapshots rather than a
// sequence make this exact under out-of-order commits.
//
// Every request catches up before it answers, so it sees every commit that
// happened before it started, its own replica's or another's. Catch-ups are
// single-flight: requests arriving while one runs share the next one (which
// starts after they arrived); a background poller keeps an idle index
// current so requests usually find nothing to do. Anything Apply cannot
// take (a trimmed feed, a reset, renumbered names) reloads everything.
type candidatesIndex struct {
	db      *pgxpool.Pool
	log     *slog.Logger
	metrics *placementMetrics

	state atomic.Pointer[indexState]
	// full makes the next catch-up reload everything.
	full atomic.Bool
	// busy: the last catch-up found changes, so the next likely will.
	busy atomic.Bool

	mu      sync.Mutex // guards running and queued
	running *flight
	queued  *flight

	// base is the context catch-ups run under; Start replaces it.
	base      atomic.Pointer[context.Context]
	lastStart atomic.Int64 // unix nanoseconds of the last catch-up's start

	catchUps, reloads, applied atomic.Int64

	// Background timings (the index* constants; tests shorten them).
	pollEvery, trimEvery, retention time.Duration

	stop   func()
	wg     sync.WaitGroup // the background loops
	flying sync.WaitGroup // catch-up goroutines
}

type indexState struct {
	snap   *candidates.Snapshot
	pgSnap string
}

// flight is one catch-up and the requests waiting for it.
type flight struct {
	done chan struct{}
	err  error
}

// Tuning of the index's background work.
const (
	indexPollInterval    = 50 * time.Millisecond
	indexTrimInterval    = 10 * time.Second
	indexRetention       = time.Minute
	indexCatchUpDeadline = 2 * time.Minute
	// indexCompactSlack empty provider slots are tolerated beyond as many
	// as there are providers.
	indexCompactSlack = 4096
)

func newCandidatesIndex(db *pgxpool.Pool, log *slog.Logger) *candidatesIndex {
	ix := &candidatesIndex{db: db, log: log,
		pollEvery: indexPollInterval, trimEvery: indexTrimInterval, retention: indexRetention}
	ctx := context.Background()
	ix.base.Store(&ctx)
	return ix
}

// get returns a snapshot that includes every transaction committed before
// the call.
func (ix *candidatesIndex) get(ctx context.Context) (*candidates.Snapshot, error) {
	f := ix.join()
	select {
	case <-f.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if f.err != nil {
		return nil, f.err
	}
	return ix.state.Load().snap, nil
}

// join returns a catch-up that starts no earlier than now.
func (ix *candidatesIndex) join() *flight {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.queued != nil {
		return ix.queued
	}
	f := &flight{done: make(chan struct{})}
	if ix.running == nil {
		ix.running = f
		ix.flying.Add(1)
		go ix.fly(f)
	} else {
		ix.queued = f
	}
	return f
}

// fly runs f, then whatever was queued meanwhile.
func (ix *candidatesIndex) fly(f *flight) {
	defer ix.flying.Done()
	for f != nil {
		f.err = ix.catchUp()
		ix.mu.Lock()
		next := ix.queued
		ix.queued, ix.running = nil, next
		ix.mu.Unlock()
		close(f.done)
		f = next
	}
}

// reset makes the next catch-up reload everything (the test reset; the
// truncation's feed row does the same for other replicas).
func (ix *candidatesIndex) reset() { ix.full.Store(true) }

func (ix *candidatesIndex) catchUp() error {
	ctx, cancel := context.WithTimeout(*ix.base.Load(), indexCatchUpDeadline)
	defer cancel()
	ix.lastStart.Store(time.Now().UnixNano())
	ix.catchUps.Add(1)
	start := time.Now()
	applied, reloads := ix.applied.Load(), ix.reloads.Load()
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if err = ix.catchUpOnce(ctx); err == nil || !pg.IsRetryable(err) {
			break
		}
	}
	if err == nil && ix.metrics != nil {
		kind := "incremental"
		if ix.reloads.Load() != reloads {
			kind = "reload"
		}
		ix.metrics.since(ix.metrics.indexSeconds.WithLabelValues(kind), start)
	}
	ix.log.Debug("allocation candidates index caught up", "took", time.Since(start), "providers", ix.applied.Load()-applied)
	return err
}

func (ix *candidatesIndex) catchUpOnce(ctx context.Context) error {
	st := ix.state.Load()
	if st == nil || ix.full.Load() {
		return ix.reload(ctx)
	}
	// While idle, one statement tells there is nothing to do; while busy
	// that statement would only repeat the first of the full read.
	var cu store.CatchUp
	var err error
	if !ix.busy.Load() {
		if cu, err = store.PeekCatchUp(ctx, ix.db, st.pgSnap); err != nil {
			return err
		}
	}
	if ix.busy.Load() || !cu.Empty() {
		if cu, err = store.ReadCatchUp(ctx, ix.db, st.pgSnap); err != nil {
			return err
		}
	}
	ix.busy.Store(!cu.Empty())
	if cu.Behind || cu.Reset {
		return ix.reload(ctx)
	}
	if cu.Empty() {
		ix.state.Store(&indexState{snap: st.snap, pgSnap: cu.Snapshot})
		return nil
	}
	ch := candidates.Changes{Providers: cu.Providers}
	if cu.Names {
		ch.Classes, ch.Traits = cu.Classes, cu.Traits
	}
	found := make(map[int64]bool, len(cu.Providers))
	for _, p := range cu.Providers {
		found[p.ID] = true
	}
	for _, id := range cu.Changed {
		if !found[id] {
			ch.Deleted = append(ch.Deleted, id)
		}
	}
	snap, err := st.snap.Apply(ch)
	if err != nil {
		if !errors.Is(err, candidates.ErrRebuild) {
			ix.log.Warn("allocation candidates index: reloading after a change it could not apply", "error", err)
		}
		return ix.reload(ctx)
	}
	ix.applied.Add(int64(len(cu.Changed)))
	ix.state.Store(&indexState{snap: snap, pgSnap: cu.Snapshot})
	if int(snap.Len()) > 2*snap.Count()+indexCompactSlack {
		// Deleted providers leave empty slots and registry entries behind;
		// a reload compacts them.
		ix.full.Store(true)
	}
	return nil
}

// reload reads everything under one snapshot and indexes it afresh.
func (ix *candidatesIndex) reload(ctx context.Context) error {
	ix.reloads.Add(1)
	start := time.Now()
	// A reset asked for before this point is served by this reload.
	ix.full.Store(false)
	pgSnap, data, err := store.ReadSnapshot(ctx, ix.db)
	if err != nil {
		ix.full.Store(true)
		return err
	}
	snap, err := candidates.NewSnapshot(data)
	if err != nil {
		ix.full.Store(true)
		return fmt.Errorf("indexing providers: %w", err)
	}
	ix.state.Store(&indexState{snap: snap, pgSnap: pgSnap})
	ix.log.Info("allocation candidates index loaded", "providers", snap.Count(), "took", time.Since(start))
	return nil
}

// start runs the background work until stopped: a first load, a poller that
// catches up whenever no request did for a poll interval, and a trimmer of
// the change feed.
func (ix *candidatesIndex) start(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	ix.base.Store(&ctx)
	ix.stop = cancel
	ix.wg.Add(2)
	go func() {
		defer ix.wg.Done()
		ix.poll(ctx)
	}()
	go func() {
		defer ix.wg.Done()
		ix.trim(ctx)
	}()
}

func (ix *candidatesIndex) close() {
	if ix.stop != nil {
		ix.stop()
		ix.wg.Wait()
	}
	ix.flying.Wait()
}

func (ix *candidatesIndex) poll(ctx context.Context) {
	t := time.NewTicker(ix.pollEvery)
	defer t.Stop()
	failing := false
	for {
		if time.Since(time.Unix(0, ix.lastStart.Load())) >= ix.pollEvery {
			f := ix.join()
			select {
			case <-f.done:
			case <-ctx.Done():
				return
			}
			if f.err != nil && !failing && ctx.Err() == nil {
				ix.log.Error("allocation candidates index: catching up failed", "error", f.err)
			}
			failing = f.err != nil
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// trim deletes feed rows older than the retention. The horizon is the xmin
// sampled a retention ago: every index that caught up since then is past
// it, and one that did not notices (Behind) and reloads.
func (ix *candidatesIndex) trim(ctx context.Context) {
	type sample struct {
		at   time.Time
		xmin string
	}
	var samples []sample
	t := time.NewTicker(ix.trimEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
		x, err := store.CurrentXmin(ctx, ix.db)
		if err != nil {
			continue
		}
		now := time.Now()
		samples = append(samples, sample{now, x})
		horizon := ""
		for len(samples) > 0 && now.Sub(samples[0].at) >= ix.retention {
			horizon = samples[0].xmin
			samples = samples[1:]
		}
		if horizon == "" {
			continue
		}
		if _, err := store.TrimChanges(ctx, ix.db, horizon); err != nil && ctx.Err() == nil {
			ix.log.Warn("allocation candidates index: trimming the change feed failed", "error", err)
		}
	}
}
