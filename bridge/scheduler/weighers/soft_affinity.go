package weighers

import (
	"context"

	"github.com/unisched/unisched/bridge/scheduler"
)

const softAffinityName = "soft_affinity"

// SoftAffinity applies the soft server group policies, as Nova's
// ServerGroupSoftAffinityWeigher and ...AntiAffinityWeigher: soft-affinity
// prefers hosts with more members of the group, soft-anti-affinity hosts
// with fewer. Other requests score 0 everywhere, which leaves the order to
// the other weighers.
type SoftAffinity struct{}

var _ scheduler.Weigher = (*SoftAffinity)(nil)

// NewSoftAffinity takes no arguments.
func NewSoftAffinity(args scheduler.Args, _ scheduler.Thresholds) (scheduler.Weigher, error) {
	if err := args.Only(); err != nil {
		return nil, err
	}
	return &SoftAffinity{}, nil
}

func (*SoftAffinity) Name() string { return softAffinityName }

func (*SoftAffinity) Weigh(_ context.Context, req *scheduler.Request, h *scheduler.HostState) float64 {
	g := req.Group
	if g == nil {
		return 0
	}
	switch g.Policy {
	case scheduler.SoftAffinity:
		return float64(h.GroupMembers(g.ID))
	case scheduler.SoftAntiAffinity:
		return -float64(h.GroupMembers(g.ID))
	}
	return 0
}
