package openstack

import (
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"log/slog"
	"net/http"
	"strings"
)

// Error is an API error rendered in OpenStack's {"errors": [...]} body.
// Handlers return it; the service's error writer renders it.
type Error struct {
	Status int
	// Detail is the specific message; the body's "detail" prefixes it with
	// the status's generic explanation as WebOb does, since clients (Nova,
	// the conformance suite) match on substrings of that text.
	Detail string
	// Code is the service's error code (e.g. placement.concurrent_update);
	// empty means the service's undefined code.
	Code string
	// MaxVersion/MinVersion accompany a 406 for an unsupported microversion.
	MaxVersion, MinVersion string
	// Explanation overrides the status's generic explanation.
	Explanation string
	// Header carries extra response headers (e.g. Allow on a 405).
	Header http.Header
}

func (e *Error) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Status, http.StatusText(e.Status), e.Detail)
}

// Errorf builds an Error with a formatted detail.
func Errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Detail: fmt.Sprintf(format, args...)}
}

// explanations are WebOb's generic texts, which upstream services put
// before every detail.
var explanations = map[int]string{
	400: "The server could not comply with the request since it is either malformed or otherwise incorrect.",
	401: "This server could not verify that you are authorized to access the document you requested. Either you supplied the wrong credentials (e.g., bad password), or your browser does not understand how to supply the credentials required.",
	403: "Access was denied to this resource.",
	404: "The resource could not be found.",
	406: "The resource could not be generated that was acceptable to your browser (content of type application/json. ",
	409: "There was a conflict when trying to complete your request.",
	413: "The request is larger than the server is willing or able to process.",
	415: "The request media type is not supported by this server.",
	500: "The server has either erred or is incapable of performing the requested operation.",
}

// ErrorFormatter lets a service decide per request which optional fields
// the body carries (Placement sends "code" only from microversion 1.23).
type ErrorFormatter interface {
	IncludeCode(r *http.Request) bool
	DefaultCode() string
}

type formatterKey struct{}

// errorBody is one element of the "errors" list.
type errorBody struct {
	Status     int    `json:"status"`
	Title      string `json:"title"`
	Detail     string `json:"detail"`
	Code       string `json:"code,omitempty"`
	RequestID  string `json:"request_id,omitempty"`
	MaxVersion string `json:"max_version,omitempty"`
	MinVersion string `json:"min_version,omitempty"`
}

// WriteError renders err. Anything that is not an *Error is an internal
// fault: it is logged with the request id and answered with a generic 500,
// never with the internals.
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	var apiErr *Error
	if !errors.As(err, &apiErr) {
		slog.ErrorContext(r.Context(), "internal error", "error", err, "request_id", RequestIDFrom(r.Context()),
			"method", r.Method, "path", r.URL.Path)
		apiErr = &Error{Status: http.StatusInternalServerError, Detail: "An internal error occurred."}
	}
	expl := apiErr.Explanation
	if expl == "" {
		expl = explanations[apiErr.Status]
	}
	body := errorBody{
		Status:     apiErr.Status,
		Title:      http.StatusText(apiErr.Status),
		Detail:     expl + "\n\n " + apiErr.Detail + "  ",
		RequestID:  RequestIDFrom(r.Context()),
		MaxVersion: apiErr.MaxVersion,
		MinVersion: apiErr.MinVersion,
	}
	if f, ok := r.Context().Value(formatterKey{}).(ErrorFormatter); ok && f.IncludeCode(r) {
		body.Code = apiErr.Code
		if body.Code == "" {
			body.Code = f.DefaultCode()
		}
	}
	for k, vs := range apiErr.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.Header().Del("Last-Modified")
	w.Header().Del("Cache-Control")
	if prefersHTML(r) {
		w.Header().Set("Content-Type", "text/html; charset=UTF-8")
		w.WriteHeader(apiErr.Status)
		fmt.Fprintf(w, "<html>\n <head>\n  <title>%d %s</title>\n </head>\n <body>\n  <h1>%d %s</h1>\n  %s<br /><br />\n%s\n\n </body>\n</html>",
			apiErr.Status, body.Title, apiErr.Status, body.Title, html.EscapeString(expl), html.EscapeString(apiErr.Detail))
		return
	}
	WriteJSON(w, apiErr.Status, map[string][]errorBody{"errors": {body}})
}

// prefersHTML mirrors WebOb, which renders error pages as HTML when the
// client asks for HTML rather than JSON.
func prefersHTML(r *http.Request) bool {
	accept := strings.ToLower(r.Header.Get("Accept"))
	return strings.Contains(accept, "text/html") && !strings.Contains(accept, "application/json")
}

// WithErrorFormatter installs f for WriteError calls under the handler.
func WithErrorFormatter(f ErrorFormatter, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		next.ServeHTTP(w, r.WithContext(contextWith(ctx, formatterKey{}, f)))
	})
}

// WriteJSON writes v as the JSON response body.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		slog.Error("writing JSON response", "error", err)
	}
}
