package api

import (
	"errors"
	"net/http"
	"regexp"
	"time"

	"github.com/google/uuid"
	"k8s.io/utils/cpuset"

	"github.com/unisched/unisched/bridge"
	"github.com/unisched/unisched/bridge/agentproto"
)

// hostPattern is what a host name may look like (a DNS name or a short
// host name); the same pattern bounds the "host" of a workload request.
var hostPattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// pathHost is the {host} of an agent route.
func pathHost(r *http.Request) (string, error) {
	host := pathVar(r, "host")
	if len(host) > 255 || !hostPattern.MatchString(host) {
		return "", badRequest("Invalid host name %q.", host)
	}
	return host, nil
}

// registerAgent is PUT /v1/agents/{host}: the agent says what its host
// has; the answer names the host's resource provider.
func (h *Handler) registerAgent(w http.ResponseWriter, r *http.Request) error {
	if _, err := query(r); err != nil {
		return err
	}
	host, err := pathHost(r)
	if err != nil {
		return err
	}
	var reg agentproto.Registration
	if err := h.readJSON(r, registrationSchema, &reg); err != nil {
		return err
	}
	if reg.Host == "" {
		reg.Host = host
	} else if reg.Host != host {
		return badRequest("Invalid input for host: %q is not the host of the path (%q)", reg.Host, host)
	}
	if err := checkTopology(reg); err != nil {
		return err
	}
	res, err := h.cfg.Service.RegisterHost(r.Context(), reg)
	if err != nil {
		return serviceError(err, "registering host "+host)
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// checkTopology refuses CPU lists that do not describe one host: cells
// sharing an id or a CPU, pools naming CPUs no cell has.
func checkTopology(reg agentproto.Registration) error {
	all := cpuset.New()
	ids := map[int]bool{}
	for i, c := range reg.Cells {
		if ids[c.ID] {
			return badRequest("Invalid input for cells[%d].id: cell %d is listed twice", i, c.ID)
		}
		ids[c.ID] = true
		cpus, err := agentproto.ParseCPUs(c.CPUs)
		if err != nil {
			return badRequest("Invalid input for cells[%d].cpus: %v", i, err)
		}
		if both := all.Intersection(cpus); both.Size() > 0 {
			return badRequest("Invalid input for cells[%d].cpus: CPUs %s are in another cell too", i, both)
		}
		all = all.Union(cpus)
		for j, s := range c.Siblings {
			sib, err := agentproto.ParseCPUs(s)
			if err != nil {
				return badRequest("Invalid input for cells[%d].siblings[%d]: %v", i, j, err)
			}
			if !sib.IsSubsetOf(cpus) {
				return badRequest("Invalid input for cells[%d].siblings[%d]: %s is not inside the cell's CPUs %s", i, j, sib, cpus)
			}
		}
	}
	for _, pool := range []struct{ name, list string }{{"dedicated_cpus", reg.DedicatedCPUs}, {"shared_cpus", reg.SharedCPUs}} {
		set, err := agentproto.ParseCPUs(pool.list)
		if err != nil {
			return badRequest("Invalid input for %s: %v", pool.name, err)
		}
		if !set.IsSubsetOf(all) {
			return badRequest("Invalid input for %s: CPUs %s are in no cell", pool.name, set.Difference(all))
		}
	}
	return nil
}

// agentReport is POST /v1/agents/{host}/reports: one container's
// observed state.
func (h *Handler) agentReport(w http.ResponseWriter, r *http.Request) error {
	if _, err := query(r); err != nil {
		return err
	}
	host, err := pathHost(r)
	if err != nil {
		return err
	}
	var rep agentproto.Report
	if err := h.readJSON(r, reportSchema, &rep); err != nil {
		return err
	}
	u, err := uuid.Parse(rep.WorkloadID)
	if err != nil {
		return badRequest("Invalid input for workload_id: %q is not a uuid", rep.WorkloadID)
	}
	rep.WorkloadID = u.String()
	if rep.ObservedAt.IsZero() {
		rep.ObservedAt = time.Now().UTC()
	}
	if err := h.cfg.Service.Report(r.Context(), host, rep); err != nil {
		return serviceError(err, "taking a report from host "+host)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// agentDesired is GET /v1/agents/{host}/desired: what should run there.
func (h *Handler) agentDesired(w http.ResponseWriter, r *http.Request) error {
	if _, err := query(r); err != nil {
		return err
	}
	host, err := pathHost(r)
	if err != nil {
		return err
	}
	d, err := h.cfg.Service.Desired(r.Context(), host)
	if err != nil {
		if errors.Is(err, bridge.ErrNotFound) {
			return notFound("No host %s is registered.", host)
		}
		return serviceError(err, "reading what should run on host "+host)
	}
	if d.Containers == nil {
		d.Containers = []agentproto.Container{}
	}
	writeJSON(w, http.StatusOK, d)
	return nil
}
