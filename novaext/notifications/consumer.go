package notifications

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/unisched/unisched/bridge"
	"github.com/unisched/unisched/novaext"
)

// Ledger is what the consumer tells: the bridge's coordinator. An error
// that is bridge.ErrInvalid, bridge.ErrNotFound or wrapped in Permanent
// drops the notification; any other is retried.
type Ledger interface {
	// VMCreated: the VM runs on host; topo nil keeps the expected pins.
	VMCreated(ctx context.Context, id, host string, topo *bridge.VMTopology) error
	VMFailed(ctx context.Context, id, reason string) error
	VMDeleted(ctx context.Context, id string) error
	VMMoved(ctx context.Context, id string) error
}

// Topologies gets a server's NUMA topology from Nova
// (novaext.NovaClient).
type Topologies interface {
	Topology(ctx context.Context, serverID string) (*novaext.ServerTopology, error)
}

// Permanent marks a ledger error retrying cannot help (the VM is not one
// the ledger knows, the input is invalid): the notification is dropped.
func Permanent(err error) error { return &permanentError{err: err} }

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// ConsumerConfig tunes a Consumer. Zero fields take the defaults in
// parentheses.
type ConsumerConfig struct {
	// URL is the AMQP URL of Nova's bus.
	URL string
	// Exchange is Nova's control exchange ("nova"); Queue the consumer's
	// own durable queue ("unisched-notifications"), bound with
	// RoutingKeys (versioned_notifications.info and .error).
	Exchange    string
	Queue       string
	RoutingKeys []string
	Ledger      Ledger
	// Topologies, when set, gives created VMs their real pins.
	Topologies Topologies
	Logger     *slog.Logger
	Metrics    *Metrics
	// Prefetch is how many unacknowledged messages the broker hands out
	// at once (16).
	Prefetch int
	// ReconnectMin and ReconnectMax bound the wait between connection
	// attempts, doubling per failure (500ms, 5s). The cap is short on
	// purpose: Nova's exchange is not durable by default, so after a
	// broker restart the queue's bindings are gone until the consumer
	// declares them again, and what Nova publishes before that reaches
	// only Nova's own default queue.
	ReconnectMin, ReconnectMax time.Duration
	// RetryDelay is the pause before a message whose handling failed for
	// a transient reason goes back to the queue (1s): a database or Nova
	// that is down is not hammered.
	RetryDelay time.Duration
	// TopologyAttempts is how many deliveries of an instance.create.end
	// may fail to get the topology before the VM is recorded without it
	// (5): the expected pins are a fine stand-in, a lost create is not.
	TopologyAttempts int
	// HandleTimeout bounds the handling of one message (30s).
	HandleTimeout time.Duration
}

func (c *ConsumerConfig) setDefaults() {
	if c.Exchange == "" {
		c.Exchange = "nova"
	}
	if c.Queue == "" {
		c.Queue = "unisched-notifications"
	}
	if len(c.RoutingKeys) == 0 {
		c.RoutingKeys = []string{"versioned_notifications.info", "versioned_notifications.error"}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Prefetch <= 0 {
		c.Prefetch = 16
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.ReconnectMin, 500*time.Millisecond)
	def(&c.ReconnectMax, 5*time.Second)
	def(&c.RetryDelay, time.Second)
	def(&c.HandleTimeout, 30*time.Second)
	if c.TopologyAttempts <= 0 {
		c.TopologyAttempts = 5
	}
}

// Consumer takes Nova's versioned notifications off its own durable
// queue and updates the ledger. Messages are acknowledged only after the
// ledger change committed (at least once: the ledger's calls are
// idempotent); a message that can never be handled is dropped and logged.
// One message is handled at a time, so a VM's notifications apply in the
// order Nova sent them.
type Consumer struct {
	cfg ConsumerConfig

	mu        sync.Mutex
	connected bool
	// topoFailures counts failed topology fetches per message id.
	topoFailures map[string]int
}

// NewConsumer checks the configuration; Run consumes.
func NewConsumer(cfg ConsumerConfig) (*Consumer, error) {
	if cfg.URL == "" || cfg.Ledger == nil {
		return nil, errors.New("nova notifications: a URL and a Ledger are required")
	}
	if _, err := amqp.ParseURI(cfg.URL); err != nil {
		return nil, fmt.Errorf("nova notifications: %w", err)
	}
	cfg.setDefaults()
	return &Consumer{cfg: cfg, topoFailures: map[string]int{}}, nil
}

// Connected reports whether the consumer is currently subscribed.
func (c *Consumer) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.connected
}

func (c *Consumer) setConnected(v bool) {
	c.mu.Lock()
	c.connected = v
	c.mu.Unlock()
	c.cfg.Metrics.connected(v)
}

// Run consumes until ctx ends, reconnecting with backoff whenever the
// connection or channel is lost; it returns nil once ctx ended. Messages
// unacknowledged when it stops go back to the queue.
func (c *Consumer) Run(ctx context.Context) error {
	wait := c.cfg.ReconnectMin
	for {
		start := time.Now()
		err := c.session(ctx)
		c.setConnected(false)
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(start) > c.cfg.ReconnectMax {
			wait = c.cfg.ReconnectMin // it had been up a while: a fresh failure
		}
		c.cfg.Logger.Warn("nova notifications: connection lost; reconnecting", "error", err, "in", wait)
		c.cfg.Metrics.reconnect()
		if !sleep(ctx, wait) {
			return nil
		}
		wait = min(2*wait, c.cfg.ReconnectMax)
	}
}

