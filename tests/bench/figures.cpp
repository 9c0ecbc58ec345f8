#include "figures.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <stdexcept>

#include "rawsql.hpp"
#include "tfimm/registry.hpp"

namespace tfimm::bench {

void Config::make_smoke() {
  smoke = true;
  lookup_entries = 300;
  fallback_dirs = 50;
  lookup_rounds = 4;
  lookup_block = 25;
  durable_sets = 20;
  durable_prefill = 0;
  bulk_entries = 2000;
  bulk_reps = 1;
  audit_entries = 2000;
  audit_reps = 2;
  contention_sets = 5;
  contention_reps = 1;
  process_reps = 3;
  tool_reps = 3;
  du_models = 20;
  du_dirs = 2;
  du_files = 5;
  du_reps = 2;
}

namespace {

// Keeps results alive so that the compiler cannot drop the work.
volatile std::size_t sink = 0;

void require(bool condition, const std::string& what) {
  if (!condition) throw std::runtime_error(what);
}

void make_dir(const std::string& path) {
  if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
    throw std::runtime_error("cannot create " + path + ": " + std::strerror(errno));
  }
}

// An empty registry file with the library's schema, WAL and application id.
// An empty registry at `file` (its schema, no entries or settings). A
// registry is created by its first change, so one is made and undone.
void create_registry(const std::string& file) {
  Registry registry(file);
  registry.set_dir("/");
  registry.unset_dir();
}

void remove_registry(const std::string& file) {
  if (is_server_location(file)) {
    // A registry on a server: emptied (its schema is dropped at the end).
    ImportOptions replace;
    replace.replace = true;
    Registry(file).import(Snapshot{}, replace);
    return;
  }
  for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
    ::unlink((file + suffix).c_str());
  }
}

std::int64_t epoch_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

// A fixed pseudo-random order of `count` picks out of `size` items.
std::vector<std::size_t> random_order(std::size_t count, std::size_t size) {
  std::mt19937_64 rng(20240601);
  std::uniform_int_distribution<std::size_t> pick(0, size - 1);
  std::vector<std::size_t> order(count);
  for (auto& i : order) i = pick(rng);
  return order;
}

std::string fmt(double value, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, value);
  return buf;
}

// -- the operations, one function each so that callgrind can count one side
// -- (valgrind --tool=callgrind --toggle-collect='*bench_ours_lookup*' ...).

[[gnu::noinline]] std::size_t bench_ours_lookup(Registry& registry, const std::string& name) {
  const auto path = registry.cached_model_path(name);
  return path ? path->size() : 0;
}

[[gnu::noinline]] std::size_t bench_base_lookup(RawStatement& select, const std::string& name) {
  select.bind(1, name);
  std::size_t size = 0;
  if (select.step()) size = select.text(0).size();
  select.reset();
  return size;
}

[[gnu::noinline]] std::size_t bench_base_fallback(RawStatement& select, const std::string& dir,
                                                  const std::string& name) {
  select.bind(1, name);
  std::string path;
  if (select.step()) {
    path = select.text(0);
  } else {
    path = dir + "/" + name;
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) path.clear();
  }
  select.reset();
  return path.size();
}

[[gnu::noinline]] void bench_ours_set(Registry& registry, const std::string& name,
                                      const std::string& path) {
  registry.set_model_cache(name, path);
}

struct RawWriter {
  explicit RawWriter(RawDb& db)
      : begin(db.handle(), "BEGIN IMMEDIATE"),
        upsert(db.handle(),
               "INSERT INTO models(name, path, created_at, updated_at) VALUES(?1, ?2, ?3, ?3) "
               "ON CONFLICT(name) DO UPDATE SET path = excluded.path, "
               "updated_at = excluded.updated_at, missing_since = NULL"),
        commit(db.handle(), "COMMIT") {}
  RawStatement begin;
  RawStatement upsert;
  RawStatement commit;
};

[[gnu::noinline]] void bench_base_set(RawWriter& w, const std::string& name,
                                      const std::string& path) {
  w.begin.step();
  w.begin.reset();
  w.upsert.bind(1, name);
  w.upsert.bind(2, path);
  w.upsert.bind(3, epoch_ms());
  w.upsert.step();
  w.upsert.reset();
  w.commit.step();
  w.commit.reset();
}

[[gnu::noinline]] void bench_ours_import(Registry& registry, const Snapshot& snapshot) {
  registry.import(snapshot);
}

