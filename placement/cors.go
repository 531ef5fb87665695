package placement

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// defaultCORSMethods is oslo.middleware's [cors] allow_methods default.
var defaultCORSMethods = []string{"OPTIONS", "GET", "HEAD", "POST", "PUT", "DELETE", "TRACE", "PATCH"}

// simpleHeaders may always be requested in a preflight (oslo.middleware's
// CORS.simple_headers).
var simpleHeaders = []string{"Accept", "Accept-Language", "Content-Type", "Cache-Control", "Content-Language",
	"Expires", "Last-Modified", "Pragma"}

// corsMiddleware behaves as oslo.middleware's CORS filter, which upstream
// installs when [cors] allowed_origin is set. Every OPTIONS request is
// answered here with an empty 200 (upstream lets the application answer
// and replaces its 405 or 401 by one), carrying the preflight headers when
// the origin, method and requested headers are allowed. Other requests
// from an allowed origin get Access-Control-Allow-Origin. With no origins
// configured it does nothing, so OPTIONS falls through to the 405.
func (s *Server) corsMiddleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cors := s.current().CORS
		if cors == nil || len(cors.AllowedOrigins) == 0 {
			next.ServeHTTP(w, r)
			return
		}
		origin, allowed := cors.allowedOrigin(r)
		if r.Method == http.MethodOptions {
			if allowed {
				cors.preflight(w.Header(), r, origin)
			}
			w.WriteHeader(http.StatusOK)
			return
		}
		if allowed {
			h := w.Header()
			h.Add("Vary", "Origin")
			h.Set("Access-Control-Allow-Origin", origin)
			if !cors.DisallowCredentials {
				h.Set("Access-Control-Allow-Credentials", "true")
			}
			if len(cors.ExposeHeaders) > 0 {
				h.Set("Access-Control-Expose-Headers", strings.Join(cors.ExposeHeaders, ","))
			}
		}
		next.ServeHTTP(w, r)
	})
}

// allowedOrigin returns the origin to echo: the request's, or "*" when only
// the wildcard admits it.
func (c *CORS) allowedOrigin(r *http.Request) (string, bool) {
	values, ok := r.Header["Origin"]
	if !ok {
		return "", false
	}
	origin := strings.Join(values, ",")
	switch {
	case slices.Contains(c.AllowedOrigins, origin):
		return origin, true
	case slices.Contains(c.AllowedOrigins, "*"):
		return "*", true
	}
	return "", false
}

// preflight adds the headers of CORS section 6.2 when the requested method
// and headers are allowed.
func (c *CORS) preflight(h http.Header, r *http.Request, origin string) {
	methods, ok := r.Header["Access-Control-Request-Method"]
	if !ok {
		return
	}
	method := strings.Join(methods, ",")
	allowMethods := c.AllowMethods
	if allowMethods == nil {
		allowMethods = defaultCORSMethods
	}
	if !slices.Contains(allowMethods, method) {
		return
	}
	var requested []string
	for _, v := range strings.Split(strings.Join(r.Header.Values("Access-Control-Request-Headers"), ","), ",") {
		if v = strings.TrimSpace(v); v != "" {
			requested = append(requested, v)
		}
	}
	for _, req := range requested {
		permitted := func(a string) bool { return strings.EqualFold(a, req) }
		if !slices.ContainsFunc(c.AllowHeaders, permitted) && !slices.ContainsFunc(simpleHeaders, permitted) {
			return
		}
	}
	h.Set("Vary", "Origin")
	h.Set("Access-Control-Allow-Origin", origin)
	if !c.DisallowCredentials {
		h.Set("Access-Control-Allow-Credentials", "true")
	}
	switch {
	case c.MaxAge == 0:
		h.Set("Access-Control-Max-Age", "3600")
	case c.MaxAge > 0:
		h.Set("Access-Control-Max-Age", strconv.Itoa(c.MaxAge))
	}
	h.Set("Access-Control-Allow-Methods", method)
	if len(requested) > 0 {
		h.Set("Access-Control-Allow-Headers", strings.Join(requested, ","))
	}
}
