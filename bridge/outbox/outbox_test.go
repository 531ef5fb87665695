package outbox_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"k8s.io/utils/cpuset"

	"github.com/unisched/unisched/bridge/ledger"
	"github.com/unisched/unisched/bridge/outbox"
	"github.com/unisched/unisched/bridge/scheduler"
	"github.com/unisched/unisched/internal/pg"
	"github.com/unisched/unisched/internal/pgtest"
)

// A claim (workload, assignment) and its event commit or roll back
// together, and the relay is woken only by the commit.
func TestClaimAndEventShareTheTransaction(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Pool(t)
	listener, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	conn := listener.Hijack()
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "LISTEN "+outbox.Channel); err != nil {
		t.Fatal(err)
	}
	host := ledger.Host{Name: "h1", ProviderUUID: uuid.NewString(), Topology: ledger.Topology{
		Cells:         []ledger.Cell{{ID: 0, CPUs: cpuset.New(0, 1, 2, 3), MemoryMB: 1024}},
		DedicatedCPUs: cpuset.New(2, 3), SharedCPUs: cpuset.New(0, 1),
	}}
	if _, err := ledger.RegisterHost(ctx, pool, host); err != nil {
		t.Fatal(err)
	}

	claim := func(cpus cpuset.CPUSet) (string, int64, error) {
		id := uuid.NewString()
		var ev int64
		err := pg.WithTx(ctx, pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
			w := &ledger.Workload{ID: id, Kind: scheduler.KindContainer, ProjectID: "p", UserID: "u",
				State: ledger.StateClaimed, CPUPolicy: scheduler.CPUDedicated, Resources: scheduler.Resources{PCPU: int64(cpus.Size())}}
			if err := ledger.CreateWorkload(ctx, tx, w); err != nil {
				return err
			}
			var err error
			// The event first, so that the failure below comes after it.
			if ev, err = outbox.Insert(ctx, tx, outbox.Message{Topic: "workload.claimed", Key: id, Payload: map[string]any{"cpus": cpus.String()}}); err != nil {
				return err
			}
			return ledger.Assign(ctx, tx, id, "h1", []ledger.CellAssignment{{Cell: 0, CPUs: cpus}})
		})
		return id, ev, err
	}

	first, ev1, err := claim(cpuset.New(2, 3))
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	n, err := conn.WaitForNotification(wctx)
	cancel()
	if err != nil || n.Channel != outbox.Channel {
		t.Fatalf("no notification after the commit: %v", err)
	}
	row, err := outbox.Get(ctx, pool, ev1)
	if err != nil || row.Key != first || row.Topic != "workload.claimed" || row.DeliveredAt != nil || row.Attempts != 0 {
		t.Fatalf("event after commit: %+v %v", row, err)
	}
	var payload map[string]string
	if err := json.Unmarshal(row.Payload, &payload); err != nil || payload["cpus"] != "2-3" {
		t.Errorf("payload %s", row.Payload)
	}

	second, ev2, err := claim(cpuset.New(3))
	if !errors.Is(err, ledger.ErrCPUTaken) {
		t.Fatalf("second claim of pCPU 3: %v", err)
	}
	if ev2 == 0 {
		t.Fatal("the event was not written before the failure")
	}
	if _, err := outbox.Get(ctx, pool, ev2); !errors.Is(err, outbox.ErrNotFound) {
		t.Errorf("event of the rolled-back claim: %v", err)
	}
	if _, err := ledger.GetWorkload(ctx, pool, second); !errors.Is(err, ledger.ErrNotFound) {
		t.Errorf("workload of the rolled-back claim: %v", err)
	}
	if n, err := outbox.Pending(ctx, pool); err != nil || n != 1 {
		t.Errorf("pending events %d (%v), want 1", n, err)
	}
	// A rolled-back transaction notifies nobody: the next notification is
	// the one of the commit below, not of the rollback above.
	third, ev3, err := claim(cpuset.New())
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel = context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := conn.WaitForNotification(wctx); err != nil {
		t.Fatal(err)
	}
	rows, err := outbox.ListKey(ctx, pool, third)
	if err != nil || len(rows) != 1 || rows[0].ID != ev3 {
		t.Errorf("events of %s: %+v %v", third, rows, err)
	}
	wctx2, cancel2 := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel2()
	if n, err := conn.WaitForNotification(wctx2); err == nil {
		t.Errorf("a second notification arrived: %+v", n)
	}
}

func TestInsertMany(t *testing.T) {
	ctx := context.Background()
	pool := pgtest.Pool(t)
	var ids []int64
	err := pg.WithTx(ctx, pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		var err error
		ids, err = outbox.InsertMany(ctx, tx,
			outbox.Message{Topic: "a", Key: "k2", Payload: json.RawMessage(`{"n":1}`)},
			outbox.Message{Topic: "b", Key: "k1", Payload: []byte(`[1,2]`)},
			outbox.Message{Topic: "c", Key: "k2", Payload: struct{ N int }{3}},
		)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 3 || !(ids[0] < ids[1] && ids[1] < ids[2]) {
		t.Fatalf("ids %v not increasing in message order", ids)
	}
	rows, err := outbox.ListKey(ctx, pool, "k2")
	if err != nil || len(rows) != 2 || string(rows[1].Payload) != `{"N": 3}` || rows[0].Topic != "a" {
		t.Errorf("k2: %+v %v", rows, err)
	}

	for _, tc := range []struct {
		name string
		m    outbox.Message
	}{
		{"empty topic", outbox.Message{Key: "k", Payload: 1}},
		{"empty key", outbox.Message{Topic: "t", Payload: 1}},
		{"invalid raw JSON", outbox.Message{Topic: "t", Key: "k", Payload: json.RawMessage(`{`)}},
		{"unmarshalable", outbox.Message{Topic: "t", Key: "k", Payload: func() {}}},
	} {
		err := pg.WithTx(ctx, pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
			_, err := outbox.Insert(ctx, tx, tc.m)
			return err
		})
		if err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
}
