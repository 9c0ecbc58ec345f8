// Disk usage of the cached models: what `du -s` would say about every
// registered path and every model found only under the cache directory.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "tfimm/registry.hpp"

namespace tfimm {

// Where a model counted by disk_usage() was found.
enum class UsageSource {
  Entry,     // a model-specific entry: its registered path
  CacheDir,  // <cache dir>/<name>, with no entry of that name
};

// "entry", "cache_dir": the spelling used in JSON output.
std::string to_string(UsageSource source);

// Something below a model's path that could not be read, so its bytes are
// not in the counts: `path` and the system's message.
struct UsageProblem {
  std::string path;
  std::string message;
};

// Sizes as `du -s --block-size=1` (bytes) and `du -s --apparent-size
// --block-size=1` (apparent_bytes) count them: every file, directory,
// symlink and special file below the path and the path itself, each inode
// once (a file with several hard links counts once).
struct UsageCounts {
  std::uint64_t bytes = 0;           // allocated: st_blocks * 512
  std::uint64_t apparent_bytes = 0;  // st_size
  std::uint64_t files = 0;           // regular files, each inode once
};

struct UsageItem {
  std::string name;
  std::string path;  // the registered path, or <cache dir>/<name>
  UsageSource source = UsageSource::Entry;
  // The path itself, following a symlink, as check_path() sees it: only an
  // Ok path is counted. Missing means certainly absent; NotAccessible and
  // Error mean it could not be looked at, never that it is absent.
  PathStatus status = PathStatus::Ok;
  bool is_symlink = false;  // the path itself is a symlink (followed)
  std::string detail;       // check_path()'s detail: the system's message, a link's target
  UsageCounts counts;
  // What could not be read below the path (an unreadable directory, an I/O
  // error); the counts leave it out.
  std::vector<UsageProblem> unreadable;
  // Counted in full: the path exists and everything below it was read.
  bool complete() const noexcept { return status == PathStatus::Ok && unreadable.empty(); }
};

struct UsageReport {
  std::vector<UsageItem> items;  // sorted by name
  // Every byte counted once, as `du -sc` over all the paths counts them: a
  // path registered under two names, or inside another counted path, and
  // hard links between models count once.
  UsageCounts total;
  CacheDir cache_dir;
  // Whether the cache directory could be listed for models without an
  // entry: Ok, or Missing (then there are none); anything else leaves such
  // models out, and `cache_dir_detail` says why. Ok when names were given.
  PathStatus cache_dir_status = PathStatus::Ok;
  std::string cache_dir_detail;
  // Every item complete, but those local to another host (not this host's
  // to count), and the cache directory listed.
  bool complete() const noexcept;
};

struct UsageOptions {
  // Only these models, each resolved as cached_model_path() resolves it (the
  // entry's path, else <cache dir>/<name>). Empty: every entry and every
  // model found only under the cache directory.
  std::vector<std::string> names;
  // Directories read at once; 0 picks a default. Network shares answer
  // slowly, so the walk runs in parallel, within a model too.
  unsigned threads = 0;
  // Called from the calling thread as models are finished: (done, total).
  // An exception it throws stops the walk and leaves disk_usage() once
  // every walking thread has returned.
  std::function<void(std::size_t, std::size_t)> progress;
  // Also measure paths local to other hosts (Entry::local_to), as if they
  // were this host's; without it they are left out (PathStatus::OtherHost).
  bool all_hosts = false;
};

// Walks every model's path and counts its size on disk. The registered path
// is followed when it is a symlink; symlinks below it are counted as links,
// never followed; mount points below it are crossed (as du does). Never
// changes anything, on disk or in the registry; reads the registry without
// holding it during the walk, so it works on a registry this process can
// only read. Throws InvalidName for an invalid name and UnknownModel for a
// name with neither an entry nor <cache dir>/<name> (nothing is walked
// then), RegistryError when the registry cannot be read. Safe to call from
// several threads.
UsageReport disk_usage(Registry& registry, const UsageOptions& options = {});

}  // namespace tfimm
