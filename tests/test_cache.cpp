// Tests for lib/cache.cpp: tfimm's cache functions on the default registry.
//
// Most tests run each call in a fresh helper process (helper_main.cpp,
// "default" mode) with the environment of the test, so that they check what
// another process sees; the last one changes the environment in this process.
#include <sys/wait.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "testutil.hpp"
#include "tfimm/cache.hpp"
#include "tfimm/registry.hpp"

namespace t = tfimm::test;

namespace {

// Runs the helper on the default registry with the current environment.
t::ProcessResult run_default(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {TFIMM_TEST_HELPER, "default"};
  argv.insert(argv.end(), args.begin(), args.end());
  return t::run_process(argv);
}

// Runs it and requires success; returns stdout.
std::string ok(const std::vector<std::string>& args) {
  auto r = run_default(args);
  INFO("helper default " << args.at(0) << ": stderr: " << r.err);
  REQUIRE(r.exit_code == 0);
  return r.out;
}

}  // namespace

TEST_CASE("set_model_cache then cached_model_path gives the registered path with ~ expanded",
          "[cache]") {
  t::TestContext ctx;
  ctx.env().set("TFIMM_REGISTRY", ctx.path("registry.db"));
  ok({"set", "resnet18", "~/resnet18_saved"});
  CHECK(ok({"get", "resnet18"}) == ctx.home() + "/resnet18_saved\n");
  CHECK(t::exists(ctx.path("registry.db")));
  // The answer is the registered path, even though nothing is there yet.
  CHECK_FALSE(t::exists(ctx.home() + "/resnet18_saved"));
}

TEST_CASE("the default registry file is chosen by the environment of each process", "[cache]") {
  t::TestContext ctx;
  SECTION("$TFIMM_REGISTRY") {
    ctx.env().set("XDG_STATE_HOME", ctx.path("state"));
    ctx.env().set("TFIMM_REGISTRY", ctx.path("mine/registry.db"));
    CHECK(ok({"location"}) == ctx.path("mine/registry.db") + "\n");
    ok({"set", "resnet18", "/w/resnet18"});
    CHECK(t::exists(ctx.path("mine/registry.db")));
    CHECK_FALSE(t::exists(ctx.path("state")));
  }
  SECTION("$XDG_STATE_HOME/tfimm/registry.db") {
    ctx.env().set("XDG_STATE_HOME", ctx.path("state"));
    ok({"set", "resnet18", "/w/resnet18"});
    CHECK(t::exists(ctx.path("state/tfimm/registry.db")));
    CHECK_FALSE(t::exists(ctx.home() + "/.local"));
  }
  SECTION("~/.local/state/tfimm/registry.db, with empty variables counting as unset") {
    ctx.env().set("XDG_STATE_HOME", "");
    ctx.env().set("TFIMM_REGISTRY", "");
    ok({"set", "resnet18", "/w/resnet18"});
    CHECK(t::exists(ctx.home() + "/.local/state/tfimm/registry.db"));
  }
  // Whichever file it is, the next process finds the entry there.
  CHECK(ok({"get", "resnet18"}) == "/w/resnet18\n");
  CHECK(ok({"list"}) == "resnet18\n");
}

TEST_CASE("reading the default registry before any write creates nothing", "[cache]") {
  t::TestContext ctx;
  ctx.env().set("XDG_STATE_HOME", ctx.path("state"));
  auto r = run_default({"get", "resnet18"});
  CHECK(r.exit_code == 1);
  CHECK(r.out.empty());
  CHECK(ok({"list"}).empty());
  CHECK(ok({"get-dir"}) == ctx.home() + "/.cache/tfimm\n");
  CHECK_FALSE(t::exists(ctx.path("state")));
}

