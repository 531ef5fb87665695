// Package weighers holds the scheduler's built-in weighers, one per file.
// Each returns a raw score where more is better; the engine normalizes it
// over the candidates and applies the configured weight.
package weighers

import "github.com/unisched/unisched/bridge/scheduler"

// Register adds every built-in weigher to the registry.
func Register(r *scheduler.Registry) error {
	for _, w := range []struct {
		name string
		mk   scheduler.WeigherFactory
	}{
		{spreadName, NewSpread},
		{packName, NewPack},
		{balanceName, NewBalance},
		{softAffinityName, NewSoftAffinity},
	} {
		if err := r.RegisterWeigher(w.name, w.mk); err != nil {
			return err
		}
	}
	return nil
}
