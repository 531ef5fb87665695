package weighers

import (
	"context"

	"github.com/unisched/unisched/bridge/scheduler"
)

const balanceName = "balance"

// Balance applies threshold 3 (scheduler.Thresholds.PackUntil): it packs
// while hosts stay at or below the threshold and spreads beyond it. With u
// the host's utilisation with the request placed, the score is 1+u for
// u <= T3 and 1-u above, so every host that stays under the threshold
// beats every host pushed past it; among the first the fullest wins (pack),
// among the second the emptiest (spread).
type Balance struct {
	packUntil float64
}

var _ scheduler.Weigher = (*Balance)(nil)

// NewBalance takes no arguments; its threshold is the configuration's
// thresholds.pack_until.
func NewBalance(args scheduler.Args, th scheduler.Thresholds) (scheduler.Weigher, error) {
	if err := args.Only(); err != nil {
		return nil, err
	}
	if err := th.Validate(); err != nil {
		return nil, err
	}
	return &Balance{packUntil: th.PackUntil}, nil
}

func (*Balance) Name() string { return balanceName }

func (b *Balance) Weigh(_ context.Context, req *scheduler.Request, h *scheduler.HostState) float64 {
	u := scheduler.Utilisation(h, req)
	if u <= b.packUntil {
		return 1 + u
	}
	return 1 - u
}
