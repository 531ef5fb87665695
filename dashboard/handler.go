package dashboard

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/unisched/unisched/internal/pg"
)

//go:embed assets
var assets embed.FS

var page = template.Must(template.ParseFS(assets, "assets/index.html"))

// Config is what the handler needs.
type Config struct {
	// DB is the database (serve's pool); only read.
	DB pg.Beginner
	// Options bounds what a page shows and names serve's registry.
	Options Options
	// Refresh is how often the page reloads its data; 0: 5 s.
	Refresh time.Duration
	// Timeout bounds one load from the database; 0: 10 s.
	Timeout time.Duration
	Logger  *slog.Logger
}

// Handler serves the dashboard at the root of its own listener: GET /
// (the page), GET /api/state (the same view as JSON) and the static
// files. Every link is relative, so a reverse proxy may mount it under a
// prefix. Anything but GET and HEAD is refused with 405: the dashboard
// never changes anything.
func Handler(cfg Config) http.Handler {
	if cfg.Refresh <= 0 {
		cfg.Refresh = 5 * time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	h := &handler{cfg: cfg}
	static, err := fs.Sub(assets, "assets")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", h.page)
	mux.HandleFunc("GET /api/state", h.state)
	files := http.StripPrefix("/static/", http.FileServerFS(static))
	for _, name := range []string{"dashboard.css", "dashboard.js"} {
		mux.Handle("GET /static/"+name, files)
	}
	return secure(mux)
}

type handler struct {
	cfg Config
	// mu makes loads one at a time: however many pages are open, the
	// database sees one dashboard transaction at a time, and a page
	// asking within reuse of the last load gets that view.
	mu   sync.Mutex
	last *View
	at   time.Time
}

// reuse is how old a view may be and still be served again.
const reuse = time.Second

func (h *handler) view(ctx context.Context) (*View, error) {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.Timeout)
	defer cancel()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.last != nil && time.Since(h.at) < reuse {
		return h.last, nil
	}
	v, err := Load(ctx, h.cfg.DB, h.cfg.Options)
	if err != nil {
		return nil, err
	}
	h.last, h.at = v, time.Now()
	return v, nil
}

// unavailable answers a failed load without its detail (which names
// tables and SQL): the log has it.
func (h *handler) unavailable(w http.ResponseWriter, r *http.Request, err error) {
	h.cfg.Logger.ErrorContext(r.Context(), "dashboard: loading the view", "error", err)
	http.Error(w, "the dashboard could not read the database; serve's log says why", http.StatusServiceUnavailable)
}

func (h *handler) page(w http.ResponseWriter, r *http.Request) {
	v, err := h.view(r.Context())
	if err != nil {
		h.unavailable(w, r, err)
		return
	}
	var buf bytes.Buffer
	data := struct {
		View    *View
		Refresh int
	}{v, max(1, int(h.cfg.Refresh/time.Second))}
	if err := page.Execute(&buf, data); err != nil {
		h.cfg.Logger.ErrorContext(r.Context(), "dashboard: rendering the page", "error", err)
		http.Error(w, "the dashboard could not render the page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(buf.Bytes())
}

func (h *handler) state(w http.ResponseWriter, r *http.Request) {
	v, err := h.view(r.Context())
	if err != nil {
		h.unavailable(w, r, err)
		return
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		h.cfg.Logger.ErrorContext(r.Context(), "dashboard: encoding the view", "error", err)
		http.Error(w, "the dashboard could not encode the view", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(append(b, '\n'))
}

// secure adds the headers of a read-only page that loads nothing from
// elsewhere: no inline script or style, no framing, no caching, no
// referrer leaving the operator's network.
func secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}
