-- 003: the host a registered path is local to (SQLite's schema 4).
-- Released once merged: never edit this file; later changes are new files.
-- oldest compatible schema: 2
-- (It only adds a column with a default: nodes still on schema 2 keep
-- working during a rolling upgrade; the entries they register are local to
-- no host, as before.)

-- The host that registered the path, when the path was on a local (not
-- network) file system there; '' for a path on a network file system and
-- for entries registered before this version. Audits and prunes on other
-- hosts leave an entry local to a host alone.
ALTER TABLE models ADD COLUMN local_to BYTEA NOT NULL DEFAULT ''::bytea;
