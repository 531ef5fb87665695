package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/unisched/unisched/bridge/ledger"
	"github.com/unisched/unisched/internal/pgtest"
)

// Ports of the Nova proxy's serve tests (novaproxy's range).
const (
	testProxyPlacementAddr = "127.0.0.1:20100"
	testProxyAddr          = "127.0.0.1:20101"
)

// serve with nova_proxy.listen runs the proxy beside placement: a create
// through it reaches the upstream with an intent recorded, and shutdown
// closes its port with the others.
func TestServeNovaProxy(t *testing.T) {
	nova := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		switch {
		case r.Method == "POST" && r.URL.Path == "/v2.1/servers":
			w.Header().Set("X-Openstack-Request-Id", "req-00000000-0000-4000-8000-000000000001")
			w.WriteHeader(http.StatusAccepted)
			io.WriteString(w, `{"server": {"id": "s1"}}`)
		case r.URL.Path == "/v2.1/flavors/1":
			io.WriteString(w, `{"flavor": {"id": "1", "vcpus": 1, "ram": 512, "disk": 1, "extra_specs": {}}}`)
		default:
			io.WriteString(w, `{"versions": []}`)
		}
	}))
	defer nova.Close()
	url := pgtest.URL(t)
	t.Setenv("UNISCHED_DATABASE_URL", url)
	t.Setenv("UNISCHED_PLACEMENT_LISTEN", testProxyPlacementAddr)
	t.Setenv("UNISCHED_CONTAINER_API_LISTEN", "off")
	t.Setenv("UNISCHED_NOVA_PROXY_LISTEN", testProxyAddr)
	t.Setenv("UNISCHED_NOVA_PROXY_UPSTREAM", nova.URL)
	t.Setenv("UNISCHED_LOG_LEVEL", "error")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- runServe(ctx, nil) }()
	waitFor(t, "http://"+testProxyPlacementAddr+"/", done)
	waitFor(t, "http://"+testProxyAddr+"/", done)

	if code, body := get(t, "http://"+testProxyAddr+"/", "admin"); code != 200 || body != `{"versions": []}` {
		t.Errorf("version document through the proxy: %d %s", code, body)
	}
	if code, body := send(t, "POST", "http://"+testProxyAddr+"/v2.1/servers", "admin:admin",
		`{"server": {"name": "vm", "flavorRef": "1", "imageRef": "img"}}`); code != 202 || !strings.Contains(body, "s1") {
		t.Errorf("create through the proxy: %d %s", code, body)
	}
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	in, err := ledger.IntentByRequestID(context.Background(), conn, "req-00000000-0000-4000-8000-000000000001")
	if err != nil || in.Flavor == nil || in.Flavor.RAMMB != 512 || in.ProjectID != "admin" || in.ResponseStatus != 202 {
		t.Errorf("intent %+v (%v)", in, err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop")
	}
	if c, err := net.DialTimeout("tcp", testProxyAddr, time.Second); err == nil {
		c.Close()
		t.Error("the proxy still accepts connections after shutdown")
	}
}

// A proxy without an upstream stops serve at start.
func TestServeNovaProxyNeedsUpstream(t *testing.T) {
	t.Setenv("UNISCHED_DATABASE_URL", pgtest.URL(t))
	t.Setenv("UNISCHED_PLACEMENT_LISTEN", testProxyPlacementAddr)
	t.Setenv("UNISCHED_CONTAINER_API_LISTEN", "off")
	t.Setenv("UNISCHED_NOVA_PROXY_LISTEN", testProxyAddr)
	t.Setenv("UNISCHED_LOG_LEVEL", "error")
	err := runServe(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), "nova_proxy.upstream") {
		t.Fatalf("serve without an upstream: %v", err)
	}
}
