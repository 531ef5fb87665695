package placement

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/unisched/unisched/internal/pgtest"
	"github.com/unisched/unisched/placement/store"
)

// newStoreTestServer is newTestServer that also hands back the pool, so
// tests can build providers and allocations with SQL.
func newStoreTestServer(t *testing.T) (*httptest.Server, *pgxpool.Pool) {
	t.Helper()
	pool := pgtest.Pool(t)
	if err := store.EnsureStandard(context.Background(), pool); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(Config{Pool: pool}))
	t.Cleanup(srv.Close)
	return srv, pool
}

// sqlProvider inserts a root provider and returns its uuid.
func sqlProvider(t *testing.T, pool *pgxpool.Pool, name string) string {
	t.Helper()
	var uuid string
	var id int64
	ctx := context.Background()
	err := pool.QueryRow(ctx, `INSERT INTO resource_providers (uuid, name) VALUES (gen_random_uuid(), $1)
		RETURNING id, uuid::text`, name).Scan(&id, &uuid)
	if err == nil {
		_, err = pool.Exec(ctx, `UPDATE resource_providers SET root_provider_id = id WHERE id = $1`, id)
	}
	if err != nil {
		t.Fatal(err)
	}
	return uuid
}

// sqlAllocate records an allocation of amount of class on the provider for
// a new consumer of project/user (and consumer type, when not empty).
func sqlAllocate(t *testing.T, pool *pgxpool.Pool, providerUUID, consumerUUID, project, user, ctype string, amounts map[string]int) {
	t.Helper()
	ctx := context.Background()
	_, err := pool.Exec(ctx, `INSERT INTO projects (external_id) VALUES ($1) ON CONFLICT DO NOTHING`, project)
	if err == nil {
		_, err = pool.Exec(ctx, `INSERT INTO users (external_id) VALUES ($1) ON CONFLICT DO NOTHING`, user)
	}
	if err == nil && ctype != "" {
		_, err = pool.Exec(ctx, `INSERT INTO consumer_types (name) VALUES ($1) ON CONFLICT DO NOTHING`, ctype)
	}
	if err == nil {
		_, err = pool.Exec(ctx, `INSERT INTO consumers (uuid, project_id, user_id, consumer_type_id)
			SELECT $1, p.id, u.id, (SELECT id FROM consumer_types WHERE name = $4)
			FROM projects p, users u WHERE p.external_id = $2 AND u.external_id = $3
			ON CONFLICT (uuid) DO NOTHING`, consumerUUID, project, user, ctype)
	}
	for class, n := range amounts {
		if err != nil {
			break
		}
		_, err = pool.Exec(ctx, `INSERT INTO allocations (resource_provider_id, consumer_id, resource_class_id, used)
			SELECT rp.id, c.id, rc.id, $4 FROM resource_providers rp, consumers c, resource_classes rc
			WHERE rp.uuid = $1 AND c.uuid = $2 AND rc.name = $3`, providerUUID, consumerUUID, class, n)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// step is one request of a scripted scenario and what must come back.
type step struct {
	name    string
	method  string
	path    string
	mv      string
	body    string
	status  int
	strings []string
	// json maps a dotted path into the response to its expected JSON text.
	json    map[string]string
	headers map[string]string // "" means the header must be absent
}

func runSteps(t *testing.T, srv *httptest.Server, steps []step) {
	t.Helper()
	for _, st := range steps {
		resp, body := do(t, srv, st.method, st.path, st.mv, st.body)
		if resp.StatusCode != st.status {
			t.Fatalf("%s: status %d, want %d: %s", st.name, resp.StatusCode, st.status, body)
		}
		for _, s := range st.strings {
			if !strings.Contains(body, s) {
				t.Errorf("%s: body lacks %q: %s", st.name, s, body)
			}
		}
		for h, want := range st.headers {
			got := resp.Header.Get(h)
			switch {
			case want == "" && got != "":
				t.Errorf("%s: header %s = %q, want none", st.name, h, got)
			case want == "*" && got == "":
				t.Errorf("%s: header %s missing", st.name, h)
			case want != "" && want != "*" && got != want:
				t.Errorf("%s: header %s = %q, want %q", st.name, h, got, want)
			}
		}
		if len(st.json) == 0 {
			continue
		}
		var doc any
		if err := json.Unmarshal([]byte(body), &doc); err != nil {
			t.Fatalf("%s: body is not JSON: %v: %s", st.name, err, body)
		}
		for path, want := range st.json {
			got, err := jsonAt(doc, path)
			if err != nil {
				t.Errorf("%s: %s: %v in %s", st.name, path, err, body)
				continue
			}
			if got != want {
				t.Errorf("%s: %s = %s, want %s", st.name, path, got, want)
			}
		}
	}
}

// jsonAt renders the value at a dotted path as compact JSON.
func jsonAt(doc any, path string) (string, error) {
	cur := doc
	if path != "" {
		for _, k := range strings.Split(path, ".") {
			m, ok := cur.(map[string]any)
			if !ok {
				return "", fmt.Errorf("not an object at %q", k)
			}
			if cur, ok = m[k]; !ok {
				return "", fmt.Errorf("no key %q", k)
			}
		}
	}
	b, err := json.Marshal(cur)
	return string(b), err
}

func TestInventoryLifecycle(t *testing.T) {
	srv, pool := newStoreTestServer(t)
	rp := sqlProvider(t, pool, "rp1")
	base := "/resource_providers/" + rp + "/inventories"
	missing := "/resource_providers/7260669a-e3d4-4867-aaa7-683e2ab6958c/inventories"
	runSteps(t, srv, []step{
		{name: "missing provider", method: "GET", path: missing, status: 404,
			strings: []string{"No resource provider with uuid 7260669a-e3d4-4867-aaa7-683e2ab6958c found"}},
		{name: "malformed provider uuid", method: "GET", path: "/resource_providers/not-a-uuid/inventories", status: 404},
		{name: "delete all for missing provider", method: "DELETE", path: missing, mv: "1.5", status: 404},
		{name: "empty", method: "GET", path: base, status: 200,
			json: map[string]string{"resource_provider_generation": "0", "inventories": "{}"}},
		{name: "reserved above total", method: "POST", path: base, status: 400,
			body:    `{"resource_class": "DISK_GB", "total": 256, "reserved": 512}`,
			strings: []string{"Unable to create inventory for resource provider", "greater than or equal to total"}},
		{name: "unknown class", method: "POST", path: base, status: 400,
			body: `{"resource_class": "NO_CLASS_14", "total": 2048}`, strings: []string{"No such resource class NO_CLASS_14"}},
		{name: "malformed json", method: "POST", path: base, status: 400, body: `{"foo": }`, strings: []string{"Malformed JSON"}},
		{name: "create", method: "POST", path: base, status: 201,
			body:    `{"resource_class": "DISK_GB", "total": 2048, "reserved": 512, "min_unit": 10, "max_unit": 1024, "step_size": 10, "allocation_ratio": 1.0}`,
			headers: map[string]string{"Location": srv.URL + base + "/DISK_GB"},
			json:    map[string]string{"resource_provider_generation": "1", "total": "2048", "reserved": "512"}},
		{name: "duplicate", method: "POST", path: base, mv: "1.23", status: 409, body: `{"resource_class": "DISK_GB", "total": 2048}`,
			strings: []string{"Update conflict", "placement.concurrent_update"}},
		{name: "get one 1.15", method: "GET", path: base + "/DISK_GB", mv: "1.15", status: 200,
			headers: map[string]string{"Last-Modified": "*", "Cache-Control": "no-cache"},
			json: map[string]string{"resource_provider_generation": "1", "min_unit": "10", "max_unit": "1024",
				"step_size": "10", "allocation_ratio": "1"}},
		{name: "get one 1.14", method: "GET", path: base + "/DISK_GB", mv: "1.14", status: 200,
			headers: map[string]string{"Last-Modified": "", "Cache-Control": ""}},
		{name: "allocation ratio rendered as python float", method: "GET", path: base + "/DISK_GB", status: 200,
			strings: []string{`"allocation_ratio":1.0`}},
		{name: "update one", method: "PUT", path: base + "/DISK_GB", status: 200,
			body: `{"resource_provider_generation": 1, "total": 2048, "reserved": 1024, "min_unit": 10, "max_unit": 1024, "step_size": 10}`,
			json: map[string]string{"reserved": "1024", "resource_provider_generation": "2"}},
		{name: "update one stale generation", method: "PUT", path: base + "/DISK_GB", mv: "1.23", status: 409,
			body:    `{"resource_provider_generation": 5, "total": 2048}`,
			strings: []string{"resource provider generation conflict", "placement.concurrent_update"}},
		{name: "update one without inventory", method: "PUT", path: base + "/MEMORY_MB", status: 400,
			body: `{"resource_provider_generation": 2, "total": 2048}`, strings: []string{"No inventory record with resource class"}},
		{name: "update one unknown class", method: "PUT", path: base + "/HOUSE", status: 404,
			body: `{"resource_provider_generation": 2, "total": 2048}`, strings: []string{"No such resource class HOUSE"}},
		{name: "update one bad capacity", method: "PUT", path: base + "/DISK_GB", status: 400,
			body:    `{"resource_provider_generation": 2, "total": 2048, "reserved": 4096}`,
			strings: []string{"Unable to update inventory for resource provider " + rp}},
		{name: "list 1.15", method: "GET", path: base, mv: "1.15", status: 200,
			headers: map[string]string{"Last-Modified": "*", "Cache-Control": "no-cache"},
			json:    map[string]string{"resource_provider_generation": "2", "inventories.DISK_GB.reserved": "1024"}},
		{name: "delete one", method: "DELETE", path: base + "/DISK_GB", status: 204, headers: map[string]string{"Content-Type": ""}},
		{name: "delete one again", method: "DELETE", path: base + "/DISK_GB", status: 404,
			strings: []string{"No inventory of class DISK_GB found for delete"}},
		{name: "delete one unknown class", method: "DELETE", path: base + "/HOUSE", status: 404},
		{name: "get one missing", method: "GET", path: base + "/IPV4_ADDRESS", status: 404,
			strings: []string{"No inventory of class IPV4_ADDRESS for " + rp}},
		{name: "put all", method: "PUT", path: base, mv: "1.15", status: 200,
			body:    `{"resource_provider_generation": 3, "inventories": {"IPV4_ADDRESS": {"total": 253}, "DISK_GB": {"total": 1024, "allocation_ratio": 1.5}}}`,
			headers: map[string]string{"Last-Modified": "*"},
			json: map[string]string{"resource_provider_generation": "4", "inventories.IPV4_ADDRESS.reserved": "0",
				"inventories.IPV4_ADDRESS.max_unit": "2147483647", "inventories.DISK_GB.allocation_ratio": "1.5"}},
		{name: "put all keeps request order", method: "PUT", path: base, status: 200,
			body:    `{"resource_provider_generation": 4, "inventories": {"IPV4_ADDRESS": {"total": 253}, "DISK_GB": {"total": 1024}}}`,
			strings: []string{`"inventories":{"IPV4_ADDRESS":`}},
		{name: "get all in class order", method: "GET", path: base, status: 200,
			strings: []string{`"inventories":{"DISK_GB":`}},
		{name: "put all stale generation", method: "PUT", path: base, mv: "1.23", status: 409,
			body:    `{"resource_provider_generation": 99, "inventories": {"IPV4_ADDRESS": {"total": 253}}}`,
			strings: []string{"resource provider generation conflict", "placement.concurrent_update"}},
		{name: "put all unknown class", method: "PUT", path: base, status: 400,
			body:    `{"resource_provider_generation": 5, "inventories": {"HOUSE": {"total": 253}}}`,
			strings: []string{"Unknown resource class in inventory", "No such resource class HOUSE"}},
		{name: "put all reserved equals total before 1.26", method: "PUT", path: base, status: 400,
			body:    `{"resource_provider_generation": 5, "inventories": {"IPV4_ADDRESS": {"total": 253, "reserved": 253}}}`,
			strings: []string{"greater than or equal to total"}},
		{name: "put all reserved equals total at 1.26", method: "PUT", path: base, mv: "1.26", status: 200,
			body: `{"resource_provider_generation": 5, "inventories": {"IPV4_ADDRESS": {"total": 253, "reserved": 253}}}`},
		{name: "put all reserved above total at 1.26", method: "PUT", path: base, mv: "1.26", status: 400,
			body:    `{"resource_provider_generation": 6, "inventories": {"IPV4_ADDRESS": {"total": 253, "reserved": 512}}}`,
			strings: []string{"The reserved value is greater than total."}},
		{name: "delete all below 1.5", method: "DELETE", path: base, mv: "1.4", status: 405},
		{name: "delete all", method: "DELETE", path: base, mv: "1.5", status: 204},
		{name: "delete all when empty still bumps", method: "DELETE", path: base, mv: "1.5", status: 204},
		{name: "generation after deletes", method: "GET", path: base, status: 200,
			json: map[string]string{"resource_provider_generation": "8", "inventories": "{}"}},
		{name: "put empty set", method: "PUT", path: base, mv: "1.4", status: 200,
			body: `{"resource_provider_generation": 8, "inventories": {}}`,
			json: map[string]string{"resource_provider_generation": "9", "inventories": "{}"}},
	})
}

func TestInventoryInUse(t *testing.T) {
	srv, pool := newStoreTestServer(t)
	rp := sqlProvider(t, pool, "busy")
	base := "/resource_providers/" + rp + "/inventories"
	runSteps(t, srv, []step{{name: "set", method: "PUT", path: base, status: 200,
		body: `{"resource_provider_generation": 0, "inventories": {"DISK_GB": {"total": 2048}, "VCPU": {"total": 8}, "MEMORY_MB": {"total": 512}}}`}})
	sqlAllocate(t, pool, rp, "5d8b6a1d-6b6f-4c6d-9bf5-2f1f0a2b8c01", "proj", "user", "", map[string]int{"VCPU": 7, "DISK_GB": 1020})
	runSteps(t, srv, []step{
		{name: "usages", method: "GET", path: "/resource_providers/" + rp + "/usages", status: 200,
			strings: []string{`"usages":{"VCPU":7,"MEMORY_MB":0,"DISK_GB":1020}`}},
		{name: "put without used classes", method: "PUT", path: base, mv: "1.23", status: 409,
			body:    `{"resource_provider_generation": 1, "inventories": {}}`,
			strings: []string{"placement.inventory.inuse", "Inventory for 'VCPU, DISK_GB' on resource provider '" + rp + "' in use"}},
		{name: "delete all", method: "DELETE", path: base, mv: "1.23", status: 409,
			strings: []string{"placement.inventory.inuse", "Inventory for 'VCPU, DISK_GB' on resource provider '" + rp + "' in use"}},
		{name: "delete one used", method: "DELETE", path: base + "/VCPU", mv: "1.23", status: 409,
			strings: []string{"placement.concurrent_update", "Unable to delete inventory of class VCPU"}},
		{name: "unused class can go", method: "DELETE", path: base + "/MEMORY_MB", status: 204},
		{name: "shrink below usage is allowed", method: "PUT", path: base, status: 200,
			body: `{"resource_provider_generation": 2, "inventories": {"DISK_GB": {"total": 1019}, "VCPU": {"total": 1}}}`},
		{name: "nothing changed by refused writes", method: "GET", path: base, status: 200,
			json: map[string]string{"resource_provider_generation": "3", "inventories.DISK_GB.total": "1019"}},
	})
}

// TestInventoryConcurrentPut races writers that all hold the same
// generation: the compare-and-swap must let exactly one through.
func TestInventoryConcurrentPut(t *testing.T) {
	srv, pool := newStoreTestServer(t)
	rp := sqlProvider(t, pool, "raced")
	base := "/resource_providers/" + rp + "/inventories"
	const writers = 12
	statuses := make([]int, writers)
	bodies := make([]string, writers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range writers {
		wg.Go(func() {
			<-start
			body := fmt.Sprintf(`{"resource_provider_generation": 0, "inventories": {"VCPU": {"total": %d}, "DISK_GB": {"total": 100}}}`, i+1)
			req, err := http.NewRequest("PUT", srv.URL+base, strings.NewReader(body))
			if err != nil {
				t.Error(err)
				return
			}
			req.Header.Set("X-Auth-Token", "admin")
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("OpenStack-API-Version", "placement 1.23")
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			statuses[i], bodies[i] = resp.StatusCode, string(b)
		})
	}
	close(start)
	wg.Wait()
	winners := -1
	for i, st := range statuses {
		switch st {
		case 200:
			if winners >= 0 {
				t.Fatalf("writers %d and %d both won", winners, i)
			}
			winners = i
		case 409:
			if !strings.Contains(bodies[i], "placement.concurrent_update") {
				t.Errorf("writer %d: 409 without concurrent_update: %s", i, bodies[i])
			}
		default:
			t.Errorf("writer %d: status %d: %s", i, st, bodies[i])
		}
	}
	if winners < 0 {
		t.Fatal("no writer won")
	}
	// The stored inventory is the winner's, at generation 1.
	runSteps(t, srv, []step{{name: "after race", method: "GET", path: base, status: 200,
		json: map[string]string{"resource_provider_generation": "1", "inventories.VCPU.total": fmt.Sprint(winners + 1)}}})
}

func TestPyFloat(t *testing.T) {
	cases := []struct {
		in   float64
		want string
	}{
		{1, "1.0"}, {1.5, "1.5"}, {16, "16.0"}, {0, "0.0"}, {0.1, "0.1"}, {1e16, "1e+16"},
		{3.40282e+38, "3.40282e+38"}, {1e-05, "1e-05"}, {123456789, "123456789.0"}, {-2, "-2.0"},
	}
	for _, tc := range cases {
		got, err := pyFloat(tc.in).MarshalJSON()
		if err != nil || string(got) != tc.want {
			t.Errorf("pyFloat(%v) = %s, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}
