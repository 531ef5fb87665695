package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/unisched/unisched/bridge/agentproto"
)

// serveClient calls serve's agent routes.
type serveClient struct {
	base, token, host string
	http              *http.Client
}

// statusError is a non-2xx answer from serve.
type statusError struct {
	Method, URL string
	Status      int
	Body        string
}

func (e *statusError) Error() string {
	return fmt.Sprintf("%s %s: %d %s", e.Method, e.URL, e.Status, e.Body)
}

// permanent says whether retrying cannot help: serve refused the request
// itself (4xx other than 408/429), as opposed to serve being away or failing.
func permanent(err error) bool {
	var se *statusError
	return errors.As(err, &se) && se.Status >= 400 && se.Status < 500 && se.Status != 408 && se.Status != 429
}

func (s *serveClient) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	u := s.base + path
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return err
	}
	req.Header.Set("X-Auth-Token", s.token)
	req.Header.Set("Accept", "application/json")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", method, u, err)
	}
	if resp.StatusCode/100 != 2 {
		return &statusError{Method: method, URL: u, Status: resp.StatusCode, Body: strings.TrimSpace(string(b[:min(len(b), 500)]))}
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: decoding the answer: %w", method, u, err)
		}
	}
	return nil
}

func (s *serveClient) agentPath(suffix string) string {
	return "/v1/agents/" + url.PathEscape(s.host) + suffix
}

func (s *serveClient) register(ctx context.Context, reg agentproto.Registration) (agentproto.RegistrationResult, error) {
	var res agentproto.RegistrationResult
	err := s.do(ctx, http.MethodPut, s.agentPath(""), reg, &res)
	return res, err
}

func (s *serveClient) report(ctx context.Context, r agentproto.Report) error {
	return s.do(ctx, http.MethodPost, s.agentPath("/reports"), r, nil)
}

func (s *serveClient) desired(ctx context.Context) (agentproto.Desired, error) {
	var d agentproto.Desired
	err := s.do(ctx, http.MethodGet, s.agentPath("/desired"), nil, &d)
	return d, err
}
