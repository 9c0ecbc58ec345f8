// tfimm-cache undo, forget-history and retain-history
#include <unistd.h>

#include <catch2/catch.hpp>
#include <future>
#include <regex>
#include <thread>

#include "tool_test.hpp"

using tfimm::tooltest::lines;
using tfimm::tooltest::require_error;
using tfimm::tooltest::Tool;
namespace t = tfimm::test;

namespace {

// The change set of the newest history row.
std::string newest_set(const Tool& tool) {
  auto rows = tool.json({"history", "--json", "--limit", "1"});
  REQUIRE(rows.size() == 1);
  return std::to_string(rows[0].at("change_set").get<long long>());
}

// What a user sees: the export (entries, locks, the cache directory) and
// the whole history.
// The registry's contents as an undo restores them: entries and settings,
// without the times of each entry's last change (an undo is a change), of
// its creation (an entry forgotten and registered again is new), and of when
// its path was first found missing (an observation that audit and prune
// record on entries they keep, not a change undo reverts).
nlohmann::json contents(const Tool& tool) {
  auto doc = nlohmann::json::parse(tool.snapshot());
  for (auto& model : doc["models"]) {
    model.erase("created_at");
    model.erase("updated_at");
    model.erase("missing_since");
  }
  return doc;
}

std::string everything(const Tool& tool) {
  return tool.snapshot() + tool.ok({"history", "--json"});
}

// Runs ARGS as `tfimm-cache --registry <tool's registry> ARGS` without
// waiting, so that two commands can race.
std::future<t::ProcessResult> start(const Tool& tool, std::vector<std::string> args) {
  return std::async(std::launch::async, [&tool, args] { return tool.run(args); });
}

}  // namespace

TEST_CASE("undo reverts each kind of change the tool makes", "[undo][conformance]") {
  Tool tool;
  tool.ok({"set", "a", "/m/a"});
  tool.ok({"set", "b", "/m/b"});
  tool.ok({"lock", "b", "--reason", "usb"});
  tool.ok({"set-dir", "/cache/1"});
  const std::string gone = tool.path("w/gone");
  tool.ok({"set", "gone", gone});
  tool.ok({"lock", "gone"});
  tool.ok({"unlock", "gone"});
  const auto before = contents(tool);

  std::vector<std::vector<std::string>> changes = {
      {"set", "a", "/m/a2"},
      {"set", "new", "/m/new"},
      {"clear", "a", "b", "nosuch"},
      {"lock", "a", "--reason", "why"},
      {"unlock", "b"},
      {"set-dir", "/cache/2"},
      {"unset-dir"},
      {"prune"},
      {"import", "--replace", "-"},
  };
  for (const auto& change : changes) {
    DYNAMIC_SECTION(change[0]) {
      const std::string input =
          R"({"format": "tfimm-cache-export", "version": 1, "cache_dir": "/cache/3",
              "models": [{"name": "a", "path": "/m/imported", "locked": true},
                         {"name": "c", "path": "/m/c"}]})";
      tool.ok(change, change[0] == "import" ? input : "");
      REQUIRE(contents(tool) != before);
      const auto out = tool.ok({"undo", newest_set(tool)});
      CHECK(out.rfind("undid change set ", 0) == 0);
      CHECK(contents(tool) == before);
    }
  }
}

TEST_CASE(
    "undo refuses with exit 2 when a later change touched the same entry, naming it, and "
    "--force reverts anyway",
    "[undo][conformance]") {
  Tool tool;
  tool.ok({"set", "a", "/m/a"});
  tool.ok({"set", "a", "/m/a2"});
  const std::string target = newest_set(tool);
  tool.ok({"lock", "a", "--reason", "later"});
  const std::string before = everything(tool);

  const auto refused = tool.run({"undo", target});
  require_error(refused, 2);
  CHECK(refused.err.find("cannot undo change set " + target) != std::string::npos);
  CHECK(refused.err.find("a (lock in change set") != std::string::npos);
  CHECK(refused.err.find("--force") != std::string::npos);
  CHECK(everything(tool) == before);
  require_error(tool.run({"undo", target, "--dry-run"}), 2);

  const auto forced = tool.run({"undo", target, "--force"});
  INFO(forced.err);
  CHECK(forced.exit_code == 0);
  CHECK(forced.err.find("overwriting the later change to a (lock in change set") !=
        std::string::npos);
  auto list = tool.json({"list", "--json"});
  REQUIRE(list.size() == 1);
  CHECK(list[0]["path"] == "/m/a");
  CHECK(list[0]["locked"] == true);  // a set leaves the lock alone, and so does its undo
}

