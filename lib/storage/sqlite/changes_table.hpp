// tfimm_changes(?): a table-valued function over a list of path changes, so
// that one INSERT ... SELECT writes a whole batch instead of a statement per row.
#pragma once

#include <sqlite3.h>

#include <functional>
#include <vector>

#include "storage/store.hpp"

namespace tfimm::detail {

// The module to register on every connection as "tfimm_changes".
sqlite3_module changes_module();

// Runs `sql` once with the changes bound to ?1 and `bind_rest` (if any)
// binding the other parameters; `on_row` sees each row of the result.
// Throws SQLite::Exception.
void run_with_changes(sqlite3* db, const char* sql, const std::vector<PathChange>& changes,
                      const std::function<void(sqlite3_stmt*)>& bind_rest,
                      const std::function<void(sqlite3_stmt*)>& on_row = {});

}  // namespace tfimm::detail
