// Disk usage: walks every model's path as `du -s` does, in parallel, within
// a model too (one huge model on a network share should not wait on one
// thread).
#include "tfimm/usage.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "fs.hpp"
#include "quote.hpp"
#include "storage/actor.hpp"
#include "tfimm/names.hpp"
#include "tfimm/paths.hpp"

namespace tfimm {
namespace {

unsigned pick_threads(unsigned wanted) {
  // Reading directories mostly waits on the file system (slow network
  // shares), not on the CPU; the same default as audit.
  return std::min(wanted != 0 ? wanted : 16u, 256u);
}

struct InodeKey {
  dev_t dev;
  ino_t ino;
  bool operator==(const InodeKey& o) const noexcept { return dev == o.dev && ino == o.ino; }
};

struct InodeHash {
  std::size_t operator()(const InodeKey& k) const noexcept {
    return std::hash<std::uint64_t>()(static_cast<std::uint64_t>(k.ino) * 31 +
                                      static_cast<std::uint64_t>(k.dev));
  }
};

// What one inode adds to the counts.
UsageCounts counts_of(const struct stat& st) {
  UsageCounts c;
  c.bytes = static_cast<std::uint64_t>(st.st_blocks) * 512;
  c.apparent_bytes = st.st_size > 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
  c.files = S_ISREG(st.st_mode) ? 1 : 0;
  return c;
}

void add(UsageCounts& to, const UsageCounts& c) {
  to.bytes += c.bytes;
  to.apparent_bytes += c.apparent_bytes;
  to.files += c.files;
}

void subtract(UsageCounts& from, const UsageCounts& c) {
  from.bytes -= c.bytes;
  from.apparent_bytes -= c.apparent_bytes;
  from.files -= c.files;
}

// The walk of one model, shared by the threads reading its directories.
struct ItemState {
  std::atomic<std::uint64_t> bytes{0};
  std::atomic<std::uint64_t> apparent_bytes{0};
  std::atomic<std::uint64_t> files{0};
  // Directories queued or being read; the model is finished at zero.
  std::atomic<std::size_t> pending{0};
  std::mutex m;  // guards what follows: rare, only for hard links and errors
  // Non-directories with more than one link, counted once each; kept for
  // the total, which counts them once across models too.
  std::unordered_map<InodeKey, UsageCounts, InodeHash> linked;
  std::vector<UsageProblem> unreadable;
  // The path with every symlink resolved, for the total; empty when the
  // path was not counted or could not be resolved.
  std::string real;
};

// A directory to read: `path` of model `item`. The registered path itself
// is followed; below it nothing is.
struct Task {
  std::size_t item;
  std::string path;
  bool root;
};

class Walker {
 public:
  Walker(std::vector<UsageItem>& items, const UsageOptions& options)
      : items_(items), options_(options), states_(items.size()) {}

  void run() {
    if (items_.empty()) return;
    {
      std::lock_guard<std::mutex> lock(m_);
      for (std::size_t i = items_.size(); i-- > 0;) {
        if (items_[i].status == PathStatus::OtherHost) {
          ++finished_;  // not this host's to measure
          continue;
        }
        states_[i].pending = 1;
        queue_.push_back({i, items_[i].path, true});
        ++outstanding_;
      }
    }
    const unsigned n = pick_threads(options_.threads);
    std::vector<std::thread> workers;
    workers.reserve(n);
    for (unsigned t = 0; t < n; ++t) workers.emplace_back([this] { work(); });
    std::exception_ptr failed;
    if (options_.progress) {
      std::size_t reported = static_cast<std::size_t>(-1);
      std::unique_lock<std::mutex> lock(m_);
      while (true) {
        const bool all = outstanding_ == 0;
        const std::size_t now = finished_.load();
        if (now != reported) {
          lock.unlock();
          try {
            options_.progress(now, items_.size());
          } catch (...) {
            // Rethrown once the walkers are joined: a thread still running
            // when the exception left would end the process.
            failed = std::current_exception();
          }
          lock.lock();
          reported = now;
          if (failed) {
            stop_ = true;
            work_cv_.notify_all();
            break;
          }
        }
        if (all) break;
        progress_cv_.wait_for(lock, std::chrono::milliseconds(100));
      }
    }
    for (auto& w : workers) w.join();
    if (failed) std::rethrow_exception(failed);
    for (std::size_t i = 0; i < items_.size(); ++i) {
      auto& item = items_[i];
      auto& state = states_[i];
      item.counts.bytes = state.bytes;
      item.counts.apparent_bytes = state.apparent_bytes;
      item.counts.files = state.files;
      item.unreadable = std::move(state.unreadable);
      std::sort(item.unreadable.begin(), item.unreadable.end(),
                [](const UsageProblem& a, const UsageProblem& b) { return a.path < b.path; });
    }
  }

