package filters

import (
	"context"
	"slices"

	"github.com/unisched/unisched/bridge/scheduler"
)

const affinityName = "affinity"

// Affinity applies the hard server group policies. affinity: once the
// group runs somewhere, only its hosts qualify. anti-affinity: a host may
// hold at most MaxPerHost members (1 by default), the new one included.
// Members come and go, so a rejection is NoFitNow. The soft policies are
// the soft_affinity weigher's.
type Affinity struct{}

var _ scheduler.Filter = (*Affinity)(nil)

// NewAffinity takes no arguments.
func NewAffinity(args scheduler.Args, _ scheduler.Thresholds) (scheduler.Filter, error) {
	if err := args.Only(); err != nil {
		return nil, err
	}
	return &Affinity{}, nil
}

func (*Affinity) Name() string { return affinityName }

func (*Affinity) Filter(_ context.Context, req *scheduler.Request, h *scheduler.HostState) scheduler.Verdict {
	g := req.Group
	if g == nil {
		return scheduler.Passed
	}
	switch g.Policy {
	case scheduler.Affinity:
		if len(g.Hosts) == 0 || slices.Contains(g.Hosts, h.Name) {
			return scheduler.Passed
		}
		return scheduler.Reject(false, scheduler.ReasonAffinity)
	case scheduler.AntiAffinity:
		limit := max(1, g.MaxPerHost)
		members := h.GroupMembers(g.ID)
		if members == 0 && slices.Contains(g.Hosts, h.Name) {
			members = 1
		}
		if members+1 > limit {
			return scheduler.Reject(false, scheduler.ReasonAntiAffinity)
		}
	}
	return scheduler.Passed
}
