package placement

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestResourceClasses(t *testing.T) {
	srv, pool := newStoreTestServer(t)
	long := "CUSTOM_" + strings.Repeat("S", 249)
	runSteps(t, srv, []step{
		{name: "hidden below 1.2", method: "GET", path: "/resource_classes", mv: "1.1", status: 404},
		{name: "21 standard classes", method: "GET", path: "/resource_classes", mv: "1.2", status: 200,
			strings: []string{`{"name":"VCPU","links":[{"rel":"self","href":"/resource_classes/VCPU"}]}`,
				`"NET_PACKET_RATE_IGR_KILOPACKET_PER_SEC"`}},
		{name: "list 1.15 is now", method: "GET", path: "/resource_classes", mv: "1.15", status: 200,
			headers: map[string]string{"Last-Modified": "*", "Cache-Control": "no-cache"}},
		{name: "list 1.14 has no cache headers", method: "GET", path: "/resource_classes", mv: "1.14", status: 200,
			headers: map[string]string{"Last-Modified": "", "Cache-Control": ""}},
		{name: "wrong content type", method: "POST", path: "/resource_classes", mv: "1.2", status: 415},
		{name: "not custom", method: "POST", path: "/resource_classes", mv: "1.2", status: 400,
			body: `{"name": "IRON_NFV"}`, strings: []string{"JSON does not validate", "Failed validating 'pattern'"}},
		{name: "too long", method: "POST", path: "/resource_classes", mv: "1.2", status: 400,
			body: `{"name": "` + long + `"}`, strings: []string{"Failed validating 'maxLength'"}},
		{name: "extra property", method: "POST", path: "/resource_classes", mv: "1.2", status: 400,
			body: `{"name": "CUSTOM_A", "x": 1}`, strings: []string{"Additional properties are not allowed"}},
		{name: "create", method: "POST", path: "/resource_classes", mv: "1.2", status: 201, body: `{"name": "CUSTOM_IRON"}`,
			headers: map[string]string{"Location": srv.URL + "/resource_classes/CUSTOM_IRON", "Content-Type": ""}},
		{name: "create again", method: "POST", path: "/resource_classes", mv: "1.2", status: 409, body: `{"name": "CUSTOM_IRON"}`,
			strings: []string{"Conflicting resource class already exists: CUSTOM_IRON"}},
		{name: "get custom 1.15", method: "GET", path: "/resource_classes/CUSTOM_IRON", mv: "1.15", status: 200,
			headers: map[string]string{"Last-Modified": "*"},
			json:    map[string]string{"name": `"CUSTOM_IRON"`}},
		{name: "get missing", method: "GET", path: "/resource_classes/CUSTOM_NOPE", mv: "1.2", status: 404,
			strings: []string{"No such resource class CUSTOM_NOPE"}},
		{name: "rename standard", method: "PUT", path: "/resource_classes/VCPU", mv: "1.6", status: 400,
			body: `{"name": "CUSTOM_X"}`, strings: []string{"Cannot update standard resource class VCPU"}},
		{name: "rename to standard name", method: "PUT", path: "/resource_classes/CUSTOM_IRON", mv: "1.6", status: 400,
			body: `{"name": "VCPU"}`, strings: []string{"JSON does not validate"}},
		{name: "second class", method: "POST", path: "/resource_classes", mv: "1.2", status: 201, body: `{"name": "CUSTOM_GOLD"}`},
		{name: "rename onto existing", method: "PUT", path: "/resource_classes/CUSTOM_GOLD", mv: "1.6", status: 409,
			body: `{"name": "CUSTOM_IRON"}`, strings: []string{"Resource class already exists: CUSTOM_IRON"}},
		{name: "rename missing", method: "PUT", path: "/resource_classes/CUSTOM_NOPE", mv: "1.6", status: 404,
			body: `{"name": "CUSTOM_NEW"}`},
		{name: "put at 1.15 only verifies", method: "PUT", path: "/resource_classes/CUSTOM_GOLD", mv: "1.15", status: 204,
			body: `{"name": "CUSTOM_OTHER"}`},
		{name: "rename 1.6", method: "PUT", path: "/resource_classes/CUSTOM_IRON", mv: "1.6", status: 200,
			body:    `{"name": "CUSTOM_STEEL"}`,
			headers: map[string]string{"Last-Modified": ""},
			json:    map[string]string{"name": `"CUSTOM_STEEL"`, "links": `[{"href":"/resource_classes/CUSTOM_STEEL","rel":"self"}]`}},
		{name: "bodiless put before 1.7", method: "PUT", path: "/resource_classes/CUSTOM_COW", mv: "1.6", status: 415},
		{name: "put creates at 1.7", method: "PUT", path: "/resource_classes/CUSTOM_COW", mv: "1.7", status: 201,
			headers: map[string]string{"Location": srv.URL + "/resource_classes/CUSTOM_COW", "Last-Modified": ""}},
		{name: "put verifies at 1.7", method: "PUT", path: "/resource_classes/CUSTOM_COW", mv: "1.7", status: 204,
			headers: map[string]string{"Location": srv.URL + "/resource_classes/CUSTOM_COW"}},
		{name: "put standard at 1.7", method: "PUT", path: "/resource_classes/VCPU", mv: "1.7", status: 400,
			strings: []string{"Failed validating 'pattern'"}},
		{name: "put too long at 1.7", method: "PUT", path: "/resource_classes/" + long, mv: "1.7", status: 400,
			strings: []string{"Failed validating 'maxLength'"}},
		{name: "put quote at 1.7", method: "PUT", path: `/resource_classes/CUSTOM_%22X`, mv: "1.7", status: 400,
			strings: []string{"Malformed JSON"}},
		{name: "delete standard", method: "DELETE", path: "/resource_classes/VCPU", mv: "1.2", status: 400,
			strings: []string{"Cannot delete standard resource class VCPU"}},
		{name: "delete", method: "DELETE", path: "/resource_classes/CUSTOM_STEEL", mv: "1.2", status: 204},
		{name: "delete again", method: "DELETE", path: "/resource_classes/CUSTOM_STEEL", mv: "1.2", status: 404},
	})

	// Custom ids come from the custom range.
	var minID int
	if err := pool.QueryRow(context.Background(), `SELECT min(id) FROM resource_classes WHERE name LIKE 'CUSTOM_%'`).Scan(&minID); err != nil {
		t.Fatal(err)
	}
	if minID < 10000 {
		t.Errorf("custom class id %d below 10000", minID)
	}
	var standard int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM resource_classes WHERE id < 10000`).Scan(&standard); err != nil {
		t.Fatal(err)
	}
	if standard != 21 {
		t.Errorf("%d standard classes, want 21", standard)
	}
}

func TestResourceClassInUse(t *testing.T) {
	srv, pool := newStoreTestServer(t)
	rp := sqlProvider(t, pool, "gold")
	runSteps(t, srv, []step{
		{name: "class", method: "PUT", path: "/resource_classes/CUSTOM_GOLD", mv: "1.7", status: 201},
		{name: "inventory", method: "PUT", path: "/resource_providers/" + rp + "/inventories", status: 200,
			body: `{"resource_provider_generation": 0, "inventories": {"CUSTOM_GOLD": {"total": 5}}}`},
		{name: "in use by inventory", method: "DELETE", path: "/resource_classes/CUSTOM_GOLD", mv: "1.2", status: 409,
			strings: []string{"Error in delete resource class", "Class is in use in inventory"}},
		{name: "drop inventory", method: "DELETE", path: "/resource_providers/" + rp + "/inventories", mv: "1.5", status: 204},
		{name: "now free", method: "DELETE", path: "/resource_classes/CUSTOM_GOLD", mv: "1.2", status: 204},
	})
}

// TestContentTypeBeforePolicy: upstream checks the media type of a write
// before policy, so a non-admin sending text/plain gets 415, not 403.
func TestContentTypeBeforePolicy(t *testing.T) {
	srv, pool := newStoreTestServer(t)
	rp := sqlProvider(t, pool, "ct")
	cases := []struct {
		method, path, mv string
	}{
		{"POST", "/resource_providers/" + rp + "/inventories", "1.0"},
		{"PUT", "/resource_providers/" + rp + "/inventories", "1.0"},
		{"PUT", "/resource_providers/" + rp + "/inventories/VCPU", "1.0"},
		{"POST", "/resource_classes", "1.2"},
		{"PUT", "/resource_classes/CUSTOM_X", "1.6"},
	}
	for _, tc := range cases {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader("data"))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("X-Auth-Token", "user")
			req.Header.Set("Content-Type", "text/plain")
			req.Header.Set("OpenStack-API-Version", "placement "+tc.mv)
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnsupportedMediaType {
				t.Errorf("status %d, want 415", resp.StatusCode)
			}
		})
	}
	// With the right media type the same caller is refused by policy.
	resp, _ := doAs(t, srv, "user", "POST", "/resource_classes", "1.2", `{"name": "CUSTOM_X"}`)
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("non-admin create: status %d, want 403", resp.StatusCode)
	}
}

// doAs is do with another token.
func doAs(t *testing.T, srv *httptest.Server, token, method, path, mv, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Auth-Token", token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("OpenStack-API-Version", "placement "+mv)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}
