package zunext

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/unisched/unisched/bridge/agentproto"
	"github.com/unisched/unisched/internal/openstack"
)

// AgentClient makes the synchronous calls of the container API to the
// agent running a container (agentproto's logs, execute, stats and top
// routes).
type AgentClient struct {
	http *http.Client
	// Token is sent as X-Auth-Token (agents may require one).
	Token string
}

// NewAgentClient returns a client using c, or a client with a 60 s
// timeout when c is nil (execute waits for the command to finish).
func NewAgentClient(c *http.Client) *AgentClient {
	if c == nil {
		c = &http.Client{Timeout: 60 * time.Second}
	}
	return &AgentClient{http: c}
}

// agentError is an agent's answer other than 2xx, or no answer.
type agentError struct {
	status int    // 0 when the agent could not be reached
	detail string // the agent's error detail, or the transport error
	url    string
}

func (e *agentError) Error() string {
	return fmt.Sprintf("agent call %s: status %d: %s", e.url, e.status, e.detail)
}

// api renders the failure for the container API's client: the agent's
// 4xx as they are (404: the container is not on its host), anything else
// as the host being unavailable.
func (e *agentError) api() *apiError {
	switch {
	case e.status == http.StatusNotFound:
		return &apiError{Status: http.StatusNotFound, Code: "container-not-found", Message: e.detail}
	case e.status >= 400 && e.status < 500:
		return &apiError{Status: e.status, Code: "invalid", Message: e.detail}
	}
	return &apiError{Status: http.StatusServiceUnavailable, Code: "container-host-not-up",
		Message: "The container's host agent did not answer: " + e.detail}
}

func (a *AgentClient) do(ctx context.Context, method, base, path string, q url.Values, body, out any) error {
	u := strings.TrimSuffix(base, "/") + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encoding agent request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return &agentError{detail: err.Error(), url: u}
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if a.Token != "" {
		req.Header.Set("X-Auth-Token", a.Token)
	}
	if id := openstack.RequestIDFrom(ctx); id != "" {
		req.Header.Set(openstack.RequestIDHeader, id)
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return &agentError{detail: err.Error(), url: u}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return &agentError{detail: err.Error(), url: u}
	}
	if resp.StatusCode/100 != 2 {
		return &agentError{status: resp.StatusCode, detail: errorDetail(data), url: u}
	}
	switch o := out.(type) {
	case nil:
		return nil
	case *string:
		*o = string(data)
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return &agentError{status: resp.StatusCode, detail: "bad answer: " + err.Error(), url: u}
	}
	return nil
}

// errorDetail reads an OpenStack error body, or keeps the text.
func errorDetail(data []byte) string {
	var body struct {
		Errors []struct {
			Title  string `json:"title"`
			Detail string `json:"detail"`
		} `json:"errors"`
	}
	if json.Unmarshal(data, &body) == nil && len(body.Errors) > 0 {
		if d := body.Errors[0].Detail; d != "" {
			return d
		}
		return body.Errors[0].Title
	}
	return strings.TrimSpace(string(data))
}

func containerPath(id, what string) string {
	return "/v1/containers/" + url.PathEscape(id) + "/" + what
}

// Logs returns the container's logs (query: stdout, stderr, timestamps,
// tail, since).
func (a *AgentClient) Logs(ctx context.Context, base, id string, q url.Values) (string, error) {
	var out string
	err := a.do(ctx, http.MethodGet, base, containerPath(id, "logs"), q, nil, &out)
	return out, err
}

// Exec runs a command in the container and waits for it.
func (a *AgentClient) Exec(ctx context.Context, base, id string, req agentproto.ExecRequest) (agentproto.ExecResult, error) {
	var out agentproto.ExecResult
	err := a.do(ctx, http.MethodPost, base, containerPath(id, "execute"), nil, req, &out)
	return out, err
}

// Stats returns a snapshot of the container's resource use.
func (a *AgentClient) Stats(ctx context.Context, base, id string) (agentproto.Stats, error) {
	var out agentproto.Stats
	err := a.do(ctx, http.MethodGet, base, containerPath(id, "stats"), nil, nil, &out)
	return out, err
}

// Top lists the container's processes.
func (a *AgentClient) Top(ctx context.Context, base, id, psArgs string) (agentproto.Top, error) {
	var out agentproto.Top
	var q url.Values
	if psArgs != "" {
		q = url.Values{"ps_args": {psArgs}}
	}
	err := a.do(ctx, http.MethodGet, base, containerPath(id, "top"), q, nil, &out)
	return out, err
}
