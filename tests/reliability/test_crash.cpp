// Crashes: a writer killed with SIGKILL at random moments, during single
// writes, multi-entry transactions, large imports and schema migrations.
// Afterwards the registry must open, pass PRAGMA integrity_check, hold every
// write the worker acknowledged, and hold each interrupted transaction either
// entirely or not at all.
#include <signal.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common.hpp"
#include "fixtures.hpp"
#include "sqlite_probe.hpp"
#include "testutil.hpp"
#include "tfimm/registry.hpp"

namespace tfimm::reliability {
namespace {

using std::chrono::microseconds;

std::mt19937 make_rng() {
  const char* fixed = std::getenv("TFIMM_SEED");
  const auto seed = fixed != nullptr ? static_cast<unsigned>(std::strtoul(fixed, nullptr, 10))
                                     : std::random_device{}();
  UNSCOPED_INFO("random seed (TFIMM_SEED): " << seed);
  return std::mt19937(seed);
}

// Numbers N of the "<word> N" lines of a killed worker.
std::vector<long long> numbers(const Exit& exit, const std::string& word) {
  std::vector<long long> out;
  for (const auto& line : exit.lines()) {
    if (line.rfind(word + " ", 0) == 0) out.push_back(std::stoll(line.substr(word.size() + 1)));
  }
  return out;
}

long long max_or(const std::vector<long long>& v, long long fallback) {
  long long m = fallback;
  for (auto x : v) m = std::max(m, x);
  return m;
}

// Kills `child` after `delay`; returns what it printed until then.
Exit kill_after(Child& child, microseconds delay) {
  std::this_thread::sleep_for(delay);
  child.kill(SIGKILL);
  return child.wait(milliseconds(30000));
}

// The generation k of every path "/<root>/<k>/..." in `rows` (name, path).
std::set<long long> generations(const std::vector<std::vector<std::string>>& rows,
                                const std::string& root) {
  std::set<long long> gens;
  for (const auto& row : rows) {
    if (row[1].rfind(root, 0) != 0) {
      gens.insert(-1);
      continue;
    }
    gens.insert(std::stoll(row[1].substr(root.size())));
  }
  return gens;
}

}  // namespace

TEST_CASE("a writer killed during single writes loses no acknowledged write", "[crash]") {
  auto rng = make_rng();
  test::TestContext ctx;
  const std::string reg = ctx.path("registry.db");
  const int kills = scaled(40, 400);
  std::map<std::string, std::string> acked;
  std::size_t unacked_present = 0;
  int killed_creating = 0;
  for (int k = 0; k < kills; ++k) {
    const std::string prefix = "k" + std::to_string(k) + "_";
    Child worker = start_worker({"set-many", reg, prefix, "1000000", "/crash"});
    // Half of the kills land anywhere from start-up on, half once writing.
    if (k % 2 == 1) REQUIRE(worker.read_line(milliseconds(30000)).has_value());
    const auto exit = kill_after(worker, microseconds(rng() % 120000));
    INFO("kill " << k << ": " << exit.describe());
    REQUIRE(exit.signal == SIGKILL);
    for (auto i : numbers(exit, "ack")) {
      acked[prefix + std::to_string(i)] = "/crash/" + prefix + std::to_string(i);
    }
    if (!file_exists(reg)) continue;  // killed before it created the file
    SqliteProbe db(reg);
    REQUIRE(db.integrity() == "ok");
    if (db.integer("SELECT count(*) FROM sqlite_master WHERE name = 'models'") == 0) {
      // Killed while creating the registry: nothing acknowledged, and the
      // next process creates it as if new.
      ++killed_creating;
      REQUIRE(acked.empty());
      CHECK(tfimm::Registry(reg).list_cached_models().empty());
      continue;
    }
    std::map<std::string, std::string> stored;
    for (const auto& row : db.rows("SELECT name, path FROM models")) stored[row[0]] = row[1];
    for (const auto& [name, path] : acked) {
      INFO("acknowledged " << name);
      REQUIRE(stored.count(name) == 1);
      REQUIRE(stored[name] == path);
    }
    // At most the one write in flight is there without its acknowledgement.
    const long long last = max_or(numbers(exit, "ack"), -1);
    const auto here = db.integer("SELECT count(*) FROM models WHERE name GLOB ?1 || '*'", {prefix});
    CHECK(here <= last + 2);
    unacked_present += static_cast<std::size_t>(here - (last + 1));
  }
  CHECK(tfimm::Registry(reg).entries().size() >= acked.size());
  figure("crash: " + std::to_string(kills) +
         " SIGKILLs during single sets: " + std::to_string(acked.size()) +
         " acknowledged sets all present, " + std::to_string(unacked_present) +
         " committed but killed before acknowledging, " + std::to_string(killed_creating) +
         " killed while creating the file; integrity ok every time");
}

TEST_CASE("a writer killed during multi-entry transactions leaves each one whole or absent",
          "[crash]") {
  auto rng = make_rng();
  test::TestContext ctx;
  const std::string reg = ctx.path("registry.db");
  REQUIRE(run_worker({"txn-loop", reg, "0", "1"}).code == 0);
  const int kills = scaled(20, 200);
  long long next = 1;
  long long acked = 0;
  int in_flight_lost = 0;
  for (int k = 0; k < kills; ++k) {
    Child worker = start_worker({"txn-loop", reg, std::to_string(next), "1000000"});
    REQUIRE(worker.read_line(milliseconds(30000)).has_value());
    const auto exit = kill_after(worker, microseconds(rng() % 80000));
    INFO("kill " << k << ": " << exit.describe());
    REQUIRE(exit.signal == SIGKILL);
    acked = max_or(numbers(exit, "ack"), acked);
    const long long begun = max_or(numbers(exit, "begin"), next - 1);
    SqliteProbe db(reg);
    REQUIRE(db.integrity() == "ok");
    const auto rows = db.rows("SELECT name, path FROM models WHERE name GLOB 'g[0-9]'");
    REQUIRE(rows.size() == 10);
    const auto gens = generations(rows, "/gen/");
    INFO("generations seen: " << gens.size());
    REQUIRE(gens.size() == 1);  // all ten at one generation: never half a transaction
    const long long g = *gens.begin();
    CHECK(g >= acked);
    CHECK(g <= begun);
    in_flight_lost += begun > g;
    next = begun + 1;
  }
  figure("crash: " + std::to_string(kills) +
         " SIGKILLs during 10-entry transactions: " + std::to_string(in_flight_lost) +
         " killed mid-transaction and rolled back whole, never a partial one");
}

TEST_CASE("a writer killed during a large import leaves it whole or absent", "[crash]") {
  auto rng = make_rng();
  test::TestContext ctx;
  const std::string reg = ctx.path("registry.db");
  const int models = 1000;
  REQUIRE(run_worker({"import-loop", reg, std::to_string(models), "0", "1"}).code == 0);
  const int kills = scaled(30, 300);
  long long next = 1;
  long long acked = 0;
  int in_flight_lost = 0;
  for (int k = 0; k < kills; ++k) {
    Child worker =
        start_worker({"import-loop", reg, std::to_string(models), std::to_string(next), "1000000"});
    REQUIRE(worker.read_line(milliseconds(30000)).has_value());  // "begin": importing
    const auto exit = kill_after(worker, microseconds(rng() % 150000));
    INFO("kill " << k << ": " << exit.describe());
    REQUIRE(exit.signal == SIGKILL);
    acked = max_or(numbers(exit, "ack"), acked);
    const long long begun = max_or(numbers(exit, "begin"), next - 1);
    SqliteProbe db(reg);
    REQUIRE(db.integrity() == "ok");
    const auto rows = db.rows("SELECT name, path FROM models");
    REQUIRE(rows.size() == static_cast<std::size_t>(models));
    const auto gens = generations(rows, "/imp/");
    REQUIRE(gens.size() == 1);  // one import entirely, never a mix
    const long long g = *gens.begin();
    CHECK(g >= acked);
    CHECK(g <= begun);
    in_flight_lost += begun > g;
    next = begun + 1;
  }
  CHECK(tfimm::Registry(reg).entries().size() == static_cast<std::size_t>(models));
  figure("crash: " + std::to_string(kills) + " SIGKILLs during " + std::to_string(models) +
         "-model imports: " + std::to_string(in_flight_lost) +
         " killed mid-import and absent entirely, the rest present entirely");
}

TEST_CASE("a process killed while migrating a schema-1 registry leaves it usable", "[crash]") {
  auto rng = make_rng();
  test::TestContext ctx;
  const std::string original = ctx.path("schema1.db");
  create_schema1_registry(original, 2000);
  const std::string image = test::read_file(original);
  const int kills = scaled(30, 300);
  std::map<long long, int> versions;
  for (int k = 0; k < kills; ++k) {
    const std::string reg = ctx.path("registry" + std::to_string(k) + ".db");
    test::write_file(reg, image);
    Child worker = start_worker({"open", reg});
    REQUIRE(worker.read_line(milliseconds(30000)) == std::string("start"));
    const auto exit = kill_after(worker, microseconds(rng() % 40000));
    INFO("kill " << k << ": " << exit.describe());
    {
      SqliteProbe db(reg);
      REQUIRE(db.integrity() == "ok");
      const auto version = db.integer("PRAGMA user_version");
      ++versions[version];
      // Each migration is whole or absent: every version from 1 to the
      // newest is a state a kill may leave, never one in between.
      REQUIRE((version >= 1 && version <= tfimm::schema_version()));
      std::vector<std::vector<std::string>> applied;
      for (long long v = 1; v <= version; ++v) applied.push_back({std::to_string(v)});
      CHECK(db.rows("SELECT version FROM schema_migrations ORDER BY version") == applied);
      CHECK(db.integer("SELECT count(*) FROM sqlite_master WHERE name = 'history'") ==
            (version >= 2 ? 1 : 0));
      CHECK(db.integer(
                "SELECT count(*) FROM pragma_table_info('history') WHERE name = 'change_set'") ==
            (version >= 3 ? 1 : 0));
      CHECK(db.integer("SELECT count(*) FROM models") == 2000);
    }
    // The next process finishes the upgrade.
    tfimm::Registry registry(reg);
    CHECK(registry.entries().size() == 2000);
    SqliteProbe after(reg);
    CHECK(after.integer("PRAGMA user_version") == tfimm::schema_version());
    std::vector<std::vector<std::string>> all;
    for (int v = 1; v <= tfimm::schema_version(); ++v) all.push_back({std::to_string(v)});
    CHECK(after.rows("SELECT version FROM schema_migrations ORDER BY version") == all);
  }
  std::string left;
  for (const auto& [version, count] : versions) {
    left += (left.empty() ? "" : ", ") + std::to_string(count) + " at schema " +
            std::to_string(version);
  }
  figure("crash: " + std::to_string(kills) + " SIGKILLs while opening a schema-1 registry: " +
         left + ", never in between; all upgraded cleanly by the next process");
}

}  // namespace tfimm::reliability
