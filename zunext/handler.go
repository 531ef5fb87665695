// Package zunext is the container API: OpenStack Zun's v1 REST API at
// microversion container 1.40 (what python-zunclient and
// `openstack appcontainer` speak), served over the coordinator
// (bridge.Service). Containers are workloads of kind container; the
// fields Zun has and the ledger does not model travel in the workload's
// spec and are rendered back. Synchronous calls (logs, execute, stats,
// top) go to the agent of the container's host.
//
// Behaviour follows Zun's source (zun/api/controllers/v1): schemas, error
// bodies, policy defaults, status names. What needs OpenStack services
// this deployment does not run (Neutron networks, Cinder volumes, Glance
// images, websocket consoles, registries, quotas) is refused with a 400
// naming the operation, or accepted only when empty.
package zunext

import (
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/unisched/unisched/bridge"
	"github.com/unisched/unisched/internal/openstack"
)

// Options configure the handler.
type Options struct {
	// Authenticator turns requests into credentials; nil means noauth2
	// (openstack.NoAuth2).
	Authenticator openstack.Authenticator
	// Logger receives internal errors; nil means slog.Default().
	Logger *slog.Logger
	// Agents makes the synchronous calls to agents; nil means an
	// AgentClient with a 60 s timeout.
	Agents *AgentClient
	// Now is the clock (services' up/down); nil means time.Now.
	Now func() time.Time
}

type handler struct {
	svc    bridge.Service
	auth   openstack.Authenticator
	log    *slog.Logger
	agents *AgentClient
	now    func() time.Time
	mux    *http.ServeMux
}

// NewHandler returns the Zun v1 API over svc. Mount it at the root of the
// container API listener: it serves "/", "/v1/..." and, as Zun does,
// resource paths without the "/v1" prefix (the bookmark links).
func NewHandler(svc bridge.Service, opts Options) http.Handler {
	h := &handler{svc: svc, auth: opts.Authenticator, log: opts.Logger, agents: opts.Agents, now: opts.Now}
	if h.auth == nil {
		h.auth = openstack.NoAuth2{}
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	if h.agents == nil {
		h.agents = NewAgentClient(nil)
	}
	if h.now == nil {
		h.now = time.Now
	}
	h.mux = http.NewServeMux()
	h.routes()
	return openstack.Recover(openstack.RequestID(http.HandlerFunc(h.serve)))
}

type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// route is one resource path with its methods; methods missing from the
// map answer 405 with Allow.
type route struct {
	pattern string
	methods map[string]handlerFunc
}

func (h *handler) routes() {
	c := h.containerAction
	table := []route{
		{"/v1/{$}", map[string]handlerFunc{"GET": h.v1}},
		{"/v1/containers", map[string]handlerFunc{"GET": h.listContainers, "POST": h.createContainer}},
		{"/v1/containers/{ident}", map[string]handlerFunc{"GET": h.showContainer, "PATCH": h.updateContainer,
			"DELETE": h.deleteContainer}},
		{"/v1/containers/{ident}/start", map[string]handlerFunc{"POST": c("start", h.start)}},
		{"/v1/containers/{ident}/stop", map[string]handlerFunc{"POST": c("stop", h.stop)}},
		{"/v1/containers/{ident}/reboot", map[string]handlerFunc{"POST": c("reboot", h.reboot)}},
		{"/v1/containers/{ident}/pause", map[string]handlerFunc{"POST": c("pause", h.pause)}},
		{"/v1/containers/{ident}/unpause", map[string]handlerFunc{"POST": c("unpause", h.unpause)}},
		{"/v1/containers/{ident}/kill", map[string]handlerFunc{"POST": c("kill", h.kill)}},
		{"/v1/containers/{ident}/rename", map[string]handlerFunc{"POST": c("rename", h.renameAction)}},
		{"/v1/containers/{ident}/resize_container", map[string]handlerFunc{"POST": c("resize_container", h.resizeContainer)}},
		{"/v1/containers/{ident}/logs", map[string]handlerFunc{"GET": c("logs", h.logs)}},
		{"/v1/containers/{ident}/execute", map[string]handlerFunc{"POST": c("execute", h.execute)}},
		{"/v1/containers/{ident}/stats", map[string]handlerFunc{"GET": c("stats", h.stats)}},
		{"/v1/containers/{ident}/top", map[string]handlerFunc{"GET": c("top", h.top)}},
		{"/v1/containers/{ident}/container_actions", map[string]handlerFunc{"GET": h.unsupported("container actions history")}},
		{"/v1/hosts", map[string]handlerFunc{"GET": h.listHosts}},
		{"/v1/hosts/{ident}", map[string]handlerFunc{"GET": h.showHost}},
		{"/v1/services", map[string]handlerFunc{"GET": h.listServices,
			"DELETE": h.unsupported("deleting a zun-compute service (stop its agent instead)")}},
		{"/v1/availability_zones", map[string]handlerFunc{"GET": h.listAvailabilityZones}},
		{"/v1/containers/{ident}/container_actions/{request}", map[string]handlerFunc{"GET": h.unsupported("container actions history")}},
	}
	// zun-compute services are the agents: they cannot be disabled,
	// forced down or deleted through this API.
	table = append(table, route{"/v1/services/{action}", map[string]handlerFunc{
		"PUT": h.unsupported("enabling, disabling or forcing down a zun-compute service")}})
	// Zun resources backed by services this deployment does not run.
	for _, res := range []string{"images", "networks", "capsules", "quotas", "quota_classes", "registries"} {
		all := map[string]handlerFunc{}
		for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
			all[m] = h.unsupported(res + " (not offered by this deployment)")
		}
		table = append(table, route{"/v1/" + res, all}, route{"/v1/" + res + "/{rest...}", all})
	}
	// Zun actions that need services this deployment does not run.
	for action, method := range map[string]string{
		"rebuild": "POST", "execute_resize": "POST", "attach": "GET", "resize": "POST", "get_archive": "GET",
		"put_archive": "POST", "commit": "POST", "add_security_group": "POST", "remove_security_group": "POST",
		"network_detach": "POST", "network_attach": "POST", "network_list": "GET",
	} {
		table = append(table, route{"/v1/containers/{ident}/" + action,
			map[string]handlerFunc{method: c(action, h.unsupportedAction(action))}})
	}
	for _, rt := range table {
		h.mux.Handle(rt.pattern, h.dispatch(rt))
	}
	h.mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.writeError(w, r, errNotFoundPath())
	}))
}

