package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/unisched/unisched/bridge"
	"github.com/unisched/unisched/bridge/agentproto"
	"github.com/unisched/unisched/bridge/ledger"
	"github.com/unisched/unisched/bridge/scheduler"
	"github.com/unisched/unisched/internal/openstack"
)

// workloadEntry is one element of POST /v1/workloads' "workloads". Whole
// numbers are read as float64 because JSON (and the schema) call 512.0 an
// integer; the schema has already bounded them.
type workloadEntry struct {
	Kind             string      `json:"kind"`
	ID               string      `json:"id"`
	Name             string      `json:"name"`
	CPUPolicy        string      `json:"cpu_policy"`
	CPU              float64     `json:"cpu"`
	MemoryMB         float64     `json:"memory_mb"`
	DiskGB           float64     `json:"disk_gb"`
	NUMA             *numaEntry  `json:"numa"`
	RequiredTraits   []string    `json:"required_traits"`
	ForbiddenTraits  []string    `json:"forbidden_traits"`
	MemberOf         [][]string  `json:"member_of"`
	AvailabilityZone string      `json:"availability_zone"`
	Host             string      `json:"host"`
	Group            *groupEntry `json:"group"`

	// kind container
	Image         string            `json:"image"`
	Command       []string          `json:"command"`
	Entrypoint    []string          `json:"entrypoint"`
	Environment   map[string]string `json:"environment"`
	Labels        map[string]string `json:"labels"`
	Workdir       string            `json:"workdir"`
	Hostname      string            `json:"hostname"`
	Tty           bool              `json:"tty"`
	Interactive   bool              `json:"interactive"`
	Privileged    bool              `json:"privileged"`
	AutoRemove    bool              `json:"auto_remove"`
	Run           *bool             `json:"run"`
	RestartPolicy *struct {
		Name              string  `json:"name"`
		MaximumRetryCount float64 `json:"maximum_retry_count"`
	} `json:"restart_policy"`

	// kind vm: recorded with the workload for the Nova integration.
	Flavor string `json:"flavor"`
}

type numaEntry struct {
	Cells    float64   `json:"cells"`
	MemoryMB []float64 `json:"memory_mb"`
}

type groupEntry struct {
	ID         string  `json:"id"`
	Policy     string  `json:"policy"`
	MaxPerHost float64 `json:"max_per_host"`
}

// decodeStrict decodes a body the schema accepted.
func decodeStrict(body []byte, dst any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	return dec.Decode(dst)
}

