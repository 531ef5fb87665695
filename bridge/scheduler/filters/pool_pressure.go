package filters

import (
	"context"

	"github.com/unisched/unisched/bridge/scheduler"
)

const poolPressureName = "pool_pressure"

// PoolPressure applies thresholds 1 and 2 (see scheduler.Thresholds): a
// shared request avoids hosts whose dedicated pool is more than
// dedicated_usage pinned, a dedicated request avoids hosts whose shared pool
// is more than shared_load loaded. It never rejects: an avoided host is
// still used when no other host passes.
type PoolPressure struct {
	dedicatedUsage, sharedLoad float64
}

var _ scheduler.Filter = (*PoolPressure)(nil)

// NewPoolPressure takes no arguments; its thresholds are the
// configuration's thresholds section.
func NewPoolPressure(args scheduler.Args, th scheduler.Thresholds) (scheduler.Filter, error) {
	if err := args.Only(); err != nil {
		return nil, err
	}
	if err := th.Validate(); err != nil {
		return nil, err
	}
	return &PoolPressure{dedicatedUsage: th.DedicatedUsage, sharedLoad: th.SharedLoad}, nil
}

func (*PoolPressure) Name() string { return poolPressureName }

func (f *PoolPressure) Filter(_ context.Context, req *scheduler.Request, h *scheduler.HostState) scheduler.Verdict {
	if req.Dedicated() {
		if scheduler.SharedLoad(h) > f.sharedLoad {
			return scheduler.Avoided(scheduler.ReasonSharedPressure)
		}
		return scheduler.Passed
	}
	if scheduler.DedicatedUsage(h) > f.dedicatedUsage {
		return scheduler.Avoided(scheduler.ReasonDedicatedPressure)
	}
	return scheduler.Passed
}
