// Tests for lib/undo.cpp: change sets, and Registry::undo of every kind of
// change set, its refusals, --force and dry runs. Conformance: the same on
// every backend.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "testutil.hpp"
#include "tfimm/errors.hpp"
#include "tfimm/registry.hpp"

namespace t = tfimm::test;
using tfimm::Entry;
using tfimm::HistoryRecord;
using namespace std::chrono_literals;

namespace {

struct Fixture {
  t::TestContext ctx;
  std::string file = t::registry_location(ctx);
  tfimm::Registry reg{file};

  // The change set the newest history row belongs to.
  std::int64_t newest_set() {
    auto rows = reg.history({}, 1);
    REQUIRE(rows.size() == 1);
    return rows[0].change_set;
  }
};

// What a user sees of the registry: every entry whole, and the setting.
struct State {
  std::vector<Entry> entries;
  std::optional<std::string> dir;
};

State state(tfimm::Registry& reg) { return {reg.entries(), reg.stored_dir()}; }

bool same_entries(const std::vector<Entry>& a, const std::vector<Entry>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].name != b[i].name || a[i].path != b[i].path || a[i].locked != b[i].locked ||
        a[i].lock_reason != b[i].lock_reason || a[i].missing_since != b[i].missing_since) {
      return false;
    }
  }
  return true;
}

bool same(const State& a, const State& b) {
  return same_entries(a.entries, b.entries) && a.dir == b.dir;
}

template <typename F>
std::string refusal(F&& f) {
  try {
    f();
  } catch (const tfimm::InvalidInput& e) {
    return e.what();
  }
  FAIL("no refusal");
  return {};
}

}  // namespace

TEST_CASE("one call is one change set, whose id is that of its first row",
          "[undo][history][conformance]") {
  Fixture f;
  f.reg.set_model_cache("a", "/m/a");
  f.reg.set_model_cache("b", "/m/b");
  f.reg.transaction([](tfimm::Transaction& txn) {
    txn.set_model_cache("c", "/m/c");
    txn.clear_model_cache("a");
    txn.set_dir("/cache");
  });
  tfimm::Snapshot snapshot;
  snapshot.models = {{"x", "/m/x", true, "kept"}, {"y", "/m/y", false, ""}};
  f.reg.import(snapshot);

  auto rows = f.reg.history();
  REQUIRE(rows.size() == 8);  // a; b; transaction: c, a, dir; import: x, y, lock x
  std::reverse(rows.begin(), rows.end());
  CHECK(rows[0].change_set == rows[0].id);
  CHECK(rows[1].change_set == rows[1].id);
  CHECK(rows[1].id != rows[0].id);
  for (std::size_t i = 2; i <= 4; ++i) CHECK(rows[i].change_set == rows[2].id);
  for (std::size_t i = 5; i <= 7; ++i) CHECK(rows[i].change_set == rows[5].id);
  CHECK(rows[5].change_set != rows[2].change_set);
  CHECK(rows[7].action == "lock");
  CHECK(rows[7].old_locked == false);
  CHECK(rows[7].new_locked == true);
  CHECK(rows[7].new_lock_reason == "kept");
}

TEST_CASE("undoing a set restores the path it replaced, or forgets a new entry",
          "[undo][conformance]") {
  Fixture f;
  f.reg.set_model_cache("a", "/m/a1");
  const auto created = f.newest_set();
  f.reg.lock("a", "usb disk");
  f.reg.set_model_cache("a", "/m/a2");
  const auto replaced = f.newest_set();

  auto report = f.reg.undo(replaced);
  CHECK(report.change_set == replaced);
  CHECK(report.recorded > replaced);
  REQUIRE(report.changes.size() == 1);
  CHECK(report.changes[0].old_path == "/m/a2");
  CHECK(report.changes[0].new_path == "/m/a1");
  auto a = f.reg.entry("a");
  REQUIRE(a);
  CHECK(a->path == "/m/a1");
  CHECK(a->locked);  // a set leaves the lock alone, and so does its undo
  CHECK(a->lock_reason == "usb disk");

  // The first set made the entry; with --force (the lock and the later set
  // touched it), its undo forgets it.
  CHECK_THROWS_AS(f.reg.undo(created), tfimm::InvalidInput);
  tfimm::UndoOptions force;
  force.force = true;
  report = f.reg.undo(created, force);
  CHECK_FALSE(report.conflicts.empty());
  CHECK_FALSE(f.reg.entry("a"));
}

