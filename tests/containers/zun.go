package containers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// ZunVersion is the microversion the client asks by default: Zun's newest.
const ZunVersion = "1.40"

// Zun is a small client of the Zun v1 API as python-zunclient calls it.
type Zun struct {
	URL   string
	Token string
	// Version is sent as "OpenStack-API-Version: container <Version>".
	Version string
	HTTP    *http.Client
	// Poll is the interval of the Wait helpers (default 100 ms).
	Poll time.Duration
}

// NewZun is a client of the container API at base with token (noauth2
// "user:project"; "admin:admin" is an admin).
func NewZun(base, token string) *Zun {
	return &Zun{URL: strings.TrimRight(base, "/"), Token: token, Version: ZunVersion,
		HTTP: &http.Client{Timeout: 60 * time.Second}, Poll: 100 * time.Millisecond}
}

// As is a copy of the client with another token.
func (z *Zun) As(token string) *Zun {
	c := *z
	c.Token = token
	return &c
}

// Response is one HTTP exchange's result.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into v.
func (r *Response) JSON(v any) error {
	if err := json.Unmarshal(r.Body, v); err != nil {
		return fmt.Errorf("decoding %d response %q: %w", r.Status, truncate(r.Body), err)
	}
	return nil
}

// ErrorCode is the first error's code of an OpenStack error body ("" if none).
func (r *Response) ErrorCode() string {
	var e struct {
		Errors []struct {
			Code   string `json:"code"`
			Detail string `json:"detail"`
		} `json:"errors"`
	}
	if json.Unmarshal(r.Body, &e) != nil || len(e.Errors) == 0 {
		return ""
	}
	return e.Errors[0].Code
}

func truncate(b []byte) string {
	if len(b) > 2000 {
		return string(b[:2000]) + "..."
	}
	return string(b)
}

// Do sends one request; body (if not nil) is sent as JSON.
func (z *Zun) Do(ctx context.Context, method, path string, body any) (*Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, z.URL+path, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if z.Token != "" {
		req.Header.Set("X-Auth-Token", z.Token)
	}
	if z.Version != "" {
		req.Header.Set("OpenStack-API-Version", "container "+z.Version)
	}
	resp, err := z.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: reading the body: %w", method, path, err)
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: b}, nil
}

// Container is Zun's container view (the fields the tests read; Raw has all).
type Container struct {
	UUID         string            `json:"uuid"`
	Name         string            `json:"name"`
	Image        string            `json:"image"`
	Status       string            `json:"status"`
	StatusReason string            `json:"status_reason"`
	StatusDetail string            `json:"status_detail"`
	TaskState    *string           `json:"task_state"`
	Host         *string           `json:"host"`
	CPU          float64           `json:"cpu"`
	CPUPolicy    string            `json:"cpu_policy"`
	Memory       *string           `json:"memory"`
	Disk         int64             `json:"disk"`
	ProjectID    string            `json:"project_id"`
	UserID       string            `json:"user_id"`
	Command      json.RawMessage   `json:"command"`
	Labels       map[string]string `json:"labels"`
	Raw          map[string]any    `json:"-"`
}

// HostName is the container's host, "" when it has none.
func (c Container) HostName() string {
	if c.Host == nil {
		return ""
	}
	return *c.Host
}

func decodeContainer(r *Response) (Container, error) {
	var c Container
	if err := r.JSON(&c); err != nil {
		return c, err
	}
	_ = json.Unmarshal(r.Body, &c.Raw)
	return c, nil
}

// APIError is a response with an unexpected status.
type APIError struct {
	Method, Path string
	Response     *Response
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s %s: %d %s", e.Method, e.Path, e.Response.Status, truncate(e.Response.Body))
}

// StatusOf is the HTTP status of an *APIError, 0 otherwise.
func StatusOf(err error) int {
	var ae *APIError
	if errors.As(err, &ae) {
		return ae.Response.Status
	}
	return 0
}

func (z *Zun) expect(ctx context.Context, method, path string, body any, want ...int) (*Response, error) {
	r, err := z.Do(ctx, method, path, body)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(want, r.Status) {
		return r, &APIError{Method: method, Path: path, Response: r}
	}
	return r, nil
}

// Create is POST /v1/containers (run=true with Run): 202 and the view.
func (z *Zun) Create(ctx context.Context, body map[string]any, run bool) (Container, error) {
	path := "/v1/containers"
	if run {
		path += "?run=true"
	}
	r, err := z.expect(ctx, http.MethodPost, path, body, http.StatusAccepted)
	if err != nil {
		return Container{}, err
	}
	return decodeContainer(r)
}

