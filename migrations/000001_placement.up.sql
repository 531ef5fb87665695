-- Placement's data model, after upstream placement/db/sqlalchemy/models.py,
-- adapted to PostgreSQL. Standard resource classes keep their fixed ids
-- (os-resource-classes list index); custom ones start at 10000.

CREATE TABLE resource_classes (
    id          integer PRIMARY KEY,
    name        varchar(255) NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz
);
CREATE SEQUENCE resource_classes_custom_id_seq START WITH 10000 MINVALUE 10000;

CREATE TABLE traits (
    id          serial PRIMARY KEY,
    name        varchar(255) NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz
);

CREATE TABLE resource_providers (
    id                  bigserial PRIMARY KEY,
    uuid                uuid NOT NULL UNIQUE,
    name                varchar(200) NOT NULL UNIQUE,
    generation          integer NOT NULL DEFAULT 0,
    root_provider_id    bigint REFERENCES resource_providers (id),
    parent_provider_id  bigint REFERENCES resource_providers (id),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz
);
CREATE INDEX resource_providers_root_idx ON resource_providers (root_provider_id);
CREATE INDEX resource_providers_parent_idx ON resource_providers (parent_provider_id);

CREATE TABLE inventories (
    id                    bigserial PRIMARY KEY,
    resource_provider_id  bigint NOT NULL REFERENCES resource_providers (id) ON DELETE CASCADE,
    resource_class_id     integer NOT NULL REFERENCES resource_classes (id),
    total                 integer NOT NULL,
    reserved              integer NOT NULL,
    min_unit              integer NOT NULL,
    max_unit              integer NOT NULL,
    step_size             integer NOT NULL,
    allocation_ratio      double precision NOT NULL,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz,
    UNIQUE (resource_provider_id, resource_class_id)
);
CREATE INDEX inventories_resource_class_idx ON inventories (resource_class_id);

CREATE TABLE resource_provider_traits (
    resource_provider_id  bigint NOT NULL REFERENCES resource_providers (id) ON DELETE CASCADE,
    trait_id              integer NOT NULL REFERENCES traits (id),
    created_at            timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (resource_provider_id, trait_id)
);
CREATE INDEX resource_provider_traits_trait_idx ON resource_provider_traits (trait_id);

CREATE TABLE placement_aggregates (
    id          bigserial PRIMARY KEY,
    uuid        uuid NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE resource_provider_aggregates (
    resource_provider_id  bigint NOT NULL REFERENCES resource_providers (id) ON DELETE CASCADE,
    aggregate_id          bigint NOT NULL REFERENCES placement_aggregates (id),
    created_at            timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (resource_provider_id, aggregate_id)
);
CREATE INDEX resource_provider_aggregates_agg_idx ON resource_provider_aggregates (aggregate_id);

CREATE TABLE projects (
    id           bigserial PRIMARY KEY,
    external_id  varchar(255) NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id           bigserial PRIMARY KEY,
    external_id  varchar(255) NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE consumer_types (
    id          serial PRIMARY KEY,
    name        varchar(255) NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE consumers (
    id                bigserial PRIMARY KEY,
    uuid              uuid NOT NULL UNIQUE,
    project_id        bigint NOT NULL REFERENCES projects (id),
    user_id           bigint NOT NULL REFERENCES users (id),
    consumer_type_id  integer REFERENCES consumer_types (id),
    generation        integer NOT NULL DEFAULT 0,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz
);
CREATE INDEX consumers_project_user_idx ON consumers (project_id, user_id);

CREATE TABLE allocations (
    id                    bigserial PRIMARY KEY,
    resource_provider_id  bigint NOT NULL REFERENCES resource_providers (id),
    consumer_id           bigint NOT NULL REFERENCES consumers (id) ON DELETE CASCADE,
    resource_class_id     integer NOT NULL REFERENCES resource_classes (id),
    used                  integer NOT NULL,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz
);
CREATE INDEX allocations_rp_rc_idx ON allocations (resource_provider_id, resource_class_id);
CREATE INDEX allocations_consumer_idx ON allocations (consumer_id);
