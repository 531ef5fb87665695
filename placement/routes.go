package placement

import (
	"net/http"
	"sort"
	"strings"

	"github.com/gorilla/mux"

	"github.com/unisched/unisched/internal/openstack"
)

// handlerFunc is a Placement handler: it writes a success response itself
// and returns errors (an *openstack.Error for API errors) for the caller
// to render in the {"errors": [...]} format.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// route is one method on one path. Handlers added in a later microversion
// answer 404 below it, as upstream's version_handler does (or belowMin, for
// the one route where upstream answers 405).
type route struct {
	method     string
	minVersion int
	belowMin   int
	handler    handlerFunc
}

// routes is the route table, after upstream's ROUTE_DECLARATIONS. Every
// listed path answers 405 with Allow for methods it lacks; anything else
// is a 404.
func (s *Server) routes() map[string][]route {
	return map[string][]route{
		"/": {
			{method: "GET", handler: s.home},
		},
		"/resource_providers": {
			{method: "GET", handler: s.listResourceProviders},
			{method: "POST", handler: s.createResourceProvider},
		},
		"/resource_providers/{uuid}": {
			{method: "GET", handler: s.getResourceProvider},
			{method: "PUT", handler: s.updateResourceProvider},
			{method: "DELETE", handler: s.deleteResourceProvider},
		},
		"/resource_providers/{uuid}/inventories": {
			{method: "GET", handler: s.getInventories},
			{method: "POST", handler: s.createInventory},
			{method: "PUT", handler: s.setInventories},
			{method: "DELETE", handler: s.deleteInventories, minVersion: 5, belowMin: http.StatusMethodNotAllowed},
		},
		"/resource_providers/{uuid}/inventories/{resource_class}": {
			{method: "GET", handler: s.getInventory},
			{method: "PUT", handler: s.updateInventory},
			{method: "DELETE", handler: s.deleteInventory},
		},
		"/resource_providers/{uuid}/usages": {
			{method: "GET", handler: s.listProviderUsages},
		},
		"/resource_providers/{uuid}/aggregates": {
			{method: "GET", handler: s.getAggregates, minVersion: 1},
			{method: "PUT", handler: s.setAggregates, minVersion: 1},
		},
		"/resource_providers/{uuid}/allocations": {
			{method: "GET", handler: s.listProviderAllocations},
		},
		"/resource_providers/{uuid}/traits": {
			{method: "GET", handler: s.listProviderTraits, minVersion: 6},
			{method: "PUT", handler: s.setProviderTraits, minVersion: 6},
			{method: "DELETE", handler: s.deleteProviderTraits, minVersion: 6},
		},
		"/allocations": {
			{method: "POST", handler: s.setAllocations, minVersion: 13},
		},
		"/allocations/{consumer_uuid}": {
			{method: "GET", handler: s.listConsumerAllocations},
			{method: "PUT", handler: s.setConsumerAllocations},
			{method: "DELETE", handler: s.deleteConsumerAllocations},
		},
		"/allocation_candidates": {
			{method: "GET", handler: s.listAllocationCandidates, minVersion: 10},
		},
		"/traits": {
			{method: "GET", handler: s.listTraits, minVersion: 6},
		},
		"/traits/{name}": {
			{method: "GET", handler: s.getTrait, minVersion: 6},
			{method: "PUT", handler: s.putTrait, minVersion: 6},
			{method: "DELETE", handler: s.deleteTrait, minVersion: 6},
		},
		"/resource_classes": {
			{method: "GET", handler: s.listResourceClasses, minVersion: 2},
			{method: "POST", handler: s.createResourceClass, minVersion: 2},
		},
		"/resource_classes/{name}": {
			{method: "GET", handler: s.getResourceClass, minVersion: 2},
			{method: "PUT", handler: s.updateResourceClass, minVersion: 2},
			{method: "DELETE", handler: s.deleteResourceClass, minVersion: 2},
		},
		"/usages": {
			{method: "GET", handler: s.listUsages, minVersion: 9},
		},
		"/reshaper": {
			{method: "POST", handler: s.reshape, minVersion: 30},
		},
	}
}

func (s *Server) router() http.Handler {
	r := mux.NewRouter()
	for path, methods := range s.routes() {
		r.Handle(path, s.dispatch(methods))
	}
	if s.cfg.TestReset {
		r.Handle("/_test/reset", s.dispatch([]route{{method: "POST", handler: s.testReset}}))
	}
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		openstack.WriteError(w, req, &openstack.Error{Status: http.StatusNotFound, Detail: "The resource could not be found."})
	})
	return r
}

// dispatch picks the route for the method, answering 405 with Allow when
// the path has none for it.
func (s *Server) dispatch(methods []route) http.Handler {
	allowed := make([]string, 0, len(methods))
	for _, rt := range methods {
		allowed = append(allowed, rt.method)
	}
	sort.Strings(allowed)
	allow := strings.Join(allowed, ", ")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, rt := range methods {
			if rt.method != r.Method {
				continue
			}
			if !openstack.VersionFrom(r.Context()).AtLeast(rt.minVersion) {
				if rt.belowMin == http.StatusMethodNotAllowed {
					break
				}
				openstack.WriteError(w, r, &openstack.Error{Status: http.StatusNotFound, Detail: "The resource could not be found."})
				return
			}
			if err := rt.handler(w, r); err != nil {
				openstack.WriteError(w, r, err)
			}
			return
		}
		openstack.WriteError(w, r, &openstack.Error{
			Status:      http.StatusMethodNotAllowed,
			Explanation: "The method " + r.Method + " is not allowed for this resource.",
			Detail:      "The method " + r.Method + " is not allowed for this resource.",
			Header:      http.Header{"Allow": {allow}},
		})
	})
}
