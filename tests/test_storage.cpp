// Tests for lib/storage/ and its SQLite backend: the SQLite file, its schema and migrations, the
// upgrade from older releases, files that are refused and left untouched,
// several processes creating or upgrading one file at once, busy and
// network-file-system behaviour.
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <future>
#include <string>
#include <vector>

#include "rawdb.hpp"
#include "schema_v1.hpp"
#include "schema_v2.hpp"
#include "schema_v3.hpp"
#include "testutil.hpp"
#include "tfimm/errors.hpp"
#include "tfimm/registry.hpp"

namespace t = tfimm::test;
using namespace std::chrono_literals;

namespace {

// The application id the library writes into every registry it creates.
std::int64_t registry_application_id() {
  t::TempDir dir;
  {
    tfimm::Registry reg(dir / "probe.db");
    reg.set_model_cache("probe", "/probe");
  }
  t::RawDb db(dir / "probe.db");
  return db.integer("PRAGMA application_id");
}

using tfimm::test::kSchemaV1;

constexpr std::int64_t kV1AppliedAt = 1600000000000;

// A registry at schema version 1 holding two models and a cache directory.
void make_v1_registry(const std::string& path) {
  const std::int64_t app_id = registry_application_id();
  t::RawDb db(path, true);
  db.exec("PRAGMA journal_mode = WAL");
  db.exec("BEGIN");
  db.exec("PRAGMA application_id = " + std::to_string(app_id));
  db.exec(kSchemaV1);
  db.exec("INSERT INTO schema_migrations VALUES (1, " + std::to_string(kV1AppliedAt) + ")");
  db.exec(
      "INSERT INTO models VALUES ('resnet18', '/data/w/resnet18', 1600000000000, 1600000005000),"
      " ('vit_base_patch16_224.augreg_in21k', '/data/w/vit it''s', 1600000001000, 1600000001000)");
  db.exec("INSERT INTO settings VALUES ('cache_dir', '/srv/tfimm/cache')");
  db.exec("PRAGMA user_version = 1");
  db.exec("COMMIT");
}

// A registry at schema version 2 holding two entries (one locked) and a
// history of every kind of row release 2 wrote.
void make_v2_registry(const std::string& path) {
  make_v1_registry(path);
  t::RawDb db(path);
  db.exec("BEGIN");
  db.exec(tfimm::test::kSchemaV2);
  db.exec("INSERT INTO schema_migrations VALUES (2, 1600000100000)");
  db.exec("UPDATE models SET locked = 1, lock_reason = 'paper' WHERE name = 'resnet18'");
  db.exec(
      "INSERT INTO history(at, action, name, old_path, new_path, user, host, pid) VALUES "
      "(1600000010000, 'set', 'gone', NULL, '/data/w/gone', 'ann', 'h1', 10),"
      "(1600000020000, 'lock', 'resnet18', '/data/w/resnet18', '/data/w/resnet18', 'ann', 'h1', "
      "11),"
      "(1600000030000, 'clear', 'gone', '/data/w/gone', NULL, 'bob', 'h2', 12),"
      "(1600000040000, 'set_dir', '', '/old/cache', '/srv/tfimm/cache', 'bob', 'h2', 13)");
  db.exec("PRAGMA user_version = 2");
  db.exec("COMMIT");
}

// A registry at schema version 3: release 2's, with its history grouped into
// change sets as release 3's migration left it, and one change set of
// release 3 (a set and its lock).
void make_v3_registry(const std::string& path) {
  make_v2_registry(path);
  t::RawDb db(path);
  db.exec("BEGIN");
  db.exec(tfimm::test::kSchemaV3);
  db.exec("INSERT INTO schema_migrations VALUES (3, 1650000000000)");
  db.exec(
      "INSERT INTO models(name, path, created_at, updated_at, locked, lock_reason) VALUES "
      "('vit_new', '/data/w/vit_new', 1650000001000, 1650000001000, 1, 'usb')");
  db.exec(
      "INSERT INTO history(id, at, action, name, old_path, new_path, user, host, pid, change_set, "
      "old_locked, old_lock_reason, new_locked, new_lock_reason) VALUES "
      "(5, 1650000001000, 'set', 'vit_new', NULL, '/data/w/vit_new', 'ann', 'h1', 20, 5, "
      "NULL, NULL, NULL, NULL),"
      "(6, 1650000001000, 'lock', 'vit_new', '/data/w/vit_new', '/data/w/vit_new', 'ann', 'h1', "
      "20, 5, 0, '', 1, 'usb')");
  db.exec("PRAGMA user_version = 3");
  db.exec("COMMIT");
}

// A registry with a little data written by this build, closed.
void make_registry(const std::string& path) {
  tfimm::Registry reg(path);
  reg.set_model_cache("resnet18", "/data/resnet18");
  reg.set_model_cache("convnext-tiny", "/data/convnext");
  reg.set_dir("/srv/cache");
}

bool has_sidecar_files(const std::string& path) {
  return t::exists(path + "-wal") || t::exists(path + "-shm") || t::exists(path + "-journal");
}

std::vector<std::string> migration_versions(const std::string& path) {
  t::RawDb db(path);
  std::vector<std::string> versions;
  for (const auto& row : db.rows("SELECT version FROM schema_migrations ORDER BY version")) {
    versions.push_back(row.at(0));
  }
  return versions;
}

std::vector<std::string> all_versions() {
  std::vector<std::string> versions;
  for (int v = 1; v <= tfimm::schema_version(); ++v) versions.push_back(std::to_string(v));
  return versions;
}

struct Child {
  int exit_code = -1;
  std::string err;
};

// Runs every command as a helper process; all of them start acting at the
// same moment (see TFIMM_TEST_START_AT in helper_main.cpp). Waits for all.
std::vector<Child> run_helpers_at_once(const std::vector<std::vector<std::string>>& commands,
                                       const std::string& log_dir) {
  auto start = std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::system_clock::now().time_since_epoch()) +
               400ms;
  t::ScopedEnv env;
  env.set("TFIMM_TEST_START_AT", std::to_string(start.count()));
  std::vector<pid_t> pids;
  std::vector<std::string> logs;
  for (std::size_t i = 0; i < commands.size(); ++i) {
    std::vector<std::string> args = {TFIMM_TEST_HELPER};
    args.insert(args.end(), commands[i].begin(), commands[i].end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    logs.push_back(log_dir + "/helper-" + std::to_string(i) + ".err");
    const char* log = logs.back().c_str();
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      int fd = ::open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
      if (fd >= 0) {
        ::dup2(fd, 1);
        ::dup2(fd, 2);
      }
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    pids.push_back(pid);
  }
  std::vector<Child> children;
  for (std::size_t i = 0; i < pids.size(); ++i) {
    int status = 0;
    while (::waitpid(pids[i], &status, 0) < 0 && errno == EINTR) {
    }
    Child child;
    child.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    child.err = t::exists(logs[i]) ? t::read_file(logs[i]) : "";
    children.push_back(child);
  }
  return children;
}

}  // namespace