[[gnu::noinline]] void bench_ours_transaction(Registry& registry, const Snapshot& snapshot) {
  registry.transaction([&](Transaction& tx) {
    for (const auto& m : snapshot.models) tx.set_model_cache(m.name, m.path);
  });
}

[[gnu::noinline]] void bench_base_bulk(RawDb& db, const Snapshot& snapshot) {
  RawStatement insert(db.handle(),
                      "INSERT INTO models(name, path, created_at, updated_at) "
                      "VALUES(?1, ?2, ?3, ?3)");
  db.exec("BEGIN IMMEDIATE");
  const auto now = epoch_ms();
  for (const auto& m : snapshot.models) {
    insert.bind(1, m.name);
    insert.bind(2, m.path);
    insert.bind(3, now);
    insert.step();
    insert.reset();
  }
  db.exec("COMMIT");
}

[[gnu::noinline]] std::size_t bench_ours_audit(Registry& registry) {
  return registry.audit().stale();
}

[[gnu::noinline]] std::size_t bench_base_audit(const std::vector<std::string>& paths) {
  std::size_t missing = 0;
  for (const auto& p : paths) {
    struct stat st {};
    if (::stat(p.c_str(), &st) != 0) ++missing;
  }
  return missing;
}

}  // namespace

// -- data sets ----------------------------------------------------------------

LookupData make_lookup_data(const Config& config) {
  LookupData data;
  data.registry = config.root + "/lookup.db";
  data.cache_dir = config.root + "/cache";
  make_dir(data.cache_dir);
  Snapshot snapshot;
  for (std::size_t i = 0; i < config.lookup_entries; ++i) {
    data.names.push_back("model_" + std::to_string(i));
    data.paths.push_back(config.root + "/models/model_" + std::to_string(i));
    snapshot.models.push_back({data.names.back(), data.paths.back(), false, ""});
  }
  for (std::size_t i = 0; i < config.fallback_dirs; ++i) {
    data.fallback_names.push_back("fallback_" + std::to_string(i));
    make_dir(data.cache_dir + "/" + data.fallback_names.back());
  }
  Registry registry(data.registry);
  registry.import(snapshot);
  registry.set_dir(data.cache_dir);
  return data;
}

AuditData make_audit_data(const Config& config) {
  AuditData data;
  data.registry = config.root + "/audit.db";
  const std::string base = config.root + "/audit";
  make_dir(base);
  Snapshot snapshot;
  for (std::size_t i = 0; i < config.audit_entries; ++i) {
    const std::string group = base + "/g" + std::to_string(i / 1000);
    if (i % 1000 == 0) make_dir(group);
    data.paths.push_back(group + "/model_" + std::to_string(i));
    if (i % 2 == 0) {
      make_dir(data.paths.back());
    } else {
      ++data.missing;
    }
    snapshot.models.push_back({"model_" + std::to_string(i), data.paths.back(), false, ""});
  }
  Registry(data.registry).import(snapshot);
  return data;
}

// -- figures ------------------------------------------------------------------

Figure lookup_hit(const Config& config, const LookupData& data) {
  Figure f;
  f.name = "lookup hit";
  f.unit = "us";
  f.goal_value = 1.2;
  Registry registry(data.registry);
  RawDb raw(data.registry);
  RawStatement select(raw.handle(), "SELECT path FROM models WHERE name = ?");
  const auto order = random_order(config.lookup_rounds * config.lookup_block, data.names.size());
  for (std::size_t i = 0; i < std::min<std::size_t>(order.size(), 50); ++i) {
    const auto& name = data.names[order[i]];
    require(registry.cached_model_path(name) == data.paths[order[i]],
            "lookup hit: wrong answer for " + name);
    require(bench_base_lookup(select, name) == data.paths[order[i]].size(),
            "lookup hit: baseline found no row for " + name);
  }
  interleave(
      config.lookup_rounds, config.lookup_block,
      [&](std::size_t i) { sink = sink + bench_ours_lookup(registry, data.names[order[i]]); },
      [&](std::size_t i) { sink = sink + bench_base_lookup(select, data.names[order[i]]); }, f.ours,
      f.base);
  f.note = std::to_string(f.ours.size()) + " calls per side, random names out of " +
           std::to_string(data.names.size()) + " entries";
  return f;
}

