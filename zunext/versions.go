package zunext

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"unicode"

	"github.com/unisched/unisched/internal/openstack"
)

type version = openstack.Version

// Zun's microversion headers (zun/api/controllers/versions.py).
const (
	versionHeader    = "OpenStack-API-Version"
	minVersionHeader = "OpenStack-API-Minimum-Version"
	maxVersionHeader = "OpenStack-API-Maximum-Version"
	serviceType      = "container"
)

// versionHistory is Zun's REST API version history; the last entry is the
// maximum this API offers. Each entry says what the version changed and
// how this implementation treats it.
var versionHistory = []struct {
	minor int
	what  string
}{
	{1, "initial version"},
	{2, "nets on create (accepted empty: no Neutron here)"},
	{3, "auto_remove"},
	{4, "hosts API"},
	{5, "runtime (admin policy)"},
	{6, "network_detach (not supported)"},
	{7, "non-admin force delete disallowed"},
	{8, "network_attach (not supported)"},
	{9, "hostname"},
	{10, "asynchronous delete (204)"},
	{11, "mounts (accepted empty: no Cinder here)"},
	{12, "stop on delete"},
	{13, "network_list"},
	{14, "rename through PATCH; the rename action ends at 1.13"},
	{15, "add/remove_security_group removed"},
	{16, "capsule restart_policy"},
	{17, "detach ports"},
	{18, "network list response"},
	{19, "resize_container"},
	{20, "command is a list"},
	{21, "privileged (denied to everybody by Zun's default policy)"},
	{22, "healthcheck"},
	{23, "mounts type"},
	{24, "exposed_ports (accepted empty: no networking here)"},
	{25, "archive data base64"},
	{26, "quotas"},
	{27, "delete networks"},
	{28, "cpu_policy"},
	{29, "host enable_cpu_pinning"},
	{30, "registries"},
	{31, "registry on create"},
	{32, "asynchronous capsule delete"},
	{33, "action finish_time"},
	{34, "capsule init_containers"},
	{35, "capsule ports"},
	{36, "tty separate from interactive"},
	{37, "capsule tty and stdin"},
	{38, "capsule annotations"},
	{39, "host on create (admin policy)"},
	{40, "entrypoint"},
}

var (
	minVersion = version{Major: 1, Minor: 1}
	maxVersion = version{Major: 1, Minor: versionHistory[len(versionHistory)-1].minor}
)

func versionString(v version) string { return serviceType + " " + v.String() }

// negotiateVersion reads the requested version as Zun's Version class
// does: the header (several joined by ", ") must split into exactly a
// service and a version; "latest" (any case) stands for the maximum and
// the service "container"; both halves of "X.Y" are read as Python's
// int(). It returns whether the version headers belong on the response
// (Zun sets them once the header parsed, before checking the range).
func negotiateVersion(r *http.Request) (version, bool, *apiError) {
	raw := versionString(minVersion)
	if vs := r.Header.Values(versionHeader); len(vs) > 0 {
		raw = strings.Join(vs, ", ")
	}
	fields := strings.FieldsFunc(raw, isPySpace)
	bad := func(msg string) (version, bool, *apiError) {
		return version{}, false, &apiError{Status: http.StatusNotAcceptable, Title: "Not Acceptable", Message: msg}
	}
	if len(fields) != 2 {
		return bad("Invalid service type for " + versionHeader + " header")
	}
	service, value := fields[0], fields[1]
	if strings.ToLower(value) == "latest" {
		service, value = serviceType, maxVersion.String()
	}
	if service != serviceType {
		return bad("Invalid service type for " + versionHeader + " header")
	}
	halves := strings.Split(value, ".")
	nums := make([]int, 0, 2)
	for _, h := range halves {
		n, ok := pythonInt(h)
		if !ok {
			nums = nil
			break
		}
		nums = append(nums, n)
	}
	if len(nums) != 2 {
		return bad("Invalid value for " + versionHeader + " header")
	}
	v := version{Major: nums[0], Minor: nums[1]}
	rangeText := fmt.Sprintf("[%s, %s]", versionString(minVersion), versionString(maxVersion))
	unsupported := func(msg string) (version, bool, *apiError) {
		return v, true, &apiError{Status: http.StatusNotAcceptable, Code: "microversion-unsupported",
			Title: "Requested microversion is unsupported", Message: msg,
			MaxVersion: maxVersion.String(), MinVersion: minVersion.String()}
	}
	if v.Major != 1 {
		return unsupported(fmt.Sprintf("Mutually exclusive versions requested. Version %s requested but not "+
			"supported by this service. The supported version range is: %s.", v, rangeText))
	}
	if v.Less(minVersion) || maxVersion.Less(v) {
		return unsupported(fmt.Sprintf("Version %s was requested but the minor version is not supported by "+
			"this service. The supported version range is: %s.", v, rangeText))
	}
	return v, true, nil
}

