package rabbittest_test

import (
	"context"
	"net"
	"os"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/unisched/unisched/internal/proctest"
	"github.com/unisched/unisched/internal/rabbittest"
)

func TestMain(m *testing.M) { os.Exit(rabbittest.Main(m)) }

// A persistent message on a durable queue survives a Stop and Start of the
// node, on the same URL.
func TestRestartKeepsDurableMessages(t *testing.T) {
	n := rabbittest.Shared(t)
	publish := func() {
		c, err := amqp.Dial(n.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ch, err := c.Channel()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ch.QueueDeclare("rabbittest-durable", true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		err = ch.PublishWithContext(context.Background(), "", "rabbittest-durable", false, false,
			amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte("kept")})
		if err != nil {
			t.Fatal(err)
		}
	}
	publish()
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := amqp.DialConfig(n.URL, amqp.Config{Dial: amqp.DefaultDial(time.Second)}); err == nil {
		t.Fatal("the stopped node still accepts connections")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		t.Fatalf("%v\n%s", err, n.Log(20))
	}
	c, err := amqp.Dial(n.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ch, err := c.Channel()
	if err != nil {
		t.Fatal(err)
	}
	m, ok, err := ch.Get("rabbittest-durable", true)
	if err != nil || !ok || string(m.Body) != "kept" {
		t.Fatalf("after the restart: %q %v %v", m.Body, ok, err)
	}
}

// TestEpmdPortTaken: an epmd port something else holds is reported as a
// port taken (so that a harness moves to another), not waited out.
func TestEpmdPortTaken(t *testing.T) {
	if err := rabbittest.Available(); err != nil {
		t.Skip(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, err := rabbittest.StartNode(ctx, rabbittest.Options{Dir: t.TempDir(), AMQPPort: 1, DistPort: 2, EpmdPort: port})
	if err == nil {
		n.Close()
		t.Fatal("started with its epmd port taken")
	}
	if !proctest.AddrInUse(err) {
		t.Fatalf("error does not say the port is taken: %v", err)
	}
}
