package placement

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/gorilla/mux"

	"github.com/unisched/unisched/internal/openstack"
)

// handlerFunc is a Placement handler: it writes a success response itself
// and returns errors (an *openstack.Error for API errors) for the caller
// to render in the {"errors": [...]} format.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// route is one method on one path, with the checks upstream's decorators
// make before the handler body runs (and so before its policy check).
type route struct {
	method string
	// minVersion gates handlers added in a later microversion: below it
	// the answer is 404, as upstream's version_handler gives (or 405 where
	// belowMin says so, for DELETE .../inventories before 1.5).
	minVersion int
	belowMin   int
	// acceptJSON is util.check_accept('application/json'): a 406 unless
	// the Accept header admits JSON.
	acceptJSON bool
	// jsonBody is util.require_content('application/json'): a 415 unless
	// the request's media type is exactly application/json; jsonBodyMax
	// ends the requirement after that microversion (0: never).
	jsonBody    bool
	jsonBodyMax int
	// checksFirst puts the accept/content check before the version check,
	// as the aggregates handlers' decorators are ordered upstream.
	checksFirst bool
	handler     handlerFunc
}

// routePath is one path of the route table with its methods in upstream's
// declaration order, which is the order of the Allow header on a 405.
type routePath struct {
	path    string
	methods []route
}

// routes is the route table, after upstream's ROUTE_DECLARATIONS and the
// decorators of each handler.
func (s *Server) routes() []routePath {
	return []routePath{
		{"/", []route{
			{method: "GET", handler: s.home},
		}},
		{"/resource_classes", []route{
			{method: "GET", minVersion: 2, acceptJSON: true, handler: s.listResourceClasses},
			{method: "POST", minVersion: 2, jsonBody: true, handler: s.createResourceClass},
		}},
		{"/resource_classes/{name}", []route{
			{method: "GET", minVersion: 2, acceptJSON: true, handler: s.getResourceClass},
			{method: "PUT", minVersion: 2, jsonBody: true, jsonBodyMax: 6, handler: s.updateResourceClass},
			{method: "DELETE", minVersion: 2, handler: s.deleteResourceClass},
		}},
		{"/resource_providers", []route{
			{method: "GET", acceptJSON: true, handler: s.listResourceProviders},
			{method: "POST", jsonBody: true, handler: s.createResourceProvider},
		}},
		{"/resource_providers/{uuid}", []route{
			{method: "GET", acceptJSON: true, handler: s.getResourceProvider},
			{method: "DELETE", handler: s.deleteResourceProvider},
			{method: "PUT", jsonBody: true, handler: s.updateResourceProvider},
		}},
		{"/resource_providers/{uuid}/inventories", []route{
			{method: "GET", acceptJSON: true, handler: s.getInventories},
			{method: "POST", jsonBody: true, handler: s.createInventory},
			{method: "PUT", jsonBody: true, handler: s.setInventories},
			{method: "DELETE", minVersion: 5, belowMin: http.StatusMethodNotAllowed, handler: s.deleteInventories},
		}},
		{"/resource_providers/{uuid}/inventories/{resource_class}", []route{
			{method: "GET", acceptJSON: true, handler: s.getInventory},
			{method: "PUT", jsonBody: true, handler: s.updateInventory},
			{method: "DELETE", handler: s.deleteInventory},
		}},
		{"/resource_providers/{uuid}/usages", []route{
			{method: "GET", acceptJSON: true, handler: s.listProviderUsages},
		}},
		{"/resource_providers/{uuid}/aggregates", []route{
			{method: "GET", minVersion: 1, acceptJSON: true, checksFirst: true, handler: s.getAggregates},
			{method: "PUT", minVersion: 1, jsonBody: true, checksFirst: true, handler: s.setAggregates},
		}},
		{"/resource_providers/{uuid}/allocations", []route{
			{method: "GET", acceptJSON: true, handler: s.listProviderAllocations},
		}},
		{"/allocations", []route{
			{method: "POST", minVersion: 13, jsonBody: true, handler: s.setAllocations},
		}},
		{"/allocations/{consumer_uuid}", []route{
			{method: "GET", acceptJSON: true, handler: s.listConsumerAllocations},
			{method: "PUT", jsonBody: true, handler: s.setConsumerAllocations},
			{method: "DELETE", handler: s.deleteConsumerAllocations},
		}},
		{"/allocation_candidates", []route{
			{method: "GET", minVersion: 10, acceptJSON: true, handler: s.listAllocationCandidates},
		}},
		{"/traits", []route{
			{method: "GET", minVersion: 6, acceptJSON: true, handler: s.listTraits},
		}},
		{"/traits/{name}", []route{
			{method: "GET", minVersion: 6, handler: s.getTrait},
			{method: "PUT", minVersion: 6, handler: s.putTrait},
			{method: "DELETE", minVersion: 6, handler: s.deleteTrait},
		}},
		{"/resource_providers/{uuid}/traits", []route{
			{method: "GET", minVersion: 6, acceptJSON: true, handler: s.listProviderTraits},
			{method: "PUT", minVersion: 6, jsonBody: true, handler: s.setProviderTraits},
			{method: "DELETE", minVersion: 6, handler: s.deleteProviderTraits},
		}},
		{"/usages", []route{
			{method: "GET", minVersion: 9, acceptJSON: true, handler: s.listUsages},
		}},
		{"/reshaper", []route{
			{method: "POST", minVersion: 30, jsonBody: true, handler: s.reshape},
		}},
	}
}

