package zunext

import (
	"net/http/httptest"
	"testing"
)

func testQuery(t *testing.T, raw string) query {
	t.Helper()
	q, err := parseQuery(httptest.NewRequest("GET", "/v1/containers"+raw, nil))
	if err != nil {
		t.Fatalf("parsing %q: %v", raw, err)
	}
	return q
}

// The paging parameters every list takes: Zun's defaults, the cap at
// max_limit, and Zun's messages for bad values.
func TestPageParams(t *testing.T) {
	for _, tc := range []struct {
		raw              string
		limit            int
		sortKey, sortDir string
		wantErr          string
	}{
		{raw: "", limit: maxLimit, sortKey: "hostname", sortDir: "asc"},
		{raw: "?limit=5&sort_key=mem_total&sort_dir=desc", limit: 5, sortKey: "mem_total", sortDir: "desc"},
		{raw: "?limit=5000", limit: maxLimit, sortKey: "hostname", sortDir: "asc"},
		{raw: "?limit=0", wantErr: "Limit must be positive integer"},
		{raw: "?limit=-1", wantErr: "Limit must be positive integer"},
		{raw: "?limit=x", wantErr: "Limit must be positive integer"},
		{raw: "?sort_dir=up", wantErr: "Invalid sort direction: up. Acceptable values are 'asc' or 'desc'"},
		{raw: "?sort_dir=", wantErr: "Invalid sort direction: . Acceptable values are 'asc' or 'desc'"},
	} {
		limit, key, dir, err := pageParams(testQuery(t, tc.raw), "hostname")
		if tc.wantErr != "" {
			if e, ok := err.(*apiError); !ok || e.Status != 400 || e.Message != tc.wantErr {
				t.Errorf("%q: error %v, want 400 %q", tc.raw, err, tc.wantErr)
			}
			continue
		}
		if err != nil || limit != tc.limit || key != tc.sortKey || dir != tc.sortDir {
			t.Errorf("%q: %d %q %q %v, want %d %q %q", tc.raw, limit, key, dir, err, tc.limit, tc.sortKey, tc.sortDir)
		}
	}
}

// Two flags checked together keep their defaults when absent, and a bad
// value of either names both.
func TestFlagPair(t *testing.T) {
	for _, tc := range []struct {
		raw     string
		a, b    bool
		wantErr bool
	}{
		{raw: "", a: true, b: false},
		{raw: "?run=false&interactive=yes", a: false, b: true},
		{raw: "?interactive=1", a: true, b: true},
		{raw: "?run=maybe", wantErr: true},
		{raw: "?interactive=2", wantErr: true},
	} {
		a, b, err := flagPair(testQuery(t, tc.raw), "run", "interactive", true, false)
		if tc.wantErr {
			want := "Valid run or interactive values are: " + boolChoices
			if e, ok := err.(*apiError); !ok || e.Status != 400 || e.Message != want {
				t.Errorf("%q: error %v, want 400 %q", tc.raw, err, want)
			}
			continue
		}
		if err != nil || a != tc.a || b != tc.b {
			t.Errorf("%q: %v %v %v, want %v %v", tc.raw, a, b, err, tc.a, tc.b)
		}
	}
}
