// tfimm-cache lock / unlock
#include <catch2/catch.hpp>

#include "tool_test.hpp"

using tfimm::tooltest::require_error;
using tfimm::tooltest::Tool;

TEST_CASE("lock marks an entry locked with its reason and unlock clears it",
          "[lock][conformance]") {
  Tool tool;
  tool.ok({"set", "resnet18", "/data/resnet18"});
  CHECK(tool.ok({"lock", "resnet18", "--reason", "on the USB disk"}) ==
        "locked resnet18 (on the USB disk)\n");
  auto entry = tool.json({"list", "--json"})[0];
  CHECK(entry["locked"] == true);
  CHECK(entry["lock_reason"] == "on the USB disk");

  CHECK(tool.ok({"unlock", "resnet18"}) == "unlocked resnet18\n");
  CHECK(tool.json({"list", "--json"})[0]["locked"] == false);
  CHECK(tool.ok({"unlock", "resnet18"}) == "resnet18 was not locked\n");
}

TEST_CASE("lock without a reason works", "[lock][conformance]") {
  Tool tool;
  tool.ok({"set", "resnet18", "/data/resnet18"});
  CHECK(tool.ok({"lock", "resnet18"}) == "locked resnet18\n");
  CHECK(tool.json({"list", "--json"})[0]["locked"] == true);
}

TEST_CASE("lock and unlock of a model without an entry exit 2 and change nothing",
          "[lock][errors][conformance]") {
  Tool tool;
  tool.ok({"set", "resnet18", "/data/resnet18"});
  std::string before = tool.snapshot();
  auto r = tool.run({"lock", "vit"});
  require_error(r, 2);
  CHECK(r.err.find("vit") != std::string::npos);
  require_error(tool.run({"unlock", "vit"}), 2);
  require_error(tool.run({"lock", "a/b"}), 2);
  CHECK(tool.snapshot() == before);
}
