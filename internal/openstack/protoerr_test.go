package openstack

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// TestProtocolErrorListener sends what Go's server must refuse before any
// handler runs and checks the answer is in the API's error format, while
// a normal request on the same server passes through unchanged.
func TestProtocolErrorListener(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, "400 Bad Request: bad Content-Length") // a handler's own body is never rewritten
	})}
	go srv.Serve(ProtocolErrorListener(l, nil))
	t.Cleanup(func() { srv.Close() })

	cases := []struct {
		name       string
		raw        string
		wantStatus int
		wantDetail string // "" means: not rewritten
	}{
		{"bad content length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: hi mom\r\n\r\nbody", 400, "content-length header must be an integer"},
		{"malformed request line", "GARBAGE\r\n\r\n", 400, "could not be parsed"},
		{"handler body untouched", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 400, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := io.WriteString(c, tc.raw); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.wantStatus)
			}
			if tc.wantDetail == "" {
				if string(body) != "400 Bad Request: bad Content-Length" {
					t.Fatalf("handler body rewritten: %q", body)
				}
				return
			}
			var parsed struct {
				Errors []struct {
					Status    int    `json:"status"`
					Detail    string `json:"detail"`
					RequestID string `json:"request_id"`
				} `json:"errors"`
			}
			if err := json.Unmarshal(body, &parsed); err != nil {
				t.Fatalf("body is not the API's JSON: %q", body)
			}
			if len(parsed.Errors) != 1 || !strings.Contains(parsed.Errors[0].Detail, tc.wantDetail) ||
				!strings.HasPrefix(parsed.Errors[0].RequestID, "req-") {
				t.Fatalf("unexpected error body %s", body)
			}
			if !resp.Close {
				t.Errorf("connection not closed after a framing error")
			}
		})
	}
}
