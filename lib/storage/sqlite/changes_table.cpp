#include "storage/sqlite/changes_table.hpp"

#include <SQLiteCpp/Exception.h>
#include <cstring>

namespace tfimm::detail {

namespace {

// tfimm_changes(?): an eponymous table-valued function over a
// std::vector<PathChange> bound with sqlite3_bind_pointer, so that
// one INSERT ... SELECT writes a whole import instead of a statement per row.
constexpr const char* kChangesPointerType = "tfimm::detail::PathChange";

struct ChangesCursor {
  sqlite3_vtab_cursor base;  // first: SQLite passes a pointer to it
  const std::vector<PathChange>* rows;
  std::size_t row;
};

// Zeroed memory for one T from SQLite's allocator, which SQLite frees with
// sqlite3_free (the table and cursor structs it hands back).
template <class T>
T* zeroed() {
  auto* p = static_cast<T*>(sqlite3_malloc(sizeof(T)));
  if (p != nullptr) std::memset(p, 0, sizeof(T));
  return p;
}

int changes_connect(sqlite3* db, void*, int, const char* const*, sqlite3_vtab** out, char**) {
  const int rc =
      sqlite3_declare_vtab(db, "CREATE TABLE x(name, path, old_path, host_local, rows HIDDEN)");
  if (rc != SQLITE_OK) return rc;
  auto* table = zeroed<sqlite3_vtab>();
  if (table == nullptr) return SQLITE_NOMEM;
  *out = table;
  return SQLITE_OK;
}

int changes_disconnect(sqlite3_vtab* table) {
  sqlite3_free(table);
  return SQLITE_OK;
}

int changes_best_index(sqlite3_vtab*, sqlite3_index_info* info) {
  for (int i = 0; i < info->nConstraint; ++i) {
    const auto& c = info->aConstraint[i];
    if (c.iColumn != 4 || c.op != SQLITE_INDEX_CONSTRAINT_EQ) continue;
    if (!c.usable) return SQLITE_CONSTRAINT;
    info->aConstraintUsage[i].argvIndex = 1;
    info->aConstraintUsage[i].omit = 1;
    info->estimatedCost = 1;
    return SQLITE_OK;
  }
  return SQLITE_CONSTRAINT;  // only usable as tfimm_changes(?)
}

int changes_open(sqlite3_vtab*, sqlite3_vtab_cursor** out) {
  auto* cursor = zeroed<ChangesCursor>();
  if (cursor == nullptr) return SQLITE_NOMEM;
  *out = &cursor->base;
  return SQLITE_OK;
}

int changes_close(sqlite3_vtab_cursor* cursor) {
  sqlite3_free(cursor);
  return SQLITE_OK;
}

ChangesCursor& as_cursor(sqlite3_vtab_cursor* cursor) {
  return *reinterpret_cast<ChangesCursor*>(cursor);
}

int changes_filter(sqlite3_vtab_cursor* cursor, int, const char*, int argc, sqlite3_value** argv) {
  auto& c = as_cursor(cursor);
  c.rows = argc == 1 ? static_cast<const std::vector<PathChange>*>(
                           sqlite3_value_pointer(argv[0], kChangesPointerType))
                     : nullptr;
  c.row = 0;
  return SQLITE_OK;
}

int changes_next(sqlite3_vtab_cursor* cursor) {
  ++as_cursor(cursor).row;
  return SQLITE_OK;
}

int changes_eof(sqlite3_vtab_cursor* cursor) {
  const auto& c = as_cursor(cursor);
  return c.rows == nullptr || c.row >= c.rows->size();
}

int changes_column(sqlite3_vtab_cursor* cursor, sqlite3_context* ctx, int column) {
  const auto& c = as_cursor(cursor);
  const auto& change = (*c.rows)[c.row];
  if (column == 3) {
    sqlite3_result_int(ctx, change.host_local ? 1 : 0);
    return SQLITE_OK;
  }
  const std::string* text = column == 0   ? change.name
                            : column == 1 ? change.path
                            : column == 2 ? change.old_path
                                          : nullptr;
  if (text == nullptr) {
    sqlite3_result_null(ctx);
  } else {
    sqlite3_result_text(ctx, text->data(), static_cast<int>(text->size()), SQLITE_STATIC);
  }
  return SQLITE_OK;
}

int changes_rowid(sqlite3_vtab_cursor* cursor, sqlite3_int64* rowid) {
  *rowid = static_cast<sqlite3_int64>(as_cursor(cursor).row);
  return SQLITE_OK;
}

}  // namespace

sqlite3_module changes_module() {
  sqlite3_module m{};
  m.xConnect = changes_connect;  // no xCreate: eponymous only
  m.xBestIndex = changes_best_index;
  m.xDisconnect = changes_disconnect;
  m.xOpen = changes_open;
  m.xClose = changes_close;
  m.xFilter = changes_filter;
  m.xNext = changes_next;
  m.xEof = changes_eof;
  m.xColumn = changes_column;
  m.xRowid = changes_rowid;
  return m;
}

void run_with_changes(sqlite3* db, const char* sql, const std::vector<PathChange>& changes,
                      const std::function<void(sqlite3_stmt*)>& bind_rest,
                      const std::function<void(sqlite3_stmt*)>& on_row) {
  sqlite3_stmt* st = nullptr;
  int rc = sqlite3_prepare_v2(db, sql, -1, &st, nullptr);
  if (rc == SQLITE_OK) {
    rc = sqlite3_bind_pointer(st, 1, const_cast<std::vector<PathChange>*>(&changes),
                              kChangesPointerType, nullptr);
  }
  if (rc == SQLITE_OK) {
    if (bind_rest) bind_rest(st);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
      if (on_row) on_row(st);
    }
    if (rc == SQLITE_DONE) rc = SQLITE_OK;
  }
  if (rc != SQLITE_OK) {
    SQLite::Exception error(db, rc);
    sqlite3_finalize(st);
    throw error;
  }
  sqlite3_finalize(st);
}

}  // namespace tfimm::detail
