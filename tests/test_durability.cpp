// Tests for lib/storage/sqlite/durability.cpp: a registry is written only by connections
// that commit durably, directories the library creates are synced, and the
// library's own checkpoints keep the WAL bounded. (That an acknowledged
// write survives a power loss is proved by tests/powerloss/.)
#include <sqlite3.h>
#include <sys/stat.h>
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstdio>
#include <map>
#include <sstream>
#include <string>

#include "testutil.hpp"
#include "tfimm/errors.hpp"
#include "tfimm/registry.hpp"

namespace t = tfimm::test;

namespace {

// What an SQLite build or an auto-loaded extension can do to every
// connection of a process: preset a pragma and make the library's own
// setting of it a silent no-op (an authorizer answering SQLITE_IGNORE).
std::string g_pragma;  // "synchronous" or "journal_mode"
std::string g_preset;  // e.g. "PRAGMA synchronous=NORMAL"

int ignore_setting(void*, int action, const char* pragma, const char* value, const char*,
                   const char*) {
  return action == SQLITE_PRAGMA && value != nullptr && g_pragma == pragma ? SQLITE_IGNORE
                                                                           : SQLITE_OK;
}

int preset_pragma(sqlite3* db, char**, const sqlite3_api_routines*) {
  sqlite3_exec(db, g_preset.c_str(), nullptr, nullptr, nullptr);
  sqlite3_set_authorizer(db, &ignore_setting, nullptr);
  return SQLITE_OK;
}

using Entry = void (*)();

// Every connection opened while it lives gets the preset pragma.
class PresetPragma {
 public:
  PresetPragma(std::string pragma, std::string preset) {
    g_pragma = std::move(pragma);
    g_preset = std::move(preset);
    sqlite3_auto_extension(reinterpret_cast<Entry>(&preset_pragma));
  }
  ~PresetPragma() { sqlite3_cancel_auto_extension(reinterpret_cast<Entry>(&preset_pragma)); }
  PresetPragma(const PresetPragma&) = delete;
  PresetPragma& operator=(const PresetPragma&) = delete;
};

std::string refusal(const std::function<void()>& call) {
  try {
    call();
  } catch (const tfimm::RegistryError& e) {
    return e.what();
  }
  return "(no RegistryError)";
}

}  // namespace

TEST_CASE("a registry is not written through a connection whose synchronous is not FULL",
          "[durability]") {
  t::TempDir dir;
  const std::string db = dir / "registry.db";
  {
    tfimm::Registry reg(db);
    reg.set_model_cache("kept", "/models/kept");
  }
  SECTION("an existing registry: the set is refused, named, and nothing changes") {
    {
      PresetPragma normal("synchronous", "PRAGMA synchronous=NORMAL");
      tfimm::Registry reg(db);
      const std::string message = refusal([&] { reg.set_model_cache("new", "/models/new"); });
      CHECK_THAT(message, Catch::Contains("refusing to write to registry " + db));
      CHECK_THAT(message, Catch::Contains("PRAGMA synchronous is NORMAL"));
      CHECK_THAT(message, Catch::Contains("nothing was changed"));
      // Reads still work.
      CHECK(reg.cached_model_path("kept") == "/models/kept");
    }
    tfimm::Registry reg(db);
    CHECK(reg.list_cached_models() == std::vector<std::string>{"kept"});
  }
  SECTION("a new registry: nothing is registered") {
    const std::string fresh = dir / "fresh.db";
    {
      PresetPragma off("synchronous", "PRAGMA synchronous=OFF");
      tfimm::Registry reg(fresh);
      CHECK_THAT(refusal([&] { reg.set_model_cache("new", "/models/new"); }),
                 Catch::Contains("PRAGMA synchronous is OFF"));
    }
    tfimm::Registry reg(fresh);
    CHECK(reg.list_cached_models().empty());
  }
}

TEST_CASE("a registry is not written in a journal mode that loses commits", "[durability]") {
  t::TempDir dir;
  const std::string db = dir / "registry.db";
  {
    PresetPragma memory("journal_mode", "PRAGMA journal_mode=MEMORY");
    tfimm::Registry reg(db);
    const std::string message = refusal([&] { reg.set_model_cache("new", "/models/new"); });
    CHECK_THAT(message, Catch::Contains("its journal mode is memory"));
    CHECK_THAT(message, Catch::Contains("nothing was changed"));
  }
  tfimm::Registry reg(db);
  CHECK(reg.list_cached_models().empty());
  reg.set_model_cache("new", "/models/new");
  CHECK(reg.list_cached_models() == std::vector<std::string>{"new"});
}