// session connects, subscribes and handles deliveries until the
// connection or channel closes or ctx ends.
func (c *Consumer) session(ctx context.Context) error {
	conn, err := amqp.DialConfig(c.cfg.URL, amqp.Config{Dial: amqp.DefaultDial(10 * time.Second), Properties: amqp.Table{
		"connection_name": "unisched nova notifications",
	}})
	if err != nil {
		return fmt.Errorf("connecting: %w", err)
	}
	// Closing the connection closes the channel: messages handed out and
	// not acknowledged go back to the queue.
	defer func() { _ = conn.CloseDeadline(time.Now().Add(5 * time.Second)) }()
	if err := checkExchange(conn, c.cfg.Exchange); err != nil {
		return err
	}
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("opening a channel: %w", err)
	}
	if err := ch.Qos(c.cfg.Prefetch, 0, false); err != nil {
		return fmt.Errorf("setting the prefetch: %w", err)
	}
	if _, err := ch.QueueDeclare(c.cfg.Queue, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declaring queue %s: %w", c.cfg.Queue, err)
	}
	for _, key := range c.cfg.RoutingKeys {
		if err := ch.QueueBind(c.cfg.Queue, key, c.cfg.Exchange, false, nil); err != nil {
			return fmt.Errorf("binding queue %s to %s with %s: %w", c.cfg.Queue, c.cfg.Exchange, key, err)
		}
	}
	deliveries, err := ch.Consume(c.cfg.Queue, "", false, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("consuming %s: %w", c.cfg.Queue, err)
	}
	// Deliveries left unread would block the library's reader, and with it
	// the close handshake: drain them (unacknowledged, they are requeued)
	// until the channel's close ends the stream.
	defer func() {
		go func() {
			for range deliveries {
			}
		}()
	}()
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	chClosed := ch.NotifyClose(make(chan *amqp.Error, 1))
	c.setConnected(true)
	c.cfg.Logger.Info("nova notifications: consuming", "queue", c.cfg.Queue, "exchange", c.cfg.Exchange)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case e := <-closed:
			return fmt.Errorf("connection closed: %v", e)
		case e := <-chClosed:
			return fmt.Errorf("channel closed: %v", e)
		case d, ok := <-deliveries:
			if !ok {
				return errors.New("the broker ended the subscription")
			}
			if err := c.handle(ctx, d); err != nil {
				return err
			}
		}
	}
}

// checkExchange waits for Nova's exchange rather than declaring it: its
// durability is Nova's choice (amqp_durable_queues), and an exchange
// declared here with the other one would make every Nova service fail its
// own declare. Nova's services declare it as they start (it carries their
// RPC too), so the wait is short.
func checkExchange(conn *amqp.Connection, name string) error {
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("opening a channel: %w", err)
	}
	err = ch.ExchangeDeclarePassive(name, amqp.ExchangeTopic, false, false, false, false, nil)
	var ae *amqp.Error
	if errors.As(err, &ae) && ae.Code == amqp.NotFound {
		return fmt.Errorf("exchange %s does not exist yet (Nova declares it when its services start): %w", name, err)
	}
	if err != nil {
		return fmt.Errorf("checking exchange %s: %w", name, err)
	}
	return ch.Close()
}

// declareExchange makes sure the publisher's exchange exists without
// fighting its owner over its properties: one that exists is used as it
// is; a missing one is declared as oslo.messaging declares it by default
// (topic, not durable).
func declareExchange(conn *amqp.Connection, name string) error {
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("opening a channel: %w", err)
	}
	err = ch.ExchangeDeclarePassive(name, amqp.ExchangeTopic, false, false, false, false, nil)
	if err == nil {
		return ch.Close()
	}
	var ae *amqp.Error
	if !errors.As(err, &ae) || ae.Code != amqp.NotFound {
		return fmt.Errorf("checking exchange %s: %w", name, err)
	}
	// The failed passive declare closed that channel.
	if ch, err = conn.Channel(); err != nil {
		return fmt.Errorf("opening a channel: %w", err)
	}
	defer ch.Close()
	if err := ch.ExchangeDeclare(name, amqp.ExchangeTopic, false, false, false, false, nil); err != nil {
		return fmt.Errorf("declaring exchange %s: %w", name, err)
	}
	return nil
}

