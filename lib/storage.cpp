#include "storage.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <pwd.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <SQLiteCpp/Database.h>
#include <SQLiteCpp/Exception.h>
#include <SQLiteCpp/Statement.h>
#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <unordered_map>

#include "access.hpp"
#include "durability.hpp"
#include "fs.hpp"
#include "migrations_embedded.hpp"

namespace tfimm {

int schema_version() noexcept { return detail::kMigrations.back().version; }

namespace detail {
namespace {

constexpr const char* kModelColumns =
    "name, path, created_at, updated_at, locked, lock_reason, missing_since";

// Connections a child process inherited from its parent through fork(). SQLite
// forbids using (or closing) them in the child, so they are kept here,
// untouched and reachable, for the life of the process.
std::mutex abandoned_mutex;
std::vector<void*> abandoned;
// Registry files whose write transaction was open in a connection abandoned
// here (a child forked inside a transaction). SQLite keeps that lock in its
// bookkeeping of this process for as long as the connection exists, that is
// for ever: this process can still read the file, but never write it.
std::vector<std::string> write_locked;
std::atomic<bool> any_write_locked{false};

// Moves an inherited connection to `abandoned`, noting a write lock it holds
// (sqlite3_txn_state reads the connection's memory only).
void abandon(void* connection, sqlite3* handle, const std::string& path) {
  std::lock_guard<std::mutex> lock(abandoned_mutex);
  if (sqlite3_txn_state(handle, "main") == SQLITE_TXN_WRITE) {
    write_locked.push_back(path);
    any_write_locked = true;
  }
  abandoned.push_back(connection);
}

bool write_locked_here(const std::string& path) {
  if (!any_write_locked) return false;
  std::lock_guard<std::mutex> lock(abandoned_mutex);
  return std::find(write_locked.begin(), write_locked.end(), path) != write_locked.end();
}

// fork() children seen by this process, counted in the child by an atfork
// handler: a Store notices it runs in a child without a getpid() system
// call on every lookup.
std::atomic<unsigned long> forks{0};
std::atomic<pid_t> cached_pid{0};

void count_fork() noexcept {
  forks.fetch_add(1, std::memory_order_relaxed);
  cached_pid.store(::getpid(), std::memory_order_relaxed);
}

unsigned long fork_generation() {
  static const bool installed = ::pthread_atfork(nullptr, nullptr, count_fork) == 0;
  (void)installed;
  return forks.load(std::memory_order_relaxed);
}

pid_t current_pid() {
  fork_generation();
  pid_t pid = cached_pid.load(std::memory_order_relaxed);
  if (pid == 0) {
    pid = ::getpid();
    cached_pid.store(pid, std::memory_order_relaxed);
  }
  return pid;
}

Entry entry_from_row(SQLite::Statement& st) {
  Entry e;
  e.name = st.getColumn(0).getString();
  e.path = st.getColumn(1).getString();
  e.created_at = st.getColumn(2).getInt64();
  e.updated_at = st.getColumn(3).getInt64();
  e.locked = st.getColumn(4).getInt() != 0;
  e.lock_reason = st.getColumn(5).getString();
  if (!st.getColumn(6).isNull()) e.missing_since = st.getColumn(6).getInt64();
  return e;
}

// Resets a cached statement when the use ends, so that no read transaction
// stays open between calls. Every use binds every parameter before it steps,
// and text is bound without a copy (bindNoCopy): the caller's strings outlive
// the step, and nothing reads a binding after the reset.
class Use {
 public:
  explicit Use(SQLite::Statement& st) : st_(st) {}
  ~Use() { st_.tryReset(); }
  Use(const Use&) = delete;
  Use& operator=(const Use&) = delete;
  SQLite::Statement* operator->() { return &st_; }
  SQLite::Statement& operator*() { return st_; }

 private:
  SQLite::Statement& st_;
};

struct Header {
  bool sqlite = false;
  bool wal = false;  // the file says it is in WAL mode (write and read version 2)
  std::int32_t application_id = 0;
  std::int32_t user_version = 0;
  std::size_t size = 0;
};

std::int32_t big_endian32(const unsigned char* p) {
  return static_cast<std::int32_t>((std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) |
                                   (std::uint32_t{p[2]} << 8) | std::uint32_t{p[3]});
}

std::string hex(std::int32_t value) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", static_cast<unsigned>(value));
  return buf;
}

NotARegistry foreign_database(const std::string& path, std::int32_t app_id) {
  return NotARegistry(path, "refusing to use " + path +
                                ": it is an SQLite database of another application (" +
                                (app_id != 0 ? "application_id " + hex(app_id)
                                             : std::string("tables but no registry schema")) +
                                "); it was left unchanged. Choose another file with --registry");
}

// What kind of file a mode is, for a refusal: "a directory", "a FIFO", ...
const char* file_kind(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  return "not a regular file";
}

// Reads the 100-byte SQLite header without opening the file with SQLite, so
// a file that is not ours is refused before SQLite could touch it. Only a
// regular file is read: opening a FIFO would wait for a writer forever, and
// a device is never a registry. O_NONBLOCK makes that open return at once;
// the kind is then taken from the open file itself, not from an earlier
// look at the path.
Header read_header(const std::string& path) {
  Header h;
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  struct stat st {};
  if (fd < 0) {
    // A socket cannot be opened at all (ENXIO): say what it is.
    const int err = errno;
    if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
      throw NotARegistry(path, "registry path " + path + " is " + file_kind(st.st_mode) +
                                   ", not a registry file; it was left unchanged. Point "
                                   "--registry or $TFIMM_REGISTRY at a regular file");
    }
    throw RegistryError(path, "cannot read registry " + path + ": " + std::strerror(err) +
                                  "; nothing was read or changed. Check the file's permissions "
                                  "and those of its directories");
  }
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    const mode_t mode = st.st_mode;
    ::close(fd);
    throw NotARegistry(path, "registry path " + path + " is " + file_kind(mode) +
                                 ", not a registry file; it was left unchanged. Point "
                                 "--registry or $TFIMM_REGISTRY at a regular file");
  }
  std::array<unsigned char, 100> buf{};
  while (h.size < buf.size()) {
    const ssize_t n = ::read(fd, buf.data() + h.size, buf.size() - h.size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      throw RegistryError(path, "cannot read registry " + path + ": " + std::strerror(err));
    }
    if (n == 0) break;
    h.size += static_cast<std::size_t>(n);
  }
  ::close(fd);
  static constexpr char kMagic[] = "SQLite format 3";
  h.sqlite = h.size == buf.size() && std::memcmp(buf.data(), kMagic, sizeof kMagic) == 0;
  if (h.sqlite) {
    h.wal = buf[18] == 2 && buf[19] == 2;
    h.user_version = big_endian32(&buf[60]);
    h.application_id = big_endian32(&buf[68]);
  }
  return h;
}

