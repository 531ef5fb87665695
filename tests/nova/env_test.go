package nova

import "github.com/unisched/unisched/tests/novaharness"

// computes are the environment's hosts: compute-1 one NUMA cell of 2
// shared CPUs and 9 GiB, compute-2 two cells of 2 shared + 2 dedicated
// CPUs and 8 GiB each (the lab's "Dedicated-CPU VMs" layout: PCPU ids
// 2-3 and 6-7). Both report their cells, so the agents' topologies are
// Nova's own. Their driver is Nova's FakeLiveMigrateDriver: the fake
// driver whose live migration runs for 5 s, or until aborted or forced to
// complete, so that a test sees it in progress (TestMigrations).
func computes() []novaharness.ComputeSpec {
	const driver = "fake.FakeLiveMigrateDriver"
	return []novaharness.ComputeSpec{
		{Host: "compute-1", Driver: driver, VCPUs: 2, NUMACells: 1, MemoryMB: 9216},
		{Host: "compute-2", Driver: driver, VCPUs: 4, PCPUs: 4, NUMACells: 2, MemoryMB: 16384},
	}
}

// capacityConf makes memory the measure of capacity: no reserved memory,
// no overcommit. With 512 MB workloads compute-1 takes 18 and compute-2
// 32 (16 per cell): 50 in total (the concurrency scenario's capacity).
const capacityConf = `
[DEFAULT]
ram_allocation_ratio = 1.0
reserved_host_memory_mb = 0
`

// capacity512 is how many 512 MB workloads fit in the environment.
const capacity512 = 50
