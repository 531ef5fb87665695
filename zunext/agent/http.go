package agent

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"

	"github.com/unisched/unisched/bridge/agentproto"
	"github.com/unisched/unisched/internal/openstack"
	"github.com/unisched/unisched/zunext/docker"
)

// Handler serves the agent's routes (see agentproto's package doc).
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/events", a.handle(a.postEvent))
	mux.HandleFunc("GET /v1/containers/{id}/logs", a.handle(a.getLogs))
	mux.HandleFunc("POST /v1/containers/{id}/execute", a.handle(a.postExecute))
	mux.HandleFunc("GET /v1/containers/{id}/stats", a.handle(a.getStats))
	mux.HandleFunc("GET /v1/containers/{id}/top", a.handle(a.getTop))
	mux.HandleFunc("GET /v1/health", a.handle(a.getHealth))
	mux.HandleFunc("/", a.handle(func(w http.ResponseWriter, r *http.Request) error {
		return openstack.Errorf(http.StatusNotFound, "", "no route %s %s on the agent", r.Method, r.URL.Path)
	}))
	return mux
}

func (a *Agent) handle(h func(http.ResponseWriter, *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			writeError(w, a.httpError(err))
		}
	}
}

// writeError always answers JSON in the OpenStack {"errors": [...]} shape:
// the agent's only client is serve, which reads the detail and code.
func writeError(w http.ResponseWriter, err error) {
	var e *openstack.Error
	if !errors.As(err, &e) {
		e = openstack.Errorf(http.StatusInternalServerError, "", "%s", err.Error())
	}
	body := map[string]any{"status": e.Status, "title": http.StatusText(e.Status), "detail": e.Detail}
	if e.Code != "" {
		body["code"] = e.Code
	}
	openstack.WriteJSON(w, e.Status, map[string]any{"errors": []any{body}})
}

// httpError maps failures onto statuses: what the agent does not run is
// 404, Docker refusing the call 409, Docker away 503.
func (a *Agent) httpError(err error) error {
	var apiErr *openstack.Error
	var bad *errBadEvent
	var retry *errRetry
	switch {
	case errors.As(err, &apiErr):
		return apiErr
	case errors.As(err, &bad):
		return openstack.Errorf(http.StatusBadRequest, "agent.bad-event", "%s", bad.msg)
	case errors.Is(err, docker.ErrNotFound):
		return openstack.Errorf(http.StatusNotFound, "container.container-not-found", "container not found on host %s", a.cfg.Host)
	case errors.As(err, &retry), docker.IsUnavailable(err):
		return openstack.Errorf(http.StatusServiceUnavailable, "agent.unavailable", "%s", err.Error())
	case cerrdefs.IsConflict(err):
		return openstack.Errorf(http.StatusConflict, "container.conflict", "%s", err.Error())
	case cerrdefs.IsInvalidArgument(err):
		return openstack.Errorf(http.StatusBadRequest, "container.invalid", "%s", err.Error())
	}
	a.log.Error("agent request failed", "error", err)
	return openstack.Errorf(http.StatusInternalServerError, "", "%s", err.Error())
}

func readJSON(r *http.Request, dst any) error {
	b, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
	if err != nil {
		return openstack.Errorf(http.StatusBadRequest, "", "reading the body: %v", err)
	}
	if err := json.Unmarshal(b, dst); err != nil {
		return openstack.Errorf(http.StatusBadRequest, "", "Malformed JSON: %v", err)
	}
	return nil
}

// postEvent takes one relay event: 202 once it is held durably (in the
// journal, fsynced) or already known (journaled, applying or applied: the
// redelivery is dropped), 400 for an event that can never be applied, 503
// only when the journal cannot be written. The event is applied in the
// background (queue.go); its outcome reaches serve as a report, i.e. the
// container's status, never through this answer. So the relay's
// "delivered", and the notify-lag histogram it feeds, mean "held by the
// agent", not "applied in Docker".
func (a *Agent) postEvent(w http.ResponseWriter, r *http.Request) error {
	var ev agentproto.Event
	if err := readJSON(r, &ev); err != nil {
		return err
	}
	known, err := a.validate(&ev)
	if err != nil {
		return err
	}
	if !known {
		a.log.Warn("ignoring an event of unknown type", "event", ev.ID, "type", ev.Type)
		openstack.WriteJSON(w, http.StatusAccepted, map[string]any{"id": ev.ID, "ignored": true})
		return nil
	}
	dup, err := a.apl.take(&ev)
	if err != nil {
		a.log.Error("event not journaled", "event", ev.ID, "error", err)
		return openstack.Errorf(http.StatusServiceUnavailable, "agent.unavailable", "%s", err.Error())
	}
	body := map[string]any{"id": ev.ID}
	if dup {
		body["duplicate"] = true
		a.log.Info("event redelivered; already held, dropped", "event", ev.ID, "type", ev.Type, "action", ev.Action)
	}
	openstack.WriteJSON(w, http.StatusAccepted, body)
	return nil
}

