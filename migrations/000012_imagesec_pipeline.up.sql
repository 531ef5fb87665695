-- The image security server's pipeline (issue 6): what collect saw in
-- Glance, the long-running jobs (collect, inspect, upgrade, publish) with
-- their progress, and the lineage of patched images published back.

-- One row per Glance image collect has looked at: its checksum when last
-- handled, so an unchanged image is neither downloaded nor inspected again
-- (a failed one neither, until it changes).
CREATE TABLE imagesec_glance_images (
    glance_id     text PRIMARY KEY,
    name          text NOT NULL,
    disk_format   text NOT NULL,
    -- Glance's multihash (os_hash_algo/os_hash_value), else "md5" and the
    -- legacy checksum.
    hash_algo     text NOT NULL,
    hash_value    text NOT NULL,
    size          bigint NOT NULL CHECK (size >= 0),
    -- "inspected" or "failed" (error says why).
    status        text NOT NULL,
    error         text NOT NULL DEFAULT '',
    -- The stored inspection (NULL when it failed).
    image_id      bigint REFERENCES imagesec_images (id) ON DELETE SET NULL,
    collected_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE imagesec_jobs (
    id             bigserial PRIMARY KEY,
    kind           text NOT NULL CHECK (kind IN ('collect', 'inspect', 'upgrade', 'publish')),
    state          text NOT NULL CHECK (state IN ('queued', 'running', 'succeeded', 'failed')),
    -- The image the job works on (imagesec_images.id) and the one it made.
    image_id       bigint,
    result_image   bigint,
    -- A Glance id the job made or read (publish: the new image).
    glance_id      text NOT NULL DEFAULT '',
    -- The request as given (options), and what it produced.
    params         jsonb NOT NULL DEFAULT '{}',
    result         jsonb NOT NULL DEFAULT '{}',
    -- Progress: the current step ("download", "inspect", ...), a message,
    -- bytes done of bytes total (0 total: unknown), steps done of total.
    step           text NOT NULL DEFAULT '',
    message        text NOT NULL DEFAULT '',
    bytes_done     bigint NOT NULL DEFAULT 0,
    bytes_total    bigint NOT NULL DEFAULT 0,
    steps_done     integer NOT NULL DEFAULT 0,
    steps_total    integer NOT NULL DEFAULT 0,
    error          text NOT NULL DEFAULT '',
    -- Which runner holds the job, and when it last said so: a job whose
    -- runner went silent was interrupted and is marked failed.
    runner         text NOT NULL DEFAULT '',
    heartbeat_at   timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    started_at     timestamptz,
    finished_at    timestamptz,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX imagesec_jobs_active ON imagesec_jobs (state) WHERE state IN ('queued', 'running');

-- A patched image published to Glance: its parent, its family and what
-- was fixed. The coordinator resolves a family to its newest patched image.
CREATE TABLE imagesec_lineage (
    glance_id        text PRIMARY KEY,
    parent_glance_id text NOT NULL,
    family           text NOT NULL,
    name             text NOT NULL,
    -- imagesec_images rows of the patched file and of its parent, if known.
    image_id         bigint REFERENCES imagesec_images (id) ON DELETE SET NULL,
    parent_image_id  bigint REFERENCES imagesec_images (id) ON DELETE SET NULL,
    -- [{"name", "from", "to"}] and advisory ids.
    fixes            jsonb NOT NULL DEFAULT '[]',
    advisories       text[] NOT NULL DEFAULT '{}',
    parent_hidden    boolean NOT NULL DEFAULT false,
    patched_at       timestamptz NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX imagesec_lineage_family ON imagesec_lineage (family, patched_at DESC);
