// tfimm_bench: the registry against the physical floor. Every figure runs
// our code and a hand-written baseline (raw sqlite3, a stat loop, the
// sqlite3 shell) in the same run, interleaved, and prints median, p99 and
// the ratio against the goal. See README.md.
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "figures.hpp"
#include "harness.hpp"
#ifdef TFIMM_BENCH_POSTGRESQL
#include "figures_postgres.hpp"
#include "postgres_server.hpp"
#endif
#include "testutil.hpp"
#include "tfimm/registry.hpp"

namespace {

using namespace tfimm::bench;

const char* const kFigureKeys[] = {"lookup-hit",    "lookup-fallback",
                                   "durable-set",   "bulk-import",
                                   "audit",         "contention",
                                   "open",          "tool",
                                   "memory",        "du",
                                   "pg-lookup-hit", "pg-durable-set",
                                   "pg-open",       "pg-contention"};
// Rows of the table in a full run: one per key, none for memory (its own
// table), two for bulk-import (import and transaction) and two for open
// (C++ runtime linked in, and shared); four more with --postgresql.
constexpr std::size_t kFigureRows = 11;

constexpr const char* kUsage =
    "usage: tfimm_bench [--smoke] [--only KEY[,KEY...]] [--dir DIR] [--tool PATH]\n"
    "                   [--postgresql URL|test] [--check-goals]\n"
    "\n"
    "  --smoke        tiny sizes: checks that every figure runs (seconds, for ctest)\n"
    "  --only KEYS    run only these figures: lookup-hit, lookup-fallback, durable-set,\n"
    "                 bulk-import, audit, contention, open, tool, memory, du, and\n"
    "                 with --postgresql pg-lookup-hit, pg-durable-set, pg-open,\n"
    "                 pg-contention\n"
    "  --dir DIR      scratch directory for registries and model directories\n"
    "                 (default $TMPDIR, else /tmp); its file system sets the fsync cost\n"
    "  --tool PATH    the tfimm-cache program (default: the one built with this bench)\n"
    "  --postgresql URL  also measure a registry on this PostgreSQL server (each figure\n"
    "                 in a schema of its own, dropped after it); `test`: the server\n"
    "                 ctest starts for this build tree\n"
    "  --check-goals  exit with 1 when a goal is missed (default: only on errors)\n";

std::string find_in_path(const std::string& program) {
  const char* path = std::getenv("PATH");
  std::istringstream dirs(path ? path : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    const std::string candidate = (dir.empty() ? "." : dir) + "/" + program;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return {};
}

std::string built_program(const char* path) {
  return ::access(path, X_OK) == 0 ? std::string(path) : std::string();
}

std::string load_average() {
  std::ifstream in("/proc/loadavg");
  std::string one, five, fifteen;
  in >> one >> five >> fifteen;
  return one + " " + five + " " + fifteen;
}

}  // namespace

int main(int argc, char** argv) {
  Config config;
  std::set<std::string> only;
  std::string dir;
  std::string tool_arg;
  std::string postgresql;  // a server URL, or "test": the test server ctest starts
  bool check_goals = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << "tfimm_bench: " << arg << " needs a value\n" << kUsage;
        std::exit(2);
      }
      return argv[++i];
    };
    if (arg == "--smoke") {
      config.make_smoke();
    } else if (arg == "--only") {
      std::istringstream keys(value());
      std::string key;
      while (std::getline(keys, key, ',')) {
        if (std::find(std::begin(kFigureKeys), std::end(kFigureKeys), key) ==
            std::end(kFigureKeys)) {
          std::cerr << "tfimm_bench: unknown figure " << key << "\n" << kUsage;
          return 2;
        }
        only.insert(key);
      }
    } else if (arg == "--dir") {
      dir = value();
    } else if (arg == "--tool") {
      tool_arg = value();
    } else if (arg == "--postgresql") {
      postgresql = value();
    } else if (arg == "--check-goals") {
      check_goals = true;
    } else if (arg == "--help" || arg == "-h") {
      std::cout << kUsage;
      return 0;
    } else {
      std::cerr << "tfimm_bench: unknown argument " << arg << "\n" << kUsage;
      return 2;
    }
  }
  const auto wanted = [&](const char* key) { return only.empty() || only.count(key) != 0; };

  if (!dir.empty()) ::setenv("TMPDIR", dir.c_str(), 1);
  // HOME, XDG_* and TFIMM_* inside a fresh directory: the real registry and
  // cache are never touched.
  tfimm::test::TestContext context;
  config.root = context.root();
  config.open_ours = built_program(TFIMM_BENCH_OPEN_OURS);
  config.open_ours_shared = built_program(TFIMM_BENCH_OPEN_OURS_SHARED);
  config.open_raw = built_program(TFIMM_BENCH_OPEN_RAW);
  config.writer = built_program(TFIMM_BENCH_WRITER);
