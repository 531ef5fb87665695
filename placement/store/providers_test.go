package store

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/unisched/unisched/internal/pg"
	"github.com/unisched/unisched/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// testDB is a fresh migrated database with the standard classes and traits.
func testDB(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool := pgtest.Pool(t)
	if err := EnsureStandard(context.Background(), pool); err != nil {
		t.Fatal(err)
	}
	return pool
}

// uuids used as provider and aggregate ids in the tests.
const (
	u1 = "11111111-1111-1111-1111-111111111111"
	u2 = "22222222-2222-2222-2222-222222222222"
	u3 = "33333333-3333-3333-3333-333333333333"
	u4 = "44444444-4444-4444-4444-444444444444"
	a1 = "aaaaaaaa-0000-0000-0000-000000000001"
	a2 = "aaaaaaaa-0000-0000-0000-000000000002"
)

func strp(s string) *string { return &s }

// mustCreate creates a provider in its own transaction.
func mustCreate(t *testing.T, db *pgxpool.Pool, uuid, name string, parent *string) *Provider {
	t.Helper()
	var p *Provider
	err := pg.WithTx(context.Background(), db, pgx.TxOptions{}, func(tx pgx.Tx) error {
		var err error
		p, err = CreateProvider(context.Background(), tx, uuid, name, parent)
		return err
	})
	if err != nil {
		t.Fatalf("creating %s: %v", name, err)
	}
	return p
}

func update(db *pgxpool.Pool, uuid string, u ProviderUpdate) (*Provider, error) {
	var p *Provider
	err := pg.WithTx(context.Background(), db, pgx.TxOptions{}, func(tx pgx.Tx) error {
		var err error
		_, p, err = UpdateProvider(context.Background(), tx, uuid, u)
		return err
	})
	return p, err
}

func TestCreateProvider(t *testing.T) {
	db := testDB(t)
	ctx := context.Background()
	root := mustCreate(t, db, u1, "root", nil)
	if root.RootUUID != u1 || root.ParentUUID != nil || root.Generation != 0 {
		t.Fatalf("root = %+v", root)
	}
	child := mustCreate(t, db, u2, "child", strp(u1))
	grandchild := mustCreate(t, db, u3, "grandchild", strp(u2))
	if child.RootUUID != u1 || *child.ParentUUID != u1 || grandchild.RootUUID != u1 || *grandchild.ParentUUID != u2 {
		t.Fatalf("child = %+v, grandchild = %+v", child, grandchild)
	}
	cases := []struct {
		name, uuid, pname string
		parent            *string
		wantColumn        string
		wantErr           error
	}{
		{"duplicate uuid", u1, "other", nil, "uuid", ErrExists},
		{"duplicate name", u4, "root", nil, "name", ErrExists},
		{"missing parent", u4, "orphan", strp("99999999-9999-9999-9999-999999999999"), "", ErrParentNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := pg.WithTx(ctx, db, pgx.TxOptions{}, func(tx pgx.Tx) error {
				_, err := CreateProvider(ctx, tx, tc.uuid, tc.pname, tc.parent)
				return err
			})
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			var dup *DuplicateProviderError
			if tc.wantColumn != "" && (!errors.As(err, &dup) || dup.Column != tc.wantColumn) {
				t.Fatalf("err = %v, want duplicate %s", err, tc.wantColumn)
			}
		})
	}
}

func TestUpdateProvider(t *testing.T) {
	cases := []struct {
		name    string
		target  string
		update  ProviderUpdate
		wantErr error
		// wantRoots: provider uuid -> root uuid after the update
		wantRoots map[string]string
	}{
		{"rename keeps tree", u2, ProviderUpdate{Name: "renamed"}, nil,
			map[string]string{u2: u1, u3: u1}},
		{"rename to taken name", u2, ProviderUpdate{Name: "root"}, ErrExists, nil},
		{"parent a root", u4, ProviderUpdate{Name: "other", SetParent: true, ParentUUID: strp(u3)}, nil,
			map[string]string{u4: u1}},
		{"same parent again", u2, ProviderUpdate{Name: "child", SetParent: true, ParentUUID: strp(u1)}, nil,
			map[string]string{u2: u1}},
		{"re-parent refused", u3, ProviderUpdate{Name: "grandchild", SetParent: true, ParentUUID: strp(u1)}, ErrReparent, nil},
		{"un-parent refused", u3, ProviderUpdate{Name: "grandchild", SetParent: true}, ErrUnparent, nil},
		{"missing parent", u4, ProviderUpdate{Name: "other", SetParent: true, ParentUUID: strp("99999999-9999-9999-9999-999999999999")},
			ErrParentNotFound, nil},
		{"loop to self", u1, ProviderUpdate{Name: "root", SetParent: true, ParentUUID: strp(u1)}, ErrProviderLoop, nil},
		{"loop to descendant", u1, ProviderUpdate{Name: "root", SetParent: true, ParentUUID: strp(u3)}, ErrProviderLoop, nil},
		{"un-parent moves subtree", u2, ProviderUpdate{Name: "child", SetParent: true, AllowReparent: true}, nil,
			map[string]string{u1: u1, u2: u2, u3: u2}},
		{"re-parent moves subtree", u2, ProviderUpdate{Name: "child", SetParent: true, ParentUUID: strp(u4), AllowReparent: true}, nil,
			map[string]string{u2: u4, u3: u4, u4: u4}},
		{"parent kept when not set", u3, ProviderUpdate{Name: "gc"}, nil, map[string]string{u3: u1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			db := testDB(t)
			ctx := context.Background()
			mustCreate(t, db, u1, "root", nil)
			mustCreate(t, db, u2, "child", strp(u1))
			mustCreate(t, db, u3, "grandchild", strp(u2))
			mustCreate(t, db, u4, "other", nil)
			p, err := update(db, tc.target, tc.update)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if p.Name != tc.update.Name || p.Generation != 0 {
				t.Errorf("updated = %+v", p)
			}
			for u, root := range tc.wantRoots {
				got, err := GetProvider(ctx, db, u)
				if err != nil {
					t.Fatal(err)
				}
				if got.RootUUID != root {
					t.Errorf("root of %s = %s, want %s", u, got.RootUUID, root)
				}
			}
		})
	}
}

