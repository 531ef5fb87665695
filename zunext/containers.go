package zunext

import (
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/unisched/unisched/bridge"
	"github.com/unisched/unisched/bridge/agentproto"
	"github.com/unisched/unisched/bridge/scheduler"
	"github.com/unisched/unisched/internal/jsonschema"
	"github.com/unisched/unisched/internal/openstack"
)

// maxLimit is Zun's [api] max_limit.
const maxLimit = 1000

// pageParams reads the paging parameters every Zun list takes, with Zun's
// defaults and messages: limit (capped at maxLimit), sort_dir and sort_key
// (defaultKey when absent; each list checks the key against its fields).
func pageParams(q query, defaultKey string) (limit int, sortKey, sortDir string, err error) {
	limit = maxLimit
	if v, ok := q.get("limit"); ok {
		n, ok := pythonInt(v)
		if !ok || n <= 0 {
			return 0, "", "", errInvalid("Limit must be positive integer")
		}
		limit = min(n, maxLimit)
	}
	sortDir = "asc"
	if v, ok := q.get("sort_dir"); ok {
		sortDir = v
	}
	if sortDir != "asc" && sortDir != "desc" {
		return 0, "", "", errInvalid("Invalid sort direction: %s. Acceptable values are 'asc' or 'desc'", sortDir)
	}
	sortKey = defaultKey
	if v, ok := q.get("sort_key"); ok {
		sortKey = v
	}
	return limit, sortKey, sortDir, nil
}

// validStates is Zun's VALID_STATES (zun/common/utils.py) for the actions
// this API offers: the statuses each may start from.
var validStates = map[string][]string{
	"delete":                {statusCreated, statusError, statusStopped, statusDeleted, statusDead},
	"delete_force":          {statusCreated, statusCreating, statusError, statusRunning, statusStopped, statusUnknown, statusDeleted, statusDead, statusRestarting, "Rebuilding", statusDeleting},
	"delete_after_stop":     {statusRunning, statusCreated, statusError, statusStopped, statusDeleted, statusDead},
	"start":                 {statusCreated, statusStopped, statusError},
	"stop":                  {statusRunning},
	"reboot":                {statusCreated, statusRunning, statusStopped, statusError},
	"rebuild":               {statusCreated, statusRunning, statusStopped, statusError},
	"pause":                 {statusRunning},
	"unpause":               {statusPaused},
	"kill":                  {statusRunning},
	"execute":               {statusRunning},
	"execute_resize":        {statusRunning},
	"update":                {statusCreated, statusRunning, statusStopped, statusPaused},
	"attach":                {statusRunning},
	"resize":                {statusRunning},
	"top":                   {statusRunning},
	"get_archive":           {statusCreated, statusPaused, statusRunning, statusStopped},
	"put_archive":           {statusCreated, statusPaused, statusRunning, statusStopped},
	"logs":                  {statusCreated, statusError, statusPaused, statusRunning, statusStopped, statusUnknown},
	"stats":                 {statusRunning},
	"commit":                {statusRunning, statusStopped, statusPaused},
	"add_security_group":    {statusCreated, statusRunning, statusStopped, statusPaused},
	"remove_security_group": {statusCreated, statusRunning, statusStopped, statusPaused},
	"resize_container":      {statusCreated, statusRunning, statusStopped, statusPaused},
}

// checkState is Zun's validate_container_state.
func checkState(w bridge.Workload, action string) error {
	status, _, _ := zunStatus(w)
	if !slices.Contains(validStates[action], status) {
		return errInvalidState(action, w.ID, status)
	}
	return nil
}

// lookup is Zun's get_resource for a container: a uuid (in any form
// Python's uuid accepts) or a name; the caller's project only, except for
// admins, who see every project's containers. Others' containers are
// not found, never forbidden.
func (h *handler) lookup(r *http.Request, ident string) (bridge.Workload, error) {
	admin := isAdmin(r)
	visible := func(w bridge.Workload) bool {
		return w.Kind == scheduler.KindContainer && (admin || w.ProjectID == projectOf(r))
	}
	if id, ok := uuidLike(ident); ok {
		w, err := h.svc.Get(r.Context(), id)
		if errors.Is(err, bridge.ErrNotFound) || (err == nil && !visible(w)) {
			return bridge.Workload{}, errContainerNotFound(ident)
		}
		return w, err
	}
	f := bridge.ListFilter{Kind: scheduler.KindContainer, Name: ident}
	if !admin {
		f.ProjectID = projectOf(r)
	}
	ws, err := h.svc.List(r.Context(), f)
	if err != nil {
		return bridge.Workload{}, err
	}
	var found []bridge.Workload
	for _, w := range ws {
		if visible(w) && w.Name == ident {
			found = append(found, w)
		}
	}
	switch len(found) {
	case 0:
		return bridge.Workload{}, errContainerNotFound(ident)
	case 1:
		return found[0], nil
	}
	return bridge.Workload{}, errConflict("Multiple containers exist with same name. Please use the container uuid instead.")
}

