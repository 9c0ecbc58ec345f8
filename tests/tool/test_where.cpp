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

TEST_CASE("where ignores a relative $XDG_STATE_HOME or $HOME with one note each", "[where][env]") {
  Tool tool;
  SECTION("XDG_STATE_HOME") {
    auto r = tool.run_bare({"where"}, {}, {{"XDG_STATE_HOME", "state"}});
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("registry: " + tool.home() + "/.local/state/tfimm/registry.db\n") !=
          std::string::npos);
    CHECK(r.err ==
          "tfimm-cache: note: ignored $XDG_STATE_HOME=state: not an absolute path, so it would "
          "mean a different directory in every working directory; set it to an absolute path "
          "or unset it\n");
  }
  SECTION("HOME") {
    auto r = tool.run_bare({"where"}, {}, {{"HOME", "relhome"}});
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("registry: /") != std::string::npos);
    CHECK(r.out.find("relhome") == std::string::npos);
    CHECK(tfimm::tooltest::lines(r.err).size() == 1);
    CHECK(r.err.find("note: ignored $HOME=relhome") != std::string::npos);
  }
}

TEST_CASE("a relative or unexpandable $TFIMM_REGISTRY is refused with exit 2 naming it",
          "[where][env]") {
  Tool tool;
  for (const char* value : {"registry.db", "./state/r.db", "~nosuchuser/r.db"}) {
    INFO(value);
    for (const char* command : {"where", "list", "set"}) {
      std::vector<std::string> args{command};
      if (std::string(command) == "set") args = {"set", "resnet18", "/data/resnet18"};
      auto r = tool.run_bare(args, {}, {{"TFIMM_REGISTRY", value}});
      tfimm::tooltest::require_error(r, 2);
      CHECK(r.err.find("$TFIMM_REGISTRY") != std::string::npos);
    }
  }
  CHECK_FALSE(tfimm::test::exists(tool.home() + "/.local"));
}
