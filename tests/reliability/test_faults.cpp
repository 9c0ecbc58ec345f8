// Faults: a full disk, a read-only registry file or directory, a network file
// system, and a registry file deleted or replaced while a process has it open.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <string>
#include <vector>

#include "common.hpp"
#include "sqlite_probe.hpp"
#include "testutil.hpp"
#include "tfimm/registry.hpp"

namespace tfimm::reliability {
namespace {

bool has_line(const Exit& exit, const std::string& prefix) {
  for (const auto& line : exit.lines()) {
    if (line.rfind(prefix, 0) == 0) return true;
  }
  return false;
}

std::string line_of(const Exit& exit, const std::string& prefix) {
  for (const auto& line : exit.lines()) {
    if (line.rfind(prefix, 0) == 0) return line;
  }
  return "";
}

std::vector<std::vector<std::string>> contents(const std::string& reg) {
  SqliteProbe db(reg);
  return db.rows("SELECT name, path, locked FROM models ORDER BY name");
}

// Lets uid 65534 reach files below the test's directory.
void open_for_others(const test::TestContext& ctx) { ::chmod(ctx.root().c_str(), 0755); }

}  // namespace

TEST_CASE("a full disk gives a clear error, changes nothing, and passes once space returns",
          "[faults][disk-full]") {
  test::TestContext ctx;
  const std::string reg = ctx.path("registry.db");
  REQUIRE(run_worker({"set-many", reg, "m", "20", "/models"}).code == 0);
  const auto before = contents(reg);

  SECTION("file size limit reached (RLIMIT_FSIZE)") {
    // 0: not even one page fits; 64 KB: small sets fit, the import does not.
    for (const char* extra : {"0", "65536"}) {
      const auto r = run_worker({"fill-rlimit", reg, extra, "3000"});
      INFO("extra " << extra << ": " << r.describe());
      REQUIRE(r.code == 0);
      CHECK(line_of(r, "import").rfind("import error Registry", 0) == 0);
      CHECK(line_of(r, "transaction").rfind("transaction error Registry", 0) == 0);
      CHECK(line_of(r, "import").find(reg) != std::string::npos);
      // EFBIG surfaces as SQLITE_IOERR_WRITE without the system's reason; the
      // message still names the likely causes.
      CHECK(line_of(r, "import").find("full") != std::string::npos);
      if (std::string(extra) == "0") {
        CHECK(line_of(r, "set").rfind("set error Registry", 0) == 0);
      }
      CHECK(has_line(r, "after ok"));
      figure("disk full (RLIMIT_FSIZE, " + std::string(extra) +
             " bytes left): " + line_of(r, "set") + " | " + line_of(r, "import"));
    }
    SqliteProbe db(reg);
    CHECK(db.integrity() == "ok");
    // Nothing of the failed import or transaction is there.
    CHECK(db.integer("SELECT count(*) FROM models WHERE name GLOB 'i[0-9]*'") == 0);
    CHECK(db.integer("SELECT count(*) FROM models WHERE name GLOB 't[0-9]*'") == 0);
    CHECK(db.integer("SELECT count(*) FROM models WHERE name = 'after'") == 1);
    CHECK(
        db.rows("SELECT name, path, locked FROM models WHERE name GLOB 'm[0-9]*' ORDER BY name") ==
        before);
  }
  SECTION("file system full (a 1 MB tmpfs)") {
    const std::string mount_point = ctx.path("small");
    test::make_dirs(mount_point);
    const auto r = run_worker({"tmpfs-full", mount_point});
    if (r.code == kWorkerSkip) {
      WARN("cannot mount a tmpfs here (needs root and mount rights): " << r.err);
      return;
    }
    INFO(r.describe());
    REQUIRE(r.code == 0);
    CHECK(line_of(r, "import").rfind("import error Registry", 0) == 0);
    CHECK(line_of(r, "import").find("full") != std::string::npos);
    CHECK(has_line(r, "unchanged yes"));
    CHECK(has_line(r, line_of(r, "set").rfind("set error", 0) == 0 ? "read while full 20 entries"
                                                                   : "read while full 21 entries"));
    CHECK(line_of(r, "write while full").find("is full") != std::string::npos);
    // The audit answers; only its missing-since bookkeeping waits for space.
    CHECK(has_line(r, "audit recorded no"));
    CHECK(has_line(r, "audit while full ok"));
    CHECK(has_line(r, "after ok"));
    CHECK(has_line(r, "integrity ok"));
    const bool set_failed = line_of(r, "set").rfind("set error", 0) == 0;
    CHECK(has_line(r, set_failed ? "entries 21" : "entries 22"));
    figure("disk full (tmpfs, ENOSPC): " + line_of(r, "set") + " | " + line_of(r, "import"));
  }
}

TEST_CASE("a read-only registry can be read, refuses writes with RegistryReadOnly, and is intact",
          "[faults][read-only]") {
  test::TestContext ctx;
  open_for_others(ctx);
  const std::string dir = ctx.path("ro");
  const std::string reg = dir + "/registry.db";
  test::make_dirs(dir);
  {
    tfimm::Registry registry(reg);
    for (const char* name : {"a", "b", "c"})
      registry.set_model_cache(name, std::string("/") + name);
  }
  const std::string image = test::read_file(reg);
  const bool root = ::geteuid() == 0;
  const auto probe_user = run_worker({"--as-nobody", "list", reg});
  if (probe_user.code == kWorkerSkip) {
    WARN("cannot drop root privileges to uid 65534: read-only tests skipped");
    return;
  }
  std::string setup;
  SECTION("read-only file in a writable directory") {
    setup = "read-only file (0444), writable directory";
    if (root) REQUIRE(::chown(dir.c_str(), 65534, 65534) == 0);
    ::chmod(reg.c_str(), 0444);
  }
  SECTION("writable file in a read-only directory") {
    setup = "writable file (0666), read-only directory (0555)";
    ::chmod(reg.c_str(), 0666);
    ::chmod(dir.c_str(), 0555);
  }
  SECTION("read-only file in a read-only directory") {
    setup = "read-only file (0444), read-only directory (0555)";
    ::chmod(reg.c_str(), 0444);
    ::chmod(dir.c_str(), 0555);
  }
  const auto read = run_worker({"--as-nobody", "list", reg});
  const auto write = run_worker({"--as-nobody", "set", reg, "d", "/d"});
  INFO(setup << "\nread: " << read.describe() << "\nwrite: " << write.describe());
  CHECK(write.code == kWorkerError);
  CHECK(write.out.rfind("error RegistryReadOnly: ", 0) == 0);
  CHECK(write.out.find(reg) != std::string::npos);
  // Reads work wherever the file can be read, and leave nothing behind: no
  // -wal or -shm owned by a user who could not remove them.
  CHECK(read.code == 0);
  CHECK(has_line(read, "count 3"));
  CHECK(test::read_file(reg) == image);
  CHECK(::access((reg + "-wal").c_str(), F_OK) != 0);
  CHECK(::access((reg + "-shm").c_str(), F_OK) != 0);
  figure("read-only, " + setup + ": read " +
         (read.code == 0 ? "works (" + line_of(read, "count") + ")" : read.out.substr(0, 300)) +
         ", no -wal/-shm left; write: " + write.out.substr(0, 300));
  ::chmod(dir.c_str(), 0755);
  ::chmod(reg.c_str(), 0644);
  SqliteProbe db(reg);
  CHECK(db.integrity() == "ok");
  CHECK(db.integer("SELECT count(*) FROM models") == 3);
}

TEST_CASE("TFIMM_NETWORK_FS=1 makes the registry use the rollback journal and diagnose warns",
          "[faults][network-fs]") {
  test::TestContext ctx;
  const std::string reg = ctx.path("registry.db");
  const Env network{{"TFIMM_NETWORK_FS", "1"}};
  std::string how;
  SECTION("a new registry") {
    how = "new registry";
    const auto r = run_worker({"modes", reg}, network);
    INFO(r.describe());
    REQUIRE(r.code == 0);
    CHECK(has_line(r, "wal absent"));
    CHECK(has_line(r, "shm absent"));
  }
  SECTION("an existing WAL registry is switched on open") {
    how = "existing WAL registry";
    REQUIRE(run_worker({"set", reg, "a", "/a"}).code == 0);
    CHECK(SqliteProbe(reg).text("PRAGMA journal_mode") == "wal");
    REQUIRE(run_worker({"set", reg, "b", "/b"}, network).code == 0);
  }
  CHECK(SqliteProbe(reg).text("PRAGMA journal_mode") == "delete");
  const auto d = run_worker({"diagnose", reg}, network);
  INFO(d.describe());
  CHECK(has_line(d, "journal_mode delete"));
  CHECK(has_line(d, "network_fs 1"));
  CHECK(line_of(d, "warning the registry is on a network file system").size() > 0);
  // Without the variable (a local disk) it goes back to WAL.
  REQUIRE(run_worker({"set", reg, "c", "/c"}, {{"TFIMM_NETWORK_FS", "0"}}).code == 0);
  CHECK(SqliteProbe(reg).text("PRAGMA journal_mode") == "wal");
  figure("network fs (" + how +
         "): with TFIMM_NETWORK_FS=1 journal_mode is 'delete', no -wal/-shm, and diagnose warns: " +
         line_of(d, "warning the registry is on a network").substr(0, 80) + "...");
}

namespace {

// A process that has the registry open, answering commands on stdin.
class Session {
 public:
  explicit Session(const std::string& reg) : child_(start_worker({"session", reg})) {}
  bool ready() { return child_.read_line(milliseconds(30000)) == std::string("ready"); }
  std::string ask(const std::string& line) {
    child_.write_line(line);
    return child_.read_line(milliseconds(30000)).value_or("(no answer)");
  }
  int quit() {
    child_.write_line("quit");
    return child_.wait(milliseconds(30000)).code;
  }