// uuidLike is oslo's is_uuid_like: anything Python's uuid.UUID parses
// (dashes, braces, "urn:uuid:" optional), returned in canonical form.
func uuidLike(s string) (string, bool) {
	u, err := uuid.Parse(s)
	if err != nil {
		return "", false
	}
	return u.String(), true
}

// query is the request's query string in order, as WebOb's params keep it.
type query struct {
	keys   []string
	values map[string][]string
}

func parseQuery(r *http.Request) (query, error) {
	q := query{values: map[string][]string{}}
	for _, part := range strings.FieldsFunc(r.URL.RawQuery, func(c rune) bool { return c == '&' || c == ';' }) {
		k, v, _ := strings.Cut(part, "=")
		k, err1 := url.QueryUnescape(k)
		v, err2 := url.QueryUnescape(v)
		if err1 != nil || err2 != nil {
			return q, errInvalid("Invalid query string.")
		}
		if _, seen := q.values[k]; !seen {
			q.keys = append(q.keys, k)
		}
		q.values[k] = append(q.values[k], v)
	}
	return q, nil
}

func (q query) get(k string) (string, bool) {
	vs, ok := q.values[k]
	if !ok || len(vs) == 0 {
		return "", false
	}
	return vs[len(vs)-1], true
}

func (q query) validate(schema *jsonschema.Schema) error {
	return validateQuery(schema, q.values, q.keys, false)
}

// boolFromString is oslo's strutils.bool_from_string(strict=True).
func boolFromString(v any) (bool, bool) {
	switch t := v.(type) {
	case bool:
		return t, true
	case string:
		switch strings.ToLower(strings.TrimSpace(t)) {
		case "1", "t", "true", "on", "y", "yes":
			return true, true
		case "0", "f", "false", "off", "n", "no":
			return false, true
		}
	}
	return false, false
}

const boolChoices = "1, t, true, on, y, yes, 0, f, false, off, n, no"

// allProjects is Zun's is_all_projects.
// flagPair reads two boolean query flags that Zun checks together: each
// keeps its default when absent, and a bad value of either is one 400
// naming both.
func flagPair(q query, a, b string, defA, defB bool) (bool, bool, error) {
	vals := [2]bool{defA, defB}
	for i, name := range [2]string{a, b} {
		if s, ok := q.get(name); ok {
			if vals[i], ok = boolFromString(s); !ok {
				return false, false, errInvalid("Valid %s or %s values are: %s", a, b, boolChoices)
			}
		}
	}
	return vals[0], vals[1], nil
}

// allProjects reads the all_projects flag and, when it is set, checks the
// policy rule that lets the caller see past its project.
func allProjects(r *http.Request, q query, rule string) (bool, error) {
	v, ok := q.get("all_projects")
	if !ok || v == "" {
		return false, nil
	}
	b, ok := boolFromString(v)
	if !ok {
		return false, errInvalid("Valid all_projects values are: %s", boolChoices)
	}
	if b {
		if err := authorize(r, rule, ""); err != nil {
			return false, err
		}
	}
	return b, nil
}

func (h *handler) showContainer(w http.ResponseWriter, r *http.Request) error {
	q, err := parseQuery(r)
	if err != nil {
		return err
	}
	if _, err := allProjects(r, q, "container:get_one_all_projects"); err != nil {
		return err
	}
	c, err := h.lookup(r, r.PathValue("ident"))
	if err != nil {
		return err
	}
	if err := authorize(r, "container:get_one", c.ProjectID); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, containerView(r, c))
	return nil
}

var listFilters = []string{"name", "image", "project_id", "user_id", "memory", "host", "task_state", "status", "auto_remove"}