  // The resolved path of item `i`, "" when unknown (after run()).
  const std::string& real_path(std::size_t i) const { return states_[i].real; }

  // Hard-linked inodes of item `i` (after run()).
  const std::unordered_map<InodeKey, UsageCounts, InodeHash>& linked(std::size_t i) const {
    return states_[i].linked;
  }

 private:
  void work() {
    std::vector<Task> found;
    while (true) {
      Task task;
      {
        std::unique_lock<std::mutex> lock(m_);
        work_cv_.wait(lock, [&] { return !queue_.empty() || outstanding_ == 0 || stop_; });
        if (queue_.empty() || stop_) return;
        task = std::move(queue_.back());
        queue_.pop_back();
      }
      found.clear();
      if (task.root) {
        start(task, found);
      } else if (const int fd = open_directory(task); fd >= 0) {
        read_directory(task, fd, found);
      }
      auto& state = states_[task.item];
      state.pending += found.size();
      const bool item_done = state.pending.fetch_sub(1) == 1;
      std::lock_guard<std::mutex> lock(m_);
      for (auto& f : found) queue_.push_back(std::move(f));
      if (found.size() == 1) {
        work_cv_.notify_one();
      } else if (!found.empty()) {
        work_cv_.notify_all();
      }
      if (item_done) {
        ++finished_;
        if (--outstanding_ == 0) work_cv_.notify_all();
        progress_cv_.notify_all();
      }
    }
  }

  void problem(std::size_t item, std::string path, int err) {
    auto& state = states_[item];
    std::lock_guard<std::mutex> lock(state.m);
    state.unreadable.push_back({std::move(path), std::strerror(err)});
  }

  // Counts one inode of model `item`; false when it was counted before.
  bool count(std::size_t item, const struct stat& st, UsageCounts& into) {
    const UsageCounts c = counts_of(st);
    if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) {
      auto& state = states_[item];
      std::lock_guard<std::mutex> lock(state.m);
      if (!state.linked.emplace(InodeKey{st.st_dev, st.st_ino}, c).second) return false;
    }
    add(into, c);
    return true;
  }

  void flush(std::size_t item, const UsageCounts& c) {
    auto& state = states_[item];
    state.bytes += c.bytes;
    state.apparent_bytes += c.apparent_bytes;
    state.files += c.files;
  }

  // The registered path: checked as audit checks it, counted when it exists
  // (following a symlink), and read when it is a directory.
  void start(const Task& task, std::vector<Task>& found) {
    auto& item = items_[task.item];
    auto& state = states_[task.item];
    // Every lookup counts on a network share, where each one waits: lstat
    // first, and only a symlink is looked at again (as audit looks at it).
    struct stat st {};
    if (::lstat(item.path.c_str(), &st) != 0) {
      const int err = errno;
      item.status = detail::status_from_errno(err);
      if (err != ENOENT) item.detail = std::strerror(err);
      return;
    }
    if (S_ISLNK(st.st_mode)) {
      item.is_symlink = true;
      auto check = detail::inspect_path(item.path);
      item.status = check.status;
      item.detail = std::move(check.detail);
      if (item.status != PathStatus::Ok) return;
      if (::stat(item.path.c_str(), &st) != 0) {
        // Changed between the two looks: say what this look found.
        const int err = errno;
        item.status = detail::status_from_errno(err);
        item.detail = err == ENOENT ? "" : std::strerror(err);
        return;
      }
    }
    UsageCounts c;
    count(task.item, st, c);
    flush(task.item, c);
    if (!S_ISDIR(st.st_mode)) {
      char real[PATH_MAX];
      if (::realpath(item.path.c_str(), real) != nullptr) state.real = real;
      return;
    }
    const int fd = open_directory(task);
    if (fd < 0) return;
    // The kernel's name of the open directory: the resolved path without a
    // lookup per component (realpath's way).
    char real[PATH_MAX];
    const std::string self = "/proc/self/fd/" + std::to_string(fd);
    const ssize_t n = ::readlink(self.c_str(), real, sizeof real);
    if (n > 0 && n < static_cast<ssize_t>(sizeof real) && real[0] == '/') {
      state.real.assign(real, static_cast<std::size_t>(n));
    } else if (::realpath(item.path.c_str(), real) != nullptr) {
      state.real = real;
    }
    read_directory(task, fd, found);
  }

