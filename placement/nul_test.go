package placement

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/unisched/unisched/internal/pgtest"
	"github.com/unisched/unisched/placement/store"
)

// PostgreSQL stores no NUL character in text: a NUL (the JSON escape
// \u0000, or %00 in the URL) in any string a request would store is a
// 400 in Placement's error format, and nothing is written. Upstream on
// MySQL takes NUL in some of these fields (names, project and user ids);
// refusing it is our choice. Reads with a NUL in a filter answer as for
// any value nothing matches.
func TestNULStrings(t *testing.T) {
	pool := pgtest.Pool(t)
	ctx := context.Background()
	if err := store.EnsureStandard(ctx, pool); err != nil {
		t.Fatal(err)
	}
	srv := newTestServerOn(t, pool)
	const rp = "5d9f5f0e-8a55-4b8e-9a6b-3f1d2b8a7c10"
	const consumer = "6e9f5f0e-8a55-4b8e-9a6b-3f1d2b8a7c11"
	setup := []struct{ method, path, body string }{
		{"POST", "/resource_providers", `{"name": "rp1", "uuid": "` + rp + `"}`},
		{"PUT", "/resource_providers/" + rp + "/inventories", `{"resource_provider_generation": 0, "inventories": {"VCPU": {"total": 8}}}`},
	}
	for _, s := range setup {
		if resp, body := do(t, srv, s.method, s.path, "latest", s.body); resp.StatusCode >= 300 {
			t.Fatalf("%s %s: %d %s", s.method, s.path, resp.StatusCode, body)
		}
	}
	alloc := func(extra string) string {
		return `{"allocations": {"` + rp + `": {"resources": {"VCPU": 1}}}, "project_id": "p", "user_id": "u", "consumer_generation": null` + extra + `}`
	}
	before := counts(t, pool)
	for _, tc := range []struct {
		name, method, path, mv, body string
		status                       int
		detail                       string
	}{
		{"provider name", "POST", "/resource_providers", "latest", `{"name": "a\u0000b"}`, 400, "NUL"},
		{"provider rename", "PUT", "/resource_providers/" + rp, "latest", `{"name": "b\u0000"}`, 400, "NUL"},
		{"resource class body", "POST", "/resource_classes", "latest", `{"name": "CUSTOM_A\u0000"}`, 400, "does not match"},
		{"resource class path", "PUT", "/resource_classes/CUSTOM_A%00", "latest", "", 400, ""},
		{"trait path", "PUT", "/traits/CUSTOM_A%00", "latest", "", 400, ""},
		{"provider traits", "PUT", "/resource_providers/" + rp + "/traits", "latest", `{"resource_provider_generation": 1, "traits": ["CUSTOM_\u0000"]}`, 400, "['traits'][0] contains a NUL character"},
		{"inventory class", "PUT", "/resource_providers/" + rp + "/inventories", "latest", `{"resource_provider_generation": 1, "inventories": {"CUSTOM_\u0000": {"total": 1}}}`, 400, ""},
		{"aggregates", "PUT", "/resource_providers/" + rp + "/aggregates", "latest", `{"resource_provider_generation": 1, "aggregates": ["\u0000"]}`, 400, ""},
		{"allocation project", "PUT", "/allocations/" + consumer, "1.28", strings.Replace(alloc(""), `"p"`, `"p\u0000"`, 1), 400, "NUL"},
		{"allocation user", "PUT", "/allocations/" + consumer, "1.28", strings.Replace(alloc(""), `"u"`, `"\u0000"`, 1), 400, "NUL"},
		{"allocation consumer type", "PUT", "/allocations/" + consumer, "latest", alloc(`, "consumer_type": "A\u0000"`), 400, ""},
		{"allocation project 1.8", "PUT", "/allocations/" + consumer, "1.8", `{"allocations": [{"resource_provider": {"uuid": "` + rp + `"}, "resources": {"VCPU": 1}}], "project_id": "\u0000", "user_id": "u"}`, 400, "NUL"},
		{"post allocations project", "POST", "/allocations", "1.28", `{"` + consumer + `": ` + strings.Replace(alloc(""), `"p"`, `"p\u0000"`, 1) + `}`, 400, "NUL"},
		{"post allocations mappings key", "POST", "/allocations", "latest", `{"` + consumer + `": ` + alloc(`, "mappings": {"_a\u0000": ["`+rp+`"]}`) + `}`, 400, ""},
		{"reshaper project", "POST", "/reshaper", "1.30", `{"inventories": {"` + rp + `": {"resource_provider_generation": 1, "inventories": {"VCPU": {"total": 8}}}}, "allocations": {"` + consumer + `": ` + strings.Replace(alloc(""), `"u"`, `"u\u0000"`, 1) + `}}`, 400, "NUL"},
		// reads
		{"list by name", "GET", "/resource_providers?name=a%00", "latest", "", 400, `\"name\" contains a NUL`},
		{"usages by project", "GET", "/usages?project_id=p%00", "latest", "", 400, "NUL"},
		{"usages by user", "GET", "/usages?project_id=p&user_id=%00", "latest", "", 400, "NUL"},
		{"usages by consumer type", "GET", "/usages?project_id=p&consumer_type=A%00", "latest", "", 400, ""},
		{"traits by name", "GET", "/traits?name=startswith:%00", "latest", "", 400, "NUL"},
		{"traits in", "GET", "/traits?name=in:A,%00", "latest", "", 400, "NUL"},
		{"resource class", "GET", "/resource_classes/CUSTOM_%00", "latest", "", 404, "NUL"},
		{"delete resource class", "DELETE", "/resource_classes/CUSTOM_%00", "latest", "", 404, "NUL"},
		{"inventory class path", "PUT", "/resource_providers/" + rp + "/inventories/CUSTOM_%00", "latest", `{"resource_provider_generation": 1, "total": 1}`, 400, ""},
		{"inventory class read", "GET", "/resource_providers/" + rp + "/inventories/CUSTOM_%00", "latest", "", 404, ""},
		{"trait", "GET", "/traits/CUSTOM_%00", "latest", "", 404, ""},
		{"candidates required", "GET", "/allocation_candidates?resources=VCPU:1&required=CUSTOM_%00", "latest", "", 400, ""},
		{"candidates resources", "GET", "/allocation_candidates?resources=CUSTOM_%00:1", "latest", "", 400, ""},
		{"providers resources", "GET", "/resource_providers?resources=CUSTOM_%00:1", "latest", "", 400, ""},
		{"providers required", "GET", "/resource_providers?required=CUSTOM_%00", "latest", "", 400, ""},
		{"provider path", "GET", "/resource_providers/%00", "latest", "", 404, ""},
		{"allocations path", "GET", "/allocations/%00", "latest", "", 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := do(t, srv, tc.method, tc.path, tc.mv, tc.body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if tc.status >= 400 && (!strings.Contains(body, `{"errors": [{`) && !strings.Contains(body, `{"errors":[{`) || !strings.Contains(body, tc.detail)) {
				t.Fatalf("body %s: not Placement's error body mentioning %q", body, tc.detail)
			}
		})
	}
	if after := counts(t, pool); after != before {
		t.Fatalf("refused requests wrote: providers, allocations, consumers, projects, users, traits, classes, aggregates %v, were %v", after, before)
	}
}

func counts(t *testing.T, pool *pgxpool.Pool) [8]int64 {
	t.Helper()
	var out [8]int64
	for i, table := range []string{"resource_providers", "allocations", "consumers", "projects", "users", "traits", "resource_classes", "placement_aggregates"} {
		if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM `+table).Scan(&out[i]); err != nil {
			t.Fatalf("counting %s: %v", table, err)
		}
	}
	return out
}