func (h *handler) listContainers(w http.ResponseWriter, r *http.Request) error {
	if err := authorize(r, "container:get_all", ""); err != nil {
		return err
	}
	q, err := parseQuery(r)
	if err != nil {
		return err
	}
	all, err := allProjects(r, q, "container:get_all_all_projects")
	if err != nil {
		return err
	}
	limit, sortKey, sortDir, err := pageParams(q, "id")
	if err != nil {
		return err
	}
	filters := map[string]string{}
	for _, f := range listFilters {
		if v, ok := q.get(f); ok {
			if err := authorize(r, "container:get_one:"+f, ""); err != nil {
				return err
			}
			filters[f] = v
		}
	}
	marker, hasMarker := q.get("marker")
	var unknown []string
	for _, k := range q.keys {
		switch k {
		case "all_projects", "limit", "sort_dir", "sort_key", "resource_url", "expand", "marker":
			continue
		}
		if _, ok := filters[k]; !ok {
			unknown = append(unknown, k)
		}
	}
	var markerW bridge.Workload
	if hasMarker && marker != "" {
		id, ok := uuidLike(marker)
		if !ok {
			return errContainerNotFound(marker)
		}
		markerW, err = h.svc.Get(r.Context(), id)
		if errors.Is(err, bridge.ErrNotFound) || (err == nil && (markerW.Kind != scheduler.KindContainer ||
			(!(all && isAdmin(r)) && markerW.ProjectID != projectOf(r)))) {
			return errContainerNotFound(marker)
		} else if err != nil {
			return err
		}
	}
	if len(unknown) > 0 {
		return errInvalid("Unknown parameters: %s", strings.Join(unknown, ", "))
	}
	lf := bridge.ListFilter{Kind: scheduler.KindContainer}
	if !(all && isAdmin(r)) {
		lf.ProjectID = projectOf(r)
	}
	ws, err := h.svc.List(r.Context(), lf)
	if err != nil {
		return err
	}
	views := make([]map[string]any, 0, len(ws))
	var full []map[string]any // unfiltered by policy, for filters and sorting
	for _, wl := range ws {
		if lf.ProjectID != "" && wl.ProjectID != lf.ProjectID {
			continue
		}
		v := containerView(r, wl)
		raw := rawFields(wl, v)
		if !matchFilters(raw, filters) {
			continue
		}
		views = append(views, v)
		full = append(full, raw)
	}
	cmp, err := containerOrder(sortKey, sortDir)
	if err != nil {
		return err
	}
	idx := make([]int, len(full))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp(full[a], full[b]) })
	ordered := make([]map[string]any, 0, len(idx))
	start := 0
	if markerW.ID != "" {
		// Zun pages from the marker's sort values, so a marker the
		// filters exclude still works
		m := rawFields(markerW, containerView(r, markerW))
		start = len(idx)
		for i, j := range idx {
			if cmp(full[j], m) > 0 {
				start = i
				break
			}
		}
	}
	for _, j := range idx[start:] {
		if len(ordered) == limit {
			break
		}
		ordered = append(ordered, views[j])
	}
	body := map[string]any{"containers": ordered, "next": nil}
	if len(ordered) > 0 && len(ordered) == limit {
		args := "?sort_key=" + sortKey + "&sort_dir=" + sortDir + "&limit=" + strconv.Itoa(limit) +
			"&marker=" + ordered[len(ordered)-1]["uuid"].(string)
		body["next"] = buildURL(hostURL(r), "containers", args, false)
	}
	writeJSON(w, http.StatusOK, body)
	return nil
}

// rawFields are the container's fields as Zun's database holds them, for
// filtering and sorting (policy does not hide fields from a filter).
func rawFields(wl bridge.Workload, v map[string]any) map[string]any {
	raw := make(map[string]any, len(v)+2)
	for k, val := range v {
		raw[k] = val
	}
	raw["host"] = wl.Host
	raw["_created"] = wl.CreatedAt
	raw["_id"] = wl.ID
	return raw
}

func matchFilters(raw map[string]any, filters map[string]string) bool {
	for k, want := range filters {
		got := raw[k]
		switch t := got.(type) {
		case nil:
			return false
		case string:
			if t != want {
				return false
			}
		case *bool:
			b, ok := boolFromString(want)
			if t == nil || !ok || *t != b {
				return false
			}
		default:
			if pyStr(t) != want {
				return false
			}
		}
	}
	return true
}