// pythonInt reads s as Python's int() does in base 10: surrounding
// blanks, a sign and single underscores between digits are allowed.
func pythonInt(s string) (int, bool) {
	s = strings.TrimFunc(s, isPySpace)
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg, s = s[0] == '-', s[1:]
	}
	if s == "" || s[0] == '_' || s[len(s)-1] == '_' || strings.Contains(s, "__") {
		return 0, false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && c != '_' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(strings.ReplaceAll(s, "_", ""))
	if err != nil {
		return 0, false
	}
	if neg {
		n = -n
	}
	return n, true
}

func isPySpace(r rune) bool { return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f) }

// setVersionHeaders adds what Zun's v1 controller puts on every response
// once the version header parsed.
func setVersionHeaders(w http.ResponseWriter, v version) {
	h := w.Header()
	h.Set(minVersionHeader, versionString(minVersion))
	h.Set(maxVersionHeader, versionString(maxVersion))
	h.Set(versionHeader, versionString(v))
	h.Set("Vary", versionHeader)
}

func versionFrom(ctx context.Context) version { return openstack.VersionFrom(ctx) }

// hostURL is pecan's request.host_url: scheme and host of the request.
func hostURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

type link struct {
	Href string `json:"href"`
	Rel  string `json:"rel"`
	Type string `json:"type,omitempty"`
}

// buildURL is Zun's link.build_url: versioned unless a bookmark.
func buildURL(base, resource, args string, bookmark bool) string {
	u := base + "/v1/" + resource
	if bookmark {
		u = base + "/" + resource
	}
	if strings.HasPrefix(args, "?") {
		return u + args
	}
	return u + "/" + args
}

func selfLinks(base, resource, id string) []link {
	return []link{{Href: buildURL(base, resource, id, false), Rel: "self"},
		{Href: buildURL(base, resource, id, true), Rel: "bookmark"}}
}

type versionDoc struct {
	ID         string `json:"id"`
	Links      []link `json:"links"`
	Status     string `json:"status"`
	MaxVersion string `json:"max_version"`
	MinVersion string `json:"min_version"`
}

// root answers GET /: the versions document python-zunclient discovers
// the version range from.
func (h *handler) root(w http.ResponseWriter, r *http.Request) error {
	v := versionDoc{ID: "v1", Links: []link{{Href: buildURL(hostURL(r), "v1", "", true), Rel: "self"}},
		Status: "CURRENT", MaxVersion: maxVersion.String(), MinVersion: minVersion.String()}
	writeJSON(w, http.StatusOK, map[string]any{
		"name":            "OpenStack Zun API",
		"description":     "Zun is an OpenStack project which aims to provide containers service.",
		"versions":        []versionDoc{v},
		"default_version": v,
	})
	return nil
}

// v1 answers GET /v1/: the resources of version 1.
func (h *handler) v1(w http.ResponseWriter, r *http.Request) error {
	base := hostURL(r)
	doc := map[string]any{
		"id": "v1",
		"links": []link{{Href: buildURL(base, "v1", "", true), Rel: "self"},
			{Href: "https://docs.openstack.org/developer/zun/dev/api-spec-v1.html", Rel: "describedby", Type: "text/html"}},
		"media_types": []map[string]string{{"base": "application/json", "type": "application/vnd.openstack.zun.v1+json"}},
	}
	for _, res := range []string{"services", "containers", "images", "networks", "hosts", "availability_zones",
		"capsules", "quotas", "quota_classes", "registries"} {
		doc[res] = selfLinks(base, res, "")
	}
	writeJSON(w, http.StatusOK, doc)
	return nil
}