TEST_CASE("undo --dry-run shows what it would do and changes nothing", "[undo][conformance]") {
  Tool tool;
  tool.ok({"set", "a", "/m/a"});
  tool.ok({"set", "a", "/m/a2"});
  tool.ok({"lock", "a", "--reason", "r"});
  const std::string target = newest_set(tool);
  const std::string before = everything(tool);
  std::string file_before;
  if (!t::on_postgresql()) file_before = t::read_file(tool.registry());

  const auto out = tool.ok({"undo", target, "--dry-run"});
  CHECK(out == "would undo change set " + target + ":\n  a: /m/a2 (locked: r) -> /m/a2\n");
  CHECK(everything(tool) == before);
  if (!t::on_postgresql()) CHECK(t::read_file(tool.registry()) == file_before);
  const auto json = tool.json({"undo", target, "--dry-run", "--json"});
  CHECK(json["dry_run"] == true);
  CHECK(json["recorded"].is_null());
  CHECK(everything(tool) == before);

  CHECK(tool.ok({"undo", target}) == "undid change set " + target + " (recorded as change set " +
                                         std::to_string(std::stoll(target) + 1) +
                                         "):\n  a: /m/a2 (locked: r) -> /m/a2\n");
}

TEST_CASE("undo --json has the documented fields", "[undo][json][conformance]") {
  Tool tool;
  tool.ok({"set-dir", "/cache"});
  tool.ok({"set", "a", "/m/a"});
  tool.ok({"clear", "a"});
  const auto json = tool.json({"undo", newest_set(tool), "--json"});
  CHECK(json.size() == 5);
  CHECK(json["change_set"] == 3);
  CHECK(json["recorded"] == 4);
  CHECK(json["dry_run"] == false);
  REQUIRE(json["changes"].size() == 1);
  const auto& c = json["changes"][0];
  CHECK(c.size() == 8);
  CHECK(c["name"] == "a");
  CHECK(c["setting"].is_null());
  CHECK(c["old_path"].is_null());
  CHECK(c["new_path"] == "/m/a");
  CHECK(c["old_locked"] == false);
  CHECK(c["old_lock_reason"] == "");
  CHECK(c["new_locked"] == false);
  CHECK(c["new_lock_reason"] == "");
  CHECK(json["conflicts"] == nlohmann::json::array());

  const auto undo_of_dir = tool.json({"undo", "1", "--json"});
  REQUIRE(undo_of_dir["changes"].size() == 1);
  CHECK(undo_of_dir["changes"][0]["name"].is_null());
  CHECK(undo_of_dir["changes"][0]["setting"] == "cache_dir");
  CHECK(undo_of_dir["changes"][0]["old_path"] == "/cache");
  CHECK(undo_of_dir["changes"][0]["new_path"].is_null());
}

TEST_CASE("undo of an unknown id exits 2 and creates no registry", "[undo][conformance]") {
  Tool tool;
  const auto none = tool.run({"undo", "1"});
  require_error(none, 2);
  CHECK(none.err.find("no change set or history row") != std::string::npos);
  require_error(tool.run({"undo", "1", "--dry-run"}), 2);
  require_error(tool.run({"undo", "1", "--force"}), 2);
  if (!t::on_postgresql()) CHECK_FALSE(t::exists(tool.registry()));
  tool.ok({"set", "a", "/m/a"});
  require_error(tool.run({"undo", "7"}), 2);
  require_error(tool.run({"undo", "-1"}), 2);
  require_error(tool.run({"undo", "x"}), 2);
  require_error(tool.run({"undo"}), 2);
  CHECK(tool.json({"history", "--json"}).size() == 1);
}

TEST_CASE(
    "undo of a prune whose path was registered again meanwhile is refused, and --force puts "
    "the pruned path back",
    "[undo][conformance]") {
  Tool tool;
  tool.ok({"set", "m", tool.path("w/gone")});
  tool.ok({"prune"});
  const std::string pruned = newest_set(tool);
  const std::string again = tool.make_dir("w/new");
  tool.ok({"set", "m", again});
  const auto refused = tool.run({"undo", pruned});
  require_error(refused, 2);
  CHECK(refused.err.find("m (set in change set") != std::string::npos);
  CHECK(tool.json({"list", "--json"})[0]["path"] == again);
  tool.ok({"undo", pruned, "--force"});
  CHECK(tool.json({"list", "--json"})[0]["path"] == tool.path("w/gone"));
}

TEST_CASE("undo and set of the same entry from two processes at once: no change is lost",
          "[undo][conformance]") {
  for (int round = 0; round < 4; ++round) {
    Tool tool;
    tool.ok({"set", "a", "/m/1"});
    tool.ok({"set", "a", "/m/2"});
    const std::string target = newest_set(tool);
    auto undo = start(tool, {"undo", target});
    auto set = start(tool, {"set", "a", "/m/3"});
    const auto u = undo.get();
    const auto s = set.get();
    INFO(u.err << s.err);
    REQUIRE(s.exit_code == 0);
    const auto list = tool.json({"list", "--json"});
    REQUIRE(list.size() == 1);
    // Whichever ran first, the set is never undone by the undo: it ran
    // after the undo, or it made the undo refuse.
    CHECK(list[0]["path"] == "/m/3");
    const auto history = tool.json({"history", "--json"});
    if (u.exit_code == 0) {
      REQUIRE(history.size() == 4);
      CHECK(history[0]["new_path"] == "/m/3");
      CHECK(history[1]["undoes"] == std::stoll(target));
    } else {
      CHECK(u.exit_code == 2);
      CHECK(history.size() == 3);
    }
  }
}

TEST_CASE("undo on a read-only registry fails with the read-only error and changes nothing",
          "[undo]") {
  Tool tool;
  tool.ok({"set", "a", "/m/a"});
  tool.ok({"set", "a", "/m/a2"});
  const std::string source = tool.path("");
  const std::string mount = tool.make_dir("ro");
  const std::string file_before = t::read_file(tool.registry());
  const auto r = t::run_process(
      {"unshare", "--mount", "--propagation", "private", "sh", "-c",
       "mount --bind \"$2\" \"$3\" 2>/dev/null && mount -o remount,bind,ro \"$3\" 2>/dev/null || "
       "exit 77\n\"$1\" --registry \"$3/state/registry.db\" undo 2",
       "sh", TFIMM_TOOL, source, mount});
  if (r.exit_code == 77) {
    WARN("no private mount namespace or bind mount here: read-only file system not tested");
    return;
  }
  INFO(r.out << r.err);
  CHECK(r.exit_code == 3);
  CHECK(r.err.find("read-only") != std::string::npos);
  CHECK(t::read_file(tool.registry()) == file_before);
}

TEST_CASE(
    "forget-history --dry-run counts and changes nothing, without it old history goes "
    "and a forget row says so",
    "[history][retention][conformance]") {
  Tool tool;
  tool.ok({"set", "a", "/m/a"});
  tool.ok({"clear", "a"});
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  tool.ok({"set", "b", "/m/b"});
  const std::string before = everything(tool);

  CHECK(tool.ok({"forget-history", "--older-than", "1s", "--dry-run"}) ==
        "would forget 2 history rows (up to row 2)\n");
  CHECK(everything(tool) == before);
  const std::string entries = tool.ok({"list", "--json"});
  const auto json = tool.json({"forget-history", "--older-than", "1s", "--json"});
  CHECK(json["rows"] == 2);
  CHECK(json["through"] == 2);
  CHECK(json["recorded"] == 4);
  CHECK(json["dry_run"] == false);
  CHECK(tool.ok({"list", "--json"}) == entries);  // entries and their times untouched
  const auto history = tool.json({"history", "--json"});
  REQUIRE(history.size() == 2);
  CHECK(history[0]["action"] == "forget");
  CHECK(history[0]["forgot_rows"] == 2);
  CHECK(history[0]["forgot_through"] == 2);
  CHECK(history[1]["name"] == "b");
  CHECK(tool.ok({"forget-history", "--older-than", "1d"}) ==
        "no history older than 1d to forget\n");

  const auto refused = tool.run({"undo", "1"});
  require_error(refused, 2);
  CHECK(refused.err.find("forgotten") != std::string::npos);
  require_error(tool.run({"forget-history", "--older-than", "soon"}), 2);
  require_error(tool.run({"forget-history"}), 2);
}

TEST_CASE("retain-history shows, stores and removes the retention, and later changes apply it",
          "[history][retention][conformance]") {
  Tool tool;
  CHECK(tool.ok({"retain-history"}) == "history is kept forever\n");
  CHECK(tool.json({"retain-history", "--json"})["retain"].is_null());
  tool.ok({"set", "a", "/m/a"});
  CHECK(tool.ok({"retain-history", "168h"}) ==
        "history older than 1w is forgotten as changes are made\n");
  CHECK(tool.json({"retain-history", "--json"})["retain"] == "1w");
  auto history = tool.json({"history", "--json"});
  REQUIRE(history.size() == 2);
  CHECK(history[0]["action"] == "retain");
  CHECK(history[0]["old_path"].is_null());
  CHECK(history[0]["new_path"] == "1w");

  tool.ok({"retain-history", "1s"});
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  tool.ok({"set", "b", "/m/b"});  // forgets what is older than a second
  history = tool.json({"history", "--json"});
  REQUIRE(history.size() == 1);
  CHECK(history[0]["name"] == "b");
  CHECK(tool.json({"list", "--json"}).size() == 2);

  CHECK(tool.ok({"retain-history", "forever"}) == "history is kept forever\n");
  require_error(tool.run({"retain-history", "0s"}), 2);
  require_error(tool.run({"retain-history", "often"}), 2);
  CHECK(tool.ok({"retain-history"}) == "history is kept forever\n");
}
