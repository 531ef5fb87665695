// Package filters holds the scheduler's built-in filters, one per file.
// Each decides for one host from the Request and the HostState alone and
// keeps no state, so the engine may run it on many hosts at once.
package filters

import "github.com/unisched/unisched/bridge/scheduler"

// Register adds every built-in filter to the registry.
func Register(r *scheduler.Registry) error {
	for _, f := range []struct {
		name string
		mk   scheduler.FilterFactory
	}{
		{availabilityZoneName, NewAvailabilityZone},
		{aggregatesName, NewAggregates},
		{traitsName, NewTraits},
		{affinityName, NewAffinity},
		{resourcesName, NewResources},
		{numaName, NewNUMA},
		{poolPressureName, NewPoolPressure},
	} {
		if err := r.RegisterFilter(f.name, f.mk); err != nil {
			return err
		}
	}
	return nil
}
