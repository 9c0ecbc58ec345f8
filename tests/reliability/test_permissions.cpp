// Permissions: the modes SQLite gives the registry and its -wal and -shm
// files under common umasks, and a registry shared by a group.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <string>

#include "common.hpp"
#include "testutil.hpp"
#include "tfimm/registry.hpp"

namespace tfimm::reliability {
namespace {

std::string line_of(const Exit& exit, const std::string& prefix) {
  for (const auto& line : exit.lines()) {
    if (line.rfind(prefix, 0) == 0) return line;
  }
  return "";
}

std::string octal(unsigned mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", mode);
  return buf;
}

}  // namespace

TEST_CASE("the registry and its -wal and -shm files get 0644 & ~umask", "[permissions]") {
  for (const unsigned mask : {022u, 077u, 002u, 027u}) {
    test::TestContext ctx;
    const std::string reg = ctx.path("state/registry.db");
    const auto r = run_worker({"--umask", octal(mask), "modes", reg});
    INFO("umask " << octal(mask) << ": " << r.describe());
    REQUIRE(r.code == 0);
    const std::string expected = octal(0644u & ~mask);
    const std::string uid = std::to_string(::geteuid());
    // Lines are "db MODE UID GID"; the -wal and -shm copy the registry's mode.
    CHECK(line_of(r, "db ").rfind("db " + expected + " " + uid, 0) == 0);
    CHECK(line_of(r, "wal ").rfind("wal " + expected + " " + uid, 0) == 0);
    CHECK(line_of(r, "shm ").rfind("shm " + expected + " " + uid, 0) == 0);
    // The parent directory the library created follows the umask too.
    CHECK(mode_of(ctx.path("state")) == octal(0777u & ~mask));
    figure("permissions: umask " + octal(mask) + ": registry " + line_of(r, "db ").substr(3, 4) +
           ", -wal " + line_of(r, "wal ").substr(4, 4) + ", -shm " +
           line_of(r, "shm ").substr(4, 4) + ", new directory " + mode_of(ctx.path("state")));
  }
}

TEST_CASE("a group shares one registry through a setgid directory and a group-writable file",
          "[permissions][group]") {
  if (::geteuid() != 0) {
    WARN("needs root to act as two users of one group: skipped");
    return;
  }
  // Two users of group 65534 ("nogroup"): the owner (uid 1000) and another
  // member (uid 65534).
  const std::string owner = "1000";
  const std::string member = "65534";
  test::TestContext ctx;
  ::chmod(ctx.root().c_str(), 0755);
  const std::string team = ctx.path("team");
  test::make_dirs(team);
  // The team's directory: the group's, setgid, group-writable.
  REQUIRE(::chown(team.c_str(), 0, 65534) == 0);
  REQUIRE(::chmod(team.c_str(), 02775) == 0);
  const std::string reg = team + "/registry.db";
  if (run_worker({"--as", member, "list", reg}).code == kWorkerSkip) {
    WARN("cannot change to another uid: skipped");
    return;
  }

  // The owner creates it with umask 002: SQLite still creates it 0644; the
  // group comes from the setgid directory.
  const auto created = run_worker({"--as", owner, "--umask", "002", "modes", reg});
  REQUIRE(created.code == 0);
  CHECK(line_of(created, "db ") == "db 0644 1000 65534");
  // Made group-writable once, before anyone else uses it.
  REQUIRE(::chmod(reg.c_str(), 0664) == 0);

  Child session = start_worker({"--as", owner, "--umask", "002", "session", reg});
  REQUIRE(session.read_line(milliseconds(30000)) == std::string("ready"));
  // -wal and -shm take the registry's mode and group.
  CHECK(mode_of(reg + "-wal") == "0664");
  CHECK(mode_of(reg + "-shm") == "0664");
  const auto wrote = run_worker({"--as", member, "--umask", "002", "set", reg, "member", "/m"});
  INFO(wrote.describe());
  CHECK(wrote.code == 0);
  session.write_line("set owner /o");
  CHECK(session.read_line(milliseconds(30000)) == std::string("ok"));
  session.write_line("list");
  CHECK(session.read_line(milliseconds(30000)) == std::string("entries before,member,modes,owner"));
  session.write_line("quit");
  CHECK(session.wait(milliseconds(30000)).code == 0);
  // The member alone: fresh -wal/-shm, the member's, with the registry's mode.
  const auto alone = run_worker({"--as", member, "--umask", "002", "modes", reg});
  CHECK(line_of(alone, "wal ") == "wal 0664 65534 65534");
  CHECK(line_of(alone, "shm ") == "shm 0664 65534 65534");
  figure(
      "permissions: shared registry in a setgid 2775 directory: created 0644 (group from "
      "the directory) even under umask 002; after `chmod 664 registry.db` its -wal/-shm are "
      "0664 and every member of the group writes");
}

namespace {

// A registry made by uid 1000 (entry "a") in a setgid 2775 directory of
// group 65534, inside `ctx`; "" (with a warning) where this process cannot
// act as other users.
std::string team_registry(test::TestContext& ctx) {
  if (::geteuid() != 0) {
    WARN("needs root to act as two users of one group: skipped");
    return {};
  }
  ::chmod(ctx.root().c_str(), 0755);
  const std::string team = ctx.path("team");
  test::make_dirs(team);
  REQUIRE(::chown(team.c_str(), 0, 65534) == 0);
  REQUIRE(::chmod(team.c_str(), 02775) == 0);
  const std::string reg = team + "/registry.db";
  if (run_worker({"--as", "65534", "list", reg}).code == kWorkerSkip) {
    WARN("cannot change to another uid: skipped");
    return {};
  }
  REQUIRE(run_worker({"--as", "1000", "set", reg, "a", "/a"}).code == 0);
  return reg;
}

}  // namespace

TEST_CASE("a member who cannot write the registry leaves no -wal or -shm behind to block its owner",
          "[permissions][group]") {
  // SQLite's WAL files in a shared directory are a hazard (see README.md):
  // a process that can only read the registry, left to SQLite, creates
  // -wal/-shm with the registry's mode at that moment and its own owner, and
  // leaves them behind; made group-writable afterwards, the registry then
  // cannot be written by its owner. The library refuses such a write before
  // SQLite opens the file, and reads such a registry as it is on disk.
  test::TestContext ctx;
  const std::string reg = team_registry(ctx);
  if (reg.empty()) return;
  const auto refused = run_worker({"--as", "65534", "set", reg, "member", "/m"});
  CHECK(refused.out.rfind("error RegistryReadOnly: ", 0) == 0);
  CHECK(refused.out.find("cannot write it") != std::string::npos);
  const auto read = run_worker({"--as", "65534", "list", reg});
  CHECK(read.code == 0);
  CHECK(read.out.find("entry a /a") != std::string::npos);
  CHECK(::access((reg + "-wal").c_str(), F_OK) != 0);
  CHECK(::access((reg + "-shm").c_str(), F_OK) != 0);
  REQUIRE(::chmod(reg.c_str(), 0664) == 0);
  const auto owner = run_worker({"--as", "1000", "set", reg, "owner", "/o"});
  CHECK(owner.code == 0);
  CHECK(run_worker({"--as", "65534", "set", reg, "member", "/m"}).code == 0);
  figure("permissions: a member refused while the registry was 0644 left no -wal/-shm (" +
         refused.out.substr(0, 120) + "); after `chmod 664` owner and member both write");
}

TEST_CASE("doctor names -wal or -shm files that some writers cannot write, and its fix works",
          "[permissions][group]") {
  // Such files are left by tools that let SQLite create them for a user who
  // could only read the registry (an older tfimm-cache, the sqlite3 shell).
  test::TestContext ctx;
  const std::string reg = team_registry(ctx);
  if (reg.empty()) return;
  REQUIRE(::chmod(reg.c_str(), 0664) == 0);
  const auto leave_side_files = [&] {
    for (const char* suffix : {"-wal", "-shm"}) {
      const std::string file = reg + suffix;
      test::write_file(file, "");
      REQUIRE(::chown(file.c_str(), 65534, 65534) == 0);
      REQUIRE(::chmod(file.c_str(), 0644) == 0);
    }
  };
  leave_side_files();
  const auto blocked = run_worker({"--as", "1000", "set", reg, "owner", "/o"});
  CHECK(blocked.code != 0);
  std::string warning;
  for (const auto& w : tfimm::Registry(reg).diagnose().warnings) {
    if (w.find(reg + "-shm") != std::string::npos) warning = w;
  }
  INFO(warning);
  CHECK(warning.find("RegistryReadOnly") != std::string::npos);
  CHECK(warning.find("&& chmod 0664 ") != std::string::npos);
  // The check above ran as root, whose connection, the last to close,
  // removed the files: lay them down again to apply the fix to.
  leave_side_files();
  CHECK(run_worker({"--as", "1000", "set", reg, "owner", "/o"}).code != 0);
  struct stat registry {};
  REQUIRE(::stat(reg.c_str(), &registry) == 0);
  for (const char* suffix : {"-wal", "-shm"}) {
    const std::string file = reg + suffix;
    REQUIRE(::chown(file.c_str(), static_cast<uid_t>(-1), registry.st_gid) == 0);
    REQUIRE(::chmod(file.c_str(), 0664) == 0);
  }
  CHECK(run_worker({"--as", "1000", "set", reg, "owner", "/o"}).code == 0);
  CHECK(run_worker({"--as", "65534", "set", reg, "member", "/m"}).code == 0);
  figure("permissions hazard: -wal/-shm of another user, mode 0644: the owner's write: " +
         blocked.out.substr(0, 80) + "; doctor names them, and its chgrp + chmod fix works");
}

}  // namespace tfimm::reliability
