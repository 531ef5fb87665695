package placement

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
)

// apiStep is one request of a scenario and what its response must show.
type apiStep struct {
	name       string
	method     string
	path       string
	mv         string
	body       string
	wantStatus int
	// wantIn are substrings of the body; wantNotIn must be absent.
	wantIn    []string
	wantNotIn []string
	// wantHeader: header name -> substring of its value ("" = absent).
	wantHeader map[string]string
}

// runAPISteps runs a scenario in order against one server: each step may
// depend on the ones before it.
func runAPISteps(t *testing.T, srv *httptest.Server, steps []apiStep) {
	t.Helper()
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			resp, body := do(t, srv, st.method, st.path, st.mv, st.body)
			if resp.StatusCode != st.wantStatus {
				t.Fatalf("%s %s: status %d, want %d: %s", st.method, st.path, resp.StatusCode, st.wantStatus, body)
			}
			for _, s := range st.wantIn {
				if !strings.Contains(body, s) {
					t.Errorf("body %s lacks %q", body, s)
				}
			}
			for _, s := range st.wantNotIn {
				if strings.Contains(body, s) {
					t.Errorf("body %s has %q", body, s)
				}
			}
			for h, want := range st.wantHeader {
				got := resp.Header.Get(h)
				if want == "" && got != "" {
					t.Errorf("header %s = %q, want none", h, got)
				}
				if want != "" && !strings.Contains(got, want) {
					t.Errorf("header %s = %q, want %q in it", h, got, want)
				}
			}
		})
	}
}

const (
	rpA = "aaaaaaaa-aaaa-4aaa-aaaa-aaaaaaaaaaaa"
	rpB = "bbbbbbbb-bbbb-4bbb-bbbb-bbbbbbbbbbbb"
	rpC = "cccccccc-cccc-4ccc-cccc-cccccccccccc"
	agg = "dddddddd-dddd-4ddd-dddd-dddddddddddd"
)

