// A FUSE file system whose directory listings disagree with its lookups, the
// way a case-insensitive share (vfat, exFAT, SMB, ext4 casefold) or an
// automount directory does, for tests that must not trust a listing alone.
//
//   disagreeing_fs [--listing exact|swapcase|none] [--exists PATH]...
//                  [--fail PATH=ERRNO]... [--delay-ms N] MOUNTPOINT
//
// --exists PATH  a directory relative to the root ("models/resnet18"); its
//                parents exist too. Lookups ignore case, like SMB.
// --listing      how readdir names the children: as given (exact), with the
//                case of every letter swapped (swapcase: "resnet18" is
//                listed as "RESNET18"), or not at all (none, an automount
//                directory that lists nothing).
// --fail         a lookup of PATH (ignoring case) fails with ERRNO: EIO,
//                EACCES, ESTALE, ETIMEDOUT, ELOOP or ENAMETOOLONG.
// --delay-ms     every lookup and listing below the top-level directories
//                waits N ms first (a slow share).
//
// Runs in the foreground, serving requests on several threads, until it is
// unmounted or gets SIGTERM. Nothing is cached by the kernel, so every
// lookup reaches this program.
#define FUSE_USE_VERSION 312

#include <fuse.h>
#include <sys/stat.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace {

enum class Listing { Exact, SwapCase, None };

struct Config {
  Listing listing = Listing::Exact;
  // Every existing directory by its lower-case path ("/models/resnet18"),
  // with its children as given.
  std::map<std::string, std::set<std::string>> dirs{{"/", {}}};
  std::map<std::string, int> failures;  // lower-case path -> errno
  int delay_ms = 0;
};

Config config;