TEST_CASE(
    "each directory the library creates for a registry is synced with its parent "
    "before the set returns",
    "[durability]") {
  if (t::run_process({"strace", "-V"}).exit_code != 0) {
    WARN("strace is not installed: skipped");
    return;
  }
  t::TempDir dir;
  const std::string root = dir.path();
  const std::string db = root + "/a/b/c/registry.db";
  const std::string trace = root + "/trace";
  const auto run =
      t::run_process({"strace", "-f", "-qq", "-e", "trace=mkdir,mkdirat,openat,fsync,close", "-o",
                      trace, TFIMM_TEST_HELPER, db, "set", "m", "/models/m"},
                     {},
                     // LeakSanitizer cannot run under ptrace (sanitizer builds).
                     {{"ASAN_OPTIONS", "detect_leaks=0"}});
  INFO(run.err);
  REQUIRE(run.exit_code == 0);
  // Every directory opened and then fsynced, by name.
  std::map<std::string, std::string> open_dirs;  // fd -> path
  std::map<std::string, int> synced;
  std::istringstream lines(t::read_file(trace));
  for (std::string line; std::getline(lines, line);) {
    const auto quote = line.find('"');
    if (line.find("openat(") != std::string::npos &&
        line.find("O_DIRECTORY") != std::string::npos && quote != std::string::npos) {
      const auto end = line.find('"', quote + 1);
      const auto eq = line.rfind("= ");
      open_dirs[line.substr(eq + 2)] = line.substr(quote + 1, end - quote - 1);
    } else if (const auto at = line.find("fsync("); at != std::string::npos) {
      const std::string fd = line.substr(at + 6, line.find(')', at) - at - 6);
      if (open_dirs.count(fd) != 0 && line.find("= 0") != std::string::npos) {
        ++synced[open_dirs[fd]];
      }
    } else if (const auto closed = line.find("close("); closed != std::string::npos) {
      open_dirs.erase(line.substr(closed + 6, line.find(')', closed) - closed - 6));
    }
  }
  for (const std::string& d : {root, root + "/a", root + "/a/b", root + "/a/b/c"}) {
    INFO("directory " << d << "\n" << t::read_file(trace));
    CHECK(synced[d] > 0);
  }
}

namespace {

// Frames in the WAL of `db` now: mxFrame in the WAL-index header at the
// start of its -shm (offset 16, native byte order), read without a
// connection, so that looking checkpoints nothing.
std::uint32_t wal_frames(const std::string& db) {
  std::uint32_t frames = 0;
  if (FILE* shm = std::fopen((db + "-shm").c_str(), "rb")) {
    if (std::fseek(shm, 16, SEEK_SET) != 0 || std::fread(&frames, 4, 1, shm) != 1) frames = 0;
    std::fclose(shm);
  }
  return frames;
}

}  // namespace

TEST_CASE(
    "a reader holding an old snapshot holds checkpoints back but no write, and the WAL "
    "starts over once it ends",
    "[durability]") {
  t::TempDir dir;
  const std::string db = dir / "registry.db";
  tfimm::Registry reg(db);
  reg.set_model_cache("first", "/models/first");
  sqlite3* reader = nullptr;
  REQUIRE(sqlite3_open_v2(db.c_str(), &reader, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK);
  REQUIRE(sqlite3_exec(reader, "BEGIN; SELECT count(*) FROM models;", nullptr, nullptr, nullptr) ==
          SQLITE_OK);
  // Past SQLite's 1 000-page checkpoint size while the reader needs the
  // oldest pages: each checkpoint gives up, every write succeeds.
  int n = 0;
  auto write_batch = [&] {
    reg.transaction([&](tfimm::Transaction& tx) {
      for (int i = 0; i < 40; ++i, ++n) {
        tx.set_model_cache("m" + std::to_string(n), "/models/a-rather-long-path/" +
                                                        std::string(200, 'x') + std::to_string(n));
      }
    });
  };
  while (wal_frames(db) < 1500) write_batch();
  CHECK(reg.list_cached_models().size() == static_cast<std::size_t>(n) + 1);
  const auto held = wal_frames(db);
  sqlite3_exec(reader, "COMMIT", nullptr, nullptr, nullptr);
  sqlite3_close(reader);
  // A later commit checkpoints everything, and the writer after it starts
  // the WAL over.
  auto frames = held;
  for (int batch = 0; batch < 20 && frames >= held; ++batch) {
    write_batch();
    frames = wal_frames(db);
  }
  INFO("frames while the reader held its snapshot: " << held << ", after: " << frames);
  CHECK(frames < held);
  CHECK(frames < 1000);
  CHECK(reg.list_cached_models().size() == static_cast<std::size_t>(n) + 1);
}
