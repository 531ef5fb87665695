package novaext

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/unisched/unisched/internal/config"
)

// The client speaks to a stand-in of nova-api's topology route (noauth2
// token, microversion headers) answering as Nova's API samples do.
func TestTopology(t *testing.T) {
	const id = "7a35e5a3-3a36-4a4e-8a7d-1c2f0b5c9e11"
	var gotToken, gotMV, gotLegacyMV string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotToken, gotMV, gotLegacyMV = r.Header.Get("X-Auth-Token"), r.Header.Get("OpenStack-API-Version"), r.Header.Get("X-OpenStack-Nova-API-Version")
		switch r.URL.Path {
		case "/v2.1/servers/" + id + "/topology":
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"nodes": [
				{"memory_mb": 512, "siblings": [[0], [1]], "vcpu_set": [0, 1], "host_node": 1, "cpu_pinning": {"0": 6, "1": 5}},
				{"memory_mb": 512, "siblings": [[2]], "vcpu_set": [2], "host_node": 0, "cpu_pinning": {"2": 2}}],
				"pagesize_kb": null}`))
		default:
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"itemNotFound": {"code": 404, "message": "Instance could not be found."}}`))
		}
	}))
	defer srv.Close()
	c, err := NewNovaClient(context.Background(), config.Nova{Endpoint: srv.URL + "/v2.1", Token: "admin:admin", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	topo, err := c.Topology(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if gotToken != "admin:admin" || gotMV != "compute 2.78" || gotLegacyMV != "2.78" {
		t.Errorf("headers: token %q, OpenStack-API-Version %q, X-OpenStack-Nova-API-Version %q", gotToken, gotMV, gotLegacyMV)
	}
	cells, ok := topo.HostCells()
	want := []HostCell{{Cell: 1, CPUs: []int{5, 6}, MemoryMB: 512}, {Cell: 0, CPUs: []int{2}, MemoryMB: 512}}
	if !ok || !reflect.DeepEqual(cells, want) {
		t.Errorf("host cells %+v (%v), want %+v", cells, ok, want)
	}

	if _, err := c.Topology(context.Background(), "00000000-0000-0000-0000-000000000000"); !errors.Is(err, ErrServerNotFound) {
		t.Errorf("unknown server: %v", err)
	}
}

func TestHostCellsWithoutHostView(t *testing.T) {
	node := 0
	for _, tc := range []struct {
		name string
		topo *ServerTopology
		ok   bool
	}{
		{"nil", nil, false},
		{"no NUMA topology", &ServerTopology{}, false},
		{"not admin: no host_node", &ServerTopology{Nodes: []TopologyNode{{MemoryMB: 512, VCPUSet: []int{0}}}}, false},
		{"floating CPUs on a host cell", &ServerTopology{Nodes: []TopologyNode{{HostNode: &node, MemoryMB: 512}}}, true},
	} {
		if _, ok := tc.topo.HostCells(); ok != tc.ok {
			t.Errorf("%s: ok %v, want %v", tc.name, ok, tc.ok)
		}
	}
}

func TestNewNovaClientNeedsAnEndpoint(t *testing.T) {
	if _, err := NewNovaClient(context.Background(), config.Nova{}); err == nil {
		t.Fatal("a client without auth_url or endpoint was built")
	}
}
