// Tests for lib/registry.cpp: model-specific entries, resolution, locks,
// transactions, history, persistence and visibility across instances,
// threads and processes.
#include <pwd.h>
#include <sys/wait.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <optional>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "rawdb.hpp"
#include "testutil.hpp"
#include "tfimm/errors.hpp"
#include "tfimm/registry.hpp"

namespace t = tfimm::test;
using tfimm::Registry;

namespace {

t::ProcessResult helper(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {TFIMM_TEST_HELPER};
  argv.insert(argv.end(), args.begin(), args.end());
  return t::run_process(argv);
}

tfimm::Timestamp now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// The file's bytes, or nothing when it does not exist.
std::optional<std::string> file_state(const std::string& path) {
  if (!t::exists(path)) return std::nullopt;
  return t::read_file(path);
}

// Every field of every entry, one line each, for exact comparisons.
std::string dump(const std::vector<tfimm::Entry>& entries) {
  std::ostringstream out;
  for (const auto& e : entries) {
    out << e.name << " -> " << e.path << " created=" << e.created_at << " updated=" << e.updated_at
        << " locked=" << e.locked << " reason=" << e.lock_reason
        << " missing_since=" << (e.missing_since ? std::to_string(*e.missing_since) : "-") << "\n";
  }
  return out.str();
}

std::string this_host() {
  char buf[HOST_NAME_MAX + 1] = {};
  REQUIRE(::gethostname(buf, sizeof buf - 1) == 0);
  return buf;
}

}  // namespace

TEST_CASE("the library reports its version", "[registry]") {
  CHECK(std::regex_match(tfimm::version(), std::regex(R"(\d+\.\d+\.\d+)")));
}

TEST_CASE("a registered path is returned as registered, with ~ expanded, even if missing",
          "[registry]") {
  t::TestContext ctx;
  Registry reg(ctx.path("registry.db"));
  reg.set_model_cache("resnet18", "~/resnet18_saved");
  CHECK(reg.cached_model_path("resnet18") == ctx.home() + "/resnet18_saved");
  CHECK_FALSE(t::exists(ctx.home() + "/resnet18_saved"));
  CHECK(reg.list_cached_models() == std::vector<std::string>{"resnet18"});
}

TEST_CASE("a relative model path is stored against the working directory of the call",
          "[registry]") {
  t::TestContext ctx;
  Registry reg(ctx.path("registry.db"));
  t::make_dirs(ctx.path("work"));
  char old[PATH_MAX];
  REQUIRE(::getcwd(old, sizeof old) != nullptr);
  REQUIRE(::chdir(ctx.path("work").c_str()) == 0);
  reg.set_model_cache("resnet18", "weights/../resnet18");
  (void)!::chdir(old);
  CHECK(reg.cached_model_path("resnet18") == ctx.path("work/resnet18"));
}

TEST_CASE("an explicit registry file is normalised and reported as explicit", "[registry]") {
  t::TestContext ctx;
  SECTION("with a tilde") {
    Registry reg("~/regs/../r.db");
    CHECK(reg.path() == ctx.home() + "/r.db");
    CHECK(reg.location().source == tfimm::RegistrySource::Explicit);
  }
  SECTION("relative to the working directory") {
    char old[PATH_MAX];
    REQUIRE(::getcwd(old, sizeof old) != nullptr);
    REQUIRE(::chdir(ctx.root().c_str()) == 0);
    Registry reg("sub/r.db");
    (void)!::chdir(old);
    CHECK(reg.path() == ctx.root() + "/sub/r.db");
    // Changing directory later does not move the registry.
    reg.set_model_cache("resnet18", "/w/resnet18");
    CHECK(t::exists(ctx.root() + "/sub/r.db"));
  }
}

TEST_CASE("setting a name again replaces its path and keeps its creation time",
          "[registry][conformance]") {
  t::TestContext ctx;
  Registry reg(t::registry_location(ctx));
  auto before = now_ms();
  reg.set_model_cache("resnet18", "/data/one");
  auto first = reg.entry("resnet18");
  REQUIRE(first);
  CHECK(first->name == "resnet18");
  CHECK(first->path == "/data/one");
  CHECK(first->created_at >= before);
  CHECK(first->created_at <= now_ms());
  CHECK(first->updated_at == first->created_at);
  CHECK_FALSE(first->locked);
  CHECK_FALSE(first->missing_since);

  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  reg.set_model_cache("resnet18", "/data/two");
  auto second = reg.entry("resnet18");
  REQUIRE(second);
  CHECK(second->path == "/data/two");
  CHECK(second->created_at == first->created_at);
  CHECK(second->updated_at > first->updated_at);
  CHECK(reg.entries().size() == 1);
}