TEST_CASE("undoing a clear of several names re-registers each with its lock",
          "[undo][conformance]") {
  Fixture f;
  f.reg.set_model_cache("a", "/m/a");
  f.reg.set_model_cache("b", "/m/b");
  f.reg.set_model_cache("c", "/m/c");
  f.reg.lock("b", "paper results");
  const State before = state(f.reg);
  f.reg.transaction([](tfimm::Transaction& txn) {
    txn.clear_model_cache("a");
    txn.clear_model_cache("b");
    txn.clear_model_cache("c");
  });
  CHECK(f.reg.entries().empty());

  const auto report = f.reg.undo(f.newest_set());
  CHECK(report.changes.size() == 3);
  CHECK(same(state(f.reg), before));
}

TEST_CASE("undoing a prune re-registers every entry it forgot, with its missing-since time",
          "[undo][conformance]") {
  Fixture f;
  t::make_dirs(f.ctx.path("w/here"));
  f.reg.set_model_cache("here", f.ctx.path("w/here"));
  f.reg.set_model_cache("gone1", f.ctx.path("w/gone1"));
  f.reg.set_model_cache("gone2", f.ctx.path("w/gone2"));
  f.reg.audit();  // records when they were first found missing
  const State before = state(f.reg);
  REQUIRE(before.entries[0].missing_since);

  const auto pruned = f.reg.prune();
  REQUIRE(pruned.removed.size() == 2);
  CHECK(f.reg.entries().size() == 1);
  f.reg.undo(f.newest_set());
  CHECK(same(state(f.reg), before));  // missing_since included: prune --expire clocks keep running
}

TEST_CASE("undoing an import reverts what it added, changed and forgot, and the cache directory",
          "[undo][conformance]") {
  Fixture f;
  f.reg.set_model_cache("kept", "/m/kept");
  f.reg.set_model_cache("changed", "/m/old");
  f.reg.set_model_cache("forgotten", "/m/forgotten");
  f.reg.lock("forgotten", "archive");
  f.reg.set_dir("/cache/old");
  const State before = state(f.reg);

  tfimm::Snapshot snapshot;
  snapshot.models = {{"kept", "/m/kept", false, ""},
                     {"changed", "/m/new", true, "new lock"},
                     {"added", "/m/added", false, ""}};
  snapshot.cache_dir = "/cache/new";
  tfimm::ImportOptions replace;
  replace.replace = true;
  f.reg.import(snapshot, replace);
  REQUIRE_FALSE(f.reg.entry("forgotten"));
  REQUIRE(f.reg.stored_dir() == "/cache/new");

  const auto report = f.reg.undo(f.newest_set());
  CHECK(report.changes.size() == 4);  // changed, added, forgotten, the cache directory
  CHECK(same(state(f.reg), before));
}

TEST_CASE("lock and unlock invert, and so do set-dir and unset-dir", "[undo][conformance]") {
  Fixture f;
  f.reg.set_model_cache("a", "/m/a");
  f.reg.lock("a", "first");
  f.reg.lock("a", "second");
  f.reg.undo(f.newest_set());
  CHECK(f.reg.entry("a")->locked);
  CHECK(f.reg.entry("a")->lock_reason == "first");
  f.reg.unlock("a");
  f.reg.undo(f.newest_set());
  CHECK(f.reg.entry("a")->lock_reason == "first");

  f.reg.set_dir("/cache/1");
  f.reg.set_dir("/cache/2");
  f.reg.undo(f.newest_set());
  CHECK(f.reg.stored_dir() == "/cache/1");
  f.reg.unset_dir();
  f.reg.undo(f.newest_set());
  CHECK(f.reg.stored_dir() == "/cache/1");
  std::int64_t first_set_dir = 0;
  for (const auto& row : f.reg.history()) {
    if (row.action == "set_dir" && !row.undoes) first_set_dir = row.change_set;
  }
  f.reg.undo(first_set_dir, {true, false});
  CHECK_FALSE(f.reg.stored_dir());
}

TEST_CASE("undoing an undo redoes, and the undo names the change set it reverts",
          "[undo][conformance]") {
  Fixture f;
  f.reg.set_model_cache("a", "/m/a");
  f.reg.set_model_cache("b", "/m/b");
  f.reg.lock("b", "why");
  f.reg.transaction([](tfimm::Transaction& txn) {
    txn.set_model_cache("a", "/m/a2");
    txn.clear_model_cache("b");
    txn.set_dir("/cache");
  });
  const auto original = f.newest_set();
  const State after = state(f.reg);

  const auto undo = f.reg.undo(original);
  for (const auto& row : f.reg.history()) {
    if (row.change_set == undo.recorded) CHECK(row.undoes == original);
  }
  CHECK(f.reg.entry("b")->locked);
  const auto redo = f.reg.undo(undo.recorded);
  CHECK(redo.change_set == undo.recorded);
  CHECK(same(state(f.reg), after));

  // Undoing the original again: it was undone (and redone) since, which the
  // refusal says.
  const auto message = refusal([&] { f.reg.undo(original); });
  CHECK(message.find("already undone by change set " + std::to_string(undo.recorded)) !=
        std::string::npos);
}

TEST_CASE(
    "a later change to the same entry or setting refuses the undo, naming it, and force "
    "reverts anyway",
    "[undo][conformance]") {
  Fixture f;
  f.reg.set_model_cache("a", "/m/a");
  f.reg.transaction([](tfimm::Transaction& txn) {
    txn.set_model_cache("a", "/m/a2");
    txn.set_model_cache("b", "/m/b");
    txn.set_dir("/cache");
  });
  const auto target = f.newest_set();
  f.reg.set_model_cache("other", "/m/other");  // touches nothing of it
  f.reg.set_model_cache("b", "/m/b2");
  f.reg.set_dir("/cache2");
  const State before = state(f.reg);
  const auto rows_before = f.reg.history().size();

  const auto message = refusal([&] { f.reg.undo(target); });
  CHECK(message.find("b (set in change set") != std::string::npos);
  CHECK(message.find("the cache directory setting (set_dir in change set") != std::string::npos);
  CHECK(message.find(" a ") == std::string::npos);
  CHECK(message.find("--force") != std::string::npos);
  CHECK(same(state(f.reg), before));
  CHECK(f.reg.history().size() == rows_before);

  tfimm::UndoOptions force;
  force.force = true;
  const auto report = f.reg.undo(target, force);
  CHECK(report.conflicts.size() == 2);
  CHECK(f.reg.entry("a")->path == "/m/a");
  CHECK_FALSE(f.reg.entry("b"));
  CHECK_FALSE(f.reg.stored_dir());
  CHECK(f.reg.entry("other"));
}

TEST_CASE("a row id means its change set", "[undo][conformance]") {
  Fixture f;
  f.reg.transaction([](tfimm::Transaction& txn) {
    txn.set_model_cache("a", "/m/a");
    txn.set_model_cache("b", "/m/b");
  });
  const auto rows = f.reg.history();
  REQUIRE(rows.size() == 2);
  REQUIRE(rows[0].id != rows[0].change_set);
  const auto report = f.reg.undo(rows[0].id);  // the set's second row
  CHECK(report.change_set == rows[0].change_set);
  CHECK(f.reg.entries().empty());
}

