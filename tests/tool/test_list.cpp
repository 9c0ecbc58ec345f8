// tfimm-cache list
#include <catch2/catch.hpp>
#include <regex>

#include "disagreeing_mount.hpp"
#include "tool_test.hpp"

using tfimm::tooltest::has_escape;
using tfimm::tooltest::lines;
using tfimm::tooltest::run_in_terminal;
using tfimm::tooltest::Tool;

namespace {

bool is_iso_utc(const std::string& text) {
  return std::regex_match(text, std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)"));
}

}  // namespace

TEST_CASE("list shows the entries sorted by name in aligned columns", "[list][conformance]") {
  Tool tool;
  std::string here = tool.make_dir("w/zeta");
  tool.ok({"set", "zeta", here});
  tool.ok({"set", "a", tool.path("w/a-long-missing-path")});
  tool.ok({"set", "middle_name", "/m"});
  tool.ok({"lock", "middle_name", "--reason", "shared disk"});

  auto table = lines(tool.ok({"list"}));
  REQUIRE(table.size() == 4);
  CHECK(table[0].rfind("NAME", 0) == 0);
  CHECK(table[1].rfind("a ", 0) == 0);
  CHECK(table[2].rfind("middle_name ", 0) == 0);
  CHECK(table[3].rfind("zeta ", 0) == 0);
  // Every column starts at the same offset on every line that has it.
  for (const char* column : {"PATH", "EXISTS", "LOCKED"}) {
    auto offset = table[0].find(column);
    REQUIRE(offset != std::string::npos);
    for (std::size_t i = 1; i < table.size(); ++i) {
      if (table[i].size() <= offset) continue;  // an empty last column
      INFO(table[i]);
      CHECK(table[i][offset - 1] == ' ');
      CHECK(table[i][offset] != ' ');
    }
  }
  auto exists = table[0].find("EXISTS");
  CHECK(table[1].substr(exists) == "no");
  CHECK(table[2].substr(exists, 4) == "no  ");
  CHECK(table[3].substr(exists) == "yes");
  CHECK(table[2].size() > table[0].find("LOCKED"));
  CHECK(table[2].find("locked: shared disk") != std::string::npos);
}

TEST_CASE("list --json has one object per entry with the documented fields", "[list][json]") {
  Tool tool;
  std::string here = tool.make_dir("w/resnet18");
  tool.ok({"set", "resnet18", here});
  tool.ok({"set", "vit", "/nowhere/vit"});
  tool.ok({"lock", "vit", "--reason", "usb"});

  auto json = tool.json({"list", "--json"});
  REQUIRE(json.is_array());
  REQUIRE(json.size() == 2);
  for (const auto& item : json) {
    CHECK(item.size() == 9);
    CHECK(item.at("name").is_string());
    CHECK(item.at("path").is_string());
    CHECK(item.at("exists").is_boolean());
    CHECK(item.at("status").is_string());
    CHECK(item.at("locked").is_boolean());
    CHECK(item.at("lock_reason").is_string());
    CHECK(is_iso_utc(item.at("created_at").get<std::string>()));
    CHECK(is_iso_utc(item.at("updated_at").get<std::string>()));
    CHECK(item.at("local_to").is_string());
  }
  CHECK(json[0]["name"] == "resnet18");
  CHECK(json[0]["path"] == here);
  CHECK(json[0]["exists"] == true);
  CHECK(json[0]["status"] == "ok");
  CHECK(json[0]["locked"] == false);
  CHECK(json[1]["name"] == "vit");
  CHECK(json[1]["exists"] == false);
  CHECK(json[1]["status"] == "missing");
  CHECK(json[1]["locked"] == true);
  CHECK(json[1]["lock_reason"] == "usb");
}

TEST_CASE("list of an empty registry prints nothing in a pipe and [] as JSON", "[list]") {
  Tool tool;
  auto r = tool.run({"list"});
  CHECK(r.exit_code == 0);
  CHECK(r.out.empty());
  CHECK(tool.json({"list", "--json"}) == nlohmann::json::array());
  CHECK_FALSE(tfimm::test::exists(tool.registry()));  // reading creates nothing
}

TEST_CASE("list prints control characters in paths escaped, one entry per line",
          "[list][conformance]") {
  Tool tool;
  tool.ok({"set", "odd", "/data/line\nbreak"});
  auto table = lines(tool.ok({"list"}));
  REQUIRE(table.size() == 2);
  CHECK(table[1].find("/data/line\\nbreak") != std::string::npos);
  CHECK(tool.json({"list", "--json"})[0]["path"] == "/data/line\nbreak");
}

