// Package docker is the agent's Docker driver: it turns the ledger's view
// of a container (agentproto.Container) into Docker API calls against one
// dockerd, and Docker's view back into agentproto statuses.
//
// Several agents may share one dockerd, each as a different host, so every
// call is scoped to the containers labelled with this driver's host: a
// container of another host is "not found" here even when its name
// matches.
package docker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/unisched/unisched/bridge/agentproto"
)

// LabelCPUPolicy records the container's cpu policy on the Docker side, so
// a re-pin of the shared pool finds the shared containers without asking
// serve.
const LabelCPUPolicy = "org.unisched.cpu_policy"

// NamePrefix + workload id is the Docker name of a unisched container.
const NamePrefix = "unisched-"

// Name is the Docker container name of a workload.
func Name(workloadID string) string { return NamePrefix + workloadID }

// ErrNotFound: no container of this host exists for the workload.
var ErrNotFound = errors.New("container not found")

// ErrExists: a container with the workload's name already exists.
var ErrExists = errors.New("container already exists")

// ImageNotFoundError is returned by Create when the image is not on the
// Docker host. There is no registry to pull from, so it is final: the agent
// reports the container as Error with this message.
type ImageNotFoundError struct {
	Image string
}

func (e *ImageNotFoundError) Error() string {
	return fmt.Sprintf("image %s not found", e.Image)
}

// Options configures a Driver.
type Options struct {
	// Host is the agent's host name; it scopes every call (label LabelHost).
	Host string
	// DockerHost is the daemon address (unix:///var/run/docker.sock,
	// tcp://...); empty takes DOCKER_HOST from the environment, else
	// Docker's default socket.
	DockerHost string
	// NetworkMode of created containers; empty means "none" (the lab
	// dockerd runs with --bridge=none, so the default bridge does not exist).
	NetworkMode string
	// ClampCpusets drops the CPUs and memory nodes this machine does not
	// have from the cpusets given to Docker (a configured, simulated
	// topology may name cells the machine lacks; Docker would refuse them).
	// When nothing is left the constraint is left out.
	ClampCpusets bool
	Logger       *slog.Logger
}

// Driver talks to one dockerd on behalf of one host.
type Driver struct {
	cli         *client.Client
	host        string
	networkMode string
	clamp       bool
	cpus, mems  []int
	log         *slog.Logger
}

// New connects lazily: no call is made until the first operation.
func New(o Options) (*Driver, error) {
	if o.Host == "" {
		return nil, errors.New("docker driver: no host name")
	}
	opts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if o.DockerHost != "" {
		opts = append(opts, client.WithHost(o.DockerHost))
	}
	cli, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker client for %q: %w", o.DockerHost, err)
	}
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	nm := o.NetworkMode
	if nm == "" {
		nm = "none"
	}
	return &Driver{
		cli: cli, host: o.Host, networkMode: nm, clamp: o.ClampCpusets,
		cpus: MachineCPUs(), mems: MachineMems(), log: log,
	}, nil
}

// Close releases the client's connections.
func (d *Driver) Close() error { return d.cli.Close() }

// Host is the host name the driver is scoped to.
func (d *Driver) Host() string { return d.host }

// Ping checks that the daemon answers.
func (d *Driver) Ping(ctx context.Context) error {
	if _, err := d.cli.Ping(ctx); err != nil {
		return fmt.Errorf("pinging docker: %w", err)
	}
	return nil
}

// IsUnavailable says whether err means the daemon could not be reached
// (as opposed to the daemon refusing the request): the caller retries later.
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	return client.IsErrConnectionFailed(err) || cerrdefs.IsUnavailable(err) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || strings.Contains(err.Error(), "connection refused") ||
		strings.Contains(err.Error(), "no such file or directory")
}

