#include "recording_vfs.hpp"

#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <stdexcept>

namespace powerloss {

const char* to_string(OpKind kind) {
  switch (kind) {
    case OpKind::Write:
      return "writes";
    case OpKind::Truncate:
      return "truncates";
    case OpKind::Sync:
      return "syncs";
    case OpKind::Create:
      return "creates";
    case OpKind::Delete:
      return "deletes";
    case OpKind::DirSync:
      return "directory syncs";
    case OpKind::Begin:
      return "calls started";
    case OpKind::Ack:
      return "acknowledgements";
  }
  return "?";
}

std::size_t Log::count(OpKind kind) const {
  std::size_t n = 0;
  for (const auto& op : ops) n += op.kind == kind;
  return n;
}

namespace {

sqlite3_vfs* g_unix = nullptr;
sqlite3_vfs g_vfs;
sqlite3_io_methods g_methods;

// Several connections (and threads) may do I/O at once: one lock for the log.
std::mutex g_mutex;
Log g_log;
std::string g_dir;                               // with a trailing '/'
std::map<std::string, std::uint32_t> g_current;  // name -> inode, as now
std::atomic<bool> g_suppress{false};

// openDirectory opened the directory inside the current call, which then
// fsyncs it: logged once that call returns.
thread_local bool t_dir_opened = false;
sqlite3_syscall_ptr g_real_open_directory = nullptr;

int open_directory(const char* path, int* fd) {
  if (g_suppress) return SQLITE_CANTOPEN;
  const int rc = reinterpret_cast<int (*)(const char*, int*)>(g_real_open_directory)(path, fd);
  if (rc == SQLITE_OK) t_dir_opened = true;
  return rc;
}

struct File {
  sqlite3_file base;
  sqlite3_file* real;
  bool tracked;
  std::uint32_t inode;
};

std::uint32_t name_id(const std::string& name) {
  for (std::uint32_t i = 0; i < g_log.names.size(); ++i) {
    if (g_log.names[i] == name) return i;
  }
  g_log.names.push_back(name);
  return static_cast<std::uint32_t>(g_log.names.size() - 1);
}

void push(Op op) { g_log.ops.push_back(op); }

void push_dir_sync_if_any() {
  if (!t_dir_opened) return;
  t_dir_opened = false;
  push(Op{OpKind::DirSync});
}

// The base name of `path` if it is in the logged directory.
bool in_directory(const char* path, std::string* base) {
  if (path == nullptr || g_dir.empty()) return false;
  const std::string p(path);
  if (p.compare(0, g_dir.size(), g_dir) != 0 || p.find('/', g_dir.size()) != std::string::npos) {
    return false;
  }
  *base = p.substr(g_dir.size());
  return true;
}

File& file(sqlite3_file* f) { return *reinterpret_cast<File*>(f); }

int x_close(sqlite3_file* f) { return file(f).real->pMethods->xClose(file(f).real); }
int x_read(sqlite3_file* f, void* buf, int n, sqlite3_int64 off) {
  return file(f).real->pMethods->xRead(file(f).real, buf, n, off);
}
int x_write(sqlite3_file* f, const void* buf, int n, sqlite3_int64 off) {
  const int rc = file(f).real->pMethods->xWrite(file(f).real, buf, n, off);
  if (rc == SQLITE_OK && file(f).tracked) {
    std::lock_guard<std::mutex> lock(g_mutex);
    const auto* p = static_cast<const unsigned char*>(buf);
    push(Op{OpKind::Write, file(f).inode, 0, off, static_cast<std::uint32_t>(n),
            g_log.bytes.size()});
    g_log.bytes.insert(g_log.bytes.end(), p, p + n);
  }
  return rc;
}
int x_truncate(sqlite3_file* f, sqlite3_int64 size) {
  const int rc = file(f).real->pMethods->xTruncate(file(f).real, size);
  if (rc == SQLITE_OK && file(f).tracked) {
    std::lock_guard<std::mutex> lock(g_mutex);
    push(Op{OpKind::Truncate, file(f).inode, 0, size});
  }
  return rc;
}
int x_sync(sqlite3_file* f, int flags) {
  t_dir_opened = false;
  const int rc = file(f).real->pMethods->xSync(file(f).real, flags);
  if (rc == SQLITE_OK && file(f).tracked) {
    std::lock_guard<std::mutex> lock(g_mutex);
    push(Op{OpKind::Sync, file(f).inode});
    push_dir_sync_if_any();
  }
  t_dir_opened = false;
  return rc;
}
int x_file_size(sqlite3_file* f, sqlite3_int64* size) {
  return file(f).real->pMethods->xFileSize(file(f).real, size);
}
int x_lock(sqlite3_file* f, int level) {
  return file(f).real->pMethods->xLock(file(f).real, level);
}
int x_unlock(sqlite3_file* f, int level) {
  return file(f).real->pMethods->xUnlock(file(f).real, level);
}
int x_check_reserved(sqlite3_file* f, int* out) {
  return file(f).real->pMethods->xCheckReservedLock(file(f).real, out);
}
int x_file_control(sqlite3_file* f, int op, void* arg) {
  return file(f).real->pMethods->xFileControl(file(f).real, op, arg);
}
int x_sector_size(sqlite3_file* f) { return file(f).real->pMethods->xSectorSize(file(f).real); }
int x_device(sqlite3_file* f) {
  return file(f).real->pMethods->xDeviceCharacteristics(file(f).real);
}
int x_shm_map(sqlite3_file* f, int page, int size, int extend, void volatile** out) {
  return file(f).real->pMethods->xShmMap(file(f).real, page, size, extend, out);
}
int x_shm_lock(sqlite3_file* f, int offset, int n, int flags) {
  return file(f).real->pMethods->xShmLock(file(f).real, offset, n, flags);
}
void x_shm_barrier(sqlite3_file* f) { file(f).real->pMethods->xShmBarrier(file(f).real); }
int x_shm_unmap(sqlite3_file* f, int del) {
  return file(f).real->pMethods->xShmUnmap(file(f).real, del);
}

int x_open(sqlite3_vfs*, const char* name, sqlite3_file* f, int flags, int* out_flags) {
  auto& me = file(f);
  me.real = reinterpret_cast<sqlite3_file*>(&me + 1);
  std::string base;
  // The main database, its rollback journal and its WAL: what SQLite needs
  // to find after a crash. (The -shm is not opened through xOpen, and is
  // rebuilt after a crash by design.)
  me.tracked = (flags & (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_MAIN_JOURNAL | SQLITE_OPEN_WAL)) != 0 &&
               in_directory(name, &base);
  // Whether the file existed, the open that may create it and the log entry
  // are one step: two connections opening a WAL that is not there yet would
  // otherwise both log a Create, and the second would hide the first's writes.
  std::unique_lock<std::mutex> lock(g_mutex, std::defer_lock);
  if (me.tracked) lock.lock();
  const bool existed = me.tracked && ::access(name, F_OK) == 0;
  const int rc = g_unix->xOpen(g_unix, name, me.real, flags, out_flags);
  if (rc != SQLITE_OK) {
    f->pMethods = nullptr;
    return rc;
  }
  f->pMethods = &g_methods;
  if (me.tracked) {
    const auto known = g_current.find(base);
    if (existed && known != g_current.end()) {
      me.inode = known->second;
    } else {
      me.inode = g_log.inodes++;
      g_current[base] = me.inode;
      push(Op{OpKind::Create, me.inode, name_id(base)});
    }
  }
  return rc;
}

int x_delete(sqlite3_vfs*, const char* name, int sync_dir) {
  std::string base;
  const bool tracked = in_directory(name, &base);
  // Deleted and logged in one step, for the same reason as x_open.
  std::unique_lock<std::mutex> lock(g_mutex, std::defer_lock);
  if (tracked) lock.lock();
  t_dir_opened = false;
  const int rc = g_unix->xDelete(g_unix, name, sync_dir);
  if (rc == SQLITE_OK && tracked) {
    g_current.erase(base);
    push(Op{OpKind::Delete, 0, name_id(base)});
    push_dir_sync_if_any();
  }
  t_dir_opened = false;
  return rc;
}

}  // namespace

void install(const std::string& directory) {
  g_unix = sqlite3_vfs_find("unix");
  if (g_unix == nullptr) throw std::runtime_error("no unix VFS");
  g_real_open_directory = g_unix->xGetSystemCall(g_unix, "openDirectory");
  if (g_real_open_directory == nullptr ||
      g_unix->xSetSystemCall(g_unix, "openDirectory",
                             reinterpret_cast<sqlite3_syscall_ptr>(&open_directory)) != SQLITE_OK) {
    throw std::runtime_error("cannot override the unix VFS's openDirectory system call");
  }
  g_vfs = *g_unix;
  g_vfs.zName = "powerloss-recording";
  g_vfs.szOsFile = static_cast<int>(sizeof(File)) + g_unix->szOsFile;
  g_vfs.xOpen = &x_open;
  g_vfs.xDelete = &x_delete;
  g_vfs.pAppData = nullptr;
  // Version 2 of the I/O methods has no xFetch: SQLite never memory-maps the
  // files, so every write goes through xWrite.
  g_methods = sqlite3_io_methods{2,
                                 &x_close,
                                 &x_read,
                                 &x_write,
                                 &x_truncate,
                                 &x_sync,
                                 &x_file_size,
                                 &x_lock,
                                 &x_unlock,
                                 &x_check_reserved,
                                 &x_file_control,
                                 &x_sector_size,
                                 &x_device,
                                 &x_shm_map,
                                 &x_shm_lock,
                                 &x_shm_barrier,
                                 &x_shm_unmap,
                                 nullptr,
                                 nullptr};
  if (sqlite3_vfs_register(&g_vfs, 1) != SQLITE_OK) {
    throw std::runtime_error("cannot register the recording VFS");
  }
  restart(directory);
}

Log restart(const std::string& directory) {
  std::lock_guard<std::mutex> lock(g_mutex);
  Log previous = std::move(g_log);
  g_log = Log{};
  g_current.clear();
  g_dir = directory + "/";
  return previous;
}

void log_event(OpKind kind, std::int64_t call, std::uint32_t group) {
  std::lock_guard<std::mutex> lock(g_mutex);
  push(Op{kind, group, 0, call});
}

void suppress_directory_syncs(bool on) { g_suppress = on; }

}  // namespace powerloss
