// Migration 002 exactly as released: with schema_v1.hpp, the schema of a
// registry written by release 2. Migrations are frozen once released, so
// this copy is the upgrade tests' fixture, not a duplicate of
// migrations/sqlite/002_locks_history.sql.
#pragma once

namespace tfimm::test {

inline constexpr const char* kSchemaV2 = R"sql(
-- 002: locks, missing-since times for prune --expire, and a change history.

ALTER TABLE models ADD COLUMN locked INTEGER NOT NULL DEFAULT 0;
ALTER TABLE models ADD COLUMN lock_reason TEXT NOT NULL DEFAULT '';
-- When an audit or prune first found the path missing; NULL while found.
ALTER TABLE models ADD COLUMN missing_since INTEGER;

CREATE TABLE history (
    id       INTEGER PRIMARY KEY,  -- rowid: history rows are never deleted
    at       INTEGER NOT NULL,  -- milliseconds since the Unix epoch
    action   TEXT NOT NULL,     -- set, clear, set_dir, unset_dir, lock, unlock, prune, import
    name     TEXT NOT NULL,     -- model name; '' for cache-dir changes
    old_path TEXT,
    new_path TEXT,
    user     TEXT NOT NULL,
    host     TEXT NOT NULL,
    pid      INTEGER NOT NULL
);
CREATE INDEX history_by_name ON history (name, id);
)sql";

}  // namespace tfimm::test
