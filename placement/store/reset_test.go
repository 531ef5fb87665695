package store

import (
	"context"
	"testing"
)

// The test reset must leave no bridge row behind: a host or workload that
// outlived the providers it names would be scheduled on by the next test.
func TestResetClearsBridgeTables(t *testing.T) {
	db := testDB(t)
	ctx := context.Background()
	seed := []string{
		`INSERT INTO bridge_hosts (name, provider_uuid) VALUES ('h1', gen_random_uuid())`,
		`INSERT INTO bridge_host_cells (host_id, cell, memory_mb) SELECT id, 0, 1024 FROM bridge_hosts`,
		`INSERT INTO bridge_host_cpus (host_id, cpu, cell, core, dedicated) SELECT id, 0, 0, 0, true FROM bridge_hosts`,
		`INSERT INTO bridge_workloads (id, kind, project_id, user_id, state, cpu_policy)
		 VALUES (gen_random_uuid(), 'container', 'p', 'u', 'pending', 'shared')`,
		`INSERT INTO bridge_decisions (request_id, kind) VALUES ('req-1', 'container')`,
		`INSERT INTO bridge_outbox (topic, key, payload) VALUES ('t', 'k', '{}')`,
	}
	for _, q := range seed {
		if _, err := db.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	mustCreate(t, db, "7c4c4d3c-1b52-4ae8-9c31-6b1a4b2d2a01", "rp1", nil)

	if err := Reset(ctx, db); err != nil {
		t.Fatal(err)
	}
	rows, err := db.Query(ctx, `SELECT tablename FROM pg_tables WHERE schemaname = current_schema()
		AND (tablename LIKE 'bridge\_%' OR tablename = 'resource_providers') ORDER BY tablename`)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, name)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(tables) < 8 {
		t.Fatalf("found only %v: the bridge migration is missing", tables)
	}
	for _, name := range tables {
		var n int
		if err := db.QueryRow(ctx, `SELECT count(*) FROM `+name).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("%s keeps %d rows after Reset", name, n)
		}
	}
	// outbox ids continue: agents that outlive the reset dedupe by them
	var id int64
	if err := db.QueryRow(ctx, `INSERT INTO bridge_outbox (topic, key, payload) VALUES ('t', 'k', '{}') RETURNING id`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	if id != 2 {
		t.Errorf("outbox id after Reset = %d, want 2 (one event before it)", id)
	}
	// and the standard data is back
	all, err := ListResourceClasses(ctx, db)
	if err != nil || len(all) != 21 {
		t.Errorf("standard classes after Reset: %d, %v", len(all), err)
	}
}
