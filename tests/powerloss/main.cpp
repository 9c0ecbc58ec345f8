// tfimm_powerloss: proves that a change the library acknowledged survives a
// power loss, not only a killed process (SQLite keeps commits across a
// process crash whatever the synchronous setting, so tests/reliability's
// SIGKILL test cannot tell FULL from OFF).
//
// The recording VFS (recording_vfs.hpp), the default VFS before the library
// opens anything, logs every write, truncate, sync, create, delete and
// directory sync of a workload on the library's public API; crash_states.hpp
// rebuilds the files at thousands of cut points under several damage models
// and checks every image. Negative controls in the same run must each lose
// acknowledged changes, or the harness is broken.
//
//   tfimm_powerloss [--seed N] [--calls N] [--variants N] [--soak]
//   tfimm_powerloss --seed N --replay WORKLOAD:CUT:MODEL:VARIANT [--keep DIR]
//
// WORKLOAD: 0 the library's workload, 1-4 the negative controls in the order
// printed, 5 the four-thread workload (whose I/O the scheduler orders, so it
// replays only approximately: keep its failing image). CUT: an op index as a
// failure prints it, or aK, just before call K is acknowledged. MODEL: the
// damage model's number as printed, 0-4. A failing image is kept in --keep DIR
// (default: the current directory).
//
// TFIMM_SOAK=1 in the environment is --soak: four times the calls, twice the
// images per cut.
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "crash_states.hpp"
#include "recording_vfs.hpp"
#include "storage/sqlite/durability.hpp"
#include "tfimm/errors.hpp"
#include "tfimm/registry.hpp"

namespace fs = std::filesystem;
using powerloss::OpKind;

namespace {

// How a control departs from what the library does. The controls that need
// PRAGMA synchronous=NORMAL run the library's own connections and statements
// (what matters is that the harness catches losses in the library's write
// pattern, which a raw-SQLite imitation would not prove): a test-only hook
// in tfimm::detail (lib/storage/sqlite/durability.hpp, not a public header) turns the
// library's refusal off and sets NORMAL after the library has set FULL.
// Threads is not a control: the library workload of four threads at once
// (see run_threaded_workload).
enum class Control {
  None,
  NormalEverywhere,
  NormalOneOfFour,
  AckBeforeCommit,
  NoDirectorySync,
  Threads
};
constexpr Control kControls[] = {Control::NormalEverywhere, Control::NormalOneOfFour,
                                 Control::AckBeforeCommit, Control::NoDirectorySync};

const char* to_string(Control c) {
  switch (c) {
    case Control::None:
      return "library";
    case Control::NormalEverywhere:
      return "synchronous=NORMAL on every connection";
    case Control::NormalOneOfFour:
      return "synchronous=NORMAL on one connection of four";
    case Control::AckBeforeCommit:
      return "acknowledged before COMMIT";
    case Control::NoDirectorySync:
      return "directory syncs suppressed";
    case Control::Threads:
      return "four threads";
  }
  return "?";
}

int g_connections_opened = 0;
Control g_control = Control::None;

void after_prepare(sqlite3* db) {
  const int n = g_connections_opened++;
  if (g_control == Control::NormalEverywhere ||
      (g_control == Control::NormalOneOfFour && n % 4 == 3)) {
    sqlite3_exec(db, "PRAGMA synchronous=NORMAL", nullptr, nullptr, nullptr);
  }
}

struct Recording {
  powerloss::Log log;
  // Per thread (one, but for run_threaded_workload): state hash after each
  // of its calls.
  std::vector<std::vector<std::uint64_t>> expected;
  std::size_t calls = 0;
  std::size_t transactions = 0;  // calls that wrote (all but no-op ones)
};

std::string read_state(tfimm::Registry& reg) {
  std::vector<std::array<std::string, 3>> models;
  for (const auto& e : reg.entries()) models.push_back({e.name, e.path, e.locked ? "1" : "0"});
  std::vector<std::pair<std::string, std::string>> settings;
  if (const auto dir = reg.stored_dir()) settings.emplace_back("cache_dir", *dir);
  const auto last = reg.history({}, 1);
  return powerloss::canonical_state(models, settings, last.empty() ? 0 : last[0].id);
}

// A raw SQLite connection of another program on the same file: an
// operator's `sqlite3 registry.db`, which holds a read snapshot for a while
// or runs a TRUNCATE checkpoint (the only thing that truncates a WAL when
// every connection uses the library).
struct Raw {
  sqlite3* db = nullptr;
  explicit Raw(const std::string& path) {
    sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr);
  }
  ~Raw() { sqlite3_close_v2(db); }
  void exec(const char* sql) { sqlite3_exec(db, sql, nullptr, nullptr, nullptr); }
};

