// Migration 003 exactly as released: with schema_v1.hpp and schema_v2.hpp,
// the schema of a registry written by release 3. Migrations are frozen once
// released, so this copy is the upgrade tests' fixture, not a duplicate of
// migrations/sqlite/003_change_sets.sql.
#pragma once

namespace tfimm::test {

inline constexpr const char* kSchemaV3 = R"sql(
-- 003: change sets, the state undo restores, and history retention.
-- Every history row belongs to a change set: the rows one call (one
-- transaction) wrote together. A change set's id is the id of its first row,
-- so a row id and a change-set id never mean two different things. Its rows
-- are consecutive (one writer at a time adds rows), so no index is needed to
-- find them: they are read by id from the change set's id on.

ALTER TABLE history ADD COLUMN change_set INTEGER;
-- For the rows an undo wrote: the change set it reverted.
ALTER TABLE history ADD COLUMN undoes INTEGER;
-- The lock before and after the row's change; NULL: the row left the lock
-- as it was (or, before this migration, did not record it).
ALTER TABLE history ADD COLUMN old_locked INTEGER;
ALTER TABLE history ADD COLUMN old_lock_reason TEXT;
ALTER TABLE history ADD COLUMN new_locked INTEGER;
ALTER TABLE history ADD COLUMN new_lock_reason TEXT;
-- When the path of an entry the row forgot had been missing since.
ALTER TABLE history ADD COLUMN old_missing_since INTEGER;
-- For a `forget` row: the newest row it forgot, and how many rows.
ALTER TABLE history ADD COLUMN forgot_through INTEGER;
ALTER TABLE history ADD COLUMN forgot_rows INTEGER;

-- Rows recorded before change sets existed: each its own change set. What
-- their action says about the lock is all that is known of it.
UPDATE history SET change_set = id,
    old_locked = CASE action WHEN 'lock' THEN 0 WHEN 'unlock' THEN 1 END,
    old_lock_reason = CASE action WHEN 'lock' THEN '' END,
    new_locked = CASE action WHEN 'lock' THEN 1 WHEN 'unlock' THEN 0 END,
    new_lock_reason = CASE action WHEN 'unlock' THEN '' END;
)sql";

}  // namespace tfimm::test
