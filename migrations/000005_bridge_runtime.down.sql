ALTER TABLE bridge_hosts
    DROP COLUMN IF EXISTS architecture,
    DROP COLUMN IF EXISTS kernel_version,
    DROP COLUMN IF EXISTS os,
    DROP COLUMN IF EXISTS agent_url;
ALTER TABLE bridge_workloads
    DROP COLUMN IF EXISTS runtime_at,
    DROP COLUMN IF EXISTS exit_code,
    DROP COLUMN IF EXISTS container_id,
    DROP COLUMN IF EXISTS runtime_reason,
    DROP COLUMN IF EXISTS runtime_status,
    DROP COLUMN IF EXISTS container;