// The workload: `calls` calls of the public API, each on one of four
// Registry objects (four connections), deterministic from the seed: one
// thread interleaves them, so that the same seed gives the same I/O.
Recording run_workload(const fs::path& dir, std::uint64_t seed, std::size_t calls,
                       Control control) {
  const std::string db = (dir / "registry.db").string();
  auto& hooks = tfimm::detail::testing_hooks();
  hooks.checkpoint_frames = 48;  // many checkpoints and WAL restarts
  hooks.skip_durability_check =
      control == Control::NormalEverywhere || control == Control::NormalOneOfFour;
  hooks.after_prepare = &after_prepare;
  g_control = control;
  g_connections_opened = 0;
  powerloss::suppress_directory_syncs(control == Control::NoDirectorySync);
  powerloss::restart(dir.string());

  Recording rec;
  rec.expected.assign(1, {powerloss::state_hash(powerloss::canonical_state({}, {}, 0))});
  std::mt19937_64 rng(seed * 7919 + static_cast<std::uint64_t>(control));
  auto pick = [&](std::size_t n) { return static_cast<std::size_t>(rng() % n); };
  std::vector<std::unique_ptr<tfimm::Registry>> regs(4);
  std::unique_ptr<Raw> reader;
  int reader_left = 0;
  std::vector<std::string> names;  // registered now
  std::vector<std::string> locked;
  auto any_name = [&] { return "m" + std::to_string(pick(32)); };
  for (std::size_t k = 1; k <= calls; ++k) {
    const std::size_t c = pick(4);
    if (!regs[c]) regs[c] = std::make_unique<tfimm::Registry>(db);
    auto& reg = *regs[c];
    const std::string path = "/gone/" + std::to_string(k);
    powerloss::log_event(OpKind::Begin, static_cast<std::int64_t>(k));
    bool acked = false;
    const unsigned roll = static_cast<unsigned>(pick(100));
    if (control == Control::AckBeforeCommit) {
      reg.transaction([&](tfimm::Transaction& tx) {
        tx.set_model_cache(any_name(), path);
        powerloss::log_event(OpKind::Ack, static_cast<std::int64_t>(k));
      });
      acked = true;
    } else if (roll < 40 || names.empty()) {
      reg.set_model_cache(any_name(), path + "/m");
    } else if (roll < 52) {
      reg.clear_model_cache(names[pick(names.size())]);
    } else if (roll < 67) {
      reg.transaction([&](tfimm::Transaction& tx) {
        const std::size_t n = 2 + pick(4);
        for (std::size_t i = 0; i < n; ++i) {
          if (pick(4) == 0 && !names.empty()) {
            tx.clear_model_cache(names[pick(names.size())]);
          } else {
            tx.set_model_cache(any_name(), path + "/" + std::to_string(i));
          }
        }
        if (pick(3) == 0) tx.set_dir(path + "/cache");
      });
    } else if (roll < 72) {
      if (pick(2) == 0) {
        reg.set_dir(path + "/dir");
      } else {
        reg.unset_dir();
      }
    } else if (roll < 79) {
      tfimm::Snapshot snapshot;
      const std::size_t n = 3 + pick(8);
      const std::size_t first = pick(32);
      for (std::size_t i = 0; i < n; ++i) {
        snapshot.models.push_back({"m" + std::to_string((first + i * 5) % 32),
                                   path + "/i" + std::to_string(i), pick(5) == 0, ""});
      }
      if (pick(2) == 0) snapshot.cache_dir = path + "/imported";
      tfimm::ImportOptions options;
      options.replace = pick(6) == 0;
      reg.import(snapshot, options);
    } else if (roll < 86) {
      if (!locked.empty() && pick(2) == 0) {
        reg.unlock(locked[pick(locked.size())]);
      } else {
        reg.lock(names[pick(names.size())], "pinned " + std::to_string(k));
      }
    } else if (roll < 88) {
      // Every registered path is missing: prune forgets all unlocked entries.
      reg.prune();
    } else {
      reg.set_model_cache(any_name(), path + "/m");
    }
    if (!acked) powerloss::log_event(OpKind::Ack, static_cast<std::int64_t>(k));
    const std::string state = read_state(reg);
    rec.expected[0].push_back(powerloss::state_hash(state));
    names.clear();
    locked.clear();
    for (const auto& e : reg.entries()) {
      names.push_back(e.name);
      if (e.locked) locked.push_back(e.name);
    }
    ++rec.calls;
    // Between calls: readers holding snapshots, an operator's checkpoint,
    // and now and then every connection closed, so that the last one to
    // close deletes the WAL and the next open creates it again.
    if (reader && --reader_left <= 0) reader.reset();
    const unsigned between = static_cast<unsigned>(pick(100));
    if (between < 6 && !reader) {
      reader = std::make_unique<Raw>(db);
      reader->exec("BEGIN; SELECT count(*) FROM models;");
      reader_left = 1 + static_cast<int>(pick(3));
    } else if (between < 9 && !reader) {
      Raw(db).exec("PRAGMA wal_checkpoint(TRUNCATE)");
    } else if (between < 12) {
      reader.reset();
      for (auto& r : regs) r.reset();
    }
  }
  reader.reset();
  for (auto& r : regs) r.reset();
  rec.log = powerloss::restart(dir.string());
  hooks = tfimm::detail::TestingHooks{};
  powerloss::suppress_directory_syncs(false);
  return rec;
}

