// Package load drives any OpenStack Placement endpoint (upstream placement-api
// or unisched) with the work of issue 3: seeding a fleet of compute-node
// providers, timing GET /allocation_candidates, claiming with PUT
// /allocations under concurrency and proving afterwards that no provider was
// over-allocated. The same code measures both servers, so their numbers
// differ only by the server.
package load

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Microversions the generator speaks. Providers are created at 1.20 (the
// first version whose POST returns the provider body), everything else at
// 1.39, the newest one upstream Placement 8.0.0 (Zed) serves.
const (
	MVCreate = "1.20"
	MVLatest = "1.39"
)

// Client sends Placement requests with the noauth2 admin token.
type Client struct {
	Base  string
	Token string
	HTTP  *http.Client
}

// NewClient sizes the connection pool for conc concurrent callers: a pool
// smaller than the concurrency makes every request beyond it open a new
// connection, which at 100k providers exhausts ephemeral ports.
func NewClient(base string, conc int, timeout time.Duration) *Client {
	if conc < 1 {
		conc = 1
	}
	return &Client{
		Base:  strings.TrimRight(base, "/"),
		Token: "admin",
		HTTP: &http.Client{Timeout: timeout, Transport: &http.Transport{
			Proxy:               nil,
			MaxIdleConns:        conc * 2,
			MaxIdleConnsPerHost: conc * 2,
			IdleConnTimeout:     90 * time.Second,
		}},
	}
}

// Response is one answer with its wall time; Err is a transport failure.
type Response struct {
	Code int
	Body []byte
	Dur  time.Duration
	Err  error
}

// Is reports whether the request reached the server and got one of codes.
func (r Response) Is(codes ...int) bool {
	if r.Err != nil {
		return false
	}
	for _, c := range codes {
		if r.Code == c {
			return true
		}
	}
	return false
}

// ErrorCode is the first Placement error code in the body ("" if none).
func (r Response) ErrorCode() string {
	var e struct {
		Errors []struct {
			Code string `json:"code"`
		} `json:"errors"`
	}
	if json.Unmarshal(r.Body, &e) != nil || len(e.Errors) == 0 {
		return ""
	}
	return e.Errors[0].Code
}

func (r Response) String() string {
	if r.Err != nil {
		return r.Err.Error()
	}
	b := strings.TrimSpace(string(r.Body))
	if len(b) > 400 {
		b = b[:400] + "..."
	}
	return fmt.Sprintf("HTTP %d: %s", r.Code, b)
}

// Do sends one request; body (if not nil) is encoded as JSON.
func (c *Client) Do(ctx context.Context, method, path, mv string, body any) Response {
	var rd io.Reader
	if body != nil {
		j, err := json.Marshal(body)
		if err != nil {
			return Response{Err: fmt.Errorf("encoding %s %s body: %w", method, path, err)}
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, rd)
	if err != nil {
		return Response{Err: err}
	}
	req.Header.Set("X-Auth-Token", c.Token)
	req.Header.Set("Accept", "application/json")
	if mv != "" {
		req.Header.Set("OpenStack-API-Version", "placement "+mv)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	start := time.Now()
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return Response{Err: fmt.Errorf("%s %s: %w", method, path, err), Dur: time.Since(start)}
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return Response{Code: resp.StatusCode, Body: b, Dur: time.Since(start), Err: err}
}

// Expect is Do that turns any status outside codes into an error naming the call.
func (c *Client) Expect(ctx context.Context, method, path, mv string, body any, codes ...int) (Response, error) {
	r := c.Do(ctx, method, path, mv, body)
	if !r.Is(codes...) {
		return r, fmt.Errorf("%s %s: %s", method, path, r)
	}
	return r, nil
}

// MaxVersion asks GET / for the server's newest microversion.
func (c *Client) MaxVersion(ctx context.Context) (string, error) {
	r, err := c.Expect(ctx, "GET", "/", "", nil, http.StatusOK)
	if err != nil {
		return "", err
	}
	var root struct {
		Versions []struct {
			MaxVersion string `json:"max_version"`
		} `json:"versions"`
	}
	if err := json.Unmarshal(r.Body, &root); err != nil || len(root.Versions) == 0 {
		return "", fmt.Errorf("GET %s/: not a version document: %s", c.Base, r)
	}
	return root.Versions[0].MaxVersion, nil
}