Figure lookup_fallback(const Config& config, const LookupData& data) {
  Figure f;
  f.name = "lookup fallback";
  f.unit = "us";
  f.goal_value = 1.2;
  Registry registry(data.registry);
  RawDb raw(data.registry);
  RawStatement select(raw.handle(), "SELECT path FROM models WHERE name = ?");
  const auto& names = data.fallback_names;
  const auto order = random_order(config.lookup_rounds * config.lookup_block, names.size());
  for (std::size_t i = 0; i < std::min<std::size_t>(order.size(), 50); ++i) {
    const auto& name = names[order[i]];
    require(registry.cached_model_path(name) == data.cache_dir + "/" + name,
            "lookup fallback: wrong answer for " + name);
    require(bench_base_fallback(select, data.cache_dir, name) != 0,
            "lookup fallback: baseline found nothing for " + name);
  }
  interleave(
      config.lookup_rounds, config.lookup_block,
      [&](std::size_t i) { sink = sink + bench_ours_lookup(registry, names[order[i]]); },
      [&](std::size_t i) {
        sink = sink + bench_base_fallback(select, data.cache_dir, names[order[i]]);
      },
      f.ours, f.base);
  f.note = "cache directory from the registry setting; baseline knows it in advance";
  return f;
}

Figure durable_set(const Config& config) {
  Figure f;
  f.name = "durable set";
  f.unit = "ms";
  f.scale = 1e-6;
  f.goal_value = 1.1;
  const std::string ours_file = config.root + "/durable-ours.db";
  const std::string base_file = config.root + "/durable-base.db";
  // Both files start with the same entries, written in one transaction big
  // enough to grow the WAL past the checkpoint size: the sets below then
  // reuse the WAL file instead of growing it, the steady state of a
  // long-lived process (growing a file makes each fdatasync also journal
  // the new size, which would favour whichever side checkpoints first).
  Snapshot prefill;
  for (std::size_t i = 0; i < config.durable_prefill; ++i) {
    const std::string name = "prefill_" + std::to_string(i);
    prefill.models.push_back({name, config.root + "/models/" + name, false, ""});
  }
  for (const auto& file : {ours_file, base_file}) {
    create_registry(file);
    Registry(file).import(prefill);
  }
  {
    Registry registry(ours_file);
    RawDb raw(base_file);
    require(raw.value("PRAGMA journal_mode") == "wal", "durable set: baseline is not in WAL");
    require(raw.value("PRAGMA synchronous") == "2", "durable set: baseline is not FULL");
    RawWriter writer(raw);
    const std::size_t total = config.durable_sets + 10;
    const std::size_t before = config.durable_prefill;
    std::vector<std::string> names, paths;
    for (std::size_t i = 0; i < total; ++i) {
      names.push_back("durable_" + std::to_string(i));
      paths.push_back(config.root + "/models/" + names.back());
    }
    for (std::size_t i = config.durable_sets; i < total; ++i) {  // warm up
      bench_ours_set(registry, names[i], paths[i]);
      bench_base_set(writer, names[i], paths[i]);
    }
    const std::size_t block = config.smoke ? 5 : 10;
    interleave(
        config.durable_sets / block, block,
        [&](std::size_t i) { bench_ours_set(registry, names[i], paths[i]); },
        [&](std::size_t i) { bench_base_set(writer, names[i], paths[i]); }, f.ours, f.base);
    require(registry.list_cached_models().size() == before + total, "durable set: entries missing");
  }
  f.note = "each call its own transaction; WAL, synchronous=FULL on both sides; " +
           std::to_string(config.durable_prefill) + " entries before";
  remove_registry(ours_file);
  remove_registry(base_file);
  return f;
}

