package openstack

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"slices"
	"strings"
)

// Error is an API error. Handlers return it; WriteError renders it as
// WebOb renders the exceptions upstream services raise: JSON in the
// service's {"errors": [...]} shape, HTML or plain text, depending on the
// client's Accept header.
type Error struct {
	Status int
	// Detail is the specific message; the body's "detail" prefixes it with
	// the status's generic explanation as WebOb does, since clients (Nova,
	// the conformance suite) match on substrings of that text. Line breaks
	// become spaces and anything that looks like an HTML tag is dropped
	// from the JSON and plain-text renderings, as WebOb's strip_tags does.
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
	// Escaped marks errors upstream raises past its handlers' response
	// handling (routing, policy): the microversion middleware then adds its
	// header to the response but no "Vary: openstack-api-version".
	Escaped bool
	// Bare renders JSON in WebOb's own {"message", "code", "title"} shape,
	// as errors raised outside the service's formatter are (the auth
	// middleware's 401).
	Bare bool
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
	409: "There was a conflict when trying to complete your request.",
	413: "The request is larger than the server is willing or able to process.",
	500: "The server has either erred or is incapable of performing the requested operation.",
}

// titles are WebOb's status titles where they differ from Go's.
var titles = map[int]string{
	413: "Request Entity Too Large",
	422: "Unprocessable Entity",
}

func title(status int) string {
	if t, ok := titles[status]; ok {
		return t
	}
	return http.StatusText(status)
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

// bareBody is WebOb's default JSON error body.
type bareBody struct {
	Message string `json:"message"`
	Code    string `json:"code"`
	Title   string `json:"title"`
}

// WriteError renders err. Anything that is not an *Error is an internal
// fault: it is logged with the request id and answered with a generic 500,
// never with the internals.
func WriteError(w http.ResponseWriter, r *http.Request, err error) {
	var apiErr *Error
	if !errors.As(err, &apiErr) {
		Logger(r.Context()).ErrorContext(r.Context(), "internal error", "error", err,
			"method", r.Method, "path", r.URL.Path)
		apiErr = &Error{Status: http.StatusInternalServerError, Detail: "An internal error occurred."}
	}
	for k, vs := range apiErr.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.Header().Del("Last-Modified")
	w.Header().Del("Cache-Control")
	if apiErr.Escaped {
		vary := slices.DeleteFunc(w.Header().Values("Vary"), func(v string) bool { return strings.EqualFold(v, VersionHeader) })
		w.Header().Del("Vary")
		for _, v := range vary {
			w.Header().Add("Vary", v)
		}
	}
	status := fmt.Sprintf("%d %s", apiErr.Status, title(apiErr.Status))
	if r.Method == http.MethodHead {
		// WebOb answers HEAD with the exception's own (HTML) headers and
		// no body, without negotiating a format
		w.Header().Set("Content-Type", "text/html; charset=UTF-8")
		w.WriteHeader(apiErr.Status)
		return
	}

	var match string
	if offers, _ := AcceptableOffers(EffectiveAccept(r), []string{"text/html", "application/json"}); len(offers) > 0 {
		match = offers[0]
	}
	switch match {
	case "text/html":
		w.Header().Set("Content-Type", "text/html; charset=UTF-8")
		w.WriteHeader(apiErr.Status)
		fmt.Fprintf(w, "<html>\n <head>\n  <title>%s</title>\n </head>\n <body>\n  <h1>%s</h1>\n  %s\n </body>\n</html>",
			status, status, apiErr.body(r, htmlEscape))
	case "application/json":
		if apiErr.Bare {
			WriteJSON(w, apiErr.Status, bareBody{Message: apiErr.body(r, noEscape), Code: status, Title: title(apiErr.Status)})
			return
		}
		body := errorBody{
			Status:     apiErr.Status,
			Title:      title(apiErr.Status),
			Detail:     stripTags(apiErr.body(r, noEscape)),
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
		WriteJSON(w, apiErr.Status, map[string][]errorBody{"errors": {body}})
	default:
		w.Header().Set("Content-Type", "text/plain; charset=UTF-8")
		w.WriteHeader(apiErr.Status)
		fmt.Fprintf(w, "%s\n\n%s", status, stripTags(apiErr.body(r, noEscape)))
	}
}

// body fills WebOb's body template for the status. 405, 406 and 415 have
// templates of their own that quote the request (method, Accept,
// Content-Type); the others put the explanation before the detail.
func (e *Error) body(r *http.Request, escape func(string) string) string {
	detail := escape(e.Detail)
	switch e.Status {
	case http.StatusMethodNotAllowed:
		return "The method " + escape(r.Method) + " is not allowed for this resource. <br /><br />\n" + detail
	case http.StatusNotAcceptable:
		return "The resource could not be generated that was acceptable to your browser\n(content of type " +
			escape(EffectiveAccept(r)) + ". <br /><br />\n" + detail
	case http.StatusUnsupportedMediaType:
		return "The request media type " + escape(contentTypeEnviron(r)) + " is not supported by this server.\n<br /><br />\n" + detail
	}
	expl := e.Explanation
	if expl == "" {
		expl = explanations[e.Status]
	}
	return escape(expl) + "<br /><br />\n" + detail + "\n\n"
}

// contentTypeEnviron is CONTENT_TYPE as the 415 template sees it: upstream
// replaces an empty media type by "None" (keeping any parameters) before
// raising.
func contentTypeEnviron(r *http.Request) string {
	ct := r.Header.Get("Content-Type")
	mt, params, hasParams := strings.Cut(ct, ";")
	if mt != "" {
		return ct
	}
	if hasParams {
		return "None;" + params
	}
	return "None"
}

var (
	brRE      = regexp.MustCompile(`(?is)<br.*?>`)
	commentRE = regexp.MustCompile(`<!--|-->`)
	tagRE     = regexp.MustCompile(`(?s)<.*?>`)
)

// stripTags is WebOb's strip_tags.
func stripTags(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	s = strings.ReplaceAll(s, "\r", "")
	s = brRE.ReplaceAllString(s, "\n")
	s = commentRE.ReplaceAllString(s, "")
	return tagRE.ReplaceAllString(s, "")
}

func noEscape(s string) string { return s }

// htmlEscape is WebOb's html_escape: Python's html.escape(s, quote=True)
// with non-ASCII characters as decimal character references.
func htmlEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '&':
			b.WriteString("&amp;")
		case r == '<':
			b.WriteString("&lt;")
		case r == '>':
			b.WriteString("&gt;")
		case r == '"':
			b.WriteString("&quot;")
		case r == '\'':
			b.WriteString("&#x27;")
		case r > 0x7f:
			fmt.Fprintf(&b, "&#%d;", r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
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