TEST_CASE("clearing forgets the entry, never the files, and is fine when there is none",
          "[registry][conformance]") {
  t::TestContext ctx;
  Registry reg(t::registry_location(ctx));
  t::make_dirs(ctx.path("weights/resnet18"));
  t::write_file(ctx.path("weights/resnet18/model.h5"), "weights");
  reg.set_model_cache("resnet18", ctx.path("weights/resnet18"));
  reg.set_model_cache("vit", "/data/vit");

  CHECK(reg.clear_model_cache("resnet18"));
  CHECK_FALSE(reg.entry("resnet18"));
  CHECK_FALSE(reg.cached_model_path("resnet18"));
  CHECK(reg.list_cached_models() == std::vector<std::string>{"vit"});
  CHECK(t::read_file(ctx.path("weights/resnet18/model.h5")) == "weights");

  CHECK_FALSE(reg.clear_model_cache("resnet18"));
  CHECK_FALSE(reg.clear_model_cache("never-registered"));
  CHECK(reg.list_cached_models() == std::vector<std::string>{"vit"});
}

TEST_CASE("names and entries are listed sorted by name", "[registry][conformance]") {
  t::TestContext ctx;
  Registry reg(t::registry_location(ctx));
  std::vector<std::string> names = {"vit", "resnet18", "Zeta", "modèle", "a.b", "a-b", "a_b"};
  for (const auto& name : names) reg.set_model_cache(name, "/data/" + name);
  std::sort(names.begin(), names.end());
  CHECK(reg.list_cached_models() == names);
  auto entries = reg.entries();
  REQUIRE(entries.size() == names.size());
  for (std::size_t i = 0; i < names.size(); ++i) {
    CHECK(entries[i].name == names[i]);
    CHECK(entries[i].path == "/data/" + names[i]);
  }
}

TEST_CASE("cached_model_path falls back to <cache dir>/<name> only when that exists",
          "[registry][conformance]") {
  t::TestContext ctx;
  ctx.env().set("TFIMM_HOME", ctx.path("cache"));
  Registry reg(t::registry_location(ctx));

  SECTION("nothing registered and nothing on disk: no path") {
    CHECK_FALSE(reg.cached_model_path("resnet18"));
  }
  SECTION("a directory in the cache dir is found") {
    t::make_dirs(ctx.path("cache/resnet18"));
    CHECK(reg.cached_model_path("resnet18") == ctx.path("cache/resnet18"));
  }
  SECTION("a dangling symlink in the cache dir does not count") {
    t::make_dirs(ctx.path("cache"));
    REQUIRE(::symlink(ctx.path("gone").c_str(), ctx.path("cache/resnet18").c_str()) == 0);
    CHECK_FALSE(reg.cached_model_path("resnet18"));
  }
  SECTION("a registered path wins over the cache dir, existing or not") {
    t::make_dirs(ctx.path("cache/resnet18"));
    reg.set_model_cache("resnet18", ctx.path("elsewhere"));
    CHECK(reg.cached_model_path("resnet18") == ctx.path("elsewhere"));
  }
  SECTION("the fallback follows the cache directory setting") {
    t::make_dirs(ctx.path("shared/vit"));
    reg.set_dir(ctx.path("shared"));
    CHECK(reg.cached_model_path("vit") == ctx.path("shared/vit"));
  }
}