std::vector<Figure> bulk_import(const Config& config) {
  Figure imp, txn;
  imp.name = "bulk import";
  txn.name = "bulk transaction";
  for (Figure* f : {&imp, &txn}) {
    f->unit = "ms";
    f->scale = 1e-6;
    f->goal_value = 1.3;
  }
  Snapshot snapshot;
  for (std::size_t i = 0; i < config.bulk_entries; ++i) {
    const std::string name = "bulk_" + std::to_string(i);
    snapshot.models.push_back({name, config.root + "/models/" + name, false, ""});
  }
  Samples base_all;
  for (std::size_t rep = 0; rep < config.bulk_reps; ++rep) {
    const auto timed_ours = [&](Figure& f, bool import) {
      const std::string file = config.root + "/bulk-ours.db";
      create_registry(file);
      {
        Registry registry(file);
        registry.list_cached_models();  // open the connection before timing
        const auto start = now_ns();
        if (import) {
          bench_ours_import(registry, snapshot);
        } else {
          bench_ours_transaction(registry, snapshot);
        }
        f.ours.add(static_cast<double>(now_ns() - start));
        require(registry.list_cached_models().size() == snapshot.models.size(),
                "bulk: entries missing");
      }
      remove_registry(file);
    };
    const auto timed_base = [&] {
      const std::string file = config.root + "/bulk-base.db";
      create_registry(file);
      {
        RawDb raw(file);
        const auto start = now_ns();
        bench_base_bulk(raw, snapshot);
        base_all.add(static_cast<double>(now_ns() - start));
      }
      remove_registry(file);
    };
    if (rep % 2 == 0) {
      timed_ours(imp, true);
      timed_base();
      timed_ours(txn, false);
    } else {
      timed_ours(txn, false);
      timed_base();
      timed_ours(imp, true);
    }
  }
  imp.base = base_all;
  txn.base = base_all;
  imp.note = std::to_string(config.bulk_entries) + " entries in one transaction, " +
             std::to_string(config.bulk_reps) + " runs per side; baseline is a plain INSERT loop";
  txn.note = "Registry::transaction with one set_model_cache per entry; same baseline";
  return {imp, txn};
}

Figure audit(const Config& config, const AuditData& data) {
  Figure f;
  f.name = "audit";
  f.unit = "ms";
  f.scale = 1e-6;
  f.goal_value = 1.0;
  Registry registry(data.registry);
  // The first audit also records when each missing path was first seen (a
  // write); the figure is the steady state after it.
  const auto first_start = now_ns();
  require(bench_ours_audit(registry) == data.missing, "audit: wrong stale count");
  const double first_ms = static_cast<double>(now_ns() - first_start) * 1e-6;
  require(bench_base_audit(data.paths) == data.missing, "audit: baseline miscounted");
  for (std::size_t rep = 0; rep < config.audit_reps; ++rep) {
    const auto ours = [&] {
      const auto start = now_ns();
      sink = sink + bench_ours_audit(registry);
      f.ours.add(static_cast<double>(now_ns() - start));
    };
    const auto base = [&] {
      const auto start = now_ns();
      sink = sink + bench_base_audit(data.paths);
      f.base.add(static_cast<double>(now_ns() - start));
    };
    if (rep % 2 == 0) {
      ours();
      base();
    } else {
      base();
      ours();
    }
  }
  f.note = std::to_string(data.paths.size()) + " entries, " + std::to_string(data.missing) +
           " missing, " + std::to_string(config.audit_reps) +
           " runs per side; first audit (records missing-since): " + fmt(first_ms, 0) + " ms";
  return f;
}

namespace {

struct WriterRun {
  double wall_ns = 0;
  long errors = 0;
  std::string first_error;  // what a failed set said
  Samples latencies;
};

// Starts `procs` writers at once, each doing `sets` durable sets on a fresh
// registry, and waits for all of them.
WriterRun run_writers(const Config& config, std::size_t procs, std::size_t sets,
                      const std::string& file) {
  create_registry(file);
  WriterRun run;
  std::vector<std::unique_ptr<Child>> children;
  const auto start = now_ns();
  for (std::size_t p = 0; p < procs; ++p) {
    children.push_back(std::make_unique<Child>(
        std::vector<std::string>{config.writer, file, "p" + std::to_string(p) + "_",
                                 std::to_string(sets)},
        Output::Capture, config.root));
  }
  std::vector<ChildResult> results;
  for (auto& child : children) results.push_back(child->wait());
  run.wall_ns = static_cast<double>(now_ns() - start);
  for (const auto& r : results) {
    require(r.exit_code == 0, "contention: a writer failed: " + r.err);
    if (run.first_error.empty() && !r.err.empty())
      run.first_error = r.err.substr(0, r.err.find('\n'));
    std::istringstream lines(r.out);
    std::string word;
    while (lines >> word) {
      if (word == "errors") {
        long errors = 0;
        lines >> errors;
        run.errors += errors;
      } else {
        run.latencies.add(std::stod(word));
      }
    }
  }
  require(run.latencies.size() == procs * sets, "contention: writers reported too few sets");
  {
    Registry registry(file);
    require(
        registry.list_cached_models().size() + static_cast<std::size_t>(run.errors) == procs * sets,
        "contention: entries missing");
  }
  remove_registry(file);
  return run;
}

}  // namespace

