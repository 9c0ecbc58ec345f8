// Migration 002 exactly as released: with kSchemaV1, the schema of a
// registry written by release 2 (see schema_v1.hpp for why it is a copy).
#pragma once

namespace tfimm::test {

inline constexpr const char* kSchemaV2 = R"sql(
ALTER TABLE models ADD COLUMN locked INTEGER NOT NULL DEFAULT 0;
ALTER TABLE models ADD COLUMN lock_reason TEXT NOT NULL DEFAULT '';
ALTER TABLE models ADD COLUMN missing_since INTEGER;

CREATE TABLE history (
    id       INTEGER PRIMARY KEY,
    at       INTEGER NOT NULL,
    action   TEXT NOT NULL,
    name     TEXT NOT NULL,
    old_path TEXT,
    new_path TEXT,
    user     TEXT NOT NULL,
    host     TEXT NOT NULL,
    pid      INTEGER NOT NULL
);
CREATE INDEX history_by_name ON history (name, id);
)sql";

}  // namespace tfimm::test
