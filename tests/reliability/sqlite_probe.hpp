// Direct SQLite access for the reliability tests: what is really in a
// registry file, checked without going through the library under test.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace tfimm::reliability {

class SqliteProbe {
 public:
  // Opens `path` read-write (so that a WAL left by a killed process is
  // recovered, as any next user would), never creating it.
  explicit SqliteProbe(const std::string& path, int flags = SQLITE_OPEN_READWRITE) {
    if (sqlite3_open_v2(path.c_str(), &db_, flags, nullptr) != SQLITE_OK) {
      std::string message = db_ ? sqlite3_errmsg(db_) : "out of memory";
      sqlite3_close(db_);
      throw std::runtime_error("cannot open " + path + ": " + message);
    }
    sqlite3_busy_timeout(db_, 10000);
  }
  ~SqliteProbe() { sqlite3_close(db_); }
  SqliteProbe(const SqliteProbe&) = delete;
  SqliteProbe& operator=(const SqliteProbe&) = delete;

  sqlite3* handle() { return db_; }

  void exec(const std::string& sql) {
    char* error = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error) != SQLITE_OK) {
      std::string message = error ? error : "unknown error";
      sqlite3_free(error);
      throw std::runtime_error("SQL failed: " + message + " in: " + sql);
    }
  }

  // Every row of `sql` with `params` bound as text, each column as text
  // ("NULL" for NULL). Blob-exact: embedded bytes are kept.
  std::vector<std::vector<std::string>> rows(const std::string& sql,
                                             const std::vector<std::string>& params = {}) {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) {
      throw std::runtime_error("SQL failed: " + std::string(sqlite3_errmsg(db_)) + " in: " + sql);
    }
    for (std::size_t i = 0; i < params.size(); ++i) {
      sqlite3_bind_text(stmt, static_cast<int>(i + 1), params[i].data(),
                        static_cast<int>(params[i].size()), SQLITE_TRANSIENT);
    }
    std::vector<std::vector<std::string>> result;
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
      std::vector<std::string> row;
      for (int i = 0; i < sqlite3_column_count(stmt); ++i) {
        const auto* text = sqlite3_column_text(stmt, i);
        row.emplace_back(text ? std::string(reinterpret_cast<const char*>(text),
                                            static_cast<std::size_t>(sqlite3_column_bytes(stmt, i)))
                              : "NULL");
      }
      result.push_back(std::move(row));
    }
    const std::string message = sqlite3_errmsg(db_);
    sqlite3_finalize(stmt);
    if (rc != SQLITE_DONE) throw std::runtime_error("SQL failed: " + message + " in: " + sql);
    return result;
  }

  std::string text(const std::string& sql, const std::vector<std::string>& params = {}) {
    auto result = rows(sql, params);
    if (result.empty() || result.front().empty()) throw std::runtime_error("no row: " + sql);
    return result.front().front();
  }
  std::int64_t integer(const std::string& sql, const std::vector<std::string>& params = {}) {
    return std::stoll(text(sql, params));
  }

  // "ok", or every complaint of PRAGMA integrity_check joined by "; ".
  std::string integrity() {
    std::string all;
    for (const auto& row : rows("PRAGMA integrity_check")) {
      all += (all.empty() ? "" : "; ") + row.at(0);
    }
    return all;
  }

  // The whole schema, for "unchanged" comparisons.
  std::vector<std::vector<std::string>> schema() {
    return rows("SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_master ORDER BY name");
  }

 private:
  sqlite3* db_ = nullptr;
};

}  // namespace tfimm::reliability
