// Package store holds every SQL statement of the Placement API. Functions
// take a pg.DBTX so the caller (the handlers' operations) decides the
// transaction; none of them begins one itself.
package store

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/unisched/unisched/internal/pg"
)

var (
	// ErrNotFound: the row asked for does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConcurrentUpdate: a generation compare-and-swap lost a race, or
	// the caller's generation is stale.
	ErrConcurrentUpdate = errors.New("concurrent update")
	// ErrExists: a unique name or uuid is taken.
	ErrExists = errors.New("already exists")
)

// The standard traits and resource classes of Placement 8.0.0 (os-traits
// 2.9.0, os-resource-classes 1.1.0). Resource class ids are fixed by the
// list: clients and the conformance suite rely on them.
var (
	//go:embed data/os-traits.txt
	standardTraitsText []byte
	//go:embed data/os-resource-classes.txt
	standardClassesText []byte
)

// StandardResourceClass is one os-resource-classes entry.
type StandardResourceClass struct {
	ID   int
	Name string
}

// StandardTraits returns the os-traits names.
func StandardTraits() []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(standardTraitsText))
	for sc.Scan() {
		if s := strings.TrimSpace(sc.Text()); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// StandardResourceClasses returns the os-resource-classes entries.
func StandardResourceClasses() []StandardResourceClass {
	var out []StandardResourceClass
	sc := bufio.NewScanner(bytes.NewReader(standardClassesText))
	for sc.Scan() {
		id, name, ok := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		if !ok {
			continue
		}
		n, err := strconv.Atoi(id)
		if err != nil {
			continue
		}
		out = append(out, StandardResourceClass{ID: n, Name: strings.TrimSpace(name)})
	}
	return out
}

const (
	insertStandardClass = `INSERT INTO resource_classes (id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING`
	insertStandardTrait = `INSERT INTO traits (name) VALUES ($1) ON CONFLICT (name) DO NOTHING`
)

// EnsureStandard inserts the standard resource classes and traits that are
// missing, leaving custom rows alone (upstream's ensure_sync).
func EnsureStandard(ctx context.Context, db pg.DBTX) error {
	b := &batch{}
	for _, rc := range StandardResourceClasses() {
		b.Queue(insertStandardClass, rc.ID, rc.Name)
	}
	for _, t := range StandardTraits() {
		b.Queue(insertStandardTrait, t)
	}
	if err := b.Run(ctx, db); err != nil {
		return fmt.Errorf("syncing standard resource classes and traits: %w", err)
	}
	return nil
}

const truncateAll = `TRUNCATE allocations, consumers, consumer_types, users, projects,
	resource_provider_aggregates, placement_aggregates, resource_provider_traits,
	inventories, resource_providers, traits, resource_classes RESTART IDENTITY CASCADE`

const resetCustomClassSeq = `ALTER SEQUENCE resource_classes_custom_id_seq RESTART WITH 10000`

// truncateBridge empties every bridge_* table (ledger, decisions, outbox,
// and whatever later migrations add under that prefix), found in the
// catalog so that a new bridge table is reset without touching this list.
// Identities continue: an outbox id is the key agents dedupe events by,
// and agents outlive a reset, so a reused id would be taken for a replay.
const truncateBridge = `DO $$
DECLARE t text;
BEGIN
	SELECT string_agg(format('%I.%I', schemaname, tablename), ', ' ORDER BY tablename) INTO t
	FROM pg_tables WHERE schemaname = current_schema() AND tablename LIKE 'bridge\_%';
	IF t IS NOT NULL THEN
		EXECUTE 'TRUNCATE ' || t || ' CASCADE';
	END IF;
END $$`

// Reset empties every Placement table and every bridge table (the ledger
// names Placement's providers, so one without the other would leave hosts
// and workloads pointing at nothing) and re-seeds the standard data. It
// exists for the test-only reset endpoint.
func Reset(ctx context.Context, db pg.DBTX) error {
	if _, err := db.Exec(ctx, truncateBridge); err != nil {
		return fmt.Errorf("truncating bridge tables: %w", err)
	}
	if _, err := db.Exec(ctx, truncateAll); err != nil {
		return fmt.Errorf("truncating placement tables: %w", err)
	}
	if _, err := db.Exec(ctx, resetCustomClassSeq); err != nil {
		return fmt.Errorf("resetting custom class ids: %w", err)
	}
	return EnsureStandard(ctx, db)
}