// A fallback lookup reuses the cache-directory setting it read last only while
// no other connection has committed; each of these changes it in between.
TEST_CASE("a fallback lookup follows every change of the cache directory setting", "[registry]") {
  t::TestContext ctx;
  ctx.env().set("TFIMM_HOME", ctx.path("home-cache"));
  for (const char* dir : {"a/vit", "b/vit", "c/vit", "d/vit", "home-cache/vit"}) {
    t::make_dirs(ctx.path(dir));
  }
  const std::string file = ctx.path("registry.db");
  Registry reg(file);
  reg.set_dir(ctx.path("a"));
  REQUIRE(reg.cached_model_path("vit") == ctx.path("a/vit"));
  REQUIRE(reg.cached_model_path("vit") == ctx.path("a/vit"));

  SECTION("set by another process") {
    REQUIRE(helper({file, "set-dir", ctx.path("b")}).exit_code == 0);
    CHECK(reg.cached_model_path("vit") == ctx.path("b/vit"));
    REQUIRE(helper({file, "unset-dir"}).exit_code == 0);
    CHECK(reg.cached_model_path("vit") == ctx.path("home-cache/vit"));
  }
  SECTION("set through another Registry of this process") {
    Registry other(file);
    other.set_dir(ctx.path("c"));
    CHECK(reg.cached_model_path("vit") == ctx.path("c/vit"));
  }
  SECTION("set by a raw connection, outside the library") {
    t::RawDb raw(file);
    raw.exec("UPDATE settings SET value = '" + ctx.path("d") + "' WHERE key = 'cache_dir'");
    CHECK(reg.cached_model_path("vit") == ctx.path("d/vit"));
  }
  SECTION("set in a transaction of this Registry: seen inside, gone after a rollback") {
    CHECK_THROWS_AS(reg.transaction([&](tfimm::Transaction& tx) {
      tx.set_dir(ctx.path("b"));
      CHECK(tx.cached_model_path("vit") == ctx.path("b/vit"));
      throw std::runtime_error("abandon");
    }),
                    std::runtime_error);
    CHECK(reg.cached_model_path("vit") == ctx.path("a/vit"));
    reg.set_dir(ctx.path("c"));
    CHECK(reg.cached_model_path("vit") == ctx.path("c/vit"));
  }
  SECTION("a name registered meanwhile is answered by its entry") {
    REQUIRE(helper({file, "set", "vit", ctx.path("elsewhere")}).exit_code == 0);
    CHECK(reg.cached_model_path("vit") == ctx.path("elsewhere"));
  }
}

TEST_CASE("resolve explains where a path comes from and what it shadows",
          "[registry][conformance]") {
  t::TestContext ctx;
  ctx.env().set("TFIMM_HOME", ctx.path("cache"));
  Registry reg(t::registry_location(ctx));
  t::make_dirs(ctx.path("cache/resnet18"));
  t::make_dirs(ctx.path("cache/vit"));
  t::make_dirs(ctx.path("w/vit"));
  reg.set_model_cache("vit", ctx.path("w/vit"));
  reg.set_model_cache("convnext", ctx.path("w/missing"));

  SECTION("an entry that shadows an existing cache-dir copy") {
    auto r = reg.resolve("vit");
    CHECK(r.name == "vit");
    CHECK(r.source == tfimm::ResolveSource::Entry);
    CHECK(r.path == ctx.path("w/vit"));
    CHECK(r.exists);
    REQUIRE(r.entry);
    CHECK(r.entry->path == ctx.path("w/vit"));
    CHECK(r.cache_dir.path == ctx.path("cache"));
    CHECK(r.cache_dir.source == tfimm::DirSource::TfimmHome);
    CHECK(r.fallback_path == ctx.path("cache/vit"));
    CHECK(r.fallback_exists);
  }
  SECTION("an entry whose path is missing is still the answer") {
    auto r = reg.resolve("convnext");
    CHECK(r.source == tfimm::ResolveSource::Entry);
    CHECK(r.path == ctx.path("w/missing"));
    CHECK_FALSE(r.exists);
    CHECK(r.fallback_path == ctx.path("cache/convnext"));
    CHECK_FALSE(r.fallback_exists);
  }
  SECTION("no entry, found in the cache dir") {
    auto r = reg.resolve("resnet18");
    CHECK(r.source == tfimm::ResolveSource::CacheDir);
    CHECK(r.path == ctx.path("cache/resnet18"));
    CHECK(r.exists);
    CHECK_FALSE(r.entry);
    CHECK(r.fallback_path == ctx.path("cache/resnet18"));
    CHECK(r.fallback_exists);
  }
  SECTION("not cached at all") {
    auto r = reg.resolve("swin");
    CHECK(r.source == tfimm::ResolveSource::None);
    CHECK_FALSE(r.path);
    CHECK_FALSE(r.exists);
    CHECK_FALSE(r.entry);
    CHECK(r.fallback_path == ctx.path("cache/swin"));
    CHECK_FALSE(r.fallback_exists);
  }
  SECTION("resolve and cached_model_path agree") {
    for (const std::string name : {"vit", "convnext", "resnet18", "swin"}) {
      INFO("name: " << name);
      CHECK(reg.resolve(name).path == reg.cached_model_path(name));
    }
  }
}