TEST_CASE("every released schema version has an upgrade test in this file", "[storage]") {
  // Adding migration 005 means adding a "registry written by release 4"
  // fixture and its upgrade test below, then raising this number.
  CHECK(tfimm::schema_version() == 4);
}

TEST_CASE("reading a registry that does not exist answers empty and creates nothing", "[storage]") {
  t::TestContext ctx;
  const std::string file = ctx.path("no/such/dir/registry.db");
  tfimm::Registry reg(file);
  CHECK(reg.path() == file);
  CHECK(reg.location().source == tfimm::RegistrySource::Explicit);
  CHECK(reg.entries().empty());
  CHECK(reg.list_cached_models().empty());
  CHECK_FALSE(reg.entry("resnet18"));
  CHECK_FALSE(reg.cached_model_path("resnet18"));
  CHECK_FALSE(reg.stored_dir());
  CHECK(reg.history().empty());
  CHECK(reg.snapshot().models.empty());
  // Operations that find nothing to change create nothing either.
  CHECK_FALSE(reg.clear_model_cache("resnet18"));
  CHECK_NOTHROW(reg.unset_dir());
  CHECK_THROWS_AS(reg.lock("resnet18"), tfimm::UnknownModel);
  CHECK_THROWS_AS(reg.unlock("resnet18"), tfimm::UnknownModel);
  auto status = tfimm::migration_status(file);
  CHECK_FALSE(status.exists);
  CHECK(status.current == 0);
  CHECK(status.latest == tfimm::schema_version());
  CHECK(status.applied.empty());
  CHECK(status.pending.size() == static_cast<std::size_t>(tfimm::schema_version()));
  auto diagnosis = reg.diagnose();
  CHECK_FALSE(diagnosis.exists);
  CHECK_FALSE(t::exists(ctx.path("no")));
}

TEST_CASE("the first write creates the file, its parent directories and the whole schema",
          "[storage]") {
  t::TestContext ctx;
  const std::string file = ctx.path("a/b/c/registry.db");
  {
    tfimm::Registry reg(file);
    reg.set_model_cache("resnet18", "/data/resnet18");
  }
  REQUIRE(t::exists(file));
  t::RawDb db(file);
  CHECK(db.integer("PRAGMA user_version") == tfimm::schema_version());
  CHECK(db.integer("PRAGMA application_id") != 0);
  CHECK(db.text("PRAGMA journal_mode") == "wal");
  CHECK(db.text("SELECT path FROM models WHERE name = 'resnet18'") == "/data/resnet18");
  CHECK(migration_versions(file) == all_versions());

  auto status = tfimm::migration_status(file);
  CHECK(status.exists);
  CHECK(status.current == tfimm::schema_version());
  CHECK(status.latest == tfimm::schema_version());
  CHECK(status.pending.empty());
  CHECK(status.applied.size() == static_cast<std::size_t>(tfimm::schema_version()));

  SECTION("every registry carries the same application id") {
    const std::string second = ctx.path("second.db");
    make_registry(second);
    t::RawDb other(second);
    CHECK(other.integer("PRAGMA application_id") == db.integer("PRAGMA application_id"));
  }
}