// handle settles one delivery: ack once applied (or ignored), drop what
// is malformed or permanently refused, requeue after RetryDelay what
// failed otherwise. An error means the channel is unusable.
func (c *Consumer) handle(ctx context.Context, d amqp.Delivery) error {
	log := c.cfg.Logger
	m, err := ParseMessage(d.Body)
	var a Action
	if err == nil {
		a, err = Classify(m)
	}
	if err != nil {
		log.Error("nova notifications: dropping a malformed message", "error", err, "routing_key", d.RoutingKey, "body", truncate(d.Body, 512))
		c.cfg.Metrics.failed("malformed")
		return d.Reject(false)
	}
	if a.Kind == Ignored {
		c.cfg.Metrics.consumed(a.Kind)
		return d.Ack(false)
	}
	hctx, cancel := context.WithTimeout(ctx, c.cfg.HandleTimeout)
	err = c.apply(hctx, m, a)
	cancel()
	var perm *permanentError
	switch {
	case err == nil:
		c.forget(m.MessageID)
		log.Debug("nova notifications: applied", "event_type", m.EventType, "server", a.ServerID, "action", a.Kind)
		c.cfg.Metrics.consumed(a.Kind)
		return d.Ack(false)
	case errors.As(err, &perm), errors.Is(err, bridge.ErrInvalid), errors.Is(err, bridge.ErrNotFound):
		c.forget(m.MessageID)
		log.Warn("nova notifications: dropping a notification the ledger refuses", "event_type", m.EventType,
			"server", a.ServerID, "error", err)
		c.cfg.Metrics.failed("refused")
		return d.Ack(false)
	}
	log.Warn("nova notifications: handling failed; requeueing", "event_type", m.EventType, "server", a.ServerID,
		"error", err, "in", c.cfg.RetryDelay)
	c.cfg.Metrics.failed("retried")
	sleep(ctx, c.cfg.RetryDelay)
	// After ctx ended the broker requeues it when the channel closes.
	return d.Nack(false, true)
}

// apply tells the ledger.
func (c *Consumer) apply(ctx context.Context, m Message, a Action) error {
	switch a.Kind {
	case Created:
		topo, err := c.topology(ctx, m, a.ServerID)
		if err != nil {
			return err
		}
		err = c.cfg.Ledger.VMCreated(ctx, a.ServerID, a.Host, topo)
		if topo != nil && errors.Is(err, bridge.ErrInvalid) {
			// A topology the ledger cannot place (cells it does not
			// know): the VM still runs; keep its expected pins.
			c.cfg.Logger.Warn("nova notifications: the ledger refused the VM's topology; keeping the expected pins",
				"server", a.ServerID, "error", err)
			err = c.cfg.Ledger.VMCreated(ctx, a.ServerID, a.Host, nil)
		}
		return err
	case Failed:
		return c.cfg.Ledger.VMFailed(ctx, a.ServerID, a.Reason)
	case Deleted:
		return c.cfg.Ledger.VMDeleted(ctx, a.ServerID)
	case Moved:
		if err := c.cfg.Ledger.VMMoved(ctx, a.ServerID); err != nil || !a.RealPins {
			return err
		}
		// Landed: the VM runs where its allocations now are, with Nova's
		// pins there. Active again even without pins to read (a shared
		// VM): a move to another host hands the old allocations to the
		// migration's consumer, and the ledger records the destination's
		// claim as a new, claimed VM. A failure here redelivers the
		// message; VMMoved again is harmless.
		topo, err := c.topology(ctx, m, a.ServerID)
		if err != nil {
			return err
		}
		err = c.cfg.Ledger.VMCreated(ctx, a.ServerID, "", topo)
		if topo != nil && errors.Is(err, bridge.ErrInvalid) {
			c.cfg.Logger.Warn("nova notifications: the ledger refused the moved VM's topology; keeping the expected pins",
				"server", a.ServerID, "error", err)
			err = c.cfg.Ledger.VMCreated(ctx, a.ServerID, "", nil)
		}
		return err
	}
	return nil
}

// topology is the VM's real placement from Nova, nil when unknown (no
// client, no NUMA topology, not shown, server gone, or Nova failing past
// TopologyAttempts deliveries of this message).
func (c *Consumer) topology(ctx context.Context, m Message, id string) (*bridge.VMTopology, error) {
	if c.cfg.Topologies == nil {
		return nil, nil
	}
	st, err := c.cfg.Topologies.Topology(ctx, id)
	if errors.Is(err, novaext.ErrServerNotFound) {
		return nil, nil
	}
	if err != nil {
		key := m.MessageID
		c.mu.Lock()
		c.topoFailures[key]++
		n := c.topoFailures[key]
		c.mu.Unlock()
		if key != "" && n < c.cfg.TopologyAttempts {
			return nil, fmt.Errorf("getting the topology of server %s (attempt %d): %w", id, n, err)
		}
		c.cfg.Logger.Warn("nova notifications: recording the VM without its real pins", "server", id, "attempts", n, "error", err)
		return nil, nil
	}
	cells, ok := st.HostCells()
	if !ok {
		return nil, nil
	}
	topo := &bridge.VMTopology{}
	for _, hc := range cells {
		topo.Cells = append(topo.Cells, bridge.VMCell{Cell: hc.Cell, CPUs: hc.CPUs, MemoryMB: hc.MemoryMB})
	}
	return topo, nil
}

func (c *Consumer) forget(id string) {
	c.mu.Lock()
	delete(c.topoFailures, id)
	c.mu.Unlock()
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

// sleep waits d or until ctx ends; false when ctx ended.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
