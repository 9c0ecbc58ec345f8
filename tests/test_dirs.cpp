// Tests for lib/dirs.cpp: where the cache directory comes from (override,
// registry setting, environment, default) and where the default registry
// file lives.
#include <unistd.h>
#include <catch2/catch.hpp>

#include <optional>
#include <string>
#include <vector>

#include "testutil.hpp"
#include "tfimm/errors.hpp"
#include "tfimm/paths.hpp"
#include "tfimm/registry.hpp"

using tfimm::DirSource;
using tfimm::RegistrySource;
namespace t = tfimm::test;

namespace {

// Clears the process override when the test ends, however it ends.
struct OverrideGuard {
  OverrideGuard() { tfimm::clear_dir_override(); }
  ~OverrideGuard() { tfimm::clear_dir_override(); }
};

t::ProcessResult helper(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {TFIMM_TEST_HELPER};
  argv.insert(argv.end(), args.begin(), args.end());
  return t::run_process(argv);
}

std::optional<std::string> layer(const tfimm::CacheDir& dir, DirSource source) {
  for (const auto& l : dir.layers) {
    if (l.source == source) return l.path;
  }
  FAIL("no layer for " << tfimm::describe(source));
  return std::nullopt;
}

}  // namespace

TEST_CASE("the default registry location follows TFIMM_REGISTRY, then XDG_STATE_HOME, then HOME",
          "[dirs]") {
  t::TestContext ctx;
  const std::string home_default = ctx.home() + "/.local/state/tfimm/registry.db";

  SECTION("nothing set: ~/.local/state/tfimm/registry.db") {
    auto loc = tfimm::default_registry_location();
    CHECK(loc.path == home_default);
    CHECK(loc.source == RegistrySource::Default);
  }
  SECTION("XDG_STATE_HOME set") {
    ctx.env().set("XDG_STATE_HOME", ctx.path("state"));
    auto loc = tfimm::default_registry_location();
    CHECK(loc.path == ctx.path("state") + "/tfimm/registry.db");
    CHECK(loc.source == RegistrySource::XdgStateHome);
  }
  SECTION("XDG_STATE_HOME empty counts as unset") {
    ctx.env().set("XDG_STATE_HOME", "");
    auto loc = tfimm::default_registry_location();
    CHECK(loc.path == home_default);
    CHECK(loc.source == RegistrySource::Default);
  }
  SECTION("TFIMM_REGISTRY beats XDG_STATE_HOME") {
    ctx.env().set("XDG_STATE_HOME", ctx.path("state"));
    ctx.env().set("TFIMM_REGISTRY", ctx.path("mine.db"));
    auto loc = tfimm::default_registry_location();
    CHECK(loc.path == ctx.path("mine.db"));
    CHECK(loc.source == RegistrySource::EnvRegistry);
  }
  SECTION("TFIMM_REGISTRY empty counts as unset") {
    ctx.env().set("XDG_STATE_HOME", ctx.path("state"));
    ctx.env().set("TFIMM_REGISTRY", "");
    auto loc = tfimm::default_registry_location();
    CHECK(loc.path == ctx.path("state") + "/tfimm/registry.db");
    CHECK(loc.source == RegistrySource::XdgStateHome);
  }
  SECTION("TFIMM_REGISTRY with a tilde and dots is normalised") {
    ctx.env().set("TFIMM_REGISTRY", "~/regs/../r.db");
    CHECK(tfimm::default_registry_location().path == ctx.home() + "/r.db");
  }
  SECTION("HOME with a trailing slash is normalised") {
    ctx.env().set("HOME", ctx.home() + "/");
    CHECK(tfimm::default_registry_location().path == home_default);
  }
  // Finding the location touches no file.
  CHECK_FALSE(t::exists(ctx.home() + "/.local"));
  CHECK_FALSE(t::exists(ctx.path("state")));
  CHECK_FALSE(t::exists(ctx.path("mine.db")));
}