// addAllocation gives provider p an allocation of VCPU, with the rows it
// needs.
func addAllocation(t *testing.T, db *pgxpool.Pool, p *Provider) {
	t.Helper()
	ctx := context.Background()
	for _, sql := range []string{
		`INSERT INTO projects (external_id) VALUES ('p') ON CONFLICT DO NOTHING`,
		`INSERT INTO users (external_id) VALUES ('u') ON CONFLICT DO NOTHING`,
		`INSERT INTO consumers (uuid, project_id, user_id) VALUES (gen_random_uuid(), (SELECT id FROM projects), (SELECT id FROM users))`,
		`INSERT INTO inventories (resource_provider_id, resource_class_id, total, reserved, min_unit, max_unit, step_size, allocation_ratio)
		 VALUES ($1, 0, 8, 0, 1, 8, 1, 1.0) ON CONFLICT DO NOTHING`,
		`INSERT INTO allocations (resource_provider_id, consumer_id, resource_class_id, used)
		 VALUES ($1, (SELECT max(id) FROM consumers), 0, 2)`,
	} {
		var args []any
		if strings.Contains(sql, "$1") {
			args = []any{p.ID}
		}
		if _, err := db.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
}

func TestDeleteProvider(t *testing.T) {
	db := testDB(t)
	ctx := context.Background()
	root := mustCreate(t, db, u1, "root", nil)
	child := mustCreate(t, db, u2, "child", strp(u1))
	used := mustCreate(t, db, u3, "used", nil)
	addAllocation(t, db, used)
	plain := mustCreate(t, db, u4, "plain", nil)
	if err := SetProviderAggregates(ctx, db, plain, []string{a1}, false); err != nil {
		t.Fatal(err)
	}
	if err := SetProviderTraits(ctx, db, plain, []int64{1}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		id      int64
		wantErr error
	}{
		{"parent", root.ID, ErrProviderHasChildren},
		{"with allocations", used.ID, ErrProviderInUse},
		{"child", child.ID, nil},
		{"parent once childless", root.ID, nil},
		{"with links", plain.ID, nil},
		{"gone", plain.ID, ErrNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := DeleteProvider(ctx, db, tc.id); !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
		})
	}
	var links int
	if err := db.QueryRow(ctx, `SELECT (SELECT count(*) FROM resource_provider_traits) +
		(SELECT count(*) FROM resource_provider_aggregates)`).Scan(&links); err != nil {
		t.Fatal(err)
	}
	if links != 0 {
		t.Errorf("%d trait/aggregate links left after delete", links)
	}
}