Figure contention(const Config& config, const std::string& location, const std::string& name,
                  double goal) {
  Figure f;
  f.name = name;
  f.unit = "ms";
  f.scale = 1e-6;
  f.goal = Goal::AtLeast;
  f.goal_value = goal;
  if (config.writer.empty()) {
    f.skipped = "bench_writer was not built";
    return f;
  }
  const std::size_t total = config.contention_procs * config.contention_sets;
  Samples many_wall, one_wall;
  long errors = 0;
  std::string first_error;
  const std::string file = location.empty() ? config.root + "/contention.db" : location;
  for (std::size_t rep = 0; rep < config.contention_reps; ++rep) {
    const auto many = [&] {
      auto run = run_writers(config, config.contention_procs, config.contention_sets, file);
      many_wall.add(run.wall_ns);
      errors += run.errors;
      if (first_error.empty()) first_error = run.first_error;
      f.ours.add_all(run.latencies);
    };
    const auto one = [&] {
      auto run = run_writers(config, 1, total, file);
      one_wall.add(run.wall_ns);
      errors += run.errors;
      if (first_error.empty()) first_error = run.first_error;
      f.base.add_all(run.latencies);
    };
    if (rep % 2 == 0) {
      one();
      many();
    } else {
      many();
      one();
    }
  }
  // Throughput ratio: (total / many) / (total / one).
  f.ratio = one_wall.median() / many_wall.median();
  const double n = static_cast<double>(total);
  f.note = "p50/p99 are per-set latencies; ratio is aggregate throughput, " +
           std::to_string(config.contention_procs) + " processes " +
           fmt(n / (many_wall.median() * 1e-9), 0) + " sets/s vs 1 process " +
           fmt(n / (one_wall.median() * 1e-9), 0) + " sets/s; " + std::to_string(errors) +
           " errors" + (first_error.empty() ? "" : " (first: " + first_error + ")");
  f.extra_ok = errors == 0;
  return f;
}

std::vector<Figure> open_process(const Config& config, const LookupData& data) {
  Figure linked, shared;
  linked.name = "open";
  shared.name = "open, shared rt";
  for (Figure* f : {&linked, &shared}) {
    f->unit = "ms";
    f->scale = 1e-6;
    f->goal_value = 1.5;
  }
  if (config.open_ours.empty() || config.open_ours_shared.empty() || config.open_raw.empty()) {
    linked.skipped = shared.skipped = "bench_open_ours(_shared) or bench_open_raw was not built";
    return {linked, shared};
  }
  const std::map<std::string, std::string> env = {{"TFIMM_REGISTRY", data.registry}};
  const auto base_argv = [&](const std::string& name) {
    return std::vector<std::string>{config.open_raw, data.registry, name};
  };
  for (const auto* program : {&config.open_ours, &config.open_ours_shared}) {
    const auto ours = run_child({*program, data.names[0]}, Output::Capture, config.root, env);
    require(ours.exit_code == 0 && ours.out == data.paths[0] + "\n",
            "open: " + *program + " answered wrongly: " + ours.out + ours.err);
  }
  const auto base = run_child(base_argv(data.names[0]), Output::Capture, config.root, env);
  require(base.exit_code == 0 && base.out == data.paths[0] + "\n",
          "open: bench_open_raw answered wrongly: " + base.out + base.err);

  // One baseline run per round, shared by both figures; the order rotates.
  const auto order = random_order(config.process_reps, data.names.size());
  for (std::size_t rep = 0; rep < config.process_reps; ++rep) {
    const auto& name = data.names[order[rep]];
    double base_ns = 0;
    const auto run = [&](const std::string& program, Figure* f) {
      const auto r = run_child(
          program == config.open_raw ? base_argv(name) : std::vector<std::string>{program, name},
          Output::Discard, config.root, env);
      require(r.exit_code == 0, "open: " + program + " failed for " + name);
      if (f == nullptr) {
        base_ns = r.wall_ns;
      } else {
        f->ours.add(r.wall_ns);
      }
    };
    const std::vector<std::pair<const std::string*, Figure*>> sides = {
        {&config.open_raw, nullptr},
        {&config.open_ours, &linked},
        {&config.open_ours_shared, &shared}};
    for (std::size_t k = 0; k < sides.size(); ++k) {
      const auto& [program, figure] = sides[(rep + k) % sides.size()];
      run(*program, figure);
    }
    linked.base.add(base_ns);
    shared.base.add(base_ns);
  }
  linked.note =
      "whole process (spawn to exit): default registry via $TFIMM_REGISTRY and one lookup, vs "
      "sqlite3_open_v2 and one SELECT; linked as tfimm-cache is (-static-libstdc++)";
  shared.note =
      "the same program with the shared libstdc++: the dynamic loader's work for the C++ "
      "runtime, which any C++ program pays and a process already running C++ has paid";
  return {linked, shared};
}

