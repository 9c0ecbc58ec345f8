// tfimm-cache doctor
#include <sys/stat.h>
#include <catch2/catch.hpp>

#include "rawdb.hpp"
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
    // A registry many machines share belongs on a server.
    CHECK(r.out.find("a PostgreSQL server (a postgresql:// location)") != std::string::npos);
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

TEST_CASE("doctor names a cache directory that is a file or cannot hold downloads", "[doctor]") {
  Tool tool;
  tool.ok({"set", "resnet18", "/data/resnet18"});
  SECTION("a regular file") {
    tfimm::test::write_file(tool.path("cache"), "not a directory");
    tool.ok({"set-dir", tool.path("cache")});
    auto r = tool.run({"doctor"}, {}, {{"TFIMM_NETWORK_FS", "0"}});
    INFO(r.out << r.err);
    CHECK(r.exit_code == 1);
    CHECK(r.out.find("the cache directory " + tool.path("cache") + " cannot hold downloads: " +
                     tool.path("cache") + " is not a directory") != std::string::npos);
  }
  SECTION("below a regular file, so it cannot be created") {
    tfimm::test::write_file(tool.path("file"), "x");
    tool.ok({"set-dir", tool.path("file/cache")});
    auto r = tool.run({"doctor"}, {}, {{"TFIMM_NETWORK_FS", "0"}});
    INFO(r.out << r.err);
    CHECK(r.exit_code == 1);
    CHECK(r.out.find("cannot hold downloads") != std::string::npos);
  }
  SECTION("a directory this user cannot enter or write") {
    const std::string cache = tool.make_dir("cache");
    ::chmod(cache.c_str(), 0500);
    ::chmod(tool.path("").c_str(), 0755);
    ::chmod(tool.path("state").c_str(), 0755);
    ::chmod(tool.registry().c_str(), 0644);
    tool.ok({"set-dir", cache});
    auto r = tfimm::test::run_process(
        {"setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", TFIMM_TOOL,
         "--registry", tool.registry(), "doctor"},
        {}, {{"TFIMM_NETWORK_FS", "0"}});
    INFO(r.out << r.err);
    if (r.exit_code == 127 || r.err.find("setpriv") != std::string::npos) {
      WARN("cannot run as another user here: " << r.err);
      return;
    }
    CHECK(r.exit_code == 1);
    CHECK(r.out.find("this process cannot create files in " + cache) != std::string::npos);
    // A user who can only read the registry is told that writes will fail,
    // and the look leaves nothing behind.
    CHECK(r.out.find("writable:    no: this process cannot write it") != std::string::npos);
    CHECK_FALSE(tfimm::test::exists(tool.registry() + "-wal"));
    CHECK_FALSE(tfimm::test::exists(tool.registry() + "-shm"));
  }
}

TEST_CASE("doctor reports a registry written by a newer version instead of failing", "[doctor]") {
  Tool tool;
  tool.ok({"set", "resnet18", "/data/resnet18"});
  {
    tfimm::test::RawDb db(tool.registry());
    db.exec("PRAGMA user_version = 99");
  }
  const std::string before = tfimm::test::read_file(tool.registry());
  auto r = tool.run({"doctor"}, {}, {{"TFIMM_NETWORK_FS", "0"}});
  INFO(r.out << r.err);
  CHECK(r.exit_code == 1);
  CHECK(r.out.find("schema:      version 99 (this build knows ") != std::string::npos);
  CHECK(r.out.find("usable:      no") != std::string::npos);
  CHECK(r.out.find("newer tfimm-cache") != std::string::npos);
  CHECK(tfimm::test::read_file(tool.registry()) == before);
}

TEST_CASE("doctor says when a registry that does not exist cannot be created", "[doctor]") {
  Tool tool;
  tfimm::test::write_file(tool.path("file"), "x");
  auto r = tool.run_bare({"--registry", tool.path("file/registry.db"), "doctor"});
  INFO(r.out << r.err);
  CHECK(r.exit_code == 1);
  CHECK(r.out.find("exists:      no (and cannot be created; see below)") != std::string::npos);
  CHECK(r.out.find("it cannot be created: " + tool.path("file") + " is not a directory") !=
        std::string::npos);
  CHECK(r.out.find("created on the first change") == std::string::npos);
}

TEST_CASE("doctor of a registry that needs migrating reports it and leaves it as it is",
          "[doctor]") {
  Tool tool;
  tool.ok({"set", "resnet18", "/data/resnet18"});
  {
    // Looks like a registry of release 1 to the schema check.
    tfimm::test::RawDb db(tool.registry());
    db.exec("PRAGMA user_version = 1");
  }
  const std::string before = tfimm::test::read_file(tool.registry());
  auto r = tool.run({"doctor"}, {}, {{"TFIMM_NETWORK_FS", "0"}});
  INFO(r.out << r.err);
  CHECK(r.exit_code == 1);
  CHECK(r.out.find("needs upgrading to") != std::string::npos);
  CHECK(r.out.find("integrity:   not checked") != std::string::npos);
  CHECK(tfimm::test::read_file(tool.registry()) == before);
}

TEST_CASE("doctor leaves a registry in the journal mode it found", "[doctor]") {
  Tool tool;
  // Made on a "network file system": rollback journal (header bytes 18 and
  // 19 are 1); a command without the variable would switch it to WAL.
  REQUIRE(
      tool.run({"set", "resnet18", "/data/resnet18"}, {}, {{"TFIMM_NETWORK_FS", "1"}}).exit_code ==
      0);
  const std::string before = tfimm::test::read_file(tool.registry());
  REQUIRE(before.size() > 19);
  REQUIRE(before[18] == 1);
  auto r = tool.run({"doctor"}, {}, {{"TFIMM_NETWORK_FS", "0"}});
  INFO(r.out << r.err);
  CHECK(r.out.find("journal:     delete") != std::string::npos);
  CHECK(tfimm::test::read_file(tool.registry()) == before);
  CHECK_FALSE(tfimm::test::exists(tool.registry() + "-wal"));
}