Header check_header(const std::string& path) {
  const Header h = read_header(path);
  if (h.size == 0) return h;  // an empty file: a new registry
  if (!h.sqlite) {
    throw NotARegistry(path, "refusing to use " + path +
                                 ": it is not an SQLite database, so not a tfimm-cache "
                                 "registry; it was left unchanged. Move it aside or choose "
                                 "another file with --registry");
  }
  if (h.application_id != 0 && h.application_id != kApplicationId) {
    throw foreign_database(path, h.application_id);
  }
  if (h.user_version > schema_version()) {
    throw RegistryTooNew(path,
                         "registry " + path + " was written by a newer tfimm-cache (schema " +
                             std::to_string(h.user_version) + "); this build knows schema " +
                             std::to_string(schema_version()) +
                             ". Upgrade tfimm-cache; the file was left unchanged",
                         h.user_version, schema_version());
  }
  return h;
}

// Whether a registry file is at `path`. Only a path that certainly names
// nothing answers no: a missing file or a parent that is not a directory.
// Anything else that stops the look (a directory that cannot be searched, a
// symlink loop) is an error, not an empty registry; so is a symbolic link to
// nothing, which is what an unmounted share under a link looks like.
bool registry_exists(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) return true;
  const int err = errno;
  if (err == ENOENT && ::lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode)) {
    std::string target(4096, '\0');
    const ssize_t n = ::readlink(path.c_str(), target.data(), target.size());
    target.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
    throw RegistryError(path, "registry path " + path + " is a symbolic link to " + target +
                                  ", which does not exist (a share that is not mounted?); "
                                  "nothing was read or created. Create the file it points to, "
                                  "or point --registry at the registry itself");
  }
  if (err == ENOENT || err == ENOTDIR) return false;
  throw RegistryError(path, "cannot look at registry " + path + ": " + std::strerror(err) +
                                "; nothing was read or changed. Check that this process can "
                                "search every directory above it");
}

// Why SQLite could not open `path`, in words, with the next step. SQLite
// keeps no system error for a failed open, so the file and its directory are
// asked again.
std::string open_problem(const std::string& path) {
  const auto dir = std::filesystem::path(path).parent_path().string();
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    return "its directory " + dir + " cannot be reached (" + std::strerror(errno) +
           "); check that it exists and is accessible";
  }
  if (::access(path.c_str(), R_OK) != 0 && errno != ENOENT) {
    const int err = errno;
    return std::string("the file cannot be read (") + std::strerror(err) + "); " +
           (err == EACCES || err == EPERM ? "ask its owner for read access"
                                          : "check the path and the file");
  }
  const std::string wal = path + "-wal";
  const std::string shm = path + "-shm";
  if (::access(shm.c_str(), F_OK) != 0 && ::access(dir.c_str(), W_OK | X_OK) != 0) {
    return "SQLite needs to create " + shm + " beside it to read a registry that has " + wal +
           ", and this process cannot create files in " + dir + " (" + std::strerror(errno) +
           "); let a user who can write " + dir +
           " run any tfimm-cache command on it once, or "
           "give read-only users a copy made with `tfimm-cache export`";
  }
  return "check that the file and its directory are accessible to this process";
}

// tfimm_changes(?): an eponymous table-valued function over a
// std::vector<Store::PathChange> bound with sqlite3_bind_pointer, so that
// one INSERT ... SELECT writes a whole import instead of a statement per row.
constexpr const char* kChangesPointerType = "tfimm::Store::PathChange";

struct ChangesCursor {
  sqlite3_vtab_cursor base;  // first: SQLite passes a pointer to it
  const std::vector<Store::PathChange>* rows;
  std::size_t row;
};

int changes_connect(sqlite3* db, void*, int, const char* const*, sqlite3_vtab** out, char**) {
  const int rc = sqlite3_declare_vtab(db, "CREATE TABLE x(name, path, old_path, rows HIDDEN)");
  if (rc != SQLITE_OK) return rc;
  auto* table = static_cast<sqlite3_vtab*>(sqlite3_malloc(sizeof(sqlite3_vtab)));
  if (table == nullptr) return SQLITE_NOMEM;
  std::memset(table, 0, sizeof *table);
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
    if (c.iColumn != 3 || c.op != SQLITE_INDEX_CONSTRAINT_EQ) continue;
    if (!c.usable) return SQLITE_CONSTRAINT;
    info->aConstraintUsage[i].argvIndex = 1;
    info->aConstraintUsage[i].omit = 1;
    info->estimatedCost = 1;
    return SQLITE_OK;
  }
  return SQLITE_CONSTRAINT;  // only usable as tfimm_changes(?)
}

int changes_open(sqlite3_vtab*, sqlite3_vtab_cursor** out) {
  auto* cursor = static_cast<ChangesCursor*>(sqlite3_malloc(sizeof(ChangesCursor)));
  if (cursor == nullptr) return SQLITE_NOMEM;
  std::memset(cursor, 0, sizeof *cursor);
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
  c.rows = argc == 1 ? static_cast<const std::vector<Store::PathChange>*>(
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

// Runs `sql` once with the changes bound to ?1 and `bind_rest` binding the
// other parameters.
void run_with_changes(sqlite3* db, const char* sql, const std::vector<Store::PathChange>& changes,
                      const std::function<void(sqlite3_stmt*)>& bind_rest) {
  sqlite3_stmt* st = nullptr;
  int rc = sqlite3_prepare_v2(db, sql, -1, &st, nullptr);
  if (rc == SQLITE_OK) {
    rc = sqlite3_bind_pointer(st, 1, const_cast<std::vector<Store::PathChange>*>(&changes),
                              kChangesPointerType, nullptr);
  }
  if (rc == SQLITE_OK) {
    bind_rest(st);
    rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) rc = SQLITE_OK;
  }
  if (rc != SQLITE_OK) {
    SQLite::Exception error(db, rc);
    sqlite3_finalize(st);
    throw error;
  }
  sqlite3_finalize(st);
}

}  // namespace