TEST_CASE("a refused name or path changes nothing", "[registry]") {
  t::TestContext ctx;
  const std::string file = ctx.path("registry.db");
  const std::vector<std::string> bad_names = {"",
                                              ".",
                                              "..",
                                              "a/b",
                                              "../escape",
                                              "a\\b",
                                              std::string("a\0b", 3),
                                              "a\x01",
                                              "\xff",
                                              std::string(256, 'x'),
                                              " lead",
                                              "trail "};

  SECTION("on an existing registry") {
    {
      Registry reg(file);
      reg.set_model_cache("resnet18", "/data/resnet18");
      reg.set_dir("/srv/cache");
    }
    const auto bytes = file_state(file);
    REQUIRE(bytes);
    Registry reg(file);
    const auto entries = dump(reg.entries());
    const auto history = reg.history().size();
    for (const auto& name : bad_names) {
      INFO("name: " << name);
      CHECK_THROWS_AS(reg.set_model_cache(name, "/data/x"), tfimm::InvalidName);
      CHECK_THROWS_AS(reg.clear_model_cache(name), tfimm::InvalidName);
      CHECK_THROWS_AS(reg.entry(name), tfimm::InvalidName);
      CHECK_THROWS_AS(reg.cached_model_path(name), tfimm::InvalidName);
      CHECK_THROWS_AS(reg.resolve(name), tfimm::InvalidName);
      CHECK_THROWS_AS(reg.lock(name), tfimm::InvalidName);
    }
    CHECK_THROWS_AS(reg.set_model_cache("resnet18", ""), tfimm::InvalidPath);
    CHECK_THROWS_AS(reg.set_model_cache("resnet18", std::string("/a\0b", 4)), tfimm::InvalidPath);
    CHECK_THROWS_AS(reg.set_model_cache("new", ""), tfimm::InvalidPath);
    CHECK(dump(reg.entries()) == entries);
    CHECK(reg.history().size() == history);
    CHECK(reg.stored_dir() == "/srv/cache");
    reg = Registry(ctx.path("other.db"));  // closes the file
    CHECK(file_state(file) == bytes);
  }
  SECTION("on a registry that does not exist yet") {
    {
      Registry reg(file);
      for (const auto& name : bad_names) {
        INFO("name: " << name);
        CHECK_THROWS_AS(reg.set_model_cache(name, "/data/x"), tfimm::InvalidName);
      }
      CHECK_THROWS_AS(reg.set_model_cache("resnet18", ""), tfimm::InvalidPath);
    }
    CHECK_FALSE(t::exists(file));
  }
  SECTION("the message names the refused value") {
    Registry reg(file);
    CHECK_THROWS_WITH(reg.set_model_cache("../escape", "/x"), Catch::Contains("../escape"));
  }
}

TEST_CASE("entries persist across Registry instances", "[registry][conformance]") {
  t::TestContext ctx;
  const std::string file = t::registry_location(ctx);
  std::string before;
  {
    Registry reg(file);
    reg.set_model_cache("resnet18", "/data/resnet18");
    reg.set_model_cache("vit", "/data/vit");
    reg.lock("vit", "baseline");
    before = dump(reg.entries());
  }
  Registry reg(file);
  CHECK(dump(reg.entries()) == before);
  CHECK(reg.cached_model_path("vit") == "/data/vit");
}

TEST_CASE("a Registry can be moved and keeps working", "[registry][conformance]") {
  t::TestContext ctx;
  const std::string location = t::registry_location(ctx);
  Registry a(location);
  a.set_model_cache("resnet18", "/data/resnet18");
  Registry b(std::move(a));
  CHECK(b.path() == location);
  CHECK(b.cached_model_path("resnet18") == "/data/resnet18");
  Registry c(ctx.path("other.db"));
  c = std::move(b);
  CHECK(c.path() == location);
  c.set_model_cache("vit", "/data/vit");
  CHECK(c.list_cached_models() == std::vector<std::string>{"resnet18", "vit"});
}

