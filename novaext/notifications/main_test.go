package notifications_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"

	"github.com/unisched/unisched/bridge"
	"github.com/unisched/unisched/internal/pg"
	"github.com/unisched/unisched/internal/pgtest"
	"github.com/unisched/unisched/internal/rabbittest"
	"github.com/unisched/unisched/placement/claims"
	"github.com/unisched/unisched/placement/store"
)

// TestMain: a RabbitMQ node for the binary (rabbittest), the test
// databases' template dropped after, and no goroutine left behind.
func TestMain(m *testing.M) {
	code := rabbittest.Main(m)
	pgtest.DropTemplate()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// novaBody is an AMQP body as Nova's notifier sends it (oslo.messaging's
// messagingv2 driver: envelope 2.0 around the message as a JSON string).
func novaBody(eventType, priority, objName string, data map[string]any) []byte {
	inner, _ := json.Marshal(map[string]any{
		"message_id": uuid.NewString(), "publisher_id": "nova-compute:compute-1",
		"event_type": eventType, "priority": priority, "timestamp": time.Now().UTC().Format("2006-01-02 15:04:05.000000"),
		"_unique_id": strings.ReplaceAll(uuid.NewString(), "-", ""), "_context_request_id": "req-" + uuid.NewString(),
		"_context_roles": []string{"admin"}, "_context_project_id": "p1", "_context_user_id": "u1",
		"payload": map[string]any{
			"nova_object.name": objName, "nova_object.namespace": "nova", "nova_object.version": "1.12",
			"nova_object.data": data,
		},
	})
	body, _ := json.Marshal(map[string]string{"oslo.version": "2.0", "oslo.message": string(inner)})
	return body
}

func instanceData(id, host, state string) map[string]any {
	return map[string]any{
		"uuid": id, "host": host, "node": host, "state": state, "power_state": "running", "task_state": nil,
		"display_name": "vm-" + id[:8], "tenant_id": "p1", "user_id": "u1", "availability_zone": "nova", "fault": nil,
		"flavor": map[string]any{"nova_object.name": "FlavorPayload", "nova_object.namespace": "nova", "nova_object.version": "1.4",
			"nova_object.data": map[string]any{"flavorid": "f1", "name": "pinned", "vcpus": 2, "memory_mb": 1024, "root_gb": 1,
				"extra_specs": map[string]string{"hw:cpu_policy": "dedicated"}}},
		"image_uuid": uuid.NewString(), "ip_addresses": []any{}, "block_devices": []any{}, "metadata": map[string]any{},
	}
}

// novaBus publishes as Nova does: onto a topic exchange it declares
// (durable when Nova runs with amqp_durable_queues), routing key
// versioned_notifications.<priority>.
type novaBus struct {
	t        *testing.T
	url      string
	exchange string
	durable  bool
}

// declare declares the exchange as Nova's services do when they start.
func (b novaBus) declare() {
	b.t.Helper()
	c, err := amqp.Dial(b.url)
	if err != nil {
		b.t.Fatal(err)
	}
	defer c.Close()
	ch, err := c.Channel()
	if err != nil {
		b.t.Fatal(err)
	}
	if err := ch.ExchangeDeclare(b.exchange, amqp.ExchangeTopic, b.durable, false, false, false, nil); err != nil {
		b.t.Fatal(err)
	}
}

func (b novaBus) publish(body []byte, priority string) {
	b.t.Helper()
	c, err := amqp.Dial(b.url)
	if err != nil {
		b.t.Fatal(err)
	}
	defer c.Close()
	ch, err := c.Channel()
	if err != nil {
		b.t.Fatal(err)
	}
	if err := ch.ExchangeDeclare(b.exchange, amqp.ExchangeTopic, b.durable, false, false, false, nil); err != nil {
		b.t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		b.t.Fatal(err)
	}
	dc, err := ch.PublishWithDeferredConfirm(b.exchange, "versioned_notifications."+priority, false, false, amqp.Publishing{
		ContentType: "application/json", ContentEncoding: "utf-8", DeliveryMode: amqp.Persistent, Body: body})
	if err != nil {
		b.t.Fatal(err)
	}
	if !dc.Wait() {
		b.t.Fatal("the broker refused the message")
	}
}

// queueDepth is how many messages wait in a queue (ready, not handed out).
func queueDepth(t *testing.T, url, queue string) int {
	t.Helper()
	c, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ch, err := c.Channel()
	if err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	return q.Messages
}

// vmClaim is Nova's PUT /allocations/{instance} with the bridge's hook:
// the allocation and the ledger's VM in one transaction.
func vmClaim(t *testing.T, c *bridge.Coordinator, db pg.Beginner, id, rp string, pcpu, mem int64) {
	t.Helper()
	vmClaimOf(t, c, db, id, rp, map[string]int64{"PCPU": pcpu, "MEMORY_MB": mem})
}

// vmClaimOf is vmClaim with any resources: Nova's PUT /allocations/{id}
// for res on rp, recorded by the hook in its transaction.
func vmClaimOf(t *testing.T, c *bridge.Coordinator, db pg.Beginner, id, rp string, res map[string]int64) {
	t.Helper()
	ctx := context.Background()
	err := pg.WithTx(ctx, db, pgx.TxOptions{}, func(tx pgx.Tx) error {
		// A consumer that exists is moved as Nova does: at its generation.
		var gen *int
		var g int
		if err := tx.QueryRow(ctx, `SELECT generation FROM consumers WHERE uuid = $1`, id).Scan(&g); err == nil {
			gen = &g
		}
		var amounts []claims.Amount
		for class, n := range res {
			amounts = append(amounts, claims.Amount{ProviderUUID: rp, Class: class, Used: n})
		}
		if err := claims.Replace(ctx, tx, claims.Claim{ConsumerUUID: id, ProjectID: "p1", UserID: "u1", Generation: gen,
			ConsumerType: bridge.ConsumerTypeInstance, Allocations: amounts}); err != nil {
			return err
		}
		return c.RecordVMAllocations(ctx, tx, "", bridge.VMAllocations{ConsumerUUID: id, ProjectID: "p1", UserID: "u1",
			Allocations: map[string]map[string]int64{rp: res}})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// handOver is what Nova's conductor does before a cold or live migration
// (POST /allocations, 1.28): the instance's allocations on rp move to the
// migration's consumer, the instance holding nothing until the scheduler
// claims the destination.
func handOver(t *testing.T, c *bridge.Coordinator, db pg.Beginner, instance, migration, rp string, res map[string]int64) {
	t.Helper()
	ctx := context.Background()
	err := pg.WithTx(ctx, db, pgx.TxOptions{}, func(tx pgx.Tx) error {
		var amounts []claims.Amount
		for class, n := range res {
			amounts = append(amounts, claims.Amount{ProviderUUID: rp, Class: class, Used: n})
		}
		if err := store.DeleteAllAllocationsOfConsumer(ctx, tx, instance); err != nil {
			return err
		}
		if err := claims.Replace(ctx, tx, claims.Claim{ConsumerUUID: migration, ProjectID: "p1", UserID: "u1",
			ConsumerType: "MIGRATION", Allocations: amounts}); err != nil {
			return err
		}
		return c.RecordNovaAllocations(ctx, tx, "", []bridge.VMAllocations{
			{ConsumerUUID: migration, ProjectID: "p1", UserID: "u1", Allocations: map[string]map[string]int64{rp: res}},
			{ConsumerUUID: instance, ProjectID: "p1", UserID: "u1"},
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// handBack is what Nova does when a move is undone (a live migration's
// rollback on the source compute, a failed migrate task in the conductor;
// POST /allocations): the migration's allocations on rp go back to the
// instance.
func handBack(t *testing.T, c *bridge.Coordinator, db pg.Beginner, instance, migration, rp string, res map[string]int64) {
	t.Helper()
	ctx := context.Background()
	err := pg.WithTx(ctx, db, pgx.TxOptions{}, func(tx pgx.Tx) error {
		// the instance holds the destination, or nothing (a migration
		// that failed before the scheduler found one)
		var gen *int
		var g int
		if err := tx.QueryRow(ctx, `SELECT generation FROM consumers WHERE uuid = $1`, instance).Scan(&g); err == nil {
			gen = &g
		}
		var amounts []claims.Amount
		for class, n := range res {
			amounts = append(amounts, claims.Amount{ProviderUUID: rp, Class: class, Used: n})
		}
		if err := store.DeleteAllAllocationsOfConsumer(ctx, tx, migration); err != nil {
			return err
		}
		if err := claims.Replace(ctx, tx, claims.Claim{ConsumerUUID: instance, ProjectID: "p1", UserID: "u1", Generation: gen,
			ConsumerType: bridge.ConsumerTypeInstance, Allocations: amounts}); err != nil {
			return err
		}
		return c.RecordNovaAllocations(ctx, tx, "", []bridge.VMAllocations{
			{ConsumerUUID: migration, ProjectID: "p1", UserID: "u1"},
			{ConsumerUUID: instance, ProjectID: "p1", UserID: "u1", Allocations: map[string]map[string]int64{rp: res}},
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}
