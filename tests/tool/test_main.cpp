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
    "prune", "lock", "unlock", "history", "export", "import", "migrate", "doctor",    "du"};

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

TEST_CASE("a parse error names the subcommand's help", "[cli][conformance]") {
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
          "[cli][dir][conformance]") {
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

TEST_CASE("output in a pipe carries no colour or terminal control", "[cli][colour][conformance]") {
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
                                        {"prune", "--dry-run"},
                                        {"du"},
                                        {"du", "--json"}}) {
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

TEST_CASE("a mistyped subcommand is named with the nearest command", "[cli][messages]") {
  Tool tool;
  SECTION("one letter swapped") {
    auto r = tool.run({"lsit"});
    require_error(r, 2);
    CHECK(r.err.find("unknown command 'lsit'; did you mean 'list'?") != std::string::npos);
  }
  SECTION("after a global option with a value") {
    auto r = tool.run_bare({"--busy-timeout", "10", "histroy"});
    require_error(r, 2);
    CHECK(r.err.find("unknown command 'histroy'; did you mean 'history'?") != std::string::npos);
  }
  SECTION("nothing near: no guess") {
    auto r = tool.run({"frobnicate"});
    require_error(r, 2);
    CHECK(r.err.find("unknown command 'frobnicate'") != std::string::npos);
    CHECK(r.err.find("did you mean") == std::string::npos);
  }
}

TEST_CASE("an unknown option is named, with `--` offered when it may be a model name",
          "[cli][messages]") {
  Tool tool;
  tool.ok({"set", "resnet18", "/data/resnet18"});
  const std::string before = tool.snapshot();
  SECTION("a name that begins with '-'") {
    auto r = tool.run_bare({"set", "-resnet", "/x"});
    require_error(r, 2);
    CHECK(r.err.find("unknown option '-resnet' for `tfimm-cache set`") != std::string::npos);
    CHECK(r.err.find("put -- before it: tfimm-cache set -- -resnet /x") != std::string::npos);
    CHECK(r.err.find("is required") == std::string::npos);
  }
  SECTION("a mistyped option") {
    auto r = tool.run({"list", "--jsno"});
    require_error(r, 2);
    CHECK(r.err.find("unknown option '--jsno' for `tfimm-cache list`") != std::string::npos);
  }
  SECTION("`--` lets a name begin with '-'") {
    auto r = tool.run({"set", "--", "-resnet", "/x"});
    CHECK(r.exit_code == 0);
    tool.ok({"clear", "--", "-resnet"});
  }
  CHECK(tool.snapshot() == before);
}

TEST_CASE("a global option after the subcommand says where it goes, with the corrected line",
          "[cli][messages]") {
  Tool tool;
  auto r = tool.run_bare({"list", "--registry", "x.db", "--json"});
  require_error(r, 2);
  CHECK(r.err.find("the global option --registry goes before the subcommand: "
                   "tfimm-cache --registry x.db list --json") != std::string::npos);
  auto eq = tool.run_bare({"--busy-timeout", "5", "list", "--cache-dir=/a b"});
  require_error(eq, 2);
  CHECK(eq.err.find("tfimm-cache --busy-timeout 5 '--cache-dir=/a b' list") != std::string::npos);
}

TEST_CASE("control characters and invalid UTF-8 look the same in messages as in list",
          "[cli][messages][conformance]") {
  Tool tool;
  tool.ok({"set", "odd",
           "/data/a\nb\xff"
           "c"});
  const std::string listed = tool.ok({"list"});
  CHECK(listed.find("/data/a\\nb\\xFFc") != std::string::npos);
  auto r = tool.run({"clear", "bad\xff\x01"});
  require_error(r, 2);
  CHECK(r.err.find("invalid model name \"bad\\xFF\\x01\"") != std::string::npos);
  auto c1 = tool.run({"clear",
                      "esc\xc2\x9b"
                      "31m"});
  require_error(c1, 2);
  CHECK(c1.err.find("\"esc\\xC2\\x9B31m\"") != std::string::npos);
}

TEST_CASE("a missing argument or option value says what is missing and shows the usage",
          "[cli][messages]") {
  Tool tool;
  SECTION("an argument") {
    auto r = tool.run({"set", "resnet18"});
    require_error(r, 2);
    CHECK(r.err.find("missing argument PATH; usage: tfimm-cache set NAME PATH") !=
          std::string::npos);
  }
  SECTION("an extra argument") {
    auto r = tool.run({"set", "a", "/a", "/b"});
    require_error(r, 2);
    CHECK(r.err.find("unexpected argument '/b'; usage: tfimm-cache set NAME PATH") !=
          std::string::npos);
  }
  SECTION("an option's value") {
    auto r = tool.run_bare({"--registry"});
    require_error(r, 2);
    CHECK(r.err.find("option --registry needs a value: --registry FILE") != std::string::npos);
  }
  SECTION("no command") {
    auto r = tool.run({});
    require_error(r, 2);
    CHECK(r.err.find("a command is required") != std::string::npos);
  }
}

TEST_CASE("a bad global option value names the value and the program's help", "[cli][messages]") {
  Tool tool;
  for (const char* value : {"-5", "abc", "1.5"}) {
    INFO(value);
    auto r = tool.run_bare({"--busy-timeout", value, "list"});
    require_error(r, 2);
    CHECK(r.err.find(std::string("--busy-timeout: expected a whole number (0 or more), got '") +
                     value + "'") != std::string::npos);
    CHECK(r.err.find("(see `tfimm-cache --help`)") != std::string::npos);
  }
  auto r = tool.run_bare({"--busy-timeout", "99999999999", "list"});
  require_error(r, 2);
  CHECK(r.err.find("(see `tfimm-cache --help`)") != std::string::npos);
}
