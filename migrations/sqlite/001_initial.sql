-- 001: model-specific cache locations and registry settings.
-- Released: never edit this file; later schema changes are new files.

CREATE TABLE models (
    name       TEXT PRIMARY KEY NOT NULL,
    path       TEXT NOT NULL,
    created_at INTEGER NOT NULL,  -- milliseconds since the Unix epoch
    updated_at INTEGER NOT NULL
);

-- Key/value settings shared by every process: 'cache_dir'.
CREATE TABLE settings (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);

-- One row per applied migration, written in the migration's transaction.
CREATE TABLE schema_migrations (
    version    INTEGER PRIMARY KEY NOT NULL,
    applied_at INTEGER NOT NULL
);