func (h *handler) createContainer(w http.ResponseWriter, r *http.Request) error {
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct != "application/json" {
		return &apiError{Status: http.StatusUnsupportedMediaType, Title: "Unsupported Media Type",
			Message: "Unexpected content type: " + ct + ". Expected content types are: ['application/json']"}
	}
	q, err := parseQuery(r)
	if err != nil {
		return err
	}
	if err := q.validate(queryCreate); err != nil {
		return err
	}
	doc, err := readBody(r)
	if err != nil {
		return err
	}
	v := versionFrom(r.Context())
	if err := validateBody(createSchema(v), doc); err != nil {
		return err
	}
	if err := authorize(r, "container:create", ""); err != nil {
		return err
	}
	body := doc.(*jsonschema.Object)
	run := false
	if s, ok := q.get("run"); ok {
		run, _ = boolFromString(s)
	}
	req, spec, err := h.buildCreate(r, v, body)
	if err != nil {
		return err
	}
	req.Container.Running = run
	raw, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	req.Spec = raw
	created, err := h.svc.Create(r.Context(), req)
	switch {
	case err == nil, errors.Is(err, bridge.ErrNoValidHost):
		// an unschedulable container is still created, in status Error
		if created.ID == "" {
			if created, err = h.svc.Get(r.Context(), req.ID); err != nil {
				return err
			}
		}
	case errors.Is(err, bridge.ErrInvalid):
		return invalidFromBridge(err)
	default:
		return err
	}
	w.Header().Set("Location", buildURL(hostURL(r), "containers", created.ID, false))
	writeJSON(w, http.StatusAccepted, containerView(r, created))
	return nil
}

// readBody decodes a JSON request body keeping key order, as the schema
// checks see it.
func readBody(r *http.Request) (any, error) {
	data, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return nil, errInvalid("Could not read the request body.")
	}
	if !utf8.Valid(data) {
		// JSON is UTF-8; bad bytes would reach PostgreSQL, which refuses them.
		return nil, errInvalid("Malformed JSON request body.")
	}
	doc, err := jsonschema.Decode(data)
	if err != nil {
		return nil, errInvalid("Malformed JSON request body.")
	}
	return doc, nil
}

// present reports whether key is in the body with a value other than
// null (Zun's "is not None").
func present(o *jsonschema.Object, key string) (any, bool) {
	v, ok := o.Get(key)
	return v, ok && v != nil
}

// truthy is Python's truth value of a decoded JSON value.
func truthy(v any) bool {
	switch t := v.(type) {
	case nil:
		return false
	case bool:
		return t
	case string:
		return t != ""
	case []any:
		return len(t) > 0
	case *jsonschema.Object:
		return t.Len() > 0
	case int64:
		return t != 0
	case float64:
		return t != 0
	}
	return true
}

func requireVersion(v version, param string, minor int) error {
	if !v.AtLeast(minor) {
		return errParamInVersion(param, v, "1."+strconv.Itoa(minor))
	}
	return nil
}