// createWorkloads is POST /v1/workloads: every entry is checked before
// any is created; they are then created in order. An entry no host can
// take is answered in state error (the others keep their claims); an
// entry the coordinator refuses otherwise undoes the ones created before
// it and fails the request.
func (h *Handler) createWorkloads(w http.ResponseWriter, r *http.Request) error {
	projectID, err := project(r)
	if err != nil {
		return err
	}
	var body struct {
		Workloads []json.RawMessage `json:"workloads"`
	}
	if err := h.readJSON(r, createWorkloadsSchema, &body); err != nil {
		return err
	}
	creds := credentials(r)
	reqs := make([]bridge.CreateRequest, len(body.Workloads))
	clientIDs := make([]bool, len(body.Workloads))
	seen := map[string]int{}
	for i, raw := range body.Workloads {
		var e workloadEntry
		if err := decodeStrict(raw, &e); err != nil {
			return badRequest("Invalid input for workloads[%d]: %v", i, err)
		}
		req, err := e.request(r, i)
		if err != nil {
			return err
		}
		if j, dup := seen[req.ID]; dup {
			return badRequest("Invalid input for workloads[%d].id: %s is also the id of workloads[%d]", i, req.ID, j)
		}
		seen[req.ID] = i
		clientIDs[i] = e.ID != ""
		req.ProjectID, req.UserID, req.RequestID = projectID, creds.UserID, requestID(r)
		if req.Container != nil {
			req.Container.ProjectID = projectID
		}
		req.Spec = raw
		if err := bridge.CheckCreateStrings(&req); err != nil {
			return prefixDetail(serviceError(err, "checking workloads"), fmt.Sprintf("workloads[%d]: ", i))
		}
		reqs[i] = req
	}

	// ids the client chose are checked before anything is created: a
	// refusal after some entries were created can only be undone through
	// their agents (see undo)
	for i, e := range reqs {
		if !clientIDs[i] {
			continue
		}
		_, err := h.cfg.Service.Get(r.Context(), e.ID)
		switch {
		case err == nil:
			return openstack.Errorf(http.StatusConflict, codeConflict, "workloads[%d]: workload %s already exists.", i, e.ID)
		case !errors.Is(err, bridge.ErrNotFound):
			return serviceError(err, "checking workload ids")
		}
	}

	views := make([]workloadView, 0, len(reqs))
	var created []string
	for i, req := range reqs {
		wl, err := h.cfg.Service.Create(r.Context(), req)
		switch {
		case err == nil:
		case errors.Is(err, bridge.ErrNoValidHost):
			// kept in state error with the reason: reported, not failed
			if wl.ID == "" {
				if wl, err = h.cfg.Service.Get(r.Context(), req.ID); err != nil {
					h.undo(r, created)
					return serviceError(err, "reading a workload without a host")
				}
			}
		default:
			h.undo(r, created)
			return prefixDetail(serviceError(err, fmt.Sprintf("creating workloads[%d]", i)), fmt.Sprintf("workloads[%d]: ", i))
		}
		created = append(created, wl.ID)
		views = append(views, h.view(r.Context(), wl, true))
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"workloads": views})
	return nil
}

// undo deletes the workloads a failed request created (stop and force),
// so that a refused instruction leaves nothing running: one that never
// reached a host goes at once, the others turn deleting and release
// their claims when their agents confirm, as any delete. Failures are
// logged: the workloads stay visible to their owner, who can delete them.
func (h *Handler) undo(r *http.Request, ids []string) {
	ctx := context.WithoutCancel(r.Context())
	for _, id := range ids {
		if err := h.cfg.Service.Delete(ctx, id, true, true); err != nil {
			h.log.ErrorContext(ctx, "undoing a workload of a refused request", "workload", id, "error", err)
		}
	}
}

