package placement

import (
	"fmt"
	"strings"
	"testing"
)

func TestProviderAggregates(t *testing.T) {
	srv := newTestServer(t)
	path := "/resource_providers/" + rpA + "/aggregates"
	runAPISteps(t, srv, []apiStep{
		{name: "unknown provider", method: "GET", path: path, mv: "1.1", wantStatus: 404},
		{name: "unknown provider put", method: "PUT", path: path, mv: "latest", body: `[]`, wantStatus: 404},
		{name: "provider", method: "POST", path: "/resource_providers", mv: "latest", body: `{"name": "a", "uuid": "` + rpA + `"}`, wantStatus: 200},
		{name: "before 1.1", method: "GET", path: path, mv: "1.0", wantStatus: 404},
		{name: "empty", method: "GET", path: path, mv: "1.1", wantStatus: 200, wantIn: []string{`{"aggregates":[]}`}},
		{name: "list body at 1.19", method: "PUT", path: path, mv: "1.19", body: `["` + agg + `"]`, wantStatus: 400,
			wantIn: []string{"JSON does not validate"}},
		{name: "old style", method: "PUT", path: path, mv: "1.18", body: `["` + agg + `"]`, wantStatus: 200,
			wantIn: []string{`{"aggregates":["` + agg + `"]}`}},
		{name: "old style did not bump", method: "GET", path: path, mv: "1.19", wantStatus: 200,
			wantIn: []string{`"resource_provider_generation":0`, agg}},
		{name: "not uuids", method: "PUT", path: path, mv: "1.19", body: `{"aggregates": ["harry"], "resource_provider_generation": 0}`,
			wantStatus: 400, wantIn: []string{"is not a 'uuid'"}},
		{name: "duplicates", method: "PUT", path: path, mv: "1.19", body: `{"aggregates": ["` + agg + `", "` + agg + `"], "resource_provider_generation": 0}`,
			wantStatus: 400, wantIn: []string{"has non-unique elements"}},
		{name: "stale generation", method: "PUT", path: path, mv: "1.23", body: `{"aggregates": [], "resource_provider_generation": 5}`,
			wantStatus: 409, wantIn: []string{"placement.concurrent_update"}},
		{name: "new style bumps", method: "PUT", path: path, mv: "1.19", body: `{"aggregates": ["` + agg + `", "` + rpB + `"], "resource_provider_generation": 0}`,
			wantStatus: 200, wantIn: []string{`{"aggregates":["` + agg + `","` + rpB + `"],"resource_provider_generation":1}`},
			wantHeader: map[string]string{"Last-Modified": "GMT", "Cache-Control": "no-cache"}},
		{name: "member_of", method: "GET", path: "/resource_providers?member_of=" + rpB, mv: "1.3", wantStatus: 200, wantIn: []string{rpA}},
		{name: "forbidden member_of", method: "GET", path: "/resource_providers?member_of=!" + rpB, mv: "1.32", wantStatus: 200,
			wantIn: []string{`{"resource_providers":[]}`}},
		{name: "forbidden member_of before 1.32", method: "GET", path: "/resource_providers?member_of=!" + rpB, mv: "1.31", wantStatus: 400,
			wantIn: []string{"Forbidden member_of parameters are not supported in the specified microversion"}},
		{name: "clear", method: "PUT", path: path, mv: "1.19", body: `{"aggregates": [], "resource_provider_generation": 1}`,
			wantStatus: 200, wantIn: []string{`{"aggregates":[],"resource_provider_generation":2}`}},
		{name: "delete provider with aggregates", method: "DELETE", path: "/resource_providers/" + rpA, wantStatus: 204},
	})
}

func TestConcurrentProviderAggregateWrites(t *testing.T) {
	srv := newTestServer(t)
	do(t, srv, "POST", "/resource_providers", "latest", `{"name": "a", "uuid": "`+rpA+`"}`)
	raceGenerationWrites(t, srv, "/resource_providers/"+rpA+"/aggregates", "latest", func(i int) string {
		return fmt.Sprintf(`{"aggregates": ["%s", "00000000-0000-4000-8000-%012d"], "resource_provider_generation": 0}`, agg, i)
	})
	_, body := do(t, srv, "GET", "/resource_providers/"+rpA+"/aggregates", "latest", "")
	if want := `"resource_provider_generation":1`; !strings.Contains(body, want) {
		t.Errorf("after the race: %s", body)
	}
}