// Resources are the limits Docker gets for c. sharedCPUs, when not empty,
// replaces c.CpusetCpus for a shared container (the host's pool moved on
// since the container's event was written).
func (d *Driver) Resources(c *agentproto.Container, sharedCPUs string) container.Resources {
	var r container.Resources
	if c.MemoryMB > 0 {
		r.Memory = c.MemoryMB << 20
	}
	cpus, mems := NormalizeList(c.CpusetCpus), NormalizeList(c.CpusetMems)
	if c.CPUPolicy != "dedicated" {
		if sharedCPUs != "" {
			cpus = NormalizeList(sharedCPUs)
		}
		mems = ""
		if c.CPU > 0 {
			r.NanoCPUs = int64(math.Round(c.CPU * 1e9))
		}
	}
	if d.clamp {
		if cpus != "" {
			var ok bool
			if cpus, ok = clampList(cpus, d.cpus); !ok {
				d.log.Warn("cpuset names no CPU of this machine; running unconstrained", "workload", c.WorkloadID, "cpuset_cpus", c.CpusetCpus)
			}
		}
		if mems != "" {
			mems, _ = clampList(mems, d.mems)
		}
		if maxNano := int64(len(d.cpus)) * 1e9; r.NanoCPUs > maxNano {
			r.NanoCPUs = maxNano
		}
	}
	r.CpusetCpus, r.CpusetMems = cpus, mems
	return r
}

// Create creates (does not start) the container for c. The image must be
// present: there is no pull.
func (d *Driver) Create(ctx context.Context, c *agentproto.Container, sharedCPUs string) (string, error) {
	if c.WorkloadID == "" {
		return "", errors.New("creating container: no workload id")
	}
	if _, err := d.cli.ImageInspect(ctx, c.Image); err != nil {
		if cerrdefs.IsNotFound(err) {
			return "", &ImageNotFoundError{Image: c.Image}
		}
		return "", fmt.Errorf("inspecting image %s: %w", c.Image, err)
	}
	labels := maps.Clone(c.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[agentproto.LabelWorkload] = c.WorkloadID
	labels[agentproto.LabelHost] = d.host
	labels[agentproto.LabelProject] = c.ProjectID
	policy := c.CPUPolicy
	if policy == "" {
		policy = "shared"
	}
	labels[LabelCPUPolicy] = policy
	env := make([]string, 0, len(c.Env))
	for _, k := range slices.Sorted(maps.Keys(c.Env)) {
		env = append(env, k+"="+c.Env[k])
	}
	cfg := &container.Config{
		Image:      c.Image,
		Cmd:        c.Command,
		Entrypoint: c.Entrypoint,
		Env:        env,
		WorkingDir: c.Workdir,
		Hostname:   c.Hostname,
		Tty:        c.Tty,
		OpenStdin:  c.Interactive,
		Labels:     labels,
	}
	hc := &container.HostConfig{
		NetworkMode: container.NetworkMode(d.networkMode),
		RestartPolicy: container.RestartPolicy{
			Name:              container.RestartPolicyMode(c.RestartPolicy.Name),
			MaximumRetryCount: c.RestartPolicy.MaximumRetryCount,
		},
		AutoRemove: c.AutoRemove,
		Privileged: c.Privileged,
		Resources:  d.Resources(c, sharedCPUs),
	}
	resp, err := d.cli.ContainerCreate(ctx, cfg, hc, nil, nil, Name(c.WorkloadID))
	if err != nil {
		switch {
		case cerrdefs.IsConflict(err):
			return "", fmt.Errorf("creating container %s: %w", Name(c.WorkloadID), ErrExists)
		case cerrdefs.IsNotFound(err):
			return "", &ImageNotFoundError{Image: c.Image}
		}
		return "", fmt.Errorf("creating container %s: %w", Name(c.WorkloadID), err)
	}
	for _, w := range resp.Warnings {
		d.log.Debug("docker create warning", "workload", c.WorkloadID, "warning", w)
	}
	return resp.ID, nil
}

// inspect finds the workload's container of this host.
func (d *Driver) inspect(ctx context.Context, workloadID string) (container.InspectResponse, error) {
	if workloadID == "" || strings.ContainsAny(workloadID, "/?#") {
		return container.InspectResponse{}, ErrNotFound
	}
	info, err := d.cli.ContainerInspect(ctx, Name(workloadID))
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return info, ErrNotFound
		}
		return info, fmt.Errorf("inspecting container %s: %w", Name(workloadID), err)
	}
	if info.Config == nil || info.Config.Labels[agentproto.LabelHost] != d.host ||
		info.Config.Labels[agentproto.LabelWorkload] != workloadID {
		return info, ErrNotFound
	}
	return info, nil
}

