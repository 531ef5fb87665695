package novaext

import (
	"context"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/unisched/unisched/bridge/reconcile"
	"github.com/unisched/unisched/internal/config"
)

// A stand-in of nova-api's GET /servers/detail answering in two pages, as
// nova-api does past its max_limit (a "next" link carrying the marker).
func TestListServers(t *testing.T) {
	var queries []string
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v2.1/servers/detail" {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		queries = append(queries, r.URL.RawQuery)
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Query().Get("marker") == "" {
			_, _ = w.Write([]byte(`{"servers": [
				{"id": "a", "status": "ACTIVE", "OS-EXT-SRV-ATTR:host": "compute-1", "OS-EXT-STS:task_state": null},
				{"id": "b", "status": "BUILD", "OS-EXT-SRV-ATTR:host": null, "OS-EXT-STS:task_state": "scheduling"}],
				"servers_links": [{"rel": "next", "href": "` + srv.URL + `/v2.1/servers/detail?all_tenants=True&marker=b"}]}`))
			return
		}
		_, _ = w.Write([]byte(`{"servers": [{"id": "c", "status": "VERIFY_RESIZE", "OS-EXT-SRV-ATTR:host": "compute-2",
			"OS-EXT-STS:task_state": null}]}`))
	}))
	defer srv.Close()
	c, err := NewNovaClient(context.Background(), config.Nova{Endpoint: srv.URL + "/v2.1", Token: "admin:admin", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	got, err := NewServers(c).ListServers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []reconcile.Server{{ID: "a", Status: "ACTIVE", Host: "compute-1"}, {ID: "b", Status: "BUILD", TaskState: "scheduling"},
		{ID: "c", Status: "VERIFY_RESIZE", Host: "compute-2"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("servers %+v, want %+v", got, want)
	}
	if len(queries) != 2 || queries[0] != "all_tenants=true" {
		t.Errorf("queries %q", queries)
	}
}

func TestListServersFails(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	c, err := NewNovaClient(context.Background(), config.Nova{Endpoint: srv.URL + "/v2.1", Token: "admin:admin", Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewServers(c).ListServers(context.Background()); err == nil {
		t.Fatal("a 503 listed servers")
	}
}