TEST_CASE("a dry run of undo changes nothing and reports what the undo then does",
          "[undo][conformance]") {
  Fixture f;
  f.reg.set_model_cache("a", "/m/a");
  f.reg.set_model_cache("a", "/m/a2");
  f.reg.set_model_cache("b", "/m/b");
  f.reg.set_model_cache("b", "/m/b2");
  const auto target = f.newest_set();
  const State before = state(f.reg);
  const auto history = f.reg.history().size();

  tfimm::UndoOptions dry;
  dry.dry_run = true;
  const auto planned = f.reg.undo(target, dry);
  CHECK(planned.dry_run);
  CHECK(planned.recorded == 0);
  CHECK(same(state(f.reg), before));
  CHECK(f.reg.history().size() == history);

  const auto done = f.reg.undo(target);
  REQUIRE(done.changes.size() == planned.changes.size());
  CHECK(done.changes[0].name == planned.changes[0].name);
  CHECK(done.changes[0].new_path == planned.changes[0].new_path);
  CHECK(f.reg.entry("b")->path == "/m/b");

  // A dry run is refused exactly as the undo would be.
  f.reg.set_model_cache("a", "/m/a3");
  CHECK_THROWS_AS(f.reg.undo(f.reg.history({}, 4)[3].change_set, dry), tfimm::InvalidInput);
}

TEST_CASE("undo of an unknown id is refused, and creates no registry", "[undo][conformance]") {
  Fixture f;
  CHECK(refusal([&] { f.reg.undo(1); }).find("no change set or history row") != std::string::npos);
  CHECK(f.reg.entries().empty());
  f.reg.set_model_cache("a", "/m/a");
  CHECK(refusal([&] { f.reg.undo(12345); }).find("cannot undo 12345") != std::string::npos);
  CHECK_THROWS_AS(f.reg.undo(0), tfimm::InvalidInput);
  CHECK_THROWS_AS(f.reg.undo(-3), tfimm::InvalidInput);
  CHECK(f.reg.history().size() == 1);
}

TEST_CASE("undo of a change set whose history was forgotten is refused, saying so",
          "[undo][history][conformance]") {
  Fixture f;
  f.reg.set_model_cache("a", "/m/a");
  const auto old = f.newest_set();
  std::this_thread::sleep_for(50ms);
  f.reg.set_model_cache("b", "/m/b");
  REQUIRE(f.reg.forget_history(25ms).rows == 1);
  CHECK(refusal([&] { f.reg.undo(old); }).find("forgotten") != std::string::npos);
  // And a forget itself cannot be undone.
  CHECK(refusal([&] { f.reg.undo(f.newest_set()); }).find("cannot be brought back") !=
        std::string::npos);
  CHECK(f.reg.entry("a"));
}

TEST_CASE("undo of an import of 10 000 entries reverts every one in one transaction",
          "[undo][conformance]") {
  Fixture f;
  f.reg.set_model_cache("m00000", "/before");
  tfimm::Snapshot snapshot;
  for (int i = 0; i < 10000; ++i) {
    char name[16];
    std::snprintf(name, sizeof name, "m%05d", i);
    snapshot.models.push_back({name, std::string("/m/") + name, i % 7 == 0, ""});
  }
  f.reg.import(snapshot);
  REQUIRE(f.reg.entries().size() == 10000);
  const auto report = f.reg.undo(f.newest_set());
  CHECK(report.changes.size() == 10000);
  const auto left = f.reg.entries();
  REQUIRE(left.size() == 1);
  CHECK(left[0].path == "/before");
  CHECK_FALSE(left[0].locked);
}

TEST_CASE("names and paths with odd bytes come back byte for byte", "[undo][conformance]") {
  Fixture f;
  const std::string name = "odd name \xc3\xa9 \xe2\x98\x83 'q\" ;--";
  const std::string path = "/m/p\x01\xff\n tab\t";
  f.reg.set_model_cache(name, path);
  f.reg.lock(name, "reason \xff\xfe");
  const State before = state(f.reg);
  f.reg.clear_model_cache(name);
  f.reg.undo(f.newest_set());
  CHECK(same(state(f.reg), before));
}
