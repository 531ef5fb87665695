package outbox

import (
	"context"
	"fmt"
	"strings"
)

// Router is a Deliverer that hands each event to the Deliverer of the
// longest topic prefix it matches, so that one relay (one leader, one
// order per key) feeds every consumer: the host agents, the notification
// bus. An event no route matches is discarded.
type Router struct {
	routes []route
}

type route struct {
	prefix string
	d      Deliverer
}

// Handle routes the topics starting with prefix ("" matches every topic)
// to d.
func (r *Router) Handle(prefix string, d Deliverer) {
	r.routes = append(r.routes, route{prefix: prefix, d: d})
}

// Deliver delivers ev with its route's Deliverer.
func (r *Router) Deliver(ctx context.Context, ev Event) error {
	var best *route
	for i := range r.routes {
		rt := &r.routes[i]
		if strings.HasPrefix(ev.Topic, rt.prefix) && (best == nil || len(rt.prefix) > len(best.prefix)) {
			best = rt
		}
	}
	if best == nil {
		return Discard(fmt.Errorf("event %d: no deliverer for topic %q", ev.ID, ev.Topic))
	}
	return best.d.Deliver(ctx, ev)
}