// User and host of this process, looked up once.
const Actor& actor_base() {
  static const Actor base = [] {
    Actor a;
    std::vector<char> buf(16384);
    passwd pw{};
    passwd* found = nullptr;
    if (::getpwuid_r(::geteuid(), &pw, buf.data(), buf.size(), &found) == 0 && found) {
      a.user = pw.pw_name;
    } else {
      a.user = std::to_string(::geteuid());
    }
    char host[256] = {};
    if (::gethostname(host, sizeof host - 1) == 0) a.host = host;
    return a;
  }();
  return base;
}

struct Store::Connection {
  Connection(const std::string& path, int flags, std::chrono::milliseconds busy)
      : db(path, flags), busy_timeout(busy) {
    wait_when_busy(true);
  }
  SQLite::Database db;
  std::unordered_map<const char*, std::unique_ptr<SQLite::Statement>> statements;

  // The value of one setting as last read outside a write, and the data
  // version it was read at (Store::lookup).
  struct CachedSetting {
    bool valid = false;
    std::string key;
    std::optional<std::string> value;
    unsigned version = 0;
  } cached_setting;

  // SQLite's counter of changes to the file as this connection has seen
  // them: it moves with every commit, by this connection or any other, in
  // this process or another (unlike PRAGMA data_version, which ignores this
  // connection's own). Read without running a statement.
  unsigned data_version() {
    unsigned version = 0;
    sqlite3_file_control(db.getHandle(), "main", SQLITE_FCNTL_DATA_VERSION, &version);
    return version;
  }
  std::chrono::milliseconds busy_timeout;
  std::chrono::steady_clock::time_point busy_since;

  // While another connection holds the lock, retry for up to busy_timeout.
  // Two things pull apart here. Each hand-over of the lock to another process
  // costs a wake-up and a reread of what changed, and every retry costs a
  // wake-up, so the fewer of both the more sets per second: waiters should
  // sleep long and let a writer finish its run.
  // But SQLite's own waits (up to 100 ms) let a waiter keep missing the
  // moments the lock is free, past the timeout. So: jittered sleeps growing
  // from 0.1 ms to 50 ms, and a waiter that has waited 1 s retries every
  // 2 to 4 ms until it gets its turn. Off: fail at once with SQLITE_BUSY.
  void wait_when_busy(bool on) {
    sqlite3_busy_handler(db.getHandle(), on ? &Connection::on_busy : nullptr, this);
  }

  static int on_busy(void* self, int attempt) {
    auto& c = *static_cast<Connection*>(self);
    const auto now = std::chrono::steady_clock::now();
    if (attempt == 0) c.busy_since = now;
    const auto waited = now - c.busy_since;
    if (waited >= c.busy_timeout) return 0;
    const int step = waited < std::chrono::seconds(1) ? std::min(50000, 100 << std::min(attempt, 9))
                                                      : 4000;  // microseconds
    const auto jitter = static_cast<int>(
        (static_cast<unsigned>(attempt) * 2654435761u ^ static_cast<unsigned>(::getpid())) %
        static_cast<unsigned>(step));
    // Never past the deadline: the last try comes at the timeout, not up to
    // one long sleep after it.
    const auto left = std::chrono::ceil<std::chrono::microseconds>(c.busy_timeout - waited);
    std::this_thread::sleep_for(std::min(std::chrono::microseconds(step / 2 + jitter / 2), left));
    return 1;
  }

  // A prepared statement, kept for the life of the connection.
  SQLite::Statement& prepare(const char* sql) {
    auto& slot = statements[sql];
    if (!slot) slot = std::make_unique<SQLite::Statement>(db, sql);
    return *slot;
  }
};

Store::Store(std::string path, std::chrono::milliseconds busy_timeout)
    : path_(std::move(path)), busy_timeout_(busy_timeout) {}

Store::~Store() {
  if (conn_ && owner_fork_ != fork_generation()) {
    abandon(conn_.get(), conn_->db.getHandle(), path_);
    conn_.release();
  }
  conn_.reset();
  close_file_handle();
}

void Store::fail(const std::exception& error, const char* operation) {
  // Only SQLite's errors are translated; the library's own and anything
  // thrown by a caller's transaction body pass through unchanged.
  const auto* sq = dynamic_cast<const SQLite::Exception*>(&error);
  if (sq == nullptr) throw;
  int code = sq->getErrorCode() & 0xFF;
  // A full disk, a quota or a file-size limit can surface as an I/O error.
  const int os_error = conn_ ? sqlite3_system_errno(conn_->db.getHandle()) : 0;
  if (code == SQLITE_IOERR && (os_error == ENOSPC || os_error == EDQUOT || os_error == EFBIG)) {
    code = SQLITE_FULL;
  }
  // An error while opening keeps no system error at all; on a disk with no
  // space left the disk is the likely cause, and the one to name.
  struct statvfs vfs {};
  if ((code == SQLITE_IOERR || code == SQLITE_CANTOPEN) && os_error == 0 &&
      ::statvfs(path_.c_str(), &vfs) == 0 && vfs.f_bavail == 0) {
    code = SQLITE_FULL;
  }
  // Every operation reads as a phrase with the registry's path after it:
  // "could not record history in /srv/registry.db".
  const std::string doing = std::string(operation) + " " + path_;
  const auto on_read_only_file_system = [&] {
    return RegistryReadOnly(path_, "registry " + path_ +
                                       " is on a read-only file system; could not " + doing +
                                       ", nothing was changed. To change it, use a copy on a "
                                       "writable file system");
  };
  switch (code) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      throw RegistryBusy(path_, "registry " + path_ +
                                    " is busy: another process held its lock for longer than "
                                    "the busy timeout of " +
                                    std::to_string(busy_timeout_.count()) + " ms, so this " +
                                    "process could not " + doing +
                                    "; nothing was changed. Retry, or raise the busy timeout");
    case SQLITE_READONLY:
    case SQLITE_PERM:
      if (read_only_file_system(path_)) throw on_read_only_file_system();
      throw RegistryReadOnly(path_, "registry " + path_ +
                                        " is read-only for this process (file or directory "
                                        "permissions); could not " +
                                        doing +
                                        ", nothing was changed. Ask its owner for write "
                                        "access, or use another registry with --registry");
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      throw RegistryCorrupt(path_, "registry " + path_ + " is damaged (" + error.what() +
                                       "); could not " + doing +
                                       ", nothing was changed. Restore it from a backup made "
                                       "with `tfimm-cache export`, or move it aside");
    case SQLITE_FULL:
      throw RegistryFull(path_, "the disk holding registry " + path_ +
                                    " is full (or a quota or file-size limit was reached); "
                                    "could not " +
                                    doing + ", nothing was changed. Free space and retry");
    case SQLITE_CANTOPEN:
      if (read_only_file_system(path_)) throw on_read_only_file_system();
      throw RegistryError(path_, "cannot open registry " + path_ + ": " + open_problem(path_));
    case SQLITE_IOERR: {
      // SQLite does not always keep the system's reason (a file-size limit
      // reads as a plain write error), so name the likely ones.
      const int extended = sq->getExtendedErrorCode();
      // Anything but a read may be a write that did not fit: of the log, of
      // the -shm (made and grown when a connection opens), of the file.
      const bool writing = extended != SQLITE_IOERR_READ && extended != SQLITE_IOERR_SHORT_READ;
      throw RegistryError(path_, "could not " + doing + ": " + error.what() +
                                     (writing ? " (the disk may be full, or a quota or "
                                                "file-size limit reached)"
                                              : "") +
                                     "; nothing was changed");
    }
    default:
      throw RegistryError(path_, "could not " + doing + ": " + error.what());
  }
}

