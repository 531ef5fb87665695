package bridge

import (
	"errors"
	"fmt"
	"testing"

	"github.com/unisched/unisched/bridge/ledger"
	"github.com/unisched/unisched/placement/claims"
	"github.com/unisched/unisched/placement/store"
)

func TestLostReason(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("%w: %w", errLostRace, &claims.InvalidInventoryError{Msg: "no"}), ClaimLostCapacity},
		{fmt.Errorf("%w: %w", errLostRace, ledger.ErrCPUTaken), ClaimLostCPUs},
		{fmt.Errorf("%w: %w", errLostRace, store.ErrConcurrentUpdate), ClaimLostGeneration},
		{fmt.Errorf("%w: cell 0 of host h has 10 MB free", errLostRace), ClaimLostHost},
		{errors.New("anything else"), ClaimLostHost},
	} {
		if got := lostReason(tc.err); got != tc.want {
			t.Errorf("lostReason(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