Figure tool_process(const Config& config, const LookupData& data) {
  Figure f;
  f.name = "tool";
  f.unit = "ms";
  f.scale = 1e-6;
  f.goal_value = 1.0;
  if (config.tool.empty()) {
    f.skipped = config.tool_missing;
    return f;
  }
  if (config.sqlite3_shell.empty()) {
    f.skipped = "the sqlite3 shell was not found in PATH (Debian package sqlite3)";
    return f;
  }
  const auto ours_argv = [&](const std::string& name) {
    return std::vector<std::string>{config.tool, "--registry", data.registry, "path", name};
  };
  const auto base_argv = [&](const std::string& name) {
    return std::vector<std::string>{config.sqlite3_shell, data.registry,
                                    "SELECT path FROM models WHERE name='" + name + "'"};
  };
  {
    const auto ours = run_child(ours_argv(data.names[0]), Output::Capture, config.root);
    const auto base = run_child(base_argv(data.names[0]), Output::Capture, config.root);
    require(ours.exit_code == 0 && ours.out == data.paths[0] + "\n",
            "tool: tfimm-cache path answered wrongly: " + ours.out + ours.err);
    require(base.exit_code == 0 && base.out == ours.out,
            "tool: the sqlite3 shell answered wrongly: " + base.out + base.err);
  }
  const auto order = random_order(config.tool_reps, data.names.size());
  for (std::size_t rep = 0; rep < config.tool_reps; ++rep) {
    const auto& name = data.names[order[rep]];
    const auto ours = [&] {
      const auto r = run_child(ours_argv(name), Output::Discard, config.root);
      require(r.exit_code == 0, "tool: tfimm-cache path failed for " + name);
      f.ours.add(r.wall_ns);
    };
    const auto base = [&] {
      const auto r = run_child(base_argv(name), Output::Discard, config.root);
      require(r.exit_code == 0, "tool: sqlite3 failed for " + name);
      f.base.add(r.wall_ns);
    };
    if (rep % 2 == 0) {
      ours();
      base();
    } else {
      base();
      ours();
    }
  }
  f.note = "whole process: `tfimm-cache --registry F path NAME` vs `sqlite3 F \"SELECT ...\"`";
  return f;
}

std::vector<MemoryRow> tool_memory(const Config& config, const AuditData& data) {
  // A child started by this (large) process inherits its peak RSS at exec,
  // so wait4's ru_maxrss would include the bench's own memory. GNU time is
  // small: the child it starts reports its own peak only.
  const std::string gnu_time = "/usr/bin/time";
  const bool have_time = ::access(gnu_time.c_str(), X_OK) == 0;
  std::vector<MemoryRow> rows;
  const auto measure = [&](const std::string& what, std::vector<std::string> argv) {
    const std::string rss_file = config.root + "/rss.txt";
    if (have_time) argv.insert(argv.begin(), {gnu_time, "-f", "%M", "-o", rss_file});
    const auto r = run_child(argv, Output::Discard, config.root);
    require(r.signal == 0, what + " was killed by signal " + std::to_string(r.signal));
    MemoryRow row{what, r.max_rss_kib, r.wall_ns * 1e-6, r.exit_code};
    if (have_time) {
      // "%M", preceded by "Command exited with non-zero status N" if so.
      std::ifstream in(rss_file);
      std::string word, last;
      while (in >> word) last = word;
      require(!last.empty(), "cannot read " + rss_file);
      row.max_rss_kib = std::stol(last);
    } else {
      row.what += " (upper bound: includes the bench's own memory)";
    }
    rows.push_back(row);
  };
  const std::string n = std::to_string(data.paths.size());
  if (!config.tool.empty()) {
    measure("tfimm-cache list (" + n + " entries)",
            {config.tool, "--registry", data.registry, "list"});
    measure("tfimm-cache audit (" + n + " entries)",
            {config.tool, "--registry", data.registry, "audit"});
  }
  if (!config.sqlite3_shell.empty()) {
    measure("reference: sqlite3 SELECT name, path (" + n + " rows)",
            {config.sqlite3_shell, data.registry, "SELECT name, path FROM models ORDER BY name"});
  }
  return rows;
}

}  // namespace tfimm::bench