// JSON arrays are written one element at a time; the text must still be
// exactly what one JSON document of the whole array would print.
TEST_CASE("list, audit and history --json print the array as one formatted document",
          "[list][json]") {
  Tool tool;
  const auto canonical = [](const std::string& out) {
    return nlohmann::ordered_json::parse(out).dump(2) + "\n";
  };
  CHECK(tool.ok({"list", "--json"}) == "[]\n");
  tool.ok({"set", "resnet18", tool.make_dir("w/resnet18")});
  const std::string one = tool.ok({"list", "--json"});
  CHECK(one == canonical(one));
  tool.ok({"set", "odd", "/data/line\nbreak \xc3\xa9"});
  tool.ok({"set", "vit", "/nowhere/vit"});
  tool.ok({"lock", "vit", "--reason", "usb \"quoted\""});
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"list", "--json"}, {"history", "--json"}}) {
    const std::string out = tool.ok(args);
    INFO(out);
    CHECK(out == canonical(out));
  }
  const auto audit = tool.run({"audit", "--json"});
  CHECK(audit.exit_code == 1);
  CHECK(audit.out == canonical(audit.out));
  CHECK(nlohmann::json::parse(audit.out).size() == 3);
}

TEST_CASE(
    "list says unknown, not no, for a path it could not check, in text and in JSON (skipped "
    "without FUSE)",
    "[list][json][fuse]") {
  Tool tool;
  tfimm::test::DisagreeingMount::Options options;
  options.exists = {"models/here"};
  options.fail = {{"models/denied", "EACCES"}, {"models/broken", "EIO"}};
  tfimm::test::DisagreeingMount share(tool.path("share"), options);
  if (!share.usable()) return;
  for (const char* name : {"here", "gone", "denied", "broken"}) {
    tool.ok({"set", name, share / (std::string("models/") + name)});
  }

  auto json = tool.json({"list", "--json"});
  REQUIRE(json.size() == 4);
  const auto field = [&](std::size_t i, const char* key) { return json[i].at(key); };
  CHECK(field(0, "name") == "broken");
  CHECK(field(0, "exists").is_null());
  CHECK(field(0, "status") == "error");
  CHECK(field(1, "name") == "denied");
  CHECK(field(1, "exists").is_null());
  CHECK(field(1, "status") == "not_accessible");
  CHECK(field(2, "name") == "gone");
  CHECK(field(2, "exists") == false);
  CHECK(field(2, "status") == "missing");
  CHECK(field(3, "name") == "here");
  CHECK(field(3, "exists") == true);
  CHECK(field(3, "status") == "ok");

  auto table = lines(tool.ok({"list"}));
  REQUIRE(table.size() == 5);
  const auto exists = table[0].find("EXISTS");
  CHECK(table[1].substr(exists).rfind("unknown: error", 0) == 0);
  CHECK(table[2].substr(exists).rfind("unknown: not_accessible", 0) == 0);
  CHECK(table[3].substr(exists) == "no");
  CHECK(table[4].substr(exists) == "yes");
}

TEST_CASE(
    "list checks paths in parallel, --jobs at once, with a progress bar only at a terminal "
    "(skipped without FUSE)",
    "[list][fuse]") {
  Tool tool;
  constexpr int kDelayMs = 200;
  constexpr int kPaths = 20;
  tfimm::test::DisagreeingMount::Options options;
  options.delay_ms = kDelayMs;
  nlohmann::json models = nlohmann::json::array();
  for (int i = 0; i < kPaths; ++i) {
    // One directory each: every path costs at least two slow lookups.
    options.exists.push_back("d" + std::to_string(i) + "/model");
    models.push_back({{"name", "m" + std::to_string(i)},
                      {"path", tool.path("share/d" + std::to_string(i) + "/model")},
                      {"locked", false},
                      {"lock_reason", ""}});
  }
  tfimm::test::DisagreeingMount share(tool.path("share"), options);
  if (!share.usable()) return;
  const nlohmann::json backup{
      {"format", "tfimm-cache-export"}, {"version", 1}, {"cache_dir", nullptr}, {"models", models}};
  tool.ok({"import", "-"}, backup.dump());

  // How many of the share's (slow) lookups were in flight at once: the
  // checks' parallelism, seen by the file system, whatever the machine's load.
  const auto in_flight = [&](const std::vector<std::string>& args) {
    share.max_in_flight();  // from here on
    auto json = tool.json(args);
    REQUIRE(json.size() == kPaths);
    for (const auto& item : json) CHECK(item.at("status") == "ok");
    return share.max_in_flight();
  };
  const int by_default = in_flight({"list", "--json"});
  CHECK(by_default > 4);
  const int four = in_flight({"list", "--json", "--jobs", "4"});
  CHECK(four >= 2);
  CHECK(four <= 4);
  INFO("in flight at once: " << by_default << " by default, " << four << " with --jobs 4");

  const auto piped = tool.run({"list"});
  CHECK(piped.exit_code == 0);
  CHECK_FALSE(has_escape(piped.err));
  const std::string seen =
      run_in_terminal({TFIMM_TOOL, "--registry", tool.registry(), "list"}, {{"TERM", "xterm"}});
  CHECK(seen.find("checking paths [") != std::string::npos);
  CHECK(seen.find("m19") != std::string::npos);
}

TEST_CASE("list --jobs takes a number of parallel checks from 1", "[list][conformance]") {
  Tool tool;
  tool.ok({"set", "resnet18", tool.make_dir("w/resnet18")});
  CHECK(tool.ok({"list", "--jobs", "1"}).find("resnet18") != std::string::npos);
  tfimm::tooltest::require_error(tool.run({"list", "--jobs", "0"}), 2);
}
