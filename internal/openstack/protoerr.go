package openstack

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/google/uuid"
)

// Go's HTTP server answers requests it cannot parse (a Content-Length
// that is not a number, a malformed request line, ...) itself, before any
// handler runs, with a canned plain-text response written straight to the
// connection:
//
//	HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request
//
// (since Go 1.2x without the reason).
// OpenStack clients expect every error in the API's own format, and the
// upstream Placement suite checks the text of one of them ("content-length
// header must be an integer"). ProtocolErrorListener rewrites exactly those
// canned responses into the API's error body; every other byte passes
// through untouched. The connection is closed afterwards either way, as
// RFC 9112 requires after a framing error.

// cannedHeaders is the fixed part of Go's response
// (net/http server.go: "HTTP/1.1 "+publicErr+errorHeaders+publicErr).
const cannedHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"

// recentLimit bounds how much of what the client sent last is kept to
// explain a canned error; a request head larger than Go's limit is refused
// with 431 anyway.
const recentLimit = 16 << 10

var contentLengthLine = regexp.MustCompile(`(?im)^content-length:[ \t]*([^\r\n]*)\r?$`)

// diagnose names the fault of the request whose head is in recent, in the
// words upstream services use, since Go's canned answer no longer says.
func diagnose(recent []byte) string {
	head := recent
	if i := bytes.LastIndex(head, []byte("\r\n\r\n")); i >= 0 {
		head = head[:i]
	}
	for _, m := range contentLengthLine.FindAllSubmatch(head, -1) {
		if _, err := strconv.ParseUint(strings.TrimSpace(string(m[1])), 10, 63); err != nil {
			return "content-length header must be an integer"
		}
	}
	return "The request could not be parsed as HTTP/1.1."
}

// ProtocolErrorListener wraps l so canned protocol errors are rendered by
// WriteError (JSON, with a request id, and the service's formatter when
// one is given).
func ProtocolErrorListener(l net.Listener, formatter ErrorFormatter) net.Listener {
	return &protoErrListener{Listener: l, formatter: formatter}
}

type protoErrListener struct {
	net.Listener
	formatter ErrorFormatter
}

func (l *protoErrListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &protoErrConn{Conn: c, formatter: l.formatter}, nil
}

type protoErrConn struct {
	net.Conn
	formatter ErrorFormatter
	// recent holds the tail of what was read last (the request head Go is
	// parsing); net/http reads and writes a connection from one goroutine
	// at a time, so no lock is needed.
	recent []byte
}

func (c *protoErrConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		if n >= recentLimit {
			c.recent = append(c.recent[:0], p[n-recentLimit:n]...)
		} else {
			if drop := len(c.recent) + n - recentLimit; drop > 0 {
				c.recent = append(c.recent[:0], c.recent[drop:]...)
			}
			c.recent = append(c.recent, p[:n]...)
		}
	}
	return n, err
}

// Write passes p through unless it is one of Go's canned error responses,
// which are written in a single call of their own.
func (c *protoErrConn) Write(p []byte) (int, error) {
	if rewritten, ok := c.rewrite(p); ok {
		if _, err := c.Conn.Write(rewritten); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// rewrite parses "HTTP/1.1 <code> <text><cannedHeaders><code> <text>[: reason]".
func (c *protoErrConn) rewrite(p []byte) ([]byte, bool) {
	const proto = "HTTP/1.1 "
	if !bytes.HasPrefix(p, []byte(proto)) || len(p) < len(proto)+3 {
		return nil, false
	}
	i := bytes.Index(p, []byte(cannedHeaders))
	if i < 0 {
		return nil, false
	}
	statusLine := p[len(proto):i]
	body := p[i+len(cannedHeaders):]
	if !bytes.HasPrefix(body, statusLine) {
		return nil, false
	}
	status, err := strconv.Atoi(string(statusLine[:3]))
	if err != nil || status < 400 || status > 599 {
		return nil, false
	}
	detail := "The request could not be parsed as HTTP/1.1."
	if status == http.StatusBadRequest {
		detail = diagnose(c.recent)
	} else if t := http.StatusText(status); t != "" {
		detail = t + "."
	}
	return renderStandalone(status, detail, c.formatter), true
}

// renderStandalone renders an error outside any request: there is no
// parsed request to negotiate with, so it is JSON with a fresh request id.
func renderStandalone(status int, detail string, formatter ErrorFormatter) []byte {
	ctx := context.WithValue(context.Background(), requestIDKey{}, "req-"+uuid.NewString())
	if formatter != nil {
		ctx = context.WithValue(ctx, formatterKey{}, formatter)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "/", nil)
	req.Header.Set("Accept", "application/json")
	rec := &bufferWriter{header: http.Header{}}
	WriteError(rec, req, &Error{Status: status, Detail: detail, Escaped: true})
	var out bytes.Buffer
	fmt.Fprintf(&out, "HTTP/1.1 %d %s\r\n", rec.status, http.StatusText(rec.status))
	rec.header.Set("Content-Length", strconv.Itoa(rec.body.Len()))
	rec.header.Set("Connection", "close")
	rec.header.Set(RequestIDHeader, RequestIDFrom(ctx))
	_ = rec.header.Write(&out)
	out.WriteString("\r\n")
	out.Write(rec.body.Bytes())
	return out.Bytes()
}

// bufferWriter is the minimal ResponseWriter renderStandalone needs.
type bufferWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferWriter) Header() http.Header { return b.header }
func (b *bufferWriter) WriteHeader(status int) {
	if b.status == 0 {
		b.status = status
	}
}
func (b *bufferWriter) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}