TEST_CASE("a Registry built without a file uses the default location and creates nothing",
          "[dirs]") {
  t::TestContext ctx;
  ctx.env().set("XDG_STATE_HOME", ctx.path("state"));
  tfimm::Registry reg;
  CHECK(reg.location().path == ctx.path("state") + "/tfimm/registry.db");
  CHECK(reg.location().source == RegistrySource::XdgStateHome);
  CHECK(reg.path() == reg.location().path);
  CHECK(reg.entries().empty());
  CHECK_FALSE(t::exists(ctx.path("state")));
  reg.set_model_cache("resnet18", "/w/resnet18");
  CHECK(t::exists(ctx.path("state") + "/tfimm/registry.db"));
}

TEST_CASE("sources are described in words a user recognises", "[dirs]") {
  t::TestContext ctx;
  CHECK(tfimm::describe(DirSource::Override) == "process override");
  CHECK(tfimm::describe(DirSource::RegistrySetting) == "registry setting");
  CHECK(tfimm::describe(DirSource::TfimmHome) == "$TFIMM_HOME");
  CHECK(tfimm::describe(DirSource::XdgCacheHome) == "$XDG_CACHE_HOME");
  CHECK(tfimm::describe(DirSource::Default) == "default");
  CHECK_THAT(tfimm::describe(RegistrySource::Explicit), Catch::Contains("--registry"));
  CHECK(tfimm::describe(RegistrySource::EnvRegistry) == "$TFIMM_REGISTRY");
  CHECK_THAT(tfimm::describe(RegistrySource::XdgStateHome), Catch::Contains("XDG_STATE_HOME"));
  CHECK_FALSE(tfimm::describe(RegistrySource::Default).empty());
  CHECK(tfimm::describe(RegistrySource::Default) != tfimm::describe(RegistrySource::Explicit));
}

TEST_CASE("the cache directory follows override, setting, TFIMM_HOME, XDG_CACHE_HOME, default",
          "[dirs]") {
  t::TestContext ctx;
  OverrideGuard guard;
  tfimm::Registry reg(ctx.path("reg.db"));
  const std::string home_default = ctx.home() + "/.cache/tfimm";

  SECTION("nothing set: ~/.cache/tfimm") {
    auto dir = reg.cache_dir();
    CHECK(dir.path == home_default);
    CHECK(dir.source == DirSource::Default);
    CHECK(reg.get_dir() == home_default);
    CHECK_FALSE(layer(dir, DirSource::Override));
    CHECK_FALSE(layer(dir, DirSource::RegistrySetting));
    CHECK_FALSE(layer(dir, DirSource::TfimmHome));
    CHECK_FALSE(layer(dir, DirSource::XdgCacheHome));
    CHECK(layer(dir, DirSource::Default) == home_default);
  }
  SECTION("XDG_CACHE_HOME set: $XDG_CACHE_HOME/tfimm") {
    ctx.env().set("XDG_CACHE_HOME", ctx.path("xdg"));
    auto dir = reg.cache_dir();
    CHECK(dir.path == ctx.path("xdg") + "/tfimm");
    CHECK(dir.source == DirSource::XdgCacheHome);
    CHECK(layer(dir, DirSource::Default) == home_default);
  }
  SECTION("XDG_CACHE_HOME empty counts as unset") {
    ctx.env().set("XDG_CACHE_HOME", "");
    auto dir = reg.cache_dir();
    CHECK(dir.path == home_default);
    CHECK(dir.source == DirSource::Default);
    CHECK_FALSE(layer(dir, DirSource::XdgCacheHome));
  }
  SECTION("TFIMM_HOME beats XDG_CACHE_HOME and shadows it") {
    ctx.env().set("XDG_CACHE_HOME", ctx.path("xdg"));
    ctx.env().set("TFIMM_HOME", ctx.path("th"));
    auto dir = reg.cache_dir();
    CHECK(dir.path == ctx.path("th"));
    CHECK(dir.source == DirSource::TfimmHome);
    CHECK(layer(dir, DirSource::TfimmHome) == ctx.path("th"));
    CHECK(layer(dir, DirSource::XdgCacheHome) == ctx.path("xdg") + "/tfimm");
  }
  SECTION("TFIMM_HOME empty counts as unset") {
    ctx.env().set("XDG_CACHE_HOME", ctx.path("xdg"));
    ctx.env().set("TFIMM_HOME", "");
    auto dir = reg.cache_dir();
    CHECK(dir.path == ctx.path("xdg") + "/tfimm");
    CHECK(dir.source == DirSource::XdgCacheHome);
    CHECK_FALSE(layer(dir, DirSource::TfimmHome));
  }
  SECTION("TFIMM_HOME with a tilde is expanded and normalised") {
    ctx.env().set("TFIMM_HOME", "~/models//tfimm/");
    CHECK(reg.get_dir() == ctx.home() + "/models/tfimm");
  }
  SECTION("the registry setting beats TFIMM_HOME") {
    ctx.env().set("TFIMM_HOME", ctx.path("th"));
    reg.set_dir(ctx.path("setting"));
    auto dir = reg.cache_dir();
    CHECK(dir.path == ctx.path("setting"));
    CHECK(dir.source == DirSource::RegistrySetting);
    CHECK(layer(dir, DirSource::RegistrySetting) == ctx.path("setting"));
    CHECK(layer(dir, DirSource::TfimmHome) == ctx.path("th"));
  }
  SECTION("the process override beats everything") {
    ctx.env().set("TFIMM_HOME", ctx.path("th"));
    ctx.env().set("XDG_CACHE_HOME", ctx.path("xdg"));
    reg.set_dir(ctx.path("setting"));
    tfimm::set_dir_override(ctx.path("ov"));
    auto dir = reg.cache_dir();
    CHECK(dir.path == ctx.path("ov"));
    CHECK(dir.source == DirSource::Override);
    REQUIRE(dir.layers.size() == 5);
    CHECK(dir.layers[0].source == DirSource::Override);
    CHECK(dir.layers[1].source == DirSource::RegistrySetting);
    CHECK(dir.layers[2].source == DirSource::TfimmHome);
    CHECK(dir.layers[3].source == DirSource::XdgCacheHome);
    CHECK(dir.layers[4].source == DirSource::Default);
    CHECK(dir.layers[0].path == ctx.path("ov"));
    CHECK(dir.layers[1].path == ctx.path("setting"));
    CHECK(dir.layers[2].path == ctx.path("th"));
    CHECK(dir.layers[3].path == ctx.path("xdg") + "/tfimm");
    CHECK(dir.layers[4].path == home_default);
  }
}