// buildCreate follows Zun's _do_post over a validated body: version and
// policy checks per field in Zun's order, defaults, and the refusals of
// what needs services this deployment does not have.
func (h *handler) buildCreate(r *http.Request, v version, b *jsonschema.Object) (bridge.CreateRequest, zunSpec, error) {
	var spec zunSpec
	fail := func(err error) (bridge.CreateRequest, zunSpec, error) { return bridge.CreateRequest{}, zunSpec{}, err }

	if sg, _ := b.Get("security_groups"); truthy(sg) {
		return fail(errNotSupported("security groups (this deployment has no Neutron)"))
	}
	if iv, ok := present(b, "interactive"); ok {
		spec.Interactive, _ = boolFromString(iv)
	}
	var autoRemove bool
	if ar, ok := present(b, "auto_remove"); ok {
		if err := requireVersion(v, "auto_remove", 3); err != nil {
			return fail(err)
		}
		autoRemove, _ = boolFromString(ar)
		spec.AutoRemove = &autoRemove
	}
	if rt, ok := present(b, "runtime"); ok {
		if err := requireVersion(v, "runtime", 5); err != nil {
			return fail(err)
		}
		if err := authorize(r, "container:create:runtime", ""); err != nil {
			return fail(err)
		}
		s := rt.(string)
		if s != "runc" {
			return fail(errNotSupported("runtime " + strconv.Quote(s) + " (only runc is available)"))
		}
		spec.Runtime = &s
	}
	if hn, ok := present(b, "hostname"); ok {
		if err := requireVersion(v, "hostname", 9); err != nil {
			return fail(err)
		}
		s := hn.(string)
		spec.Hostname = &s
	}
	if nets, _ := b.Get("nets"); truthy(nets) {
		return fail(errNotSupported("networks (this deployment has no Neutron)"))
	}
	if hc, _ := b.Get("healthcheck"); truthy(hc) {
		if err := requireVersion(v, "healthcheck", 22); err != nil {
			return fail(err)
		}
		spec.Healthcheck = map[string]any{}
		o := hc.(*jsonschema.Object)
		for _, k := range o.Keys() {
			val, _ := o.Get(k)
			if k == "cmd" {
				k = "test"
			}
			spec.Healthcheck[k] = plain(val)
		}
		if _, ok := spec.Healthcheck["test"]; !ok {
			spec.Healthcheck["test"] = ""
		}
	}
	if mounts, _ := b.Get("mounts"); truthy(mounts) {
		if err := requireVersion(v, "mounts", 11); err != nil {
			return fail(err)
		}
		return fail(errNotSupported("mounts (this deployment has no Cinder volumes)"))
	}
	cpuPolicy := "shared"
	if cp, ok := present(b, "cpu_policy"); ok {
		cpuPolicy = cp.(string)
	}
	spec.CPUPolicy = cpuPolicy
	if _, ok := present(b, "privileged"); ok {
		if err := requireVersion(v, "privileged", 21); err != nil {
			return fail(err)
		}
		if err := authorize(r, "container:create:privileged", ""); err != nil {
			return fail(err)
		}
	}
	spec.ImageDriver = "docker"
	if d, ok := present(b, "image_driver"); ok && d != "None" {
		if d == "glance" {
			return fail(errNotSupported("image driver glance (this deployment has no Glance)"))
		}
		spec.ImageDriver = d.(string)
	}
	if pp, ok := present(b, "image_pull_policy"); ok && truthy(pp) {
		if err := authorize(r, "container:create:image_pull_policy", ""); err != nil {
			return fail(err)
		}
		s := pp.(string)
		spec.ImagePullPolicy = &s
	}
	name := ""
	if n, ok := present(b, "name"); ok {
		name = n.(string)
	}
	if name == "" {
		letters := []string{"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota",
			"kappa", "lambda", "mu", "nu", "xi", "omicron", "pi", "rho", "sigma", "tau", "upsilon", "phi",
			"chi", "psi", "omega"}
		name = letters[rand.IntN(len(letters))] + "-" + strconv.Itoa(1+rand.IntN(24)) + "-container"
	}
	memory := int64(defaultMemoryMB)
	if m, ok := present(b, "memory"); ok {
		n, ok := intValue(m)
		if !ok {
			return fail(errInvalid("Invalid memory value %s.", pyStr(m)))
		}
		memory = n
	}
	spec.Memory = strconv.FormatInt(memory, 10)
	cpu := defaultCPU
	if c, ok := present(b, "cpu"); ok {
		f, ok := floatValue(c)
		if !ok {
			return fail(errInvalid("Invalid cpu value %s.", pyStr(c)))
		}
		cpu = f
	}
	spec.CPU = cpu
	var disk int64
	if d, ok := present(b, "disk"); ok {
		n, ok := intValue(d)
		if !ok {
			return fail(errInvalid("Invalid disk value %s.", pyStr(d)))
		}
		disk = n
		spec.Disk = &disk
	}
	restart := agentproto.RestartPolicy{}
	if rp, ok := present(b, "restart_policy"); ok && truthy(rp) {
		o := rp.(*jsonschema.Object)
		nameV, _ := o.Get("Name")
		restart.Name, _ = nameV.(string)
		count := "0"
		if c, ok := o.Get("MaximumRetryCount"); ok {
			count = pyStr(c)
		}
		n, ok := pythonInt(count)
		if c, has := o.Get("MaximumRetryCount"); has && c == nil {
			// null: int(None) fails in Zun
			ok = false
		}
		if !ok {
			return fail(errInvalid("Invalid MaximumRetryCount value %s.", count))
		}
		switch restart.Name {
		case "unless-stopped", "always":
			if n != 0 {
				return fail(errInvalid("maximum retry count not valid with restart policy of %s", restart.Name))
			}
		case "no":
			count, n = "0", 0
		}
		restart.MaximumRetryCount = n
		spec.RestartPolicy = map[string]string{"Name": restart.Name, "MaximumRetryCount": count}
	}
	if ep, ok := present(b, "exposed_ports"); ok {
		if err := requireVersion(v, "exposed_ports", 24); err != nil {
			return fail(err)
		}
		if truthy(ep) {
			return fail(errNotSupported("exposed ports (this deployment has no container networking)"))
		}
	}
	if reg, _ := b.Get("registry"); truthy(reg) {
		if err := requireVersion(v, "registry", 31); err != nil {
			return fail(err)
		}
		return fail(&apiError{Status: http.StatusNotFound, Code: "registry-not-found",
			Message: "Registry " + reg.(string) + " could not be found."})
	}
	requestedHost := ""
	if hv, _ := b.Get("host"); truthy(hv) {
		if err := authorize(r, "container:create:requested_destination", ""); err != nil {
			return fail(err)
		}
		requestedHost = hv.(string)
		spec.RequestedHost = requestedHost
	}

	// the fields without checks of their own
	imageV, _ := b.Get("image")
	spec.Image, _ = imageV.(string)
	if c, ok := present(b, "command"); ok {
		cmd, err := stringList("command", c)
		if err != nil {
			return fail(err)
		}
		spec.Command = cmd
	}
	if e, ok := present(b, "entrypoint"); ok {
		ep, err := stringList("entrypoint", e)
		if err != nil {
			return fail(err)
		}
		spec.Entrypoint = ep
	}
	var err error
	if spec.Environment, err = stringMap("environment", b); err != nil {
		return fail(err)
	}
	if spec.Labels, err = stringMap("labels", b); err != nil {
		return fail(err)
	}
	if wd, ok := present(b, "workdir"); ok {
		s := wd.(string)
		spec.Workdir = &s
	}
	if t, ok := present(b, "tty"); ok {
		spec.TTY, _ = boolFromString(t)
	}
	if v.AtLeast(20) && !v.AtLeast(36) {
		if _, ok := present(b, "interactive"); ok {
			spec.TTY = spec.Interactive
		}
	}
	if ah, ok := present(b, "auto_heal"); ok {
		a, _ := boolFromString(ah)
		spec.AutoHeal = &a
	}
	if az, ok := present(b, "availability_zone"); ok {
		s := az.(string)
		spec.AvailabilityZone = &s
	}
	if hints, ok := present(b, "hints"); ok {
		spec.Hints, _ = plain(hints).(map[string]any)
	}

	id := uuid.NewString()
	reqID := openstack.GlobalRequestIDFrom(r.Context())
	if reqID == "" {
		reqID = openstack.RequestIDFrom(r.Context())
	}
	az := ""
	if spec.AvailabilityZone != nil {
		az = *spec.AvailabilityZone
	}
	wd, hn := "", ""
	if spec.Workdir != nil {
		wd = *spec.Workdir
	}
	if spec.Hostname != nil {
		hn = *spec.Hostname
	}
	req := bridge.CreateRequest{
		ID:               id,
		Kind:             scheduler.KindContainer,
		Name:             name,
		ProjectID:        projectOf(r),
		UserID:           userOf(r),
		RequestID:        reqID,
		CPUPolicy:        scheduler.CPUPolicy(cpuPolicy),
		CPU:              cpu,
		MemoryMB:         memory,
		DiskGB:           disk,
		AvailabilityZone: az,
		Host:             requestedHost,
		Container: &agentproto.Container{
			WorkloadID:    id,
			Name:          name,
			ProjectID:     projectOf(r),
			Image:         spec.Image,
			Command:       spec.Command,
			Entrypoint:    spec.Entrypoint,
			Env:           spec.Environment,
			Labels:        spec.Labels,
			Workdir:       wd,
			Hostname:      hn,
			Tty:           spec.TTY,
			Interactive:   spec.Interactive,
			AutoRemove:    autoRemove,
			RestartPolicy: restart,
			CPUPolicy:     cpuPolicy,
			CPU:           cpu,
			MemoryMB:      memory,
			DiskGB:        disk,
		},
	}
	return req, spec, nil
}

