// Rebuilds, from a recording_vfs log, the files "as the disk would have
// them" after a power loss at a cut point, under several damage models, and
// checks each image with SQLite's plain unix VFS: it must pass
// integrity_check and hold exactly the state after some prefix of the
// started calls that includes every acknowledged one.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "recording_vfs.hpp"

namespace powerloss {

enum class Damage : int {
  UnsyncedLost,    // every write, truncate since the file's last sync is lost
  SubsetKept,      // a random subset of them reached the disk, in order
  TornSectors,     // each 512-byte sector of them reached the disk or not
  GarbageSectors,  // ... or became garbage; and the -shm is garbage
  DirectoryLost,   // creates and deletes since the last directory sync are
                   // undone (and unsynced data lost)
};
constexpr std::size_t kDamageModels = 5;
const char* to_string(Damage damage);

// The registry's state as the tests compare it: every entry (name, path,
// lock), every setting, and the id of the last history row, one line each.
std::string canonical_state(const std::vector<std::array<std::string, 3>>& models,
                            const std::vector<std::pair<std::string, std::string>>& settings,
                            std::int64_t last_history_id);
std::uint64_t state_hash(const std::string& canonical);

struct CheckOptions {
  std::uint64_t seed = 1;
  int variants = 2;              // images per cut for each random damage model
  double other_cut_rate = 0.05;  // share of writes, truncates, creates, begins cut before
  unsigned threads = 2;
  std::string scratch;      // a directory for the images (tmpfs when there is one)
  std::string registry;     // base name of the database file in the log
  std::string failure_dir;  // failing images are kept here
  // Only this one image (replay): cut (op index), damage model, variant.
  struct One {
    std::size_t cut;
    Damage damage;
    int variant;
  };
  std::optional<One> only;
};

struct Failure {
  std::size_t cut = 0;
  Damage damage = Damage::UnsyncedLost;
  int variant = 0;
  std::string what;  // lost / corrupt / phantom, and details
  std::string kept;  // where the image was copied
};

struct CheckResult {
  std::size_t cuts = 0;
  // Distinct images opened: an image met again (the same synced contents
  // and the same pieces of unsynced writes) is judged by what it held.
  std::size_t opened = 0;
  std::array<std::size_t, kDamageModels> checked{};
  std::array<std::size_t, kDamageModels> lost{};
  std::array<std::size_t, kDamageModels> corrupt{};
  std::array<std::size_t, kDamageModels> phantom{};
  std::vector<Failure> failures;  // the first few
  std::size_t total(const std::array<std::size_t, kDamageModels>& a) const;
};

// `expected[g][k]` is state_hash() of group g after its call k
// (expected[g][0]: no registry, or an empty one). With one group the state
// is the whole registry (canonical_state() of every entry, setting and the
// last history id), and Begin/Ack ops carry file 0. With several (threads
// that each own their names), group g's state is canonical_state() of the
// entries named "t<g>_..." alone, and its Begin/Ack ops carry file g.
CheckResult check_crash_states(const Log& log,
                               const std::vector<std::vector<std::uint64_t>>& expected,
                               const CheckOptions& options);

}  // namespace powerloss
