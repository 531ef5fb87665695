-- What the container side adds to the ledger: the container a workload
-- should be on its host (the agent's desired state, agentproto.Container as
-- JSON), what its agent last observed of it, and where each host's agent
-- listens for the relay's events.
ALTER TABLE bridge_workloads
    ADD COLUMN container       jsonb,
    ADD COLUMN runtime_status  text NOT NULL DEFAULT '',
    ADD COLUMN runtime_reason  text NOT NULL DEFAULT '',
    ADD COLUMN container_id    text NOT NULL DEFAULT '',
    ADD COLUMN exit_code       integer,
    -- When the agent observed the reported state: an older report arriving
    -- late does not overwrite a newer one.
    ADD COLUMN runtime_at      timestamptz;

ALTER TABLE bridge_hosts
    ADD COLUMN agent_url       text NOT NULL DEFAULT '',
    ADD COLUMN os              text NOT NULL DEFAULT '',
    ADD COLUMN kernel_version  text NOT NULL DEFAULT '',
    ADD COLUMN architecture    text NOT NULL DEFAULT '';
