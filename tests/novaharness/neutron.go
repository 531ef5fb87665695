package novaharness

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
)

// neutronStandIn is NOT Neutron. Nova talks to Neutron even for servers
// booted with "networks": "none": nova-api lists the server's ports for
// GET /servers/{id}, nova-compute's _heal_instance_info_cache lists ports,
// a delete lists ports and networks. Every GET of a collection answers an
// empty list; a member GET and every write answer Neutron's 404, so that
// anything really needing a port fails loudly instead of pretending.
// (Modelled on the shared lab's neutron_stub.py, in Go so that it runs
// inside the test binary.)
func neutronStandIn() http.Handler {
	collection := regexp.MustCompile(`^/v2\.0/([a-z][a-z0-9_-]*?)(?:\.json)?/?$`)
	member := regexp.MustCompile(`^/v2\.0/([a-z][a-z0-9_-]*)/([^/]+?)(?:\.json)?/?$`)
	send := func(w http.ResponseWriter, code int, body any) {
		b, _ := json.Marshal(body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_, _ = w.Write(b)
	}
	notFound := func(w http.ResponseWriter, msg string) {
		send(w, http.StatusNotFound, map[string]any{"NeutronError": map[string]any{
			"type": "NotFound", "message": msg + " (neutron stand-in)", "detail": ""}})
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			notFound(w, r.Method+" is not supported")
			return
		}
		p := r.URL.Path
		switch {
		case p == "" || p == "/":
			send(w, http.StatusOK, map[string]any{"versions": []any{map[string]any{
				"id": "v2.0", "status": "CURRENT",
				"links": []any{map[string]any{"rel": "self", "href": "http://" + r.Host + "/v2.0/"}}}}})
		case p == "/v2.0" || p == "/v2.0/":
			send(w, http.StatusOK, map[string]any{"resources": []any{}})
		case collection.MatchString(p):
			name := collection.FindStringSubmatch(p)[1]
			send(w, http.StatusOK, map[string]any{strings.ReplaceAll(name, "-", "_"): []any{}})
		case member.MatchString(p):
			m := member.FindStringSubmatch(p)
			notFound(w, fmt.Sprintf("%s %s could not be found", m[1], m[2]))
		default:
			notFound(w, "unknown path")
		}
	})
}
