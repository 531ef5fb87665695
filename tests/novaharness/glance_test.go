package novaharness

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestStartGlance starts a standalone Glance, uploads an image and reads
// a byte range of it back (collect's resume depends on Range), then
// checks that Close leaves nothing behind.
func TestStartGlance(t *testing.T) {
	ctx := context.Background()
	g, err := StartGlance(ctx, GlanceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("glance started in %v", g.Took.Round(time.Millisecond))
	dir := g.Dir
	defer g.Close()
	do := func(method, path, ctype string, body []byte, hdr map[string]string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, method, g.URL+path, bytes.NewReader(body))
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	resp, b := do("POST", "/v2/images", "application/json", []byte(`{"name": "x", "disk_format": "raw", "container_format": "bare"}`), nil)
	if resp.StatusCode != 201 {
		t.Fatalf("create: %d %s", resp.StatusCode, b)
	}
	id := string(b[strings.Index(string(b), `"id": "`)+7:][:36])
	data := bytes.Repeat([]byte("0123456789"), 1000)
	if resp, b := do("PUT", "/v2/images/"+id+"/file", "application/octet-stream", data, nil); resp.StatusCode != 204 {
		t.Fatalf("upload: %d %s", resp.StatusCode, b)
	}
	resp, b = do("GET", "/v2/images/"+id+"/file", "", nil, map[string]string{"Range": "bytes=9995-"})
	if resp.StatusCode != 206 || string(b) != "56789" || resp.Header.Get("Content-Range") != fmt.Sprintf("bytes 9995-9999/%d", len(data)) {
		t.Errorf("range: %d %q %q", resp.StatusCode, b, resp.Header.Get("Content-Range"))
	}
	if _, err := os.Stat(filepath.Join(g.StoreDir(), id)); err != nil {
		t.Errorf("file store: %v", err)
	}
	if n, err := g.AwaitRequests(1, 10*time.Second, "GET /v2/images/"+id+"/file", " 206 "); err != nil || n != 1 {
		t.Errorf("access log: %d range requests (%v); log:\n%s", n, err, g.Log(20))
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s left after Close: %v", dir, err)
	}
}