namespace {

// Too little room to create SQLite's -wal and -shm files (the -shm alone takes
// 32 KiB) and write a little.
bool nearly_full(const std::string& path) {
  struct statvfs vfs {};
  if (::statvfs(path.c_str(), &vfs) != 0) return false;
  constexpr unsigned long long kRoom = 128 << 10;
  return vfs.f_favail == 0 || static_cast<unsigned long long>(vfs.f_bavail) * vfs.f_frsize < kRoom;
}

bool has_changes_beside(const std::string& path) {
  struct stat st {};
  // A -wal with frames holds committed changes not yet in the file; a
  // -journal may be a hot one, whose transaction must be rolled back first.
  return (::stat((path + "-wal").c_str(), &st) == 0 && st.st_size > 0) ||
         ::stat((path + "-journal").c_str(), &st) == 0;
}

// Whether the registry at `path` (an existing file with header `h`) is to
// be read as it is on disk, as SQLite's immutable: a WAL file with nothing
// beside it, that this process could not have SQLite create or use the -wal
// and -shm files for (`cannot_write`: a read-only file system or directory,
// a file it cannot write; or a full disk). Such a file holds every committed change itself, so
// reading it so is exact; SQLite's normal open would fail there, or leave
// -wal and -shm files owned by this process behind. Never a file in
// rollback-journal mode: its writers change the file in place, which an
// immutable reader, taking no locks, could see half done.
bool only_readable_as_is(const std::string& path, const Header& h,
                         const std::string& cannot_write) {
  if (!h.wal || has_changes_beside(path)) return false;
  return !cannot_write.empty() || nearly_full(path);
}

// A WAL file with neither -wal nor -journal beside it: no connection has it
// open, and the file holds everything. Read as it is, it is read exactly and
// nothing is made beside it.
bool untouched(const std::string& path, const Header& h) {
  return h.wal && ::access((path + "-wal").c_str(), F_OK) != 0 &&
         ::access((path + "-journal").c_str(), F_OK) != 0;
}

// An SQLite URI for `path` with `query`: every byte that could end the path
// part of a URI ('?', '#', '%', ...) percent-encoded.
std::string sqlite_uri(const std::string& path, const char* query) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string uri = "file:";
  for (const char ch : path) {
    const auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) != 0 || std::strchr("/-._~", ch) != nullptr) {
      uri += ch;
    } else {
      uri += '%';
      uri += kHex[c >> 4];
      uri += kHex[c & 0xF];
    }
  }
  return uri + "?" + query;
}

}  // namespace

bool Store::open(bool create, bool for_write) {
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
                                     "; nothing was changed. Create it yourself, or point "
                                     "--registry at a file in a directory you can write");
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
                                        "for write access, or use another registry with "
                                        "--registry");
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
    // Registry serialises every use of a connection (one mutex per Registry),
    // so SQLite's own per-connection mutex is redundant: without it each
    // sqlite3_* call skips a lock/unlock pair.
    int flags = SQLite::OPEN_READWRITE | SQLite::OPEN_NOMUTEX;
    if (create) flags |= SQLite::OPEN_CREATE;
    if (snapshot) flags = SQLite::OPEN_READONLY | SQLite::OPEN_NOMUTEX | SQLite::OPEN_URI;
    auto c = std::make_unique<Connection>(snapshot ? sqlite_uri(path_, "immutable=1") : path_,
                                          flags, busy_timeout_);
    static const sqlite3_module module = changes_module();
    sqlite3_create_module(c->db.getHandle(), "tfimm_changes", &module, nullptr);
    owner_fork_ = fork_generation();
    migrate(*c);
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

// Whether a registry opened as immutable may have changed since: another
// process with write access may have written it through another mount or
// as another user (then a -wal file appears, or the file itself changes).
bool Store::snapshot_changed() const {
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0 || st.st_dev != dev_ || st.st_ino != ino_ ||
      st.st_size != snapshot_size_ || st.st_mtim.tv_sec != snapshot_mtime_.tv_sec ||
      st.st_mtim.tv_nsec != snapshot_mtime_.tv_nsec) {
    return true;
  }
  return has_changes_beside(path_);
}

bool Store::still_at_path() const {
  struct stat st {};
  return ::stat(path_.c_str(), &st) == 0 && st.st_dev == dev_ && st.st_ino == ino_;
}