// intValue reads a validated integer field (an integer or a digit string).
func intValue(v any) (int64, bool) {
	switch t := v.(type) {
	case int64:
		return t, true
	case float64:
		if t == float64(int64(t)) {
			return int64(t), true
		}
	case string:
		n, ok := pythonInt(t)
		return int64(n), ok
	}
	return 0, false
}

// floatValue reads a validated cpu (a number or a decimal string).
func floatValue(v any) (float64, bool) {
	switch t := v.(type) {
	case int64:
		return float64(t), true
	case float64:
		return t, true
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
		return f, err == nil
	}
	return 0, false
}

// stringList coerces a list as Zun's ListOfStringsField does: strings as
// they are, numbers and booleans as Python's str() writes them; a string
// (command before 1.20) is split as shlex.split does.
func stringList(field string, v any) ([]string, error) {
	if s, ok := v.(string); ok {
		parts, err := shlexSplit(s)
		if err != nil {
			return nil, errInvalid("Invalid %s %s: %s.", field, pyStr(s), err.Error())
		}
		return parts, nil
	}
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, e := range l {
		switch e.(type) {
		case string, int64, float64, bool:
			out = append(out, pyStr(e))
		default:
			return nil, errInvalid("Invalid %s element %s: expected a string.", field, pyStr(e))
		}
	}
	return out, nil
}