TEST_CASE("a registry written by release 1 is upgraded with its data intact", "[storage]") {
  t::TestContext ctx;
  const std::string file = ctx.path("registry.db");
  make_v1_registry(file);
  const std::string before = t::read_file(file);

  SECTION("migration_status reports what is pending without changing the file") {
    auto status = tfimm::migration_status(file);
    CHECK(status.exists);
    CHECK(status.current == 1);
    CHECK(status.latest == tfimm::schema_version());
    REQUIRE(status.applied.size() == 1);
    CHECK(status.applied[0].first == 1);
    CHECK(status.applied[0].second == kV1AppliedAt);
    std::vector<int> pending;
    for (int v = 2; v <= tfimm::schema_version(); ++v) pending.push_back(v);
    CHECK(status.pending == pending);
    CHECK(t::read_file(file) == before);
  }
  SECTION("opening it keeps every entry, timestamp and the stored directory") {
    tfimm::Registry reg(file);
    auto entries = reg.entries();
    REQUIRE(entries.size() == 2);
    CHECK(entries[0].name == "resnet18");
    CHECK(entries[0].path == "/data/w/resnet18");
    CHECK(entries[0].created_at == 1600000000000);
    CHECK(entries[0].updated_at == 1600000005000);
    CHECK_FALSE(entries[0].locked);
    CHECK(entries[0].lock_reason.empty());
    CHECK_FALSE(entries[0].missing_since);
    CHECK(entries[1].name == "vit_base_patch16_224.augreg_in21k");
    CHECK(entries[1].path == "/data/w/vit it's");
    CHECK(entries[1].created_at == 1600000001000);
    CHECK(reg.stored_dir() == "/srv/tfimm/cache");
    CHECK(reg.cached_model_path("resnet18") == "/data/w/resnet18");

    // Everything added by later migrations works on the upgraded file.
    reg.set_model_cache("convnext-tiny", "/data/w/convnext");
    reg.lock("resnet18", "paper results");
    CHECK(reg.entry("resnet18")->locked);
    CHECK(reg.entry("resnet18")->lock_reason == "paper results");
    auto history = reg.history();
    REQUIRE(history.size() == 2);
    CHECK(history[0].action == "lock");
    CHECK(history[1].action == "set");
    CHECK(history[1].name == "convnext-tiny");

    t::RawDb db(file);
    CHECK(db.integer("PRAGMA user_version") == tfimm::schema_version());
    CHECK(migration_versions(file) == all_versions());
    CHECK(db.integer("SELECT applied_at FROM schema_migrations WHERE version = 1") == kV1AppliedAt);
    CHECK(db.integer("PRAGMA application_id") == registry_application_id());
    CHECK(tfimm::migration_status(file).pending.empty());
  }
}

TEST_CASE(
    "a registry written by release 3 is upgraded with its data intact, each entry local to no host",
    "[storage][hosts]") {
  t::TestContext ctx;
  const std::string file = ctx.path("registry.db");
  make_v3_registry(file);
  const std::string before = t::read_file(file);
  auto status = tfimm::migration_status(file);
  CHECK(status.current == 3);
  CHECK(status.pending == std::vector<int>{4});
  CHECK(t::read_file(file) == before);

  tfimm::Registry reg(file);
  auto entries = reg.entries();
  REQUIRE(entries.size() == 3);
  CHECK(entries[0].name == "resnet18");
  CHECK(entries[0].locked);
  CHECK(entries[0].updated_at == 1600000005000);
  CHECK(entries[2].name == "vit_new");
  CHECK(entries[2].lock_reason == "usb");
  for (const auto& e : entries) CHECK(e.local_to.empty());
  // Release 3's change set is still one, and can still be undone.
  auto history = reg.history();
  REQUIRE(history.size() == 6);
  CHECK(history[0].change_set == 5);
  CHECK(history[1].change_set == 5);
  reg.undo(5);
  CHECK_FALSE(reg.entry("vit_new"));
  // Local to no host: judged here as before, never other_host.
  for (const auto& item : reg.audit().items) CHECK(item.status == tfimm::PathStatus::Missing);

  // Registered again, the entry records its host.
  reg.set_model_cache("resnet18", ctx.path("models/resnet18"));
  char host[256] = {};
  REQUIRE(::gethostname(host, sizeof host - 1) == 0);
  CHECK(reg.entry("resnet18")->local_to == host);
  t::RawDb db(file);
  CHECK(db.integer("PRAGMA user_version") == tfimm::schema_version());
}

