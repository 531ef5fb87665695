package bridge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/unisched/unisched/bridge/agentproto"
	"github.com/unisched/unisched/bridge/outbox"
	"github.com/unisched/unisched/internal/pg"
)

// AgentDelivererOptions tune NewAgentDeliverer.
type AgentDelivererOptions struct {
	// Client posts the events; the relay bounds each delivery with its own
	// timeout through the context. The default keeps up to 16 idle
	// connections per agent (more than the relay's default 8 lanes), so
	// that a burst of events to one host does not open (and close) a
	// connection each, as http.DefaultClient's 2 would.
	Client *http.Client
	// Token, when set, is sent as X-Auth-Token.
	Token string
	// URLTTL is how long a host's agent URL is used without reading it
	// again (10s): a delivery saves the query, and an agent that
	// re-registered elsewhere is found again after the TTL or at once
	// after a delivery to its old address failed.
	URLTTL time.Duration
}

// NewAgentDeliverer delivers the AgentTopic events of the outbox: it posts
// the agentproto.Event, with ID set to the outbox id the agent dedupes by,
// to {agent_url}/v1/events of the event's host, read from the hosts table
// at most every URLTTL and again after a failed delivery, so a
// re-registered agent gets the next events at its new address. A 2xx
// answer is delivered (the agent answers 202 once it has journaled the
// event, and applies it afterwards; its outcome arrives as a report); an
// unknown host, an agent answering 404 or an event that cannot be decoded
// is discarded (retrying cannot help); anything else is retried by the
// relay.
func NewAgentDeliverer(db pg.DBTX, opts AgentDelivererOptions) outbox.Deliverer {
	if opts.Client == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 16
		opts.Client = &http.Client{Transport: t}
	}
	if opts.URLTTL <= 0 {
		opts.URLTTL = 10 * time.Second
	}
	return &agentDeliverer{db: db, opts: opts, urls: map[string]agentAddr{}}
}

type agentDeliverer struct {
	db   pg.DBTX
	opts AgentDelivererOptions

	mu   sync.Mutex
	urls map[string]agentAddr // by host
}

type agentAddr struct {
	url  string
	read time.Time
}

// agentURL is the host's agent URL, from the cache while it is fresh.
func (d *agentDeliverer) agentURL(ctx context.Context, host string) (string, error) {
	d.mu.Lock()
	a, ok := d.urls[host]
	d.mu.Unlock()
	if ok && time.Since(a.read) < d.opts.URLTTL {
		return a.url, nil
	}
	u, err := agentURL(ctx, d.db, host)
	if err != nil {
		d.forget(host)
		return "", err
	}
	d.mu.Lock()
	d.urls[host] = agentAddr{url: u, read: time.Now()}
	d.mu.Unlock()
	return u, nil
}

// forget drops a host's cached URL: the next delivery reads it again.
func (d *agentDeliverer) forget(host string) {
	d.mu.Lock()
	delete(d.urls, host)
	d.mu.Unlock()
}

func (d *agentDeliverer) Deliver(ctx context.Context, ev outbox.Event) error {
	if ev.Topic != AgentTopic {
		return outbox.Discard(fmt.Errorf("event %d: topic %q is not %q", ev.ID, ev.Topic, AgentTopic))
	}
	var e agentproto.Event
	if err := json.Unmarshal(ev.Payload, &e); err != nil {
		return outbox.Discard(fmt.Errorf("event %d: decoding: %w", ev.ID, err))
	}
	e.ID = ev.ID
	if e.CreatedAt.IsZero() {
		e.CreatedAt = ev.CreatedAt
	}
	base, err := d.agentURL(ctx, e.Host)
	if errors.Is(err, ErrNotFound) {
		return outbox.Discard(fmt.Errorf("event %d: %w", ev.ID, err))
	}
	if err != nil {
		return err
	}
	body, err := json.Marshal(e)
	if err != nil {
		return outbox.Discard(fmt.Errorf("event %d: encoding: %w", ev.ID, err))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(base, "/")+"/v1/events", bytes.NewReader(body))
	if err != nil {
		return outbox.Discard(fmt.Errorf("event %d: agent url %q: %w", ev.ID, base, err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if d.opts.Token != "" {
		req.Header.Set("X-Auth-Token", d.opts.Token)
	}
	resp, err := d.opts.Client.Do(req)
	if err != nil {
		d.forget(e.Host)
		return fmt.Errorf("event %d to host %s: %w", ev.ID, e.Host, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	// Whoever answers there may not be the host's agent any more.
	d.forget(e.Host)
	switch {
	case resp.StatusCode == http.StatusNotFound, resp.StatusCode == http.StatusBadRequest,
		resp.StatusCode == http.StatusUnprocessableEntity:
		// The agent does not know the host, or refuses the event itself:
		// sending it again cannot help, and retrying it forever would
		// hold up every later event of the workload.
		return outbox.Discard(fmt.Errorf("event %d to host %s: agent answered %s: %s", ev.ID, e.Host, resp.Status, bytes.TrimSpace(msg)))
	}
	return fmt.Errorf("event %d to host %s: agent answered %s: %s", ev.ID, e.Host, resp.Status, bytes.TrimSpace(msg))
}