// stringMap coerces an object as Zun's DictOfStringsField does.
func stringMap(field string, b *jsonschema.Object) (map[string]string, error) {
	v, ok := present(b, field)
	if !ok {
		return map[string]string{}, nil
	}
	o := v.(*jsonschema.Object)
	out := make(map[string]string, o.Len())
	for _, k := range o.Keys() {
		e, _ := o.Get(k)
		switch e.(type) {
		case string, int64, float64, bool:
			out[k] = pyStr(e)
		default:
			return nil, errInvalid("Invalid %s value for %s: expected a string.", field, pyStr(k))
		}
	}
	return out, nil
}

// plain converts a decoded value into encoding/json's shapes.
func plain(v any) any {
	switch t := v.(type) {
	case *jsonschema.Object:
		m := make(map[string]any, t.Len())
		for _, k := range t.Keys() {
			e, _ := t.Get(k)
			m[k] = plain(e)
		}
		return m
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = plain(e)
		}
		return out
	}
	return v
}

func (h *handler) deleteContainer(w http.ResponseWriter, r *http.Request) error {
	q, err := parseQuery(r)
	if err != nil {
		return err
	}
	if err := q.validate(queryDelete); err != nil {
		return err
	}
	if _, err := allProjects(r, q, "container:delete_all_projects"); err != nil {
		return err
	}
	c, err := h.lookup(r, r.PathValue("ident"))
	if err != nil {
		return err
	}
	if err := authorize(r, "container:delete", c.ProjectID); err != nil {
		return err
	}
	force, stop, err := flagPair(q, "force", "stop", false, false)
	if err != nil {
		return err
	}
	v := versionFrom(r.Context())
	switch {
	case !force && !stop:
		if err := checkState(c, "delete"); err != nil {
			return err
		}
	case force && !stop:
		if err := requireVersion(v, "force", 7); err != nil {
			return err
		}
		if err := authorize(r, "container:delete_force", ""); err != nil {
			return err
		}
		if err := checkState(c, "delete_force"); err != nil {
			return err
		}
	default:
		if err := requireVersion(v, "stop", 12); err != nil {
			return err
		}
		if err := checkState(c, "delete_after_stop"); err != nil {
			return err
		}
		if status, _, _ := zunStatus(c); status == statusRunning {
			if err := authorize(r, "container:stop", c.ProjectID); err != nil {
				return err
			}
		}
	}
	if err := h.svc.Delete(r.Context(), c.ID, stop, force); err != nil {
		if errors.Is(err, bridge.ErrNotFound) {
			return errContainerNotFound(r.PathValue("ident"))
		}
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// updateContainer is PATCH: cpu and memory resize the container (a new
// claim on its host), name renames it.
func (h *handler) updateContainer(w http.ResponseWriter, r *http.Request) error {
	c, err := h.lookup(r, r.PathValue("ident"))
	if err != nil {
		return err
	}
	doc, err := readBody(r)
	if err != nil {
		return err
	}
	if err := validateBody(schemaUpdate, doc); err != nil {
		return err
	}
	if err := authorize(r, "container:update", c.ProjectID); err != nil {
		return err
	}
	if err := checkState(c, "update"); err != nil {
		return err
	}
	patch := doc.(*jsonschema.Object)
	if _, ok := patch.Get("auto_heal"); ok {
		return errNotSupported("changing auto_heal")
	}
	c, err = h.resize(r, c, patch)
	if err != nil {
		return err
	}
	if n, ok := present(patch, "name"); ok && n.(string) != c.Name {
		if c, err = h.svc.Rename(r.Context(), c.ID, n.(string)); err != nil {
			return err
		}
	}
	writeJSON(w, http.StatusOK, containerView(r, c))
	return nil
}

// resize applies cpu and memory of a validated patch, if any.
func (h *handler) resize(r *http.Request, c bridge.Workload, patch *jsonschema.Object) (bridge.Workload, error) {
	var cpu *float64
	var mem *int64
	if v, ok := present(patch, "cpu"); ok {
		f, ok := floatValue(v)
		if !ok {
			return c, errInvalid("Invalid cpu value %s.", pyStr(v))
		}
		cpu = &f
	}
	if v, ok := present(patch, "memory"); ok {
		n, ok := intValue(v)
		if !ok {
			return c, errInvalid("Invalid memory value %s.", pyStr(v))
		}
		mem = &n
	}
	if cpu == nil && mem == nil {
		return c, nil
	}
	out, err := h.svc.Resize(r.Context(), c.ID, cpu, mem)
	if errors.Is(err, bridge.ErrInvalid) {
		return c, errInvalid("%s", bridgeDetail(err, bridge.ErrInvalid))
	}
	if errors.Is(err, bridge.ErrNoValidHost) {
		return c, errConflict("The container cannot be resized on its host: %s", err.Error())
	}
	return out, err
}

// sortable are the container columns a list can sort on.
var sortable = map[string]bool{
	"id": true, "uuid": true, "name": true, "image": true, "status": true, "task_state": true, "host": true,
	"project_id": true, "user_id": true, "memory": true, "cpu": true, "created_at": true, "updated_at": true,
	"cpu_policy": true, "workdir": true, "hostname": true, "disk": true, "status_reason": true,
}

// containerOrder is Zun's pagination order: the sort key, then the id
// (creation order), both in the sort direction.
func containerOrder(key, dir string) (func(a, b map[string]any) int, error) {
	if !sortable[key] {
		return nil, errInvalidParameterValue("The sort_key value \"%s\" is an invalid field for sorting", key)
	}
	sign := 1
	if dir == "desc" {
		sign = -1
	}
	byID := func(a, b map[string]any) int {
		ta, tb := a["_created"].(time.Time), b["_created"].(time.Time)
		if c := ta.Compare(tb); c != 0 {
			return c
		}
		return strings.Compare(a["_id"].(string), b["_id"].(string))
	}
	return func(a, b map[string]any) int {
		if key != "id" {
			if c := compareValues(a[key], b[key]); c != 0 {
				return sign * c
			}
		}
		return sign * byID(a, b)
	}, nil
}

// compareValues orders column values with NULLs first, as an ascending
// SQL sort on MySQL does.
func compareValues(a, b any) int {
	if a == nil || b == nil {
		switch {
		case a == nil && b == nil:
			return 0
		case a == nil:
			return -1
		}
		return 1
	}
	switch x := a.(type) {
	case pyFloat:
		y, _ := b.(pyFloat)
		return cmpOrdered(float64(x), float64(y))
	case int64:
		y, _ := b.(int64)
		return cmpOrdered(x, y)
	case *string:
		y, _ := b.(*string)
		return compareValues(derefOrNil(x), derefOrNil(y))
	}
	if sa, ok := a.(string); ok {
		sb, _ := b.(string)
		if na, ok1 := pythonInt(sa); ok1 {
			if nb, ok2 := pythonInt(sb); ok2 {
				return cmpOrdered(na, nb)
			}
		}
		return strings.Compare(sa, sb)
	}
	return strings.Compare(pyStr(a), pyStr(b))
}

func derefOrNil(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}

func cmpOrdered[T int | int64 | float64](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// shlexSplit is Python's shlex.split (POSIX mode): whitespace separates
// words, quotes group, backslash escapes outside single quotes.
func shlexSplit(s string) ([]string, error) {
	var out []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\':
			if i+1 >= len(s) {
				return nil, errors.New("No escaped character")
			}
			i++
			cur.WriteByte(s[i])
			inWord = true
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("No closing quotation")
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			i++
			closed := false
			for ; i < len(s); i++ {
				if s[i] == '"' {
					closed = true
					break
				}
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\\\"$`\n", s[i+1]) >= 0 {
					i++
				}
				cur.WriteByte(s[i])
			}
			if !closed {
				return nil, errors.New("No closing quotation")
			}
			inWord = true
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		out = append(out, cur.String())
	}
	return out, nil
}