// Four threads at once, each with its own connection and its own names
// ("t<thread>_m<n>": the crash states are judged per thread), so that commits
// and the library's checkpoints of different connections really overlap.
// The interleaving is the scheduler's: the same seed gives the same calls,
// not the same I/O, so a failure here is replayed from its kept image.
Recording run_threaded_workload(const fs::path& dir, std::uint64_t seed, std::size_t calls) {
  constexpr std::uint32_t kThreads = 4;
  const std::string db = (dir / "registry.db").string();
  auto& hooks = tfimm::detail::testing_hooks();
  hooks.checkpoint_frames = 48;
  hooks.after_prepare = &after_prepare;
  g_control = Control::Threads;
  powerloss::restart(dir.string());
  Recording rec;
  rec.expected.assign(kThreads, {powerloss::state_hash(powerloss::canonical_state({}, {}, 0))});
  std::vector<std::thread> threads;
  std::mutex failure_mutex;
  std::string failure;
  for (std::uint32_t t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(seed * 31 + t);
      auto pick = [&](std::size_t n) { return static_cast<std::size_t>(rng() % n); };
      const std::string prefix = "t" + std::to_string(t) + "_";
      auto any_name = [&] { return prefix + "m" + std::to_string(pick(12)); };
      auto reg = std::make_unique<tfimm::Registry>(db);
      std::vector<std::string> names;
      try {
        for (std::size_t k = 1; k <= calls; ++k) {
          const std::string path = "/gone/" + prefix + std::to_string(k);
          powerloss::log_event(OpKind::Begin, static_cast<std::int64_t>(k), t);
          const auto roll = pick(100);
          if (roll < 45 || names.empty()) {
            reg->set_model_cache(any_name(), path);
          } else if (roll < 60) {
            reg->clear_model_cache(names[pick(names.size())]);
          } else if (roll < 80) {
            reg->transaction([&](tfimm::Transaction& tx) {
              const std::size_t n = 2 + pick(4);
              for (std::size_t i = 0; i < n; ++i) {
                if (pick(4) == 0) {
                  tx.clear_model_cache(names[pick(names.size())]);
                } else {
                  tx.set_model_cache(any_name(), path + "/" + std::to_string(i));
                }
              }
            });
          } else if (roll < 90) {
            tfimm::Snapshot snapshot;
            const std::size_t first = pick(12);
            for (std::size_t i = 0; i < 3 + pick(4); ++i) {
              snapshot.models.push_back({prefix + "m" + std::to_string((first + i * 5) % 12),
                                         path + "/i" + std::to_string(i), pick(5) == 0, ""});
            }
            reg->import(snapshot);
          } else if (pick(2) == 0) {
            reg->lock(names[pick(names.size())], "pinned");
          } else {
            reg->unlock(names[pick(names.size())]);
          }
          powerloss::log_event(OpKind::Ack, static_cast<std::int64_t>(k), t);
          std::vector<std::array<std::string, 3>> mine;
          names.clear();
          for (const auto& e : reg->entries()) {
            if (e.name.rfind(prefix, 0) != 0) continue;
            mine.push_back({e.name, e.path, e.locked ? "1" : "0"});
            names.push_back(e.name);
          }
          rec.expected[t].push_back(powerloss::state_hash(powerloss::canonical_state(mine, {}, 0)));
          // Now and then a new connection (the last one closed deletes the WAL).
          if (pick(100) < 4) reg = std::make_unique<tfimm::Registry>(db);
        }
      } catch (const std::exception& e) {
        std::lock_guard<std::mutex> lock(failure_mutex);
        failure = std::string("thread ") + std::to_string(t) + ": " + e.what();
      }
    });
  }
  for (auto& th : threads) th.join();
  if (!failure.empty()) throw std::runtime_error(failure);
  rec.calls = calls * kThreads;
  rec.log = powerloss::restart(dir.string());
  hooks = tfimm::detail::TestingHooks{};
  return rec;
}