// Get is GET /v1/containers/{id} (uuid or name).
func (z *Zun) Get(ctx context.Context, id string) (Container, error) {
	r, err := z.expect(ctx, http.MethodGet, "/v1/containers/"+url.PathEscape(id), nil, http.StatusOK)
	if err != nil {
		return Container{}, err
	}
	return decodeContainer(r)
}

// List is GET /v1/containers[?query].
func (z *Zun) List(ctx context.Context, query string) ([]Container, error) {
	path := "/v1/containers"
	if query != "" {
		path += "?" + query
	}
	r, err := z.expect(ctx, http.MethodGet, path, nil, http.StatusOK)
	if err != nil {
		return nil, err
	}
	var out struct {
		Containers []Container `json:"containers"`
	}
	return out.Containers, r.JSON(&out)
}

// Delete is DELETE /v1/containers/{id}[?query] (force=true, stop=true...): 204.
func (z *Zun) Delete(ctx context.Context, id, query string) error {
	path := "/v1/containers/" + url.PathEscape(id)
	if query != "" {
		path += "?" + query
	}
	_, err := z.expect(ctx, http.MethodDelete, path, nil, http.StatusNoContent)
	return err
}

// Action is POST /v1/containers/{id}/{action}[?query] (start, stop, ...): 202.
func (z *Zun) Action(ctx context.Context, id, action, query string) error {
	path := "/v1/containers/" + url.PathEscape(id) + "/" + action
	if query != "" {
		path += "?" + query
	}
	_, err := z.expect(ctx, http.MethodPost, path, nil, http.StatusAccepted, http.StatusOK, http.StatusNoContent)
	return err
}

// Logs is GET /v1/containers/{id}/logs (stdout and stderr).
func (z *Zun) Logs(ctx context.Context, id string) (string, error) {
	r, err := z.expect(ctx, http.MethodGet, "/v1/containers/"+url.PathEscape(id)+"/logs?stdout=true&stderr=true", nil, http.StatusOK)
	if err != nil {
		return "", err
	}
	// Zun answers the log text as a JSON string.
	var s string
	if json.Unmarshal(r.Body, &s) == nil {
		return s, nil
	}
	return string(r.Body), nil
}

// Hosts is GET /v1/hosts (admin, >= 1.4).
func (z *Zun) Hosts(ctx context.Context) ([]map[string]any, error) {
	r, err := z.expect(ctx, http.MethodGet, "/v1/hosts", nil, http.StatusOK)
	if err != nil {
		return nil, err
	}
	var out struct {
		Hosts []map[string]any `json:"hosts"`
	}
	return out.Hosts, r.JSON(&out)
}

// WaitStatus polls GET until the container's status is one of want. It
// fails early when the status is Error (unless Error is wanted).
func (z *Zun) WaitStatus(ctx context.Context, id string, want ...string) (Container, error) {
	var last Container
	for {
		c, err := z.Get(ctx, id)
		if err == nil {
			last = c
			if slices.Contains(want, c.Status) {
				return c, nil
			}
			if c.Status == "Error" {
				return c, fmt.Errorf("container %s is in Error (%s), waiting for %v", id, c.StatusReason, want)
			}
		} else if StatusOf(err) != 0 && StatusOf(err) != http.StatusNotFound {
			return last, err
		}
		select {
		case <-ctx.Done():
			return last, fmt.Errorf("container %s: status %q (%s) after waiting for %v: %w", id, last.Status, last.StatusReason, want, ctx.Err())
		case <-time.After(z.poll()):
		}
	}
}

// WaitGone polls GET until it answers 404.
func (z *Zun) WaitGone(ctx context.Context, id string) error {
	for {
		_, err := z.Get(ctx, id)
		if StatusOf(err) == http.StatusNotFound {
			return nil
		}
		if err != nil && StatusOf(err) == 0 {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("container %s still there: %w", id, ctx.Err())
		case <-time.After(z.poll()):
		}
	}
}

func (z *Zun) poll() time.Duration {
	if z.Poll <= 0 {
		return 100 * time.Millisecond
	}
	return z.Poll
}

// MustRun creates and runs a container and waits (up to a minute) for
// Running or, for a command that ends, Stopped; it returns the view then.
func (z *Zun) MustRun(t testing.TB, body map[string]any) Container {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := z.Create(ctx, body, true)
	if err != nil {
		t.Fatalf("running a container: %v", err)
	}
	c, err = z.WaitStatus(ctx, c.UUID, "Running", "Stopped")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// MustDelete deletes (force) and waits until the container is gone.
func (z *Zun) MustDelete(t testing.TB, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := z.Delete(ctx, id, "force=true"); err != nil && StatusOf(err) != http.StatusNotFound {
		t.Fatalf("deleting container %s: %v", id, err)
	}
	if err := z.WaitGone(ctx, id); err != nil {
		t.Fatal(err)
	}
}
