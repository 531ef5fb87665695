package novaharness

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Exchange is one request Nova made to Placement and the answer it got.
type Exchange struct {
	At           time.Time
	Method, URI  string
	Version      string // OpenStack-API-Version ("" = none: 1.0)
	RequestID    string // X-Openstack-Request-Id (Nova's global id)
	RequestBody  string
	Status       int
	ResponseBody string
	Took         time.Duration
}

func (x Exchange) String() string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s %s [%s] [%s] -> %d in %s", x.At.Format("15:04:05.000"), x.Method, x.URI, x.Version, x.RequestID, x.Status, x.Took.Round(time.Millisecond))
	if x.RequestBody != "" {
		fmt.Fprintf(&b, "\n  > %s", x.RequestBody)
	}
	if x.ResponseBody != "" && (x.Status >= 400 || x.Method != http.MethodGet) {
		fmt.Fprintf(&b, "\n  < %s", x.ResponseBody)
	}
	return b.String()
}

// Wire sits between Nova and unisched's Placement and records every
// exchange (all of them in its log file, in memory too), so that a test, or
// whoever reads a failure, sees exactly what Nova sent and what it got.
type Wire struct {
	LogPath string

	mu   sync.Mutex
	log  *os.File
	seen []Exchange

	// proxy forwards to Placement; setTarget swaps it when Placement
	// moved to another port. gate is held (hold) while Placement restarts:
	// requests wait instead of being answered 502.
	proxy atomic.Pointer[httputil.ReverseProxy]
	gate  sync.RWMutex
}

const wireBodyLimit = 8192

func newWire(target, logPath string) (*Wire, http.Handler, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, nil, fmt.Errorf("placement url %q: %w", target, err)
	}
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, nil, err
	}
	w := &Wire{LogPath: logPath, log: f}
	w.proxy.Store(newProxy(u))
	return w, http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.gate.RLock()
		defer w.gate.RUnlock()
		x := Exchange{At: time.Now(), Method: r.Method, URI: r.URL.RequestURI(),
			Version: r.Header.Get("OpenStack-API-Version"), RequestID: r.Header.Get("X-Openstack-Request-Id")}
		if r.Body != nil {
			body, _ := io.ReadAll(r.Body)
			r.Body.Close()
			x.RequestBody = clip(body)
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		rec := &recorder{ResponseWriter: rw, status: http.StatusOK}
		w.proxy.Load().ServeHTTP(rec, r)
		x.Status, x.ResponseBody, x.Took = rec.status, clip(rec.body.Bytes()), time.Since(x.At)
		w.add(x)
	}), nil
}

// balancerError answers as the balancer an operator puts in front of
// Placement does (haproxy): 503 when no server took the connection (serve
// is down or restarting), which keystoneauth retries when Nova's
// [placement] sets status_code_retries, and 502 when the server went away
// in the middle of an answer, which nobody can safely retry.
func balancerError(w http.ResponseWriter, r *http.Request, err error) {
	status, text := http.StatusBadGateway, "The server returned an invalid or incomplete response."
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		status, text = http.StatusServiceUnavailable, "No server is available to handle this request."
	}
	w.Header().Set("Content-Type", "text/html")
	w.WriteHeader(status)
	fmt.Fprintf(w, "<html><body><h1>%d %s</h1>\n%s\n</body></html>\n", status, http.StatusText(status), text)
}

func newProxy(u *url.URL) *httputil.ReverseProxy {
	p := httputil.NewSingleHostReverseProxy(u)
	p.ErrorHandler = balancerError
	return p
}

// setTarget sends what comes next to Placement at target.
func (w *Wire) setTarget(target string) error {
	u, err := url.Parse(target)
	if err != nil {
		return fmt.Errorf("placement url %q: %w", target, err)
	}
	w.proxy.Store(newProxy(u))
	return nil
}

// hold makes requests wait until release is called (a restart of
// Placement the harness makes is not an outage Nova should see).
func (w *Wire) hold() (release func()) {
	w.gate.Lock()
	return w.gate.Unlock
}

func clip(b []byte) string {
	if len(b) > wireBodyLimit {
		return string(b[:wireBodyLimit]) + "...(clipped)"
	}
	return string(b)
}

func (w *Wire) add(x Exchange) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seen = append(w.seen, x)
	fmt.Fprintln(w.log, x.String())
}

// Exchanges returns what was recorded so far, oldest first.
func (w *Wire) Exchanges() []Exchange {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Exchange(nil), w.seen...)
}

// Failures are the recorded exchanges answered with a status of 400 or
// more, except 404 on a GET (Nova probes for providers and allocations
// that do not exist yet as a matter of course).
func (w *Wire) Failures() []Exchange {
	var out []Exchange
	for _, x := range w.Exchanges() {
		if x.Status >= 400 && !(x.Status == http.StatusNotFound && x.Method == http.MethodGet) {
			out = append(out, x)
		}
	}
	return out
}

func (w *Wire) close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.log.Close()
}

type recorder struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (r *recorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.body.Len() < wireBodyLimit+1 {
		r.body.Write(b)
	}
	return r.ResponseWriter.Write(b)
}
