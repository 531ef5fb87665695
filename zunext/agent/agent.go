package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/unisched/unisched/bridge/agentproto"
	"github.com/unisched/unisched/zunext/docker"
)

// Agent is one host's agent. Its state is small on purpose: what should
// run comes from serve (events, /desired) and what runs from Docker.
type Agent struct {
	cfg     Config
	drv     *docker.Driver
	serve   *serveClient
	log     *slog.Logger
	applied *appliedSet
	journal *journal
	apl     *applier
	locks   keyedMutex

	mu sync.Mutex
	// shared is the host's free shared pool as last told (by a host.cpus
	// event with id sharedEvent, or by /desired), so a create event older
	// than the last re-pin still lands on the current pool.
	shared      string
	sharedEvent int64
	// deleted remembers workloads removed by a delete event, so a stray
	// late event never brings one back.
	deleted      map[string]struct{}
	deletedOrder []string
	// dockerUp is false between a Docker failure and the convergence
	// after it comes back.
	dockerUp bool
	// converged is closed after the first successful convergence.
	converged chan struct{}
	convOnce  sync.Once
	// kick asks the supervisor to re-check Docker and converge.
	kick chan struct{}
	url  string
}

// New checks the configuration and builds the agent; nothing is contacted
// before Run.
func New(cfg Config) (*Agent, error) {
	if err := cfg.Defaults(); err != nil {
		return nil, err
	}
	drv, err := docker.New(docker.Options{
		Host: cfg.Host, DockerHost: cfg.DockerHost, NetworkMode: cfg.NetworkMode,
		ClampCpusets: cfg.ClampCpusets, Logger: cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	applied, err := newAppliedSet(cfg.AppliedIDs, cfg.StateFile)
	if err != nil {
		drv.Close()
		return nil, err
	}
	jr, pending, err := openJournal(cfg.journalPath())
	if err != nil {
		applied.Close()
		drv.Close()
		return nil, err
	}
	a := &Agent{
		cfg:       cfg,
		drv:       drv,
		serve:     &serveClient{base: cfg.ServeURL, token: cfg.Token, host: cfg.Host, http: &http.Client{Timeout: cfg.RequestTimeout}},
		log:       cfg.Logger.With("host", cfg.Host),
		applied:   applied,
		journal:   jr,
		shared:    cfg.SharedCPUs,
		deleted:   map[string]struct{}{},
		converged: make(chan struct{}),
		kick:      make(chan struct{}, 1),
	}
	a.apl = newApplier(a, jr, pending, cfg.ApplyWorkers)
	if len(pending) > 0 {
		a.log.Info("events journaled before the restart will be applied", "events", len(pending))
	}
	return a, nil
}

// Config is the agent's configuration with defaults applied.
func (a *Agent) Config() Config { return a.cfg }

// Driver is the agent's Docker driver.
func (a *Agent) Driver() *docker.Driver { return a.drv }

// Converged is closed once the agent has converged on serve's desired
// state for the first time.
func (a *Agent) Converged() <-chan struct{} { return a.converged }

// URL is the agent URL given to serve (known once Run listens).
func (a *Agent) URL() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.url
}

// Close releases the Docker client, the applied-events file and the
// event journal.
func (a *Agent) Close() {
	a.journal.Close()
	a.applied.Close()
	a.drv.Close()
}

// Run listens on cfg.Listen and runs the agent until ctx ends.
func (a *Agent) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", a.cfg.Listen)
	if err != nil {
		return fmt.Errorf("agent listening on %s: %w", a.cfg.Listen, err)
	}
	return a.Serve(ctx, ln)
}