TEST_CASE("a registry written by release 2 keeps every history row, each its own change set",
          "[storage][undo]") {
  t::TestContext ctx;
  const std::string file = ctx.path("registry.db");
  make_v2_registry(file);
  CHECK(tfimm::migration_status(file).current == 2);

  tfimm::Registry reg(file);
  auto history = reg.history();
  REQUIRE(history.size() == 4);
  const std::vector<std::string> actions = {"set_dir", "clear", "lock", "set"};
  for (std::size_t i = 0; i < history.size(); ++i) {
    CHECK(history[i].action == actions[i]);
    CHECK(history[i].change_set == history[i].id);
    CHECK_FALSE(history[i].undoes);
  }
  CHECK(history[0].user == "bob");
  CHECK(history[3].at == 1600000010000);
  CHECK(reg.entry("resnet18")->locked);

  // The rows from before change sets can be undone as far as they tell.
  SECTION("an old lock row is undone by unlocking") {
    reg.undo(history[2].id);
    CHECK_FALSE(reg.entry("resnet18")->locked);
  }
  SECTION("an old clear row is undone by registering the path again") {
    reg.undo(history[1].id);
    CHECK(reg.entry("gone")->path == "/data/w/gone");
  }
  SECTION("an old set_dir row is undone by restoring the setting") {
    reg.undo(history[0].id);
    CHECK(reg.stored_dir() == "/old/cache");
  }
  SECTION("new rows start change sets after the old ones") {
    reg.set_model_cache("convnext", "/data/w/convnext");
    auto newest = reg.history({}, 1);
    CHECK(newest[0].id == 5);
    CHECK(newest[0].change_set == 5);
  }
  t::RawDb db(file);
  CHECK(db.integer("PRAGMA user_version") == tfimm::schema_version());
  CHECK(db.integer("SELECT count(*) FROM history WHERE change_set IS NULL") == 0);
}

TEST_CASE("several processes upgrading a release 1 registry at once all succeed", "[storage]") {
  t::TestContext ctx;
  const std::string file = ctx.path("registry.db");
  make_v1_registry(file);
  std::vector<std::vector<std::string>> commands;
  for (int i = 0; i < 4; ++i) {
    commands.push_back({file, "set-many", "p" + std::to_string(i) + "_", "5"});
  }
  commands.push_back({file, "open"});
  commands.push_back({file, "open"});
  auto children = run_helpers_at_once(commands, ctx.root());
  for (const auto& child : children) {
    INFO("helper stderr: " << child.err);
    CHECK(child.exit_code == 0);
  }
  CHECK(migration_versions(file) == all_versions());
  tfimm::Registry reg(file);
  CHECK(reg.entries().size() == 2 + 4 * 5);
  CHECK(reg.entry("resnet18")->created_at == 1600000000000);
}

TEST_CASE("several processes creating the same new registry at once all succeed", "[storage]") {
  t::TestContext ctx;
  const std::string file = ctx.path("fresh/dir/registry.db");
  std::vector<std::vector<std::string>> commands;
  for (int i = 0; i < 6; ++i) {
    commands.push_back({file, "set-many", "m" + std::to_string(i) + "_", "10"});
  }
  auto children = run_helpers_at_once(commands, ctx.root());
  for (const auto& child : children) {
    INFO("helper stderr: " << child.err);
    CHECK(child.exit_code == 0);
  }
  REQUIRE(t::exists(file));
  t::RawDb db(file);
  CHECK(db.integer("PRAGMA user_version") == tfimm::schema_version());
  CHECK(migration_versions(file) == all_versions());
  tfimm::Registry reg(file);
  CHECK(reg.entries().size() == 60);
  CHECK(reg.cached_model_path("m5_9") == "/models/m5_9");
}

TEST_CASE("files that are not registries are refused and left byte for byte untouched",
          "[storage]") {
  t::TestContext ctx;
  const std::string file = ctx.path("registry.db");
  std::string kind;
  SECTION("a text file") {
    kind = "text";
    std::string text;
    for (int i = 0; i < 200; ++i) text += "these are my notes, not a database\n";
    t::write_file(file, text);
  }
  SECTION("another application's SQLite database") {
    kind = "other application";
    t::RawDb db(file, true);
    db.exec("PRAGMA application_id = 12345");
    db.exec("CREATE TABLE photos (id INTEGER PRIMARY KEY, path TEXT)");
    db.exec("INSERT INTO photos (path) VALUES ('/home/me/cat.jpg')");
  }
  SECTION("an SQLite database without an application id") {
    kind = "no application id";
    t::RawDb db(file, true);
    db.exec("CREATE TABLE notes (body TEXT)");
    db.exec("INSERT INTO notes VALUES ('keep me')");
  }
  SECTION("an SQLite database with a models table but no application id") {
    kind = "models table, no application id";
    t::RawDb db(file, true);
    db.exec("CREATE TABLE models (name TEXT, path TEXT)");
    db.exec("INSERT INTO models VALUES ('x', '/y')");
  }
  INFO("file: " << kind);
  const std::string before = t::read_file(file);
  {
    tfimm::Registry reg(file);
    CHECK_THROWS_AS(reg.entries(), tfimm::NotARegistry);
    CHECK_THROWS_AS(reg.set_model_cache("resnet18", "/data/resnet18"), tfimm::NotARegistry);
    CHECK_THROWS_AS(reg.set_dir("/srv/cache"), tfimm::NotARegistry);
    CHECK_THROWS_AS(reg.cached_model_path("resnet18"), tfimm::NotARegistry);
    try {
      reg.entries();
      FAIL("entries() accepted a file that is not a registry");
    } catch (const tfimm::NotARegistry& e) {
      CHECK(e.path() == file);
      CHECK_THAT(e.what(), Catch::Contains(file));
    }
  }
  CHECK_THROWS_AS(tfimm::migration_status(file), tfimm::NotARegistry);
  CHECK(t::read_file(file) == before);
  CHECK_FALSE(has_sidecar_files(file));
}

