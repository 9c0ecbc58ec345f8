// The figures of the performance issue: each one measures our code and its
// baseline in the same run.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "harness.hpp"

namespace tfimm::bench {

// Sizes and programs for one run.
struct Config {
  bool smoke = false;
  std::string root;  // scratch directory, removed at the end
  // Programs run as real processes; empty when not available.
  std::string open_ours;         // C++ runtime linked in, as tfimm-cache
  std::string open_ours_shared;  // the same program with the shared C++ runtime
  std::string open_raw;
  std::string writer;
  std::string tool;
  std::string sqlite3_shell;
  std::string du;            // GNU du
  std::string tool_missing;  // why `tool` is empty

  std::size_t lookup_entries = 10000;
  std::size_t fallback_dirs = 1000;
  std::size_t lookup_rounds = 200;      // blocks per side
  std::size_t lookup_block = 100;       // calls per block
  std::size_t durable_sets = 600;       // per side
  std::size_t durable_prefill = 30000;  // entries written first, growing the WAL
  std::size_t bulk_entries = 100000;
  std::size_t bulk_reps = 5;
  std::size_t audit_entries = 100000;
  std::size_t audit_reps = 7;
  std::size_t contention_procs = 8;
  std::size_t contention_sets = 500;  // per process
  std::size_t contention_reps = 5;
  std::size_t process_reps = 200;  // open: fresh processes per side
  std::size_t tool_reps = 100;     // tool: fresh processes per side
  std::size_t du_models = 500;     // du: models, each du_dirs x du_files files
  std::size_t du_dirs = 4;
  std::size_t du_files = 25;
  std::size_t du_reps = 15;

  // Smaller sizes that finish in seconds, for the ctest smoke run.
  void make_smoke();
};

// A registry with `lookup_entries` entries and a cache directory (the
// registry setting) holding `fallback_dirs` unregistered model directories.
struct LookupData {
  std::string registry;
  std::string cache_dir;
  std::vector<std::string> names;           // registered
  std::vector<std::string> paths;           // their paths
  std::vector<std::string> fallback_names;  // directories in cache_dir only
};
LookupData make_lookup_data(const Config& config);

// A registry with `audit_entries` entries; the paths of even entries exist.
struct AuditData {
  std::string registry;
  std::vector<std::string> paths;
  std::size_t missing = 0;
};
AuditData make_audit_data(const Config& config);

// A registry with `du_models` model directories, each of `du_dirs`
// directories of `du_files` small files.
struct DuData {
  std::string registry;
  std::vector<std::string> paths;
};
DuData make_du_data(const Config& config);

Figure lookup_hit(const Config& config, const LookupData& data);
Figure lookup_fallback(const Config& config, const LookupData& data);
Figure durable_set(const Config& config);
// Registry::import, and the same through Registry::transaction.
std::vector<Figure> bulk_import(const Config& config);
Figure audit(const Config& config, const AuditData& data);
// contention_procs x contention_sets durable sets at once against one
// process doing them all, on `location` (default: a file in the scratch
// directory); throughput ratio, goal at least `goal`.
Figure contention(const Config& config, const std::string& location = {},
                  const std::string& name = "contention", double goal = 0.8);
// The program linked as tfimm-cache is, then with the shared C++ runtime.
std::vector<Figure> open_process(const Config& config, const LookupData& data);
Figure tool_process(const Config& config, const LookupData& data);
// `tfimm-cache du` / `du -s` over the same paths (figures_du.cpp).
Figure du_walk(const Config& config, const DuData& data);

// Peak resident memory of the tool on the audit registry.
struct MemoryRow {
  std::string what;
  long max_rss_kib = 0;
  double wall_ms = 0;
  int exit_code = 0;
};
std::vector<MemoryRow> tool_memory(const Config& config, const AuditData& data);

}  // namespace tfimm::bench
