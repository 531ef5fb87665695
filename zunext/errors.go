package zunext

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/unisched/unisched/bridge"
	"github.com/unisched/unisched/internal/openstack"
)

// apiError is one of Zun's exceptions as its API renders it: Zun's
// controller wrapper turns the exception into a title (the message) and a
// code (the class name in kebab case), and ParsableErrorMiddleware wraps
// them into {"errors": [...]} with the code prefixed by "container.".
type apiError struct {
	Status int
	// Code is the exception class in kebab case ("container-not-found").
	Code string
	// Message is both the title and the detail, as Zun sends it.
	Message string
	// Title, when set, differs from the message (the 406 for versions).
	Title string
	// Header carries headers the response keeps even as an error.
	Header http.Header
	// MaxVersion and MinVersion accompany a 406 for the version.
	MaxVersion, MinVersion string
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

// The exceptions clients meet, by their Zun class.

func errInvalid(format string, args ...any) *apiError { // exception.Invalid / InvalidValue
	return &apiError{Status: 400, Code: "invalid-value", Message: fmt.Sprintf(format, args...)}
}

func errSchema(detail string) *apiError { // exception.SchemaValidationError
	return &apiError{Status: 400, Code: "schema-validation-error", Message: detail}
}

func errInvalidParameterValue(format string, args ...any) *apiError {
	return &apiError{Status: 400, Code: "invalid-parameter-value", Message: fmt.Sprintf(format, args...)}
}

func errParamInVersion(param string, v version, min string) *apiError { // exception.InvalidParamInVersion
	return &apiError{Status: 400, Code: "invalid-param-in-version", Message: fmt.Sprintf(
		"Invalid param %s because current request version is %s. %s is only supported from version %s",
		param, v, param, min)}
}

func errPolicy(action string) *apiError { // exception.PolicyNotAuthorized
	return &apiError{Status: 403, Code: "policy-not-authorized",
		Message: fmt.Sprintf("Policy doesn't allow %s to be performed.", action)}
}

func errContainerNotFound(ident string) *apiError {
	return &apiError{Status: 404, Code: "container-not-found",
		Message: fmt.Sprintf("Container %s could not be found.", ident)}
}

func errHostNotFound(ident string) *apiError { // exception.ComputeNodeNotFound
	return &apiError{Status: 404, Code: "compute-node-not-found",
		Message: fmt.Sprintf("Compute node %s could not be found.", ident)}
}

func errConflict(format string, args ...any) *apiError { // exception.Conflict
	return &apiError{Status: 409, Code: "conflict", Message: fmt.Sprintf(format, args...)}
}

func errInvalidState(action, id, status string) *apiError { // exception.InvalidStateException
	return &apiError{Status: 409, Code: "invalid-state-exception",
		Message: fmt.Sprintf("Cannot %s container %s in %s state", action, id, status)}
}

// errNotSupported answers the parts of Zun this deployment does not offer
// (networks, volumes, images, websockets): an explicit refusal rather than
// a request that silently does nothing.
func errNotSupported(what string) *apiError {
	return &apiError{Status: 400, Code: "operation-not-supported",
		Message: fmt.Sprintf("The operation is not supported: %s.", what)}
}

func errNotFoundPath() *apiError {
	return &apiError{Status: 404, Code: "", Title: "Not Found", Message: "The resource could not be found."}
}

func errMethod(allow string) *apiError {
	h := http.Header{}
	h.Set("Allow", allow)
	return &apiError{Status: 405, Code: "", Title: "Method Not Allowed",
		Message: "The method is not allowed for this resource.", Header: h}
}

// errNoVersionMatch is what Zun's versioned controllers raise when the
// requested microversion has no implementation of the method.
func errNoVersionMatch(v version) *apiError {
	return &apiError{Status: 406, Code: "", Title: "Not Acceptable",
		Message: fmt.Sprintf("Version %s was requested but the requested API is not supported for this version.", v)}
}

// errorItem is one element of Zun's "errors" list.
type errorItem struct {
	RequestID  string           `json:"request_id"`
	Code       string           `json:"code"`
	Status     int              `json:"status"`
	Title      string           `json:"title"`
	Detail     string           `json:"detail"`
	Links      []map[string]any `json:"links"`
	MaxVersion string           `json:"max_version,omitempty"`
	MinVersion string           `json:"min_version,omitempty"`
}

// writeError renders err in Zun's error body. Errors that are not API
// errors are internal faults: logged, and answered as Zun does with an
// obfuscated message carrying a correlation id.
func (h *handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var e *apiError
	if !errors.As(err, &e) {
		e = h.mapError(r, err)
	}
	for k, vs := range e.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	title := e.Title
	if title == "" {
		title = e.Message
	}
	links := []map[string]any{}
	if e.Status == http.StatusNotAcceptable && e.MaxVersion != "" {
		links = append(links, map[string]any{"rel": "help",
			"href": "https://docs.openstack.org/api-guide/compute/microversions.html"})
	}
	openstack.WriteJSON(w, e.Status, map[string][]errorItem{"errors": {{
		RequestID:  openstack.RequestIDFrom(r.Context()),
		Code:       "container." + e.Code,
		Status:     e.Status,
		Title:      title,
		Detail:     e.Message,
		Links:      links,
		MaxVersion: e.MaxVersion,
		MinVersion: e.MinVersion,
	}}})
}

// mapError turns the coordinator's errors into Zun's; anything else is a
// 500 whose details stay in the log.
func (h *handler) mapError(r *http.Request, err error) *apiError {
	switch {
	case errors.Is(err, bridge.ErrNotFound):
		return errContainerNotFound(r.PathValue("ident"))
	case errors.Is(err, bridge.ErrInvalid):
		return invalidFromBridge(err)
	case errors.Is(err, bridge.ErrConflict):
		return errConflict("%s", bridgeDetail(err, bridge.ErrConflict))
	}
	var ae *agentError
	if errors.As(err, &ae) {
		return ae.api()
	}
	id := newUUID()
	h.log.ErrorContext(r.Context(), "container API internal error", "error", err, "correlation_id", id,
		"request_id", openstack.RequestIDFrom(r.Context()), "method", r.Method, "path", r.URL.Path)
	return &apiError{Status: 500, Code: "", Title: "Internal Server Error",
		Message: "Your request could not be handled because of a problem in the server. Error Correlation id is: " + id}
}

var _ = slog.Default

// invalidFromBridge is the coordinator's ErrInvalid as Zun's invalid-value.
// A string the database cannot store (a NUL character: Zun's schemas let
// one through in workdir, command, environment, labels ...) names the
// field as the client spelled it: the last element of the coordinator's
// path ("container.environment.K" -> 'K', "container.command" ->
// 'command', "spec.healthcheck.test.1" -> 'test'), which for the container's fields and the spec's is the Zun
// field or key that held it.
func invalidFromBridge(err error) *apiError {
	var ne *bridge.NULError
	if !errors.As(err, &ne) {
		return errInvalid("%s", bridgeDetail(err, bridge.ErrInvalid))
	}
	parts := strings.Split(ne.Field, ".")
	field := parts[len(parts)-1]
	for i := len(parts) - 1; i > 0 && strings.Trim(parts[i], "0123456789") == ""; i-- {
		field = parts[i-1] // an array's index: the array's name
	}
	if strings.HasPrefix(ne.Field, "spec.healthcheck.test") {
		field = "cmd" // Zun's name of what Docker calls test
	}
	if ne.Reason == bridge.ReasonNUL {
		return errInvalid("Invalid input for field '%s'. The value contains a NUL character.", field)
	}
	return errInvalid("Invalid input for field '%s'. The value %s.", field, ne.Reason)
}

// bridgeDetail is the coordinator's message without its sentinel's
// prefix ("invalid request: cpu ..." -> "cpu ...").
func bridgeDetail(err, sentinel error) string {
	msg := err.Error()
	if i := strings.Index(msg, sentinel.Error()+": "); i >= 0 {
		msg = msg[:i] + msg[i+len(sentinel.Error())+2:]
	}
	return msg
}
