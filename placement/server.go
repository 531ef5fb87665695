// Package placement is unisched's OpenStack Placement API (microversions
// 1.0 to 1.39), a drop-in for upstream Placement 8.0.0 on PostgreSQL.
package placement

import (
	"context"
	"log/slog"
	"net/http"
	"sync/atomic"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/unisched/unisched/internal/openstack"
	"github.com/unisched/unisched/placement/policy"
)

// Versions offered; see microversions.go for what each one changed.
var (
	MinVersion = openstack.Version{Major: 1, Minor: 0}
	MaxVersion = openstack.Version{Major: 1, Minor: 39}
)

// CORS configures cross-origin access as oslo.middleware's [cors] options
// do; no AllowedOrigins disables it.
type CORS struct {
	AllowedOrigins []string
	// AllowHeaders may be requested in a preflight besides the simple ones.
	AllowHeaders []string
	// AllowMethods may be requested in a preflight; nil means oslo's
	// default (OPTIONS, GET, HEAD, POST, PUT, DELETE, TRACE, PATCH).
	AllowMethods []string
	// ExposeHeaders are listed in Access-Control-Expose-Headers.
	ExposeHeaders []string
	// MaxAge of preflight answers in seconds: 0 means oslo's 3600, a
	// negative value omits the header.
	MaxAge int
	// DisallowCredentials drops Access-Control-Allow-Credentials: true.
	DisallowCredentials bool
}

// Settings are the parts of the configuration the test-only reset may
// switch at run time; they are swapped as a whole.
type Settings struct {
	Policy *policy.Enforcer
	CORS   *CORS
}

// Config is everything the server needs from its caller.
type Config struct {
	Pool *pgxpool.Pool
	Auth openstack.Authenticator
	// Settings initially in force.
	Settings Settings
	// Project and user given to consumers written before microversion 1.8.
	IncompleteConsumerProjectID string
	IncompleteConsumerUserID    string
	// AllocationConflictRetries bounds the internal retries of an
	// allocation write that lost a provider-generation race.
	AllocationConflictRetries int
	// MaxBodyBytes caps request bodies.
	MaxBodyBytes int64
	// TestReset enables POST /_test/reset. Never enable it in production.
	TestReset bool
	Logger    *slog.Logger
	// Hooks connect the coordinator; nil hooks: Placement alone.
	Hooks Hooks
}

// Server serves the Placement API.
type Server struct {
	cfg      Config
	db       *pgxpool.Pool
	settings atomic.Pointer[Settings]
	log      *slog.Logger
	handler  http.Handler
	// candidates is the allocation-candidates index, kept current with
	// the database.
	candidates *candidatesIndex
	metrics    *placementMetrics // metrics.go
}

// New builds the server and its handler chain. The order follows upstream's
// deploy.py: request id (and the Accept defaulting of its request log),
// CORS, auth, microversion, then routing; panics become Placement's 500.
func New(cfg Config) *Server {
	if cfg.Auth == nil {
		cfg.Auth = openstack.NoAuth2{}
	}
	if cfg.IncompleteConsumerProjectID == "" {
		cfg.IncompleteConsumerProjectID = "00000000-0000-0000-0000-000000000000"
	}
	if cfg.IncompleteConsumerUserID == "" {
		cfg.IncompleteConsumerUserID = "00000000-0000-0000-0000-000000000000"
	}
	if cfg.AllocationConflictRetries <= 0 {
		cfg.AllocationConflictRetries = 10
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 1 << 20
	}
	if cfg.Settings.Policy == nil {
		cfg.Settings.Policy = policy.New(policy.Legacy)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{cfg: cfg, db: cfg.Pool, log: cfg.Logger, metrics: newPlacementMetrics()}
	s.candidates = newCandidatesIndex(cfg.Pool, cfg.Logger)
	s.candidates.metrics = s.metrics
	settings := cfg.Settings
	s.settings.Store(&settings)

	versions := openstack.VersionRange{Service: "placement", Min: MinVersion, Max: MaxVersion, Default: MinVersion}
	var h http.Handler = s.router()
	h = versions.VersionMiddleware(h)
	h = openstack.Authenticate(cfg.Auth, isPublic, h)
	h = s.corsMiddleware(h)
	h = openstack.Recover(h)
	h = openstack.WithErrorFormatter(errorFormatter{}, h)
	h = openstack.RequestID(h)
	s.handler = h
	return s
}

// Start begins the server's background work: loading the allocation
// candidates index and keeping it current while idle. Without it the index
// is loaded and caught up by the requests themselves.
func (s *Server) Start(ctx context.Context) { s.candidates.start(ctx) }

// Stop ends the background work started by Start and waits for it.
func (s *Server) Stop() { s.candidates.close() }

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// current returns the settings in force.
func (s *Server) current() *Settings { return s.settings.Load() }

// isPublic: only the version document is served without a token.
func isPublic(r *http.Request) bool {
	return r.URL.Path == "/" || r.URL.Path == "" || (r.URL.Path == "/_test/reset")
}

// errorFormatter: Placement sends error codes from microversion 1.23.
type errorFormatter struct{}

func (errorFormatter) IncludeCode(r *http.Request) bool {
	return openstack.VersionFrom(r.Context()).AtLeast(23)
}
func (errorFormatter) DefaultCode() string { return CodeUndefined }
