-- Reconciliation (ARCHITECTURE.md section 6): every run of the reconciler
-- is kept with what it found and what it did, so an operator (and the
-- fault tests) can ask "did the four views agree after recovery" after the
-- fact. Named bridge_* so the test reset empties them with the ledger.

CREATE TABLE bridge_reconcile_runs (
    id           bigserial PRIMARY KEY,
    -- who ran it: host name and process id of the leader.
    leader       text NOT NULL,
    dry_run      boolean NOT NULL DEFAULT false,
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz,
    -- per divergence kind: how many were found ({"allocation_leak": 2, ...}).
    counts       jsonb NOT NULL DEFAULT '{}',
    repaired     integer NOT NULL DEFAULT 0,
    failed       integer NOT NULL DEFAULT 0,
    -- sources that could not be read (Nova's servers, ...): nothing that
    -- depends on them was repaired.
    errors       jsonb NOT NULL DEFAULT '[]',
    -- what each view held: workloads, consumers, servers, hosts.
    stats        jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX bridge_reconcile_runs_started_idx ON bridge_reconcile_runs (started_at);

CREATE TABLE bridge_reconcile_divergences (
    id             bigserial PRIMARY KEY,
    run_id         bigint NOT NULL REFERENCES bridge_reconcile_runs (id) ON DELETE CASCADE,
    kind           text NOT NULL,
    -- the workload / Placement consumer / Nova server (one uuid names all
    -- three when they are the same thing).
    workload_id    uuid,
    consumer_uuid  uuid,
    server_id      text,
    host           text,
    provider_uuid  uuid,
    detail         text NOT NULL DEFAULT '',
    -- what the reconciler did (or would do, dry run): delete_allocation,
    -- release_delete, create_vm, resend_delete, reap, none.
    action         text NOT NULL,
    -- repaired, dry_run, skipped, resolved (gone by the time of the
    -- repair), failed.
    result         text NOT NULL,
    error          text NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX bridge_reconcile_divergences_run_idx ON bridge_reconcile_divergences (run_id);
