// tfimm-cache history
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <regex>

#include "rawdb.hpp"
#include "tool_test.hpp"

using tfimm::tooltest::lines;
using tfimm::tooltest::Tool;

namespace {

std::vector<std::string> actions(const nlohmann::json& history) {
  std::vector<std::string> out;
  for (const auto& record : history) out.push_back(record.at("action").get<std::string>());
  return out;
}

// A registry whose history holds `rows` rows of about 120 bytes of text each.
void make_history(const std::string& file, int rows) {
  tfimm::test::make_dirs(file.substr(0, file.rfind('/')));
  tfimm::test::run_process({TFIMM_TOOL, "--registry", file, "set", "seed", "/seed"});
  tfimm::test::RawDb db(file);
  db.exec(
      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < " +
      std::to_string(rows) +
      ") INSERT INTO history(at, action, name, old_path, new_path, user, host, pid) "
      "SELECT 1700000000000 + i, 'set', printf('model-%08d', i), "
      "printf('/data/models/old/a-rather-long-directory-name/%08d', i), "
      "printf('/data/models/new/a-rather-long-directory-name/%08d', i), 'user', 'host', i FROM n");
}

}  // namespace

TEST_CASE("history records each change, newest first", "[history]") {
  Tool tool;
  const std::string a = tool.make_dir("a/resnet18");
  const std::string b = tool.make_dir("b/resnet18");
  tool.ok({"set", "resnet18", a});
  tool.ok({"set", "resnet18", b});
  tool.ok({"lock", "resnet18"});
  tool.ok({"unlock", "resnet18"});
  tool.ok({"set-dir", "/cache"});
  tool.ok({"unset-dir"});
  tool.ok({"set", "gone", "/nowhere/gone"});
  tool.ok({"prune"});
  tool.ok({"clear", "resnet18"});
  tool.ok({"import", "-"}, R"({"format": "tfimm-cache-export", "version": 1,
                               "models": [{"name": "vit", "path": "/v"}]})");

  auto history = tool.json({"history", "--json"});
  CHECK(actions(history) == std::vector<std::string>{"import", "clear", "prune", "set", "unset_dir",
                                                     "set_dir", "unlock", "lock", "set", "set"});
  CHECK(history[1]["name"] == "resnet18");
  CHECK(history[1]["old_path"] == b);
  CHECK(history[1]["new_path"].is_null());
  CHECK(history[2]["name"] == "gone");
  CHECK(history[4]["name"].is_null());  // a cache-directory change
  CHECK(history[5]["new_path"] == "/cache");
  CHECK(history[2]["old_path"] == "/nowhere/gone");
  CHECK(history[8]["old_path"] == a);
  CHECK(history[8]["new_path"] == b);
  CHECK(history[9]["old_path"].is_null());
}

TEST_CASE("history --json has the documented fields", "[history][json][conformance]") {
  Tool tool;
  tool.ok({"set", "resnet18", "/a/resnet18"});
  auto history = tool.json({"history", "--json"});
  REQUIRE(history.size() == 1);
  const auto& record = history[0];
  CHECK(record.size() == 18);
  CHECK(record.at("id").is_number_integer());
  CHECK(std::regex_match(record.at("at").get<std::string>(),
                         std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)")));
  CHECK(record.at("action") == "set");
  CHECK(record.at("name") == "resnet18");
  CHECK(record.at("old_path").is_null());
  CHECK(record.at("new_path") == "/a/resnet18");
  CHECK(record.at("user").is_string());
  CHECK(record.at("host").is_string());
  CHECK(record.at("pid").is_number_integer());
  CHECK(record.at("pid").get<long long>() > 0);
  CHECK(record.at("change_set") == record.at("id"));
  CHECK(record.at("undoes").is_null());
  CHECK(record.at("old_locked").is_null());
  CHECK(record.at("old_lock_reason").is_null());
  CHECK(record.at("new_locked").is_null());
  CHECK(record.at("new_lock_reason").is_null());
  CHECK(record.at("old_missing_since").is_null());
  CHECK(record.at("forgot_through").is_null());
  CHECK(record.at("forgot_rows").is_null());
}

TEST_CASE("history NAME shows only that model and --limit keeps the newest N",
          "[history][conformance]") {
  Tool tool;
  tool.ok({"set", "resnet18", "/1"});
  tool.ok({"set", "vit", "/2"});
  tool.ok({"set", "resnet18", "/3"});
  tool.ok({"set", "resnet18", "/4"});

  auto only = tool.json({"history", "resnet18", "--json"});
  REQUIRE(only.size() == 3);
  for (const auto& record : only) CHECK(record["name"] == "resnet18");
  auto limited = tool.json({"history", "--json", "--limit", "2"});
  REQUIRE(limited.size() == 2);
  CHECK(limited[0]["new_path"] == "/4");
  CHECK(limited[1]["new_path"] == "/3");
  tfimm::tooltest::require_error(tool.run({"history", "--limit", "-1"}), 2);
}

TEST_CASE("history as text: id, change set, time in UTC, action, name, old, new, and who",
          "[history][conformance]") {
  Tool tool;
  tool.ok({"set", "resnet18", "/a"});
  tool.ok({"set-dir", "/cache"});
  tool.ok({"undo", "2"});
  auto table = lines(tool.ok({"history"}));
  REQUIRE(table.size() == 4);
  CHECK(
      std::regex_search(table[0], std::regex("^ID +SET +TIME +ACTION +NAME +OLD +NEW +BY +NOTE$")));
  CHECK(std::regex_search(
      table[1],
      std::regex(R"(^3 +3 +.* unset_dir +\(cache dir\) +/cache +- +\S+@\S+ pid \d+ +undo of 2$)")));
  CHECK(std::regex_search(
      table[2],
      std::regex(
          R"(^2 +2 +\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ +set_dir +\(cache dir\) +- +/cache +\S+@\S+ pid \d+$)")));
  CHECK(std::regex_search(table[3],
                          std::regex(R"(^1 +1 .* set +resnet18 +- +/a +\S+@\S+ pid \d+$)")));
}

TEST_CASE("history of an empty registry is empty", "[history][conformance]") {
  Tool tool;
  CHECK(tool.ok({"history"}).empty());
  CHECK(tool.json({"history", "--json"}) == nlohmann::json::array());
}

TEST_CASE("history streams: its memory does not grow with the number of rows printed",
          "[history][memory]") {
  if (tfimm::tooltest::memory_is_sanitizers()) return;
  Tool tool;
  const std::string small = tool.path("small/registry.db");
  const std::string large = tool.path("large/registry.db");
  make_history(small, 20000);
  make_history(large, 200000);
  for (const auto& format :
       std::vector<std::vector<std::string>>{{"history"}, {"history", "--json"}}) {
    const long at_small = tfimm::tooltest::peak_rss_kib(small, format);
    const long at_large = tfimm::tooltest::peak_rss_kib(large, format);
    INFO(format.size() << " args: " << at_small << " KiB at 20 000 rows, " << at_large
                       << " KiB at 200 000 rows");
    // Holding the 180 000 more rows would take well over 40 MB.
    CHECK(at_large - at_small < 8 * 1024);
  }
}
