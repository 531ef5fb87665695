package zunext

import (
	"net/http"
	"slices"
	"strings"
)

// listServices is GET /v1/services (admin): one zun-compute per agent
// host, up while its heartbeat is younger than Zun's service_down_time.
func (h *handler) listServices(w http.ResponseWriter, r *http.Request) error {
	if err := authorize(r, "zun-service:get_all", ""); err != nil {
		return err
	}
	hosts, err := h.svc.ListHosts(r.Context())
	if err != nil {
		return err
	}
	// Zun lists services by id, i.e. in registration order
	slices.SortStableFunc(hosts, func(a, b hostInfo) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	now := h.now()
	out := make([]map[string]any, len(hosts))
	for i, hi := range hosts {
		out[i] = serviceView(hi, i+1, now)
	}
	writeJSON(w, http.StatusOK, map[string]any{"services": out})
	return nil
}
