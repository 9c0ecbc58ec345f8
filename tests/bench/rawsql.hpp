// A minimal RAII wrapper over the sqlite3 C API for the baselines: what a
// careful hand-written program would do, with nothing of ours in between.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <stdexcept>
#include <string>

namespace tfimm::bench {

class RawStatement {
 public:
  RawStatement(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st_, nullptr) != SQLITE_OK) {
      throw std::runtime_error(std::string("prepare failed: ") + sqlite3_errmsg(db) + " in " + sql);
    }
  }
  ~RawStatement() { sqlite3_finalize(st_); }
  RawStatement(const RawStatement&) = delete;
  RawStatement& operator=(const RawStatement&) = delete;

  void bind(int index, const std::string& text) {
    check(sqlite3_bind_text(st_, index, text.data(), static_cast<int>(text.size()), SQLITE_STATIC));
  }
  void bind(int index, std::int64_t value) { check(sqlite3_bind_int64(st_, index, value)); }
  // One step: true for a row, false when done. Throws on an error.
  bool step() {
    const int rc = sqlite3_step(st_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    throw std::runtime_error(std::string("step failed: ") + sqlite3_errmsg(db_));
  }
  std::string text(int column) {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(st_, column));
    return std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(st_, column)));
  }
  void reset() { sqlite3_reset(st_); }

 private:
  void check(int rc) {
    if (rc != SQLITE_OK)
      throw std::runtime_error(std::string("bind failed: ") + sqlite3_errmsg(db_));
  }
  sqlite3* db_;
  sqlite3_stmt* st_ = nullptr;
};

class RawDb {
 public:
  // Opens an existing file read-write, with the registry's durability:
  // WAL (already set in the file by the library) and synchronous=FULL.
  explicit RawDb(const std::string& path) {
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
      const std::string message = db_ ? sqlite3_errmsg(db_) : "out of memory";
      sqlite3_close(db_);
      throw std::runtime_error("cannot open " + path + ": " + message);
    }
    sqlite3_busy_timeout(db_, 5000);
    exec("PRAGMA synchronous=FULL");
  }
  ~RawDb() { sqlite3_close(db_); }
  RawDb(const RawDb&) = delete;
  RawDb& operator=(const RawDb&) = delete;

  sqlite3* handle() const { return db_; }
  void exec(const char* sql) {
    char* error = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &error) != SQLITE_OK) {
      const std::string message = error ? error : "unknown error";
      sqlite3_free(error);
      throw std::runtime_error(std::string("exec failed: ") + message + " in " + sql);
    }
  }
  // A single-value query, e.g. a PRAGMA.
  std::string value(const char* sql) {
    RawStatement st(db_, sql);
    return st.step() ? st.text(0) : std::string();
  }

 private:
  sqlite3* db_ = nullptr;
};

}  // namespace tfimm::bench