// request turns a checked entry into the coordinator's request.
func (e *workloadEntry) request(r *http.Request, i int) (bridge.CreateRequest, error) {
	field := func(name string) string { return fmt.Sprintf("workloads[%d].%s", i, name) }
	req := bridge.CreateRequest{
		Kind:             scheduler.Kind(e.Kind),
		Name:             e.Name,
		CPUPolicy:        scheduler.CPUShared,
		CPU:              e.CPU,
		MemoryMB:         int64(e.MemoryMB),
		DiskGB:           int64(e.DiskGB),
		RequiredTraits:   e.RequiredTraits,
		ForbiddenTraits:  e.ForbiddenTraits,
		MemberOf:         e.MemberOf,
		AvailabilityZone: e.AvailabilityZone,
		Host:             e.Host,
	}
	if e.CPUPolicy != "" {
		req.CPUPolicy = scheduler.CPUPolicy(e.CPUPolicy)
	}
	if e.ID != "" {
		u, err := uuid.Parse(e.ID)
		if err != nil {
			return req, badRequest("Invalid input for %s: %q is not a uuid", field("id"), e.ID)
		}
		req.ID = u.String()
	} else {
		req.ID = uuid.NewString()
	}
	if e.Host != "" && !isAdmin(r) {
		return req, forbidden("Only administrators may choose the host (%s).", field("host"))
	}
	for _, t := range e.RequiredTraits {
		if slices.Contains(e.ForbiddenTraits, t) {
			return req, badRequest("Invalid input for %s: trait %s is both required and forbidden", field("forbidden_traits"), t)
		}
	}
	if n := e.NUMA; n != nil {
		req.NUMA.Cells = int(n.Cells)
		if len(n.MemoryMB) > 0 {
			if len(n.MemoryMB) != req.NUMA.Cells {
				return req, badRequest("Invalid input for %s: %d cells but memory given for %d", field("numa.memory_mb"), req.NUMA.Cells, len(n.MemoryMB))
			}
			var sum int64
			for _, m := range n.MemoryMB {
				req.NUMA.MemoryMB = append(req.NUMA.MemoryMB, int64(m))
				sum += int64(m)
			}
			if sum != req.MemoryMB {
				return req, badRequest("Invalid input for %s: the cells' memory adds up to %d, not memory_mb %d", field("numa.memory_mb"), sum, req.MemoryMB)
			}
		}
		cpus := int64(math.Ceil(e.CPU))
		if cpus%int64(req.NUMA.Cells) != 0 {
			return req, badRequest("Invalid input for %s: %d CPUs cannot be split evenly over %d NUMA cells", field("numa.cells"), cpus, req.NUMA.Cells)
		}
		if len(n.MemoryMB) == 0 && req.MemoryMB%int64(req.NUMA.Cells) != 0 {
			return req, badRequest("Invalid input for %s: %d MB cannot be split evenly over %d NUMA cells", field("numa.cells"), req.MemoryMB, req.NUMA.Cells)
		}
	}
	if g := e.Group; g != nil {
		req.Group = &scheduler.Group{ID: g.ID, Policy: scheduler.GroupPolicy(g.Policy), MaxPerHost: int(g.MaxPerHost)}
	}
	if req.Kind != scheduler.KindContainer {
		return req, nil
	}
	if e.Privileged && !isAdmin(r) {
		return req, forbidden("Only administrators may run privileged containers (%s).", field("privileged"))
	}
	c := &agentproto.Container{
		WorkloadID:  req.ID,
		Name:        e.Name,
		Image:       e.Image,
		Command:     e.Command,
		Entrypoint:  e.Entrypoint,
		Env:         e.Environment,
		Labels:      e.Labels,
		Workdir:     e.Workdir,
		Hostname:    e.Hostname,
		Tty:         e.Tty,
		Interactive: e.Interactive,
		Privileged:  e.Privileged,
		AutoRemove:  e.AutoRemove,
		CPUPolicy:   string(req.CPUPolicy),
		CPU:         req.CPU,
		MemoryMB:    req.MemoryMB,
		DiskGB:      req.DiskGB,
		Running:     e.Run == nil || *e.Run,
	}
	if rp := e.RestartPolicy; rp != nil {
		if rp.MaximumRetryCount > 0 && rp.Name != "on-failure" {
			return req, badRequest("Invalid input for %s: maximum_retry_count applies to the on-failure policy only", field("restart_policy"))
		}
		if e.AutoRemove && rp.Name != "no" {
			return req, badRequest("Invalid input for %s: auto_remove conflicts with restart policy %q", field("auto_remove"), rp.Name)
		}
		c.RestartPolicy = agentproto.RestartPolicy{Name: rp.Name, MaximumRetryCount: int(rp.MaximumRetryCount)}
	}
	req.Container = c
	return req, nil
}

// workloadView is a workload as this API shows it (docs/api/workloads.md).
type workloadView struct {
	ID           string           `json:"id"`
	Kind         string           `json:"kind"`
	Name         string           `json:"name"`
	ProjectID    string           `json:"project_id"`
	UserID       string           `json:"user_id"`
	State        string           `json:"state"`
	StatusReason string           `json:"status_reason"`
	CPUPolicy    string           `json:"cpu_policy"`
	CPU          float64          `json:"cpu"`
	MemoryMB     int64            `json:"memory_mb"`
	DiskGB       int64            `json:"disk_gb"`
	Resources    map[string]int64 `json:"resources"`
	// Host is null while the workload holds nothing.
	Host       *string    `json:"host"`
	NUMACells  []cellView `json:"numa_cells"`
	PinnedCPUs string     `json:"pinned_cpus"`
	// Container is the desired container (kind container).
	Container *agentproto.Container `json:"container,omitempty"`
	// Runtime is null until the agent reported.
	Runtime   *runtimeView  `json:"runtime"`
	Decision  *decisionView `json:"decision,omitempty"`
	RequestID string        `json:"request_id"`
	CreatedAt time.Time     `json:"created_at"`
	UpdatedAt time.Time     `json:"updated_at"`
}

