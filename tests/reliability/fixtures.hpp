// Registry files built without the library: a registry as release 1 (schema
// version 1) wrote it.
#pragma once

#include <string>

#include "schema_v1.hpp"
#include "sqlite_probe.hpp"

namespace tfimm::reliability {

// Creates `path` as a schema-1 registry in WAL mode holding `models` entries
// "old<i>" -> "/old/old<i>".
inline void create_schema1_registry(const std::string& path, int models) {
  SqliteProbe db(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  db.exec("PRAGMA journal_mode=WAL");
  db.exec("BEGIN");
  db.exec(test::kSchemaV1);
  db.exec("PRAGMA application_id=1952868717");  // 0x7466696D, "tfim"
  db.exec("PRAGMA user_version=1");
  db.exec("INSERT INTO schema_migrations VALUES(1, 1700000000000)");
  for (int i = 0; i < models; ++i) {
    const std::string name = "old" + std::to_string(i);
    db.rows("INSERT INTO models VALUES(?1, ?2, 1700000000000, 1700000000000)",
            {name, "/old/" + name});
  }
  db.exec("COMMIT");
}

}  // namespace tfimm::reliability
