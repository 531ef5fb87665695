package metrics

import "github.com/prometheus/client_golang/prometheus"

// Leadership is the gauge unisched_leader{role}: 1 on the replica that
// holds a role's lock (relay, reconciler), 0 on the others, so that a
// dashboard summing it over replicas sees exactly one leader per role.
type Leadership struct {
	g *prometheus.GaugeVec
}

// NewLeadership registers unisched_leader on reg.
func NewLeadership(reg prometheus.Registerer) (*Leadership, error) {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "unisched_leader",
		Help: "1 when this replica holds the role's PostgreSQL advisory lock (relay, reconciler), else 0.",
	}, []string{"role"})
	if err := reg.Register(g); err != nil {
		return nil, err
	}
	return &Leadership{g: g}, nil
}

// Observer sets role's gauge to 0 now and returns the callback a leader
// calls when it starts (true) and stops (false) leading. A nil Leadership
// observes nothing.
func (l *Leadership) Observer(role string) func(leading bool) {
	if l == nil {
		return nil
	}
	g := l.g.WithLabelValues(role)
	g.Set(0)
	return func(leading bool) {
		if leading {
			g.Set(1)
		} else {
			g.Set(0)
		}
	}
}
