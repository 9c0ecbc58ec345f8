// What the tool does with registry files it cannot use as usual: a path that
// is not a regular file, a registry on a read-only file system, a registry
// that does not exist yet.
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "tool_test.hpp"

using tfimm::tooltest::Env;
using tfimm::tooltest::Tool;
namespace t = tfimm::test;

namespace {

// `tfimm-cache ARGS...` under `timeout`, so that a hang fails instead of
// stopping the suite (timeout exits 124).
t::ProcessResult run_bounded(const std::vector<std::string>& args) {
  std::vector<std::string> argv{"timeout", "10", TFIMM_TOOL};
  argv.insert(argv.end(), args.begin(), args.end());
  return t::run_process(argv);
}

// Runs `script` with sh in a private mount namespace, where `$1` is the
// tool and `$2` a directory to bind read-only onto `$3`. Exit 77: this
// machine does not allow it.
t::ProcessResult in_read_only_mount(const std::string& script, const std::string& source,
                                    const std::string& target) {
  const std::string setup =
      "mount --bind \"$2\" \"$3\" 2>/dev/null && mount -o remount,bind,ro \"$3\" 2>/dev/null || "
      "exit 77\n";
  return t::run_process({"unshare", "--mount", "--propagation", "private", "sh", "-c",
                         setup + script, "sh", TFIMM_TOOL, source, target});
}

std::vector<std::string> files_in(const std::string& dir) {
  auto r = t::run_process({"ls", "-A", dir});
  std::vector<std::string> names;
  std::string line;
  for (char c : r.out) {
    if (c == '\n') {
      names.push_back(line);
      line.clear();
    } else {
      line += c;
    }
  }
  return names;
}

}  // namespace

TEST_CASE("every command refuses a registry path that is a FIFO at once with exit 3",
          "[registry-file]") {
  Tool tool;
  const std::string fifo = tool.path("registry.fifo");
  REQUIRE(::mkfifo(fifo.c_str(), 0644) == 0);
  for (const auto& command :
       std::vector<std::vector<std::string>>{{"list"},
                                             {"path", "resnet18"},
                                             {"set", "resnet18", "/data/resnet18"},
                                             {"export"},
                                             {"audit"},
                                             {"migrate", "--status"}}) {
    std::vector<std::string> args{"--registry", fifo};
    args.insert(args.end(), command.begin(), command.end());
    const auto r = run_bounded(args);
    INFO(command.front() << ": " << r.err);
    CHECK(r.exit_code == 3);
    CHECK(r.err.find("is a FIFO (named pipe), not a registry file") != std::string::npos);
  }
  const auto doctor = run_bounded({"--registry", fifo, "doctor"});
  INFO(doctor.out << doctor.err);
  CHECK(doctor.exit_code == 1);
  CHECK(doctor.out.find("usable:      no") != std::string::npos);
  CHECK(doctor.out.find("FIFO") != std::string::npos);
  struct stat st {};
  REQUIRE(::stat(fifo.c_str(), &st) == 0);
  CHECK(S_ISFIFO(st.st_mode));
  for (const auto& name : files_in(tool.path(""))) {
    CHECK((name.rfind("registry.fifo", 0) != 0 || name == "registry.fifo"));
  }
}

