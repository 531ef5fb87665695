package weighers

import (
	"context"

	"github.com/unisched/unisched/bridge/scheduler"
)

const packName = "pack"

// Pack prefers the most used host that still fits (scheduler.Utilisation,
// the request included), keeping whole hosts free for large workloads.
type Pack struct{}

var _ scheduler.Weigher = (*Pack)(nil)

// NewPack takes no arguments.
func NewPack(args scheduler.Args, _ scheduler.Thresholds) (scheduler.Weigher, error) {
	if err := args.Only(); err != nil {
		return nil, err
	}
	return &Pack{}, nil
}

func (*Pack) Name() string { return packName }

func (*Pack) Weigh(_ context.Context, req *scheduler.Request, h *scheduler.HostState) float64 {
	return scheduler.Utilisation(h, req)
}
