// tfimm-cache where
#include <catch2/catch.hpp>

#include "tool_test.hpp"

using tfimm::tooltest::Tool;

TEST_CASE("where names the registry file, why it was chosen, and whether it exists", "[where]") {
  Tool tool;
  std::string out = tool.ok({"where"});
  CHECK(out.find("registry: " + tool.registry() + "\n") != std::string::npos);
  CHECK(out.find("--registry") != std::string::npos);
  CHECK(out.find("exists:   no") != std::string::npos);
  CHECK_FALSE(tfimm::test::exists(tool.registry()));  // where creates nothing

  tool.ok({"set", "resnet18", "/data/resnet18"});
  CHECK(tool.ok({"where"}).find("exists:   yes") != std::string::npos);
}

TEST_CASE("where: --registry wins over $TFIMM_REGISTRY, which wins over the default", "[where]") {
  Tool tool;
  const std::string from_env = tool.path("env/registry.db");
  const std::string from_flag = tool.path("flag/registry.db");

  SECTION("the default under ~/.local/state") {
    std::string out = tool.run_bare({"where"}).out;
    CHECK(out.find("registry: " + tool.home() + "/.local/state/tfimm/registry.db\n") !=
          std::string::npos);
    CHECK(out.find("default") != std::string::npos);
  }
  SECTION("$XDG_STATE_HOME over the default") {
    auto r = tool.run_bare({"where"}, {}, {{"XDG_STATE_HOME", tool.path("xdg")}});
    CHECK(r.out.find("registry: " + tool.path("xdg") + "/tfimm/registry.db\n") !=
          std::string::npos);
    CHECK(r.out.find("$XDG_STATE_HOME") != std::string::npos);
  }
  SECTION("$TFIMM_REGISTRY over the default") {
    auto r = tool.run_bare({"where"}, {}, {{"TFIMM_REGISTRY", from_env}});
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("registry: " + from_env + "\n") != std::string::npos);
    CHECK(r.out.find("$TFIMM_REGISTRY") != std::string::npos);
  }
  SECTION("--registry over $TFIMM_REGISTRY, which it shadows") {
    auto r = tool.run_bare({"--registry", from_flag, "where"}, {}, {{"TFIMM_REGISTRY", from_env}});
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("registry: " + from_flag + "\n") != std::string::npos);
    CHECK(r.out.find("--registry") != std::string::npos);
    CHECK(r.out.find("shadows:  $TFIMM_REGISTRY") != std::string::npos);
    CHECK(r.out.find(from_env) != std::string::npos);
  }
  SECTION("a relative --registry is made absolute") {
    auto r = tool.run_bare({"--registry", "rel/../r.db", "where"});
    CHECK(r.exit_code == 0);
    CHECK(r.out.rfind("registry: /", 0) == 0);
    CHECK(r.out.find("/r.db\n") != std::string::npos);
    CHECK(r.out.find("..") == std::string::npos);
  }
}