TEST_CASE("list_cached_models is sorted and clear_model_cache forgets one name", "[cache]") {
  t::TestContext ctx;
  ctx.env().set("TFIMM_REGISTRY", ctx.path("registry.db"));
  t::make_dirs(ctx.path("w/vit"));
  ok({"set", "vit", ctx.path("w/vit")});
  ok({"set", "resnet18", "/w/resnet18"});
  ok({"set", "convnext-tiny", "/w/convnext"});
  CHECK(ok({"list"}) == "convnext-tiny\nresnet18\nvit\n");

  ok({"clear", "vit"});
  CHECK(ok({"list"}) == "convnext-tiny\nresnet18\n");
  CHECK(run_default({"get", "vit"}).exit_code == 1);
  CHECK(t::exists(ctx.path("w/vit")));  // files are never deleted

  SECTION("clearing a name that was never set is not an error") {
    ok({"clear", "never-set"});
    CHECK(ok({"list"}) == "convnext-tiny\nresnet18\n");
  }
}

TEST_CASE("cached_model_path falls back to the cache directory when the model is there",
          "[cache]") {
  t::TestContext ctx;
  ctx.env().set("TFIMM_REGISTRY", ctx.path("registry.db"));
  ctx.env().set("TFIMM_HOME", ctx.path("models"));
  CHECK(run_default({"get", "vit"}).exit_code == 1);
  t::make_dirs(ctx.path("models/vit"));
  CHECK(ok({"get", "vit"}) == ctx.path("models/vit") + "\n");
  ok({"set", "vit", "/w/vit"});
  CHECK(ok({"get", "vit"}) == "/w/vit\n");
}

TEST_CASE("get_dir follows the same precedence on the default registry", "[cache]") {
  t::TestContext ctx;
  ctx.env().set("TFIMM_REGISTRY", ctx.path("registry.db"));
  CHECK(ok({"get-dir"}) == ctx.home() + "/.cache/tfimm\n");
  CHECK(ok({"dir-source"}) == "default\n");

  ctx.env().set("XDG_CACHE_HOME", ctx.path("xdg"));
  CHECK(ok({"get-dir"}) == ctx.path("xdg") + "/tfimm\n");
  CHECK(ok({"dir-source"}) == "$XDG_CACHE_HOME\n");

  ctx.env().set("TFIMM_HOME", "~/tfimm-home");
  CHECK(ok({"get-dir"}) == ctx.home() + "/tfimm-home\n");
  CHECK(ok({"dir-source"}) == "$TFIMM_HOME\n");

  ok({"set-dir", "~/shared/cache/"});
  CHECK(ok({"get-dir"}) == ctx.home() + "/shared/cache\n");
  CHECK(ok({"dir-source"}) == "registry setting\n");

  ok({"unset-dir"});
  CHECK(ok({"get-dir"}) == ctx.home() + "/tfimm-home\n");
  CHECK(ok({"dir-source"}) == "$TFIMM_HOME\n");

  SECTION("the setting is shared with a Registry opened on the same file") {
    ok({"set-dir", "/srv/cache"});
    tfimm::Registry reg(ctx.path("registry.db"));
    CHECK(reg.stored_dir() == "/srv/cache");
  }
}

TEST_CASE("errors of the free functions are tfimm errors naming the problem", "[cache]") {
  t::TestContext ctx;
  ctx.env().set("TFIMM_REGISTRY", ctx.path("registry.db"));
  SECTION("a bad name") {
    auto r = run_default({"set", "../escape", "/w/x"});
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("../escape"));
    CHECK_FALSE(t::exists(ctx.path("registry.db")));
  }
  SECTION("an empty path") {
    auto r = run_default({"set", "resnet18", ""});
    CHECK(r.exit_code == 2);
    CHECK_FALSE(t::exists(ctx.path("registry.db")));
  }
  SECTION("a default registry that is not a registry") {
    t::write_file(ctx.path("registry.db"), "not a database, just text\n");
    auto r = run_default({"get", "resnet18"});
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains(ctx.path("registry.db")));
    CHECK(t::read_file(ctx.path("registry.db")) == "not a database, just text\n");
  }
}