type cellView struct {
	Cell     int    `json:"cell"`
	CPUs     string `json:"cpus"`
	MemoryMB int64  `json:"memory_mb"`
}

type runtimeView struct {
	Status      string `json:"status"`
	Reason      string `json:"reason"`
	ContainerID string `json:"container_id"`
	ExitCode    *int   `json:"exit_code"`
}

// decisionView is the scheduler's newest decision about the workload:
// the host it chose (null: none fitted, error says why), the runners-up
// and how many hosts each filter left out.
type decisionView struct {
	RequestID    string                   `json:"request_id"`
	Host         *string                  `json:"host"`
	ProviderUUID string                   `json:"provider_uuid,omitempty"`
	Score        float64                  `json:"score"`
	Placement    *ledger.PlacementRecord  `json:"placement,omitempty"`
	Alternates   []ledger.AlternateRecord `json:"alternates"`
	Stats        ledger.StatsRecord       `json:"stats"`
	Filters      []ledger.FilterRecord    `json:"filters"`
	Error        string                   `json:"error,omitempty"`
	CreatedAt    time.Time                `json:"created_at"`
}

// view renders a workload; withDecision adds the scheduler's decision
// (one more query, so not for lists).
func (h *Handler) view(ctx context.Context, wl bridge.Workload, withDecision bool) workloadView {
	v := workloadView{
		ID: wl.ID, Kind: string(wl.Kind), Name: wl.Name, ProjectID: wl.ProjectID, UserID: wl.UserID,
		State: string(wl.State), StatusReason: wl.StatusReason, CPUPolicy: string(wl.CPUPolicy),
		CPU:       float64(wl.Resources.VCPU + wl.Resources.PCPU),
		MemoryMB:  wl.Resources.MemoryMB,
		DiskGB:    wl.Resources.DiskGB,
		Resources: map[string]int64{},
		NUMACells: []cellView{},
		Container: wl.Container,
		RequestID: wl.RequestID,
		CreatedAt: wl.CreatedAt,
		UpdatedAt: wl.UpdatedAt,
	}
	if wl.Container != nil && wl.Container.CPU > 0 {
		v.CPU = wl.Container.CPU
	}
	for _, rc := range scheduler.ResourceClasses {
		if n := wl.Resources.Amount(rc); n > 0 {
			v.Resources[string(rc)] = n
		}
	}
	host := wl.Host
	if host == "" {
		host = wl.Assignment.Host
	}
	if host != "" {
		v.Host = &host
	}
	for _, c := range wl.Assignment.Cells {
		v.NUMACells = append(v.NUMACells, cellView{Cell: c.Cell, CPUs: c.CPUs.String(), MemoryMB: c.MemoryMB})
	}
	v.PinnedCPUs = wl.Assignment.Pinned().String()
	if rt := wl.Runtime; rt != (bridge.Runtime{}) {
		v.Runtime = &runtimeView{Status: rt.Status, Reason: rt.Reason, ContainerID: rt.ContainerID, ExitCode: rt.ExitCode}
	}
	if withDecision && h.cfg.LatestDecision != nil {
		d, err := h.cfg.LatestDecision(ctx, wl.ID)
		switch {
		case err == nil:
			dv := &decisionView{RequestID: d.RequestID, ProviderUUID: d.ProviderUUID, Score: d.Score, Placement: d.Placement,
				Alternates: d.Alternates, Stats: d.Stats, Filters: d.Filters, Error: d.Error, CreatedAt: d.CreatedAt}
			if d.Host != "" {
				dv.Host = &d.Host
			}
			if dv.Alternates == nil {
				dv.Alternates = []ledger.AlternateRecord{}
			}
			if dv.Filters == nil {
				dv.Filters = []ledger.FilterRecord{}
			}
			v.Decision = dv
		case errors.Is(err, ledger.ErrNotFound):
		default:
			// the decision is an explanation, not the workload: leave it
			// out rather than fail the read
			h.log.WarnContext(ctx, "reading a workload's decision", "workload", wl.ID, "error", err)
		}
	}
	return v
}