// Serve runs the agent on ln until ctx ends: the HTTP server, then
// registration, convergence, Docker's event stream and the heartbeat; the
// applier applies the events journaled (before a restart too) meanwhile.
func (a *Agent) Serve(ctx context.Context, ln net.Listener) error {
	u := a.cfg.AdvertiseURL
	if u == "" {
		u = advertise(ln.Addr())
	}
	a.mu.Lock()
	a.url = u
	a.mu.Unlock()
	h := a.Handler()
	if a.cfg.Wrap != nil {
		h = a.cfg.Wrap(h)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() {
		a.log.Info("agent listening", "addr", ln.Addr().String(), "agent_url", u, "serve_url", a.cfg.ServeURL)
		errc <- srv.Serve(ln)
	}()
	a.apl.start(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		a.supervise(ctx)
	}()
	var err error
	select {
	case err = <-errc:
		err = fmt.Errorf("agent HTTP server: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	wg.Wait()
	a.apl.wait()
	return err
}

func advertise(addr net.Addr) string {
	ta, ok := addr.(*net.TCPAddr)
	if !ok {
		return "http://" + addr.String()
	}
	ip := ta.IP
	if ip == nil || ip.IsUnspecified() {
		ip = net.IPv4(127, 0, 0, 1)
	}
	return "http://" + net.JoinHostPort(ip.String(), fmt.Sprint(ta.Port))
}

// supervise registers, then keeps Docker watched: every time Docker is
// (back) up it converges and follows the event stream until it breaks.
func (a *Agent) supervise(ctx context.Context) {
	if err := a.registerUntilDone(ctx); err != nil {
		return
	}
	go a.heartbeat(ctx)
	for ctx.Err() == nil {
		if err := a.waitDocker(ctx); err != nil {
			return
		}
		// subscribe before converging so nothing that happens during the
		// convergence is missed
		evCtx, cancel := context.WithCancel(ctx)
		evs, errc := a.drv.Events(evCtx)
		if err := a.convergeUntilDone(ctx); err != nil {
			cancel()
			return
		}
		err := a.follow(ctx, evs, errc)
		cancel()
		a.setDockerUp(false)
		if ctx.Err() != nil {
			return
		}
		a.log.Warn("docker event stream ended; resyncing once docker answers", "error", err)
	}
}

func (a *Agent) setDockerUp(up bool) {
	a.mu.Lock()
	a.dockerUp = up
	a.mu.Unlock()
	if up {
		a.apl.wakeUp() // events waiting for Docker go now
	}
}

// EventStats are the applier's figures: events acknowledged and not
// applied yet, and failed attempts retried since the start.
func (a *Agent) EventStats() (pending int, retries int64) {
	return a.apl.pending(), a.apl.retries.Load()
}

// DockerUp says whether the agent currently trusts its Docker connection.
func (a *Agent) DockerUp() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.dockerUp
}

// backoff sleeps the i-th retry interval (doubling to 10x); false when
// ctx ended.
func (a *Agent) backoff(ctx context.Context, i int) bool {
	d := a.cfg.RetryInterval << min(i, 4)
	if d > 10*a.cfg.RetryInterval {
		d = 10 * a.cfg.RetryInterval
	}
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	case <-a.kick:
		return true
	}
}

func (a *Agent) register(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, a.cfg.RequestTimeout)
	defer cancel()
	res, err := a.serve.register(rctx, a.cfg.registration(a.URL()))
	if err != nil {
		return err
	}
	a.log.Debug("registered", "provider", res.ProviderUUID, "owns_inventory", res.OwnsInventory)
	return nil
}

// registerUntilDone retries the registration until serve accepts it.
func (a *Agent) registerUntilDone(ctx context.Context) error {
	for i := 0; ; i++ {
		err := a.register(ctx)
		if err == nil {
			a.log.Info("registered with serve", "serve_url", a.cfg.ServeURL)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		lvl := slog.LevelWarn
		if i > 0 && i%10 != 0 {
			lvl = slog.LevelDebug
		}
		a.log.Log(ctx, lvl, "registration with serve failed; retrying", "error", err, "attempt", i+1)
		if !a.backoff(ctx, i) {
			return ctx.Err()
		}
	}
}

func (a *Agent) heartbeat(ctx context.Context) {
	t := time.NewTicker(a.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := a.register(ctx); err != nil && ctx.Err() == nil {
				a.log.Warn("heartbeat (re-registration) failed", "error", err)
			}
		}
	}
}