  // The directory of `task`, open for reading, or -1 (reported).
  int open_directory(const Task& task) {
    // O_NONBLOCK: a directory replaced by a FIFO since it was listed must
    // not hang the walk.
    const int flags =
        O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NONBLOCK | (task.root ? 0 : O_NOFOLLOW);
    int fd = ::open(task.path.c_str(), flags);
    if (fd < 0 && errno == ENAMETOOLONG && !task.root) fd = open_deep(task, flags);
    // A directory deleted since it was listed holds nothing any more.
    if (fd < 0 && (task.root || errno != ENOENT)) problem(task.item, task.path, errno);
    return fd;
  }

  // A directory whose path is longer than the system takes at once (du
  // counts such trees too): opened one component at a time from the
  // registered path, never following a symlink below it.
  int open_deep(const Task& task, int flags) {
    const std::string& root = items_[task.item].path;
    int fd = ::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NONBLOCK);
    // Children of "/" are "/name"; of any other directory "dir/name".
    const std::size_t first = root == "/" ? 1 : root.size() + 1;
    for (std::size_t at = first; fd >= 0 && at < task.path.size();) {
      std::size_t end = task.path.find('/', at);
      if (end == std::string::npos) end = task.path.size();
      const int next = ::openat(fd, task.path.substr(at, end - at).c_str(), flags);
      const int err = errno;
      ::close(fd);
      fd = next;
      errno = err;
      at = end + 1;
    }
    return fd;
  }

  // Counts every child of the open directory `fd` and closes it; the
  // directories among them go to `found`. getdents64 straight away:
  // fdopendir() would cost one more fstat, a round trip on a share.
  void read_directory(const Task& task, int fd, std::vector<Task>& found) {
    alignas(dirent64) char buf[32768];
    UsageCounts sum;
    while (true) {
      const ssize_t got = ::getdents64(fd, buf, sizeof buf);
      if (got < 0) {
        problem(task.item, task.path, errno);
        break;
      }
      if (got == 0) break;
      for (ssize_t at = 0; at < got;) {
        const auto* entry = reinterpret_cast<const dirent64*>(buf + at);
        at += entry->d_reclen;
        const char* name = entry->d_name;
        if (name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'))) continue;
        struct stat st {};
        if (::fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
          // Deleted since the listing: it uses no space any more.
          if (errno != ENOENT) problem(task.item, join_path(task.path, name), errno);
          continue;
        }
        if (!count(task.item, st, sum)) continue;
        if (S_ISDIR(st.st_mode)) found.push_back({task.item, join_path(task.path, name), false});
      }
    }
    ::close(fd);
    flush(task.item, sum);
  }

  std::vector<UsageItem>& items_;
  const UsageOptions& options_;
  std::vector<ItemState> states_;
  std::mutex m_;
  std::condition_variable work_cv_;
  std::condition_variable progress_cv_;
  std::vector<Task> queue_;      // guarded by m_; depth first
  std::size_t outstanding_ = 0;  // models not finished; guarded by m_
  bool stop_ = false;            // the caller gave up; guarded by m_
  std::atomic<std::size_t> finished_{0};
};

// The counts of every item once each, as `du -sc` over all the paths: an
// item whose path (resolved) is another counted item's path or lies inside
// it is left out, and hard-linked inodes count once across items.
UsageCounts total_of(const std::vector<UsageItem>& items, const Walker& walker) {
  std::unordered_map<std::string, std::size_t> first;  // resolved path -> first item
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (items[i].status == PathStatus::Ok && !walker.real_path(i).empty()) {
      first.emplace(walker.real_path(i), i);
    }
  }
  const auto contained = [&](std::size_t i) {
    const std::string& path = walker.real_path(i);
    if (path.empty()) return false;
    if (first.at(path) != i) return true;
    for (std::size_t slash = path.size(); slash > 0;) {
      slash = path.rfind('/', slash - 1);
      if (slash == std::string::npos) break;
      const std::string parent = slash == 0 ? "/" : path.substr(0, slash);
      if (first.count(parent) != 0) return true;
      if (slash == 0) break;
    }
    return false;
  };
  UsageCounts total;
  std::unordered_set<InodeKey, InodeHash> linked;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (items[i].status != PathStatus::Ok || contained(i)) continue;
    add(total, items[i].counts);
    for (const auto& [key, counts] : walker.linked(i)) {
      if (!linked.insert(key).second) subtract(total, counts);
    }
  }
  return total;
}