std::string lower(std::string text) {
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

std::string swap_case(std::string text) {
  for (char& c : text) {
    const auto u = static_cast<unsigned char>(c);
    c = static_cast<char>(std::islower(u) ? std::toupper(u) : std::tolower(u));
  }
  return text;
}

void add_exists(const std::string& relative) {
  std::string parent = "/";
  std::size_t start = 0;
  while (start < relative.size()) {
    std::size_t end = relative.find('/', start);
    if (end == std::string::npos) end = relative.size();
    const std::string part = relative.substr(start, end - start);
    if (!part.empty()) {
      config.dirs[parent].insert(part);
      parent = lower(parent == "/" ? "/" + part : parent + "/" + part);
      config.dirs[parent];
    }
    start = end + 1;
  }
}

int errno_named(const std::string& name) {
  static const std::map<std::string, int> known{{"EIO", EIO},       {"EACCES", EACCES},
                                                {"ESTALE", ESTALE}, {"ETIMEDOUT", ETIMEDOUT},
                                                {"ELOOP", ELOOP},   {"ENAMETOOLONG", ENAMETOOLONG}};
  const auto it = known.find(name);
  return it == known.end() ? 0 : it->second;
}

// Only below the top level: the kernel serialises FUSE lookups within one
// directory, so a delay on the root's children would measure the kernel's
// queue rather than how many lookups a caller has in flight.
// Each delayed request logs how many are in flight with it ("in flight: N"
// on stdout), so that a test sees a caller's parallelism without timing it.
std::atomic<int> in_flight{0};

void wait_a_while(const char* path) {
  if (config.delay_ms > 0 && std::strchr(path + 1, '/') != nullptr) {
    const int now = ++in_flight;
    std::printf("in flight: %d\n", now);
    std::fflush(stdout);
    std::this_thread::sleep_for(std::chrono::milliseconds(config.delay_ms));
    --in_flight;
  }
}

void* fs_init(fuse_conn_info* conn, fuse_config* cfg) {
  // Lookups in one directory at once, as a network share serves them.
  if ((conn->capable & FUSE_CAP_PARALLEL_DIROPS) != 0) conn->want |= FUSE_CAP_PARALLEL_DIROPS;
  cfg->entry_timeout = 0;
  cfg->attr_timeout = 0;
  cfg->negative_timeout = 0;
  cfg->use_ino = 0;
  return nullptr;
}

int fs_getattr(const char* path, struct stat* st, fuse_file_info*) {
  wait_a_while(path);
  const std::string key = lower(path);
  if (const auto failure = config.failures.find(key); failure != config.failures.end()) {
    return -failure->second;
  }
  if (config.dirs.count(key) == 0) return -ENOENT;
  std::memset(st, 0, sizeof *st);
  st->st_mode = S_IFDIR | 0755;
  st->st_nlink = 2;
  return 0;
}

int fs_readdir(const char* path, void* buf, fuse_fill_dir_t filler, off_t, fuse_file_info*,
               fuse_readdir_flags) {
  wait_a_while(path);
  const auto dir = config.dirs.find(lower(path));
  if (dir == config.dirs.end()) return -ENOENT;
  filler(buf, ".", nullptr, 0, static_cast<fuse_fill_dir_flags>(0));
  filler(buf, "..", nullptr, 0, static_cast<fuse_fill_dir_flags>(0));
  if (config.listing == Listing::None) return 0;
  struct stat st {};
  st.st_mode = S_IFDIR | 0755;
  for (const auto& child : dir->second) {
    const std::string shown = config.listing == Listing::SwapCase ? swap_case(child) : child;
    filler(buf, shown.c_str(), &st, 0, static_cast<fuse_fill_dir_flags>(0));
  }
  return 0;
}

int usage(const char* why) {
  std::fprintf(stderr,
               "disagreeing_fs: %s\nusage: disagreeing_fs [--listing exact|swapcase|none] "
               "[--exists PATH]... [--fail PATH=ERRNO]... [--delay-ms N] MOUNTPOINT\n",
               why);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string mountpoint;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--listing" && has_value) {
      const std::string value = argv[++i];
      if (value == "exact") {
        config.listing = Listing::Exact;
      } else if (value == "swapcase") {
        config.listing = Listing::SwapCase;
      } else if (value == "none") {
        config.listing = Listing::None;
      } else {
        return usage("unknown --listing");
      }
    } else if (arg == "--exists" && has_value) {
      add_exists(argv[++i]);
    } else if (arg == "--fail" && has_value) {
      const std::string value = argv[++i];
      const auto eq = value.rfind('=');
      const int err = eq == std::string::npos ? 0 : errno_named(value.substr(eq + 1));
      if (err == 0)
        return usage("--fail wants PATH=EIO|EACCES|ESTALE|ETIMEDOUT|ELOOP|ENAMETOOLONG");
      std::string path = value.substr(0, eq);
      if (path.empty() || path[0] != '/') path = "/" + path;
      config.failures[lower(path)] = err;
    } else if (arg == "--delay-ms" && has_value) {
      config.delay_ms = std::stoi(argv[++i]);
    } else if (!arg.empty() && arg[0] != '-' && mountpoint.empty()) {
      mountpoint = arg;
    } else {
      return usage(("unexpected argument " + arg).c_str());
    }
  }
  if (mountpoint.empty()) return usage("no mount point");

  fuse_operations ops{};
  ops.init = fs_init;
  ops.getattr = fs_getattr;
  ops.readdir = fs_readdir;
  // A share answers many lookups at once: serve them on up to 64 threads.
  std::vector<char*> argv_fuse{argv[0], const_cast<char*>("-o"),
                               const_cast<char*>("fsname=disagreeing_fs")};
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv_fuse.size()), argv_fuse.data());
  fuse* fs = fuse_new(&args, &ops, sizeof ops, nullptr);
  if (fs == nullptr) return 1;
  if (fuse_mount(fs, mountpoint.c_str()) != 0) {
    fuse_destroy(fs);
    return 1;
  }
  fuse_session* session = fuse_get_session(fs);
  fuse_set_signal_handlers(session);
  fuse_loop_config* loop = fuse_loop_cfg_create();
  fuse_loop_cfg_set_max_threads(loop, 64);
  fuse_loop_cfg_set_idle_threads(loop, 64);
  const int result = fuse_loop_mt(fs, loop);
  fuse_loop_cfg_destroy(loop);
  fuse_remove_signal_handlers(session);
  fuse_unmount(fs);
  fuse_destroy(fs);
  return result == 0 ? 0 : 1;
}
