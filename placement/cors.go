package placement

import (
	"net/http"
	"slices"
	"strings"
)

// corsMiddleware answers cross-origin requests as oslo.middleware's CORS
// filter does when [cors] allowed_origin is set: a preflight is answered
// here (200, headers only for an allowed origin), and actual requests from
// an allowed origin get Access-Control-Allow-Origin. With no origins
// configured it does nothing, so OPTIONS falls through to the 405.
func (s *Server) corsMiddleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cors := s.current().CORS
		origin := r.Header.Get("Origin")
		if cors == nil || len(cors.AllowedOrigins) == 0 || origin == "" {
			next.ServeHTTP(w, r)
			return
		}
		allowed := slices.Contains(cors.AllowedOrigins, origin) || slices.Contains(cors.AllowedOrigins, "*")
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			if allowed && s.preflightHeadersAllowed(cors, r) {
				h := w.Header()
				h.Set("Access-Control-Allow-Origin", origin)
				h.Set("Access-Control-Allow-Methods", "GET, PUT, POST, DELETE, PATCH")
				if req := r.Header.Get("Access-Control-Request-Headers"); req != "" {
					h.Set("Access-Control-Allow-Headers", req)
				}
				h.Add("Vary", "Origin")
			}
			w.WriteHeader(http.StatusOK)
			return
		}
		if allowed {
			w.Header().Set("Access-Control-Allow-Origin", origin)
			w.Header().Add("Vary", "Origin")
		}
		next.ServeHTTP(w, r)
	})
}

// simpleHeaders need no configuration (CORS "simple" request headers).
var simpleHeaders = []string{"cache-control", "content-language", "content-type", "expires", "last-modified", "pragma"}

func (s *Server) preflightHeadersAllowed(cors *CORS, r *http.Request) bool {
	req := r.Header.Get("Access-Control-Request-Headers")
	if req == "" {
		return true
	}
	for _, h := range strings.Split(req, ",") {
		h = strings.ToLower(strings.TrimSpace(h))
		if h == "" || slices.Contains(simpleHeaders, h) {
			continue
		}
		if !slices.ContainsFunc(cors.AllowHeaders, func(a string) bool { return strings.EqualFold(a, h) }) {
			return false
		}
	}
	return true
}