std::string scratch_root() {
  std::error_code ec;
  if (fs::is_directory("/dev/shm", ec) && ::access("/dev/shm", W_OK) == 0) return "/dev/shm";
  const char* tmp = std::getenv("TMPDIR");
  return tmp && *tmp ? tmp : "/tmp";
}

struct Options {
  std::uint64_t seed = 20261202;
  std::size_t calls = 1200;
  std::size_t control_calls = 120;
  std::size_t thread_calls = 60;  // per thread
  int variants = 6;               // images per cut for each random damage model
  int control_variants = 2;       // the controls only need to show losses
  double other_cut_rate = 0.15;
  std::optional<std::string> replay;
  std::string keep;
};

struct Run {
  Control control;
  Recording rec;
  powerloss::CheckResult result;
  double record_seconds = 0;
  double check_seconds = 0;
};

Run run(const fs::path& work, const Options& o, Control control,
        const powerloss::CheckOptions& base) {
  const fs::path dir = work / (std::string("record-") + std::to_string(static_cast<int>(control)));
  fs::create_directories(dir);
  const fs::path real = fs::canonical(dir);
  const auto t0 = std::chrono::steady_clock::now();
  Run r{control,
        control == Control::Threads
            ? run_threaded_workload(real, o.seed, o.thread_calls)
            : run_workload(real, o.seed, control == Control::None ? o.calls : o.control_calls,
                           control),
        {}};
  const auto t1 = std::chrono::steady_clock::now();
  auto options = base;
  options.scratch = (fs::path(scratch_root()) / work.filename() / "images").string();
  r.result = powerloss::check_crash_states(r.rec.log, r.rec.expected, options);
  const auto t2 = std::chrono::steady_clock::now();
  r.record_seconds = std::chrono::duration<double>(t1 - t0).count();
  r.check_seconds = std::chrono::duration<double>(t2 - t1).count();
  fs::remove_all(dir);
  return r;
}

