// Tests for lib/history.cpp and Registry::history(): the history listed in
// pages, forgetting old history on request, and the stored retention that
// later changes apply a bounded amount at a time.
#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "rawdb.hpp"
#include "testutil.hpp"
#include "tfimm/errors.hpp"
#include "tfimm/registry.hpp"

namespace t = tfimm::test;
using namespace std::chrono_literals;

namespace {

constexpr std::int64_t kDay = 24 * 3600 * 1000;

tfimm::Snapshot models(int count, const std::string& prefix) {
  tfimm::Snapshot snapshot;
  for (int i = 0; i < count; ++i) {
    snapshot.models.push_back(
        {prefix + std::to_string(i), "/m/" + prefix + std::to_string(i), false, ""});
  }
  return snapshot;
}

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

TEST_CASE("history hands out every row newest first, page after page, up to the limit",
          "[history][conformance]") {
  t::TestContext ctx;
  tfimm::Registry reg(t::registry_location(ctx));
  reg.import(models(1300, "m"));
  reg.set_model_cache("last", "/m/last");

  std::vector<std::int64_t> ids;
  reg.history({}, 0, [&](const tfimm::HistoryRecord& row) { ids.push_back(row.id); });
  REQUIRE(ids.size() == 1301);
  for (std::size_t i = 1; i < ids.size(); ++i) CHECK(ids[i] == ids[i - 1] - 1);
  std::size_t limited = 0;
  reg.history({}, 700, [&](const tfimm::HistoryRecord&) { ++limited; });
  CHECK(limited == 700);
  std::size_t named = 0;
  reg.history(std::string("m7"), 0, [&](const tfimm::HistoryRecord& row) {
    CHECK(row.name == "m7");
    ++named;
  });
  CHECK(named == 1);
  CHECK(reg.history({}, 0).size() == 1301);
}

TEST_CASE("forgetting history keeps entries and their times, and records that it did",
          "[history][retention][conformance]") {
  t::TestContext ctx;
  tfimm::Registry reg(t::registry_location(ctx));
  reg.set_model_cache("a", "/m/a");
  reg.lock("a", "kept");
  std::this_thread::sleep_for(60ms);
  reg.set_model_cache("b", "/m/b");
  const auto entries = reg.entries();

  const auto dry = reg.forget_history(30ms, true);
  CHECK(dry.dry_run);
  CHECK(dry.rows == 2);
  CHECK(dry.recorded == 0);
  CHECK(reg.history().size() == 3);

  const auto report = reg.forget_history(30ms);
  CHECK(report.rows == 2);
  const auto rows = reg.history();
  REQUIRE(rows.size() == 2);
  CHECK(rows[0].action == "forget");
  CHECK(rows[0].id == report.recorded);
  CHECK(rows[0].forgot_rows == 2);
  CHECK(rows[0].forgot_through == report.through);
  CHECK(rows[1].name == "b");
  const auto after = reg.entries();
  REQUIRE(after.size() == entries.size());
  for (std::size_t i = 0; i < after.size(); ++i) {
    CHECK(after[i].created_at == entries[i].created_at);
    CHECK(after[i].updated_at == entries[i].updated_at);
    CHECK(after[i].locked == entries[i].locked);
  }
  CHECK(reg.forget_history(1h).rows == 0);  // nothing that old: no row recorded
  CHECK(reg.history().size() == 2);
  CHECK_THROWS_AS(reg.forget_history(-1ms), tfimm::InvalidInput);
}

TEST_CASE(
    "a dry-run forget or a retention query on a registry that does not exist creates "
    "nothing",
    "[history][retention][conformance]") {
  t::TestContext ctx;
  const std::string location = t::registry_location(ctx);
  tfimm::Registry reg(location);
  CHECK(reg.forget_history(0ms, true).rows == 0);
  CHECK(reg.forget_history(0ms).rows == 0);
  CHECK_FALSE(reg.history_retention());
  reg.set_history_retention(std::nullopt);
  CHECK(reg.history().empty());
  if (!t::on_postgresql()) CHECK_FALSE(t::exists(location));
}

TEST_CASE("the retention is stored for every process, at least a second, and recorded",
          "[history][retention][conformance]") {
  t::TestContext ctx;
  const std::string location = t::registry_location(ctx);
  tfimm::Registry reg(location);
  reg.set_history_retention(std::chrono::hours(24 * 90));
  CHECK(tfimm::Registry(location).history_retention() == std::chrono::hours(24 * 90));
  CHECK(reg.history()[0].action == "retain");
  CHECK(reg.history()[0].new_path == "90d");
  CHECK_THROWS_AS(reg.set_history_retention(500ms), tfimm::InvalidInput);
  CHECK_THROWS_AS(reg.set_history_retention(0ms), tfimm::InvalidInput);
  CHECK(reg.history_retention() == std::chrono::hours(24 * 90));
  // A retention change is a change set like any other: undo restores it.
  reg.set_history_retention(std::nullopt);
  CHECK_FALSE(reg.history_retention());
  reg.undo(reg.history({}, 1)[0].change_set);
  CHECK(reg.history_retention() == std::chrono::hours(24 * 90));
  CHECK(tfimm::format_duration(std::chrono::hours(24 * 14)) == "2w");
  CHECK(tfimm::format_duration(std::chrono::seconds(90)) == "90s");
  CHECK(tfimm::format_duration(std::chrono::minutes(90)) == "90m");
}

// The clock is the test's: rows are aged by rewriting their times in the
// SQLite file, so these run on SQLite only.

TEST_CASE("forgetting history forgets whole change sets only", "[history][retention]") {
  t::TestContext ctx;
  const std::string file = ctx.path("registry.db");
  tfimm::Registry reg(file);
  reg.set_model_cache("old", "/m/old");
  reg.import(models(3, "x"));  // rows 2..4, one change set
  reg.set_model_cache("new", "/m/new");
  {
    // Rows 1..3 are 100 days old; row 4, in the import's change set, is not
    // (another host's clock).
    t::RawDb db(file);
    db.exec("UPDATE history SET at = at - " + std::to_string(100 * kDay) + " WHERE id <= 3");
  }
  const auto report = reg.forget_history(std::chrono::hours(24));
  CHECK(report.rows == 1);
  CHECK(report.through == 1);
  CHECK(reg.history().size() == 5);  // the import whole, the set, the forget row
  reg.undo(2);                       // the import can still be undone whole
  CHECK_FALSE(reg.entry("x0"));
}

TEST_CASE("the stored retention forgets at most a batch of old rows per change, never the new",
          "[history][retention]") {
  t::TestContext ctx;
  const std::string file = ctx.path("registry.db");
  tfimm::Registry reg(file);
  reg.import(models(2500, "m"));  // rows 1..2500, one change set
  {
    t::RawDb db(file);
    db.exec("UPDATE history SET at = at - " + std::to_string(100 * kDay));
  }
  reg.set_model_cache("keep", "/m/keep");  // no retention yet: nothing forgotten
  CHECK(reg.history().size() == 2501);

  const std::size_t batch = tfimm::Registry::kRetentionBatch;
  reg.set_history_retention(std::chrono::hours(24 * 30));
  CHECK(reg.history().size() == 2502 - batch);
  // The import is partly forgotten now: it can no longer be undone.
  try {
    reg.undo(1500 + 1);
    FAIL("undo of a partly forgotten change set was not refused");
  } catch (const tfimm::InvalidInput& e) {
    CHECK(std::string(e.what()).find("partly forgotten") != std::string::npos);
  }
  reg.set_model_cache("a", "/m/a");
  CHECK(reg.history().size() == 2503 - 2 * batch);
  reg.set_model_cache("b", "/m/b");
  reg.set_model_cache("c", "/m/c");
  const auto rows = reg.history();
  CHECK(rows.size() == 5);              // keep, retain, a, b, c: younger than 30 days
  CHECK(reg.entries().size() == 2504);  // entries are never touched
  for (const auto& e : reg.entries()) CHECK(e.created_at > now_ms() - kDay);
}

TEST_CASE("without a retention every row is kept, however old", "[history][retention]") {
  t::TestContext ctx;
  const std::string file = ctx.path("registry.db");
  tfimm::Registry reg(file);
  reg.set_model_cache("a", "/m/a");
  {
    t::RawDb db(file);
    db.exec("UPDATE history SET at = 0");
  }
  for (int i = 0; i < 3; ++i) reg.set_model_cache("b", "/m/b" + std::to_string(i));
  CHECK(reg.history().size() == 4);
}
