package filters

import (
	"context"
	"slices"

	"github.com/unisched/unisched/bridge/scheduler"
)

const traitsName = "traits"

// Traits keeps the hosts that have every required trait and no forbidden
// one. Traits in always_forbidden (COMPUTE_STATUS_DISABLED by default, the
// trait Nova puts on a disabled compute service) are refused for every
// request; they are an operational state, so that rejection is NoFitNow.
type Traits struct {
	alwaysForbidden []string
}

var _ scheduler.Filter = (*Traits)(nil)

// NewTraits takes always_forbidden (a list of traits).
func NewTraits(args scheduler.Args, _ scheduler.Thresholds) (scheduler.Filter, error) {
	if err := args.Only("always_forbidden"); err != nil {
		return nil, err
	}
	af, err := args.Strings("always_forbidden", []string{"COMPUTE_STATUS_DISABLED"})
	if err != nil {
		return nil, err
	}
	return &Traits{alwaysForbidden: slices.Clone(af)}, nil
}

func (*Traits) Name() string { return traitsName }

func (f *Traits) Filter(_ context.Context, req *scheduler.Request, h *scheduler.HostState) scheduler.Verdict {
	for _, t := range req.RequiredTraits {
		if !h.HasTrait(t) {
			return scheduler.Reject(true, scheduler.ReasonMissingTrait)
		}
	}
	if slices.ContainsFunc(req.ForbiddenTraits, h.HasTrait) {
		return scheduler.Reject(true, scheduler.ReasonForbiddenTrait)
	}
	if slices.ContainsFunc(f.alwaysForbidden, h.HasTrait) {
		return scheduler.Reject(false, scheduler.ReasonForbiddenTrait)
	}
	return scheduler.Passed
}
