package filters

import (
	"context"

	"github.com/unisched/unisched/bridge/scheduler"
)

const resourcesName = "resources"

// Resources checks every requested class against the host's inventory as
// Placement would: capacity is (total - reserved) * allocation_ratio, and
// one allocation must respect min_unit, max_unit and step_size. A request
// larger than the capacity (or outside the units) never fits; one that
// exceeds what is free fits once usage drops.
type Resources struct{}

var _ scheduler.Filter = (*Resources)(nil)

// NewResources takes no arguments.
func NewResources(args scheduler.Args, _ scheduler.Thresholds) (scheduler.Filter, error) {
	if err := args.Only(); err != nil {
		return nil, err
	}
	return &Resources{}, nil
}

func (*Resources) Name() string { return resourcesName }

func (*Resources) Filter(_ context.Context, req *scheduler.Request, h *scheduler.HostState) scheduler.Verdict {
	for _, rc := range scheduler.ResourceClasses {
		n := req.Resources.Amount(rc)
		if n == 0 {
			continue
		}
		inv := h.Inventories[rc]
		capacity := inv.Capacity()
		switch {
		case n > capacity:
			return scheduler.Reject(true, shortOf(rc))
		case !inv.AllowsAmount(n):
			return scheduler.Reject(true, scheduler.ReasonUnit)
		case inv.Used+n > capacity:
			return scheduler.Reject(false, shortOf(rc))
		}
	}
	return scheduler.Passed
}

func shortOf(rc scheduler.ResourceClass) scheduler.Reason {
	switch rc {
	case scheduler.VCPU:
		return scheduler.ReasonVCPU
	case scheduler.PCPU:
		return scheduler.ReasonPCPU
	case scheduler.MemoryMB:
		return scheduler.ReasonMemoryMB
	}
	return scheduler.ReasonDiskGB
}
