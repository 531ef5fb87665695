package notifications_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/unisched/unisched/bridge"
	"github.com/unisched/unisched/bridge/agentproto"
	"github.com/unisched/unisched/bridge/bridgetest"
	"github.com/unisched/unisched/bridge/outbox"
	"github.com/unisched/unisched/internal/rabbittest"
	"github.com/unisched/unisched/novaext/notifications"
)

// received is one message a listener on the bus got.
type received struct {
	key  string
	body []byte
	ct   string
}

// listen binds a queue of its own to the exchange for every
// versioned_notifications key, as a consumer of Zun's notifications would.
func listen(t *testing.T, url, exchange string) <-chan received {
	t.Helper()
	c, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	ch, err := c.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclare(exchange, amqp.ExchangeTopic, false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(q.Name, "versioned_notifications.*", exchange, false, nil); err != nil {
		t.Fatal(err)
	}
	ds, err := ch.Consume(q.Name, "", true, true, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan received, 100)
	go func() {
		for d := range ds {
			out <- received{key: d.RoutingKey, body: d.Body, ct: d.ContentType}
		}
	}()
	return out
}

// The coordinator's container notifications go through the outbox relay
// (routed beside the agents' deliverer) to the bus, in oslo's envelope
// 2.0, on versioned_notifications.info (.error for a failed create), and
// the notify-lag histogram observes each delivery by topic.
func TestContainerNotificationsOnTheBus(t *testing.T) {
	url := rabbittest.URL(t)
	exchange := "zun-" + t.Name()
	got := listen(t, url, exchange)

	_, pool := bridgetest.Coordinator(t)
	c := bridge.New(pool, bridgetest.Engine(t), bridge.Options{Notifications: true})
	bridgetest.Register(t, c, bridgetest.TwoCells("h1"))

	pub, err := notifications.NewPublisher(notifications.PublisherConfig{URL: url, Exchange: exchange, PublisherID: "container-api:testhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	reg := prometheus.NewRegistry()
	lag, err := outbox.NewNotifyLag(reg)
	if err != nil {
		t.Fatal(err)
	}
	var router outbox.Router
	router.Handle(bridge.AgentTopic, outbox.DelivererFunc(func(context.Context, outbox.Event) error { return nil })) // no agents here
	router.Handle(bridge.NotificationTopicPrefix, pub)
	relay, err := outbox.NewRelay(pool, outbox.Config{Deliverer: &router, Delivered: lag.Delivered,
		PollInterval: 100 * time.Millisecond, LeaderRetry: 100 * time.Millisecond, BackoffMin: 100 * time.Millisecond, BackoffMax: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := relay.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer relay.Stop()

	w, err := c.Create(t.Context(), bridge.CreateRequest{Name: "web", ProjectID: "p1", UserID: "u1", CPU: 1, MemoryMB: 256,
		Container: &agentproto.Container{Image: "busybox", Running: true}})
	if err != nil {
		t.Fatal(err)
	}
	refused, err := c.Create(t.Context(), bridge.CreateRequest{Name: "huge", ProjectID: "p1", UserID: "u1", CPU: 64, MemoryMB: 256,
		CPUPolicy: "dedicated", Container: &agentproto.Container{Image: "busybox", Running: true}})
	if !errors.Is(err, bridge.ErrNoValidHost) {
		t.Fatalf("the refused create: %v", err)
	}

	want := map[string]string{ // event type + uuid -> routing key
		"container.create.start " + w.ID:       "versioned_notifications.info",
		"container.create.start " + refused.ID: "versioned_notifications.info",
		"container.create.error " + refused.ID: "versioned_notifications.error",
	}
	timeout := time.After(30 * time.Second)
	for len(want) > 0 {
		var r received
		select {
		case r = <-got:
		case <-timeout:
			t.Fatalf("still waiting for %v", want)
		}
		var env map[string]any
		if err := json.Unmarshal(r.body, &env); err != nil || env["oslo.version"] != "2.0" || r.ct != "application/json" {
			t.Fatalf("envelope %s (%s): %v", r.body, r.ct, err)
		}
		inner, _ := env["oslo.message"].(string)
		var m struct {
			MessageID   string `json:"message_id"`
			PublisherID string `json:"publisher_id"`
			EventType   string `json:"event_type"`
			Priority    string `json:"priority"`
			Timestamp   string `json:"timestamp"`
			Payload     struct {
				Name string `json:"versioned_object.name"`
				Data struct {
					UUID, Name, Status, Image, Memory string
					Project                           string `json:"project_id"`
					CPU                               float64
				} `json:"versioned_object.data"`
			} `json:"payload"`
		}
		if err := json.Unmarshal([]byte(inner), &m); err != nil {
			t.Fatalf("oslo.message %q: %v", inner, err)
		}
		k := m.EventType + " " + m.Payload.Data.UUID
		wantKey, ok := want[k]
		if !ok {
			t.Fatalf("unexpected %s: %s", k, inner)
		}
		delete(want, k)
		if r.key != wantKey || m.PublisherID != "container-api:testhost" || m.MessageID == "" || m.Timestamp == "" ||
			m.Payload.Name != "ContainerPayload" || m.Payload.Data.Image != "busybox" || m.Payload.Data.Project != "p1" ||
			m.Payload.Data.Memory != "256" {
			t.Errorf("%s on %s: %s", k, r.key, inner)
		}
	}

	eventually(t, 10*time.Second, "the histogram observed the deliveries", func() bool {
		mfs, _ := reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() != "unisched_notify_lag_seconds" {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, lp := range m.GetLabel() {
					if lp.GetValue() == "notification.container.create.start" && m.GetHistogram().GetSampleCount() == 2 {
						return true
					}
				}
			}
		}
		return false
	})
}

// While the bus is down, container notifications wait in the outbox (the
// relay retries); once it is back they are published, none lost, and the
// agents' events were never held up by them.
func TestContainerNotificationsWaitForTheBus(t *testing.T) {
	node := rabbittest.Shared(t)
	exchange := "zun-" + t.Name()
	_, pool := bridgetest.Coordinator(t)
	c := bridge.New(pool, bridgetest.Engine(t), bridge.Options{Notifications: true})
	bridgetest.Register(t, c, bridgetest.TwoCells("h1"))
	pub, err := notifications.NewPublisher(notifications.PublisherConfig{URL: node.URL, Exchange: exchange, PublisherID: "container-api:testhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	agentEvents := make(chan int64, 100)
	var router outbox.Router
	router.Handle(bridge.AgentTopic, outbox.DelivererFunc(func(_ context.Context, ev outbox.Event) error {
		agentEvents <- ev.ID
		return nil
	}))
	router.Handle(bridge.NotificationTopicPrefix, pub)
	relay, err := outbox.NewRelay(pool, outbox.Config{Deliverer: &router, PollInterval: 100 * time.Millisecond,
		LeaderRetry: 100 * time.Millisecond, BackoffMin: 200 * time.Millisecond, BackoffMax: time.Second, DeliverTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := relay.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer relay.Stop()

	// A listener whose exchange and queue survive the restart (durable),
	// so that what is published right after it is not routed nowhere.
	queue := "listener-" + t.Name()
	func() {
		conn, err := amqp.Dial(node.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		if err := ch.ExchangeDeclare(exchange, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		if err := ch.QueueBind(queue, "versioned_notifications.*", exchange, false, nil); err != nil {
			t.Fatal(err)
		}
	}()
	if err := node.Stop(); err != nil {
		t.Fatal(err)
	}
	w, err := c.Create(t.Context(), bridge.CreateRequest{Name: "web", ProjectID: "p1", UserID: "u1", CPU: 1, MemoryMB: 256,
		Container: &agentproto.Container{Image: "busybox", Running: true}})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-agentEvents:
	case <-time.After(20 * time.Second):
		t.Fatal("the agent's create event waited for the bus")
	}
	eventually(t, 20*time.Second, "a failed publish attempt recorded", func() bool {
		rows, err := outbox.ListKey(t.Context(), pool, "notify:"+w.ID)
		return err == nil && len(rows) == 1 && rows[0].Attempts > 0 && rows[0].DeliveredAt == nil
	})

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := node.Start(ctx); err != nil {
		t.Fatalf("%v\n%s", err, node.Log(20))
	}
	conn, err := amqp.Dial(node.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	var body []byte
	eventually(t, 60*time.Second, "the notification after the bus came back", func() bool {
		m, ok, err := ch.Get(queue, true)
		if err != nil {
			t.Fatal(err)
		}
		body = m.Body
		return ok
	})
	var env map[string]string
	if err := json.Unmarshal(body, &env); err != nil || !strings.Contains(env["oslo.message"], `"container.create.start"`) ||
		!strings.Contains(env["oslo.message"], w.ID) {
		t.Errorf("after the outage: %s (%v)", body, err)
	}
}