// listQuery is GET /v1/workloads' query string.
var listParams = []string{"kind", "name", "host", "project_id", "limit", "marker"}

const maxLimit = 1000

// listWorkloads is GET /v1/workloads: a member sees its project's
// workloads, an admin every project's (or one, with project_id).
func (h *Handler) listWorkloads(w http.ResponseWriter, r *http.Request) error {
	q, err := query(r, listParams...)
	if err != nil {
		return err
	}
	f := bridge.ListFilter{Name: q.Get("name"), Limit: maxLimit}
	if k := q.Get("kind"); k != "" {
		if k != string(scheduler.KindVM) && k != string(scheduler.KindContainer) {
			return badRequest("Invalid query parameter kind: %q is neither \"vm\" nor \"container\"", k)
		}
		f.Kind = scheduler.Kind(k)
	}
	admin := isAdmin(r)
	if p := q.Get("project_id"); q.Has("project_id") {
		own, _ := project(r)
		if !admin && p != own {
			return forbidden("Only administrators may list other projects' workloads.")
		}
		if p == "" {
			return badRequest("Invalid query parameter project_id: empty")
		}
		f.ProjectID = p
	}
	if !admin {
		own, err := project(r)
		if err != nil {
			return err
		}
		f.ProjectID = own
	}
	if q.Has("host") {
		if !admin {
			return forbidden("Only administrators may filter workloads by host.")
		}
		if f.Host = q.Get("host"); f.Host == "" {
			return badRequest("Invalid query parameter host: empty")
		}
	}
	if q.Has("limit") {
		n, err := strconv.Atoi(q.Get("limit"))
		if err != nil || n < 1 || n > maxLimit {
			return badRequest("Invalid query parameter limit: %q is not an integer from 1 to %d", q.Get("limit"), maxLimit)
		}
		f.Limit = n
	}
	if q.Has("marker") {
		u, err := uuid.Parse(q.Get("marker"))
		if err != nil {
			return badRequest("Invalid query parameter marker: %q is not a uuid", q.Get("marker"))
		}
		f.Marker = u.String()
	}
	wls, err := h.cfg.Service.List(r.Context(), f)
	if err != nil {
		if errors.Is(err, bridge.ErrNotFound) && f.Marker != "" {
			return badRequest("Invalid query parameter marker: no workload %s", f.Marker)
		}
		return serviceError(err, "listing workloads")
	}
	views := make([]workloadView, 0, len(wls))
	for _, wl := range wls {
		if !visible(r, wl.ProjectID) {
			// the coordinator filtered by project already; this is the
			// second lock on the door
			continue
		}
		views = append(views, h.view(r.Context(), wl, false))
	}
	out := map[string]any{"workloads": views}
	if len(wls) == f.Limit && len(wls) > 0 {
		next := url.Values{}
		for k, vs := range q {
			next[k] = vs
		}
		next.Set("limit", strconv.Itoa(f.Limit))
		next.Set("marker", wls[len(wls)-1].ID)
		out["next"] = "/v1/workloads?" + next.Encode()
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// lookup loads the workload of the path, answering 404 for one the
// caller may not see (another project's), as for one that does not exist.
func (h *Handler) lookup(r *http.Request) (bridge.Workload, error) {
	raw := pathVar(r, "id")
	u, err := uuid.Parse(raw)
	if err != nil {
		return bridge.Workload{}, notFound("No workload %s.", raw)
	}
	id := u.String()
	if !isAdmin(r) {
		if _, err := project(r); err != nil {
			return bridge.Workload{}, err
		}
	}
	wl, err := h.cfg.Service.Get(r.Context(), id)
	if err != nil {
		if errors.Is(err, bridge.ErrNotFound) {
			return wl, notFound("No workload %s.", id)
		}
		return wl, serviceError(err, "reading workload "+id)
	}
	if !visible(r, wl.ProjectID) {
		return bridge.Workload{}, notFound("No workload %s.", id)
	}
	return wl, nil
}

// getWorkload is GET /v1/workloads/{id}.
func (h *Handler) getWorkload(w http.ResponseWriter, r *http.Request) error {
	if _, err := query(r); err != nil {
		return err
	}
	wl, err := h.lookup(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, h.view(r.Context(), wl, true))
	return nil
}

// deleteWorkload is DELETE /v1/workloads/{id}?stop=&force=, with Zun's
// rules: a running container needs stop or force (409 otherwise).
func (h *Handler) deleteWorkload(w http.ResponseWriter, r *http.Request) error {
	q, err := query(r, "stop", "force")
	if err != nil {
		return err
	}
	stop, err := boolParam(q, "stop")
	if err != nil {
		return err
	}
	force, err := boolParam(q, "force")
	if err != nil {
		return err
	}
	wl, err := h.lookup(r)
	if err != nil {
		return err
	}
	if !stop && !force && !deletableAsIs(wl) {
		status := wl.Runtime.Status
		if status == "" {
			status = "Creating"
		}
		return openstack.Errorf(http.StatusConflict, codeConflict,
			"Cannot delete container %s in status %s: give stop=true or force=true.", wl.ID, status)
	}
	if err := h.cfg.Service.Delete(r.Context(), wl.ID, stop, force); err != nil {
		if errors.Is(err, bridge.ErrNotFound) {
			return notFound("No workload %s.", wl.ID)
		}
		return serviceError(err, "deleting workload "+wl.ID)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// deletableAsIs is Zun's rule for a delete without stop or force: a
// container must not be running (nor still being created); a VM, a
// workload holding nothing and one already being deleted always go.
func deletableAsIs(wl bridge.Workload) bool {
	if wl.Kind != scheduler.KindContainer {
		return true
	}
	switch wl.State {
	case ledger.StatePending, ledger.StateError, ledger.StateDeleting:
		return true
	}
	switch wl.Runtime.Status {
	case agentproto.StatusCreated, agentproto.StatusStopped, agentproto.StatusDead, agentproto.StatusError, agentproto.StatusDeleted:
		return true
	}
	return false
}

// query parses the query string, refusing parameters the route does not
// know and parameters given twice.
func query(r *http.Request, known ...string) (url.Values, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, badRequest("Invalid query string: %v", err)
	}
	for k, vs := range q {
		if !slices.Contains(known, k) {
			if len(known) == 0 {
				return nil, badRequest("Invalid query parameter %s: this resource takes none", k)
			}
			return nil, badRequest("Invalid query parameter %s: expected one of %s", k, strings.Join(known, ", "))
		}
		if len(vs) > 1 {
			return nil, badRequest("Invalid query parameter %s: given %d times", k, len(vs))
		}
	}
	return q, nil
}

// boolParam reads a boolean as oslo's strict bool_from_string does.
func boolParam(q url.Values, name string) (bool, error) {
	if !q.Has(name) {
		return false, nil
	}
	switch strings.ToLower(strings.TrimSpace(q.Get(name))) {
	case "1", "t", "true", "on", "y", "yes":
		return true, nil
	case "0", "f", "false", "off", "n", "no":
		return false, nil
	}
	return false, badRequest("Invalid query parameter %s: %q is not a boolean", name, q.Get(name))
}