TEST_CASE("set_dir stores a normalised directory that persists and unset_dir removes it",
          "[dirs]") {
  t::TestContext ctx;
  OverrideGuard guard;
  ctx.env().set("TFIMM_HOME", ctx.path("th"));
  const std::string file = ctx.path("reg.db");
  {
    tfimm::Registry reg(file);
    CHECK_FALSE(reg.stored_dir());
    reg.set_dir("~/cache/../shared//");
    CHECK(reg.stored_dir() == ctx.home() + "/shared");
  }
  tfimm::Registry reg(file);
  CHECK(reg.stored_dir() == ctx.home() + "/shared");
  CHECK(reg.get_dir() == ctx.home() + "/shared");
  // The directory itself is not created.
  CHECK_FALSE(t::exists(ctx.home() + "/shared"));

  reg.unset_dir();
  CHECK_FALSE(reg.stored_dir());
  CHECK(reg.get_dir() == ctx.path("th"));
  CHECK(reg.cache_dir().source == DirSource::TfimmHome);
  SECTION("unset_dir when nothing is stored is not an error") {
    CHECK_NOTHROW(reg.unset_dir());
    CHECK_FALSE(reg.stored_dir());
  }
  SECTION("a refused directory changes nothing") {
    reg.set_dir(ctx.path("kept"));
    CHECK_THROWS_AS(reg.set_dir(""), tfimm::InvalidPath);
    CHECK_THROWS_AS(reg.set_dir(std::string("/a\0b", 4)), tfimm::InvalidPath);
    CHECK(reg.stored_dir() == ctx.path("kept"));
  }
}

TEST_CASE("reading the cache directory of a registry that does not exist creates nothing",
          "[dirs]") {
  t::TestContext ctx;
  OverrideGuard guard;
  tfimm::Registry reg(ctx.path("sub/reg.db"));
  CHECK(reg.get_dir() == ctx.home() + "/.cache/tfimm");
  CHECK_FALSE(reg.stored_dir());
  CHECK_NOTHROW(reg.unset_dir());
  CHECK_FALSE(t::exists(ctx.path("sub")));
  CHECK_FALSE(t::exists(ctx.home() + "/.cache"));
}