TEST_CASE("changes are visible to other processes and theirs to us", "[registry][conformance]") {
  t::TestContext ctx;
  const std::string file = t::registry_location(ctx);
  Registry reg(file);
  reg.set_model_cache("resnet18", "/data/resnet18");

  auto got = helper({file, "get", "resnet18"});
  CHECK(got.exit_code == 0);
  CHECK(got.out == "/data/resnet18\n");
  auto absent = helper({file, "get", "vit"});
  CHECK(absent.exit_code == 1);
  CHECK(absent.out.empty());

  auto set = helper({file, "set", "vit", "~/vit"});
  REQUIRE(set.exit_code == 0);
  // The long-lived instance sees the other process's write.
  CHECK(reg.cached_model_path("vit") == ctx.home() + "/vit");
  CHECK(reg.list_cached_models() == std::vector<std::string>{"resnet18", "vit"});

  auto cleared = helper({file, "clear", "resnet18"});
  REQUIRE(cleared.exit_code == 0);
  CHECK_FALSE(reg.entry("resnet18"));

  auto list = helper({file, "list"});
  CHECK(list.out == "vit\n");

  auto refused = helper({file, "set", "a/b", "/x"});
  CHECK(refused.exit_code == 2);
  CHECK_THAT(refused.err, Catch::Contains("a/b"));
}

TEST_CASE("a Registry used before fork() works in the child and still in the parent",
          "[registry][conformance]") {
  t::TestContext ctx;
  const std::string file = t::registry_location(ctx);
  Registry reg(file);
  reg.set_model_cache("parent", "/data/parent");

  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    int rc = 0;
    try {
      reg.set_model_cache("child", "/data/child");
      if (reg.cached_model_path("parent") != std::optional<std::string>("/data/parent")) rc = 1;
    } catch (...) {
      rc = 2;
    }
    ::_exit(rc);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);

  CHECK(reg.cached_model_path("child") == "/data/child");
  // The child's exit did not break the parent's connection or its locks.
  reg.set_model_cache("after", "/data/after");
  auto other = helper({file, "set", "other", "/data/other"});
  CHECK(other.exit_code == 0);
  Registry fresh(file);
  CHECK(fresh.list_cached_models() ==
        std::vector<std::string>{"after", "child", "other", "parent"});
}

