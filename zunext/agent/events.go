package agent

import (
	"context"
	"errors"
	"fmt"

	"github.com/docker/docker/api/types/container"

	"github.com/unisched/unisched/bridge/agentproto"
	"github.com/unisched/unisched/zunext/docker"
)

// errRetry marks an event that was not applied and must be applied again
// later (Docker or serve could not be reached): the applier retries it
// with backoff, holding the later events of its workload.
type errRetry struct{ err error }

func (e *errRetry) Error() string { return e.err.Error() }
func (e *errRetry) Unwrap() error { return e.err }

// errBadEvent marks an event that can never be applied (400).
type errBadEvent struct{ msg string }

func (e *errBadEvent) Error() string { return e.msg }

// validate refuses an event that can never be applied (400 at once);
// known is false for an event type this agent does not know (ignored).
func (a *Agent) validate(ev *agentproto.Event) (known bool, err error) {
	if ev.Host != "" && ev.Host != a.cfg.Host {
		return false, &errBadEvent{fmt.Sprintf("event %d is for host %s, this agent is %s", ev.ID, ev.Host, a.cfg.Host)}
	}
	switch ev.Type {
	case agentproto.EventCreate, agentproto.EventAction, agentproto.EventUpdate, agentproto.EventDelete, agentproto.EventRename:
		if ev.Container == nil || ev.Container.WorkloadID == "" {
			return false, &errBadEvent{fmt.Sprintf("event %d (%s) carries no container", ev.ID, ev.Type)}
		}
	case agentproto.EventHostCPUs:
	default:
		return false, nil
	}
	return true, nil
}

// Apply applies one event; nil means applied or its outcome reported, so
// the event is done. Applying an event twice ends in the same state. The
// agent calls it from its applier (queue.go), after acknowledging the
// event; an errRetry means "not now", and the applier tries again.
func (a *Agent) Apply(ctx context.Context, ev *agentproto.Event) error {
	known, err := a.validate(ev)
	if err != nil {
		return err
	}
	if !known {
		a.log.Warn("ignoring an event of unknown type", "event", ev.ID, "type", ev.Type)
		return nil
	}
	if ev.Container != nil && ev.Type != agentproto.EventHostCPUs {
		unlock := a.locks.Lock(ev.Container.WorkloadID)
		defer unlock()
	}
	if ev.ID != 0 && a.applied.Has(ev.ID) {
		return nil
	}
	switch ev.Type {
	case agentproto.EventCreate, agentproto.EventUpdate:
		err = a.applyEnsure(ctx, ev)
	case agentproto.EventAction:
		err = a.applyAction(ctx, ev)
	case agentproto.EventDelete:
		err = a.applyDelete(ctx, ev)
	case agentproto.EventRename:
		// the Docker name is derived from the workload id: nothing changes
	case agentproto.EventHostCPUs:
		err = a.applyHostCPUs(ctx, ev)
	}
	if err != nil {
		return err
	}
	if ev.ID != 0 {
		if err := a.applied.Add(ev.ID); err != nil {
			a.log.Warn("remembering an applied event", "event", ev.ID, "error", err)
		}
	}
	return nil
}

// outcome reports what became of an event's container. Docker being away
// or serve not taking the report means the event must come again; any
// other failure is the event's final outcome and is reported as such.
func (a *Agent) outcome(ctx context.Context, ev *agentproto.Event, o *docker.Observed, err error) error {
	wid := ev.Container.WorkloadID
	var r agentproto.Report
	var inf *docker.ImageNotFoundError
	var retry *errRetry
	switch {
	case err != nil && docker.IsUnavailable(err):
		return &errRetry{err}
	case errors.As(err, &retry), docker.IsTransient(err):
		// the daemon's trouble, not the request's: the agent applies the
		// event again later, and the container is not put in error
		a.log.Warn("event failed on a transient docker error; retrying later", "event", ev.ID, "type", ev.Type, "action", ev.Action, "workload", wid, "error", err)
		if retry != nil {
			return retry
		}
		return &errRetry{err}
	case errors.As(err, &inf):
		r = agentproto.Report{WorkloadID: wid, Status: agentproto.StatusError, Reason: inf.Error()}
	case errors.Is(err, docker.ErrNotFound):
		r = agentproto.Report{WorkloadID: wid, Status: agentproto.StatusDeleted, Reason: "the container does not exist on the host"}
	default:
		if o == nil {
			// Docker refused the change: what the container is now is the
			// outcome, with the refusal as the reason; a container that
			// could not even be created is in error
			fresh, ierr := a.drv.Inspect(ctx, wid)
			switch {
			case ierr != nil && docker.IsTransient(ierr):
				return &errRetry{ierr}
			case errors.Is(ierr, docker.ErrNotFound) && err == nil:
				return a.outcome(ctx, ev, nil, ierr)
			case ierr != nil && err != nil:
				r = agentproto.Report{WorkloadID: wid, Status: agentproto.StatusError, Reason: err.Error()}
			case ierr != nil:
				return &errRetry{ierr}
			default:
				o = fresh
			}
		}
		if o == nil {
			break
		}
		r = o.Report(0)
		if err != nil && r.Reason == "" {
			r.Reason = err.Error()
		}
	}
	if err != nil {
		a.log.Info("event failed; reporting", "event", ev.ID, "type", ev.Type, "action", ev.Action, "workload", wid, "error", err)
	}
	r.EventID = ev.ID
	if rerr := a.report(ctx, r); rerr != nil {
		return &errRetry{rerr}
	}
	return nil
}