#ifdef TFIMM_BENCH_TOOL
  const std::string built_tool = TFIMM_BENCH_TOOL;
#else
  const std::string built_tool;
#endif
  config.tool = tool_arg.empty() ? built_tool : tool_arg;
  if (config.tool.empty()) {
    config.tool_missing =
        "this build has no tfimm-cache target (TFIMM_BUILD_TOOLS=OFF or tools/ not ready); "
        "pass --tool PATH to measure one";
  } else if (::access(config.tool.c_str(), X_OK) != 0) {
    config.tool_missing = "tfimm-cache not found at " + config.tool + "; build it first";
    config.tool.clear();
  }
  config.sqlite3_shell = find_in_path("sqlite3");
  config.du = find_in_path("du");

  std::string fs_type;
  tfimm::on_network_fs(config.root, &fs_type);
  std::cout << "tfimm_bench (" << (config.smoke ? "smoke" : "full") << " mode)\n"
            << "  tfimm-cache " << tfimm::version() << ", SQLite " << sqlite3_libversion() << ", "
            << std::thread::hardware_concurrency() << " cores, load " << load_average() << "\n"
            << "  scratch: " << config.root << " (" << fs_type << ")\n\n"
            << std::flush;

  std::vector<Figure> figures;
  std::vector<MemoryRow> memory;
  int failures = 0;
  const auto attempt = [&](const std::string& name, const std::function<void()>& body) {
    try {
      body();
    } catch (const std::exception& e) {
      ++failures;
      Figure failed;
      failed.name = name;
      failed.skipped = std::string("FAILED: ") + e.what();
      figures.push_back(failed);
      std::cerr << "tfimm_bench: " << name << " failed: " << e.what() << "\n";
    }
  };
  const auto progress = [&](const char* what) { std::cerr << "tfimm_bench: " << what << " ...\n"; };

  std::optional<LookupData> lookup;
  const auto need_lookup = [&] {
    if (!lookup) {
      progress("creating the lookup registry");
      lookup = make_lookup_data(config);
    }
    return *lookup;
  };
  if (wanted("lookup-hit")) {
    progress("lookup hit");
    attempt("lookup hit", [&] { figures.push_back(lookup_hit(config, need_lookup())); });
  }
  if (wanted("lookup-fallback")) {
    progress("lookup fallback");
    attempt("lookup fallback", [&] { figures.push_back(lookup_fallback(config, need_lookup())); });
  }
  if (wanted("durable-set")) {
    progress("durable set");
    attempt("durable set", [&] { figures.push_back(durable_set(config)); });
  }
  if (wanted("bulk-import")) {
    progress("bulk import");
    attempt("bulk import", [&] {
      for (auto& f : bulk_import(config)) figures.push_back(std::move(f));
    });
  }
  std::optional<AuditData> audit_data;
  const auto need_audit = [&] {
    if (!audit_data) {
      progress("creating the audit registry and model directories");
      audit_data = make_audit_data(config);
    }
    return *audit_data;
  };
  if (wanted("audit")) {
    progress("audit");
    attempt("audit", [&] { figures.push_back(audit(config, need_audit())); });
  }
  if (wanted("contention")) {
    progress("contention");
    attempt("contention", [&] { figures.push_back(contention(config)); });
  }
  if (wanted("open")) {
    progress("open");
    attempt("open", [&] {
      for (auto& f : open_process(config, need_lookup())) figures.push_back(std::move(f));
    });
  }
  if (wanted("tool")) {
    progress("tool");
    attempt("tool", [&] { figures.push_back(tool_process(config, need_lookup())); });
  }
  if (wanted("du")) {
    progress("creating the du models, then du");
    attempt("du", [&] { figures.push_back(du_walk(config, make_du_data(config))); });
  }
  if (wanted("memory")) {
    progress("memory");
    attempt("memory", [&] { memory = tool_memory(config, need_audit()); });
  }

  if (!postgresql.empty()) {
#ifdef TFIMM_BENCH_POSTGRESQL
    // Each figure in a schema of its own, dropped at the end.
    const auto schema_url = [&](const std::string& name) {
      const std::string base = postgresql == "test" ? tfimm::test::postgres_url() : postgresql;
      return base + (base.find('?') == std::string::npos ? "?" : "&") + "options=-csearch_path%3D" +
             name;
    };
    const auto drop = [&](const std::string& name) {
      try {
        tfimm::test::pg_query(postgresql == "test" ? tfimm::test::postgres_url() : postgresql,
                              "DROP SCHEMA IF EXISTS " + name + " CASCADE");
      } catch (...) {
      }
    };
    const std::string suffix = std::to_string(::getpid());
    if (wanted("pg-lookup-hit")) {
      progress("lookup hit on PostgreSQL");
      const std::string schema = "bench_lookup_" + suffix;
      attempt("lookup hit (PostgreSQL)",
              [&] { figures.push_back(pg_lookup_hit(config, schema_url(schema))); });
      drop(schema);
    }
    if (wanted("pg-durable-set")) {
      progress("durable set on PostgreSQL");
      const std::string schema = "bench_set_" + suffix;
      attempt("durable set (PostgreSQL)",
              [&] { figures.push_back(pg_durable_set(config, schema_url(schema))); });
      drop(schema);
    }
    if (wanted("pg-open")) {
      progress("open on PostgreSQL");
      const std::string schema = "bench_open_" + suffix;
      attempt("open (PostgreSQL)", [&] { figures.push_back(pg_open(config, schema_url(schema))); });
      drop(schema);
    }
    if (wanted("pg-contention")) {
      progress("contention on PostgreSQL");
      const std::string schema = "bench_contention_" + suffix;
      // Writers to different names: PostgreSQL could let them overlap where
      // SQLite serialises them.
      attempt("contention (PostgreSQL)", [&] {
        figures.push_back(contention(config, schema_url(schema), "contention (PostgreSQL)", 1.5));
      });
      drop(schema);
    }
#else
    std::cerr << "tfimm_bench: this build has no PostgreSQL backend\n";
    return 2;
#endif
  }

  print_table(figures);
  if (wanted("memory")) {
    std::cout << "\npeak memory (ru_maxrss of the child process):\n";
    if (config.tool.empty()) std::cout << "  tfimm-cache skipped: " << config.tool_missing << "\n";
    for (const auto& row : memory) {
      char line[256];
      std::snprintf(line, sizeof line, "  %-48s %8.1f MiB %8.0f ms  exit %d\n", row.what.c_str(),
                    static_cast<double>(row.max_rss_kib) / 1024.0, row.wall_ms, row.exit_code);
      std::cout << line;
    }
  }
  int measured = 0, skipped = 0, met = 0;
  for (const auto& f : figures) {
    if (f.skipped) {
      ++skipped;
    } else {
      ++measured;
      met += f.met() ? 1 : 0;
    }
  }
  std::cout << "\nload at the end: " << load_average() << "\n"
            << "bench: " << measured << " figures measured, " << skipped << " skipped or failed ("
            << failures << " failed); goals met: " << met << " of " << measured << "\n";
  if (failures > 0) return 1;
  // Every figure printed a row (measured or skipped with its reason).
  const std::size_t rows = kFigureRows + (postgresql.empty() ? 0 : 4);
  if (only.empty() && figures.size() != rows) {
    std::cerr << "tfimm_bench: expected " << rows << " figure rows, printed " << figures.size()
              << "\n";
    return 1;
  }
  if (check_goals && met != measured) return 1;
  return 0;
}
