// tfimm-cache set / clear
#include <catch2/catch.hpp>

#include "tool_test.hpp"

using tfimm::tooltest::lines;
using tfimm::tooltest::require_error;
using tfimm::tooltest::Tool;

TEST_CASE("set stores the normalised absolute path and prints it", "[set]") {
  Tool tool;
  std::string out = tool.ok({"set", "resnet18", "~/models/./x/../resnet18//"});
  std::string stored = tool.home() + "/models/resnet18";
  CHECK(out == "registered resnet18: " + stored + "\n");
  CHECK(tool.ok({"path", "resnet18"}) == stored + "\n");
  CHECK(tfimm::test::exists(tool.registry()));  // the first write creates the file
}

TEST_CASE("set of a path that does not exist yet works and says so on stderr",
          "[set][conformance]") {
  Tool tool;
  auto r = tool.run({"set", "vit", tool.path("not/yet")});
  CHECK(r.exit_code == 0);
  CHECK(r.err.find("does not exist yet") != std::string::npos);
  CHECK(tool.ok({"path", "vit"}) == tool.path("not/yet") + "\n");
}

TEST_CASE("set replaces the previous path of the same name", "[set][conformance]") {
  Tool tool;
  tool.ok({"set", "resnet18", "/old/place"});
  tool.ok({"set", "resnet18", "/new/place"});
  CHECK(tool.ok({"path", "resnet18"}) == "/new/place\n");
  CHECK(lines(tool.ok({"list"})).size() == 2);  // header and one entry
}

TEST_CASE("set with an invalid name or path exits 2 and changes nothing",
          "[set][errors][conformance]") {
  Tool tool;
  tool.ok({"set", "resnet18", "/data/resnet18"});
  std::string before = tool.snapshot();

  SECTION("a slash") { require_error(tool.run({"set", "a/b", "/x"}), 2); }
  SECTION("dot dot") { require_error(tool.run({"set", "..", "/x"}), 2); }
  SECTION("empty name") { require_error(tool.run({"set", "", "/x"}), 2); }
  SECTION("leading space") { require_error(tool.run({"set", " x", "/x"}), 2); }
  SECTION("control character") { require_error(tool.run({"set", "a\tb", "/x"}), 2); }
  SECTION("empty path") { require_error(tool.run({"set", "vit", ""}), 2); }
  SECTION("the message quotes the refused value") {
    auto r = tool.run({"set", "a/b", "/x"});
    CHECK(r.err.find("a/b") != std::string::npos);
  }
  CHECK(tool.snapshot() == before);
}

TEST_CASE("clear forgets the entries and never deletes their files", "[clear][conformance]") {
  Tool tool;
  std::string dir = tool.make_dir("w/resnet18");
  tfimm::test::write_file(dir + "/weights.h5", "weights");
  tool.ok({"set", "resnet18", dir});
  tool.ok({"set", "vit", "/data/vit"});
  tool.ok({"set", "keep", "/data/keep"});

  std::string out = tool.ok({"clear", "resnet18", "vit"});
  CHECK(out == "forgot resnet18\nforgot vit\n");
  CHECK(tool.run({"path", "resnet18"}).exit_code == 1);
  CHECK(tool.run({"path", "vit"}).exit_code == 1);
  CHECK(tool.ok({"path", "keep"}) == "/data/keep\n");
  CHECK(tfimm::test::read_file(dir + "/weights.h5") == "weights");
}

TEST_CASE("clear of a name without an entry is not an error", "[clear][conformance]") {
  Tool tool;
  auto r = tool.run({"clear", "never-set"});
  CHECK(r.exit_code == 0);
  CHECK(r.out == "never-set: no entry, nothing to forget\n");
}

TEST_CASE("clear with one invalid name among valid ones changes nothing",
          "[clear][errors][conformance]") {
  Tool tool;
  tool.ok({"set", "resnet18", "/data/resnet18"});
  tool.ok({"set", "vit", "/data/vit"});
  std::string before = tool.snapshot();
  auto r = tool.run({"clear", "resnet18", "../etc", "vit"});
  require_error(r, 2);
  CHECK(r.err.find("../etc") != std::string::npos);
  CHECK(tool.snapshot() == before);
}
