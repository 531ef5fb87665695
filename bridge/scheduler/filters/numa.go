package filters

import (
	"context"

	"github.com/unisched/unisched/bridge/scheduler"
)

const numaName = "numa"

// NUMA applies the CPU policy and the NUMA needs: a dedicated request needs
// enough free pCPUs of the dedicated pool and enough free memory inside one
// cell per guest cell; a shared one needs a shared pool not wholly pinned
// (and, with NUMA needs, memory in distinct cells). It runs the same rules
// as scheduler.Place, without choosing the CPUs.
type NUMA struct{}

var _ scheduler.Filter = (*NUMA)(nil)

// NewNUMA takes no arguments.
func NewNUMA(args scheduler.Args, _ scheduler.Thresholds) (scheduler.Filter, error) {
	if err := args.Only(); err != nil {
		return nil, err
	}
	return &NUMA{}, nil
}

func (*NUMA) Name() string { return numaName }

func (*NUMA) Filter(_ context.Context, req *scheduler.Request, h *scheduler.HostState) scheduler.Verdict {
	return scheduler.CheckPlacement(req, h)
}