func (a *Agent) waitDocker(ctx context.Context) error {
	for i := 0; ; i++ {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := a.drv.Ping(pctx)
		cancel()
		if err == nil {
			if i > 0 {
				a.log.Info("docker answers again")
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if i%10 == 0 {
			a.log.Warn("docker does not answer; retrying", "error", err)
		}
		if !a.backoff(ctx, i) {
			return ctx.Err()
		}
	}
}

func (a *Agent) convergeUntilDone(ctx context.Context) error {
	for i := 0; ; i++ {
		err := a.Converge(ctx)
		if err == nil {
			a.setDockerUp(true)
			a.convOnce.Do(func() { close(a.converged) })
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		a.log.Warn("convergence failed; retrying", "error", err, "attempt", i+1)
		var se *statusError
		if errors.As(err, &se) && se.Status == http.StatusNotFound {
			// serve forgot the host (a fresh database): register again
			if rerr := a.register(ctx); rerr != nil {
				a.log.Warn("re-registration failed", "error", rerr)
			}
		}
		if !a.backoff(ctx, i) {
			return ctx.Err()
		}
	}
}

// follow turns Docker's lifecycle events into reports until the stream
// breaks, converging every heartbeat interval meanwhile.
func (a *Agent) follow(ctx context.Context, evs <-chan docker.Event, errc <-chan error) error {
	// converging again every heartbeat repairs what an event or a
	// convergence left undone on a transient Docker failure, even when no
	// new event comes for it
	t := time.NewTicker(a.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			if err := a.convergeAll(ctx, false); err != nil && ctx.Err() == nil {
				a.log.Warn("periodic convergence failed", "error", err)
			}
		case err := <-errc:
			return err
		case e, ok := <-evs:
			if !ok {
				return <-errc
			}
			a.dockerEvent(ctx, e)
		}
	}
}

// dockerEvent reports the container's state after a lifecycle change.
func (a *Agent) dockerEvent(ctx context.Context, e docker.Event) {
	var r agentproto.Report
	if e.Action == "destroy" {
		r = agentproto.Report{WorkloadID: e.WorkloadID, ContainerID: e.ContainerID, Status: agentproto.StatusDeleted, ObservedAt: e.Time}
		if !a.wasDeleted(e.WorkloadID) {
			r.Reason = "the container was removed from Docker"
		}
	} else {
		o, err := a.drv.Inspect(ctx, e.WorkloadID)
		if errors.Is(err, docker.ErrNotFound) {
			return // destroyed meanwhile: its destroy event follows
		}
		if err != nil {
			a.log.Warn("inspecting after a docker event", "workload", e.WorkloadID, "action", e.Action, "error", err)
			return
		}
		r = o.Report(0)
	}
	a.reportRetry(ctx, r, 5)
}

// reportRetry sends a report that answers no event, retrying a few times:
// a lost one is repaired by the next convergence.
func (a *Agent) reportRetry(ctx context.Context, r agentproto.Report, tries int) {
	for i := 0; i < tries; i++ {
		err := a.report(ctx, r)
		if err == nil || permanent(err) {
			return
		}
		if !a.backoff(ctx, i) {
			return
		}
	}
	a.log.Warn("giving up on a report", "workload", r.WorkloadID, "status", r.Status)
}

// report sends one report; serve refusing it for good (a 4xx: a workload
// it no longer knows, or that moved) is logged and counts as delivered.
func (a *Agent) report(ctx context.Context, r agentproto.Report) error {
	if r.ObservedAt.IsZero() {
		r.ObservedAt = time.Now().UTC()
	}
	rctx, cancel := context.WithTimeout(ctx, a.cfg.RequestTimeout)
	defer cancel()
	err := a.serve.report(rctx, r)
	if err != nil && permanent(err) {
		a.log.Info("serve refused a report", "workload", r.WorkloadID, "status", r.Status, "error", err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("reporting %s of workload %s: %w", r.Status, r.WorkloadID, err)
	}
	return nil
}

func (a *Agent) markDeleted(wid string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.deleted[wid]; ok {
		return
	}
	a.deleted[wid] = struct{}{}
	a.deletedOrder = append(a.deletedOrder, wid)
	if len(a.deletedOrder) > 4096 {
		delete(a.deleted, a.deletedOrder[0])
		a.deletedOrder = a.deletedOrder[1:]
	}
}

func (a *Agent) wasDeleted(wid string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, ok := a.deleted[wid]
	return ok
}

// sharedFor is the shared pool a container from event id should get: the
// pool of a later host.cpus event when there is one, else its own.
func (a *Agent) sharedFor(eventID int64) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.sharedEvent > eventID {
		return a.shared
	}
	return ""
}

// Converge makes Docker match serve's desired state for this host:
// missing containers are created, running state and limits are fixed,
// unisched containers of this host that serve does not list are removed,
// and every container's state is reported.
func (a *Agent) Converge(ctx context.Context) error { return a.convergeAll(ctx, true) }

// convergeAll is Converge; resync false is the periodic pass, which only
// starts containers that never started (a start that failed transiently)
// and stops none, so a container that ended by itself and whose exit
// serve has not settled yet is not run again.
func (a *Agent) convergeAll(ctx context.Context, resync bool) error {
	// Docker is listed before serve is asked, so a container created by an
	// event in between is never taken for an orphan.
	obs, err := a.drv.List(ctx)
	if err != nil {
		return err
	}
	dctx, cancel := context.WithTimeout(ctx, a.cfg.RequestTimeout)
	want, err := a.serve.desired(dctx)
	cancel()
	if err != nil {
		return fmt.Errorf("fetching the desired state: %w", err)
	}
	a.mu.Lock()
	if want.SharedCPUs != "" {
		a.shared = want.SharedCPUs
	}
	a.mu.Unlock()
	desired := make(map[string]bool, len(want.Containers))
	var firstErr error
	keep := func(err error) {
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	for i := range want.Containers {
		c := &want.Containers[i]
		desired[c.WorkloadID] = true
		keep(a.converge(ctx, c, resync))
	}
	for _, o := range obs {
		if desired[o.WorkloadID] {
			continue
		}
		keep(a.removeOrphan(ctx, o))
	}
	if firstErr == nil {
		lvl := slog.LevelInfo
		if !resync {
			lvl = slog.LevelDebug
		}
		a.log.Log(ctx, lvl, "converged", "desired", len(want.Containers), "found", len(obs))
	}
	return firstErr
}

// converge brings one desired container to its state and reports it.
func (a *Agent) converge(ctx context.Context, c *agentproto.Container, resync bool) error {
	unlock := a.locks.Lock(c.WorkloadID)
	defer unlock()
	if a.wasDeleted(c.WorkloadID) {
		// removed by a delete event after serve's answer was read
		return a.report(ctx, agentproto.Report{WorkloadID: c.WorkloadID, Status: agentproto.StatusDeleted})
	}
	o, err := a.ensure(ctx, c, "", resync)
	var inf *docker.ImageNotFoundError
	switch {
	case errors.As(err, &inf):
		return a.report(ctx, agentproto.Report{WorkloadID: c.WorkloadID, Status: agentproto.StatusError, Reason: inf.Error()})
	case err != nil && docker.IsUnavailable(err):
		return err
	case err != nil && isTransient(err):
		// left as it is, not reported in error: the next (periodic)
		// convergence tries again
		a.log.Warn("converging a container failed on a transient docker error; retrying later", "workload", c.WorkloadID, "error", err)
		return nil
	case err != nil:
		a.log.Warn("converging a container", "workload", c.WorkloadID, "error", err)
		if o == nil {
			return a.report(ctx, agentproto.Report{WorkloadID: c.WorkloadID, Status: agentproto.StatusError, Reason: err.Error()})
		}
		r := o.Report(0)
		if r.Reason == "" {
			r.Reason = err.Error()
		}
		return a.report(ctx, r)
	}
	return a.report(ctx, o.Report(0))
}

func (a *Agent) removeOrphan(ctx context.Context, o *docker.Observed) error {
	unlock := a.locks.Lock(o.WorkloadID)
	defer unlock()
	a.log.Info("removing a container serve does not want here", "workload", o.WorkloadID, "container", o.ID)
	if err := a.drv.Remove(ctx, o.WorkloadID, true); err != nil {
		return err
	}
	a.markDeleted(o.WorkloadID)
	return a.report(ctx, agentproto.Report{WorkloadID: o.WorkloadID, ContainerID: o.ID, Status: agentproto.StatusDeleted})
}

// ensure makes the container exist with c's limits. resync (a
// convergence) also brings it to c.Running; an event only starts a
// container it has just created (or one never started), so a replayed
// create does not rerun a container that ran and exited.
func (a *Agent) ensure(ctx context.Context, c *agentproto.Container, shared string, resync bool) (*docker.Observed, error) {
	o, err := a.drv.Inspect(ctx, c.WorkloadID)
	if errors.Is(err, docker.ErrNotFound) {
		if _, err = a.drv.Create(ctx, c, shared); err != nil && !errors.Is(err, docker.ErrExists) {
			return nil, err
		}
		o, err = a.drv.Inspect(ctx, c.WorkloadID)
	}
	if err != nil {
		return o, err
	}
	if want := a.drv.Resources(c, shared); !sameLimits(o, want) {
		if err := a.drv.Update(ctx, c.WorkloadID, want); err != nil {
			return o, err
		}
	}
	neverStarted := o.Status == agentproto.StatusCreated && o.StartedAt.IsZero()
	switch {
	case c.Running && !o.Running && !o.Paused && (resync || neverStarted):
		err = a.start(ctx, c, shared)
	case !c.Running && o.Running && !o.Paused && resync:
		err = a.drv.Stop(ctx, c.WorkloadID, 0)
	default:
		return a.drv.Inspect(ctx, c.WorkloadID)
	}
	o2, ierr := a.drv.Inspect(ctx, c.WorkloadID)
	if ierr != nil {
		return o, ierr
	}
	return o2, err
}

// sameLimits compares what Docker has with what the container should
// have. A zero NanoCPUs (dedicated) is not compared: Docker cannot unset it.
func sameLimits(o *docker.Observed, w container.Resources) bool {
	r := o.Resources
	return docker.NormalizeList(r.CpusetCpus) == w.CpusetCpus && docker.NormalizeList(r.CpusetMems) == w.CpusetMems &&
		r.Memory == w.Memory && (w.NanoCPUs == 0 || r.NanoCPUs == w.NanoCPUs)
}

// isTransient says whether err (from Docker, or an errRetry of the agent's
// own) is to be retried rather than reported.
func isTransient(err error) bool {
	var retry *errRetry
	return errors.As(err, &retry) || docker.IsTransient(err)
}

// start starts the container. A start refused because containerd still
// holds a task for it (dockerd killed while starting it; the shim
// survived) is repaired once: the container is removed and created again
// from c, then started. Failing again is the daemon's trouble: the error
// comes back as an errRetry (tried again later, no error report).
func (a *Agent) start(ctx context.Context, c *agentproto.Container, shared string) error {
	err := a.drv.Start(ctx, c.WorkloadID)
	if !docker.IsStaleTask(err) {
		return err
	}
	a.log.Warn("starting found a stale containerd task; recreating the container", "workload", c.WorkloadID, "error", err)
	if err := a.drv.Remove(ctx, c.WorkloadID, true); err != nil && !errors.Is(err, docker.ErrNotFound) {
		return &errRetry{fmt.Errorf("removing the container with a stale task: %w", err)}
	}
	if _, err := a.drv.Create(ctx, c, shared); err != nil {
		var inf *docker.ImageNotFoundError
		if errors.As(err, &inf) {
			return err
		}
		return &errRetry{fmt.Errorf("recreating the container with a stale task: %w", err)}
	}
	if err := a.drv.Start(ctx, c.WorkloadID); err != nil {
		return &errRetry{fmt.Errorf("starting the recreated container: %w", err)}
	}
	a.log.Info("recreated and started a container whose task was stale", "workload", c.WorkloadID)
	return nil
}
