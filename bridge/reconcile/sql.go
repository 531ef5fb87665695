package reconcile

// Every statement of the reconciler: its read-only queries of Placement's
// and the ledger's tables (one place, so a schema change there has one
// reader to fix here) and its own tables (migration 000009).
const (
	// The advisory lock one reconciler of a database holds while it runs.
	sqlTryLock = `SELECT pg_try_advisory_lock($1)`
	sqlUnlock  = `SELECT pg_advisory_unlock($1)`

	sqlNow = `SELECT now()`

	sqlHosts = `SELECT name, provider_uuid::text FROM bridge_hosts ORDER BY name`

	// What the ledger's workloads hold besides ledger.Workload: whether a
	// container is recorded and what its agent last reported of it.
	sqlWorkloadExtras = `SELECT id::text, container IS NOT NULL, runtime_status FROM bridge_workloads`

	// Every allocation of a consumer that touches a ledger host's provider
	// tree or is a ledger workload, with its root provider and when the
	// consumer or the allocation last changed.
	sqlAllocations = `SELECT c.uuid::text, COALESCE(ct.name, ''), c.generation, rp.uuid::text, root.uuid::text,
	rc.name, a.used,
	GREATEST(c.created_at, COALESCE(c.updated_at, c.created_at), a.created_at, COALESCE(a.updated_at, a.created_at))
FROM allocations a
JOIN consumers c ON c.id = a.consumer_id
LEFT JOIN consumer_types ct ON ct.id = c.consumer_type_id
JOIN resource_providers rp ON rp.id = a.resource_provider_id
JOIN resource_providers root ON root.id = COALESCE(rp.root_provider_id, rp.id)
JOIN resource_classes rc ON rc.id = a.resource_class_id
WHERE root.uuid IN (SELECT provider_uuid FROM bridge_hosts)
	OR c.uuid IN (SELECT id FROM bridge_workloads)
ORDER BY c.uuid, a.id`

	// A consumer's generation and whether a ledger workload has its id, read
	// again under the consumer's lock before its allocations are deleted.
	sqlConsumerState = `SELECT c.generation,
	EXISTS (SELECT 1 FROM bridge_workloads w WHERE w.id = c.uuid AND w.host_id IS NOT NULL)
FROM consumers c WHERE c.uuid = $1 FOR UPDATE`

	sqlConsumerHasAllocations = `SELECT EXISTS (SELECT 1 FROM allocations a JOIN consumers c ON c.id = a.consumer_id
	WHERE c.uuid = $1)`

	sqlMarkResent = `UPDATE bridge_workloads SET status_reason = $2, updated_at = now() WHERE id = $1`

	sqlInsertRun = `INSERT INTO bridge_reconcile_runs (leader, dry_run, started_at) VALUES ($1, $2, $3) RETURNING id`

	sqlFinishRun = `UPDATE bridge_reconcile_runs SET finished_at = $2, counts = $3, repaired = $4, failed = $5,
	errors = $6, stats = $7 WHERE id = $1`

	sqlInsertDivergence = `INSERT INTO bridge_reconcile_divergences (run_id, kind, workload_id, consumer_uuid, server_id,
	host, provider_uuid, detail, action, result, error)
VALUES ($1, $2, NULLIF($3, '')::uuid, NULLIF($4, '')::uuid, NULLIF($5, ''), NULLIF($6, ''), NULLIF($7, '')::uuid,
	$8, $9, $10, $11)`

	sqlSelectRun = `SELECT id, leader, dry_run, started_at, finished_at, counts, repaired, failed, errors, stats
FROM bridge_reconcile_runs`

	// The newest finished run (a run in progress has no report yet).
	sqlLatestRunID = `SELECT id FROM bridge_reconcile_runs WHERE finished_at IS NOT NULL ORDER BY id DESC LIMIT 1`

	sqlSelectDivergences = `SELECT kind, COALESCE(workload_id::text, ''), COALESCE(consumer_uuid::text, ''),
	COALESCE(server_id, ''), COALESCE(host, ''), COALESCE(provider_uuid::text, ''), detail, action, result, error
FROM bridge_reconcile_divergences WHERE run_id = $1 ORDER BY id`

	sqlTrimRuns = `DELETE FROM bridge_reconcile_runs WHERE started_at < $1`
)