func (a *Agent) applyEnsure(ctx context.Context, ev *agentproto.Event) error {
	c := ev.Container
	if a.wasDeleted(c.WorkloadID) {
		return a.outcome(ctx, ev, nil, docker.ErrNotFound)
	}
	o, err := a.ensure(ctx, c, a.sharedFor(ev.ID), false)
	return a.outcome(ctx, ev, o, err)
}

func (a *Agent) applyAction(ctx context.Context, ev *agentproto.Event) error {
	c := ev.Container
	if a.wasDeleted(c.WorkloadID) {
		return a.outcome(ctx, ev, nil, docker.ErrNotFound)
	}
	// A container whose create was lost is created first (not started:
	// the action decides).
	if _, err := a.drv.Inspect(ctx, c.WorkloadID); errors.Is(err, docker.ErrNotFound) {
		if _, err := a.drv.Create(ctx, c, a.sharedFor(ev.ID)); err != nil && !errors.Is(err, docker.ErrExists) {
			return a.outcome(ctx, ev, nil, err)
		}
	} else if err != nil {
		return a.outcome(ctx, ev, nil, err)
	}
	wid := c.WorkloadID
	var err error
	switch ev.Action {
	case agentproto.ActionStart:
		err = a.start(ctx, c, a.sharedFor(ev.ID))
	case agentproto.ActionStop:
		err = a.drv.Stop(ctx, wid, ev.Timeout)
	case agentproto.ActionReboot:
		err = a.drv.Restart(ctx, wid, ev.Timeout)
	case agentproto.ActionPause:
		err = a.drv.Pause(ctx, wid)
	case agentproto.ActionUnpause:
		err = a.drv.Unpause(ctx, wid)
	case agentproto.ActionKill:
		err = a.drv.Kill(ctx, wid, ev.Signal)
	default:
		err = fmt.Errorf("unknown action %q", ev.Action)
	}
	return a.outcome(ctx, ev, nil, err)
}

func (a *Agent) applyDelete(ctx context.Context, ev *agentproto.Event) error {
	wid := ev.Container.WorkloadID
	if ev.Stop && !ev.Force {
		if err := a.drv.Stop(ctx, wid, ev.Timeout); err != nil && !errors.Is(err, docker.ErrNotFound) {
			if docker.IsTransient(err) {
				return &errRetry{err}
			}
			a.log.Info("stop before delete failed; removing anyway", "workload", wid, "error", err)
		}
	}
	// serve refused a delete of a running container without stop or
	// force already, so what reaches the agent is removed for good
	if err := a.drv.Remove(ctx, wid, true); err != nil {
		if docker.IsTransient(err) {
			return &errRetry{err}
		}
		return a.outcome(ctx, ev, nil, err)
	}
	a.markDeleted(wid)
	if err := a.report(ctx, agentproto.Report{WorkloadID: wid, EventID: ev.ID, Status: agentproto.StatusDeleted}); err != nil {
		return &errRetry{err}
	}
	return nil
}

// applyHostCPUs moves every shared container of the host to the new pool.
func (a *Agent) applyHostCPUs(ctx context.Context, ev *agentproto.Event) error {
	a.mu.Lock()
	if ev.ID != 0 && ev.ID < a.sharedEvent {
		a.mu.Unlock()
		return nil // an older pool than the one applied
	}
	a.shared, a.sharedEvent = ev.SharedCPUs, ev.ID
	a.mu.Unlock()
	obs, err := a.drv.List(ctx)
	if err != nil {
		return &errRetry{err}
	}
	for _, o := range obs {
		if o.CPUPolicy == "dedicated" {
			continue
		}
		want := a.drv.Resources(&agentproto.Container{CPUPolicy: o.CPUPolicy, CpusetCpus: ev.SharedCPUs}, ev.SharedCPUs)
		if docker.NormalizeList(o.Resources.CpusetCpus) == want.CpusetCpus {
			continue
		}
		unlock := a.locks.Lock(o.WorkloadID)
		err := a.drv.Update(ctx, o.WorkloadID, container.Resources{CpusetCpus: want.CpusetCpus})
		unlock()
		switch {
		case err == nil, errors.Is(err, docker.ErrNotFound):
		case docker.IsTransient(err):
			return &errRetry{err}
		default:
			a.log.Warn("re-pinning a shared container", "workload", o.WorkloadID, "cpus", want.CpusetCpus, "error", err)
		}
	}
	return nil
}