func TestResourceProviderLifecycle(t *testing.T) {
	srv := newTestServer(t)
	runAPISteps(t, srv, []apiStep{
		{name: "empty list", method: "GET", path: "/resource_providers", mv: "1.15", wantStatus: 200,
			wantIn: []string{`{"resource_providers":[]}`}, wantHeader: map[string]string{"Last-Modified": "GMT", "Cache-Control": "no-cache"}},
		{name: "create 1.19", method: "POST", path: "/resource_providers", mv: "1.19",
			body: `{"name": "a", "uuid": "` + strings.ToUpper(strings.ReplaceAll(rpA, "-", "")) + `"}`, wantStatus: 201,
			wantHeader: map[string]string{"Location": "/resource_providers/" + rpA, "Content-Type": ""}},
		{name: "create 1.20 returns body", method: "POST", path: "/resource_providers", mv: "1.20",
			body: `{"name": "b", "uuid": "` + rpB + `", "parent_provider_uuid": "` + rpA + `"}`, wantStatus: 200,
			wantIn: []string{`"parent_provider_uuid":"` + rpA, `"root_provider_uuid":"` + rpA, `"generation":0`}},
		{name: "duplicate name", method: "POST", path: "/resource_providers", mv: "latest",
			body: `{"name": "a"}`, wantStatus: 409,
			wantIn: []string{"Conflicting resource provider name: a already exists.", "placement.duplicate_name"}},
		{name: "duplicate uuid", method: "POST", path: "/resource_providers", mv: "latest",
			body: `{"name": "new", "uuid": "` + rpA + `"}`, wantStatus: 409,
			wantIn: []string{"Conflicting resource provider uuid: " + rpA + " already exists."}},
		{name: "parent is self", method: "POST", path: "/resource_providers", mv: "latest",
			body: `{"name": "c", "uuid": "` + rpC + `", "parent_provider_uuid": "` + rpC + `"}`, wantStatus: 400,
			wantIn: []string{"parent provider UUID cannot be same as UUID"}},
		{name: "parent missing", method: "POST", path: "/resource_providers", mv: "latest",
			body: `{"name": "c", "parent_provider_uuid": "` + rpC + `"}`, wantStatus: 400,
			wantIn: []string{"parent provider UUID does not exist."}},
		{name: "parent before 1.14", method: "POST", path: "/resource_providers", mv: "1.13",
			body: `{"name": "c", "parent_provider_uuid": "` + rpA + `"}`, wantStatus: 400,
			wantIn: []string{"JSON does not validate"}},
		{name: "empty name", method: "POST", path: "/resource_providers", mv: "latest",
			body: `{"name": ""}`, wantStatus: 400, wantIn: []string{"name is required"}},
		{name: "show 1.0 has 3 links and no tree", method: "GET", path: "/resource_providers/" + rpB, mv: "1.0", wantStatus: 200,
			wantIn: []string{`"rel":"usages"`}, wantNotIn: []string{"aggregates", "root_provider_uuid"}},
		{name: "show latest", method: "GET", path: "/resource_providers/" + rpB, mv: "latest", wantStatus: 200,
			wantIn: []string{`"rel":"allocations"`, `"rel":"traits"`, `"root_provider_uuid":"` + rpA}},
		{name: "show malformed uuid", method: "GET", path: "/resource_providers/not-a-uuid", wantStatus: 404,
			wantIn: []string{"No resource provider with uuid not-a-uuid found"}},
		{name: "show unknown", method: "GET", path: "/resource_providers/" + rpC, wantStatus: 404},
		{name: "put without content type is 415 before 404", method: "PUT", path: "/resource_providers/" + rpC, wantStatus: 415,
			wantIn: []string{"The media type None is not supported, use application/json"}},
		{name: "list in tree", method: "GET", path: "/resource_providers?in_tree=" + rpB, mv: "1.14", wantStatus: 200,
			wantIn: []string{rpA, rpB}},
		{name: "list by name", method: "GET", path: "/resource_providers?name=b", wantStatus: 200,
			wantIn: []string{rpB}, wantNotIn: []string{`"name":"a"`}},
		{name: "list bad member_of", method: "GET", path: "/resource_providers?member_of=nope", mv: "1.3", wantStatus: 400,
			wantIn: []string{"Expected 'member_of' parameter to contain valid UUID(s)"}},
		{name: "list unknown class", method: "GET", path: "/resource_providers?resources=CUSTOM_NOPE:1", mv: "1.4", wantStatus: 400,
			wantIn: []string{"Invalid resource class in resources parameter: No such resource class CUSTOM_NOPE."}},
		{name: "list unknown trait", method: "GET", path: "/resource_providers?required=CUSTOM_NOPE", mv: "1.18", wantStatus: 400,
			wantIn: []string{`Invalid trait(s) in \"required\" parameter: No such trait(s): CUSTOM_NOPE.`}},
		{name: "list required before 1.18", method: "GET", path: "/resource_providers?required=HW_CPU_X86_AVX", mv: "1.17", wantStatus: 400,
			wantIn: []string{"Additional properties are not allowed"}},
		// Upstream answers with the updated_at it loaded before saving:
		// a child is never updated at creation, a root is (its root id).
		{name: "rename child", method: "PUT", path: "/resource_providers/" + rpB, mv: "1.15", body: `{"name": "b2"}`, wantStatus: 200,
			wantIn: []string{`"name":"b2"`, `"generation":0`}, wantHeader: map[string]string{"Last-Modified": "", "Cache-Control": "no-cache"}},
		{name: "rename child again", method: "PUT", path: "/resource_providers/" + rpB, mv: "1.15", body: `{"name": "b2"}`, wantStatus: 200,
			wantHeader: map[string]string{"Last-Modified": "GMT"}},
		{name: "rename root", method: "PUT", path: "/resource_providers/" + rpA, mv: "1.15", body: `{"name": "a"}`, wantStatus: 200,
			wantHeader: map[string]string{"Last-Modified": "GMT"}},
		{name: "uppercase path uuid names no provider", method: "GET", path: "/resource_providers/" + strings.ToUpper(rpA), wantStatus: 404},
		{name: "trailing newline in path is ignored", method: "GET", path: "/resource_providers/" + rpA + "%0A", wantStatus: 200},
		{name: "uuid filter matches stored text", method: "GET", path: "/resource_providers?uuid=" + strings.ToUpper(rpA), wantStatus: 200,
			wantIn: []string{`{"resource_providers":[]}`}},
		{name: "dashless parent names no provider", method: "POST", path: "/resource_providers", mv: "latest",
			body: `{"name": "c", "parent_provider_uuid": "` + strings.ReplaceAll(rpA, "-", "") + `"}`, wantStatus: 400,
			wantIn: []string{"parent provider UUID does not exist."}},
		{name: "duplicate name and uuid blames the name", method: "POST", path: "/resource_providers", mv: "latest",
			body: `{"name": "a", "uuid": "` + rpA + `"}`, wantStatus: 409,
			wantIn: []string{"Conflicting resource provider name: a already exists."}},
		{name: "rename to taken name", method: "PUT", path: "/resource_providers/" + rpB, mv: "latest", body: `{"name": "a"}`,
			wantStatus: 409, wantIn: []string{"Conflicting resource provider a already exists.", "placement.duplicate_name"}},
		{name: "un-parent before 1.37", method: "PUT", path: "/resource_providers/" + rpB, mv: "1.36",
			body: `{"name": "b2", "parent_provider_uuid": null}`, wantStatus: 400,
			wantIn: []string{"Unable to save resource provider " + rpB + ": Object action update failed because: un-parenting a provider is not currently allowed."}},
		{name: "loop", method: "PUT", path: "/resource_providers/" + rpA, mv: "latest",
			body: `{"name": "a", "parent_provider_uuid": "` + rpB + `"}`, wantStatus: 400,
			wantIn: []string{"creating loop in the provider tree is not allowed."}},
		{name: "delete parent", method: "DELETE", path: "/resource_providers/" + rpA, mv: "latest", wantStatus: 409,
			wantIn: []string{"Unable to delete parent resource provider " + rpA + ": It has child resource providers.",
				"placement.resource_provider.cannot_delete_parent"}},
		{name: "un-parent 1.37", method: "PUT", path: "/resource_providers/" + rpB, mv: "1.37",
			body: `{"name": "b2", "parent_provider_uuid": null}`, wantStatus: 200,
			wantIn: []string{`"parent_provider_uuid":null`, `"root_provider_uuid":"` + rpB}},
		{name: "delete former parent", method: "DELETE", path: "/resource_providers/" + rpA, wantStatus: 204},
		{name: "delete again", method: "DELETE", path: "/resource_providers/" + rpA, wantStatus: 404,
			wantIn: []string{"No resource provider with uuid " + rpA + " found for delete"}},
	})
}

func TestProviderRepresentationKeyOrder(t *testing.T) {
	srv := newTestServer(t)
	_, body := do(t, srv, "POST", "/resource_providers", "latest", `{"name": "x", "uuid": "`+rpA+`"}`)
	// Clients compare bodies textually now and then; keep upstream's order.
	want := `{"uuid":"` + rpA + `","name":"x","generation":0,"links":[`
	if !strings.HasPrefix(body, want) {
		t.Fatalf("body %s does not start with %s", body, want)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc["links"].([]any)) != 6 || doc["parent_provider_uuid"] != nil {
		t.Errorf("doc = %v", doc)
	}
}
