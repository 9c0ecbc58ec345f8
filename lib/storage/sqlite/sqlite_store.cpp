#include "storage/sqlite/sqlite_store.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <stdexcept>

#include "access.hpp"
#include "fs.hpp"
#include "storage/fork.hpp"
#include "storage/sqlite/connection.hpp"
#include "storage/sqlite/durability.hpp"
#include "storage/sqlite/file_state.hpp"
#include "storage/sqlite/header.hpp"
#include "storage/sqlite/inherited.hpp"

namespace tfimm::detail {

SqliteStore::SqliteStore(std::string path, std::chrono::milliseconds busy_timeout)
    : path_(std::move(path)), busy_timeout_(busy_timeout) {}

SqliteStore::~SqliteStore() {
  if (conn_ && owner_fork_ != fork_generation()) {
    abandon(conn_.get(), conn_->db.getHandle(), path_);
    conn_.release();
  }
  conn_.reset();
  close_file_handle();
}

bool SqliteStore::open(bool create, bool for_write) {
  if (conn_ && owner_fork_ != fork_generation()) {
    // A child after fork(): never touch the parent's connection.
    abandon(conn_.get(), conn_->db.getHandle(), path_);
    conn_.release();
    depth_ = 0;
  }
  if (conn_ && snapshot_ && (create || for_write || snapshot_changed())) {
    // A write needs a real connection (which then fails with the reason the
    // file cannot be written), and a changed file a fresh look.
    conn_.reset();
    close_file_handle();
  }
  if (conn_) {
    check_identity();
    if (conn_) return true;
  }
  struct stat st {};
  const bool exists = registry_exists(path_);
  if (!exists && !create) return false;
  Header header;
  if (exists) {
    header = check_header(path_);
  } else {
    std::error_code ec;
    const auto parent = std::filesystem::path(path_).parent_path();
    create_directories_durably(parent, ec);
    if (ec) {
      throw RegistryError(path_, "cannot create the directory " + parent.string() +
                                     " for registry " + path_ + ": " + ec.message() +
                                     "; nothing was changed. Create it yourself, or choose a "
                                     "registry file in a directory you can write");
    }
  }
  const std::string cannot_write = exists ? permission_problem(path_) : std::string();
  if (exists && (create || for_write)) {
    // Refused before SQLite opens it: SQLite would otherwise create -wal
    // and -shm files owned by this process, which it cannot remove and which
    // then stand in the way of those who can write.
    if (!cannot_write.empty()) {
      throw RegistryReadOnly(path_, "registry " + path_ +
                                        " cannot be changed by this process: " + cannot_write +
                                        ". Nothing was changed; reads still work. Ask its owner "
                                        "for write access, or use another registry");
    }
  }
  network_fs_ = on_network_fs(path_, &fs_type_);
  const bool snapshot =
      exists && !create && !for_write &&
      (only_readable_as_is(path_, header, cannot_write) || (inspect_ && untouched(path_, header)));
  if (exists && !create && !for_write && !snapshot && !cannot_write.empty()) {
    // A reader that cannot write the file but would have SQLite create the
    // -shm beside it (there are changes in the -wal): that file would be
    // this process's, and would keep the registry's writers out.
    struct stat shm {};
    if (header.wal && ::stat((path_ + "-shm").c_str(), &shm) != 0) {
      throw RegistryReadOnly(
          path_, "cannot read registry " + path_ + " now: its " + path_ +
                     "-wal holds changes not yet in the file, and reading them would have "
                     "SQLite create " +
                     path_ +
                     "-shm as this process, which cannot write the "
                     "registry; that file would then keep its writers out. Nothing was read "
                     "or changed. Retry once a process that can write it has opened it");
    }
  }
  try {
    owner_fork_ = fork_generation();
    auto c = connect(create, snapshot);
    conn_ = std::move(c);
    depth_ = 0;
  } catch (const std::exception& e) {
    fail(e, "open");
  }
  snapshot_ = snapshot;
  // A handle on the file just opened, to watch it cheaply (check_identity).
  // O_PATH: closing it can never drop SQLite's POSIX locks on the file, as
  // closing an ordinary descriptor of the same file would.
  close_file_handle();
  file_fd_ = ::open(path_.c_str(), O_PATH | O_CLOEXEC);
  if (file_fd_ >= 0 ? ::fstat(file_fd_, &st) == 0 : ::stat(path_.c_str(), &st) == 0) {
    dev_ = st.st_dev;
    ino_ = st.st_ino;
    snapshot_size_ = st.st_size;
    snapshot_mtime_ = st.st_mtim;
  }
  return true;
}

SqliteStore::Connection& SqliteStore::conn() {
  if (!conn_) throw std::logic_error("tfimm: registry used before SqliteStore::open()");
  return *conn_;
}

bool SqliteStore::read_absent() {
  // A registry that exists but cannot be written is read as it is.
  if (!absent_ || !absent_->blocked.empty()) return false;
  absent_->read = true;
  return true;
}

void SqliteStore::materialize() {
  const Absent absent = *absent_;
  absent_.reset();
  if (!absent.blocked.empty()) {
    if (absent.full) {
      throw RegistryFull(path_, "the disk holding registry " + path_ +
                                    " is full; could not write to it, nothing was changed. "
                                    "Free space and retry");
    }
    throw RegistryReadOnly(path_, "registry " + path_ +
                                      " cannot be changed by this process: " + absent.blocked +
                                      ". Nothing was changed. Ask its owner for write access, "
                                      "or use another registry");
  }
  const int depth = depth_;
  open(true);
  depth_ = depth;
  begin_write();
  if (!absent.read) return;
  // What the body read before this point was an empty registry; if another
  // process created the registry and wrote to it meanwhile, those reads are
  // out of date and the body's decisions with them.
  try {
    if (conn_->db
            .execAndGet("SELECT EXISTS(SELECT 1 FROM models) OR "
                        "EXISTS(SELECT 1 FROM settings)")
            .getInt() != 0) {
      throw RegistryBusy(path_, "registry " + path_ +
                                    " was created by another process while this change read "
                                    "it as empty; nothing was written. Retry");
    }
  } catch (const SQLite::Exception& e) {
    fail(e, "read");
  }
}

void SqliteStore::begin_write() {
  auto& db = conn_->db;
  if (bulk_ && grown_ == nullptr) {
    // 32 MiB: the pages an import of 100 000 entries changes, with room, so
    // that no page is written to the log twice.
    normal_cache_ = db.execAndGet("PRAGMA cache_size").getInt();
    db.exec("PRAGMA cache_size = -32768");
    grown_ = conn_.get();
  }
  try {
    require_durable(db, path_);
    db.exec("BEGIN IMMEDIATE");
  } catch (const std::exception& e) {
    fail(e, "start a write to");
  }
}

void SqliteStore::end_write() noexcept {
  if (!conn_) return;
  auto* db = conn_->db.getHandle();
  if (!sqlite3_get_autocommit(db)) sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
  if (grown_ == conn_.get()) {
    const std::string sql = "PRAGMA cache_size = " + std::to_string(normal_cache_);
    sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr);
  }
  grown_ = nullptr;
}