// Models in the cache directory that have no entry, sorted by name.
void list_cache_dir(UsageReport& report, const std::unordered_set<std::string>& registered) {
  DIR* dir = ::opendir(report.cache_dir.path.c_str());
  if (dir == nullptr) {
    const int err = errno;
    report.cache_dir_status = detail::status_from_errno(err);
    if (err != ENOENT) report.cache_dir_detail = std::strerror(err);
    return;
  }
  while (true) {
    errno = 0;
    const dirent* entry = ::readdir(dir);
    if (entry == nullptr) {
      if (errno != 0) {
        report.cache_dir_status = detail::status_from_errno(errno);
        report.cache_dir_detail = std::strerror(errno);
      }
      break;
    }
    const std::string name = entry->d_name;
    // Only what cached_model_path() could return: a valid model name.
    if (name_problem(name) || registered.count(name) != 0) continue;
    UsageItem item;
    item.name = name;
    item.path = join_path(report.cache_dir.path, name);
    item.source = UsageSource::CacheDir;
    report.items.push_back(std::move(item));
  }
  ::closedir(dir);
}

// An entry whose path is local to another host is not measured here: the
// same path here is absent, or another disk (Entry::local_to).
void mark_other_host(UsageItem& item, const std::string& local_to, const UsageOptions& options) {
  if (!options.all_hosts && !local_to.empty() && local_to != detail::actor_base().host) {
    item.status = PathStatus::OtherHost;
    item.detail = "local to host " + local_to;
  }
}

}  // namespace

std::string to_string(UsageSource source) {
  return source == UsageSource::Entry ? "entry" : "cache_dir";
}

bool UsageReport::complete() const noexcept {
  if (cache_dir_status != PathStatus::Ok && cache_dir_status != PathStatus::Missing) return false;
  // A path local to another host is not this host's to count: left out of
  // the total, it leaves the count of this host's paths complete.
  return std::all_of(items.begin(), items.end(), [](const UsageItem& i) {
    return i.complete() || i.status == PathStatus::OtherHost;
  });
}

UsageReport disk_usage(Registry& registry, const UsageOptions& options) {
  for (const auto& name : options.names) check_name(name);
  UsageReport report;
  report.cache_dir = registry.cache_dir();
  if (options.names.empty()) {
    std::unordered_set<std::string> registered;
    for (auto& e : registry.entries()) {
      registered.insert(e.name);
      UsageItem item;
      item.name = std::move(e.name);
      item.path = std::move(e.path);
      mark_other_host(item, e.local_to, options);
      report.items.push_back(std::move(item));
    }
    list_cache_dir(report, registered);
  } else {
    std::map<std::string, bool> wanted;  // sorted, each name once
    for (const auto& name : options.names) wanted.emplace(name, true);
    for (const auto& [name, unused] : wanted) {
      UsageItem item;
      item.name = name;
      if (auto e = registry.entry(name)) {
        item.path = std::move(e->path);
        mark_other_host(item, e->local_to, options);
        report.items.push_back(std::move(item));
        continue;
      }
      item.path = join_path(report.cache_dir.path, name);
      item.source = UsageSource::CacheDir;
      if (detail::inspect_path(item.path).status == PathStatus::Missing) {
        throw UnknownModel("no model " + detail::quote(name) + ": no entry named " +
                           detail::quote(name) + " in registry " + detail::quote(registry.path()) +
                           ", and " + detail::quote(item.path) +
                           " does not exist; the registered models are in `list`");
      }
      report.items.push_back(std::move(item));
    }
  }
  std::sort(report.items.begin(), report.items.end(),
            [](const UsageItem& a, const UsageItem& b) { return a.name < b.name; });
  Walker walker(report.items, options);
  walker.run();
  report.total = total_of(report.items, walker);
  return report;
}

}  // namespace tfimm
