package zunext

import (
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/unisched/unisched/bridge"
)

// listHosts is GET /v1/hosts (1.4+, admin): every registered host as a
// Zun compute node, ordered by hostname (Zun's default sort key).
func (h *handler) listHosts(w http.ResponseWriter, r *http.Request) error {
	v := versionFrom(r.Context())
	if !v.AtLeast(4) {
		return errNoVersionMatch(v)
	}
	if err := authorize(r, "host:get_all", ""); err != nil {
		return err
	}
	q, err := parseQuery(r)
	if err != nil {
		return err
	}
	limit, sortKey, sortDir, err := pageParams(q, "hostname")
	if err != nil {
		return err
	}
	hosts, err := h.svc.ListHosts(r.Context())
	if err != nil {
		return err
	}
	views := make([]map[string]any, len(hosts))
	for i, hi := range hosts {
		views[i] = hostView(r, hi)
	}
	if _, ok := views0(views)[sortKey]; !ok && sortKey != "id" {
		return errInvalidParameterValue("The sort_key value \"%s\" is an invalid field for sorting", sortKey)
	}
	sign := 1
	if sortDir == "desc" {
		sign = -1
	}
	order := func(a, b map[string]any) int {
		if sortKey != "id" {
			if c := compareValues(a[sortKey], b[sortKey]); c != 0 {
				return sign * c
			}
		}
		return sign * strings.Compare(a["hostname"].(string), b["hostname"].(string))
	}
	slices.SortStableFunc(views, order)
	start := 0
	if marker, ok := q.get("marker"); ok && marker != "" {
		i := slices.IndexFunc(views, func(m map[string]any) bool { return m["uuid"] == marker })
		if i < 0 {
			return errHostNotFound(marker)
		}
		start = i + 1
	}
	page := views[start:]
	if len(page) > limit {
		page = page[:limit]
	}
	body := map[string]any{"hosts": page, "next": nil}
	if len(page) > 0 && len(page) == limit {
		body["next"] = buildURL(hostURL(r), "hosts", "?sort_key="+sortKey+"&sort_dir="+sortDir+
			"&limit="+strconv.Itoa(limit)+"&marker="+page[len(page)-1]["uuid"].(string), false)
	}
	writeJSON(w, http.StatusOK, body)
	return nil
}

// views0 is any host view's keys (the sortable columns), or a fixed set
// when there is no host.
func views0(views []map[string]any) map[string]any {
	if len(views) > 0 {
		return views[0]
	}
	return map[string]any{"hostname": nil, "uuid": nil, "mem_total": nil, "cpus": nil, "disk_total": nil}
}

// showHost is GET /v1/hosts/{ident}: by uuid (the host's provider) or
// hostname.
func (h *handler) showHost(w http.ResponseWriter, r *http.Request) error {
	v := versionFrom(r.Context())
	if !v.AtLeast(4) {
		return errNoVersionMatch(v)
	}
	if err := authorize(r, "host:get", ""); err != nil {
		return err
	}
	ident := r.PathValue("ident")
	hosts, err := h.svc.ListHosts(r.Context())
	if err != nil {
		return err
	}
	id, isUUID := uuidLike(ident)
	for _, hi := range hosts {
		if (isUUID && strings.EqualFold(hi.ProviderUUID, id)) || (!isUUID && hi.Name == ident) {
			writeJSON(w, http.StatusOK, hostView(r, hi))
			return nil
		}
	}
	return errHostNotFound(ident)
}

type hostInfo = bridge.HostInfo

// listAvailabilityZones is GET /v1/availability_zones: the zones of the
// registered hosts (Zun's default zone "nova" for a host without one).
func (h *handler) listAvailabilityZones(w http.ResponseWriter, r *http.Request) error {
	if err := authorize(r, "availability_zones:get_all", ""); err != nil {
		return err
	}
	hosts, err := h.svc.ListHosts(r.Context())
	if err != nil {
		return err
	}
	var zones []string
	for _, hi := range hosts {
		az := hi.AvailabilityZone
		if az == "" {
			az = "nova"
		}
		if !slices.Contains(zones, az) {
			zones = append(zones, az)
		}
	}
	slices.Sort(zones)
	out := make([]map[string]string, len(zones))
	for i, z := range zones {
		out[i] = map[string]string{"availability_zone": z}
	}
	writeJSON(w, http.StatusOK, map[string]any{"availability_zones": out, "next": nil})
	return nil
}