// Observed is a container as Docker shows it, reduced to what the agent
// compares and reports.
type Observed struct {
	ID         string
	WorkloadID string
	ProjectID  string
	Image      string
	Status     string
	Reason     string
	ExitCode   *int
	StartedAt  time.Time
	CPUPolicy  string
	Running    bool
	Paused     bool
	Tty        bool
	Resources  container.Resources
}

// Report turns the observation into a report answering eventID (0: none).
func (o *Observed) Report(eventID int64) agentproto.Report {
	return agentproto.Report{
		WorkloadID:  o.WorkloadID,
		EventID:     eventID,
		ContainerID: o.ID,
		Status:      o.Status,
		Reason:      o.Reason,
		ExitCode:    o.ExitCode,
		StartedAt:   o.StartedAt,
		ObservedAt:  time.Now().UTC(),
	}
}

// observe maps Docker's state onto Zun's statuses.
func observe(info container.InspectResponse) *Observed {
	o := &Observed{ID: info.ID}
	if info.Config != nil {
		o.WorkloadID = info.Config.Labels[agentproto.LabelWorkload]
		o.ProjectID = info.Config.Labels[agentproto.LabelProject]
		o.CPUPolicy = info.Config.Labels[LabelCPUPolicy]
		o.Image = info.Config.Image
		o.Tty = info.Config.Tty
	}
	if info.HostConfig != nil {
		o.Resources = info.HostConfig.Resources
	}
	st := info.State
	if st == nil {
		o.Status = agentproto.StatusError
		o.Reason = "docker reported no state"
		return o
	}
	o.Running, o.Paused = st.Running, st.Paused
	if t, err := time.Parse(time.RFC3339Nano, st.StartedAt); err == nil && t.Year() > 1 {
		o.StartedAt = t.UTC()
	}
	switch st.Status {
	case "created":
		o.Status = agentproto.StatusCreated
	case "running":
		o.Status = agentproto.StatusRunning
	case "paused":
		o.Status = agentproto.StatusPaused
	case "restarting":
		o.Status = agentproto.StatusRestarting
	case "dead":
		o.Status = agentproto.StatusDead
	default: // exited, removing
		o.Status = agentproto.StatusStopped
	}
	if st.Status == "exited" || st.Status == "dead" {
		code := st.ExitCode
		o.ExitCode = &code
	}
	switch {
	case st.Error != "":
		o.Status, o.Reason = agentproto.StatusError, st.Error
	case st.OOMKilled:
		o.Reason = "the container was killed: out of memory"
	}
	return o
}

// Inspect observes the workload's container; ErrNotFound when it has none.
func (d *Driver) Inspect(ctx context.Context, workloadID string) (*Observed, error) {
	info, err := d.inspect(ctx, workloadID)
	if err != nil {
		return nil, err
	}
	return observe(info), nil
}

// List observes every container labelled with this host, running or not.
func (d *Driver) List(ctx context.Context) ([]*Observed, error) {
	f := filters.NewArgs(filters.Arg("label", agentproto.LabelHost+"="+d.host))
	sums, err := d.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		return nil, fmt.Errorf("listing containers of host %s: %w", d.host, err)
	}
	out := make([]*Observed, 0, len(sums))
	for _, s := range sums {
		if s.Labels[agentproto.LabelWorkload] == "" {
			continue
		}
		info, err := d.cli.ContainerInspect(ctx, s.ID)
		if err != nil {
			if cerrdefs.IsNotFound(err) {
				continue // removed meanwhile
			}
			return nil, fmt.Errorf("inspecting container %s: %w", s.ID, err)
		}
		out = append(out, observe(info))
	}
	return out, nil
}

