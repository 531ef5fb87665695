package filters

import (
	"context"
	"fmt"

	"github.com/unisched/unisched/bridge/scheduler"
)

const availabilityZoneName = "availability_zone"

// AvailabilityZone keeps the hosts of the requested availability zone. A
// host outside any zone counts as being in the default zone, as Nova's
// default_availability_zone makes it.
type AvailabilityZone struct {
	defaultZone string
}

var _ scheduler.Filter = (*AvailabilityZone)(nil)

// NewAvailabilityZone takes default_zone (default "nova").
func NewAvailabilityZone(args scheduler.Args, _ scheduler.Thresholds) (scheduler.Filter, error) {
	if err := args.Only("default_zone"); err != nil {
		return nil, err
	}
	zone := "nova"
	if v, ok := args["default_zone"]; ok {
		s, ok := v.(string)
		if !ok || s == "" {
			return nil, fmt.Errorf("argument default_zone: %v is not a non-empty string", v)
		}
		zone = s
	}
	return &AvailabilityZone{defaultZone: zone}, nil
}

func (*AvailabilityZone) Name() string { return availabilityZoneName }

func (f *AvailabilityZone) Filter(_ context.Context, req *scheduler.Request, h *scheduler.HostState) scheduler.Verdict {
	if req.AvailabilityZone == "" {
		return scheduler.Passed
	}
	zone := h.AvailabilityZone
	if zone == "" {
		zone = f.defaultZone
	}
	if zone == req.AvailabilityZone {
		return scheduler.Passed
	}
	return scheduler.Reject(true, scheduler.ReasonAvailabilityZone)
}