bool SqliteStore::read(const std::function<void(Reader&)>& body, Consistency consistency) {
  if (depth_ > 0) {
    body(*this);
    return true;
  }
  if (!open(false)) return false;
  if (consistency == Consistency::PerCall) {
    body(*this);
    return true;
  }
  auto& db = conn_->db;
  try {
    db.exec("BEGIN");
  } catch (const std::exception& e) {
    fail(e, "read");
  }
  try {
    body(*this);
    db.exec("COMMIT");
  } catch (const std::exception& e) {
    sqlite3_exec(db.getHandle(), "ROLLBACK", nullptr, nullptr, nullptr);
    fail(e, "read");
  } catch (...) {
    sqlite3_exec(db.getHandle(), "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
  return true;
}

bool SqliteStore::commit_write(const std::function<void(Writer&)>& body, WriteMode mode) {
  if (depth_ > 0) {
    body(*this);
    return true;
  }
  if (mode.missing == WriteMode::Missing::ExistingOnly && !open(false)) return false;
  bulk_ = mode.bulk;
  struct Done {
    SqliteStore& store;
    ~Done() { store.bulk_ = false; }
  } done{*this};
  const unsigned long generation = fork_generation();
  if (conn_ && owner_fork_ != generation) open(false);
  if (conn_) {
    // A write asks by path: the file at the path must be the one open
    // (a renamed directory or a replaced hard-linked file included).
    if (!still_at_path()) {
      retire_connection();
      throw RegistryError(path_, "registry " + path_ +
                                     " was deleted or replaced while this process had it "
                                     "open; nothing was written. Check what happened to the "
                                     "file and retry: the next call opens the file now at "
                                     "that path");
    }
  }
  // A registry that does not exist yet is created by the first change the
  // body makes (materialize()), not before it: a body that changes nothing
  // creates nothing. One that this process cannot write is read, and
  // refused at the body's first change: a body that changes nothing (a
  // clear of a name without an entry) works. Either way SQLite never opens
  // the file for a write that cannot succeed, which would leave -wal and
  // -shm files behind.
  Absent blocked;
  if ((!conn_ || snapshot_) && registry_exists(path_)) {
    blocked.blocked = permission_problem(path_);
    if (blocked.blocked.empty() && nearly_full(path_) &&
        ::access((path_ + "-wal").c_str(), F_OK) != 0) {
      blocked.blocked = "the disk is full";
      blocked.full = true;
    }
  }
  if (!blocked.blocked.empty()) {
    open(false);
    try {
      conn_->db.exec("BEGIN");
    } catch (const std::exception& e) {
      fail(e, "read");
    }
    absent_ = std::move(blocked);
  } else if (open(false, true)) {
    if (write_locked_here(path_)) {
      throw RegistryBusy(path_, "registry " + path_ +
                                    " cannot be written by this process: it was forked while a "
                                    "transaction of it was open, and SQLite keeps that "
                                    "transaction's lock for the life of this process. Nothing "
                                    "was changed; reads still work. Write from the parent, or "
                                    "from a program started with exec()");
    }
    begin_write();
  } else {
    absent_ = Absent{};
  }
  ++depth_;
  change_set_.reset();  // one write, one change set
  // A child forked inside `body` (a transaction body runs the caller's
  // code): the transaction and its connection are the parent's, which
  // commits or rolls it back; here they are abandoned untouched.
  const auto inherited = [&] {
    if (!conn_ || owner_fork_ == fork_generation()) return false;
    abandon(conn_.get(), conn_->db.getHandle(), path_);
    conn_.release();
    close_file_handle();
    return true;
  };
  try {
    body(*this);
    if (fork_generation() != generation) {
      throw TransactionMisuse("this process was forked inside a transaction() body on registry " +
                              path_ +
                              "; the transaction belongs to the parent process, which commits "
                              "or rolls it back, and this process wrote nothing. It can still "
                              "read the registry; write from the parent");
    }
    --depth_;
    if (absent_) {
      absent_.reset();  // nothing changed: nothing to create or write
      end_write();
      return true;
    }
    commit();
    end_write();
    return true;
  } catch (const SQLite::Exception& e) {
    depth_ = 0;
    absent_.reset();
    if (!inherited()) end_write();
    fail(e, "write to");
  } catch (...) {
    depth_ = 0;
    absent_.reset();
    if (!inherited()) end_write();
    throw;
  }
}

void SqliteStore::commit() { conn_->db.exec("COMMIT"); }

}  // namespace tfimm::detail