// do runs op on the workload's container id.
func (d *Driver) do(ctx context.Context, workloadID, what string, op func(id string) error) error {
	info, err := d.inspect(ctx, workloadID)
	if err != nil {
		return err
	}
	if err := op(info.ID); err != nil {
		if cerrdefs.IsNotFound(err) {
			return ErrNotFound
		}
		return fmt.Errorf("%s container %s: %w", what, Name(workloadID), err)
	}
	return nil
}

// Start starts the container; starting a running one is not an error.
func (d *Driver) Start(ctx context.Context, workloadID string) error {
	return d.do(ctx, workloadID, "starting", func(id string) error {
		return d.cli.ContainerStart(ctx, id, container.StartOptions{})
	})
}

func stopOptions(timeout int) container.StopOptions {
	if timeout <= 0 {
		return container.StopOptions{}
	}
	return container.StopOptions{Timeout: &timeout}
}

// Stop stops the container, killing it after timeout seconds (0: Docker's
// default of 10).
func (d *Driver) Stop(ctx context.Context, workloadID string, timeout int) error {
	return d.do(ctx, workloadID, "stopping", func(id string) error {
		return d.cli.ContainerStop(ctx, id, stopOptions(timeout))
	})
}

// Restart is Zun's reboot.
func (d *Driver) Restart(ctx context.Context, workloadID string, timeout int) error {
	return d.do(ctx, workloadID, "restarting", func(id string) error {
		return d.cli.ContainerRestart(ctx, id, stopOptions(timeout))
	})
}

// Pause freezes the container's processes.
func (d *Driver) Pause(ctx context.Context, workloadID string) error {
	return d.do(ctx, workloadID, "pausing", func(id string) error { return d.cli.ContainerPause(ctx, id) })
}

// Unpause thaws them.
func (d *Driver) Unpause(ctx context.Context, workloadID string) error {
	return d.do(ctx, workloadID, "unpausing", func(id string) error { return d.cli.ContainerUnpause(ctx, id) })
}