TEST_CASE("several threads can write through one or several instances", "[registry][conformance]") {
  t::TestContext ctx;
  const std::string file = t::registry_location(ctx);
  Registry shared(file);
  std::vector<std::thread> threads;
  std::vector<std::string> errors(6);
  for (std::size_t i = 0; i < 6; ++i) {
    threads.emplace_back([&, i] {
      try {
        std::optional<Registry> own;
        if (i >= 4) own.emplace(file);  // two threads with their own instance
        Registry& reg = own ? *own : shared;
        for (int j = 0; j < 15; ++j) {
          std::string name = "t" + std::to_string(i) + "_" + std::to_string(j);
          reg.set_model_cache(name, "/data/" + name);
          if (reg.cached_model_path(name) != "/data/" + name) errors[i] = "lost " + name;
        }
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
    });
  }
  for (auto& th : threads) th.join();
  for (const auto& error : errors) CHECK(error == "");
  CHECK(shared.entries().size() == 90);
}

TEST_CASE("operations in a transaction commit together", "[registry][conformance]") {
  t::TestContext ctx;
  const std::string file = t::registry_location(ctx);
  Registry reg(file);
  reg.set_model_cache("old", "/data/old");

  reg.transaction([&](tfimm::Transaction& tx) {
    tx.set_model_cache("resnet18", "/data/resnet18");
    tx.set_model_cache("vit", "/data/vit");
    CHECK(tx.clear_model_cache("old"));
    CHECK_FALSE(tx.clear_model_cache("never"));
    tx.set_dir("/srv/cache");
    // The transaction sees its own writes.
    CHECK(tx.cached_model_path("vit") == "/data/vit");
    CHECK_FALSE(tx.cached_model_path("old"));
    CHECK(tx.list_cached_models() == std::vector<std::string>{"resnet18", "vit"});
    // Another process does not see any of it yet.
    auto child = helper({file, "get", "vit"});
    CHECK(child.exit_code == 1);
    auto still = helper({file, "get", "old"});
    CHECK(still.out == "/data/old\n");
  });

  Registry fresh(file);
  CHECK(fresh.list_cached_models() == std::vector<std::string>{"resnet18", "vit"});
  CHECK(fresh.stored_dir() == "/srv/cache");
  auto child = helper({file, "get", "vit"});
  CHECK(child.out == "/data/vit\n");

  SECTION("unset_dir inside a transaction") {
    reg.transaction([](tfimm::Transaction& tx) { tx.unset_dir(); });
    CHECK_FALSE(fresh.stored_dir());
  }
}

// Sets in a transaction are written together, later (a WriteBatch); what
// anything reads or writes in between must still see them in call order.
TEST_CASE("sets in a transaction keep their order against everything else",
          "[registry][conformance]") {
  t::TestContext ctx;
  const std::string file = t::registry_location(ctx);
  Registry reg(file);
  reg.set_model_cache("vit", "/data/vit0");
  const auto before = reg.history().size();

  reg.transaction([&](tfimm::Transaction& tx) {
    tx.set_model_cache("vit", "/data/vit1");
    tx.set_model_cache("resnet18", "/data/resnet18");
    tx.set_model_cache("vit", "/data/vit2");  // the same name again
    tx.set_model_cache("convnext", "/data/convnext");
    CHECK(tx.clear_model_cache("convnext"));  // cleared after its set
    // A read inside the body sees the pending sets too.
    CHECK(tx.cached_model_path("resnet18") == "/data/resnet18");
    tx.set_model_cache("swin", "/data/swin1");
    CHECK(tx.list_cached_models() == std::vector<std::string>{"resnet18", "swin", "vit"});
    tx.set_model_cache("swin", "/data/swin2");  // after a read
  });

  Registry fresh(file);
  CHECK(fresh.list_cached_models() == std::vector<std::string>{"resnet18", "swin", "vit"});
  CHECK(fresh.cached_model_path("vit") == "/data/vit2");
  CHECK(fresh.cached_model_path("swin") == "/data/swin2");
  // One history row per call, each with the path it replaced.
  const auto rows = [&](const std::string& name) {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& r : fresh.history(name)) {  // newest first
      out.emplace_back(r.action + " " + r.old_path.value_or("-"), r.new_path.value_or("-"));
    }
    return out;
  };
  using Rows = std::vector<std::pair<std::string, std::string>>;
  CHECK(rows("vit") == Rows{{"set /data/vit1", "/data/vit2"},
                            {"set /data/vit0", "/data/vit1"},
                            {"set -", "/data/vit0"}});
  CHECK(rows("convnext") == Rows{{"clear /data/convnext", "-"}, {"set -", "/data/convnext"}});
  CHECK(rows("swin") == Rows{{"set /data/swin1", "/data/swin2"}, {"set -", "/data/swin1"}});
  CHECK(fresh.history().size() == before + 7);

  SECTION("a rolled-back transaction leaves no pending set behind") {
    CHECK_THROWS_AS(reg.transaction([](tfimm::Transaction& tx) {
      tx.set_model_cache("ghost", "/data/ghost");
      throw std::runtime_error("abandon");
    }),
                    std::runtime_error);
    reg.transaction([](tfimm::Transaction& tx) { tx.set_model_cache("real", "/data/real"); });
    CHECK_FALSE(fresh.cached_model_path("ghost"));
    CHECK(fresh.cached_model_path("real") == "/data/real");
    CHECK(fresh.history("ghost").empty());
  }
}

TEST_CASE("a transaction of more sets than are held back at once writes them all",
          "[registry][conformance]") {
  t::TestContext ctx;
  Registry reg(t::registry_location(ctx));
  const int count = 65536 + 3;  // past the size of a WriteBatch
  reg.transaction([&](tfimm::Transaction& tx) {
    for (int i = 0; i < count; ++i) {
      tx.set_model_cache("m" + std::to_string(i), "/data/m" + std::to_string(i));
    }
    tx.set_model_cache("m0", "/data/again");  // after the first batch was written
  });
  const auto names = reg.list_cached_models();
  CHECK(names.size() == static_cast<std::size_t>(count));
  CHECK(reg.cached_model_path("m0") == "/data/again");
  CHECK(reg.cached_model_path("m65538") == "/data/m65538");
  const auto m0 = reg.history("m0");
  REQUIRE(m0.size() == 2);
  CHECK(m0[0].old_path == "/data/m0");
  CHECK(reg.history({}, 1000000).size() == static_cast<std::size_t>(count) + 1);
}

