// tfimm-cache doctor
#include <catch2/catch.hpp>

#include "tool_test.hpp"

using tfimm::tooltest::Tool;

TEST_CASE("doctor on a healthy registry reports its facts and exits 0", "[doctor]") {
  Tool tool;
  tool.make_dir("home/.cache/tfimm");
  tool.ok({"set", "resnet18", "/data/resnet18"});
  auto r = tool.run({"doctor"}, {}, {{"TFIMM_NETWORK_FS", "0"}});
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("registry:    " + tool.registry()) != std::string::npos);
  CHECK(r.out.find("integrity:   ok") != std::string::npos);
  CHECK(r.out.find("journal:     wal") != std::string::npos);
  CHECK(r.out.find("entries:     1") != std::string::npos);
  CHECK(r.out.find("(default): ok") != std::string::npos);
  CHECK(r.out.find("warning:") == std::string::npos);
  CHECK(r.out.find("no problems found") != std::string::npos);
}

TEST_CASE("doctor reports warnings and exits 1", "[doctor]") {
  Tool tool;
  tool.make_dir("home/.cache/tfimm");
  tool.ok({"set", "resnet18", "/data/resnet18"});
  SECTION("the registry on a network file system") {
    auto r = tool.run({"doctor"}, {}, {{"TFIMM_NETWORK_FS", "1"}});
    CHECK(r.exit_code == 1);
    CHECK(r.out.find("(network)") != std::string::npos);
    CHECK(r.out.find("warning:") != std::string::npos);
    CHECK(r.out.find("problems found") != std::string::npos);
  }
}

TEST_CASE("doctor of a registry that does not exist yet creates nothing", "[doctor]") {
  Tool tool;
  auto r = tool.run({"doctor"});
  CHECK(r.exit_code <= 1);
  CHECK(r.out.find("exists:      no") != std::string::npos);
  CHECK_FALSE(tfimm::test::exists(tool.registry()));
}
