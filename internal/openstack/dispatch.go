package openstack

import (
	"net/http"
	"strings"
)

// Method is one HTTP method of a path and what serves it. Serve writes a
// success itself and returns any error for WriteError to render.
type Method struct {
	Name  string
	Serve func(w http.ResponseWriter, r *http.Request) error
}

// Dispatch serves one path's requests by method. Any other method gets
// WebOb's 405 with an Allow header naming the path's methods in the order
// given, which is the order the upstream route table declares them in.
func Dispatch(methods []Method) http.Handler {
	names := make([]string, 0, len(methods))
	for _, m := range methods {
		names = append(names, m.Name)
	}
	allow := strings.Join(names, ", ")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, m := range methods {
			if m.Name == r.Method {
				if err := m.Serve(w, r); err != nil {
					WriteError(w, r, err)
				}
				return
			}
		}
		WriteError(w, r, &Error{
			Status: http.StatusMethodNotAllowed,
			Detail: "The method specified is not allowed for this resource.",
			Header: http.Header{"Allow": {allow}},
		})
	})
}