TEST_CASE("a registry path that is a directory or empty is refused", "[storage]") {
  t::TestContext ctx;
  SECTION("a directory") {
    t::make_dirs(ctx.path("registry.db"));
    tfimm::Registry reg(ctx.path("registry.db"));
    CHECK_THROWS_AS(reg.entries(), tfimm::NotARegistry);
    CHECK_THROWS_AS(reg.set_model_cache("resnet18", "/data/resnet18"), tfimm::NotARegistry);
    CHECK_THROWS_WITH(reg.entries(), Catch::Contains(ctx.path("registry.db")));
  }
  SECTION("an empty file name") {
    CHECK_THROWS_AS(tfimm::Registry(std::string()), tfimm::InvalidPath);
  }
}

TEST_CASE("a damaged registry is reported as corrupt and left untouched", "[storage]") {
  t::TestContext ctx;
  const std::string file = ctx.path("registry.db");
  make_registry(file);
  std::string bytes = t::read_file(file);
  const std::size_t page_size =
      (static_cast<std::size_t>(static_cast<unsigned char>(bytes[16])) << 8) |
      static_cast<unsigned char>(bytes[17]);
  REQUIRE(page_size >= 512);
  REQUIRE(bytes.size() >= 3 * page_size);
  SECTION("garbage over every page after the first") {
    for (std::size_t i = page_size + 8; i < bytes.size() - 8; ++i) bytes[i] = '\xab';
  }
  SECTION("truncated in the middle of the second page") { bytes.resize(page_size + page_size / 2); }
  t::write_file(file, bytes);
  {
    tfimm::Registry reg(file);
    CHECK_THROWS_AS(reg.entries(), tfimm::RegistryCorrupt);
    CHECK_THROWS_AS(reg.set_model_cache("resnet18", "/elsewhere"), tfimm::RegistryCorrupt);
    try {
      reg.list_cached_models();
      FAIL("list_cached_models() read a damaged registry");
    } catch (const tfimm::RegistryCorrupt& e) {
      CHECK(e.path() == file);
      CHECK_THAT(e.what(), Catch::Contains(file));
    }
  }
  CHECK_THROWS_AS(tfimm::migration_status(file), tfimm::RegistryError);
  CHECK(t::read_file(file) == bytes);
}

TEST_CASE("a registry written by a newer version is refused, naming both versions", "[storage]") {
  t::TestContext ctx;
  const std::string file = ctx.path("registry.db");
  make_registry(file);
  const int newer = tfimm::schema_version() + 1;
  {
    t::RawDb db(file);
    db.exec("PRAGMA user_version = " + std::to_string(newer));
  }
  const std::string before = t::read_file(file);
  {
    tfimm::Registry reg(file);
    CHECK_THROWS_AS(reg.set_model_cache("resnet18", "/elsewhere"), tfimm::RegistryTooNew);
    CHECK_THROWS_AS(reg.set_dir("/elsewhere"), tfimm::RegistryTooNew);
    try {
      reg.entries();
      FAIL("entries() read a registry newer than this build");
    } catch (const tfimm::RegistryTooNew& e) {
      CHECK(e.found_version() == newer);
      CHECK(e.known_version() == tfimm::schema_version());
      CHECK(e.path() == file);
      CHECK_THAT(e.what(), Catch::Contains(std::to_string(newer)) &&
                               Catch::Contains(std::to_string(tfimm::schema_version())) &&
                               Catch::Contains(file));
    }
  }
  CHECK(t::read_file(file) == before);
  t::RawDb db(file);
  CHECK(db.integer("PRAGMA user_version") == newer);
  CHECK(db.text("SELECT path FROM models WHERE name = 'resnet18'") == "/data/resnet18");
}

