// tfimm-cache prune
#include <unistd.h>

#include <catch2/catch.hpp>
#include <regex>

#include "disagreeing_mount.hpp"
#include "rawdb.hpp"
#include "tool_test.hpp"

using tfimm::tooltest::lines;
using tfimm::tooltest::require_error;
using tfimm::tooltest::Tool;

namespace {

std::vector<std::string> names(const nlohmann::json& list) {
  std::vector<std::string> out;
  for (const auto& item : list) out.push_back(item.at("name").get<std::string>());
  return out;
}

void make_mixed_registry(Tool& tool) {
  tool.ok({"set", "ok", tool.make_dir("w/ok")});
  tool.ok({"set", "gone", tool.path("w/gone")});
  REQUIRE(::symlink(tool.path("w/nothing-here").c_str(), tool.path("w/link").c_str()) == 0);
  tool.ok({"set", "link", tool.path("w/link")});
  tool.ok({"set", "kept", tool.path("w/kept")});
  tool.ok({"lock", "kept", "--reason", "usb disk"});
}

// Moves every recorded missing-since time `days` into the past.
void age_missing_since(const Tool& tool, int days) {
  tfimm::test::RawDb db(tool.registry());
  db.exec("UPDATE models SET missing_since = missing_since - " +
          std::to_string(static_cast<long long>(days) * 86400000LL) +
          " WHERE missing_since IS NOT NULL");
}

// Whether `line` starts with the words of `words`, in aligned columns.
bool starts_with_columns(const std::string& line, const std::string& words) {
  std::string pattern = "^";
  for (char c : words) {
    if (c == ' ') {
      pattern += " +";
    } else if (std::string("()[].*+?\\").find(c) != std::string::npos) {
      pattern += std::string("\\") + c;
    } else {
      pattern += c;
    }
  }
  return std::regex_search(line, std::regex(pattern));
}

}  // namespace

TEST_CASE("prune --dry-run shows exactly what would go and changes nothing",
          "[prune][conformance]") {
  Tool tool;
  make_mixed_registry(tool);
  std::string before = tool.snapshot();
  auto r = tool.run({"prune", "--dry-run"});
  CHECK(r.exit_code == 0);
  auto table = lines(r.out);
  REQUIRE(table.size() == 5);
  CHECK(starts_with_columns(table[0], "ACTION"));
  CHECK(starts_with_columns(table[1], "would forget gone"));
  CHECK(starts_with_columns(table[2], "would forget link"));
  CHECK(starts_with_columns(table[3], "kept (locked) kept"));
  CHECK(table[3].find("lock: usb disk") != std::string::npos);
  CHECK(
      starts_with_columns(table[4], "dry run, nothing changed: checked 4 entries, would forget 2"));
  CHECK(tool.snapshot() == before);
}

TEST_CASE("prune forgets stale entries, keeps locked ones, and never deletes files", "[prune]") {
  Tool tool;
  make_mixed_registry(tool);
  auto r = tool.run({"prune"});
  CHECK(r.exit_code == 0);
  CHECK(lines(r.out).back() == "checked 4 entries, forgot 2, kept 1 locked");
  CHECK(names(tool.json({"list", "--json"})) == std::vector<std::string>{"kept", "ok"});
  CHECK(tfimm::test::exists(tool.path("w/ok")));
  char target[4096];
  CHECK(::readlink(tool.path("w/link").c_str(), target, sizeof target) > 0);  // link kept

  SECTION("after unlock, the next prune forgets it") {
    tool.ok({"unlock", "kept"});
    tool.ok({"prune"});
    CHECK(names(tool.json({"list", "--json"})) == std::vector<std::string>{"ok"});
  }
}

TEST_CASE("prune --expire forgets only entries missing for at least that long", "[prune][expire]") {
  Tool tool;
  tool.ok({"set", "ok", tool.make_dir("w/ok")});
  tool.ok({"set", "gone", tool.path("w/gone")});

  // The first check starts the clock; nothing is old enough yet.
  auto r = tool.run({"prune", "--expire", "7d"});
  CHECK(r.exit_code == 0);
  auto table = lines(r.out);
  REQUIRE(table.size() == 3);
  CHECK(starts_with_columns(table[1], "kept (young) gone"));
  CHECK(table[1].find("missing since") != std::string::npos);
  CHECK(table[2] == "checked 2 entries, forgot 0, kept 0 locked and 1 missing for less than 7d");
  CHECK(names(tool.json({"list", "--json"})) == std::vector<std::string>{"gone", "ok"});

  SECTION("six days later it is still young") {
    age_missing_since(tool, 6);
    tool.ok({"prune", "--expire", "7d"});
    CHECK(names(tool.json({"list", "--json"})) == std::vector<std::string>{"gone", "ok"});
  }
  SECTION("eight days later a dry run shows it, and prune forgets it") {
    age_missing_since(tool, 8);
    std::string before = tool.snapshot();
    CHECK(starts_with_columns(lines(tool.ok({"prune", "--expire", "7d", "--dry-run"}))[1],
                              "would forget gone"));
    CHECK(tool.snapshot() == before);
    CHECK(starts_with_columns(lines(tool.ok({"prune", "--expire", "7d"}))[1], "forgot gone"));
    CHECK(names(tool.json({"list", "--json"})) == std::vector<std::string>{"ok"});
  }
  SECTION("a path that came back clears the clock") {
    age_missing_since(tool, 8);
    tool.make_dir("w/gone");
    tool.ok({"audit"});
    REQUIRE(::rmdir(tool.path("w/gone").c_str()) == 0);
    tool.ok({"prune", "--expire", "7d"});
    CHECK(names(tool.json({"list", "--json"})) == std::vector<std::string>{"gone", "ok"});
  }
}

TEST_CASE("prune --expire with a malformed age exits 2 and changes nothing",
          "[prune][errors][conformance]") {
  Tool tool;
  tool.ok({"set", "gone", tool.path("w/gone")});
  std::string before = tool.snapshot();
  for (const char* age : {"7x", "", "-1d", "soon"}) {
    INFO(age);
    require_error(tool.run({"prune", "--expire", age}), 2);
  }
  CHECK(tool.snapshot() == before);
  CHECK(tool.json({"audit", "--json"}, 1)[0]["name"] == "gone");
}

TEST_CASE(
    "prune and prune --dry-run forget no entry that a case-insensitive or automount share "
    "leaves out of its listing (skipped without FUSE)",
    "[prune][fuse]") {
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

  auto dry = lines(tool.ok({"prune", "--dry-run"}));
  REQUIRE(dry.size() == 3);
  CHECK(starts_with_columns(dry[1], "would forget absent missing"));
  CHECK(dry[2] == "dry run, nothing changed: checked 10 entries, would forget 1, kept 0 locked");

  auto done = lines(tool.ok({"prune"}));
  REQUIRE(done.size() == 3);
  CHECK(starts_with_columns(done[1], "forgot absent missing"));
  CHECK(done[2] == "checked 10 entries, forgot 1, kept 0 locked");
  auto left = tool.json({"list", "--json"});
  CHECK(names(left) ==
        std::vector<std::string>{"m0", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8"});
}