TEST_CASE("an exception inside a transaction rolls everything back and propagates",
          "[registry][conformance]") {
  t::TestContext ctx;
  const std::string file = t::registry_location(ctx);
  Registry reg(file);
  reg.set_model_cache("keep", "/data/keep");
  reg.set_dir("/srv/cache");
  const auto before = dump(reg.entries());
  const auto history = reg.history().size();

  SECTION("the caller's own exception") {
    struct Abort : std::runtime_error {
      using std::runtime_error::runtime_error;
    };
    CHECK_THROWS_MATCHES(reg.transaction([](tfimm::Transaction& tx) {
      tx.set_model_cache("resnet18", "/data/resnet18");
      tx.clear_model_cache("keep");
      tx.set_dir("/elsewhere");
      throw Abort("changed my mind");
    }),
                         Abort, Catch::Message("changed my mind"));
  }
  SECTION("a refused name in the middle") {
    CHECK_THROWS_AS(reg.transaction([](tfimm::Transaction& tx) {
      tx.set_model_cache("resnet18", "/data/resnet18");
      tx.unset_dir();
      tx.set_model_cache("a/b", "/data/x");
      tx.set_model_cache("vit", "/data/vit");
    }),
                    tfimm::InvalidName);
  }
  SECTION("a refused path in the middle") {
    CHECK_THROWS_AS(reg.transaction([](tfimm::Transaction& tx) {
      tx.set_model_cache("resnet18", "/data/resnet18");
      tx.set_model_cache("vit", "");
    }),
                    tfimm::InvalidPath);
  }
  CHECK(dump(reg.entries()) == before);
  CHECK(reg.stored_dir() == "/srv/cache");
  CHECK(reg.history().size() == history);
  Registry fresh(file);
  CHECK(dump(fresh.entries()) == before);
  CHECK(fresh.stored_dir() == "/srv/cache");
  // The registry is still usable afterwards.
  reg.set_model_cache("after", "/data/after");
  CHECK(fresh.cached_model_path("after") == "/data/after");
}

TEST_CASE("locking marks an entry and records why, and unknown names are refused",
          "[registry][conformance]") {
  t::TestContext ctx;
  Registry reg(t::registry_location(ctx));
  reg.set_model_cache("resnet18", "/data/resnet18");

  reg.lock("resnet18", "used by the paper");
  auto e = reg.entry("resnet18");
  REQUIRE(e);
  CHECK(e->locked);
  CHECK(e->lock_reason == "used by the paper");
  CHECK(reg.cached_model_path("resnet18") == "/data/resnet18");

  CHECK(reg.unlock("resnet18"));
  CHECK_FALSE(reg.entry("resnet18")->locked);
  CHECK_FALSE(reg.unlock("resnet18"));

  CHECK_THROWS_AS(reg.lock("vit"), tfimm::UnknownModel);
  CHECK_THROWS_AS(reg.lock("vit"), tfimm::InvalidInput);
  CHECK_THROWS_WITH(reg.lock("vit"), Catch::Contains("vit"));
  CHECK_THROWS_AS(reg.unlock("vit"), tfimm::UnknownModel);
  CHECK_FALSE(reg.entry("vit"));
}

TEST_CASE("the history records every change with who, where and when", "[registry][conformance]") {
  t::TestContext ctx;
  const std::string file = t::registry_location(ctx);
  Registry reg(file);
  const auto start = now_ms();
  reg.set_model_cache("resnet18", "/data/a");
  reg.set_model_cache("resnet18", "/data/b");
  reg.clear_model_cache("resnet18");
  reg.set_dir("/srv/cache");
  reg.unset_dir();
  reg.set_model_cache("vit", "/data/vit");
  reg.lock("vit", "why");
  reg.unlock("vit");
  const auto end = now_ms();

  auto h = reg.history();
  REQUIRE(h.size() == 8);
  using Opt = std::optional<std::string>;
  struct Expected {
    std::string action, name;
    Opt old_path, new_path;
  };
  const std::vector<Expected> expected = {
      {"unlock", "vit", {}, {}},
      {"lock", "vit", {}, {}},
      {"set", "vit", std::nullopt, Opt("/data/vit")},
      {"unset_dir", "", Opt("/srv/cache"), std::nullopt},
      {"set_dir", "", std::nullopt, Opt("/srv/cache")},
      {"clear", "resnet18", Opt("/data/b"), std::nullopt},
      {"set", "resnet18", Opt("/data/a"), Opt("/data/b")},
      {"set", "resnet18", std::nullopt, Opt("/data/a")},
  };
  const struct passwd* pw = ::getpwuid(::geteuid());
  REQUIRE(pw != nullptr);
  const char* env_user = std::getenv("USER");
  for (std::size_t i = 0; i < h.size(); ++i) {
    INFO("record " << i << ": " << h[i].action << " " << h[i].name);
    CHECK(h[i].action == expected[i].action);
    CHECK(h[i].name == expected[i].name);
    if (expected[i].action != "lock" && expected[i].action != "unlock") {
      CHECK(h[i].old_path == expected[i].old_path);
      CHECK(h[i].new_path == expected[i].new_path);
    }
    CHECK(h[i].pid == ::getpid());
    CHECK(h[i].host == this_host());
    CHECK((h[i].user == pw->pw_name || (env_user && h[i].user == env_user)));
    CHECK(h[i].at >= start);
    CHECK(h[i].at <= end);
    if (i > 0) CHECK(h[i].id < h[i - 1].id);
  }

  SECTION("filtered by name") {
    auto only = reg.history(std::string("resnet18"));
    REQUIRE(only.size() == 3);
    for (const auto& r : only) CHECK(r.name == "resnet18");
    CHECK(only[0].action == "clear");
  }
  SECTION("limited to the newest") {
    auto newest = reg.history(std::nullopt, 2);
    REQUIRE(newest.size() == 2);
    CHECK(newest[0].action == "unlock");
    CHECK(newest[1].action == "lock");
  }
  SECTION("what changes nothing is not recorded") {
    reg.clear_model_cache("never-registered");
    CHECK_THROWS(reg.set_model_cache("a/b", "/x"));
    CHECK(reg.history().size() == 8);
  }
  SECTION("another process's change carries its own pid") {
    REQUIRE(helper({file, "set", "swin", "/data/swin"}).exit_code == 0);
    auto latest = reg.history(std::nullopt, 1);
    REQUIRE(latest.size() == 1);
    CHECK(latest[0].name == "swin");
    CHECK(latest[0].pid != ::getpid());
    CHECK(latest[0].pid > 0);
  }
}

