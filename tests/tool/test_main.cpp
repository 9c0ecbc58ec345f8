// The program as a whole: --version, --help, global options, exit codes,
// one-line errors, and no decoration in pipes.
#include <catch2/catch.hpp>
#include <regex>

#include "rawdb.hpp"
#include "tool_test.hpp"

using tfimm::tooltest::has_escape;
using tfimm::tooltest::lines;
using tfimm::tooltest::require_error;
using tfimm::tooltest::run_in_terminal;
using tfimm::tooltest::Tool;

namespace {

const std::vector<std::string> kCommands = {
    "where", "set",  "clear",  "list",    "path",   "dir",    "set-dir", "unset-dir", "audit",
    "prune", "lock", "unlock", "history", "export", "import", "migrate", "doctor"};

}  // namespace

TEST_CASE("the --version option prints the tool version and the registry schema and exits 0",
          "[cli]") {
  Tool tool;
  auto r = tool.run_bare({"--version"});
  CHECK(r.exit_code == 0);
  CHECK(r.err.empty());
  CHECK(std::regex_match(r.out,
                         std::regex(R"(tfimm-cache \d+\.\d+\.\d+ \(registry schema \d+\)\n)")));
  CHECK_FALSE(tfimm::test::exists(tool.registry()));
}

TEST_CASE("the program's --help documents exit codes and an example, and exits 0", "[cli]") {
  Tool tool;
  auto r = tool.run_bare({"--help"});
  CHECK(r.exit_code == 0);
  CHECK(r.err.empty());
  CHECK(r.out.find("Exit codes:") != std::string::npos);
  CHECK(r.out.find("  3  the registry cannot be used") != std::string::npos);
  CHECK(r.out.find("Example:") != std::string::npos);
  for (const auto& command : kCommands) {
    CHECK(r.out.find("  " + command + " ") != std::string::npos);
  }
}

TEST_CASE("every subcommand's --help shows its usage and an example and exits 0", "[cli]") {
  Tool tool;
  for (const auto& command : kCommands) {
    INFO(command);
    auto r = tool.run_bare({command, "--help"});
    CHECK(r.exit_code == 0);
    CHECK(r.err.empty());
    CHECK(r.out.find("Usage: tfimm-cache " + command) != std::string::npos);
    CHECK(r.out.find("Example:\n  tfimm-cache") != std::string::npos);
  }
  CHECK_FALSE(tfimm::test::exists(tool.registry()));
}

TEST_CASE("bad usage exits 2 with one error line and changes nothing", "[cli]") {
  Tool tool;
  tool.ok({"set", "resnet18", "/data/resnet18"});
  std::string before = tool.snapshot();

  SECTION("no subcommand") { require_error(tool.run({}), 2); }
  SECTION("an unknown subcommand") { require_error(tool.run({"frobnicate"}), 2); }
  SECTION("an unknown option") { require_error(tool.run({"list", "--bogus"}), 2); }
  SECTION("a missing argument") { require_error(tool.run({"set", "resnet18"}), 2); }
  SECTION("an extra argument") { require_error(tool.run({"set", "a", "/a", "/b"}), 2); }
  SECTION("a negative busy timeout") {
    require_error(tool.run_bare({"--busy-timeout", "-5", "list"}), 2);
  }
  SECTION("a global option after the subcommand") {
    require_error(tool.run_bare({"list", "--registry", tool.registry()}), 2);
  }
  CHECK(tool.snapshot() == before);
}

TEST_CASE("a parse error names the subcommand's help", "[cli]") {
  Tool tool;
  auto r = tool.run({"set", "resnet18"});
  require_error(r, 2);
  CHECK(r.err.find("tfimm-cache set --help") != std::string::npos);
}

TEST_CASE("a file that is not a registry exits 3 and is left byte for byte", "[cli][errors]") {
  Tool tool;
  tfimm::test::make_dirs(tool.path("state"));
  const std::string junk = "these are somebody's notes, not a database\n";
  tfimm::test::write_file(tool.registry(), junk);

  SECTION("read") { require_error(tool.run({"list"}), 3); }
  SECTION("write") { require_error(tool.run({"set", "resnet18", "/data/resnet18"}), 3); }
  SECTION("the message names the file") {
    auto r = tool.run({"list"});
    CHECK(r.err.find(tool.registry()) != std::string::npos);
  }
  CHECK(tfimm::test::read_file(tool.registry()) == junk);
}

