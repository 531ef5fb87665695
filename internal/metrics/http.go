package metrics

import (
	"bufio"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/unisched/unisched/internal/openstack"
)

// Path is where serve's listeners answer scrapes.
const Path = "/metrics"

// Unmatched is the route label of a request no route matched (a 404 on a
// path of the client's making): one series for all of them, whatever the
// path, so a scanner cannot grow the metrics without bound.
const Unmatched = "unmatched"

// HTTP records every request of serve's listeners: a counter and a
// latency histogram by listener, route template, method, status class and
// microversion, and one log line. Route and microversion come from the
// routers through openstack.RequestInfo; the raw path is never a label.
type HTTP struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight *prometheus.GaugeVec
	log      *slog.Logger
	// quiet are routes logged at debug level: probes and scrapes come
	// every few seconds and would drown the API's lines.
	quiet map[string]bool
}

// NewHTTP registers the request metrics on reg; log is the base of every
// request's logger (nil: slog.Default()).
func NewHTTP(reg prometheus.Registerer, log *slog.Logger) (*HTTP, error) {
	if log == nil {
		log = slog.Default()
	}
	m := &HTTP{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "unisched_http_requests_total",
			Help: "HTTP requests answered, by listener, route template, method, status class (2xx..5xx) and negotiated microversion.",
		}, []string{"listener", "route", "method", "status", "microversion"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "unisched_http_request_duration_seconds",
			Help:    "Time from a request's arrival to the end of its answer, by listener, route template, method and negotiated microversion.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"listener", "route", "method", "microversion"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "unisched_http_requests_in_flight",
			Help: "Requests being answered, by listener.",
		}, []string{"listener"}),
		log:   log,
		quiet: map[string]bool{"/healthz": true, "/readyz": true, Path: true},
	}
	if err := Register(reg, "the HTTP request metrics", m.requests, m.duration, m.inFlight); err != nil {
		return nil, err
	}
	return m, nil
}

// Wrap records the requests of one listener (its name is the listener
// label: "placement", "container", "nova_proxy"). It gives each request
// its id and logger (openstack.StartRequest), so the APIs' own RequestID
// keeps that id rather than minting a second one, and logs one line per
// request once the answer is written.
func (m *HTTP) Wrap(listener string, next http.Handler) http.Handler {
	inFlight := m.inFlight.WithLabelValues(listener)
	base := m.log.With("listener", listener)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		inFlight.Inc()
		defer inFlight.Dec()
		ctx, info := openstack.WithRequestInfo(r.Context())
		// the APIs' RequestID echoes the id on the response; the Nova
		// proxy's answers carry nova-api's own
		ctx, _ = openstack.StartRequest(openstack.WithLogger(ctx, base), r)
		rw := &recorder{ResponseWriter: w}
		r = r.WithContext(ctx)
		// a panic that escapes the API (http.ErrAbortHandler, or one
		// outside its Recover) is still counted, as the 500 it ends as
		defer func() {
			if p := recover(); p != nil {
				if rw.status == 0 {
					rw.status = http.StatusInternalServerError
				}
				m.observe(listener, r, info, rw, start)
				panic(p)
			}
		}()
		next.ServeHTTP(rw, r)
		m.observe(listener, r, info, rw, start)
	})
}

func (m *HTTP) observe(listener string, r *http.Request, info *openstack.RequestInfo, rw *recorder, start time.Time) {
	elapsed := time.Since(start)
	status := rw.status
	if status == 0 {
		status = http.StatusOK // nothing written: net/http sends 200
	}
	route := info.Route
	if route == "" {
		route = Unmatched
	}
	mv := info.Microversion
	if mv == "" {
		mv = versionFromHeader(rw.Header().Get(openstack.VersionHeader))
	}
	method := methodLabel(r.Method)
	m.requests.WithLabelValues(listener, route, method, statusClass(status), mv).Inc()
	m.duration.WithLabelValues(listener, route, method, mv).Observe(elapsed.Seconds())

	level := slog.LevelInfo
	if m.quiet[route] {
		level = slog.LevelDebug
	}
	if status >= 500 {
		level = slog.LevelWarn
	}
	ctx := r.Context()
	log := openstack.Logger(ctx)
	if !log.Enabled(ctx, level) {
		return
	}
	attrs := []slog.Attr{
		slog.String("method", r.Method),
		slog.String("route", route),
		slog.String("path", r.URL.Path),
		slog.Int("status", status),
		slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
		slog.Int64("bytes", rw.written),
	}
	if mv != "" {
		attrs = append(attrs, slog.String("microversion", mv))
	}
	// the Nova proxy answers with nova-api's own id: name it, so the
	// line leads to nova-api's log
	if rid := rw.Header().Get(openstack.RequestIDHeader); rid != "" && rid != openstack.RequestIDFrom(ctx) {
		attrs = append(attrs, slog.String("response_request_id", rid))
	}
	log.LogAttrs(ctx, level, "request", attrs...)
}

// versionOnly is a microversion's number, the only part of a response's
// OpenStack-API-Version header kept as a label (Zun's and nova-api's
// answers carry theirs there).
var versionOnly = regexp.MustCompile(`^[0-9]{1,3}\.[0-9]{1,3}$`)

func versionFromHeader(h string) string {
	_, v, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !versionOnly.MatchString(v) {
		return ""
	}
	return v
}

func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return m
	}
	return "OTHER"
}

func statusClass(code int) string {
	if code < 100 || code > 599 {
		return "other"
	}
	return strconv.Itoa(code/100) + "xx"
}

// recorder notes the status and size of an answer. It passes Flush and
// Hijack through (the Nova proxy streams, agents' logs may follow) and
// Unwrap for http.ResponseController.
type recorder struct {
	http.ResponseWriter
	status  int
	written int64
}

func (w *recorder) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.written += int64(n)
	return n, err
}

func (w *recorder) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("hijacking not supported")
	}
	if w.status == 0 {
		w.status = http.StatusSwitchingProtocols
	}
	return h.Hijack()
}

func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }
