// Tests for lib/fs.cpp: checking one path on disk, network file system
// detection and durations.
#include <sys/stat.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <chrono>
#include <string>

#include "testutil.hpp"
#include "tfimm/errors.hpp"
#include "tfimm/registry.hpp"

using tfimm::PathStatus;
namespace t = tfimm::test;
using namespace std::chrono_literals;

TEST_CASE("check_path tells existing, missing and dangling paths apart", "[fs]") {
  t::TestContext ctx;
  t::make_dirs(ctx.path("dir"));
  t::write_file(ctx.path("file"), "weights");
  REQUIRE(::symlink(ctx.path("nowhere").c_str(), ctx.path("dangling").c_str()) == 0);
  REQUIRE(::symlink(ctx.path("dir").c_str(), ctx.path("good-link").c_str()) == 0);
  std::string detail;

  SECTION("a directory is ok") {
    CHECK(tfimm::check_path(ctx.path("dir"), &detail) == PathStatus::Ok);
  }
  SECTION("a file is ok") { CHECK(tfimm::check_path(ctx.path("file")) == PathStatus::Ok); }
  SECTION("a missing path is missing") {
    CHECK(tfimm::check_path(ctx.path("absent"), &detail) == PathStatus::Missing);
    CHECK(tfimm::check_path(ctx.path("absent/deeper/still")) == PathStatus::Missing);
  }
  SECTION("a symlink to nowhere is a dangling link, and detail names its target") {
    CHECK(tfimm::check_path(ctx.path("dangling"), &detail) == PathStatus::DanglingLink);
    CHECK(detail == ctx.path("nowhere"));
  }
  SECTION("a symlink to a directory is ok, and detail names its target") {
    CHECK(tfimm::check_path(ctx.path("good-link"), &detail) == PathStatus::Ok);
    CHECK(detail == ctx.path("dir"));
  }
  SECTION("a path below a file is not_a_directory") {
    CHECK(tfimm::check_path(ctx.path("file/sub")) == PathStatus::NotADirectory);
  }
  SECTION("a symlink loop is an error with the system's message") {
    REQUIRE(::symlink(ctx.path("loop-b").c_str(), ctx.path("loop-a").c_str()) == 0);
    REQUIRE(::symlink(ctx.path("loop-a").c_str(), ctx.path("loop-b").c_str()) == 0);
    CHECK(tfimm::check_path(ctx.path("loop-a/x"), &detail) == PathStatus::Error);
    CHECK_FALSE(detail.empty());
  }
  SECTION("works without a detail pointer") {
    CHECK(tfimm::check_path(ctx.path("dangling")) == PathStatus::DanglingLink);
  }
  // Checking changes nothing on disk.
  CHECK(t::read_file(ctx.path("file")) == "weights");
  CHECK(t::exists(ctx.path("dangling")));
  CHECK_FALSE(t::exists(ctx.path("nowhere")));
  CHECK_FALSE(t::exists(ctx.path("absent")));
}

TEST_CASE("check_path reports a path behind an unreadable directory as not accessible", "[fs]") {
  t::TestContext ctx;
  if (::geteuid() == 0) {
    WARN("running as root: permission checks do not apply, not_accessible is not tested");
    return;
  }
  t::make_dirs(ctx.path("locked/inside"));
  REQUIRE(::chmod(ctx.path("locked").c_str(), 0) == 0);
  std::string detail;
  CHECK(tfimm::check_path(ctx.path("locked/inside"), &detail) == PathStatus::NotAccessible);
  CHECK_FALSE(detail.empty());
  ::chmod(ctx.path("locked").c_str(), 0700);
}

TEST_CASE(
    "path statuses are spelt as in the JSON output and only paths that cannot exist are stale",
    "[fs]") {
  t::TestContext ctx;
  CHECK(tfimm::to_string(PathStatus::Ok) == "ok");
  CHECK(tfimm::to_string(PathStatus::Missing) == "missing");
  CHECK(tfimm::to_string(PathStatus::DanglingLink) == "dangling_link");
  CHECK(tfimm::to_string(PathStatus::NotAccessible) == "not_accessible");
  CHECK(tfimm::to_string(PathStatus::NotADirectory) == "not_a_directory");
  CHECK(tfimm::to_string(PathStatus::Error) == "error");

  CHECK(tfimm::is_stale(PathStatus::Missing));
  CHECK(tfimm::is_stale(PathStatus::DanglingLink));
  CHECK_FALSE(tfimm::is_stale(PathStatus::Ok));
  CHECK_FALSE(tfimm::is_stale(PathStatus::NotAccessible));
  CHECK(tfimm::is_stale(PathStatus::NotADirectory));
  CHECK_FALSE(tfimm::is_stale(PathStatus::Error));
}

TEST_CASE("a local temporary directory is not a network file system unless forced", "[fs]") {
  t::TestContext ctx;
  std::string fs_type;
  SECTION("detected") {
    CHECK_FALSE(tfimm::on_network_fs(ctx.root(), &fs_type));
    CHECK_FALSE(fs_type.empty());
  }
  SECTION("a path that does not exist yet is judged by its nearest existing parent") {
    std::string parent_type;
    REQUIRE_FALSE(tfimm::on_network_fs(ctx.root(), &parent_type));
    CHECK_FALSE(tfimm::on_network_fs(ctx.path("not/yet/there.db"), &fs_type));
    CHECK(fs_type == parent_type);
    CHECK_FALSE(t::exists(ctx.path("not")));
  }
  SECTION("TFIMM_NETWORK_FS=1 forces yes") {
    ctx.env().set("TFIMM_NETWORK_FS", "1");
    CHECK(tfimm::on_network_fs(ctx.root(), &fs_type));
  }
  SECTION("TFIMM_NETWORK_FS=0 forces no") {
    ctx.env().set("TFIMM_NETWORK_FS", "0");
    CHECK_FALSE(tfimm::on_network_fs(ctx.root()));
  }
  SECTION("TFIMM_NETWORK_FS empty counts as unset") {
    ctx.env().set("TFIMM_NETWORK_FS", "");
    CHECK_FALSE(tfimm::on_network_fs(ctx.root()));
  }
}

TEST_CASE("durations are a number and a unit: s, m, h, d, w", "[fs]") {
  t::TestContext ctx;
  CHECK(tfimm::parse_duration("30s") == 30s);
  CHECK(tfimm::parse_duration("15m") == 15min);
  CHECK(tfimm::parse_duration("12h") == 12h);
  CHECK(tfimm::parse_duration("7d") == 7 * 24h);
  CHECK(tfimm::parse_duration("2w") == 14 * 24h);
  CHECK(tfimm::parse_duration("0s") == 0s);
  CHECK(tfimm::parse_duration("90d") == 90 * 24h);
}

TEST_CASE("a malformed duration is refused, naming it", "[fs]") {
  t::TestContext ctx;
  for (const std::string text : {"", "7", "-1d", "7x", "d", "7 d", "7dd", "1.5h", "+"}) {
    INFO("duration: '" << text << "'");
    CHECK_THROWS_AS(tfimm::parse_duration(text), tfimm::InvalidInput);
  }
  CHECK_THROWS_WITH(tfimm::parse_duration("7x"), Catch::Contains("7x"));
  SECTION("a number too large for the clock is refused, not wrapped") {
    CHECK_THROWS_AS(tfimm::parse_duration("99999999999999999999d"), tfimm::InvalidInput);
    CHECK_THROWS_AS(tfimm::parse_duration("9999999999999999w"), tfimm::InvalidInput);
  }
}
