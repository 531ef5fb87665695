// Package novaext is unisched's side of Nova's API: a proxy in front of
// nova-api that passes every call through unchanged and, on a server
// create, records what the user asked for (flavor with its extra specs,
// image, scheduler hints) as an intent in the ledger under the request's
// global id. Nova's scheduler later asks Placement for candidates with
// only amounts and traits; the bridge finds the rest in the intent.
//
// The proxy is a plain net/http/httputil.ReverseProxy: the user's token,
// project and microversion headers reach nova-api as sent, and nova-api's
// answer reaches the user as sent. What the proxy adds is bounded and
// never in the way: a request id when the client sent none (the id the
// intent is filed under), one flavor lookup with the user's own token, and
// two database writes; a failure of any of them is logged and the call
// goes through all the same.
//
// With Keystone (Config.Auth) the proxy validates each token first, with
// serve's cached validator, so that an intent names the token's project
// and user; a token nova-api's keystonemiddleware would refuse gets the
// same 401 from the proxy. A valid token still goes to nova-api as sent,
// which validates it again itself.
package novaext

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"

	"github.com/unisched/unisched/internal/openstack"
	"github.com/unisched/unisched/internal/pg"
)

// Config is what a Proxy needs.
type Config struct {
	// Upstream is nova-api's base URL (scheme, host, and the path prefix
	// it is served under, if any), e.g. http://127.0.0.1:8774; a trailing
	// version (the catalog's http://127.0.0.1:8774/v2.1) is dropped.
	Upstream string
	// DB is where intents are recorded (bridge/ledger).
	DB pg.DBTX
	// Transport carries the proxied calls and the flavor lookups; nil
	// uses a transport like http.DefaultTransport's, of the proxy's own.
	Transport http.RoundTripper
	// LookupTimeout bounds the flavor lookup and each intent write, so a
	// slow nova-api or database delays a create by at most this much
	// before it is forwarded anyway. Default 5s.
	LookupTimeout time.Duration
	// MaxIntentBody is the largest create body the proxy reads to record an
	// intent (larger ones go through unread). Default 1 MiB; nova-api's own
	// limit (oslo.middleware's max_request_body_size) is 112 KiB.
	MaxIntentBody int64
	// Auth, when set, validates every authenticated call's token before
	// it is forwarded, as nova-api's keystonemiddleware would, and names
	// the project and user an intent is recorded under: serve passes its
	// Keystone validator (one service token and one cache with Placement
	// and the container API). nil passes tokens on unvalidated, as under
	// noauth2, where the "user:project" token itself names them.
	Auth   openstack.Authenticator
	Logger *slog.Logger
}

// Proxy is the Nova API proxy; it is an http.Handler.
type Proxy struct {
	upstream *url.URL
	db       pg.DBTX
	client   *http.Client
	rp       *httputil.ReverseProxy
	timeout  time.Duration
	maxBody  int64
	auth     openstack.Authenticator
	log      *slog.Logger
	// ownTransport is closed by Close; a transport passed in is the
	// caller's.
	ownTransport *http.Transport
}

// New checks the configuration and builds the proxy.
func New(cfg Config) (*Proxy, error) {
	u, err := url.Parse(cfg.Upstream)
	if err != nil {
		return nil, fmt.Errorf("nova proxy upstream %q: %w", cfg.Upstream, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("nova proxy upstream %q: want http(s)://host[:port][/path]", cfg.Upstream)
	}
	// nova-api's catalog endpoint names a version (http://host:8774/v2.1);
	// clients put the version in every path themselves, and the proxy
	// serves the root's version list too, so the base is what precedes it.
	u.Path = strings.TrimRight(u.Path, "/")
	for _, v := range []string{"/v2.1", "/v2"} {
		if rest, ok := strings.CutSuffix(u.Path, v); ok {
			u.Path = rest
			break
		}
	}
	u.RawPath = ""
	if cfg.DB == nil {
		return nil, errors.New("nova proxy: no database")
	}
	p := &Proxy{upstream: u, db: cfg.DB, timeout: cfg.LookupTimeout, maxBody: cfg.MaxIntentBody, auth: cfg.Auth, log: cfg.Logger}
	if p.timeout <= 0 {
		p.timeout = 5 * time.Second
	}
	if p.maxBody <= 0 {
		p.maxBody = 1 << 20
	}
	if p.log == nil {
		p.log = slog.Default()
	}
	transport := cfg.Transport
	if transport == nil {
		p.ownTransport = &http.Transport{
			Proxy:                 nil, // nova-api is reached directly, never through $HTTP_PROXY
			DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          100,
			MaxIdleConnsPerHost:   32,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   10 * time.Second,
			ExpectContinueTimeout: 1 * time.Second,
		}
		transport = p.ownTransport
	}
	p.client = &http.Client{Transport: transport, CheckRedirect: func(*http.Request, []*http.Request) error {
		// a redirect would carry the user's token elsewhere
		return http.ErrUseLastResponse
	}}
	p.rp = &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		Transport:      transport,
		FlushInterval:  -1, // every write reaches the client at once: streaming stays streaming
		ModifyResponse: p.modifyResponse,
		ErrorHandler:   p.errorHandler,
		ErrorLog:       slog.NewLogLogger(p.log.Handler(), slog.LevelWarn),
	}
	return p, nil
}

