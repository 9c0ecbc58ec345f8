// tfimm-cache dir / set-dir / unset-dir
#include <catch2/catch.hpp>

#include "tool_test.hpp"

using tfimm::tooltest::lines;
using tfimm::tooltest::require_error;
using tfimm::tooltest::Tool;

TEST_CASE("dir is ~/.cache/tfimm when nothing else is set", "[dir][conformance]") {
  Tool tool;
  CHECK(tool.ok({"dir"}) == tool.home() + "/.cache/tfimm\n");
}

TEST_CASE("set-dir stores the directory for every later run and unset-dir removes it",
          "[dir][conformance]") {
  Tool tool;
  tool.env().set("TFIMM_HOME", tool.path("tfimm-home"));
  std::string out = tool.ok({"set-dir", "~/cache/../shared"});
  CHECK(out.find("stored cache directory: " + tool.home() + "/shared\n") != std::string::npos);
  CHECK(tool.ok({"dir"}) == tool.home() + "/shared\n");

  out = tool.ok({"unset-dir"});
  CHECK(out.find("removed stored cache directory " + tool.home() + "/shared") != std::string::npos);
  CHECK(out.find("now " + tool.path("tfimm-home") + " ($TFIMM_HOME)") != std::string::npos);
  CHECK(tool.ok({"dir"}) == tool.path("tfimm-home") + "\n");
}

TEST_CASE("unset-dir with nothing stored is not an error", "[dir][conformance]") {
  Tool tool;
  CHECK(tool.ok({"unset-dir"}).find("no cache directory was stored") != std::string::npos);
}

TEST_CASE("set-dir with an empty path exits 2 and changes nothing", "[dir][errors][conformance]") {
  Tool tool;
  tool.ok({"set-dir", "/data/cache"});
  std::string before = tool.snapshot();
  require_error(tool.run({"set-dir", ""}), 2);
  CHECK(tool.snapshot() == before);
}

TEST_CASE("dir --show-origin lists every layer in precedence order and marks the one in use",
          "[dir][conformance]") {
  Tool tool;
  tool.env().set("XDG_CACHE_HOME", tool.path("xdg"));
  tool.ok({"set-dir", "/data/cache"});
  auto table = lines(tool.ok({"dir", "--show-origin"}));
  REQUIRE(table.size() == 6);
  CHECK(table[1].find("process override") != std::string::npos);
  CHECK(table[2].find("registry setting") != std::string::npos);
  CHECK(table[2].rfind("*", 0) == 0);
  CHECK(table[2].find("/data/cache") != std::string::npos);
  CHECK(table[3].find("$TFIMM_HOME") != std::string::npos);
  CHECK(table[4].find(tool.path("xdg") + "/tfimm") != std::string::npos);
  CHECK(table[5].find(tool.home() + "/.cache/tfimm") != std::string::npos);
  for (int i : {1, 3, 4, 5}) CHECK(table[static_cast<std::size_t>(i)].rfind("*", 0) != 0);
}

TEST_CASE("dir ignores a relative $XDG_CACHE_HOME with a note and refuses a relative $TFIMM_HOME",
          "[dir][env][conformance]") {
  Tool tool;
  SECTION("XDG_CACHE_HOME") {
    auto r = tool.run({"dir"}, {}, {{"XDG_CACHE_HOME", "cache"}});
    CHECK(r.exit_code == 0);
    CHECK(r.out == tool.home() + "/.cache/tfimm\n");
    CHECK(r.err.rfind("tfimm-cache: note: ignored $XDG_CACHE_HOME=cache: not an absolute path",
                      0) == 0);
    CHECK(tfimm::tooltest::lines(r.err).size() == 1);
  }
  SECTION("TFIMM_HOME") {
    auto r = tool.run({"dir"}, {}, {{"TFIMM_HOME", "models"}});
    tfimm::tooltest::require_error(r, 2);
    CHECK(r.err.find("$TFIMM_HOME is \"models\", a relative path") != std::string::npos);
    CHECK(r.err.find("set $TFIMM_HOME to an absolute path") != std::string::npos);
  }
}