TEST_CASE("a registry on a read-only file system answers reads; writes name the file system",
          "[registry-file][read-only]") {
  Tool tool;
  tool.make_dir("models/resnet18");
  tool.ok({"set", "resnet18", tool.path("models/resnet18")});
  tool.ok({"set", "vit", tool.path("models/vit")});
  tool.ok({"lock", "vit", "--reason", "keep"});
  tool.ok({"set-dir", tool.path("cache")});
  const std::string exported = tool.snapshot();
  // The test's directory, bound read-only onto a directory inside it.
  const std::string source = tool.path("");
  const std::string mount = tool.make_dir("ro");
  const auto r = in_read_only_mount(
      "R=\"$3/state/registry.db\"\n"
      "echo '# list'; \"$1\" --registry \"$R\" list; echo \"exit $?\"\n"
      "echo '# path'; \"$1\" --registry \"$R\" path resnet18; echo \"exit $?\"\n"
      "echo '# export'; \"$1\" --registry \"$R\" export; echo \"exit $?\"\n"
      "echo '# dir'; \"$1\" --registry \"$R\" dir; echo \"exit $?\"\n"
      "echo '# history'; \"$1\" --registry \"$R\" history --limit 1; echo \"exit $?\"\n"
      "echo '# doctor'; \"$1\" --registry \"$R\" doctor; echo \"exit $?\"\n"
      "echo '# set'; \"$1\" --registry \"$R\" set x /x 2>&1; echo \"exit $?\"\n"
      "echo '# clear'; \"$1\" --registry \"$R\" clear resnet18 2>&1; echo \"exit $?\"\n"
      "echo '# no-ops'; \"$1\" --registry \"$R\" clear nosuch 2>&1; echo \"exit $?\"; "
      "\"$1\" --registry \"$R\" unlock resnet18 2>&1; echo \"exit $?\"; "
      "\"$1\" --registry \"$R\" export > \"$2/same.json\" 2>&1 || true; "
      "\"$1\" --registry \"$R\" import \"$2/same.json\" 2>&1; echo \"exit $?\"\n"
      "echo '# unknown'; \"$1\" --registry \"$R\" lock nosuch 2>&1; echo \"exit $?\"\n"
      "echo '# after'; ls -A \"$3/state\"\n",
      source, mount);
  if (r.exit_code == 77) {
    WARN("no private mount namespace or bind mount here: read-only file system not tested");
    return;
  }
  INFO(r.out << r.err);
  const auto section = [&](const std::string& name) {
    const auto begin = r.out.find("# " + name + "\n");
    REQUIRE(begin != std::string::npos);
    const auto end = r.out.find("\n# ", begin + 1);
    return r.out.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
  };
  CHECK(section("list").find("resnet18") != std::string::npos);
  CHECK(section("list").find("exit 0") != std::string::npos);
  CHECK(section("path").find(tool.path("models/resnet18")) != std::string::npos);
  CHECK(section("export").find("\"lock_reason\": \"keep\"") != std::string::npos);
  CHECK(section("export").find("exit 0") != std::string::npos);
  CHECK(section("dir").find(tool.path("cache")) != std::string::npos);
  CHECK(section("history").find("exit 0") != std::string::npos);
  CHECK(section("doctor").find("writable:    no: it is on a read-only file system") !=
        std::string::npos);
  CHECK(section("doctor").find("integrity:   ok") != std::string::npos);
  CHECK(section("doctor").find("exit 1") != std::string::npos);
  CHECK(section("set").find("is on a read-only file system") != std::string::npos);
  CHECK(section("set").find("exit 3") != std::string::npos);
  CHECK(section("clear").find("exit 3") != std::string::npos);
  // What changes nothing works on a registry that cannot be written.
  CHECK(section("no-ops").find("exit 3") == std::string::npos);
  CHECK(section("no-ops").find("resnet18 was not locked") != std::string::npos);
  CHECK(section("unknown").find("exit 2") != std::string::npos);
  CHECK(section("after").find("registry.db-wal") == std::string::npos);
  CHECK(section("after").find("registry.db-shm") == std::string::npos);
  CHECK(tool.snapshot() == exported);
}

TEST_CASE("clear of names without entries creates no registry", "[registry-file][create]") {
  Tool tool;
  const std::string reg = tool.path("state/tfimm/registry.db");
  const auto r = tool.run_bare({"--registry", reg, "clear", "resnet18", "vit"});
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  CHECK_FALSE(t::exists(tool.path("state")));
  CHECK(tool.run_bare({"--registry", reg, "unset-dir"}).exit_code == 0);
  CHECK(tool.run_bare({"--registry", reg, "prune"}).exit_code == 0);
  CHECK(tool.run_bare({"--registry", reg, "audit"}).exit_code == 0);
  CHECK_FALSE(t::exists(tool.path("state")));
}

TEST_CASE("commands that only read leave no file beside the registry", "[registry-file]") {
  Tool tool;
  tool.make_dir("models/resnet18");
  tool.ok({"set", "resnet18", tool.path("models/resnet18")});
  const std::string dir = tool.path("state");
  const auto before = files_in(dir);
  REQUIRE(before == std::vector<std::string>{"registry.db"});
  for (const auto& command : std::vector<std::vector<std::string>>{{"where"},
                                                                   {"list"},
                                                                   {"list", "--json"},
                                                                   {"path", "resnet18"},
                                                                   {"path", "vit", "--explain"},
                                                                   {"dir", "--show-origin"},
                                                                   {"history"},
                                                                   {"export"},
                                                                   {"audit"},
                                                                   {"prune", "--dry-run"},
                                                                   {"migrate", "--status"},
                                                                   {"doctor"}}) {
    const auto r = tool.run(command);
    INFO(command.front() << ": " << r.err);
    CHECK(r.exit_code <= 1);
    CHECK(files_in(dir) == before);
  }
}

