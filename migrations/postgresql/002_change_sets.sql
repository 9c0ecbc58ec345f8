-- 002: change sets, the state undo restores, and history retention (the
-- same as SQLite's schema 3).
-- Every history row belongs to a change set: the rows one call (one
-- transaction) wrote together. A change set's id is the id of its first row,
-- so a row id and a change-set id never mean two different things. Its rows
-- are consecutive (one writer at a time adds rows), so no index is needed to
-- find them: they are read by id from the change set's id on.

ALTER TABLE history ADD COLUMN change_set BIGINT;
-- For the rows an undo wrote: the change set it reverted.
ALTER TABLE history ADD COLUMN undoes BIGINT;
-- The lock before and after the row's change; NULL: the row left the lock
-- as it was (or, before this migration, did not record it).
ALTER TABLE history ADD COLUMN old_locked BOOLEAN;
ALTER TABLE history ADD COLUMN old_lock_reason BYTEA;
ALTER TABLE history ADD COLUMN new_locked BOOLEAN;
ALTER TABLE history ADD COLUMN new_lock_reason BYTEA;
-- When the path of an entry the row forgot had been missing since.
ALTER TABLE history ADD COLUMN old_missing_since BIGINT;
-- For a `forget` row: the newest row it forgot, and how many rows.
ALTER TABLE history ADD COLUMN forgot_through BIGINT;
ALTER TABLE history ADD COLUMN forgot_rows BIGINT;

-- Rows recorded before change sets existed: each its own change set. What
-- their action says about the lock is all that is known of it.
UPDATE history SET change_set = id,
    old_locked = CASE action WHEN 'lock' THEN false WHEN 'unlock' THEN true END,
    old_lock_reason = CASE action WHEN 'lock' THEN ''::bytea END,
    new_locked = CASE action WHEN 'lock' THEN true WHEN 'unlock' THEN false END,
    new_lock_reason = CASE action WHEN 'unlock' THEN ''::bytea END;