// applyTimeout bounds one attempt at an event (a stop waits up to its
// timeout).
const applyTimeout = 5 * time.Minute

// boolParam reads Zun's boolean query parameters (True/false/1/0/yes/no).
func boolParam(r *http.Request, name string, def bool) (bool, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	switch strings.ToLower(v) {
	case "1", "t", "true", "yes", "y", "on":
		return true, nil
	case "0", "f", "false", "no", "n", "off":
		return false, nil
	}
	return false, openstack.Errorf(http.StatusBadRequest, "container.invalid", "Invalid value for %s: %q is not a boolean", name, v)
}

func (a *Agent) getLogs(w http.ResponseWriter, r *http.Request) error {
	var o docker.LogOptions
	var err error
	if o.Stdout, err = boolParam(r, "stdout", true); err != nil {
		return err
	}
	if o.Stderr, err = boolParam(r, "stderr", true); err != nil {
		return err
	}
	if o.Timestamps, err = boolParam(r, "timestamps", false); err != nil {
		return err
	}
	q := r.URL.Query()
	if tail := q.Get("tail"); tail != "" && !strings.EqualFold(tail, "all") {
		if n, err := strconv.Atoi(tail); err != nil || n < 0 {
			return openstack.Errorf(http.StatusBadRequest, "container.invalid", "Invalid value for tail: %q is not a non-negative integer or 'all'", tail)
		}
		o.Tail = tail
	}
	o.Since = q.Get("since")
	if o.Since != "" {
		if _, err := strconv.ParseFloat(o.Since, 64); err != nil {
			return openstack.Errorf(http.StatusBadRequest, "container.invalid", "Invalid value for since: %q is not a unix timestamp", o.Since)
		}
	}
	out, err := a.drv.Logs(r.Context(), r.PathValue("id"), o)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, out)
	return nil
}

func (a *Agent) postExecute(w http.ResponseWriter, r *http.Request) error {
	var req agentproto.ExecRequest
	if err := readJSON(r, &req); err != nil {
		return err
	}
	if len(req.Command) == 0 || strings.TrimSpace(strings.Join(req.Command, "")) == "" {
		return openstack.Errorf(http.StatusBadRequest, "container.invalid", "no command to execute")
	}
	res, err := a.drv.Exec(r.Context(), r.PathValue("id"), req.Command)
	if err != nil {
		return err
	}
	openstack.WriteJSON(w, http.StatusOK, res)
	return nil
}

func (a *Agent) getStats(w http.ResponseWriter, r *http.Request) error {
	st, err := a.drv.Stats(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	openstack.WriteJSON(w, http.StatusOK, st)
	return nil
}

func (a *Agent) getTop(w http.ResponseWriter, r *http.Request) error {
	top, err := a.drv.Top(r.Context(), r.PathValue("id"), r.URL.Query().Get("ps_args"))
	if err != nil {
		return err
	}
	openstack.WriteJSON(w, http.StatusOK, top)
	return nil
}

func (a *Agent) getHealth(w http.ResponseWriter, r *http.Request) error {
	select {
	case <-a.converged:
	default:
		return openstack.Errorf(http.StatusServiceUnavailable, "agent.unavailable", "host %s has not converged yet", a.cfg.Host)
	}
	pending, retries := a.EventStats()
	openstack.WriteJSON(w, http.StatusOK, map[string]any{
		"host": a.cfg.Host, "docker": a.DockerUp(), "agent_url": a.URL(), "serve_url": a.cfg.ServeURL,
		"events_pending": pending, "event_retries": retries,
	})
	return nil
}
