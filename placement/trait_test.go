package placement

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

func TestTraits(t *testing.T) {
	srv := newTestServer(t)
	invalid := "The trait is invalid."
	runAPISteps(t, srv, []apiStep{
		{name: "not custom", method: "PUT", path: "/traits/HW_NEW", mv: "1.6", wantStatus: 400, wantIn: []string{invalid}},
		{name: "bad chars", method: "PUT", path: "/traits/CUSTOM_a", mv: "1.6", wantStatus: 400, wantIn: []string{invalid}},
		{name: "too long", method: "PUT", path: "/traits/CUSTOM_" + strings.Repeat("X", 249), mv: "1.6", wantStatus: 400, wantIn: []string{invalid}},
		{name: "before 1.6", method: "PUT", path: "/traits/CUSTOM_A", mv: "1.5", wantStatus: 404},
		{name: "create", method: "PUT", path: "/traits/CUSTOM_A", mv: "1.6", wantStatus: 201,
			wantHeader: map[string]string{"Location": "/traits/CUSTOM_A", "Last-Modified": ""}},
		{name: "create again", method: "PUT", path: "/traits/CUSTOM_A", mv: "1.15", wantStatus: 204,
			wantHeader: map[string]string{"Location": "/traits/CUSTOM_A", "Last-Modified": "GMT"}},
		{name: "trailing newline in path is ignored", method: "PUT", path: "/traits/CUSTOM_A%0A", mv: "1.6", wantStatus: 204,
			wantHeader: map[string]string{"Location": "/traits/CUSTOM_A"}},
		{name: "longest", method: "PUT", path: "/traits/CUSTOM_" + strings.Repeat("X", 248), mv: "1.6", wantStatus: 201},
		{name: "show", method: "GET", path: "/traits/CUSTOM_A", mv: "1.6", wantStatus: 204},
		{name: "show unknown", method: "GET", path: "/traits/CUSTOM_NOPE", mv: "1.6", wantStatus: 404,
			wantIn: []string{"No such trait(s): CUSTOM_NOPE."}},
		{name: "list in", method: "GET", path: "/traits?name=in:CUSTOM_A,HW_CPU_X86_AVX", mv: "1.6", wantStatus: 200,
			wantIn: []string{`{"traits":["HW_CPU_X86_AVX","CUSTOM_A"]}`}},
		{name: "list prefix", method: "GET", path: "/traits?name=startswith:CUSTOM_", mv: "1.6", wantStatus: 200,
			wantIn: []string{"CUSTOM_A", "CUSTOM_XXX"}, wantNotIn: []string{"HW_"}},
		{name: "list bad name", method: "GET", path: "/traits?name=CUSTOM_A", mv: "1.6", wantStatus: 400,
			wantIn: []string{"Badly formatted name parameter"}},
		{name: "list bad associated", method: "GET", path: "/traits?associated=maybe", mv: "1.6", wantStatus: 400,
			wantIn: []string{`only accepts \"true\" or \"false\"`}},
		{name: "list unknown param", method: "GET", path: "/traits?foo=bar", mv: "1.6", wantStatus: 400,
			wantIn: []string{"Invalid query string parameters: Additional properties are not allowed"}},
		{name: "provider", method: "POST", path: "/resource_providers", mv: "1.6", body: `{"name": "a", "uuid": "` + rpA + `"}`, wantStatus: 201},
		{name: "provider traits empty", method: "GET", path: "/resource_providers/" + rpA + "/traits", mv: "1.6", wantStatus: 200,
			wantIn: []string{`{"traits":[],"resource_provider_generation":0}`}},
		{name: "set unknown traits", method: "PUT", path: "/resource_providers/" + rpA + "/traits", mv: "1.6",
			body: `{"traits": ["CUSTOM_Z", "CUSTOM_A", "CUSTOM_Y"], "resource_provider_generation": 0}`, wantStatus: 400,
			wantIn: []string{"No such trait CUSTOM_Y, CUSTOM_Z"}},
		{name: "set stale generation", method: "PUT", path: "/resource_providers/" + rpA + "/traits", mv: "1.23",
			body: `{"traits": ["CUSTOM_A"], "resource_provider_generation": 3}`, wantStatus: 409,
			wantIn: []string{"Resource provider's generation already changed.", "placement.concurrent_update"}},
		{name: "set no generation", method: "PUT", path: "/resource_providers/" + rpA + "/traits", mv: "1.6",
			body: `{"traits": ["CUSTOM_A"]}`, wantStatus: 400, wantIn: []string{"'resource_provider_generation' is a required property"}},
		{name: "set on unknown provider", method: "PUT", path: "/resource_providers/" + rpB + "/traits", mv: "1.6",
			body: `{"traits": ["CUSTOM_A"], "resource_provider_generation": 0}`, wantStatus: 404},
		{name: "set", method: "PUT", path: "/resource_providers/" + rpA + "/traits", mv: "1.6",
			body: `{"traits": ["HW_CPU_X86_AVX", "CUSTOM_A"], "resource_provider_generation": 0}`, wantStatus: 200,
			wantIn: []string{`{"traits":["HW_CPU_X86_AVX","CUSTOM_A"],"resource_provider_generation":1}`}},
		{name: "set same does not bump", method: "PUT", path: "/resource_providers/" + rpA + "/traits", mv: "1.6",
			body: `{"traits": ["CUSTOM_A", "HW_CPU_X86_AVX"], "resource_provider_generation": 1}`, wantStatus: 200,
			wantIn: []string{`"resource_provider_generation":1`}},
		{name: "associated", method: "GET", path: "/traits?associated=TRUE", mv: "1.6", wantStatus: 200,
			wantIn: []string{`{"traits":["HW_CPU_X86_AVX","CUSTOM_A"]}`}},
		{name: "filter providers by trait", method: "GET", path: "/resource_providers?required=CUSTOM_A", mv: "1.18", wantStatus: 200,
			wantIn: []string{rpA}},
		{name: "delete in use", method: "DELETE", path: "/traits/CUSTOM_A", mv: "1.6", wantStatus: 409,
			wantIn: []string{"The trait CUSTOM_A is in use by a resource provider."}},
		{name: "delete standard", method: "DELETE", path: "/traits/HW_CPU_X86_AVX", mv: "1.6", wantStatus: 400,
			wantIn: []string{"Cannot delete standard trait HW_CPU_X86_AVX."}},
		{name: "unknown provider traits", method: "GET", path: "/resource_providers/nope/traits", mv: "1.6", wantStatus: 404,
			wantIn: []string{"No resource provider with uuid nope found: No resource provider with uuid nope found"}},
		{name: "clear provider traits", method: "DELETE", path: "/resource_providers/" + rpA + "/traits", mv: "1.6", wantStatus: 204},
		{name: "cleared", method: "GET", path: "/resource_providers/" + rpA + "/traits", mv: "1.6", wantStatus: 200,
			wantIn: []string{`{"traits":[],"resource_provider_generation":2}`}},
		{name: "delete", method: "DELETE", path: "/traits/CUSTOM_A", mv: "1.6", wantStatus: 204},
		{name: "delete unknown", method: "DELETE", path: "/traits/CUSTOM_A", mv: "1.6", wantStatus: 404},
	})
}