void Store::check_identity() {
  if (depth_ > 0) return;  // inside a transaction: the file is locked
  // Before each read: has the open file been deleted or had another file
  // renamed over it? Either takes its last name away, which one fstat of the
  // handle shows, for about a third of the cost of a stat by path. Network
  // file systems cache attributes, so there the path is asked.
  struct stat st {};
  if (!network_fs_ && file_fd_ >= 0 && ::fstat(file_fd_, &st) == 0) {
    if (st.st_nlink > 0) return;
  } else if (still_at_path()) {
    return;
  }
  retire_connection();
}

void Store::close_file_handle() noexcept {
  if (file_fd_ >= 0) ::close(file_fd_);
  file_fd_ = -1;
}

void Store::retire_connection() {
  // Deleted or replaced while open: drop the connection to the old file so
  // that nothing is ever written into an unlinked file. First move what the
  // old file's write-ahead log holds into that old file and empty the log:
  // the log is found by name, and a next opener would otherwise lay the old
  // file's log over the file now at the path.
  sqlite3_exec(conn_->db.getHandle(), "PRAGMA wal_checkpoint(TRUNCATE)", nullptr, nullptr, nullptr);
  conn_.reset();
  close_file_handle();
}

void Store::migrate(Connection& c) {
  auto& db = c.db;
  const bool read_only = sqlite3_db_readonly(db.getHandle(), "main") == 1;
  // Look before writing anything: a foreign or damaged file is refused here.
  // One snapshot, so that another process's migration committing in between
  // cannot look like tables without our application id.
  int app_id = 0;
  int version = 0;
  int tables = 0;
  db.exec("BEGIN");
  try {
    app_id = db.execAndGet("PRAGMA application_id").getInt();
    version = db.execAndGet("PRAGMA user_version").getInt();
    tables = db.execAndGet("SELECT count(*) FROM sqlite_master").getInt();
    db.exec("COMMIT");
  } catch (...) {
    sqlite3_exec(db.getHandle(), "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
  if (app_id != kApplicationId && (app_id != 0 || tables > 0)) {
    throw foreign_database(path_, app_id);
  }
  if (version > schema_version()) {
    throw RegistryTooNew(path_,
                         "registry " + path_ + " was written by a newer tfimm-cache (schema " +
                             std::to_string(version) + "); this build knows schema " +
                             std::to_string(schema_version()) +
                             ". Upgrade tfimm-cache; the file was left unchanged",
                         version, schema_version());
  }
  db.exec("PRAGMA synchronous=FULL");
  prepare_connection(db, path_, !read_only && version < schema_version(), &Connection::on_busy, &c);
  if (version == schema_version()) {
    if (!read_only && !inspect_) set_journal_mode(c);
    return;
  }
  if (read_only) {
    throw RegistryReadOnly(path_, "registry " + path_ + " has schema " + std::to_string(version) +
                                      " and needs upgrading to " +
                                      std::to_string(schema_version()) +
                                      ", but it is read-only for this process. Run "
                                      "`tfimm-cache migrate` as a user who can write it");
  }
  for (const auto& m : kMigrations) {
    if (m.version <= version) continue;
    db.exec("BEGIN IMMEDIATE");
    try {
      // Another process may have migrated while this one waited for the lock.
      version = db.execAndGet("PRAGMA user_version").getInt();
      if (version < m.version) {
        db.exec(std::string(m.sql));
        db.exec("PRAGMA application_id=" + std::to_string(kApplicationId));
        db.exec("PRAGMA user_version=" + std::to_string(m.version));
        SQLite::Statement record(db,
                                 "INSERT INTO schema_migrations(version, applied_at) VALUES(?, ?)");
        record.bind(1, m.version);
        record.bind(2, static_cast<std::int64_t>(now_ms()));
        record.exec();
        version = m.version;
      }
      db.exec("COMMIT");
    } catch (...) {
      sqlite3_exec(db.getHandle(), "ROLLBACK", nullptr, nullptr, nullptr);
      throw;
    }
  }
  set_journal_mode(c);
}

void Store::set_journal_mode(Connection& c) {
  auto& db = c.db;
  const std::string wanted = network_fs_ ? "delete" : "wal";
  if (db.execAndGet("PRAGMA journal_mode").getString() == wanted) return;
  // Changing the journal mode needs an exclusive lock, and SQLite's busy
  // handler would wait for it while holding a shared lock, which can
  // deadlock with another process doing the same or committing a migration.
  // So: no busy handler here, and short retries holding nothing in between.
  const auto deadline = std::chrono::steady_clock::now() + busy_timeout_;
  const std::string pragma = "PRAGMA journal_mode=" + wanted;
  c.wait_when_busy(false);
  std::string mode;
  for (unsigned attempt = 0;; ++attempt) {
    try {
      mode = db.execAndGet(pragma).getString();
    } catch (const SQLite::Exception& e) {
      if ((e.getErrorCode() & 0xFF) != SQLITE_BUSY && (e.getErrorCode() & 0xFF) != SQLITE_LOCKED) {
        c.wait_when_busy(true);
        throw;
      }
    }
    if (mode == wanted || std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::microseconds(500 + (attempt % 8) * 700));
  }
  c.wait_when_busy(true);
  // Past the deadline the registry keeps its current journal mode, which is
  // safe, only less concurrent; `tfimm-cache doctor` shows it.
}

// Sets held by defer_set() before they are written anyway: about 10 MB.
constexpr std::size_t kMaxDeferredSets = 65536;

Store::Connection& Store::conn() {
  // Every statement goes through here: deferred sets are written before
  // anything else reads or writes (and may create the registry first).
  if (!deferred_.empty() && !writing_deferred_) write_deferred();
  if (!conn_) throw std::logic_error("tfimm: registry used before Store::open()");
  return *conn_;
}

bool Store::read_absent() {
  // Pending sets are changes: they create the registry before the read. A
  // registry that exists but cannot be written is read as it is.
  if (!absent_ || !deferred_.empty() || !absent_->blocked.empty()) return false;
  absent_->read = true;
  return true;
}

void Store::materialize() {
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
                                      "or use another registry with --registry");
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

void Store::begin_write() {
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

void Store::end_write() noexcept {
  if (!conn_) return;
  auto* db = conn_->db.getHandle();
  if (!sqlite3_get_autocommit(db)) sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
  if (grown_ == conn_.get()) {
    const std::string sql = "PRAGMA cache_size = " + std::to_string(normal_cache_);
    sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr);
  }
  grown_ = nullptr;
}

void Store::defer_set(std::string name, std::string path) {
  if (depth_ == 0) throw std::logic_error("tfimm: Store::defer_set() outside write()");
  // A repeated name: the pending sets first. Many pending sets: written in
  // batches, so that a huge transaction does not hold them all in memory.
  if (deferred_names_.count(name) != 0 || deferred_.size() >= kMaxDeferredSets) write_deferred();
  deferred_.emplace_back(std::move(name), std::move(path));
  deferred_names_.insert(deferred_.back().first);
}

void Store::write_deferred() {
  writing_deferred_ = true;
  struct Done {
    Store& store;
    ~Done() { store.drop_deferred(); }
  } done{*this};
  const auto now = now_ms();
  if (deferred_.size() == 1) {
    // One set (a transaction that reads after each write): the two kept
    // statements of a single set, not two set-based ones prepared anew.
    add_set_history(deferred_[0].first, deferred_[0].second, now);
    upsert_model(deferred_[0].first, deferred_[0].second, now);
    return;
  }
  std::vector<PathChange> changes;
  changes.reserve(deferred_.size());
  for (const auto& [key, i] :
       name_order(deferred_, [](const auto& set) -> const std::string& { return set.first; })) {
    changes.push_back({&deferred_[i].first, &deferred_[i].second, nullptr});
  }
  // History first: it reads each entry's old path.
  add_histories("set", changes, now, OldPaths::Current);
  upsert_models(changes, now);
}

void Store::drop_deferred() noexcept {
  deferred_.clear();
  deferred_names_.clear();
  writing_deferred_ = false;
}

bool Store::read(const std::function<void()>& body) {
  if (depth_ > 0) {
    body();
    return true;
  }
  if (!open(false)) return false;
  auto& db = conn_->db;
  try {
    db.exec("BEGIN");
  } catch (const std::exception& e) {
    fail(e, "read");
  }
  try {
    body();
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

void Store::write(const std::function<void()>& body) {
  if (depth_ > 0) {
    body();
    return;
  }
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
    body();
    if (fork_generation() != generation) {
      throw TransactionMisuse("this process was forked inside a transaction() body on registry " +
                              path_ +
                              "; the transaction belongs to the parent process, which commits "
                              "or rolls it back, and this process wrote nothing. It can still "
                              "read the registry; write from the parent");
    }
    if (!deferred_.empty()) write_deferred();
    --depth_;
    if (absent_) {
      absent_.reset();  // nothing changed: nothing to create or write
      end_write();
      return;
    }
    conn_->db.exec("COMMIT");
    end_write();
  } catch (const SQLite::Exception& e) {
    drop_deferred();
    depth_ = 0;
    absent_.reset();
    if (!inherited()) end_write();
    fail(e, "write to");
  } catch (...) {
    drop_deferred();
    depth_ = 0;
    absent_.reset();
    if (!inherited()) end_write();
    throw;
  }
}

void Store::bulk_write(const std::function<void()>& body) {
  if (depth_ > 0) {
    body();
    return;
  }
  bulk_ = true;
  struct Done {
    Store& store;
    ~Done() { store.bulk_ = false; }
  } done{*this};
  write(body);
}

// -- reads --------------------------------------------------------------------

std::optional<std::string> Store::model_path(const std::string& name) {
  if (read_absent()) return {};
  try {
    Use st(conn().prepare("SELECT path FROM models WHERE name = ?"));
    st->bindNoCopy(1, name);
    if (!st->executeStep()) return std::nullopt;
    return st->getColumn(0).getString();
  } catch (const std::exception& e) {
    fail(e, "look up a model in");
  }
}

Store::Lookup Store::lookup(const std::string& name, const std::string& setting_key) {
  if (read_absent()) return {};
  try {
    auto& c = conn();
    Lookup found;
    {
      Use st(c.prepare("SELECT path FROM models WHERE name = ?1"));
      st->bindNoCopy(1, name);
      if (st->executeStep()) {
        found.path = st->getColumn(0).getString();
        return found;
      }
    }
    // Not registered: the caller needs the setting as of that same snapshot.
    // The value read last is still the one in it when nothing has been
    // committed since, by any connection: the data version is unchanged.
    // Never reused or kept inside a write, which may yet roll back.
    auto& cached = c.cached_setting;
    if (depth_ == 0 && cached.valid && cached.key == setting_key &&
        cached.version == c.data_version()) {
      found.setting = cached.value;
      return found;
    }
    // Otherwise the entry and the setting again, in one statement and so in
    // one snapshot; LIMIT 1 skips the setting when the entry now exists.
    Use st(
        c.prepare("SELECT 1, path FROM models WHERE name = ?1 UNION ALL "
                  "SELECT 0, value FROM settings WHERE key = ?2 LIMIT 1"));
    st->bindNoCopy(1, name);
    st->bindNoCopy(2, setting_key);
    if (st->executeStep()) {
      (st->getColumn(0).getInt() == 1 ? found.path : found.setting) = st->getColumn(1).getString();
    }
    if (depth_ == 0 && !found.path) cached = {true, setting_key, found.setting, c.data_version()};
    return found;
  } catch (const std::exception& e) {
    fail(e, "look up a model in");
  }
}

std::optional<Entry> Store::model(const std::string& name) {
  if (read_absent()) return {};
  try {
    static const std::string sql =
        std::string("SELECT ") + kModelColumns + " FROM models WHERE name = ?";
    Use st(conn().prepare(sql.c_str()));
    st->bindNoCopy(1, name);
    if (!st->executeStep()) return std::nullopt;
    return entry_from_row(*st);
  } catch (const std::exception& e) {
    fail(e, "read an entry of");
  }
}

std::vector<Entry> Store::models() {
  if (read_absent()) return {};
  try {
    static const std::string sql =
        std::string("SELECT ") + kModelColumns + " FROM models ORDER BY name";
    Use st(conn().prepare(sql.c_str()));
    std::vector<Entry> out;
    while (st->executeStep()) out.push_back(entry_from_row(*st));
    return out;
  } catch (const std::exception& e) {
    fail(e, "list the entries of");
  }
}

std::vector<std::string> Store::model_names() {
  if (read_absent()) return {};
  try {
    Use st(conn().prepare("SELECT name FROM models ORDER BY name"));
    std::vector<std::string> out;
    while (st->executeStep()) out.push_back(st->getColumn(0).getString());
    return out;
  } catch (const std::exception& e) {
    fail(e, "list the entries of");
  }
}

std::size_t Store::model_count() {
  if (read_absent()) return {};
  try {
    Use st(conn().prepare("SELECT count(*) FROM models"));
    st->executeStep();
    return static_cast<std::size_t>(st->getColumn(0).getInt64());
  } catch (const std::exception& e) {
    fail(e, "count the entries of");
  }
}

std::optional<std::string> Store::setting(const std::string& key) {
  if (read_absent()) return {};
  try {
    Use st(conn().prepare("SELECT value FROM settings WHERE key = ?"));
    st->bindNoCopy(1, key);
    if (!st->executeStep()) return std::nullopt;
    return st->getColumn(0).getString();
  } catch (const std::exception& e) {
    fail(e, "read a setting of");
  }
}

std::vector<HistoryRecord> Store::history(const std::optional<std::string>& name,
                                          std::size_t limit) {
  if (read_absent()) return {};
  try {
    const char* sql =
        name ? "SELECT id, at, action, name, old_path, new_path, user, host, pid FROM history "
               "WHERE name = ?1 ORDER BY id DESC LIMIT ?2"
             : "SELECT id, at, action, name, old_path, new_path, user, host, pid FROM history "
               "ORDER BY id DESC LIMIT ?2";
    Use st(conn().prepare(sql));
    if (name) st->bindNoCopy(1, *name);
    st->bind(2, limit == 0 ? std::int64_t{-1} : static_cast<std::int64_t>(limit));
    std::vector<HistoryRecord> out;
    while (st->executeStep()) {
      HistoryRecord r;
      r.id = st->getColumn(0).getInt64();
      r.at = st->getColumn(1).getInt64();
      r.action = st->getColumn(2).getString();
      r.name = st->getColumn(3).getString();
      if (!st->getColumn(4).isNull()) r.old_path = st->getColumn(4).getString();
      if (!st->getColumn(5).isNull()) r.new_path = st->getColumn(5).getString();
      r.user = st->getColumn(6).getString();
      r.host = st->getColumn(7).getString();
      r.pid = st->getColumn(8).getInt64();
      out.push_back(std::move(r));
    }
    return out;
  } catch (const std::exception& e) {
    fail(e, "read the history of");
  }
}

// -- writes -------------------------------------------------------------------

void Store::upsert_model(const std::string& name, const std::string& path, Timestamp now) {
  if (absent_) materialize();
  try {
    Use st(conn().prepare(
        "INSERT INTO models(name, path, created_at, updated_at) VALUES(?1, ?2, ?3, ?3) "
        "ON CONFLICT(name) DO UPDATE SET path = excluded.path, "
        "updated_at = excluded.updated_at, missing_since = NULL"));
    st->bindNoCopy(1, name);
    st->bindNoCopy(2, path);
    st->bind(3, static_cast<std::int64_t>(now));
    st->exec();
  } catch (const std::exception& e) {
    fail(e, "register a model in");
  }
}

void Store::upsert_models(const std::vector<PathChange>& changes, Timestamp now) {
  if (changes.empty()) return;
  if (absent_) materialize();
  try {
    run_with_changes(conn().db.getHandle(),
                     "INSERT INTO models(name, path, created_at, updated_at) "
                     "SELECT name, path, ?2, ?2 FROM tfimm_changes(?1) WHERE true "
                     "ON CONFLICT(name) DO UPDATE SET path = excluded.path, "
                     "updated_at = excluded.updated_at, missing_since = NULL",
                     changes, [&](sqlite3_stmt* st) { sqlite3_bind_int64(st, 2, now); });
  } catch (const std::exception& e) {
    fail(e, "register models in");
  }
}

void Store::add_histories(const std::string& action, const std::vector<PathChange>& changes,
                          Timestamp now, OldPaths old_paths) {
  if (changes.empty()) return;
  if (absent_) materialize();
  try {
    const Actor& who = actor_base();
    const char* sql =
        old_paths == OldPaths::Given
            ? "INSERT INTO history(at, action, name, old_path, new_path, user, host, pid) "
              "SELECT ?2, ?3, name, old_path, path, ?4, ?5, ?6 FROM tfimm_changes(?1)"
            : "INSERT INTO history(at, action, name, old_path, new_path, user, host, pid) "
              "SELECT ?2, ?3, c.name, (SELECT path FROM models WHERE name = c.name), c.path, "
              "?4, ?5, ?6 FROM tfimm_changes(?1) AS c";
    run_with_changes(conn().db.getHandle(), sql, changes, [&](sqlite3_stmt* st) {
      sqlite3_bind_int64(st, 2, now);
      sqlite3_bind_text(st, 3, action.data(), static_cast<int>(action.size()), SQLITE_STATIC);
      sqlite3_bind_text(st, 4, who.user.data(), static_cast<int>(who.user.size()), SQLITE_STATIC);
      sqlite3_bind_text(st, 5, who.host.data(), static_cast<int>(who.host.size()), SQLITE_STATIC);
      sqlite3_bind_int64(st, 6, current_pid());
    });
  } catch (const std::exception& e) {
    fail(e, "record history in");
  }
}

bool Store::delete_model(const std::string& name) {
  if (read_absent()) return false;  // no such row
  if (absent_ && !model_path(name)) return false;
  if (absent_) materialize();
  try {
    Use st(conn().prepare("DELETE FROM models WHERE name = ?"));
    st->bindNoCopy(1, name);
    return st->exec() > 0;
  } catch (const std::exception& e) {
    fail(e, "remove an entry from");
  }
}

void Store::set_lock(const std::string& name, bool locked, const std::string& reason) {
  if (read_absent()) return;  // no such row
  if (absent_) materialize();
  try {
    Use st(conn().prepare("UPDATE models SET locked = ?2, lock_reason = ?3 WHERE name = ?1"));
    st->bindNoCopy(1, name);
    st->bind(2, locked ? 1 : 0);
    st->bindNoCopy(3, reason);
    st->exec();
  } catch (const std::exception& e) {
    fail(e, "lock an entry in");
  }
}

void Store::mark_missing(const std::string& name, const std::string& path, Timestamp updated_at,
                         std::optional<Timestamp> now) {
  if (read_absent()) return;  // no such row
  if (absent_) materialize();
  try {
    Use st(
        conn().prepare("UPDATE models SET missing_since = CASE WHEN ?4 IS NULL THEN NULL "
                       "ELSE coalesce(missing_since, ?4) END "
                       "WHERE name = ?1 AND path = ?2 AND updated_at = ?3"));
    st->bindNoCopy(1, name);
    st->bindNoCopy(2, path);
    st->bind(3, static_cast<std::int64_t>(updated_at));
    if (now) {
      st->bind(4, static_cast<std::int64_t>(*now));
    } else {
      st->bind(4);
    }
    st->exec();
  } catch (const std::exception& e) {
    fail(e, "record missing paths in");
  }
}

void Store::put_setting(const std::string& key, const std::string& value) {
  if (absent_) materialize();
  try {
    Use st(
        conn().prepare("INSERT INTO settings(key, value) VALUES(?1, ?2) "
                       "ON CONFLICT(key) DO UPDATE SET value = excluded.value"));
    st->bindNoCopy(1, key);
    st->bindNoCopy(2, value);
    st->exec();
  } catch (const std::exception& e) {
    fail(e, "store a setting in");
  }
}

bool Store::delete_setting(const std::string& key) {
  if (read_absent()) return false;  // no such row
  if (absent_ && !setting(key)) return false;
  if (absent_) materialize();
  try {
    Use st(conn().prepare("DELETE FROM settings WHERE key = ?"));
    st->bindNoCopy(1, key);
    return st->exec() > 0;
  } catch (const std::exception& e) {
    fail(e, "remove a setting from");
  }
}

void Store::add_history(const std::string& action, const std::string& name,
                        const std::optional<std::string>& old_path,
                        const std::optional<std::string>& new_path, Timestamp now) {
  if (absent_) materialize();
  try {
    const Actor& who = actor_base();
    Use st(
        conn().prepare("INSERT INTO history(at, action, name, old_path, new_path, user, host, pid) "
                       "VALUES(?, ?, ?, ?, ?, ?, ?, ?)"));
    st->bind(1, static_cast<std::int64_t>(now));
    st->bindNoCopy(2, action);
    st->bindNoCopy(3, name);
    if (old_path) {
      st->bindNoCopy(4, *old_path);
    } else {
      st->bind(4);
    }
    if (new_path) {
      st->bindNoCopy(5, *new_path);
    } else {
      st->bind(5);
    }
    st->bindNoCopy(6, who.user);
    st->bindNoCopy(7, who.host);
    st->bind(8, static_cast<std::int64_t>(current_pid()));
    st->exec();
  } catch (const std::exception& e) {
    fail(e, "record history in");
  }
}

void Store::add_set_history(const std::string& name, const std::string& new_path, Timestamp now) {
  if (absent_) materialize();
  try {
    const Actor& who = actor_base();
    // The old path is read by the same statement: one step per set, not two.
    Use st(conn().prepare(
        "INSERT INTO history(at, action, name, old_path, new_path, user, host, pid) "
        "VALUES(?1, 'set', ?2, (SELECT path FROM models WHERE name = ?2), ?3, ?4, ?5, ?6)"));
    st->bind(1, static_cast<std::int64_t>(now));
    st->bindNoCopy(2, name);
    st->bindNoCopy(3, new_path);
    st->bindNoCopy(4, who.user);
    st->bindNoCopy(5, who.host);
    st->bind(6, static_cast<std::int64_t>(current_pid()));
    st->exec();
  } catch (const std::exception& e) {
    fail(e, "record history in");
  }
}

// -- facts --------------------------------------------------------------------

int Store::user_version() {
  try {
    return conn().db.execAndGet("PRAGMA user_version").getInt();
  } catch (const std::exception& e) {
    fail(e, "read the schema version of");
  }
}

std::string Store::journal_mode() {
  // SQLite reports "delete" for a file it reads as immutable, whatever the
  // file's own mode.
  if (snapshot_) return "wal";  // only a WAL file is read as it is
  try {
    return conn().db.execAndGet("PRAGMA journal_mode").getString();
  } catch (const std::exception& e) {
    fail(e, "read the journal mode of");
  }
}

std::string Store::integrity_check() {
  try {
    return conn().db.execAndGet("PRAGMA integrity_check").getString();
  } catch (const std::exception& e) {
    fail(e, "check the integrity of");
  }
}

MigrationStatus inspect_migrations(const std::string& path) {
  MigrationStatus status;
  status.path = path;
  status.latest = schema_version();
  status.exists = registry_exists(path);
  if (status.exists) {
    const Header header = check_header(path);
    try {
      // With no -wal beside it no connection has the file open, and the
      // file holds everything: read it as it is, creating nothing. Otherwise
      // the -wal and -shm are there already; a read-write connection (the
      // file is never written by these reads) removes them again when it
      // closes last, which a read-only one cannot.
      const bool as_is =
          only_readable_as_is(path, header, permission_problem(path)) || untouched(path, header);
      SQLite::Database db(
          as_is ? sqlite_uri(path, "immutable=1") : path,
          as_is ? SQLite::OPEN_READONLY | SQLite::OPEN_URI : SQLite::OPEN_READWRITE);
      status.current = db.execAndGet("PRAGMA user_version").getInt();
      const int app_id = db.execAndGet("PRAGMA application_id").getInt();
      const int tables = db.execAndGet("SELECT count(*) FROM sqlite_master").getInt();
      if (app_id != kApplicationId && (app_id != 0 || tables > 0)) {
        throw foreign_database(path, app_id);
      }
      if (status.current > 0 && db.tableExists("schema_migrations")) {
        SQLite::Statement q(db,
                            "SELECT version, applied_at FROM schema_migrations ORDER BY version");
        while (q.executeStep()) {
          status.applied.emplace_back(q.getColumn(0).getInt(), q.getColumn(1).getInt64());
        }
      }
    } catch (const SQLite::Exception& e) {
      throw RegistryError(path, "cannot read the schema of registry " + path + ": " + e.what() +
                                    "; nothing was changed. `tfimm-cache doctor` says more");
    }
  }
  for (const auto& m : kMigrations) {
    if (m.version > status.current) status.pending.push_back(m.version);
  }
  return status;
}

}  // namespace detail
}  // namespace tfimm