TEST_CASE("a registry written by a newer version exits 3 and is not modified", "[cli][errors]") {
  Tool tool;
  tool.ok({"set", "resnet18", "/data/resnet18"});
  {
    tfimm::test::RawDb db(tool.registry());
    db.exec("PRAGMA user_version = 99");
  }
  std::string before = tfimm::test::read_file(tool.registry());
  auto r = tool.run({"set", "vit", "/data/vit"});
  require_error(r, 3);
  CHECK(r.err.find("99") != std::string::npos);
  CHECK(tfimm::test::read_file(tool.registry()) == before);
}

TEST_CASE("the --cache-dir option overrides the cache directory for one run and stores nothing",
          "[cli][dir]") {
  Tool tool;
  std::string override_dir = tool.make_dir("override");
  CHECK(tool.ok({"--cache-dir", override_dir, "dir"}) == override_dir + "\n");
  CHECK(tool.ok({"--cache-dir", override_dir, "dir", "--show-origin"}).find("process override") !=
        std::string::npos);
  CHECK(tool.ok({"dir"}) == tool.home() + "/.cache/tfimm\n");

  SECTION("an empty --cache-dir is refused") {
    require_error(tool.run({"--cache-dir", "", "dir"}), 2);
  }
}

TEST_CASE("output in a pipe carries no colour or terminal control", "[cli][colour]") {
  Tool tool;
  tool.ok({"set", "here", tool.make_dir("w/here")});
  tool.ok({"set", "gone", tool.path("w/gone")});
  tool.ok({"lock", "gone", "--reason", "usb disk"});
  for (std::vector<std::string> args : {std::vector<std::string>{"list"},
                                        {"list", "--json"},
                                        {"audit"},
                                        {"audit", "--json"},
                                        {"dir", "--show-origin"},
                                        {"doctor"},
                                        {"history"},
                                        {"prune", "--dry-run"}}) {
    INFO(Catch::Detail::stringify(args));
    auto r = tool.run(args);
    CHECK(r.exit_code <= 1);
    CHECK_FALSE(has_escape(r.out));
    CHECK_FALSE(has_escape(r.err));  // no progress bar either
  }
}

TEST_CASE("at a terminal, tables are coloured unless NO_COLOR is set", "[cli][colour]") {
  Tool tool;
  tool.ok({"set", "gone", tool.path("w/gone")});
  std::vector<std::string> argv{TFIMM_TOOL, "--registry", tool.registry(), "list"};

  SECTION("colour by default") {
    std::string out = run_in_terminal(argv, {{"TERM", "xterm"}});
    CHECK(out.find("gone") != std::string::npos);
    CHECK(has_escape(out));
  }
  SECTION("NO_COLOR turns it off") {
    std::string out = run_in_terminal(argv, {{"TERM", "xterm"}, {"NO_COLOR", "1"}});
    CHECK(out.find("gone") != std::string::npos);
    CHECK_FALSE(has_escape(out));
  }
  SECTION("JSON is never coloured") {
    argv.push_back("--json");
    std::string out = run_in_terminal(argv, {{"TERM", "xterm"}});
    CHECK(out.find("\"gone\"") != std::string::npos);
    CHECK_FALSE(has_escape(out));
  }
}

TEST_CASE("a registry held locked longer than --busy-timeout exits 3 and changes nothing",
          "[cli][errors]") {
  Tool tool;
  tool.ok({"set", "resnet18", "/data/resnet18"});
  std::string before = tool.snapshot();
  {
    tfimm::test::RawDb holder(tool.registry());
    holder.exec("BEGIN IMMEDIATE");  // another process's write lock
    auto r = tool.run({"--busy-timeout", "200", "set", "vit", "/data/vit"});
    require_error(r, 3);
    holder.exec("ROLLBACK");
  }
  CHECK(tool.snapshot() == before);
}