// raceGenerationWrites sends n identical-generation PUTs at once and
// checks that exactly one wins while the others get 409
// placement.concurrent_update.
func raceGenerationWrites(t *testing.T, srv *httptest.Server, path, mv string, body func(i int) string) {
	t.Helper()
	const n = 12
	statuses := make([]int, n)
	bodies := make([]string, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			resp, b := do(t, srv, "PUT", path, mv, body(i))
			statuses[i], bodies[i] = resp.StatusCode, b
		}()
	}
	close(start)
	wg.Wait()
	won := 0
	for i, st := range statuses {
		switch st {
		case 200:
			won++
		case 409:
			if !strings.Contains(bodies[i], "placement.concurrent_update") {
				t.Errorf("409 without concurrent_update code: %s", bodies[i])
			}
		default:
			t.Errorf("status %d: %s", st, bodies[i])
		}
	}
	if won != 1 {
		t.Errorf("%d writers won, want exactly 1 (statuses %v)", won, statuses)
	}
}

func TestConcurrentProviderTraitWrites(t *testing.T) {
	srv := newTestServer(t)
	do(t, srv, "POST", "/resource_providers", "latest", `{"name": "a", "uuid": "`+rpA+`"}`)
	traits := []string{"HW_CPU_X86_AVX", "HW_CPU_X86_AVX2", "HW_CPU_X86_SSE", "HW_CPU_X86_SSE2"}
	raceGenerationWrites(t, srv, "/resource_providers/"+rpA+"/traits", "latest", func(i int) string {
		// Every writer asks for a different set, so every win changes it.
		return fmt.Sprintf(`{"traits": [%q, %q], "resource_provider_generation": 0}`, traits[i%4], fmt.Sprintf("HW_CPU_X86_SSE4%d", 1+i%2))
	})
	_, body := do(t, srv, "GET", "/resource_providers/"+rpA+"/traits", "latest", "")
	if !strings.Contains(body, `"resource_provider_generation":1`) {
		t.Errorf("after the race: %s", body)
	}
}

func TestJSONInt(t *testing.T) {
	cases := []struct {
		in     any
		want   int
		wantOK bool
	}{
		{json.Number("3"), 3, true},
		{json.Number("-2"), -2, true},
		{json.Number("1.0"), 1, true},
		{json.Number("1e2"), 100, true},
		{json.Number("1.5"), 0, false},
		{json.Number("100000000000000000000000"), -1, true},
		{json.Number("1e400"), -1, true},
		{"3", 0, false},
		{nil, 0, false},
	}
	for _, tc := range cases {
		got, ok := jsonInt(tc.in)
		if got != tc.want || ok != tc.wantOK {
			t.Errorf("jsonInt(%v) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.wantOK)
		}
	}
}
