package novaharness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/unisched/unisched/internal/rabbittest"
)

// startRabbit starts a RabbitMQ node of the environment's own
// (internal/rabbittest: its name, its ports, its own epmd on its own port
// so a foreign epmd or RabbitMQ on the machine is never shared, its data
// and logs under Dir/rabbitmq) and waits until AMQP answers; on new ports
// when one was taken (what names them is written after it runs).
func (e *Env) startRabbit(ctx context.Context) error {
	t0 := time.Now()
	var n *rabbittest.Node
	if err := e.movePorts([]*int{&e.ports.amqp, &e.ports.dist, &e.ports.epmd}, func() error {
		e.setRabbitURLs()
		var err error
		n, err = rabbittest.StartNode(ctx, rabbittest.Options{
			Dir:          filepath.Join(e.Dir, "rabbitmq"),
			Name:         strings.TrimSuffix(e.RabbitNode, "@localhost"),
			AMQPPort:     e.ports.amqp,
			DistPort:     e.ports.dist,
			EpmdPort:     e.ports.epmd,
			StartTimeout: stepTimeout,
		})
		return err
	}); err != nil {
		return err
	}
	e.mu.Lock()
	e.Rabbit = n
	e.mu.Unlock()
	e.timed("rabbitmq", t0)
	return nil
}

// queueConsumers returns each named queue's consumer count (0 when the
// queue does not exist yet).
func (e *Env) queueConsumers(queues []string) (map[string]int, error) {
	c, err := amqp.DialConfig(e.AMQPURL, amqp.Config{Dial: amqp.DefaultDial(2 * time.Second)})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	out := map[string]int{}
	for _, q := range queues {
		// A passive declare of a missing queue closes the channel (404):
		// one channel per queue.
		ch, err := c.Channel()
		if err != nil {
			return nil, err
		}
		info, err := ch.QueueDeclarePassive(q, false, false, false, false, nil)
		if err == nil {
			out[q] = info.Consumers
			_ = ch.Close()
		} else {
			out[q] = 0
		}
	}
	return out, nil
}

// QueueConsumers is how many consumers a queue has (0 when it does not
// exist).
func (e *Env) QueueConsumers(queue string) (int, error) {
	m, err := e.queueConsumers([]string{queue})
	return m[queue], err
}

// Notification is one of Nova's versioned notifications, out of its
// oslo.messaging envelope.
type Notification struct {
	EventType string `json:"event_type"`
	Publisher string `json:"publisher_id"`
	Priority  string `json:"priority"`
	Timestamp string `json:"timestamp"`
	Payload   struct {
		Name string `json:"nova_object.name"`
		Data struct {
			UUID  string `json:"uuid"`
			Host  string `json:"host"`
			State string `json:"state"`
		} `json:"nova_object.data"`
	} `json:"payload"`
	// Raw is the whole inner message.
	Raw json.RawMessage `json:"-"`
}

// Notifications takes (and acknowledges) every message queued on
// versioned_notifications.<priority> ("info", "error"): Nova declares that
// queue itself when it first publishes, so nothing is lost before a
// consumer exists. A queue Nova has not declared yet gives none.
func (e *Env) Notifications(priority string) ([]Notification, error) {
	c, err := amqp.DialConfig(e.AMQPURL, amqp.Config{Dial: amqp.DefaultDial(5 * time.Second)})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	ch, err := c.Channel()
	if err != nil {
		return nil, err
	}
	defer ch.Close()
	queue := "versioned_notifications." + priority
	var out []Notification
	for {
		m, ok, err := ch.Get(queue, false)
		if err != nil {
			var ae *amqp.Error
			if errors.As(err, &ae) && ae.Code == amqp.NotFound {
				return out, nil
			}
			return out, fmt.Errorf("reading %s: %w", queue, err)
		}
		if !ok {
			return out, nil
		}
		var env struct {
			Message string `json:"oslo.message"`
		}
		inner := m.Body
		if json.Unmarshal(m.Body, &env) == nil && env.Message != "" {
			inner = []byte(env.Message)
		}
		var n Notification
		if err := json.Unmarshal(inner, &n); err != nil {
			return out, fmt.Errorf("decoding a message of %s: %w: %s", queue, err, inner)
		}
		n.Raw = inner
		out = append(out, n)
		if err := m.Ack(false); err != nil {
			return out, err
		}
	}
}

// WaitRPC waits until the conductor, the scheduler and every compute
// consume their RPC queues again (after StartRabbit: oslo.messaging
// reconnects with a backoff and declares its queues anew).
func (e *Env) WaitRPC(ctx context.Context, timeout time.Duration) error {
	queues := []string{"conductor", "scheduler"}
	for _, c := range e.Computes {
		queues = append(queues, "compute."+c.Host)
	}
	deadline := time.Now().Add(timeout)
	for {
		got, err := e.queueConsumers(queues)
		if err == nil {
			missing := ""
			for _, q := range queues {
				if got[q] == 0 {
					missing += " " + q
				}
			}
			if missing == "" {
				return nil
			}
			err = fmt.Errorf("no consumer on%s", missing)
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return fmt.Errorf("nova's rpc consumers not back after %s: %w", timeout, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
