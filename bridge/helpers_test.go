package bridge_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/unisched/unisched/bridge"
	"github.com/unisched/unisched/bridge/agentproto"
	"github.com/unisched/unisched/bridge/bridgetest"
	"github.com/unisched/unisched/bridge/outbox"
	"github.com/unisched/unisched/bridge/scheduler"
	"github.com/unisched/unisched/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

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
	c, pool := bridgetest.Coordinator(t)
	return &fixture{t: t, ctx: context.Background(), pool: pool, c: c}
}

func (f *fixture) register(reg agentproto.Registration) agentproto.RegistrationResult {
	f.t.Helper()
	return bridgetest.Register(f.t, f.c, reg)
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
