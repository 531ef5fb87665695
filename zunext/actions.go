package zunext

import (
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/unisched/unisched/bridge"
	"github.com/unisched/unisched/bridge/agentproto"
	"github.com/unisched/unisched/internal/jsonschema"
)

// actionFunc handles an action on a container found and visible to the
// caller.
type actionFunc func(w http.ResponseWriter, r *http.Request, c bridge.Workload, q query) error

// actionVersions are the microversion ranges of Zun's versioned actions.
var actionVersions = map[string][2]int{
	"rename":                {1, 13},
	"resize_container":      {19, 1 << 30},
	"add_security_group":    {1, 14},
	"remove_security_group": {1, 14},
	"network_detach":        {6, 1 << 30},
	"network_attach":        {8, 1 << 30},
	"network_list":          {13, 1 << 30},
}

// actionQueries are the query schemas of the actions. kill's is checked
// as Zun checks a body (its error text says "field").
var actionQueries = map[string]struct {
	schema *jsonschema.Schema
	asBody bool
}{
	"stop":    {queryTimeout, false},
	"reboot":  {queryTimeout, false},
	"kill":    {querySignal, true},
	"rename":  {queryRename, false},
	"logs":    {queryLogs, false},
	"top":     {queryTop, false},
	"execute": {queryExec, false},
}

// containerAction wraps an action: the version range (406 outside, as
// Zun's versioned controllers answer), the lookup (404 for containers the
// caller may not see) and the policy check on the container.
func (h *handler) containerAction(action string, fn actionFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		v := versionFrom(r.Context())
		if rng, ok := actionVersions[action]; ok && (v.Minor < rng[0] || v.Minor > rng[1]) {
			return errNoVersionMatch(v)
		}
		q, err := parseQuery(r)
		if err != nil {
			return err
		}
		// Zun validates the query before it looks the container up
		if aq, ok := actionQueries[action]; ok {
			if err := validateQuery(aq.schema, q.values, q.keys, aq.asBody); err != nil {
				return err
			}
		}
		c, err := h.lookup(r, r.PathValue("ident"))
		if err != nil {
			return err
		}
		if err := authorize(r, "container:"+action, c.ProjectID); err != nil {
			return err
		}
		return fn(w, r, c, q)
	}
}

// simpleAction records a state change with the coordinator; the agent
// carries it out, and the container's status follows its reports.
func (h *handler) simpleAction(w http.ResponseWriter, r *http.Request, c bridge.Workload, action string, args bridge.ActionArgs) error {
	if err := checkState(c, action); err != nil {
		return err
	}
	if _, err := h.svc.Action(r.Context(), c.ID, action, args); err != nil {
		if errors.Is(err, bridge.ErrConflict) {
			status, _, _ := zunStatus(c)
			return errInvalidState(action, c.ID, status)
		}
		return err
	}
	w.WriteHeader(http.StatusAccepted)
	return nil
}

func (h *handler) start(w http.ResponseWriter, r *http.Request, c bridge.Workload, q query) error {
	return h.simpleAction(w, r, c, agentproto.ActionStart, bridge.ActionArgs{})
}

func (h *handler) pause(w http.ResponseWriter, r *http.Request, c bridge.Workload, q query) error {
	return h.simpleAction(w, r, c, agentproto.ActionPause, bridge.ActionArgs{})
}

func (h *handler) unpause(w http.ResponseWriter, r *http.Request, c bridge.Workload, q query) error {
	return h.simpleAction(w, r, c, agentproto.ActionUnpause, bridge.ActionArgs{})
}

func timeoutArg(q query) (int, error) {
	s, ok := q.get("timeout")
	if !ok || s == "" {
		return 0, nil
	}
	n, _ := pythonInt(s)
	return n, nil
}

func (h *handler) stop(w http.ResponseWriter, r *http.Request, c bridge.Workload, q query) error {
	t, err := timeoutArg(q)
	if err != nil {
		return err
	}
	return h.simpleAction(w, r, c, agentproto.ActionStop, bridge.ActionArgs{Timeout: t})
}

func (h *handler) reboot(w http.ResponseWriter, r *http.Request, c bridge.Workload, q query) error {
	t, err := timeoutArg(q)
	if err != nil {
		return err
	}
	return h.simpleAction(w, r, c, agentproto.ActionReboot, bridge.ActionArgs{Timeout: t})
}

func (h *handler) kill(w http.ResponseWriter, r *http.Request, c bridge.Workload, q query) error {
	sig, _ := q.get("signal")
	return h.simpleAction(w, r, c, agentproto.ActionKill, bridge.ActionArgs{Signal: canonicalSignal(sig)})
}

// renameAction is the rename action of versions up to 1.13.
func (h *handler) renameAction(w http.ResponseWriter, r *http.Request, c bridge.Workload, q query) error {
	name, ok := q.get("name")
	if !ok {
		return errInvalid("Missing argument: name")
	}
	if name == c.Name {
		return errConflict("The new name for the container is the same as the old name.")
	}
	out, err := h.svc.Rename(r.Context(), c.ID, name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, containerView(r, out))
	return nil
}

// resizeContainer is the resize_container action (1.19): cpu and memory.
func (h *handler) resizeContainer(w http.ResponseWriter, r *http.Request, c bridge.Workload, q query) error {
	doc, err := readBody(r)
	if err != nil {
		return err
	}
	if err := validateBody(schemaUpdate, doc); err != nil {
		return err
	}
	if err := checkState(c, "resize_container"); err != nil {
		return err
	}
	out, err := h.resize(r, c, doc.(*jsonschema.Object))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, containerView(r, out))
	return nil
}

