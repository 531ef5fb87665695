package bridge

// The coordinator's own SQL: the columns migration 000005 adds to the
// ledger's tables (the container spec, the observed runtime state, the
// agent's URL) and the few reads the ledger package has no function for.
// Everything else goes through ledger, outbox and placement/store.
const (
	sqlSetContainer = `UPDATE bridge_workloads SET container = $2, updated_at = now() WHERE id = $1`

	// The ledger records the move of a host's shared containers when its
	// free shared pool changes: their desired cpuset is the new pool.
	sqlSetSharedCpusets = `UPDATE bridge_workloads w
SET container = jsonb_set(w.container, '{cpuset_cpus}', to_jsonb($2::text)), updated_at = now()
FROM bridge_hosts h
WHERE h.id = w.host_id AND h.name = $1 AND w.cpu_policy = 'shared' AND w.container IS NOT NULL
	AND w.container->>'cpuset_cpus' IS DISTINCT FROM $2::text`

	sqlSetName = `UPDATE bridge_workloads SET name = $2, container = $3, updated_at = now() WHERE id = $1`

	sqlSetResources = `UPDATE bridge_workloads SET vcpu = $2, pcpu = $3, memory_mb = $4, container = $5,
	updated_at = now() WHERE id = $1`

	// The extra columns of a set of workloads.
	sqlExtras = `SELECT id::text, container, runtime_status, runtime_reason, container_id, exit_code
FROM bridge_workloads WHERE id = ANY($1::uuid[])`

	// A report older than the one recorded is ignored (a NULL on either
	// side never is).
	sqlSetRuntime = `UPDATE bridge_workloads SET runtime_status = $2, runtime_reason = $3,
	container_id = CASE WHEN $4 = '' THEN container_id ELSE $4 END, exit_code = $5, runtime_at = $6,
	updated_at = now()
WHERE id = $1 AND (runtime_at IS NULL OR $6::timestamptz IS NULL OR runtime_at <= $6::timestamptz)`

	sqlRuntimeAt = `SELECT runtime_at FROM bridge_workloads WHERE id = $1`

	// The assignments of a set of workloads, as ledger.GetAssignment reads
	// one.
	sqlAssignments = `SELECT wc.workload_id::text, h.name, wc.cell, wc.memory_mb,
	COALESCE((SELECT array_agg(cpu ORDER BY cpu) FROM bridge_workload_cpus p
		WHERE p.workload_id = wc.workload_id AND p.cell = wc.cell), '{}')
FROM bridge_workload_cells wc JOIN bridge_hosts h ON h.id = wc.host_id
WHERE wc.workload_id = ANY($1::uuid[]) ORDER BY wc.workload_id, wc.cell`

	// Memory of one host cell held by workloads other than $3.
	sqlCellMemoryUsed = `SELECT c.memory_mb, COALESCE((SELECT sum(wc.memory_mb) FROM bridge_workload_cells wc
	WHERE wc.host_id = c.host_id AND wc.cell = c.cell AND wc.workload_id <> $3::uuid), 0)::bigint
FROM bridge_host_cells c JOIN bridge_hosts h ON h.id = c.host_id WHERE h.name = $1 AND c.cell = $2`

	// The memory held in each cell of a host, and its pins by cell and
	// workload: the host's state as the scheduler sees it.
	sqlHostCellUse = `SELECT wc.cell, sum(wc.memory_mb)::bigint FROM bridge_workload_cells wc
JOIN bridge_hosts h ON h.id = wc.host_id WHERE h.name = $1 GROUP BY wc.cell`

	sqlHostPins = `SELECT p.cell, p.workload_id::text, array_agg(p.cpu ORDER BY p.cpu) FROM bridge_workload_cpus p
JOIN bridge_hosts h ON h.id = p.host_id WHERE h.name = $1 GROUP BY p.cell, p.workload_id ORDER BY p.cell, p.workload_id`

	// The type and action of the agent event a report answers, to tell which
	// action's end the report is.
	sqlAnsweredEvent = `SELECT COALESCE(payload->>'type', ''), COALESCE(payload->>'action', '')
FROM bridge_outbox WHERE id = $1 AND topic = $2`

	// A host's shared pool and its pCPUs pinned by any workload.
	sqlHostCPUs = `SELECT COALESCE(array_agg(c.cpu ORDER BY c.cpu) FILTER (WHERE c.shared), '{}'),
	COALESCE(array_agg(c.cpu ORDER BY c.cpu) FILTER (WHERE EXISTS (SELECT 1 FROM bridge_workload_cpus p
		WHERE p.host_id = c.host_id AND p.cpu = c.cpu)), '{}')
FROM bridge_host_cpus c JOIN bridge_hosts h ON h.id = c.host_id WHERE h.name = $1`

	sqlContainer = `SELECT container FROM bridge_workloads WHERE id = $1`

	// Locks providers in id order, as Placement's writes do, so that two
	// lockers cannot deadlock.
	sqlLockProviders = `SELECT id FROM resource_providers WHERE uuid = ANY($1::uuid[]) ORDER BY id FOR UPDATE`

	sqlHostAgent = `SELECT agent_url FROM bridge_hosts WHERE name = $1`

	sqlSetAgent = `UPDATE bridge_hosts SET agent_url = $2, os = $3, kernel_version = $4, architecture = $5,
	heartbeat_at = now() WHERE name = $1`

	// Per host: the agent's view of its machine, how many workloads hold
	// resources there and how many containers last reported running.
	sqlHostExtras = `SELECT h.name, h.agent_url, h.os, h.kernel_version, h.architecture,
	(SELECT count(*) FROM bridge_workloads w WHERE w.host_id = h.id),
	(SELECT count(*) FROM bridge_workloads w WHERE w.host_id = h.id AND w.kind = 'container'
		AND w.runtime_status = 'Running')
FROM bridge_hosts h`

	// The inventory and usage of the hosts' providers.
	sqlHostResources = `SELECT h.name, rc.name, i.total, i.reserved, i.allocation_ratio,
	COALESCE((SELECT sum(a.used) FROM allocations a
		WHERE a.resource_provider_id = i.resource_provider_id AND a.resource_class_id = i.resource_class_id), 0)::bigint
FROM bridge_hosts h JOIN resource_providers rp ON rp.uuid = h.provider_uuid
JOIN inventories i ON i.resource_provider_id = rp.id
JOIN resource_classes rc ON rc.id = i.resource_class_id`

	sqlLedgerHostNames = `SELECT name FROM bridge_hosts`

	sqlProviderByName = `SELECT uuid::text FROM resource_providers WHERE name = $1`

	sqlProviderHasTrait = `SELECT EXISTS (SELECT 1 FROM resource_provider_traits rpt JOIN traits t ON t.id = rpt.trait_id
	WHERE rpt.resource_provider_id = $1 AND t.name = $2)`
)
