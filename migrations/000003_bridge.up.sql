-- The bridge's ledger and outbox (ARCHITECTURE.md section 6). Placement's
-- tables say how much of each resource class a host has and uses; these say
-- where on the host: NUMA cells, CPU ids and pools, and which workload holds
-- which pCPU. Hosts are linked to their resource provider by uuid, not by a
-- foreign key: Placement's providers come and go with Nova's computes (and
-- the test reset truncates them), while a host's topology stays.

CREATE TABLE bridge_hosts (
    id                 bigserial PRIMARY KEY,
    name               text NOT NULL UNIQUE,
    provider_uuid      uuid NOT NULL UNIQUE,
    availability_zone  text,
    -- Last time the host's agent said it was alive; NULL before it ever did.
    heartbeat_at       timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE bridge_host_cells (
    host_id    bigint NOT NULL REFERENCES bridge_hosts (id) ON DELETE CASCADE,
    cell       integer NOT NULL CHECK (cell >= 0),
    memory_mb  bigint NOT NULL CHECK (memory_mb >= 0),
    PRIMARY KEY (host_id, cell)
);

-- One row per logical CPU. core groups hyperthread siblings: it is the
-- lowest CPU id of the core, so a CPU whose core is itself has no sibling.
-- dedicated and shared are the pools (Nova's cpu_dedicated_set and
-- cpu_shared_set); they may overlap.
CREATE TABLE bridge_host_cpus (
    host_id    bigint NOT NULL,
    cpu        integer NOT NULL CHECK (cpu >= 0),
    cell       integer NOT NULL,
    core       integer NOT NULL CHECK (core >= 0),
    dedicated  boolean NOT NULL DEFAULT false,
    shared     boolean NOT NULL DEFAULT false,
    PRIMARY KEY (host_id, cpu),
    -- the target of bridge_workload_cpus' foreign key, which checks that a
    -- pinned CPU belongs to the cell the workload was given.
    UNIQUE (host_id, cell, cpu),
    FOREIGN KEY (host_id, cell) REFERENCES bridge_host_cells (host_id, cell) ON DELETE CASCADE
);

-- A workload is a VM or a container the bridge knows of. host_id is set
-- exactly while the workload holds resources on that host (claimed, running,
-- stopped, being deleted); releasing a claim clears it with the assignments.
CREATE TABLE bridge_workloads (
    id             uuid PRIMARY KEY,
    kind           text NOT NULL CHECK (kind IN ('vm', 'container')),
    name           text NOT NULL DEFAULT '',
    project_id     text NOT NULL,
    user_id        text NOT NULL,
    host_id        bigint REFERENCES bridge_hosts (id),
    state          text NOT NULL CHECK (state IN ('pending', 'claimed', 'active', 'stopped', 'error', 'deleting')),
    status_reason  text NOT NULL DEFAULT '',
    cpu_policy     text NOT NULL CHECK (cpu_policy IN ('shared', 'dedicated')),
    vcpu           bigint NOT NULL DEFAULT 0 CHECK (vcpu >= 0),
    pcpu           bigint NOT NULL DEFAULT 0 CHECK (pcpu >= 0),
    memory_mb      bigint NOT NULL DEFAULT 0 CHECK (memory_mb >= 0),
    disk_gb        bigint NOT NULL DEFAULT 0 CHECK (disk_gb >= 0),
    server_group   text,
    -- The request as the API received it (flavor, image, hints, ...).
    spec           jsonb NOT NULL DEFAULT '{}',
    -- The global request id (X-OpenStack-Request-ID) that created it: Nova's
    -- later allocation-candidates query is matched to the intent by it.
    request_id     text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    -- the target of the assignments' foreign keys, which tie them to the
    -- host the workload is on.
    UNIQUE (id, host_id)
);
CREATE INDEX bridge_workloads_host_idx ON bridge_workloads (host_id) WHERE host_id IS NOT NULL;
CREATE INDEX bridge_workloads_request_idx ON bridge_workloads (request_id) WHERE request_id IS NOT NULL;
CREATE INDEX bridge_workloads_project_idx ON bridge_workloads (project_id);

-- The share of a host NUMA cell a workload takes (memory; CPUs below).
CREATE TABLE bridge_workload_cells (
    workload_id  uuid NOT NULL,
    host_id      bigint NOT NULL,
    cell         integer NOT NULL,
    memory_mb    bigint NOT NULL DEFAULT 0 CHECK (memory_mb >= 0),
    PRIMARY KEY (workload_id, cell),
    FOREIGN KEY (workload_id, host_id) REFERENCES bridge_workloads (id, host_id) ON DELETE CASCADE,
    FOREIGN KEY (host_id, cell) REFERENCES bridge_host_cells (host_id, cell)
);
CREATE INDEX bridge_workload_cells_host_idx ON bridge_workload_cells (host_id, cell);

-- Pinned pCPUs. The primary key is the invariant the whole ledger exists
-- for: one pCPU of a host is held by at most one workload.
CREATE TABLE bridge_workload_cpus (
    host_id      bigint NOT NULL,
    cpu          integer NOT NULL,
    workload_id  uuid NOT NULL,
    cell         integer NOT NULL,
    PRIMARY KEY (host_id, cpu),
    FOREIGN KEY (workload_id, cell) REFERENCES bridge_workload_cells (workload_id, cell) ON DELETE CASCADE,
    FOREIGN KEY (host_id, cell, cpu) REFERENCES bridge_host_cpus (host_id, cell, cpu)
);
CREATE INDEX bridge_workload_cpus_workload_idx ON bridge_workload_cpus (workload_id);

-- The decision log: what the scheduler chose for a request and why the other
-- hosts were left out. Kept apart from workloads (no foreign key) so that it
-- outlives them: tests and operators ask "was it put on the host the bridge
-- chose" after the fact.
CREATE TABLE bridge_decisions (
    id             bigserial PRIMARY KEY,
    request_id     text NOT NULL,
    workload_id    uuid,
    kind           text NOT NULL,
    -- NULL host: no valid host; error says why.
    host           text,
    provider_uuid  uuid,
    score          double precision,
    placement      jsonb,
    alternates     jsonb NOT NULL DEFAULT '[]',
    -- hosts, examined, candidates, avoided, scored
    stats          jsonb NOT NULL DEFAULT '{}',
    -- per filter: name, no_fit_now, never_fits, avoid, reasons {reason: count}
    filters        jsonb NOT NULL DEFAULT '[]',
    error          text,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX bridge_decisions_request_idx ON bridge_decisions (request_id);
CREATE INDEX bridge_decisions_workload_idx ON bridge_decisions (workload_id) WHERE workload_id IS NOT NULL;
CREATE INDEX bridge_decisions_created_idx ON bridge_decisions (created_at);

-- The transactional outbox: every ledger change writes its event here in the
-- same transaction, and the relay delivers it at least once. Events of one
-- key (a workload id) are delivered in id order.
CREATE TABLE bridge_outbox (
    id               bigserial PRIMARY KEY,
    topic            text NOT NULL,
    key              text NOT NULL,
    payload          jsonb NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz,
    attempts         integer NOT NULL DEFAULT 0,
    last_error       text,
    -- set after a failed attempt (backoff); NULL: due now.
    next_attempt_at  timestamptz
);
CREATE INDEX bridge_outbox_pending_idx ON bridge_outbox (id) WHERE delivered_at IS NULL;
CREATE INDEX bridge_outbox_pending_key_idx ON bridge_outbox (key, id) WHERE delivered_at IS NULL;
CREATE INDEX bridge_outbox_delivered_idx ON bridge_outbox (delivered_at) WHERE delivered_at IS NOT NULL;
