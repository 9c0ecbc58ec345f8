-- 001: the registry on PostgreSQL, with the rows of SQLite's schema 2.
-- Released: never edit this file; later schema changes are new files.
-- Names, paths and other values a user gives are BYTEA: stored byte-exact,
-- valid UTF-8 or not (TEXT refuses what is not), and ordered by their bytes
-- as SQLite orders them. Times are milliseconds since the Unix epoch.
-- A later migration that only adds (a column with a default, a table) may
-- let older code keep using the registry: a line "-- oldest compatible
-- schema: N" in it says which versions still may (see postgres_store.cpp).

CREATE TABLE models (
    name          BYTEA PRIMARY KEY,
    path          BYTEA NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    locked        BOOLEAN NOT NULL DEFAULT false,
    lock_reason   BYTEA NOT NULL DEFAULT ''::bytea,
    missing_since BIGINT  -- when an audit or prune first found the path missing
);

-- Key/value settings shared by every process: 'cache_dir'.
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);

CREATE TABLE history (
    id       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- never deleted
    at       BIGINT NOT NULL,
    action   TEXT NOT NULL,   -- set, clear, set_dir, unset_dir, lock, unlock, prune, import
    name     BYTEA NOT NULL,  -- model name; '' for cache-dir changes
    old_path BYTEA,
    new_path BYTEA,
    "user"   BYTEA NOT NULL,  -- quoted: a reserved word in PostgreSQL
    host     BYTEA NOT NULL,
    pid      BIGINT NOT NULL
);
CREATE INDEX history_by_name ON history (name, id);

-- One row per applied migration, written in the migration's transaction;
-- oldest_compatible: the oldest schema whose code may still use this one.
CREATE TABLE schema_migrations (
    version           INTEGER PRIMARY KEY,
    applied_at        BIGINT NOT NULL,
    oldest_compatible INTEGER NOT NULL
);
