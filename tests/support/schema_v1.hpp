// Migration 001 exactly as released: the schema of a registry written by
// release 1. Migrations are frozen once released, so this copy is the
// upgrade tests' fixture, not a duplicate of migrations/sqlite/001_initial.sql.
#pragma once

namespace tfimm::test {

inline constexpr const char* kSchemaV1 = R"sql(
CREATE TABLE models (
    name       TEXT PRIMARY KEY NOT NULL,
    path       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE TABLE settings (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
CREATE TABLE schema_migrations (
    version    INTEGER PRIMARY KEY NOT NULL,
    applied_at INTEGER NOT NULL
);
)sql";

}  // namespace tfimm::test
