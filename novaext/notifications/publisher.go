package notifications

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/unisched/unisched/bridge"
	"github.com/unisched/unisched/bridge/outbox"
)

// PublisherConfig tunes a Publisher.
type PublisherConfig struct {
	// URL is the AMQP URL of the bus.
	URL string
	// Exchange is the topic exchange published to ("zun").
	Exchange string
	// PublisherID is "container-api:<host>". The routing key is
	// versioned_notifications.<priority>, as oslo.messaging's notifier
	// sends it.
	PublisherID string
}

// Publisher is the outbox Deliverer of the coordinator's container
// notifications (topics bridge.NotificationTopicPrefix...): it wraps each
// in oslo.messaging's envelope 2.0 and publishes it persistent, with
// publisher confirms, so that an event counts as delivered only once the
// broker took it. A connection is opened on first use and again after it
// is lost; the relay retries meanwhile, holding back only the
// notifications of the same container.
type Publisher struct {
	cfg PublisherConfig

	mu   sync.Mutex
	conn *amqp.Connection
	ch   *amqp.Channel
}

var _ outbox.Deliverer = (*Publisher)(nil)

// NewPublisher checks the configuration; nothing connects before the first
// delivery.
func NewPublisher(cfg PublisherConfig) (*Publisher, error) {
	if _, err := amqp.ParseURI(cfg.URL); err != nil {
		return nil, fmt.Errorf("notification publisher: %w", err)
	}
	if cfg.Exchange == "" {
		cfg.Exchange = "zun"
	}
	if cfg.PublisherID == "" {
		return nil, errors.New("notification publisher: a publisher id is required")
	}
	return &Publisher{cfg: cfg}, nil
}

// Deliver publishes one notification and waits for the broker's confirm.
func (p *Publisher) Deliver(ctx context.Context, ev outbox.Event) error {
	var n bridge.Notification
	if err := json.Unmarshal(ev.Payload, &n); err != nil || n.EventType == "" {
		return outbox.Discard(fmt.Errorf("event %d: not a notification: %v", ev.ID, err))
	}
	body, key, err := p.envelope(n, ev.Payload)
	if err != nil {
		return outbox.Discard(fmt.Errorf("event %d: %w", ev.ID, err))
	}
	ch, err := p.channel(ctx)
	if err != nil {
		return err
	}
	dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, p.cfg.Exchange, key, false, false, amqp.Publishing{
		ContentType:     "application/json",
		ContentEncoding: "utf-8",
		DeliveryMode:    amqp.Persistent,
		MessageId:       n.MessageID,
		Timestamp:       time.Now(),
		Body:            body,
	})
	if err != nil {
		p.reset(ch)
		return fmt.Errorf("publishing %s (event %d): %w", n.EventType, ev.ID, err)
	}
	acked, err := dc.WaitContext(ctx)
	if err != nil {
		p.reset(ch)
		return fmt.Errorf("waiting for the broker to confirm %s (event %d): %w", n.EventType, ev.ID, err)
	}
	if !acked {
		return fmt.Errorf("the broker refused %s (event %d)", n.EventType, ev.ID)
	}
	return nil
}

// envelope is the AMQP body and routing key: the outbox's message with
// publisher_id added, as a JSON string in oslo.message.
func (p *Publisher) envelope(n bridge.Notification, raw json.RawMessage) ([]byte, string, error) {
	var inner map[string]any
	if err := json.Unmarshal(raw, &inner); err != nil {
		return nil, "", err
	}
	inner["publisher_id"] = p.cfg.PublisherID
	msg, err := json.Marshal(inner)
	if err != nil {
		return nil, "", err
	}
	body, err := json.Marshal(map[string]string{"oslo.version": "2.0", "oslo.message": string(msg)})
	if err != nil {
		return nil, "", err
	}
	priority := "info"
	if n.Priority == "ERROR" {
		priority = "error"
	}
	return body, "versioned_notifications." + priority, nil
}

// channel is the confirm-mode channel, (re)opened as needed.
func (p *Publisher) channel(ctx context.Context) (*amqp.Channel, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ch != nil && !p.ch.IsClosed() && !p.conn.IsClosed() {
		return p.ch, nil
	}
	p.closeLocked()
	dial := amqp.DefaultDial(10 * time.Second)
	if dl, ok := ctx.Deadline(); ok {
		dial = amqp.DefaultDial(max(time.Until(dl), time.Millisecond))
	}
	conn, err := amqp.DialConfig(p.cfg.URL, amqp.Config{Dial: dial, Properties: amqp.Table{
		"connection_name": "unisched container notifications",
	}})
	if err != nil {
		return nil, fmt.Errorf("connecting to the notification bus: %w", err)
	}
	if err := declareExchange(conn, p.cfg.Exchange); err != nil {
		conn.Close()
		return nil, err
	}
	ch, err := conn.Channel()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("opening a channel: %w", err)
	}
	if err := ch.Confirm(false); err != nil {
		conn.Close()
		return nil, fmt.Errorf("turning publisher confirms on: %w", err)
	}
	p.conn, p.ch = conn, ch
	return ch, nil
}

// reset drops the channel after a failure on it, unless another delivery
// already replaced it.
func (p *Publisher) reset(ch *amqp.Channel) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ch == ch {
		p.closeLocked()
	}
}

func (p *Publisher) closeLocked() {
	if p.conn != nil {
		_ = p.conn.Close()
	}
	p.conn, p.ch = nil, nil
}

// Close closes the connection.
func (p *Publisher) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closeLocked()
}