void print_failures(const Run& r, const Options& o) {
  for (const auto& f : r.result.failures) {
    std::cout << "  FAILED " << f.what << "\n    seed " << o.seed << ", cut before op " << f.cut
              << ", damage model " << static_cast<int>(f.damage) << " ("
              << powerloss::to_string(f.damage) << "), variant " << f.variant
              << "\n    replay: tfimm_powerloss --seed " << o.seed << " --replay "
              << static_cast<int>(r.control) << ":" << f.cut << ":" << static_cast<int>(f.damage)
              << ":" << f.variant << (f.kept.empty() ? "" : "\n    image kept in " + f.kept)
              << "\n";
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
#ifdef POWERLOSS_SANITIZED
  // Several times slower under sanitizers: a shorter default workload.
  o.calls /= 4;
  o.variants /= 2;
#endif
  const char* soak = std::getenv("TFIMM_SOAK");
  bool soaking = soak && *soak && std::string(soak) != "0";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << "tfimm_powerloss: " << a << " needs a value\n";
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--seed") {
      o.seed = std::stoull(next());
    } else if (a == "--calls") {
      o.calls = std::stoul(next());
    } else if (a == "--variants") {
      o.variants = std::stoi(next());
    } else if (a == "--soak") {
      soaking = true;
    } else if (a == "--replay") {
      o.replay = next();
    } else if (a == "--keep") {
      o.keep = next();
    } else {
      std::cerr << "tfimm_powerloss: unknown argument " << a
                << "\nusage: tfimm_powerloss [--seed N] [--calls N] [--variants N] [--soak]\n"
                   "       tfimm_powerloss --seed N --replay WORKLOAD:CUT:MODEL:VARIANT [--keep "
                   "DIR]\n";
      return 2;
    }
  }
  if (soaking) {
    o.calls *= 4;
    o.control_calls *= 4;
    o.thread_calls *= 4;
    o.variants *= 2;
  }
  std::cout << std::unitbuf;  // each figure as soon as it is known
  const auto t0 = std::chrono::steady_clock::now();
  // Before the library opens anything.
  // The workload records on a disk file system (TMPDIR), the images are
  // checked on tmpfs when there is one (scratch_root()).
  const char* tmp = std::getenv("TMPDIR");
  const fs::path work =
      fs::path(tmp && *tmp ? tmp : "/tmp") / ("tfimm-powerloss-" + std::to_string(::getpid()));
  fs::create_directories(work);
  const fs::path images = fs::path(scratch_root()) / work.filename();
  powerloss::install((work / "none").string());

  powerloss::CheckOptions base;
  base.seed = o.seed;
  base.variants = o.variants;
  base.other_cut_rate = o.other_cut_rate;
  base.threads = 2;
  base.registry = "registry.db";
  base.failure_dir = o.keep.empty() ? (work / "failures").string() : o.keep;

  if (o.replay) {
    // CUT is an op index as a failure prints it, or aK: just before call K
    // is acknowledged (which stays the same op when the log shifts a little:
    // the library records the pid and the time, whose sizes can vary).
    int control = 0, model = 0, variant = 0;
    char cut_text[32] = {};
    if (std::sscanf(o.replay->c_str(), "%d:%31[^:]:%d:%d", &control, cut_text, &model, &variant) !=
            4 ||
        control < 0 || control > 5 || model < 0 ||
        model >= static_cast<int>(powerloss::kDamageModels)) {
      std::cerr << "tfimm_powerloss: --replay takes WORKLOAD:CUT:MODEL:VARIANT (WORKLOAD 0-5, "
                   "CUT an op index or aK, MODEL 0-4)\n";
      return 2;
    }
    const fs::path dir = work / "replay";
    fs::create_directories(dir);
    const auto ctl = static_cast<Control>(control);
    const auto rec = ctl == Control::Threads
                         ? run_threaded_workload(fs::canonical(dir), o.seed, o.thread_calls)
                         : run_workload(fs::canonical(dir), o.seed,
                                        ctl == Control::None ? o.calls : o.control_calls, ctl);
    std::size_t cut = 0;
    if (cut_text[0] == 'a') {
      const long long call = std::atoll(cut_text + 1);
      while (cut < rec.log.ops.size() &&
             !(rec.log.ops[cut].kind == OpKind::Ack && rec.log.ops[cut].offset == call)) {
        ++cut;
      }
    } else {
      cut = std::stoull(cut_text);
    }
    if (cut > rec.log.ops.size()) {
      std::cerr << "tfimm_powerloss: cut " << cut_text << " is past the " << rec.log.ops.size()
                << " ops of the log\n";
      return 2;
    }
    base.only = powerloss::CheckOptions::One{cut, static_cast<powerloss::Damage>(model), variant};
    base.scratch = (images / "replay").string();
    if (o.keep.empty()) base.failure_dir = fs::current_path().string();
    const auto result = powerloss::check_crash_states(rec.log, rec.expected, base);
    fs::remove_all(work);
    fs::remove_all(images);
    std::cout << to_string(ctl) << ", seed " << o.seed << ", cut before op " << cut << " of "
              << rec.log.ops.size() << ", "
              << powerloss::to_string(static_cast<powerloss::Damage>(model)) << ", variant "
              << variant << ": ";
    if (result.failures.empty()) {
      std::cout << "ok\n";
      return 0;
    }
    std::cout << result.failures[0].what << "\n  image kept in " << result.failures[0].kept << "\n";
    return 1;
  }

  std::cout << "power-loss crash states, seed " << o.seed << (soaking ? " (soak)" : "") << "\n";
  Run lib = run(work, o, Control::None, base);
  const auto& log = lib.rec.log;
  const auto& res = lib.result;
  std::cout << "library workload: " << lib.rec.calls << " calls (transactions), "
            << log.count(OpKind::Ack) << " acknowledged changes\n  logged:";
  for (int k = 0; k < powerloss::kOpKinds - 2; ++k) {
    std::cout << " " << log.count(static_cast<OpKind>(k)) << " "
              << powerloss::to_string(static_cast<OpKind>(k)) << ",";
  }
  std::cout << " " << log.ops.size() << " ops\n  crash states: " << res.total(res.checked) << " at "
            << res.cuts << " cut points, " << res.opened << " distinct images opened (workload "
            << static_cast<int>(lib.record_seconds + 0.5) << " s, checks "
            << static_cast<int>(lib.check_seconds + 0.5) << " s)\n";
  for (std::size_t m = 0; m < powerloss::kDamageModels; ++m) {
    std::cout << "    " << powerloss::to_string(static_cast<powerloss::Damage>(m)) << ": "
              << res.checked[m] << " checked, " << res.lost[m] << " lost, " << res.corrupt[m]
              << " corrupt, " << res.phantom[m] << " phantom\n";
  }
  bool ok = true;
  const std::size_t bad = res.total(res.lost) + res.total(res.corrupt) + res.total(res.phantom);
  std::cout << "  lost " << res.total(res.lost) << ", corrupt " << res.total(res.corrupt)
            << ", phantom " << res.total(res.phantom) << "\n";
  if (bad != 0) {
    ok = false;
    print_failures(lib, o);
  }
  for (const auto kind : {OpKind::Create, OpKind::Delete, OpKind::Truncate, OpKind::DirSync}) {
    if (log.count(kind) == 0) {
      ok = false;
      std::cout << "  FAILED coverage: no " << powerloss::to_string(kind) << " logged\n";
    }
  }
  {
    auto half = base;
    half.variants = std::max(1, o.variants / 2);
    Run th = run(work, o, Control::Threads, half);
    const auto& tr = th.result;
    const std::size_t tbad = tr.total(tr.lost) + tr.total(tr.corrupt) + tr.total(tr.phantom);
    std::cout << "four threads at once, judged per thread: " << th.rec.calls << " calls, "
              << th.rec.log.count(OpKind::Sync) << " syncs; " << tr.total(tr.checked)
              << " crash states at " << tr.cuts << " cut points (" << tr.opened
              << " distinct images): lost " << tr.total(tr.lost) << ", corrupt "
              << tr.total(tr.corrupt) << ", phantom " << tr.total(tr.phantom) << "\n";
    if (tbad != 0) {
      ok = false;
      print_failures(th, o);
    }
  }
  std::cout << "negative controls (each must lose acknowledged changes):\n";
  auto quiet = base;
  quiet.failure_dir.clear();
  quiet.variants = o.control_variants;
  for (const auto control : kControls) {
    Run r = run(work, o, control, quiet);
    const auto& cr = r.result;
    const std::size_t losses = cr.total(cr.lost) + cr.total(cr.corrupt) + cr.total(cr.phantom);
    std::cout << "  " << to_string(control) << ": " << losses << " of " << cr.total(cr.checked)
              << " crash states lost acknowledged changes (" << cr.total(cr.lost) << " lost, "
              << cr.total(cr.corrupt) << " corrupt, " << cr.total(cr.phantom) << " phantom)"
              << (losses == 0 ? "  FAILED: the harness would miss this" : "") << "\n";
    if (losses == 0) ok = false;
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::cout << "time: " << static_cast<int>(seconds + 0.5) << " s\n";
  std::error_code ec;
  fs::remove_all(images, ec);
  if (ok) fs::remove_all(work, ec);
  std::cout << (ok ? "PASSED" : "FAILED (kept " + work.string() + ")") << "\n";
  return ok ? 0 : 1;
}
