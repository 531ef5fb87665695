package novaext

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/unisched/unisched/internal/openstack"
)

// unauthorizedMessage is the one message keystonemiddleware's auth_token
// answers every refusal with (missing, unknown, expired, revoked token,
// or a bad service token): nova-api's own 401 says no more, so neither
// does the proxy's (the validator's reason goes to the log).
const unauthorizedMessage = "The request you have made requires authentication."

// needsToken says whether nova-api's pipeline authenticates a call to
// path: everything under a version (its paste urlmap's /v2/+ and
// /v2.1/+), not the version documents themselves (/, /v2, /v2.1 and with
// a trailing slash), nor any other path, which nova-api's version
// application answers unauthenticated. A path left open here is still
// nova-api's to authenticate: the proxy only learns nothing about its
// caller.
func needsToken(path string) bool {
	for _, v := range []string{"/v2.1/", "/v2/"} {
		if rest, ok := strings.CutPrefix(path, v); ok {
			return rest != ""
		}
	}
	return false
}

// authenticate validates the caller's token (and service token) with
// the proxy's Authenticator before the call goes anywhere: with Keystone
// the proxy knows whose create it records, and a token nova-api would
// refuse is refused here the same way, without a database write or a
// flavor lookup made with it. ok is false when the answer was written.
func (p *Proxy) authenticate(w http.ResponseWriter, r *http.Request) (*http.Request, bool) {
	if p.auth == nil || !needsToken(r.URL.Path) {
		return r, true
	}
	creds, err := p.auth.Authenticate(r)
	if err != nil {
		p.refuse(w, r, err)
		return r, false
	}
	return r.WithContext(openstack.WithCredentials(r.Context(), creds)), true
}

// refuse answers as nova-api's pipeline does when keystonemiddleware
// refuses a call: a 401 with auth_token's own JSON body
// ({"error": {"code", "title", "message"}}, whatever the Accept header)
// and its WWW-Authenticate header; Keystone unreachable is WebOb's 503,
// rendered as Placement renders keystonemiddleware's. Both carry the
// request id headers nova-api's compute_req_id middleware (ahead of
// auth_token in its pipeline) puts on every answer.
func (p *Proxy) refuse(w http.ResponseWriter, r *http.Request, err error) {
	id := newRequestID()
	w.Header().Set(HeaderRequestID, id)
	w.Header().Set(headerComputeRequestID, id)
	var e *openstack.Error
	if !errors.As(err, &e) || e.Status != http.StatusUnauthorized {
		p.log.Warn("nova proxy: token not validated", "method", r.Method, "path", r.URL.Path, "error", err)
		openstack.WriteError(w, r, err)
		return
	}
	p.log.Debug("nova proxy: token refused", "method", r.Method, "path", r.URL.Path, "reason", e.Detail)
	for k, vs := range e.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	// WebOb puts no charset on application/json (nova-api answers "application/json")
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(unauthorizedBody)))
	w.WriteHeader(http.StatusUnauthorized)
	if r.Method != http.MethodHead {
		_, _ = io.WriteString(w, unauthorizedBody)
	}
}

// unauthorizedBody is auth_token's 401 body byte for byte: its dict
// serialized by Python's json (keys in insertion order, ", " and ": ").
const unauthorizedBody = `{"error": {"code": 401, "title": "Unauthorized", "message": "` + unauthorizedMessage + `"}}`