// router matches paths as upstream's Routes mapper does (a path parameter
// is one non-empty segment; no trailing-slash or case folding) after the
// check upstream's PlacementHandler makes on every request it routes.
func (s *Server) router() http.Handler {
	r := mux.NewRouter()
	r.Use(openstack.RouteTemplate) // the route label of serve's request metrics
	for _, rp := range s.routes() {
		r.Handle(rp.path, s.dispatch(rp.methods))
	}
	if s.cfg.TestReset {
		r.Handle("/_test/reset", s.dispatch([]route{{method: "POST", handler: s.testReset}}))
	}
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		openstack.WriteError(w, req, &openstack.Error{Status: http.StatusNotFound, Escaped: true})
	})
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if err := checkContentHeaders(req); err != nil {
			openstack.WriteError(w, req, err)
			return
		}
		r.ServeHTTP(w, req)
	})
}

// checkContentHeaders refuses a body without a content type. (Upstream
// also refuses a Content-Length that is not an integer; Go's HTTP server
// answers such a request itself before any handler runs, and
// openstack.ProtocolErrorListener, which `unisched serve` listens through,
// renders that answer in Placement's error format.)
func checkContentHeaders(r *http.Request) error {
	cl := r.Header.Get("Content-Length")
	if cl == "" {
		return nil
	}
	n, err := strconv.ParseInt(strings.TrimSpace(cl), 10, 64)
	if err != nil {
		return &openstack.Error{Status: http.StatusBadRequest, Escaped: true, Detail: "content-length header must be an integer"}
	}
	if n > 0 && r.Header.Get("Content-Type") == "" {
		return &openstack.Error{Status: http.StatusBadRequest, Escaped: true, Detail: "content-type header required when content-length > 0"}
	}
	return nil
}

// dispatch picks the route for the method, answering 405 with Allow when
// the path has none for it, then makes the route's version, Accept and
// Content-Type checks in upstream's order.
func (s *Server) dispatch(methods []route) http.Handler {
	ms := make([]openstack.Method, 0, len(methods))
	for _, rt := range methods {
		ms = append(ms, openstack.Method{Name: rt.method, Serve: rt.serve})
	}
	return openstack.Dispatch(ms)
}

func (rt route) serve(w http.ResponseWriter, r *http.Request) error {
	if rt.checksFirst {
		if err := rt.checkMedia(r); err != nil {
			return err
		}
	}
	if !version(r).AtLeast(rt.minVersion) {
		// upstream raises the bare exception class: no detail, no Allow
		return &openstack.Error{Status: max(rt.belowMin, http.StatusNotFound)}
	}
	if !rt.checksFirst {
		if err := rt.checkMedia(r); err != nil {
			return err
		}
	}
	if err := checkURLNUL(r); err != nil {
		return err
	}
	return rt.handler(w, r)
}

func (rt route) checkMedia(r *http.Request) error {
	if rt.acceptJSON {
		if err := checkAcceptJSON(r); err != nil {
			return err
		}
	}
	if rt.jsonBody && (rt.jsonBodyMax == 0 || !version(r).AtLeast(rt.jsonBodyMax+1)) {
		if err := requireJSON(r); err != nil {
			return err
		}
	}
	return nil
}

// checkAcceptJSON is util.check_accept: a valid Accept header that admits
// no JSON is a 406 (an unparseable one is ignored).
func checkAcceptJSON(r *http.Request) error {
	offers, valid := openstack.AcceptableOffers(openstack.EffectiveAccept(r), []string{"application/json"})
	if valid && len(offers) == 0 {
		return &openstack.Error{Status: http.StatusNotAcceptable, Detail: "Only application/json is provided"}
	}
	return nil
}
