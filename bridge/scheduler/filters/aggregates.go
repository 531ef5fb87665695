package filters

import (
	"context"
	"slices"

	"github.com/unisched/unisched/bridge/scheduler"
)

const aggregatesName = "aggregates"

// Aggregates applies member_of: the host must be in one aggregate of every
// MemberOf entry and in none of ForbiddenAggregates.
type Aggregates struct{}

var _ scheduler.Filter = (*Aggregates)(nil)

// NewAggregates takes no arguments.
func NewAggregates(args scheduler.Args, _ scheduler.Thresholds) (scheduler.Filter, error) {
	if err := args.Only(); err != nil {
		return nil, err
	}
	return &Aggregates{}, nil
}

func (*Aggregates) Name() string { return aggregatesName }

func (*Aggregates) Filter(_ context.Context, req *scheduler.Request, h *scheduler.HostState) scheduler.Verdict {
	for _, anyOf := range req.MemberOf {
		if !slices.ContainsFunc(anyOf, h.InAggregate) {
			return scheduler.Reject(true, scheduler.ReasonNotInAggregate)
		}
	}
	if slices.ContainsFunc(req.ForbiddenAggregates, h.InAggregate) {
		return scheduler.Reject(true, scheduler.ReasonForbiddenAggregate)
	}
	return scheduler.Passed
}
