-- Truncating any table the allocation-candidates index reads must make
-- every index reload (000002 covered resource_providers, traits and
-- resource_classes only; a TRUNCATE of allocations alone went unseen).
CREATE TRIGGER placement_changes_trunc AFTER TRUNCATE ON inventories
    FOR EACH STATEMENT EXECUTE FUNCTION placement_note_reset();
CREATE TRIGGER placement_changes_trunc AFTER TRUNCATE ON allocations
    FOR EACH STATEMENT EXECUTE FUNCTION placement_note_reset();
CREATE TRIGGER placement_changes_trunc AFTER TRUNCATE ON resource_provider_traits
    FOR EACH STATEMENT EXECUTE FUNCTION placement_note_reset();
CREATE TRIGGER placement_changes_trunc AFTER TRUNCATE ON resource_provider_aggregates
    FOR EACH STATEMENT EXECUTE FUNCTION placement_note_reset();
CREATE TRIGGER placement_changes_trunc AFTER TRUNCATE ON placement_aggregates
    FOR EACH STATEMENT EXECUTE FUNCTION placement_note_reset();