// Close lets go of the idle upstream connections of the proxy's own
// transport.
func (p *Proxy) Close() {
	if p.ownTransport != nil {
		p.ownTransport.CloseIdleConnections()
	}
}

// ServeHTTP forwards the call (with Keystone, once its token is valid); a
// server create first has its intent recorded.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r, ok := p.authenticate(w, r)
	if !ok {
		return
	}
	if r.Method == http.MethodPost {
		if route, ok := createPath(r.URL.Path); ok {
			r = p.prepareCreate(r, route)
		}
	}
	p.rp.ServeHTTP(w, r)
}

// rewrite aims the outbound request at nova-api. The Host header stays
// the client's: nova-api builds every link it answers with (version
// documents, a server's links, pagination's next) from the request's
// host, so links point at the proxy, where the client came in, rather
// than at nova-api's own address that the client may not reach and that
// would take it around the proxy. X-Forwarded-Proto/-Host from a proxy in
// front of this one are kept (it knows the scheme the client used);
// otherwise they are set from this hop.
func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	pr.SetURL(p.upstream)
	pr.Out.Host = pr.In.Host
	pr.SetXForwarded()
	for _, h := range []string{"X-Forwarded-Proto", "X-Forwarded-Host"} {
		if v := pr.In.Header.Get(h); v != "" {
			pr.Out.Header.Set(h, v)
		}
	}
}

// modifyResponse completes the intent of a create (nova-api's ids as
// aliases, its status as the answer) before the client sees the answer,
// and points version documents' links at the proxy.
func (p *Proxy) modifyResponse(resp *http.Response) error {
	if c := createOf(resp.Request.Context()); c != nil {
		p.answerCreate(resp.Request.Context(), c, resp)
	}
	if resp.Request.Method == http.MethodGet && isVersionPath(p.relativePath(resp.Request.URL.Path)) {
		p.rewriteVersionLinks(resp)
	}
	return nil
}

// errorHandler answers a call nova-api could not be reached for (or that
// failed mid-way) with 502 in Nova's error shape, and releases the
// create's intent so the scheduler does not wait on it.
func (p *Proxy) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	if c := createOf(r.Context()); c != nil {
		p.finishCreate(r.Context(), c, http.StatusBadGateway, nil)
	}
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		// the client went away; nobody to answer
		p.log.Debug("nova proxy: client gone", "method", r.Method, "path", r.URL.Path)
		w.WriteHeader(499)
		return
	}
	p.log.Warn("nova proxy: upstream failed", "method", r.Method, "path", r.URL.Path, "error", err)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadGateway)
	_, _ = fmt.Fprintf(w, `{"computeFault": {"code": 502, "message": "The Nova API could not be reached through the proxy."}}`)
}

// relativePath is path without the upstream's own prefix (the outbound
// URL's path is the upstream prefix joined with the client's path).
func (p *Proxy) relativePath(path string) string {
	if p.upstream.Path == "" {
		return path
	}
	rest, ok := strings.CutPrefix(path, p.upstream.Path)
	if !ok {
		return path
	}
	if rest == "" {
		return "/"
	}
	return rest
}