TEST_CASE("the dir override is seen by every Registry of this process and by no other process",
          "[dirs]") {
  t::TestContext ctx;
  OverrideGuard guard;
  const std::string file = ctx.path("reg.db");
  tfimm::Registry a(file);
  tfimm::Registry b(ctx.path("other.db"));
  a.set_dir(ctx.path("setting"));

  CHECK_FALSE(tfimm::dir_override());
  tfimm::set_dir_override("~/ov/./x/..");
  CHECK(tfimm::dir_override() == ctx.home() + "/ov");
  CHECK(a.get_dir() == ctx.home() + "/ov");
  CHECK(b.get_dir() == ctx.home() + "/ov");
  CHECK(b.cache_dir().source == DirSource::Override);

  // A child process sees the registry setting, not this process's override.
  auto child = helper({file, "get-dir"});
  CHECK(child.exit_code == 0);
  CHECK(child.out == ctx.path("setting") + "\n");
  auto source = helper({file, "dir-source"});
  CHECK(source.out == "registry setting\n");

  SECTION("a refused override leaves the previous one") {
    CHECK_THROWS_AS(tfimm::set_dir_override(""), tfimm::InvalidPath);
    CHECK(tfimm::dir_override() == ctx.home() + "/ov");
  }
  SECTION("clearing it falls back to the registry setting") {
    tfimm::clear_dir_override();
    CHECK_FALSE(tfimm::dir_override());
    CHECK(a.get_dir() == ctx.path("setting"));
    CHECK(a.cache_dir().source == DirSource::RegistrySetting);
    CHECK(b.get_dir() == ctx.home() + "/.cache/tfimm");
  }
}

TEST_CASE("a directory set in one process is the directory of every other process", "[dirs]") {
  t::TestContext ctx;
  OverrideGuard guard;
  const std::string file = ctx.path("reg.db");
  tfimm::Registry reg(file);

  auto set = helper({file, "set-dir", "/srv/shared/cache"});
  REQUIRE(set.exit_code == 0);
  CHECK(reg.get_dir() == "/srv/shared/cache");
  CHECK(reg.cache_dir().source == DirSource::RegistrySetting);

  reg.set_dir(ctx.path("from-parent"));
  auto get = helper({file, "get-dir"});
  CHECK(get.exit_code == 0);
  CHECK(get.out == ctx.path("from-parent") + "\n");

  auto unset = helper({file, "unset-dir"});
  REQUIRE(unset.exit_code == 0);
  CHECK_FALSE(reg.stored_dir());
  CHECK(reg.cache_dir().source == DirSource::Default);
}

