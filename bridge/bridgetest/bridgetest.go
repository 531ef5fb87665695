// Package bridgetest gives the tests of the bridge and of the APIs over it
// (bridge/api, zunext) the real coordinator on a real database, built the
// way serve builds it, so that each suite does not wire its own copy and
// drift from serve.
package bridgetest

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/unisched/unisched/bridge"
	"github.com/unisched/unisched/bridge/agentproto"
	"github.com/unisched/unisched/bridge/scheduler"
	"github.com/unisched/unisched/bridge/scheduler/builtin"
	"github.com/unisched/unisched/internal/pgtest"
	"github.com/unisched/unisched/placement/store"
)

// Engine is the scheduler of the default configuration.
func Engine(t testing.TB) *scheduler.Engine {
	t.Helper()
	e, err := builtin.Engine(scheduler.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// Coordinator is a coordinator with the default scheduler on a fresh
// migrated database (dropped when t ends) holding Placement's standard
// resource classes and traits; the pool is returned for the test's own
// checks.
func Coordinator(t testing.TB) (*bridge.Coordinator, *pgxpool.Pool) {
	t.Helper()
	pool := pgtest.Pool(t)
	if err := store.EnsureStandard(context.Background(), pool); err != nil {
		t.Fatal(err)
	}
	return bridge.New(pool, Engine(t), bridge.Options{}), pool
}

// TwoCells is a host of two NUMA cells of four CPUs and 4 GB each: CPUs
// 0-3 in cell 0 and 4-7 in cell 1, of which 2,3,6,7 dedicated and 0,1,4,5
// shared (PCPU 4, VCPU 4 x 4.0), 100 GB of disk, and an agent URL nothing
// listens on.
func TwoCells(name string) agentproto.Registration {
	return agentproto.Registration{
		Host: name, AgentURL: "http://127.0.0.1:1",
		Cells: []agentproto.Cell{
			{ID: 0, CPUs: "0-3", MemoryMB: 4096},
			{ID: 1, CPUs: "4-7", MemoryMB: 4096},
		},
		DedicatedCPUs: "2,3,6,7", SharedCPUs: "0,1,4,5", DiskGB: 100,
	}
}

// Register registers a host with the coordinator, failing t if it is
// refused.
func Register(t testing.TB, c *bridge.Coordinator, reg agentproto.Registration) agentproto.RegistrationResult {
	t.Helper()
	res, err := c.RegisterHost(context.Background(), reg)
	if err != nil {
		t.Fatalf("registering %s: %v", reg.Host, err)
	}
	return res
}
