package scheduler

// Utilisation is the host's mean usage ratio over the resource classes the
// request asks for, counting the request as placed (0 = empty, 1 = full).
// Classes the host lacks are skipped: the resources filter rejects those
// hosts before any weigher runs.
func Utilisation(h *HostState, req *Request) float64 {
	sum, n := 0.0, 0
	for _, rc := range ResourceClasses {
		amount := req.Resources.Amount(rc)
		if amount == 0 {
			continue
		}
		inv, ok := h.Inventories[rc]
		if !ok {
			continue
		}
		c := inv.Capacity()
		if c <= 0 {
			continue
		}
		sum += min(1, float64(inv.Used+amount)/float64(c))
		n++
	}
	if n == 0 {
		return 0
	}
	return sum / float64(n)
}

// DedicatedUsage is the share of the host's dedicated pool already pinned:
// PCPU usage over PCPU capacity when Placement has a PCPU inventory, else
// pinned pCPUs over the dedicated set. 0 for a host without a pool.
func DedicatedUsage(h *HostState) float64 {
	if inv, ok := h.Inventories[PCPU]; ok && inv.Capacity() > 0 {
		return float64(inv.Used) / float64(inv.Capacity())
	}
	if n := h.DedicatedCPUs.Size(); n > 0 {
		return float64(h.DedicatedCPUs.Intersection(h.d.pinned).Size()) / float64(n)
	}
	return 0
}

// SharedLoad is the share of the host's shared pool capacity in use: VCPU
// usage over VCPU capacity (allocation ratio included). 0 for a host
// without a VCPU inventory.
func SharedLoad(h *HostState) float64 {
	if inv, ok := h.Inventories[VCPU]; ok && inv.Capacity() > 0 {
		return float64(inv.Used) / float64(inv.Capacity())
	}
	return 0
}
