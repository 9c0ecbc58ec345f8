-- 004: the host a registered path is local to.
-- Released once merged: never edit this file; later changes are new files.

-- The host that registered the path, when the path was on a local (not
-- network) file system there; '' for a path on a network file system and
-- for entries registered before this version. Audits and prunes on other
-- hosts leave an entry local to a host alone.
ALTER TABLE models ADD COLUMN local_to TEXT NOT NULL DEFAULT '';
