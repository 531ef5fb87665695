package bridge

import (
	"errors"

	"github.com/unisched/unisched/bridge/ledger"
	"github.com/unisched/unisched/placement/claims"
)

// Why a coordinator claim lost its race (Options.ClaimConflict): the
// create re-plans after each, and gives up with no valid host after
// Options.ClaimAttempts (ClaimExhausted).
const (
	// ClaimLostCapacity: Placement's inventory no longer fits (another
	// claim took it first).
	ClaimLostCapacity = "capacity"
	// ClaimLostCPUs: the pCPUs planned were pinned by another workload.
	ClaimLostCPUs = "cpus"
	// ClaimLostGeneration: a generation race or deadlock in the claim.
	ClaimLostGeneration = "generation"
	// ClaimLostHost: the host no longer fits on re-plan (cell memory,
	// NUMA placement).
	ClaimLostHost = "host"
	// ClaimExhausted: every attempt of one create lost.
	ClaimExhausted = "exhausted"
)

// ClaimConflictReasons are every reason ClaimConflict is given.
var ClaimConflictReasons = []string{ClaimLostCapacity, ClaimLostCPUs, ClaimLostGeneration, ClaimLostHost, ClaimExhausted}

func lostReason(err error) string {
	switch {
	case errors.Is(err, claims.ErrInvalidInventory), errors.Is(err, claims.ErrProviderNotFound):
		return ClaimLostCapacity
	case errors.Is(err, ledger.ErrCPUTaken):
		return ClaimLostCPUs
	case claims.Retryable(err):
		return ClaimLostGeneration
	}
	return ClaimLostHost
}

func (c *Coordinator) claimConflict(reason string) {
	if c.opts.ClaimConflict != nil {
		c.opts.ClaimConflict(reason)
	}
}
