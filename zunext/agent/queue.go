package agent

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/unisched/unisched/bridge/agentproto"
)

// applier applies the journaled events in the background: per workload
// one at a time in event id order, different workloads in parallel (at
// most Config.ApplyWorkers at once), the host-wide events (host.cpus) in
// a queue of their own. An event that cannot be applied now (Docker or
// serve away: errRetry) is tried again with backoff by the agent itself,
// and the later events of its workload wait behind it, so the order the
// relay kept is kept here too.
type applier struct {
	a   *Agent
	jr  *journal
	sem chan struct{}

	mu sync.Mutex
	// known holds the ids of the events journaled and not applied yet
	// (waiting or applying): a redelivery of one is answered at once and
	// dropped.
	known  map[int64]struct{}
	queues map[string]*eventQueue
	ctx    context.Context // set by start; nil before
	wg     sync.WaitGroup
	// wake is closed (and replaced) to end the backoff of every retrying
	// event, when Docker answers again.
	wake chan struct{}

	retries atomic.Int64
}

type eventQueue struct {
	items   []queued // id order
	running bool
}

// hostQueue is the queue of the host-wide events.
const hostQueue = "\x00host"

func newApplier(a *Agent, jr *journal, pending []queued, workers int) *applier {
	p := &applier{a: a, jr: jr, sem: make(chan struct{}, workers), known: map[int64]struct{}{},
		queues: map[string]*eventQueue{}, wake: make(chan struct{})}
	for _, q := range pending {
		p.insertLocked(q)
	}
	return p
}

func queueKey(ev *agentproto.Event) string {
	if ev.Type == agentproto.EventHostCPUs || ev.Container == nil {
		return hostQueue
	}
	return ev.Container.WorkloadID
}

// insertLocked queues q after the events of its workload with lower ids
// (ties, and id 0, by journal order).
func (p *applier) insertLocked(q queued) {
	if q.ev.ID != 0 {
		p.known[q.ev.ID] = struct{}{}
	}
	k := queueKey(q.ev)
	eq := p.queues[k]
	if eq == nil {
		eq = &eventQueue{}
		p.queues[k] = eq
	}
	i := len(eq.items)
	// a running queue's head may be applying: never insert before it
	for i > 0 && less(q, eq.items[i-1]) && (i > 1 || !eq.running) {
		i--
	}
	eq.items = slices.Insert(eq.items, i, q)
	if p.ctx != nil && !eq.running {
		eq.running = true
		p.wg.Add(1)
		go p.work(k)
	}
}

func less(a, b queued) bool {
	if a.ev.ID != b.ev.ID && a.ev.ID != 0 && b.ev.ID != 0 {
		return a.ev.ID < b.ev.ID
	}
	return a.seq < b.seq
}

// take journals ev and queues it; duplicate is true (and nothing done)
// when the event is already journaled, applying or applied.
func (p *applier) take(ev *agentproto.Event) (duplicate bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ev.ID != 0 {
		if _, ok := p.known[ev.ID]; ok || p.a.applied.Has(ev.ID) {
			return true, nil
		}
	}
	seq, err := p.jr.Add(ev)
	if err != nil {
		return false, err
	}
	p.insertLocked(queued{seq: seq, ev: ev})
	return false, nil
}

// start begins applying (the events replayed from the journal first);
// the workers stop when ctx ends, leaving what is not applied journaled.
func (p *applier) start(ctx context.Context) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ctx = ctx
	for k, eq := range p.queues {
		if len(eq.items) > 0 && !eq.running {
			eq.running = true
			p.wg.Add(1)
			go p.work(k)
		}
	}
}

// wait returns once every worker has stopped.
func (p *applier) wait() { p.wg.Wait() }

// wakeUp ends the current backoff of every retrying event.
func (p *applier) wakeUp() {
	p.mu.Lock()
	defer p.mu.Unlock()
	close(p.wake)
	p.wake = make(chan struct{})
}

func (p *applier) wakeChan() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.wake
}

// pending is the number of events taken and not applied yet.
func (p *applier) pending() int { return p.jr.Len() }

// work applies the events of queue k, head first, until it is empty.
func (p *applier) work(k string) {
	defer p.wg.Done()
	ctx := p.ctx
	for {
		p.mu.Lock()
		eq := p.queues[k]
		if len(eq.items) == 0 || ctx.Err() != nil {
			eq.running = false
			if len(eq.items) == 0 {
				delete(p.queues, k)
			}
			p.mu.Unlock()
			return
		}
		q := eq.items[0]
		p.mu.Unlock()
		if !p.applyOne(ctx, q) {
			p.mu.Lock()
			eq.running = false
			p.mu.Unlock()
			return
		}
		if err := p.jr.Done(q.seq); err != nil {
			p.a.log.Warn("trimming the event journal", "error", err)
		}
		p.mu.Lock()
		eq.items = eq.items[1:]
		if q.ev.ID != 0 {
			delete(p.known, q.ev.ID)
		}
		p.mu.Unlock()
	}
}

// applyOne applies q until it is done (true) or ctx ends (false).
func (p *applier) applyOne(ctx context.Context, q queued) bool {
	a, ev := p.a, q.ev
	wid := ""
	if ev.Container != nil {
		wid = ev.Container.WorkloadID
	}
	for i := 0; ; i++ {
		select {
		case p.sem <- struct{}{}:
		case <-ctx.Done():
			return false
		}
		if ev.ID != 0 && a.applied.Has(ev.ID) {
			<-p.sem
			return true // applied before a crash lost its done line
		}
		start := time.Now()
		actx, cancel := context.WithTimeout(ctx, applyTimeout)
		err := a.Apply(actx, ev)
		cancel()
		<-p.sem
		var bad *errBadEvent
		switch {
		case err == nil:
			a.log.Info("event applied", "event", ev.ID, "type", ev.Type, "action", ev.Action, "workload", wid,
				"took", time.Since(start).Round(time.Millisecond), "attempts", i+1)
			return true
		case errors.As(err, &bad):
			a.log.Warn("dropping an event that cannot be applied", "event", ev.ID, "type", ev.Type, "error", err)
			return true
		case ctx.Err() != nil:
			return false
		}
		p.retries.Add(1)
		lvl := a.log.Warn
		if i > 0 && i%10 != 0 {
			lvl = a.log.Debug
		}
		lvl("event not applied; retrying", "event", ev.ID, "type", ev.Type, "action", ev.Action, "workload", wid,
			"attempt", i+1, "error", err)
		d := a.cfg.RetryInterval << min(i, 4)
		d = min(d, 10*a.cfg.RetryInterval)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		case <-p.wakeChan():
			t.Stop()
		}
	}
}
