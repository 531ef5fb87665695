-- What a user asked Nova for, seen by the Nova API proxy (novaext) before
-- nova-api got the request: the flavor (looked up with the user's own
-- token), image, hints and name of one POST /servers, under the request's
-- global id. The scheduler hook matches Nova's later GET
-- /allocation_candidates (which carries that id, or nova-api's own local id
-- recorded as an alias) to it. Rows are short-lived: serve trims old ones.
CREATE TABLE bridge_vm_intents (
    -- The X-OpenStack-Request-ID the proxy forwarded (the client's, or one
    -- it generated): "req-<lower-case uuid>".
    request_id       text PRIMARY KEY CHECK (request_id <> ''),
    project_id       text NOT NULL DEFAULT '',
    user_id          text NOT NULL DEFAULT '',
    -- flavorRef as the body gave it (an id or a URL); flavor is what Nova
    -- answered for it (id, name, vcpus, ram, disk, ephemeral, swap,
    -- extra_specs), NULL when the lookup failed.
    flavor_ref       text NOT NULL DEFAULT '',
    flavor           jsonb,
    image_ref        text NOT NULL DEFAULT '',
    scheduler_hints  jsonb NOT NULL DEFAULT '{}',
    server_name      text NOT NULL DEFAULT '',
    min_count        integer NOT NULL DEFAULT 1 CHECK (min_count >= 1),
    max_count        integer NOT NULL DEFAULT 1 CHECK (max_count >= min_count),
    -- nova-api's answer to the POST; NULL while it is in flight, which is
    -- what the scheduler waits on before deciding an id is unknown.
    response_status  integer,
    answered_at      timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX bridge_vm_intents_created ON bridge_vm_intents (created_at);
CREATE INDEX bridge_vm_intents_in_flight ON bridge_vm_intents (created_at) WHERE response_status IS NULL;

-- Other ids of the same request: nova-api's own local request id (its
-- response's X-Openstack-Request-Id / X-Compute-Request-Id), which is the
-- id Nova's services send to Placement when nova-api ignored the client's
-- (noauth2). An alias names one intent.
CREATE TABLE bridge_vm_intent_aliases (
    alias       text PRIMARY KEY CHECK (alias <> ''),
    request_id  text NOT NULL REFERENCES bridge_vm_intents (request_id) ON DELETE CASCADE
);

CREATE INDEX bridge_vm_intent_aliases_request ON bridge_vm_intent_aliases (request_id);
