package placement

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/unisched/unisched/internal/pgtest"
	"github.com/unisched/unisched/placement/store"
)

const (
	acCN1  = "c0000000-0000-4000-8000-000000000001"
	acNUMA = "c0000000-0000-4000-8000-000000000002"
	acSS   = "c0000000-0000-4000-8000-000000000003"
	acAgg  = "a0000000-0000-4000-8000-000000000001"
)

// seedCandidates writes a compute node (VCPU, MEMORY_MB, 2 VCPU used) with a
// NUMA child that has no inventory, and a sharing DISK_GB provider in the
// same aggregate, directly in SQL.
func seedCandidates(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	stmts := []string{
		`INSERT INTO resource_providers (id, uuid, name, root_provider_id) VALUES (1, '` + acCN1 + `', 'cn1', 1)`,
		`INSERT INTO resource_providers (id, uuid, name, root_provider_id, parent_provider_id) VALUES (2, '` + acNUMA + `', 'numa', 1, 1)`,
		`INSERT INTO resource_providers (id, uuid, name, root_provider_id) VALUES (3, '` + acSS + `', 'ss', 3)`,
		`INSERT INTO inventories (resource_provider_id, resource_class_id, total, reserved, min_unit, max_unit, step_size, allocation_ratio)
			VALUES (1, 0, 8, 0, 1, 8, 1, 2.0), (1, 1, 4096, 512, 1, 4096, 1, 1.5), (3, 2, 1000, 100, 1, 1000, 1, 1.0)`,
		`INSERT INTO traits (name) VALUES ('CUSTOM_GOLD')`,
		`INSERT INTO resource_provider_traits (resource_provider_id, trait_id)
			SELECT 3, id FROM traits WHERE name = 'MISC_SHARES_VIA_AGGREGATE'`,
		`INSERT INTO resource_provider_traits (resource_provider_id, trait_id)
			SELECT 1, id FROM traits WHERE name IN ('HW_CPU_X86_AVX2', 'CUSTOM_GOLD')`,
		`INSERT INTO placement_aggregates (id, uuid) VALUES (1, '` + acAgg + `')`,
		`INSERT INTO resource_provider_aggregates (resource_provider_id, aggregate_id) VALUES (1, 1), (3, 1)`,
		`INSERT INTO projects (id, external_id) VALUES (1, 'p')`,
		`INSERT INTO users (id, external_id) VALUES (1, 'u')`,
		`INSERT INTO consumers (id, uuid, project_id, user_id) VALUES (1, 'b0000000-0000-4000-8000-000000000001', 1, 1)`,
		`INSERT INTO allocations (resource_provider_id, consumer_id, resource_class_id, used) VALUES (1, 1, 0, 2)`,
	}
	for _, s := range stmts {
		if _, err := pool.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func TestListAllocationCandidates(t *testing.T) {
	pool := pgtest.Pool(t)
	if err := store.EnsureStandard(context.Background(), pool); err != nil {
		t.Fatal(err)
	}
	seedCandidates(t, pool)
	srv := newTestServerOn(t, pool)

	t.Run("latest", func(t *testing.T) {
		resp, body := do(t, srv, "GET", "/allocation_candidates?resources=VCPU:1,DISK_GB:10&required=CUSTOM_GOLD", "latest", "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		if resp.Header.Get("Cache-Control") != "no-cache" || resp.Header.Get("Last-Modified") == "" {
			t.Errorf("cache headers missing: %v", resp.Header)
		}
		var got struct {
			AllocationRequests []struct {
				Allocations map[string]struct {
					Resources map[string]int
				}
				Mappings map[string][]string
			} `json:"allocation_requests"`
			ProviderSummaries map[string]struct {
				Resources map[string]struct{ Capacity, Used int }
				Traits    []string
				Parent    *string `json:"parent_provider_uuid"`
				Root      string  `json:"root_provider_uuid"`
			} `json:"provider_summaries"`
		}
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatalf("%v: %s", err, body)
		}
		if len(got.AllocationRequests) != 1 {
			t.Fatalf("requests: %s", body)
		}
		ar := got.AllocationRequests[0]
		if ar.Allocations[acCN1].Resources["VCPU"] != 1 || ar.Allocations[acSS].Resources["DISK_GB"] != 10 {
			t.Errorf("allocations: %s", body)
		}
		if m := ar.Mappings[""]; len(m) != 2 {
			t.Errorf("mappings: %s", body)
		}
		if len(got.ProviderSummaries) != 3 {
			t.Errorf("want cn1, its child and ss summarized: %s", body)
		}
		cn := got.ProviderSummaries[acCN1]
		if cn.Resources["VCPU"].Capacity != 16 || cn.Resources["VCPU"].Used != 2 || cn.Resources["MEMORY_MB"].Capacity != 5376 {
			t.Errorf("cn1 summary: %+v", cn)
		}
		if strings.Join(cn.Traits, ",") != "HW_CPU_X86_AVX2,CUSTOM_GOLD" {
			t.Errorf("traits in id order: %v", cn.Traits)
		}
		if n := got.ProviderSummaries[acNUMA]; n.Parent == nil || *n.Parent != acCN1 || n.Root != acCN1 || len(n.Resources) != 0 {
			t.Errorf("numa summary: %+v", n)
		}
	})

	t.Run("1.10 list form", func(t *testing.T) {
		resp, body := do(t, srv, "GET", "/allocation_candidates?resources=VCPU:1,DISK_GB:10", "1.10", "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		if resp.Header.Get("Cache-Control") != "" {
			t.Errorf("no cache headers before 1.15")
		}
		want := `{"allocation_requests": [{"allocations": [{"resource_provider": {"uuid": "` + acCN1 + `"}, "resources": {"VCPU": 1}}, ` +
			`{"resource_provider": {"uuid": "` + acSS + `"}, "resources": {"DISK_GB": 10}}]}], ` +
			`"provider_summaries": {"` + acCN1 + `": {"resources": {"VCPU": {"capacity": 16, "used": 2}}}, ` +
			`"` + acSS + `": {"resources": {"DISK_GB": {"capacity": 900, "used": 0}}}}}`
		if body != want {
			t.Errorf("body\n got %s\nwant %s", body, want)
		}
	})

	errs := []struct {
		query, mv, want, code string
	}{
		{"resources=NOPE:1", "latest", "Invalid resource class in resources parameter: No such resource class NOPE.", "placement.undefined_code"},
		{"resources=VCPU:1&required=in:CUSTOM_GOLD,CUSTOM_SILVER", "1.39", "No such trait(s): CUSTOM_SILVER.", "placement.undefined_code"},
		{"resources1=VCPU:1&resources2=MEMORY_MB:512", "1.36", `The \"group_policy\" parameter is required`, "placement.undefined_code"},
		{"resources=VCPU:1&foo=bar", "1.20", "Additional properties are not allowed ('foo' was unexpected)  Failed validating", ""},
		{"member_of1=" + acAgg + "&group_policy=none", "1.36", "There must be at least one resources", "placement.query.missing_value"},
	}
	for _, e := range errs {
		resp, body := do(t, srv, "GET", "/allocation_candidates?"+e.query, e.mv, "")
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, e.want) {
			t.Errorf("%s: status %d body %s; want 400 with %q", e.query, resp.StatusCode, body, e.want)
		}
		if e.code != "" && !strings.Contains(body, `"code":"`+e.code+`"`) {
			t.Errorf("%s: want code %s in %s", e.query, e.code, body)
		}
	}

	// The cached snapshot must not hide a committed write.
	for _, used := range []int{2, 7} {
		if _, err := pool.Exec(context.Background(), `UPDATE allocations SET used = $1`, used); err != nil {
			t.Fatal(err)
		}
		_, body := do(t, srv, "GET", "/allocation_candidates?resources=VCPU:1", "1.10", "")
		if want := fmt.Sprintf(`"VCPU": {"capacity": 16, "used": %d}`, used); !strings.Contains(body, want) {
			t.Errorf("after write: want %s in %s", want, body)
		}
	}

	resp, _ := do(t, srv, "GET", "/allocation_candidates?resources=VCPU:1", "1.9", "")
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("before 1.10: status %d, want 404", resp.StatusCode)
	}
}

func newTestServerOn(t *testing.T, pool *pgxpool.Pool) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(New(Config{Pool: pool}))
	t.Cleanup(srv.Close)
	return srv
}