TEST_CASE("the free functions follow the environment changed after their first call",
          "[cache][env]") {
  // In this process: the environment is read on every call, as tfimm does.
  t::TestContext ctx;
  ctx.env().set("TFIMM_REGISTRY", ctx.path("a/registry.db"));
  tfimm::set_model_cache("resnet18", "/w/a/resnet18");
  CHECK(tfimm::cached_model_path("resnet18") == "/w/a/resnet18");

  SECTION("$TFIMM_REGISTRY names another file: that file answers") {
    ctx.env().set("TFIMM_REGISTRY", ctx.path("b/registry.db"));
    CHECK(tfimm::list_cached_models().empty());
    tfimm::set_model_cache("vit", "/w/b/vit");
    CHECK(tfimm::default_registry().path() == ctx.path("b/registry.db"));
    CHECK(tfimm::Registry(ctx.path("b/registry.db")).list_cached_models() ==
          std::vector<std::string>{"vit"});
    // Back to the first file: its entries are still there, the other's are not.
    ctx.env().set("TFIMM_REGISTRY", ctx.path("a/registry.db"));
    CHECK(tfimm::list_cached_models() == std::vector<std::string>{"resnet18"});
  }
  SECTION("$XDG_STATE_HOME and $HOME decide once $TFIMM_REGISTRY is unset") {
    ctx.env().set("TFIMM_REGISTRY", std::nullopt);
    ctx.env().set("XDG_STATE_HOME", ctx.path("state"));
    tfimm::set_model_cache("vit", "/w/state/vit");
    CHECK(t::exists(ctx.path("state/tfimm/registry.db")));
    ctx.env().set("XDG_STATE_HOME", std::nullopt);
    ctx.env().set("HOME", ctx.path("home2"));
    CHECK(tfimm::list_cached_models().empty());
    tfimm::set_model_cache("bert", "/w/home2/bert");
    CHECK(t::exists(ctx.path("home2/.local/state/tfimm/registry.db")));
  }
  SECTION("$TFIMM_HOME and $XDG_CACHE_HOME move the cache directory") {
    ctx.env().set("TFIMM_HOME", ctx.path("models"));
    CHECK(tfimm::get_dir() == ctx.path("models"));
    ctx.env().set("TFIMM_HOME", std::nullopt);
    ctx.env().set("XDG_CACHE_HOME", ctx.path("xdg"));
    CHECK(tfimm::get_dir() == ctx.path("xdg/tfimm"));
    CHECK(tfimm::get_dir_origin().source == tfimm::DirSource::XdgCacheHome);
  }
  SECTION("a relative $TFIMM_REGISTRY is refused on the call that sees it, then works again") {
    ctx.env().set("TFIMM_REGISTRY", "relative/registry.db");
    CHECK_THROWS_AS(tfimm::list_cached_models(), tfimm::InvalidPath);
    ctx.env().set("TFIMM_REGISTRY", ctx.path("a/registry.db"));
    CHECK(tfimm::list_cached_models() == std::vector<std::string>{"resnet18"});
  }
}

namespace {

// LeakSanitizer's, present only in sanitizer builds: a leak check now, after
// which the one at exit does not run. What threads still inside calls hold
// at exit is left to the operating system on purpose.
extern "C" void __lsan_do_leak_check() __attribute__((weak));

void objects_left_at_exit_are_not_leaks() {
  if (__lsan_do_leak_check != nullptr) __lsan_do_leak_check();
}

}  // namespace

TEST_CASE("a process that exits while other threads are inside the free functions exits cleanly",
          "[cache][exit]") {
  // Like a Python interpreter exiting with daemon threads: exit() destroys
  // static objects while those threads are still inside calls.
  t::TestContext ctx;
  ctx.env().set("TFIMM_REGISTRY", ctx.path("registry.db"));
  tfimm::set_model_cache("resnet18", "/w/r18");
  for (int round = 0; round < 10; ++round) {
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      objects_left_at_exit_are_not_leaks();
      for (int i = 0; i < 3; ++i) {
        std::thread([] {
          for (;;) {
            (void)tfimm::cached_model_path("resnet18");
            tfimm::set_model_cache("vit", "/w/vit");
          }
        }).detach();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      std::exit(0);
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    INFO("round " << round << ", wait status " << status);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
  }
  CHECK(tfimm::cached_model_path("vit") == "/w/vit");
}