 private:
  Child child_;
};

}  // namespace

TEST_CASE("a registry deleted under an open process is never written blindly",
          "[faults][replaced]") {
  test::TestContext ctx;
  const std::string reg = ctx.path("registry.db");
  Session session(reg);
  REQUIRE(session.ready());
  REQUIRE(::unlink(reg.c_str()) == 0);
  const auto answer = session.ask("set after /after");
  INFO(answer);
  CHECK(answer.rfind("error RegistryError: ", 0) == 0);
  CHECK(answer.find("deleted or replaced") != std::string::npos);
  // The refused write did not bring the file back.
  CHECK_FALSE(file_exists(reg));
  CHECK(session.ask("list") == "entries ");
  // Writing again is a deliberate new start: a new, empty registry.
  CHECK(session.ask("set again /again") == "ok");
  CHECK(contents(reg) == std::vector<std::vector<std::string>>{{"again", "/again", "0"}});
  CHECK(session.quit() == 0);
  figure("replaced: write after the registry was deleted: " + answer.substr(0, 160));
}

// The old file's -wal, found by name, must not be laid over the new file.
TEST_CASE("a registry replaced under an open process is never written blindly nor masked",
          "[faults][replaced]") {
  test::TestContext ctx;
  const std::string reg = ctx.path("registry.db");
  Session session(reg);
  REQUIRE(session.ready());
  const std::string other = ctx.path("other.db");
  tfimm::Registry(other).set_model_cache("other", "/other");
  REQUIRE(std::rename(other.c_str(), reg.c_str()) == 0);
  const auto answer = session.ask("set after /after");
  INFO(answer);
  CHECK(answer.rfind("error RegistryError: ", 0) == 0);
  CHECK(answer.find("deleted or replaced") != std::string::npos);
  // What is in the new file, not the old one's -wal laid over it.
  CHECK(contents(reg) == std::vector<std::vector<std::string>>{{"other", "/other", "0"}});
  // Reads and writes now follow the new file.
  CHECK(session.ask("list") == "entries other");
  CHECK(session.ask("set again /again") == "ok");
  CHECK(contents(reg) ==
        std::vector<std::vector<std::string>>{{"again", "/again", "0"}, {"other", "/other", "0"}});
  CHECK(SqliteProbe(reg).integrity() == "ok");
  CHECK(session.quit() == 0);
}

}  // namespace tfimm::reliability
