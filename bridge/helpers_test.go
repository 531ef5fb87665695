package bridge_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"github.com/unisched/unisched/bridge"
	"github.com/unisched/unisched/bridge/agentproto"
	"github.com/unisched/unisched/bridge/outbox"
	"github.com/unisched/unisched/bridge/scheduler"
	"github.com/unisched/unisched/bridge/scheduler/filters"
	"github.com/unisched/unisched/bridge/scheduler/weighers"
	"github.com/unisched/unisched/internal/pgtest"
	"github.com/unisched/unisched/placement/store"
)

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.DropTemplate()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

type fixture struct {
	t    *testing.T
	ctx  context.Context
	pool *pgxpool.Pool
	c    *bridge.Coordinator
}

// setup gives a test a fresh database and a coordinator with the default
// scheduler configuration.
func setup(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	pool := pgtest.Pool(t)
	if err := store.EnsureStandard(ctx, pool); err != nil {
		t.Fatal(err)
	}
	reg := scheduler.NewRegistry()
	if err := filters.Register(reg); err != nil {
		t.Fatal(err)
	}
	if err := weighers.Register(reg); err != nil {
		t.Fatal(err)
	}
	engine, err := reg.Build(scheduler.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, ctx: ctx, pool: pool, c: bridge.New(pool, engine, bridge.Options{})}
}

// twoCells is a host of two NUMA cells of four CPUs and 4 GB each: CPUs
// 0,1 and 4,5 shared, 2,3 and 6,7 dedicated (PCPU 4, VCPU 4 x 4.0).
func twoCells(name string) agentproto.Registration {
	return agentproto.Registration{
		Host: name, AgentURL: "http://127.0.0.1:1",
		Cells: []agentproto.Cell{
			{ID: 0, CPUs: "0-3", MemoryMB: 4096},
			{ID: 1, CPUs: "4-7", MemoryMB: 4096},
		},
		DedicatedCPUs: "2,3,6,7", SharedCPUs: "0,1,4,5", DiskGB: 100,
	}
}

func (f *fixture) register(reg agentproto.Registration) agentproto.RegistrationResult {
	f.t.Helper()
	res, err := f.c.RegisterHost(f.ctx, reg)
	if err != nil {
		f.t.Fatalf("registering %s: %v", reg.Host, err)
	}
	return res
}

func container(image string) *agentproto.Container {
	return &agentproto.Container{Image: image, Running: true}
}

func dedicated(cpu float64, mem int64) bridge.CreateRequest {
	return bridge.CreateRequest{Kind: scheduler.KindContainer, Name: "d", ProjectID: "p1", UserID: "u1",
		CPUPolicy: scheduler.CPUDedicated, CPU: cpu, MemoryMB: mem, Container: container("busybox")}
}

func shared(cpu float64, mem int64) bridge.CreateRequest {
	return bridge.CreateRequest{Kind: scheduler.KindContainer, Name: "s", ProjectID: "p1", UserID: "u1",
		CPUPolicy: scheduler.CPUShared, CPU: cpu, MemoryMB: mem, Container: container("busybox")}
}

func (f *fixture) scalar(sql string, args ...any) int64 {
	f.t.Helper()
	var n int64
	if err := f.pool.QueryRow(f.ctx, sql, args...).Scan(&n); err != nil {
		f.t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// used is the Placement usage of a class over every provider.
func (f *fixture) used(class string) int64 {
	return f.scalar(`SELECT COALESCE(sum(a.used), 0)::bigint FROM allocations a JOIN resource_classes rc ON rc.id = a.resource_class_id WHERE rc.name = $1`, class)
}

// consumerUsed is one consumer's Placement allocation of a class.
func (f *fixture) consumerUsed(consumer, class string) int64 {
	return f.scalar(`SELECT COALESCE(sum(a.used), 0)::bigint FROM allocations a JOIN resource_classes rc ON rc.id = a.resource_class_id
JOIN consumers c ON c.id = a.consumer_id WHERE rc.name = $2 AND c.uuid = $1`, consumer, class)
}

func (f *fixture) pins() int64 {
	return f.scalar(`SELECT count(*) FROM bridge_workload_cpus`)
}

// events are the agent events written for a key, oldest first.
func (f *fixture) events(key string) []agentproto.Event {
	f.t.Helper()
	rows, err := outbox.ListKey(f.ctx, f.pool, key)
	if err != nil {
		f.t.Fatal(err)
	}
	var out []agentproto.Event
	for _, r := range rows {
		var e agentproto.Event
		if err := json.Unmarshal(r.Payload, &e); err != nil {
			f.t.Fatal(err)
		}
		e.ID = r.ID
		out = append(out, e)
	}
	return out
}

func sleepMS(n int) { time.Sleep(time.Duration(n) * time.Millisecond) }
