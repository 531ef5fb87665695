package metrics

import "github.com/prometheus/client_golang/prometheus"

// ClaimConflicts counts the coordinator's claims that lost a race, by
// reason (bridge.ClaimConflictReasons; this package is below the bridge
// and does not import it): the container API's and Nova's (nova.candidates)
// scheduling path. Placement API writes have their own counter
// (unisched_placement_allocation_conflicts_total).
type ClaimConflicts struct {
	c *prometheus.CounterVec
}

// claimReasons are bridge.ClaimConflictReasons, created at zero.
var claimReasons = []string{"capacity", "cpus", "generation", "host", "exhausted"}

// NewClaimConflicts registers unisched_bridge_claim_conflicts_total on reg.
func NewClaimConflicts(reg prometheus.Registerer) (*ClaimConflicts, error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "unisched_bridge_claim_conflicts_total",
		Help: "Coordinator claims that lost a race and were re-planned, by reason (capacity, cpus, generation, host), and creates whose every attempt lost (exhausted: no valid host).",
	}, []string{"reason"})
	if err := Register(reg, "the claim conflict counter", c); err != nil {
		return nil, err
	}
	Touch(c, claimReasons...)
	return &ClaimConflicts{c: c}, nil
}

// Conflict counts one (bridge.Options.ClaimConflict).
func (c *ClaimConflicts) Conflict(reason string) { c.c.WithLabelValues(reason).Inc() }