namespace {

// Runs `body` with the working directory `dir`, then returns to the old one.
template <class Body>
auto in_dir(const std::string& dir, Body body) {
  char old[4096];
  REQUIRE(::getcwd(old, sizeof old) != nullptr);
  REQUIRE(::chdir(dir.c_str()) == 0);
  struct Back {
    const char* to;
    ~Back() { (void)!::chdir(to); }
  } back{old};
  return body();
}

bool ignored(const std::vector<tfimm::IgnoredVariable>& list, const std::string& name,
             const std::string& value) {
  for (const auto& var : list) {
    if (var.name == name && var.value == value) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("a relative XDG_STATE_HOME is ignored, so every working directory finds one registry",
          "[dirs][env]") {
  t::TestContext ctx;
  t::make_dirs(ctx.path("a"));
  t::make_dirs(ctx.path("b"));
  ctx.env().set("XDG_STATE_HOME", "state");
  auto in_a = in_dir(ctx.path("a"), [] { return tfimm::default_registry_location(); });
  auto in_b = in_dir(ctx.path("b"), [] { return tfimm::default_registry_location(); });
  CHECK(in_a.path == in_b.path);
  CHECK(in_a.path == ctx.home() + "/.local/state/tfimm/registry.db");
  CHECK(in_a.source == RegistrySource::Default);
  CHECK(ignored(in_a.ignored, "XDG_STATE_HOME", "state"));
  CHECK(in_a.ignored.size() == 1);

  SECTION("an absolute one is used and nothing is ignored") {
    ctx.env().set("XDG_STATE_HOME", ctx.path("state"));
    auto loc = tfimm::default_registry_location();
    CHECK(loc.source == RegistrySource::XdgStateHome);
    CHECK(loc.ignored.empty());
  }
}

TEST_CASE("a relative XDG_CACHE_HOME is ignored and listed with the cache directory",
          "[dirs][env]") {
  t::TestContext ctx;
  OverrideGuard guard;
  t::make_dirs(ctx.path("a"));
  tfimm::Registry reg(ctx.path("reg.db"));
  ctx.env().set("XDG_CACHE_HOME", "cache");
  auto dir = in_dir(ctx.path("a"), [&] { return reg.cache_dir(); });
  CHECK(dir.path == ctx.home() + "/.cache/tfimm");
  CHECK(dir.source == DirSource::Default);
  CHECK_FALSE(layer(dir, DirSource::XdgCacheHome));
  CHECK(ignored(dir.ignored, "XDG_CACHE_HOME", "cache"));
  // The lookup fast path agrees with the full resolution.
  CHECK(in_dir(ctx.path("a"), [&] { return reg.get_dir(); }) == dir.path);
  CHECK(in_dir(ctx.path("a"), [&] { return reg.cached_model_path("resnet18"); }) == std::nullopt);
}

TEST_CASE("a relative HOME is ignored like an unset one: the password database gives the home",
          "[dirs][env]") {
  t::TestContext ctx;
  OverrideGuard guard;
  t::make_dirs(ctx.path("a"));
  ctx.env().set("HOME", "relhome");
  const std::string home = tfimm::home_dir();
  CHECK(home.front() == '/');
  CHECK(home != ctx.path("a") + "/relhome");
  auto loc = in_dir(ctx.path("a"), [] { return tfimm::default_registry_location(); });
  CHECK(loc.path == home + "/.local/state/tfimm/registry.db");
  CHECK(ignored(loc.ignored, "HOME", "relhome"));
  tfimm::Registry reg(ctx.path("reg.db"));
  auto dir = reg.cache_dir();
  CHECK(dir.path == home + "/.cache/tfimm");
  CHECK(ignored(dir.ignored, "HOME", "relhome"));
}

TEST_CASE("a relative TFIMM_REGISTRY or TFIMM_HOME is refused naming the variable", "[dirs][env]") {
  t::TestContext ctx;
  OverrideGuard guard;

  SECTION("TFIMM_REGISTRY") {
    ctx.env().set("TFIMM_REGISTRY", "rel/r.db");
    CHECK_THROWS_MATCHES(tfimm::default_registry_location(), tfimm::InvalidPath,
                         Catch::Message("$TFIMM_REGISTRY is \"rel/r.db\", a relative path, "
                                        "which would name a different place in every working "
                                        "directory; set $TFIMM_REGISTRY to an absolute path"));
    CHECK_THROWS_AS(tfimm::Registry(), tfimm::InvalidPath);
  }
  SECTION("TFIMM_REGISTRY with an unknown user") {
    ctx.env().set("TFIMM_REGISTRY", "~nosuchuser/r.db");
    CHECK_THROWS_WITH(tfimm::default_registry_location(),
                      Catch::StartsWith("$TFIMM_REGISTRY: invalid path \"~nosuchuser/r.db\""));
  }
  SECTION("TFIMM_HOME, for every way the cache directory is read") {
    tfimm::Registry reg(ctx.path("reg.db"));
    ctx.env().set("TFIMM_HOME", "models");
    CHECK_THROWS_WITH(reg.cache_dir(), Catch::StartsWith("$TFIMM_HOME is \"models\", a relative"));
    CHECK_THROWS_AS(reg.get_dir(), tfimm::InvalidPath);
    CHECK_THROWS_AS(reg.cached_model_path("resnet18"), tfimm::InvalidPath);
    SECTION("unless a higher layer answers first") {
      reg.set_dir(ctx.path("setting"));
      CHECK(reg.get_dir() == ctx.path("setting"));
      CHECK(ignored(reg.cache_dir().ignored, "TFIMM_HOME", "models"));
    }
  }
  CHECK_FALSE(t::exists(ctx.path("rel")));
}