// agentFailed renders a failed agent call: the agent's own 4xx answers
// as they are; an agent that cannot be reached as Zun's "host is not up",
// with the transport error in the log only.
func (h *handler) agentFailed(r *http.Request, c bridge.Workload, err error) error {
	var ae *agentError
	if errors.As(err, &ae) && ae.status >= 400 && ae.status < 500 {
		return ae.api()
	}
	h.log.WarnContext(r.Context(), "agent call failed", "container", c.ID, "host", c.Host, "error", err)
	return &apiError{Status: http.StatusServiceUnavailable, Code: "container-host-not-up",
		Message: "Container " + c.ID + " host " + c.Host + " is not up."}
}

// agentFor finds the agent of the container's host.
func (h *handler) agentFor(r *http.Request, c bridge.Workload) (string, error) {
	u, err := h.svc.AgentURL(r.Context(), c.Host)
	if err != nil || u == "" {
		return "", &apiError{Status: http.StatusServiceUnavailable, Code: "container-host-not-up",
			Message: "Container " + c.ID + " host " + c.Host + " is not up."}
	}
	return u, nil
}

func (h *handler) logs(w http.ResponseWriter, r *http.Request, c bridge.Workload, q query) error {
	if err := checkState(c, "logs"); err != nil {
		return err
	}
	params := url.Values{}
	for _, k := range []string{"stdout", "stderr", "timestamps"} {
		s, ok := q.get(k)
		if !ok {
			continue
		}
		b, ok := boolFromString(s)
		if !ok {
			return errInvalid("Valid stdout, stderr and timestamps values are: %s", boolChoices)
		}
		params.Set(k, strconv.FormatBool(b))
	}
	if s, ok := q.get("tail"); ok && s != "None" {
		params.Set("tail", s)
	}
	if s, ok := q.get("since"); ok && s != "" && s != "None" {
		params.Set("since", sinceUnix(s))
	}
	if c.Host == "" {
		// never placed (or released after a failure): nothing ran
		writeJSON(w, http.StatusOK, "")
		return nil
	}
	base, err := h.agentFor(r, c)
	if err != nil {
		return err
	}
	out, err := h.agents.Logs(r.Context(), base, c.ID, params)
	if err != nil {
		return h.agentFailed(r, c, err)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (h *handler) execute(w http.ResponseWriter, r *http.Request, c bridge.Workload, q query) error {
	if err := checkState(c, "execute"); err != nil {
		return err
	}
	run, interactive, err := flagPair(q, "run", "interactive", true, false)
	if err != nil {
		return err
	}
	command, ok := q.get("command")
	if !ok {
		return errInvalid("Missing argument: command")
	}
	if interactive || !run {
		return errNotSupported("interactive or detached execute (this deployment has no websocket proxy)")
	}
	argv, err := shlexSplit(command)
	if err != nil || len(argv) == 0 {
		return errInvalid("Invalid command %s.", command)
	}
	base, err := h.agentFor(r, c)
	if err != nil {
		return err
	}
	res, err := h.agents.Exec(r.Context(), base, c.ID, agentproto.ExecRequest{Command: argv})
	if err != nil {
		return h.agentFailed(r, c, err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"output": res.Output, "exit_code": res.ExitCode,
		"exec_id": nil, "proxy_url": nil})
	return nil
}

func (h *handler) stats(w http.ResponseWriter, r *http.Request, c bridge.Workload, q query) error {
	if err := checkState(c, "stats"); err != nil {
		return err
	}
	base, err := h.agentFor(r, c)
	if err != nil {
		return err
	}
	st, err := h.agents.Stats(r.Context(), base, c.ID)
	if err != nil {
		return h.agentFailed(r, c, err)
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

func (h *handler) top(w http.ResponseWriter, r *http.Request, c bridge.Workload, q query) error {
	if err := checkState(c, "top"); err != nil {
		return err
	}
	psArgs, _ := q.get("ps_args")
	if psArgs == "None" {
		psArgs = ""
	}
	base, err := h.agentFor(r, c)
	if err != nil {
		return err
	}
	t, err := h.agents.Top(r.Context(), base, c.ID, psArgs)
	if err != nil {
		return h.agentFailed(r, c, err)
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}

// unsupportedAction answers Zun actions that need services this
// deployment does not run, after the checks Zun makes first.
func (h *handler) unsupportedAction(action string) actionFunc {
	return func(w http.ResponseWriter, r *http.Request, c bridge.Workload, q query) error {
		if _, ok := validStates[action]; ok {
			if err := checkState(c, action); err != nil {
				return err
			}
		}
		return errNotSupported(action)
	}
}

var sinceDatetime = regexp.MustCompile(`[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2},[0-9]{1,3}`)

// sinceUnix turns Zun's datetime form of since ("2026-01-02 03:04:05,123",
// UTC) into the unix seconds the agent takes; numbers pass as they are.
func sinceUnix(s string) string {
	if m := sinceDatetime.FindString(s); m != "" && !isDigits(s) {
		date, frac, _ := strings.Cut(m, ",")
		if t, err := time.Parse("2006-01-02 15:04:05", date); err == nil {
			for len(frac) < 3 {
				frac += "0"
			}
			return strconv.FormatInt(t.Unix(), 10) + "." + frac
		}
	}
	return s
}

func isDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