func TestListProviders(t *testing.T) {
	db := testDB(t)
	ctx := context.Background()
	root := mustCreate(t, db, u1, "root", nil)
	child := mustCreate(t, db, u2, "child", strp(u1))
	other := mustCreate(t, db, u3, "other", nil)
	mustCreate(t, db, u4, "bare", nil)
	addAllocation(t, db, other) // VCPU total 8, used 2, max_unit 8
	if err := SetProviderAggregates(ctx, db, root, []string{a1}, false); err != nil {
		t.Fatal(err)
	}
	if err := SetProviderAggregates(ctx, db, child, []string{a1, a2}, false); err != nil {
		t.Fatal(err)
	}
	traits, err := ListTraits(ctx, db, TraitFilter{NameIn: []string{"HW_CPU_X86_AVX", "HW_CPU_X86_SSE"}})
	if err != nil || len(traits) != 2 {
		t.Fatalf("traits %v: %v", traits, err)
	}
	avx, sse := traits[0].ID, traits[1].ID
	if err := SetProviderTraits(ctx, db, child, []int64{avx, sse}); err != nil {
		t.Fatal(err)
	}
	if err := SetProviderTraits(ctx, db, other, []int64{sse}); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name    string
		filter  ProviderFilter
		want    []string
		wantErr string
	}{
		{"all", ProviderFilter{}, []string{"root", "child", "other", "bare"}, ""},
		{"name", ProviderFilter{Name: strp("child")}, []string{"child"}, ""},
		{"uuid", ProviderFilter{UUID: strp(u3)}, []string{"other"}, ""},
		{"in tree via child", ProviderFilter{InTree: strp(u2)}, []string{"root", "child"}, ""},
		{"in unknown tree", ProviderFilter{InTree: strp("99999999-9999-9999-9999-999999999999")}, nil, ""},
		{"member of", ProviderFilter{MemberOf: [][]string{{a1}}}, []string{"root", "child"}, ""},
		{"member of both", ProviderFilter{MemberOf: [][]string{{a1}, {a2}}}, []string{"child"}, ""},
		{"member of any", ProviderFilter{MemberOf: [][]string{{a2, "99999999-9999-9999-9999-999999999999"}}}, []string{"child"}, ""},
		{"forbidden aggregate", ProviderFilter{ForbiddenAggs: []string{a2}}, []string{"root", "other", "bare"}, ""},
		{"required traits", ProviderFilter{RequiredTraits: [][]string{{"HW_CPU_X86_SSE"}, {"HW_CPU_X86_AVX"}}}, []string{"child"}, ""},
		{"required any trait", ProviderFilter{RequiredTraits: [][]string{{"HW_CPU_X86_AVX", "HW_CPU_X86_SSE"}}}, []string{"child", "other"}, ""},
		{"forbidden trait", ProviderFilter{ForbiddenTraits: []string{"HW_CPU_X86_AVX"}}, []string{"root", "other", "bare"}, ""},
		{"unknown required trait", ProviderFilter{RequiredTraits: [][]string{{"HW_CPU_X86_SSE"}, {"CUSTOM_NOPE"}}}, nil, "No such trait(s): CUSTOM_NOPE."},
		{"unknown forbidden trait", ProviderFilter{ForbiddenTraits: []string{"CUSTOM_NOPE"}}, nil, "No such trait(s): CUSTOM_NOPE."},
		{"unmatched trait hides unknown class", ProviderFilter{RequiredTraits: [][]string{{"HW_CPU_X86_MMX"}},
			Resources: []ResourceAmount{{"CUSTOM_NOPE", 1}}}, nil, ""},
		{"resources fit", ProviderFilter{Resources: []ResourceAmount{{"VCPU", 6}}}, []string{"other"}, ""},
		{"resources exceed capacity", ProviderFilter{Resources: []ResourceAmount{{"VCPU", 7}}}, nil, ""},
		{"resources beyond any integer", ProviderFilter{Resources: []ResourceAmount{{"VCPU", math.MaxInt64}}}, nil, ""},
		{"resources with unknown class", ProviderFilter{Resources: []ResourceAmount{{"CUSTOM_NOPE", 1}}}, nil, "No such resource class CUSTOM_NOPE."},
		{"resources of a class not inventoried", ProviderFilter{Resources: []ResourceAmount{{"VCPU", 1}, {"DISK_GB", 1}}}, nil, ""},
		{"everything", ProviderFilter{RequiredTraits: [][]string{{"HW_CPU_X86_SSE"}}, ForbiddenAggs: []string{a2},
			Resources: []ResourceAmount{{"VCPU", 2}}}, []string{"other"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ListProviders(ctx, db, tc.filter)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, p := range got {
				names = append(names, p.Name)
			}
			if !equalStrings(names, tc.want) {
				t.Errorf("got %v, want %v", names, tc.want)
			}
		})
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestIsStoredUUID(t *testing.T) {
	cases := []struct {
		in   string
		want bool
	}{
		{u1, true},
		{"aaaaaaaa-0000-0000-0000-00000000000f", true},
		{"AAAAAAAA-0000-0000-0000-000000000001", false},
		{"aaaaaaaa000000000000000000000001", false},
		{"{aaaaaaaa-0000-0000-0000-000000000001}", false},
		{"aaaaaaaa-0000-0000-0000-00000000000g", false},
		{"aaaaaaaa-0000-0000-0000-0000000000011", false},
		{"aaaaaaaa-00000-000-0000-000000000001", false},
		{"", false},
	}
	for _, tc := range cases {
		if got := IsStoredUUID(tc.in); got != tc.want {
			t.Errorf("IsStoredUUID(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