// Kill sends signal (empty: SIGKILL). Docker answers once the signal is
// sent, so Kill waits a little for the container to stop (up to 2 s for
// SIGKILL, 0.5 s for a signal it may survive) to return with its outcome.
func (d *Driver) Kill(ctx context.Context, workloadID, signal string) error {
	var cid string
	err := d.do(ctx, workloadID, "killing", func(id string) error { cid = id; return d.cli.ContainerKill(ctx, id, signal) })
	if err != nil {
		return err
	}
	wait := 500 * time.Millisecond
	switch strings.ToUpper(strings.TrimPrefix(strings.ToUpper(signal), "SIG")) {
	case "", "KILL", "9":
		wait = 2 * time.Second
	}
	for end := time.Now().Add(wait); time.Now().Before(end); {
		info, err := d.cli.ContainerInspect(ctx, cid)
		if err != nil || info.State == nil || !info.State.Running {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// Update applies new limits in place. A new memory limit moves the swap
// limit along to twice the memory, Docker's default at create (Docker
// refuses a memory limit above the swap limit already set).
func (d *Driver) Update(ctx context.Context, workloadID string, r container.Resources) error {
	if r.Memory > 0 && r.MemorySwap == 0 {
		r.MemorySwap = 2 * r.Memory
	}
	return d.do(ctx, workloadID, "updating", func(id string) error {
		_, err := d.cli.ContainerUpdate(ctx, id, container.UpdateConfig{Resources: r})
		return err
	})
}

// Remove deletes the container (force: even when running). A container
// already gone is not an error.
func (d *Driver) Remove(ctx context.Context, workloadID string, force bool) error {
	err := d.do(ctx, workloadID, "removing", func(id string) error {
		return d.cli.ContainerRemove(ctx, id, container.RemoveOptions{Force: force})
	})
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// LogOptions select what Logs returns (Zun's logs query parameters).
type LogOptions struct {
	Stdout, Stderr, Timestamps bool
	Tail                       string // "all" or a count
	Since                      string // unix time or RFC 3339
}

// Logs returns the container's output, demultiplexed (stdout then stderr
// interleaved as written).
func (d *Driver) Logs(ctx context.Context, workloadID string, o LogOptions) (string, error) {
	info, err := d.inspect(ctx, workloadID)
	if err != nil {
		return "", err
	}
	if !o.Stdout && !o.Stderr {
		o.Stdout, o.Stderr = true, true
	}
	rc, err := d.cli.ContainerLogs(ctx, info.ID, container.LogsOptions{
		ShowStdout: o.Stdout, ShowStderr: o.Stderr, Timestamps: o.Timestamps, Tail: o.Tail, Since: o.Since,
	})
	if err != nil {
		return "", fmt.Errorf("reading logs of %s: %w", Name(workloadID), err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	if info.Config != nil && info.Config.Tty {
		_, err = io.Copy(&buf, rc)
	} else {
		_, err = stdcopy.StdCopy(&buf, &buf, rc)
	}
	if err != nil {
		return "", fmt.Errorf("reading logs of %s: %w", Name(workloadID), err)
	}
	return buf.String(), nil
}

// Exec runs cmd in the running container and waits for it.
func (d *Driver) Exec(ctx context.Context, workloadID string, cmd []string) (agentproto.ExecResult, error) {
	var res agentproto.ExecResult
	if len(cmd) == 0 {
		return res, errors.New("exec: empty command")
	}
	info, err := d.inspect(ctx, workloadID)
	if err != nil {
		return res, err
	}
	ex, err := d.cli.ContainerExecCreate(ctx, info.ID, container.ExecOptions{
		Cmd: cmd, AttachStdout: true, AttachStderr: true,
	})
	if err != nil {
		return res, fmt.Errorf("exec in %s: %w", Name(workloadID), err)
	}
	att, err := d.cli.ContainerExecAttach(ctx, ex.ID, container.ExecAttachOptions{})
	if err != nil {
		return res, fmt.Errorf("attaching to exec in %s: %w", Name(workloadID), err)
	}
	var buf bytes.Buffer
	_, err = stdcopy.StdCopy(&buf, &buf, att.Reader)
	att.Close()
	if err != nil {
		return res, fmt.Errorf("reading exec output in %s: %w", Name(workloadID), err)
	}
	res.Output = buf.String()
	// the stream ends when the process does; the exit code may trail it
	for i := 0; ; i++ {
		st, err := d.cli.ContainerExecInspect(ctx, ex.ID)
		if err != nil {
			return res, fmt.Errorf("inspecting exec in %s: %w", Name(workloadID), err)
		}
		if !st.Running || i >= 100 {
			res.ExitCode = st.ExitCode
			return res, nil
		}
		select {
		case <-ctx.Done():
			return res, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Stats samples the container once (Docker waits for a second sample, so
// the CPU percentage is a real delta) and presents it as Zun does.
func (d *Driver) Stats(ctx context.Context, workloadID string) (agentproto.Stats, error) {
	var out agentproto.Stats
	info, err := d.inspect(ctx, workloadID)
	if err != nil {
		return out, err
	}
	resp, err := d.cli.ContainerStats(ctx, info.ID, false)
	if err != nil {
		return out, fmt.Errorf("stats of %s: %w", Name(workloadID), err)
	}
	defer resp.Body.Close()
	var s container.StatsResponse
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return out, fmt.Errorf("decoding stats of %s: %w", Name(workloadID), err)
	}
	return statsView(&s), nil
}

func statsView(s *container.StatsResponse) agentproto.Stats {
	var out agentproto.Stats
	cpuDelta := float64(s.CPUStats.CPUUsage.TotalUsage) - float64(s.PreCPUStats.CPUUsage.TotalUsage)
	sysDelta := float64(s.CPUStats.SystemUsage) - float64(s.PreCPUStats.SystemUsage)
	online := float64(s.CPUStats.OnlineCPUs)
	if online == 0 {
		online = float64(len(s.CPUStats.CPUUsage.PercpuUsage))
	}
	if cpuDelta > 0 && sysDelta > 0 {
		out.CPUPercent = cpuDelta / sysDelta * online * 100
	}
	const mib = 1 << 20
	out.MemUsage = float64(s.MemoryStats.Usage) / mib
	out.MemLimit = float64(s.MemoryStats.Limit) / mib
	if s.MemoryStats.Limit > 0 {
		out.MemPercent = float64(s.MemoryStats.Usage) / float64(s.MemoryStats.Limit) * 100
	}
	var rd, wr uint64
	for _, e := range s.BlkioStats.IoServiceBytesRecursive {
		switch strings.ToLower(e.Op) {
		case "read":
			rd += e.Value
		case "write":
			wr += e.Value
		}
	}
	out.BlockIO = fmt.Sprintf("%d/%d", rd, wr)
	var rx, tx uint64
	for _, n := range s.Networks {
		rx += n.RxBytes
		tx += n.TxBytes
	}
	out.NetIO = fmt.Sprintf("%d/%d", rx, tx)
	return out
}

// Top lists the container's processes (`docker top`, ps_args as given).
func (d *Driver) Top(ctx context.Context, workloadID, psArgs string) (agentproto.Top, error) {
	var out agentproto.Top
	info, err := d.inspect(ctx, workloadID)
	if err != nil {
		return out, err
	}
	var args []string
	if f := strings.Fields(psArgs); len(f) > 0 {
		args = f
	}
	t, err := d.cli.ContainerTop(ctx, info.ID, args)
	if err != nil {
		return out, fmt.Errorf("top of %s: %w", Name(workloadID), err)
	}
	out.Titles, out.Processes = t.Titles, t.Processes
	if out.Processes == nil {
		out.Processes = [][]string{}
	}
	return out, nil
}

// Event is one lifecycle change of a container of this host.
type Event struct {
	WorkloadID  string
	ContainerID string
	// Action is Docker's: create, start, die, stop, pause, unpause,
	// destroy, oom, restart.
	Action string
	Time   time.Time
}

var watchedActions = []string{"create", "start", "die", "stop", "pause", "unpause", "destroy", "oom", "restart"}

// Events streams lifecycle changes of this host's containers until ctx
// ends or the daemon connection breaks (then the error channel gets the
// cause and both channels are done).
func (d *Driver) Events(ctx context.Context) (<-chan Event, <-chan error) {
	f := filters.NewArgs(
		filters.Arg("type", string(events.ContainerEventType)),
		filters.Arg("label", agentproto.LabelHost+"="+d.host),
	)
	for _, a := range watchedActions {
		f.Add("event", a)
	}
	msgs, errs := d.cli.Events(ctx, events.ListOptions{Filters: f})
	out := make(chan Event, 64)
	errc := make(chan error, 1)
	go func() {
		defer close(out)
		for {
			select {
			case m := <-msgs:
				wid := m.Actor.Attributes[agentproto.LabelWorkload]
				if wid == "" {
					continue
				}
				action := string(m.Action)
				if i := strings.IndexByte(action, ':'); i > 0 { // "exec_start: sh" style
					action = action[:i]
				}
				ev := Event{WorkloadID: wid, ContainerID: m.Actor.ID, Action: action, Time: time.Unix(0, m.TimeNano).UTC()}
				select {
				case out <- ev:
				case <-ctx.Done():
					errc <- ctx.Err()
					return
				}
			case err := <-errs:
				if err == nil {
					err = io.EOF
				}
				errc <- err
				return
			case <-ctx.Done():
				errc <- ctx.Err()
				return
			}
		}
	}()
	return out, errc
}
