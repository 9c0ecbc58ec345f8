// tfimm-cache path
#include <catch2/catch.hpp>

#include "disagreeing_mount.hpp"
#include "tool_test.hpp"

using tfimm::tooltest::require_error;
using tfimm::tooltest::Tool;

TEST_CASE("path prints exactly the registered path on one line", "[path][conformance]") {
  Tool tool;
  tool.ok({"set", "resnet18", "/data/w/resnet18"});
  auto r = tool.run({"path", "resnet18"});
  CHECK(r.exit_code == 0);
  CHECK(r.out == "/data/w/resnet18\n");
  CHECK(r.err.empty());
}

TEST_CASE("path of a model that is not cached exits 1 with nothing on stdout",
          "[path][conformance]") {
  Tool tool;
  tool.ok({"set", "other", "/data/other"});
  auto r = tool.run({"path", "resnet18"});
  CHECK(r.exit_code == 1);
  CHECK(r.out.empty());
}

TEST_CASE("path falls back to <cache dir>/<name> only when it exists", "[path][conformance]") {
  Tool tool;
  std::string cache = tool.path("cache");
  tool.ok({"set-dir", cache});
  CHECK(tool.run({"path", "resnet18"}).exit_code == 1);
  tool.make_dir("cache/resnet18");
  CHECK(tool.ok({"path", "resnet18"}) == cache + "/resnet18\n");
}

TEST_CASE("path with an invalid name exits 2", "[path][errors][conformance]") {
  Tool tool;
  require_error(tool.run({"path", "../../etc"}), 2);
  require_error(tool.run({"path", "../../etc", "--explain"}), 2);
}

TEST_CASE("path --explain names the entry that answered and the fallback it shadows",
          "[path][explain][conformance]") {
  Tool tool;
  std::string cache = tool.path("cache");
  tool.make_dir("cache/resnet18");
  tool.ok({"set-dir", cache});
  tool.ok({"set", "resnet18", "/data/w/resnet18"});
  std::string out = tool.ok({"path", "resnet18", "--explain"});
  CHECK(out.find("path:      /data/w/resnet18 (does not exist)") != std::string::npos);
  CHECK(out.find("source:    model-specific entry") != std::string::npos);
  CHECK(out.find("shadows:   " + cache + "/resnet18 (<cache dir>/<name>, exists)") !=
        std::string::npos);
  CHECK(out.find("cache dir: " + cache + " (registry setting)") != std::string::npos);
}

TEST_CASE("path --explain names the cache-dir layer that answered and the layers it shadows",
          "[path][explain][conformance]") {
  Tool tool;
  std::string tfimm_home = tool.make_dir("tfimm-home");
  std::string xdg = tool.make_dir("xdg");
  tool.make_dir("tfimm-home/vit");
  tool.env().set("TFIMM_HOME", tfimm_home);
  tool.env().set("XDG_CACHE_HOME", xdg);

  SECTION("$TFIMM_HOME over $XDG_CACHE_HOME and the default") {
    std::string out = tool.ok({"path", "vit", "--explain"});
    CHECK(out.find("path:      " + tfimm_home + "/vit (exists)") != std::string::npos);
    CHECK(out.find("source:    cache directory ($TFIMM_HOME)") != std::string::npos);
    CHECK(out.find("shadows: " + xdg + "/tfimm ($XDG_CACHE_HOME)") != std::string::npos);
    CHECK(out.find("shadows: " + tool.home() + "/.cache/tfimm (default)") != std::string::npos);
  }
  SECTION("--cache-dir is a process override above everything") {
    std::string override_dir = tool.make_dir("override");
    tool.make_dir("override/vit");
    std::string out = tool.ok({"--cache-dir", override_dir, "path", "vit", "--explain"});
    CHECK(out.find("path:      " + override_dir + "/vit") != std::string::npos);
    CHECK(out.find("(process override)") != std::string::npos);
    CHECK(out.find("shadows: " + tfimm_home + " ($TFIMM_HOME)") != std::string::npos);
  }
}

TEST_CASE("path --explain of a model that is not cached says why and exits 1",
          "[path][explain][conformance]") {
  Tool tool;
  auto r = tool.run({"path", "resnet18", "--explain"});
  CHECK(r.exit_code == 1);
  CHECK(r.out.find("resnet18 is not cached") != std::string::npos);
  CHECK(r.out.find(tool.home() + "/.cache/tfimm/resnet18 does not exist") != std::string::npos);
}

TEST_CASE(
    "path and path --explain say that a path could not be checked rather than that it does not "
    "exist (skipped without FUSE)",
    "[path][explain][fuse]") {
  Tool tool;
  tfimm::test::DisagreeingMount::Options options;
  options.exists = {"models/resnet18", "cache"};
  options.fail = {{"models/broken", "EIO"}, {"cache/vit", "EACCES"}, {"cache/broken", "ESTALE"}};
  tfimm::test::DisagreeingMount share(tool.path("share"), options);
  if (!share.usable()) return;
  tool.ok({"set-dir", share / "cache"});
  tool.ok({"set", "broken", share / "models/broken"});

  // An entry whose path answers with an I/O error, shadowing a fallback that
  // answers with a stale handle.
  auto out = tool.ok({"path", "broken", "--explain"});
  CHECK(out.find("path:      " + share / "models/broken" +
                 " (could not check: error, Input/output error)\n") != std::string::npos);
  CHECK(out.find("shadows:   " + share / "cache/broken" +
                 " (<cache dir>/<name>, could not check: error, Stale file handle)\n") !=
        std::string::npos);
  CHECK(out.find("does not exist") == std::string::npos);

  // No entry, and <cache dir>/vit cannot be reached: not cached, but not
  // "does not exist" either.
  auto r = tool.run({"path", "vit"});
  CHECK(r.exit_code == 1);
  CHECK(r.out.empty());
  CHECK(r.err == "tfimm-cache: note: could not check " + share / "cache/vit" +
                     " (not_accessible, Permission denied); `tfimm-cache path vit --explain` "
                     "shows where the model was looked for\n");
  auto explained = tool.run({"path", "vit", "--explain"});
  CHECK(explained.exit_code == 1);
  CHECK(explained.out.find("source:    none: no model-specific entry, and " + share / "cache/vit" +
                           " could not be checked (not_accessible, Permission denied)\n") !=
        std::string::npos);

  // A model truly absent from the same directory still does not exist.
  auto absent = tool.run({"path", "mobilenet", "--explain"});
  CHECK(absent.exit_code == 1);
  CHECK(absent.out.find(share / "cache/mobilenet" + " does not exist\n") != std::string::npos);
  CHECK(tool.run({"path", "mobilenet"}).err.empty());
}