func (h *handler) dispatch(rt route) http.Handler {
	allow := make([]string, 0, len(rt.methods))
	for m := range rt.methods {
		allow = append(allow, m)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fn, ok := rt.methods[r.Method]
		if !ok && r.Method == http.MethodHead {
			fn, ok = rt.methods[http.MethodGet]
		}
		openstack.SetRoute(r.Context(), strings.TrimSuffix(rt.pattern, "{$}")) // the route label of serve's request metrics
		if !ok {
			h.writeError(w, r, errMethod(strings.Join(allow, ", ")))
			return
		}
		if err := fn(w, r); err != nil {
			h.writeError(w, r, err)
		}
	})
}

// serve routes as Zun's root controller does: "/" is the versions
// document; any path not under "/v1" is taken as one under it; "/v1..."
// requests authenticate and negotiate the microversion.
func (h *handler) serve(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	if p == "/" || p == "" {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.writeError(w, r, errMethod("GET"))
			return
		}
		openstack.SetRoute(r.Context(), "/")
		_ = h.root(w, r)
		return
	}
	if p != "/v1" && !strings.HasPrefix(p, "/v1/") {
		p = "/v1" + p
	}
	if p == "/v1" {
		p = "/v1/"
	}
	if len(p) > len("/v1/") {
		p = strings.TrimSuffix(p, "/")
	}
	r2 := r.Clone(r.Context())
	r2.URL.Path = p
	r2.URL.RawPath = ""

	// authentication comes first, as Keystone's middleware wraps Zun
	ctx := r2.Context()
	if p != "/v1/" {
		c, err := h.auth.Authenticate(r2)
		if err != nil {
			openstack.WriteError(w, r2, err)
			return
		}
		ctx = openstack.WithCredentials(ctx, c)
	}
	v, headers, verr := negotiateVersion(r2)
	if headers {
		setVersionHeaders(w, v)
	}
	if verr != nil {
		h.writeError(w, r2, verr)
		return
	}
	openstack.SetMicroversion(ctx, v)
	h.mux.ServeHTTP(w, r2.WithContext(openstack.WithVersion(ctx, v)))
}

func (h *handler) unsupported(what string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error { return errNotSupported(what) }
}

func newUUID() string { return uuid.NewString() }
