-- The change feed of the allocation-candidates index. Triggers record which
-- providers every writing transaction touched, under the transaction's id
-- (pg_current_xact_id), so each replica's in-memory index can catch up with
-- exactly the transactions its PostgreSQL snapshot did not yet see, in
-- whatever order they commit. Because the database writes the feed, every
-- writer (handlers, reshaper, future code) is covered without knowing of it.
--
-- There is deliberately no pg_notify here: a notifying transaction holds a
-- database-wide lock from before its commit record until the end, so
-- notifying commits are serialized through their WAL flushes. Measured with
-- pgbench (8 clients, a claim-shaped transaction) it halved the throughput
-- (221 against 504 transactions/s); without it the triggers cost nothing
-- measurable (445-450 against 440-457). Indexes poll instead, and every
-- allocation-candidates request catches up before it answers anyway.

-- kind: 'providers' (provider_ids touched), 'names' (trait or resource class
-- names changed) or 'reset' (a table was truncated: reload everything).
CREATE TABLE placement_changes (
    xid           xid8 NOT NULL DEFAULT pg_current_xact_id(),
    kind          text NOT NULL,
    provider_ids  bigint[]
);
CREATE INDEX placement_changes_xid_idx ON placement_changes (xid);

-- Rows with xid below horizon may have been trimmed; an index whose
-- snapshot's xmin is below it cannot catch up and reloads everything.
CREATE TABLE placement_changes_horizon (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    horizon    xid8 NOT NULL
);
INSERT INTO placement_changes_horizon (horizon) VALUES ('0');

-- For the tables keyed by resource_provider_id. Statement-level with
-- transition tables: one feed row per statement, none when no row changed.
CREATE FUNCTION placement_note_provider_rows() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    ids bigint[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        ids := ARRAY(SELECT DISTINCT resource_provider_id FROM new_rows);
    ELSIF TG_OP = 'DELETE' THEN
        ids := ARRAY(SELECT DISTINCT resource_provider_id FROM old_rows);
    ELSE
        ids := ARRAY(SELECT resource_provider_id FROM old_rows
                     UNION SELECT resource_provider_id FROM new_rows);
    END IF;
    IF cardinality(ids) > 0 THEN
        INSERT INTO placement_changes (kind, provider_ids) VALUES ('providers', ids);
    END IF;
    RETURN NULL;
END $$;

-- For inserts into and deletes from resource_providers, keyed by id.
-- Updates that only bump the generation are not recorded: the index keeps
-- no generations, and the allocation or inventory rows that go with a bump
-- are recorded anyway.
CREATE FUNCTION placement_note_providers() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    ids bigint[];
BEGIN
    IF TG_OP = 'INSERT' THEN
        ids := ARRAY(SELECT id FROM new_rows);
    ELSIF TG_OP = 'DELETE' THEN
        ids := ARRAY(SELECT id FROM old_rows);
    END IF;
    IF cardinality(ids) > 0 THEN
        INSERT INTO placement_changes (kind, provider_ids) VALUES ('providers', ids);
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION placement_note_provider_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO placement_changes (kind, provider_ids) VALUES ('providers', ARRAY[NEW.id, OLD.id]);
    RETURN NULL;
END $$;

-- For traits and resource_classes: the index holds their names.
CREATE FUNCTION placement_note_names() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO placement_changes (kind) VALUES ('names');
    RETURN NULL;
END $$;

-- For TRUNCATE (the test reset): ids restart, so indexes reload in full.
CREATE FUNCTION placement_note_reset() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO placement_changes (kind) VALUES ('reset');
    RETURN NULL;
END $$;

-- Transition tables allow one event per trigger, hence three per table.
CREATE TRIGGER placement_changes_ins AFTER INSERT ON resource_providers
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION placement_note_providers();
-- Row-level, so the WHEN clause skips generation bumps (every claim makes
-- them) without even calling a function.
CREATE TRIGGER placement_changes_upd AFTER UPDATE ON resource_providers
    FOR EACH ROW WHEN (OLD.uuid IS DISTINCT FROM NEW.uuid OR OLD.name IS DISTINCT FROM NEW.name
        OR OLD.parent_provider_id IS DISTINCT FROM NEW.parent_provider_id
        OR OLD.root_provider_id IS DISTINCT FROM NEW.root_provider_id)
    EXECUTE FUNCTION placement_note_provider_row();
CREATE TRIGGER placement_changes_del AFTER DELETE ON resource_providers
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION placement_note_providers();
CREATE TRIGGER placement_changes_trunc AFTER TRUNCATE ON resource_providers
    FOR EACH STATEMENT EXECUTE FUNCTION placement_note_reset();

CREATE TRIGGER placement_changes_ins AFTER INSERT ON inventories
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION placement_note_provider_rows();
CREATE TRIGGER placement_changes_upd AFTER UPDATE ON inventories
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION placement_note_provider_rows();
CREATE TRIGGER placement_changes_del AFTER DELETE ON inventories
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION placement_note_provider_rows();

CREATE TRIGGER placement_changes_ins AFTER INSERT ON allocations
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION placement_note_provider_rows();
CREATE TRIGGER placement_changes_upd AFTER UPDATE ON allocations
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION placement_note_provider_rows();
CREATE TRIGGER placement_changes_del AFTER DELETE ON allocations
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION placement_note_provider_rows();

CREATE TRIGGER placement_changes_ins AFTER INSERT ON resource_provider_traits
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION placement_note_provider_rows();
CREATE TRIGGER placement_changes_upd AFTER UPDATE ON resource_provider_traits
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION placement_note_provider_rows();
CREATE TRIGGER placement_changes_del AFTER DELETE ON resource_provider_traits
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION placement_note_provider_rows();

CREATE TRIGGER placement_changes_ins AFTER INSERT ON resource_provider_aggregates
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION placement_note_provider_rows();
CREATE TRIGGER placement_changes_upd AFTER UPDATE ON resource_provider_aggregates
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION placement_note_provider_rows();
CREATE TRIGGER placement_changes_del AFTER DELETE ON resource_provider_aggregates
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION placement_note_provider_rows();

CREATE TRIGGER placement_changes_names AFTER INSERT OR UPDATE OR DELETE ON traits
    FOR EACH STATEMENT EXECUTE FUNCTION placement_note_names();
CREATE TRIGGER placement_changes_trunc AFTER TRUNCATE ON traits
    FOR EACH STATEMENT EXECUTE FUNCTION placement_note_reset();
CREATE TRIGGER placement_changes_names AFTER INSERT OR UPDATE OR DELETE ON resource_classes
    FOR EACH STATEMENT EXECUTE FUNCTION placement_note_names();
CREATE TRIGGER placement_changes_trunc AFTER TRUNCATE ON resource_classes
    FOR EACH STATEMENT EXECUTE FUNCTION placement_note_reset();
