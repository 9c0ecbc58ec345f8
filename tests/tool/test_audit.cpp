// tfimm-cache audit
#include <unistd.h>

#include <catch2/catch.hpp>

#include "disagreeing_mount.hpp"
#include "tool_test.hpp"

using tfimm::tooltest::lines;
using tfimm::tooltest::require_error;
using tfimm::tooltest::Tool;

namespace {

// ok: an existing directory; gone: a missing path; link: a dangling symlink;
// kept: missing but locked.
void make_mixed_registry(Tool& tool) {
  tool.ok({"set", "ok", tool.make_dir("w/ok")});
  tool.ok({"set", "gone", tool.path("w/gone")});
  REQUIRE(::symlink(tool.path("w/nothing-here").c_str(), tool.path("w/link").c_str()) == 0);
  tool.ok({"set", "link", tool.path("w/link")});
  tool.ok({"set", "kept", tool.path("w/kept")});
  tool.ok({"lock", "kept", "--reason", "usb disk"});
}

}  // namespace

TEST_CASE("audit shows each entry's status, marks locked ones, and exits 1 when stale", "[audit]") {
  Tool tool;
  make_mixed_registry(tool);
  // The entries as list shows them: an audit records since when a path is
  // missing (what an export carries), and changes nothing else.
  const auto before = tool.json({"list", "--json"});
  auto r = tool.run({"audit"});
  CHECK(r.exit_code == 1);
  auto table = lines(r.out);
  REQUIRE(table.size() == 7);  // header, 4 entries, cache dir, summary
  CHECK(table[0].rfind("NAME", 0) == 0);
  auto status = table[0].find("STATUS");
  auto locked = table[0].find("LOCKED");
  CHECK(table[1].rfind("gone ", 0) == 0);
  CHECK(table[1].substr(status, 8) == "missing ");
  CHECK(table[2].rfind("kept ", 0) == 0);
  CHECK(table[2].substr(locked, 6) == "locked");
  CHECK(table[3].rfind("link ", 0) == 0);
  CHECK(table[3].substr(status, 13) == "dangling_link");
  CHECK(table[4].rfind("ok ", 0) == 0);
  CHECK(table[4].substr(status, 3) == "ok ");
  CHECK(table[5].rfind("cache dir: " + tool.home() + "/.cache/tfimm (default): missing", 0) == 0);
  CHECK(table[6].find("4 entries checked") != std::string::npos);
  CHECK(table[6].find("3 stale (1 locked)") != std::string::npos);
  // audit never changes entries or files
  CHECK(tool.json({"list", "--json"}) == before);
  CHECK(tfimm::test::exists(tool.path("w/ok")));
}

TEST_CASE("audit exits 0 when every path exists", "[audit][conformance]") {
  Tool tool;
  tool.make_dir("home/.cache/tfimm");
  tool.ok({"set", "ok", tool.make_dir("w/ok")});
  auto r = tool.run({"audit"});
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("cache dir: " + tool.home() + "/.cache/tfimm (default): ok") !=
        std::string::npos);
  CHECK(lines(r.out).back() == "1 entry checked, 1 ok; nothing stale");
}

TEST_CASE("audit of an empty registry reports the cache directory and exits 0",
          "[audit][conformance]") {
  Tool tool;
  auto r = tool.run({"audit"});
  CHECK(r.exit_code == 0);
  CHECK(lines(r.out).size() == 2);
}

TEST_CASE("audit --json has one object per entry with the documented fields",
          "[audit][json][conformance]") {
  Tool tool;
  make_mixed_registry(tool);
  auto json = tool.json({"audit", "--json"}, 1);
  REQUIRE(json.is_array());
  REQUIRE(json.size() == 4);
  for (const auto& item : json) {
    CHECK(item.size() == 7);
    CHECK(item.at("name").is_string());
    CHECK(item.at("path").is_string());
    CHECK(item.at("status").is_string());
    CHECK(item.at("locked").is_boolean());
    CHECK(item.at("detail").is_string());
    CHECK((item.at("missing_since").is_null() || item.at("missing_since").is_string()));
    CHECK(item.at("local_to").is_string());
  }
  CHECK(json[0]["name"] == "gone");
  CHECK(json[0]["status"] == "missing");
  CHECK(json[0]["missing_since"].is_string());
  CHECK(json[1]["name"] == "kept");
  CHECK(json[1]["locked"] == true);
  CHECK(json[2]["status"] == "dangling_link");
  CHECK(json[2]["detail"] == tool.path("w/nothing-here"));
  CHECK(json[3]["status"] == "ok");
  CHECK(json[3]["missing_since"].is_null());
}

TEST_CASE("audit records when a path was first found missing and keeps that time",
          "[audit][conformance]") {
  Tool tool;
  tool.ok({"set", "gone", tool.path("w/gone")});
  auto first = tool.json({"audit", "--json"}, 1)[0]["missing_since"];
  auto second = tool.json({"audit", "--json"}, 1)[0]["missing_since"];
  CHECK(first.is_string());
  CHECK(first == second);
  tool.make_dir("w/gone");
  CHECK(tool.json({"audit", "--json"})[0]["missing_since"].is_null());
}

TEST_CASE("audit --jobs takes a number of parallel checks from 1", "[audit][conformance]") {
  Tool tool;
  tool.ok({"set", "ok", tool.make_dir("w/ok")});
  CHECK(tool.run({"audit", "--jobs", "4"}).exit_code == 0);
  CHECK(tool.run({"audit", "-j", "1", "--json"}).exit_code == 0);
  require_error(tool.run({"audit", "--jobs", "0"}), 2);
  require_error(tool.run({"audit", "--jobs", "many"}), 2);
}

TEST_CASE(
    "audit reports ok for every path a case-insensitive or automount share leaves out of its "
    "listing, and missing for a truly absent one (skipped without FUSE)",
    "[audit][fuse]") {
  Tool tool;
  const std::string listing = GENERATE(std::string("swapcase"), std::string("none"));
  tfimm::test::DisagreeingMount::Options options;
  options.listing = listing;
  for (int i = 0; i < 9; ++i) options.exists.push_back("models/m" + std::to_string(i));
  tfimm::test::DisagreeingMount share(tool.path("share"), options);
  if (!share.usable()) return;
  INFO("listing: " << listing);
  for (int i = 0; i < 9; ++i) {
    const std::string name = "m" + std::to_string(i);
    tool.ok({"set", name, share / ("models/" + name)});
  }
  tool.ok({"set", "absent", share / "models/absent"});

  auto json = tool.json({"audit", "--json"}, 1);
  REQUIRE(json.size() == 10);
  for (const auto& item : json) {
    INFO(item.dump());
    CHECK(item.at("status") == (item.at("name") == "absent" ? "missing" : "ok"));
  }
  auto r = tool.run({"audit"});
  CHECK(r.exit_code == 1);
  CHECK(lines(r.out).back().find("10 entries checked, 9 ok, 1 missing; 1 stale") == 0);
}