TEST_CASE("a registry file deleted while open is never written through the old handle",
          "[storage]") {
  t::TestContext ctx;
  const std::string file = ctx.path("registry.db");
  tfimm::Registry reg(file);
  reg.set_model_cache("resnet18", "/data/resnet18");
  SECTION("deleted, then read: empty, and the next write creates it again") {
    for (const char* suffix : {"", "-wal", "-shm"}) ::unlink((file + suffix).c_str());
    CHECK(reg.entries().empty());
    reg.set_model_cache("vit", "/data/vit");
    CHECK(reg.list_cached_models() == std::vector<std::string>{"vit"});
  }
  SECTION("deleted, then written: a clear error, then the retry creates it again") {
    for (const char* suffix : {"", "-wal", "-shm"}) ::unlink((file + suffix).c_str());
    try {
      reg.set_model_cache("vit", "/data/vit");
      FAIL("a write went into the deleted registry file");
    } catch (const tfimm::RegistryError& e) {
      CHECK_THAT(e.what(), Catch::Contains("deleted or replaced"));
      CHECK_THAT(e.what(), Catch::Contains(file));
    }
    CHECK_FALSE(t::exists(file));
    reg.set_model_cache("vit", "/data/vit");
    tfimm::Registry fresh(file);
    CHECK(fresh.list_cached_models() == std::vector<std::string>{"vit"});
  }
}

TEST_CASE("a registry file replaced by a rename while open is followed, never written blindly",
          "[storage]") {
  t::TestContext ctx;
  const std::string file = ctx.path("registry.db");
  tfimm::Registry reg(file);
  reg.set_model_cache("resnet18", "/data/resnet18");
  const std::string other = ctx.path("other.db");
  tfimm::Registry(other).set_model_cache("vit", "/data/vit");

  SECTION("the next read answers from the new file") {
    REQUIRE(std::rename(other.c_str(), file.c_str()) == 0);
    CHECK(reg.cached_model_path("vit") == "/data/vit");
    CHECK_FALSE(reg.cached_model_path("resnet18"));
    CHECK(reg.list_cached_models() == std::vector<std::string>{"vit"});
  }
  SECTION("the old file still has another name: the next write is refused, then follows") {
    // A read checks only that the open file still has a name; a write checks
    // that it is the file at the path.
    const std::string backup = ctx.path("backup.db");
    REQUIRE(::link(file.c_str(), backup.c_str()) == 0);
    REQUIRE(std::rename(other.c_str(), file.c_str()) == 0);
    CHECK_THROWS_MATCHES(reg.set_model_cache("convnext", "/data/convnext"), tfimm::RegistryError,
                         Catch::Matchers::Predicate<tfimm::RegistryError>(
                             [](const tfimm::RegistryError& e) {
                               return std::string(e.what()).find("deleted or replaced") !=
                                      std::string::npos;
                             },
                             "says the registry was replaced"));
    CHECK(reg.list_cached_models() == std::vector<std::string>{"vit"});
    reg.set_model_cache("convnext", "/data/convnext");
    CHECK(tfimm::Registry(file).list_cached_models() ==
          std::vector<std::string>{"convnext", "vit"});
    CHECK(tfimm::Registry(backup).list_cached_models() == std::vector<std::string>{"resnet18"});
  }
}

TEST_CASE("a write waits for another writer then fails as busy, while reads go on", "[storage]") {
  t::TestContext ctx;
  const std::string file = ctx.path("registry.db");
  tfimm::RegistryOptions options;
  options.busy_timeout = 300ms;
  tfimm::Registry reg(file, options);
  reg.set_model_cache("resnet18", "/data/resnet18");

  t::RawDb other(file);
  other.exec("BEGIN IMMEDIATE");
  auto start = std::chrono::steady_clock::now();
  try {
    reg.set_model_cache("vit", "/data/vit");
    FAIL("a write went through while another connection held the write lock");
  } catch (const tfimm::RegistryBusy& e) {
    CHECK(e.path() == file);
    CHECK_THAT(e.what(), Catch::Contains(file));
  }
  auto waited = std::chrono::steady_clock::now() - start;
  CHECK(waited >= 250ms);
  CHECK(waited < 4s);
  CHECK(reg.list_cached_models() == std::vector<std::string>{"resnet18"});
  other.exec("ROLLBACK");

  reg.set_model_cache("vit", "/data/vit");
  CHECK(reg.list_cached_models() == std::vector<std::string>{"resnet18", "vit"});
}

TEST_CASE("on a network file system the registry uses a rollback journal instead of WAL",
          "[storage]") {
  t::TestContext ctx;
  ctx.env().set("TFIMM_NETWORK_FS", "1");
  const std::string file = ctx.path("registry.db");
  tfimm::Registry reg(file);
  reg.set_model_cache("resnet18", "/data/resnet18");
  CHECK_FALSE(t::exists(file + "-wal"));
  auto diagnosis = reg.diagnose();
  CHECK(diagnosis.network_fs);
  CHECK(diagnosis.journal_mode == "delete");
  t::RawDb db(file);
  CHECK(db.text("PRAGMA journal_mode") == "delete");
  CHECK(reg.cached_model_path("resnet18") == "/data/resnet18");
}

