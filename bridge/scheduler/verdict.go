package scheduler

import "fmt"

// Code classifies a filter's answer for one host. NoFitNow and NeverFits
// are kept apart so that a NoValidHost can say whether waiting (or freeing
// capacity) could ever help: a request rejected only by NeverFits is one the
// caller may fail at once instead of retrying.
type Code uint8

const (
	// Pass: the host may take the request.
	Pass Code = iota
	// Avoid: the host may take the request, but it is used only when no
	// host passed every filter without an Avoid (the threshold filters).
	Avoid
	// NoFitNow: the host cannot take the request with its current usage,
	// but could once workloads leave it.
	NoFitNow
	// NeverFits: even an empty host of this shape cannot take the request.
	NeverFits
	// Error: the filter failed; the decision is aborted with Verdict.Err.
	Error
)

func (c Code) String() string {
	switch c {
	case Pass:
		return "pass"
	case Avoid:
		return "avoid"
	case NoFitNow:
		return "no-fit-now"
	case NeverFits:
		return "never-fits"
	case Error:
		return "error"
	}
	return fmt.Sprintf("code(%d)", uint8(c))
}

// Reason is a constant explaining a rejection or an Avoid. It is a constant
// (never a formatted string) so that counting rejections over thousands of
// hosts costs no allocation, and so that the dashboard can group by it.
type Reason string

// Reasons of the built-in filters.
const (
	ReasonNone Reason = ""

	ReasonVCPU     Reason = "not enough VCPU"
	ReasonPCPU     Reason = "not enough PCPU"
	ReasonMemoryMB Reason = "not enough MEMORY_MB"
	ReasonDiskGB   Reason = "not enough DISK_GB"
	ReasonUnit     Reason = "amount outside the inventory's min_unit, max_unit or step_size"

	ReasonNoNUMATopology  Reason = "host reports no NUMA topology"
	ReasonNoDedicatedPool Reason = "host has no dedicated CPU pool"
	ReasonTooFewCells     Reason = "host has fewer NUMA cells than requested"
	ReasonCellTooSmall    Reason = "no NUMA cell is large enough, even empty"
	ReasonCellCPUs        Reason = "no NUMA cell has enough free CPUs"
	ReasonCellMemory      Reason = "no NUMA cell has enough free memory"
	ReasonNoSharedPool    Reason = "host has no shared CPU pool"
	ReasonSharedPinned    Reason = "every CPU of the shared pool is pinned"

	ReasonMissingTrait   Reason = "host lacks a required trait"
	ReasonForbiddenTrait Reason = "host has a forbidden trait"

	ReasonNotInAggregate     Reason = "host is not in a required aggregate"
	ReasonForbiddenAggregate Reason = "host is in a forbidden aggregate"
	ReasonAvailabilityZone   Reason = "host is in another availability zone"

	ReasonAffinity     Reason = "the server group runs on other hosts (affinity)"
	ReasonAntiAffinity Reason = "the server group already runs on this host (anti-affinity)"

	ReasonDedicatedPressure Reason = "dedicated pool usage above threshold 1 (shared request)"
	ReasonSharedPressure    Reason = "shared pool load above threshold 2 (dedicated request)"
)

// Verdict is a filter's answer for one host.
type Verdict struct {
	Code   Code
	Reason Reason
	// Err is set with Code Error only.
	Err error
}

// Passed is the verdict of a host that may take the request.
var Passed = Verdict{Code: Pass}

// Reject returns a NoFitNow or NeverFits verdict; never is true when an
// empty host of the same shape would not fit either.
func Reject(never bool, reason Reason) Verdict {
	if never {
		return Verdict{Code: NeverFits, Reason: reason}
	}
	return Verdict{Code: NoFitNow, Reason: reason}
}

// Avoided returns an Avoid verdict.
func Avoided(reason Reason) Verdict { return Verdict{Code: Avoid, Reason: reason} }

// Failed returns an Error verdict, which aborts the decision.
func Failed(err error) Verdict { return Verdict{Code: Error, Err: err} }

// Rejected reports whether the host is out (NoFitNow, NeverFits or Error).
func (v Verdict) Rejected() bool { return v.Code >= NoFitNow }