TEST_CASE("a registry behind a symlink loop or a dangling symlink is an error, not an empty one",
          "[registry-file]") {
  Tool tool;
  SECTION("a dangling symlink (an unmounted share under a link)") {
    const std::string link = tool.path("registry.db");
    REQUIRE(::symlink(tool.path("share/registry.db").c_str(), link.c_str()) == 0);
    for (const auto& command : std::vector<std::vector<std::string>>{
             {"list"}, {"path", "resnet18"}, {"set", "resnet18", "/data/resnet18"}}) {
      std::vector<std::string> args{"--registry", link};
      args.insert(args.end(), command.begin(), command.end());
      const auto r = run_bounded(args);
      INFO(command.front() << ": " << r.out << r.err);
      CHECK(r.exit_code == 3);
      CHECK(r.err.find("is a symbolic link to " + tool.path("share/registry.db") +
                       ", which does not exist") != std::string::npos);
    }
    CHECK_FALSE(t::exists(tool.path("share")));
  }
  SECTION("a symlink loop above it") {
    const std::string loop = tool.path("loop");
    REQUIRE(::symlink(loop.c_str(), loop.c_str()) == 0);
    const auto r = run_bounded({"--registry", loop + "/registry.db", "list"});
    INFO(r.out << r.err);
    CHECK(r.exit_code == 3);
    CHECK(r.err.find("cannot look at registry") != std::string::npos);
  }
}

TEST_CASE("a transaction killed half-written in rollback-journal mode is never read as done",
          "[registry-file][read-only]") {
  Tool tool;
  const Env network{{"TFIMM_NETWORK_FS", "1"}};
  REQUIRE(tool.run({"set", "a", "/committed"}, {}, network).exit_code == 0);
  // A writer that dies after SQLite has written some of its pages into the
  // file itself, leaving a hot journal behind.
  const pid_t child = ::fork();
  if (child == 0) {
    sqlite3* db = nullptr;
    sqlite3_open(tool.registry().c_str(), &db);
    sqlite3_exec(db,
                 "PRAGMA cache_size = 2; BEGIN IMMEDIATE; "
                 "UPDATE models SET path = '/HALF-WRITTEN' WHERE name = 'a'; "
                 "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000) "
                 "INSERT INTO models(name, path, created_at, updated_at) "
                 "SELECT 'bulk' || i, '/bulk', 0, 0 FROM n;",
                 nullptr, nullptr, nullptr);
    ::_exit(0);  // no COMMIT, no close
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  REQUIRE(t::exists(tool.registry() + "-journal"));
  const std::string mount = tool.make_dir("ro");
  const auto r = in_read_only_mount(
      "\"$1\" --registry \"$3/state/registry.db\" path a; echo \"exit $?\"", tool.path(""), mount);
  if (r.exit_code == 77) {
    WARN("no private mount namespace or bind mount here: not tested");
    return;
  }
  INFO(r.out << r.err);
  CHECK(r.out.find("/HALF-WRITTEN") == std::string::npos);
  // A process that can write the registry rolls the journal back.
  CHECK(tool.run({"path", "a"}, {}, network).out == "/committed\n");
}

TEST_CASE("a file-size limit reached by a write gives one error line, not a killed program",
          "[registry-file]") {
  Tool tool;
  tool.ok({"set", "resnet18", "/data/resnet18"});
  std::string records;
  for (int i = 0; i < 3000; ++i) {
    records +=
        R"({"name": "m)" + std::to_string(i) + R"(", "path": "/p/)" + std::to_string(i) + "\"},\n";
  }
  tfimm::test::write_file(tool.path("big.json"),
                          R"({"format": "tfimm-cache-export", "version": 1, "models": [)" +
                              records + R"({"name": "last", "path": "/l"}]})");
  const auto r =
      t::run_process({"sh", "-c", "ulimit -f 40; exec \"$0\" --registry \"$1\" import \"$2\"",
                      TFIMM_TOOL, tool.registry(), tool.path("big.json")});
  INFO(r.out << r.err);
  CHECK(r.signal == 0);
  CHECK(r.exit_code == 3);
  CHECK(r.err.find("file-size limit") != std::string::npos);
  CHECK(tool.ok({"list"}).find("m0") == std::string::npos);
}

TEST_CASE("a refused registry file gets the tool's advice naming --registry and $TFIMM_REGISTRY",
          "[registry-file][errors]") {
  Tool tool;
  const std::string notes = tool.path("notes.db");
  std::string text;
  for (int i = 0; i < 200; ++i) text += "these are my notes, not a database\n";
  t::write_file(notes, text);
  const auto r = tool.run_bare({"--registry", notes, "list"});
  INFO(r.err);
  CHECK(r.exit_code == 3);
  CHECK(r.err.find("it is not an SQLite database") != std::string::npos);
  CHECK(
      r.err.find("for the registry. --registry FILE or $TFIMM_REGISTRY picks the registry file") !=
      std::string::npos);
  CHECK(tfimm::tooltest::lines(r.err).size() == 1);
  CHECK(t::read_file(notes) == text);
}