TEST_CASE("SQL-hostile names and paths round-trip byte for byte", "[registry]") {
  t::TestContext ctx;
  const std::string file = ctx.path("registry.db");
  std::string long_path;
  for (int i = 0; i < 40; ++i) long_path += "/" + std::string(99, static_cast<char>('a' + i % 26));
  REQUIRE(long_path.size() == 4000);
  const std::vector<std::pair<std::string, std::string>> records = {
      {"a'b", "/data/it's"},
      {"x\"; DROP TABLE models; --", "/data/\"; DROP TABLE settings; --"},
      {"Robert'); DELETE FROM models;--", "/data/'); DELETE FROM models;--"},
      {"%_ wildcard*?", "/data/%_*?[]"},
      {"long", long_path},
      {"newline-path", "/data/new\nline"},
      {"modèle", "/données/modèle"},
  };
  {
    Registry reg(file);
    for (const auto& [name, path] : records) reg.set_model_cache(name, path);
    reg.set_dir("/srv/it's \"cache\"");
  }
  Registry reg(file);
  REQUIRE(reg.entries().size() == records.size());
  for (const auto& [name, path] : records) {
    INFO("name: " << name);
    CHECK(reg.cached_model_path(name) == path);
  }
  CHECK(reg.stored_dir() == "/srv/it's \"cache\"");
  // Lookups are exact: no LIKE wildcards, no case folding.
  CHECK_FALSE(reg.entry("a_b"));
  CHECK_FALSE(reg.entry("A'B"));
  CHECK(reg.clear_model_cache("a'b"));
  CHECK(reg.entries().size() == records.size() - 1);

  t::RawDb db(file);
  CHECK(db.integer("SELECT count(*) FROM sqlite_master WHERE name IN ('models', 'settings')") == 2);
  // Another process reads the same bytes.
  auto child = helper({file, "get", "x\"; DROP TABLE models; --"});
  CHECK(child.out == "/data/\"; DROP TABLE settings; --\n");
}

TEST_CASE("locking again with the same reason or storing the same cache directory records nothing",
          "[registry][no-op][conformance]") {
  t::TestContext ctx;
  tfimm::Registry reg(t::registry_location(ctx));
  reg.set_model_cache("resnet18", "/data/resnet18");
  reg.lock("resnet18", "pinned");
  reg.set_dir("/data/cache");
  const auto before = reg.history();
  reg.lock("resnet18", "pinned");
  reg.set_dir("/data/cache");
  CHECK(reg.history().size() == before.size());
  reg.lock("resnet18", "another reason");
  reg.set_dir("/data/other");
  CHECK(reg.history().size() == before.size() + 2);
  CHECK(reg.entry("resnet18")->lock_reason == "another reason");
}