TEST_CASE("diagnose warns when -wal or -shm are less writable than the registry", "[storage]") {
  t::TestContext ctx;
  const std::string file = ctx.path("registry.db");
  tfimm::Registry reg(file);
  reg.set_model_cache("resnet18", "/data/resnet18");  // the connection stays open
  REQUIRE(t::exists(file + "-wal"));
  REQUIRE(t::exists(file + "-shm"));
  REQUIRE(::chmod(file.c_str(), 0664) == 0);
  const auto warning_about = [&](const std::string& what) {
    for (const auto& w : tfimm::Registry(file).diagnose().warnings) {
      if (w.find(what) != std::string::npos) return w;
    }
    return std::string();
  };
  SECTION("left 0644 by someone who could only read the registry") {
    REQUIRE(::chmod((file + "-wal").c_str(), 0664) == 0);
    REQUIRE(::chmod((file + "-shm").c_str(), 0644) == 0);
    const auto w = warning_about("-shm");
    CHECK_THAT(w, Catch::StartsWith(file + "-shm has owner "));
    CHECK_THAT(w, Catch::Contains("mode 0644, but the registry has owner"));
    CHECK_THAT(w, Catch::Contains("&& chmod 0664 " + file + "-shm"));
    CHECK(warning_about("-wal has") == "");
    // Fixed as the warning says: no warning, and writes go on.
    REQUIRE(::chmod((file + "-shm").c_str(), 0664) == 0);
    CHECK(warning_about("-shm") == "");
    reg.set_model_cache("vit", "/data/vit");
  }
  SECTION("as wide as the registry: no warning") {
    REQUIRE(::chmod((file + "-wal").c_str(), 0666) == 0);
    REQUIRE(::chmod((file + "-shm").c_str(), 0664) == 0);
    CHECK(warning_about("-wal") == "");
    CHECK(warning_about("-shm") == "");
  }
}

TEST_CASE("diagnose reports the facts of a healthy registry", "[storage]") {
  t::TestContext ctx;
  const std::string file = ctx.path("registry.db");
  make_registry(file);
  tfimm::Registry reg(file);
  auto d = reg.diagnose();
  CHECK(d.path == file);
  CHECK(d.exists);
  CHECK(d.schema == tfimm::schema_version());
  CHECK(d.integrity == "ok");
  CHECK(d.journal_mode == "wal");
  struct stat st {};
  REQUIRE(::stat(file.c_str(), &st) == 0);
  char mode[8];
  std::snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
  CHECK(d.file_mode == mode);
  CHECK_THAT(d.owner, Catch::Contains(":"));
  CHECK_FALSE(d.network_fs);
  CHECK_FALSE(d.fs_type.empty());
  CHECK(d.entries == 2);
  CHECK(d.cache_dir.path == "/srv/cache");
  CHECK(d.cache_dir.source == tfimm::DirSource::RegistrySetting);
  CHECK(d.cache_dir_status == tfimm::PathStatus::Missing);
}

