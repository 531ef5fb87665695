package weighers

import (
	"context"

	"github.com/unisched/unisched/bridge/scheduler"
)

const spreadName = "spread"

// Spread prefers the least used host (scheduler.Utilisation, the request
// included), keeping headroom everywhere.
type Spread struct{}

var _ scheduler.Weigher = (*Spread)(nil)

// NewSpread takes no arguments.
func NewSpread(args scheduler.Args, _ scheduler.Thresholds) (scheduler.Weigher, error) {
	if err := args.Only(); err != nil {
		return nil, err
	}
	return &Spread{}, nil
}

func (*Spread) Name() string { return spreadName }

func (*Spread) Weigh(_ context.Context, req *scheduler.Request, h *scheduler.HostState) float64 {
	return -scheduler.Utilisation(h, req)
}