TEST_CASE("a registry path that is a FIFO, a socket or a device is refused at once, untouched",
          "[storage][file-kind]") {
  t::TestContext ctx;
  std::string path;
  int socket_fd = -1;
  SECTION("a FIFO (reading it would wait for a writer forever)") {
    path = ctx.path("registry.db");
    REQUIRE(::mkfifo(path.c_str(), 0644) == 0);
  }
  SECTION("a Unix socket") {
    path = ctx.path("registry.sock");
    socket_fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    REQUIRE(path.size() < sizeof address.sun_path);
    std::copy(path.begin(), path.end(), address.sun_path);
    REQUIRE(::bind(socket_fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  }
  SECTION("a character device") { path = "/dev/null"; }
  struct stat before {};
  REQUIRE(::stat(path.c_str(), &before) == 0);
  // In another thread, so that a hang fails the test instead of stopping it.
  auto attempt = std::async(std::launch::async, [&] {
    tfimm::Registry reg(path);
    std::vector<std::string> refused;
    const auto check = [&](const char* what, const std::function<void()>& call) {
      try {
        call();
      } catch (const tfimm::NotARegistry& e) {
        if (std::string(e.what()).find(path) != std::string::npos) refused.push_back(what);
      }
    };
    check("entries", [&] { reg.entries(); });
    check("cached_model_path", [&] { reg.cached_model_path("resnet18"); });
    check("set_model_cache", [&] { reg.set_model_cache("resnet18", "/data/resnet18"); });
    check("migration_status", [&] { tfimm::migration_status(path); });
    return refused;
  });
  if (attempt.wait_for(10s) != std::future_status::ready) {
    // Let a reader stuck on the FIFO go before failing.
    const int unblock = ::open(path.c_str(), O_WRONLY | O_NONBLOCK);
    if (unblock >= 0) ::close(unblock);
    FAIL("a registry call on " << path << " did not return within 10 s");
  }
  CHECK(attempt.get() == std::vector<std::string>{"entries", "cached_model_path", "set_model_cache",
                                                  "migration_status"});
  struct stat after {};
  REQUIRE(::stat(path.c_str(), &after) == 0);
  CHECK(after.st_mode == before.st_mode);
  CHECK(after.st_ino == before.st_ino);
  CHECK_FALSE(has_sidecar_files(path));
  if (socket_fd >= 0) ::close(socket_fd);
}

TEST_CASE("a transaction that changes nothing on a registry that does not exist creates nothing",
          "[storage][create]") {
  t::TestContext ctx;
  const std::string file = ctx.path("state/tfimm/registry.db");
  tfimm::Registry reg(file);
  reg.transaction([](tfimm::Transaction& tx) {
    CHECK_FALSE(tx.clear_model_cache("resnet18"));
    CHECK_FALSE(tx.cached_model_path("resnet18"));
    CHECK(tx.list_cached_models().empty());
    tx.unset_dir();
  });
  CHECK_FALSE(reg.clear_model_cache("resnet18"));
  reg.unset_dir();
  CHECK_FALSE(t::exists(file));
  CHECK_FALSE(t::exists(ctx.path("state")));

  SECTION("its first change creates the registry, with everything the body did") {
    reg.transaction([](tfimm::Transaction& tx) {
      CHECK_FALSE(tx.cached_model_path("resnet18"));
      tx.set_model_cache("resnet18", "/data/resnet18");
      CHECK(tx.cached_model_path("resnet18") == std::string("/data/resnet18"));
      tx.set_model_cache("vit", "/data/vit");
      CHECK(tx.clear_model_cache("vit"));
    });
    CHECK(reg.list_cached_models() == std::vector<std::string>{"resnet18"});
    CHECK(reg.history().size() == 3);
  }
  SECTION("a body that throws after its first change leaves no registry entries") {
    CHECK_THROWS_AS(reg.transaction([](tfimm::Transaction& tx) {
      tx.set_model_cache("resnet18", "/data/resnet18");
      CHECK(tx.list_cached_models() == std::vector<std::string>{"resnet18"});
      throw std::runtime_error("stop");
    }),
                    std::runtime_error);
    CHECK(reg.entries().empty());
    CHECK(reg.history().empty());
  }
  SECTION("another process creating it while the body read it as empty refuses the change") {
    CHECK_THROWS_AS(reg.transaction([&](tfimm::Transaction& tx) {
      CHECK_FALSE(tx.cached_model_path("resnet18"));  // decided on an empty registry
      tfimm::Registry other(file);
      other.set_model_cache("resnet18", "/other/resnet18");
      tx.set_model_cache("resnet18", "/data/resnet18");
    }),
                    tfimm::RegistryBusy);
    CHECK(reg.cached_model_path("resnet18") == std::string("/other/resnet18"));
    CHECK(reg.history().size() == 1);
  }
}

TEST_CASE("a dry run on a registry that does not exist creates nothing", "[storage][create]") {
  t::TestContext ctx;
  const std::string file = ctx.path("state/registry.db");
  tfimm::Registry reg(file);
  tfimm::Snapshot snapshot;
  snapshot.models.push_back({"resnet18", "/data/resnet18", true, "pinned"});
  snapshot.cache_dir = "/data/cache";
  tfimm::ImportOptions options;
  options.dry_run = true;
  const auto report = reg.import(snapshot, options);
  CHECK(report.added == 1);
  CHECK(report.cache_dir_changed);
  CHECK_FALSE(t::exists(file));
  CHECK_FALSE(t::exists(ctx.path("state")));
}

TEST_CASE("the library's refusals name no option of the tool: that advice is the tool's",
          "[storage][errors]") {
  t::TempDir dir;
  const std::string fifo = dir / "registry.fifo";
  REQUIRE(::mkfifo(fifo.c_str(), 0644) == 0);
  const std::string notes = dir / "notes.db";
  std::string text;
  for (int i = 0; i < 200; ++i) text += "these are my notes, not a database\n";
  t::write_file(notes, text);
  const std::string link = dir / "gone.db";
  REQUIRE(::symlink((dir / "nowhere/registry.db").c_str(), link.c_str()) == 0);
  for (const auto& path : {fifo, notes, link}) {
    INFO(path);
    tfimm::Registry reg(path);
    try {
      reg.set_model_cache("resnet18", "/data/resnet18");
      FAIL("no error");
    } catch (const tfimm::RegistryError& e) {
      const std::string message = e.what();
      INFO(message);
      CHECK(message.find("--registry") == std::string::npos);
      CHECK(message.find("TFIMM_REGISTRY") == std::string::npos);
      CHECK((message.find("left unchanged") != std::string::npos ||
             message.find("nothing was read or created") != std::string::npos));
    }
  }
}
