// Load: many processes writing and reading one registry at once, a writer
// held up by another process's lock, and many processes opening (and
// migrating) the same registry at the same moment.
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <map>
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

using Clock = std::chrono::steady_clock;

// Every stdout line of `exit` that starts with `prefix`.
std::vector<std::string> lines_starting(const Exit& exit, const std::string& prefix) {
  std::vector<std::string> out;
  for (const auto& line : exit.lines()) {
    if (line.rfind(prefix, 0) == 0) out.push_back(line);
  }
  return out;
}

// Every migration this build knows, as migrations_of() lists them.
std::vector<std::vector<std::string>> all_migrations() {
  std::vector<std::vector<std::string>> all;
  for (int v = 1; v <= tfimm::schema_version(); ++v) all.push_back({std::to_string(v)});
  return all;
}

std::vector<std::vector<std::string>> migrations_of(const std::string& registry) {
  SqliteProbe db(registry);
  return db.rows("SELECT version FROM schema_migrations ORDER BY version");
}

}  // namespace

TEST_CASE("16 processes writing through the library and 8 through the tool lose no write",
          "[load]") {
  test::TestContext ctx;
  const std::string reg = ctx.path("shared/registry.db");
  tfimm::Registry(reg).set_model_cache("seed", "/seed");

  const int lib_procs = 16;
  const int lib_writes = scaled(500, 2000);
  const int tool_procs = kTool.empty() ? 0 : 8;
  const int tool_writes = scaled(100, 400);
  if (kTool.empty()) WARN("tfimm-cache is not built: the tool half of the load is skipped");

  // The library's default busy timeout (5 s); a sanitizer build runs every
  // process several times slower, so there the writers get 20 s.
  const std::string busy = kSanitized ? "20000" : "5000";
  const auto start_at = std::to_string(epoch_ms() + 500);
  std::vector<Child> children;
  for (int p = 0; p < lib_procs; ++p) {
    children.push_back(
        start_worker({"--busy", busy, "--start-at", start_at, "set-many", reg,
                      "lib" + std::to_string(p) + "_", std::to_string(lib_writes), "/load"}));
  }
  for (int p = 0; p < tool_procs; ++p) {
    children.push_back(
        start_worker({"--busy", busy, "--start-at", start_at, "tool-loop", kTool, reg,
                      "tool" + std::to_string(p) + "_", std::to_string(tool_writes)}));
  }
  const auto started = Clock::now();
  // The WAL's size while they write: the library turns SQLite's automatic
  // checkpoints off (the WAL-reset bug, README "Power loss") and checkpoints
  // itself, which must keep the WAL as bounded as SQLite's own did.
  std::atomic<bool> writing{true};
  std::atomic<long long> largest_wal{0};
  std::thread sampler([&] {
    while (writing) {
      struct stat st {};
      if (::stat((reg + "-wal").c_str(), &st) == 0 && st.st_size > largest_wal) {
        largest_wal = st.st_size;
      }
      std::this_thread::sleep_for(milliseconds(5));
    }
  });
  const auto exits = wait_all(children, milliseconds(600000));
  writing = false;
  sampler.join();
  const double took = seconds_since(started) - 0.5;

  // A write may fail only as the library promises: RegistryBusy after
  // waiting the whole busy timeout. Anything else (another error, or busy
  // before the timeout) is a broken guarantee.
  std::size_t acks = 0;
  int busy_failures = 0;
  long long longest = 0;  // the longest one library set took, ms
  const long long busy_ms = std::stoll(busy);
  for (std::size_t p = 0; p < exits.size(); ++p) {
    INFO("process " << p << ": " << exits[p].describe());
    acks += lines_starting(exits[p], "ack ").size();
    for (const auto& line : lines_starting(exits[p], "longest ")) {
      longest = std::max(longest, std::stoll(line.substr(8)));
    }
    const bool lib = p < static_cast<std::size_t>(lib_procs);
    if (exits[p].code == 0) {
      CHECK(lines_starting(exits[p], "ack ").size() ==
            static_cast<std::size_t>(lib ? lib_writes : tool_writes));
      continue;
    }
    const auto errors = lines_starting(exits[p], "error ");
    const auto fails = lines_starting(exits[p], "fail ");
    REQUIRE(errors.size() + fails.size() == 1);
    const std::string& failure = errors.empty() ? fails[0] : errors[0];
    long long waited = -1;
    const auto after = failure.find(" after ");
    if (after != std::string::npos) waited = std::stoll(failure.substr(after + 7));
    const bool busy_error =
        failure.rfind("error RegistryBusy after", 0) == 0 ||
        (failure.rfind("fail ", 0) == 0 && failure.find("busy") != std::string::npos);
    INFO("failure: " << failure);
    CHECK(busy_error);
    CHECK(waited >= busy_ms);
    ++busy_failures;
  }
  const std::size_t expected =
      static_cast<std::size_t>(lib_procs * lib_writes + tool_procs * tool_writes);

  SqliteProbe db(reg);
  std::map<std::string, std::string> stored;
  for (const auto& row : db.rows("SELECT name, path FROM models")) stored[row[0]] = row[1];
  std::size_t missing = 0;
  for (std::size_t p = 0; p < exits.size(); ++p) {
    const bool lib = p < static_cast<std::size_t>(lib_procs);
    const std::string prefix =
        lib ? "lib" + std::to_string(p) + "_"
            : "tool" + std::to_string(p - static_cast<std::size_t>(lib_procs)) + "_";
    for (const auto& ack : lines_starting(exits[p], "ack ")) {
      const std::string name = prefix + ack.substr(4);
      const auto found = stored.find(name);
      missing += found == stored.end() || found->second != (lib ? "/load/" : "/tool/") + name;
    }
  }
  // Every acknowledged write is there, and nothing else.
  CHECK(missing == 0);
  CHECK(stored.size() == acks + 1);
  // Not even a busy failure: with SQLite's default busy handler (sleeps of
  // up to 100 ms) one writer of 24 could starve past the timeout here.
  CHECK(busy_failures == 0);
  CHECK(db.integrity() == "ok");
  CHECK(db.integer("SELECT count(*) FROM history WHERE action = 'set'") ==
        static_cast<std::int64_t>(acks + 1));
  // SQLite's default checkpoints after 1000 pages; a commit of a few pages
  // each, 4 KiB a page plus a 24-byte frame header. Twice that, and the WAL
  // is not growing with the number of writes (about 40 000 pages here).
  const long long wal_bound = 2 * 1000 * (4096 + 24) + 32;
  INFO("largest WAL " << largest_wal << " bytes");
  CHECK(largest_wal > 0);
  CHECK(largest_wal <= wal_bound);
  figure("load: " + std::to_string(lib_procs) + " processes x " + std::to_string(lib_writes) +
         " library sets + " + std::to_string(tool_procs) + " x " + std::to_string(tool_writes) +
         " tool sets at once: " + std::to_string(acks) + " of " + std::to_string(expected) +
         " writes acknowledged in " + std::to_string(took) + " s (" +
         std::to_string(static_cast<double>(expected) / took) + " commits/s), " +
         std::to_string(busy_failures) + " processes failed busy, " + std::to_string(missing) +
         " writes lost, integrity " + db.integrity() + "; the longest single library set took " +
         std::to_string(longest) + " ms; the largest WAL " + std::to_string(largest_wal / 1024) +
         " KiB");
}

TEST_CASE("readers never see part of a transaction while a writer commits", "[load][isolation]") {
  test::TestContext ctx;
  const std::string reg = ctx.path("registry.db");
  const std::string stop = ctx.path("stop");
  REQUIRE(run_worker({"txn-loop", reg, "0", "1"}).code == 0);

  const int generations = scaled(300, 3000);
  const int readers = 4;
  std::vector<Child> reader_procs;
  for (int r = 0; r < readers; ++r) reader_procs.push_back(start_worker({"reader", reg, stop}));
  Child writer = start_worker({"txn-loop", reg, "1", std::to_string(generations)});
  const auto written = writer.wait(milliseconds(300000));
  test::write_file(stop, "");
  const auto read = wait_all(reader_procs, milliseconds(60000));

  INFO("writer: " << written.describe());
  REQUIRE(written.code == 0);
  long long reads = 0;
  long long seen = 0;
  for (const auto& r : read) {
    INFO("reader: " << r.describe());
    CHECK(r.code == 0);
    const auto summary = lines_starting(r, "reads ");
    REQUIRE(summary.size() == 1);
    long long n = 0, g = 0, last = 0;
    REQUIRE(std::sscanf(summary[0].c_str(), "reads %lld generations %lld last %lld", &n, &g,
                        &last) == 3);
    reads += n;
    seen += g;
    // Every reader read after the last commit.
    CHECK(last == generations);
  }
  // The readers really ran alongside the writer (else this proves nothing).
  CHECK(seen > readers * 2);
  figure("isolation: " + std::to_string(readers) + " readers made " + std::to_string(reads) +
         " reads of g0..g9 while a writer committed " + std::to_string(generations) +
         " 10-entry transactions; they observed " + std::to_string(seen) +
         " distinct generations, never a torn or older one");
}

TEST_CASE("a writer blocked longer than the busy timeout gets RegistryBusy in bounded time",
          "[load][busy]") {
  test::TestContext ctx;
  const std::string reg = ctx.path("registry.db");
  tfimm::Registry(reg).set_model_cache("before", "/before");
  const milliseconds busy(300);

  Child holder = start_worker({"hold", reg, "120000"});
  REQUIRE(holder.read_line(milliseconds(30000)) == std::string("held"));

  tfimm::Registry blocked(reg, tfimm::RegistryOptions{busy});
  SECTION("the library throws RegistryBusy after the busy timeout, reads still work") {
    auto started = Clock::now();
    CHECK_THROWS_AS(blocked.set_model_cache("x", "/x"), tfimm::RegistryBusy);
    const double waited = seconds_since(started);
    CHECK(waited >= 0.25);
    CHECK(waited < 0.3 + 1.0);
    started = Clock::now();
    CHECK(blocked.list_cached_models() == std::vector<std::string>{"before"});
    const double read = seconds_since(started);
    CHECK(read < 0.25);
    figure("busy: library set with busy_timeout 300 ms threw RegistryBusy after " +
           std::to_string(static_cast<int>(waited * 1000)) + " ms; a read meanwhile took " +
           std::to_string(static_cast<int>(read * 1000)) + " ms");
  }
  SECTION("another process gets RegistryBusy after the busy timeout") {
    const auto started = Clock::now();
    const auto r = run_worker({"--busy", "300", "set", reg, "x", "/x"}, {}, milliseconds(30000));
    const double took = seconds_since(started);
    INFO(r.describe());
    CHECK(r.code == kWorkerError);
    CHECK(r.out.rfind("error RegistryBusy: ", 0) == 0);
    CHECK(r.out.find(reg) != std::string::npos);
    CHECK(took < 0.3 + 5.0);
    figure("busy: worker process with busy_timeout 300 ms ended with RegistryBusy after " +
           std::to_string(static_cast<int>(took * 1000)) + " ms (process start included)");
  }
  SECTION("the tool exits with 3 after the busy timeout") {
    if (kTool.empty()) {
      WARN("tfimm-cache is not built: skipped");
      return;
    }
    const auto started = Clock::now();
    Child tool({kTool, "--registry", reg, "--busy-timeout", "300", "set", "x", "/x"});
    const auto r = tool.wait(milliseconds(30000));
    const double took = seconds_since(started);
    INFO(r.describe());
    CHECK(r.code == 3);
    CHECK(r.err.find("busy") != std::string::npos);
    CHECK(took < 0.3 + 5.0);
    figure("busy: `tfimm-cache --busy-timeout 300 set` exited 3 after " +
           std::to_string(static_cast<int>(took * 1000)) + " ms");
  }

  holder.write_line("release");
  REQUIRE(holder.read_line(milliseconds(30000)) == std::string("released"));
  CHECK(holder.wait(milliseconds(30000)).code == 0);

  // Once the lock is gone every writer succeeds.
  blocked.set_model_cache("after", "/after");
  CHECK(run_worker({"--busy", "300", "set", reg, "worker", "/worker"}).code == 0);
  if (!kTool.empty()) {
    Child tool({kTool, "--registry", reg, "--busy-timeout", "300", "set", "tool", "/tool"});
    CHECK(tool.wait(milliseconds(30000)).code == 0);
  }
  SqliteProbe db(reg);
  CHECK(db.integer("SELECT count(*) FROM models WHERE name = 'x'") == 0);
  CHECK(db.integer("SELECT count(*) FROM models WHERE name IN ('after', 'worker')") == 2);
}

TEST_CASE("a writer waits for a lock released within the busy timeout and succeeds",
          "[load][busy]") {
  test::TestContext ctx;
  const std::string reg = ctx.path("registry.db");
  tfimm::Registry(reg).set_model_cache("before", "/before");
  Child holder = start_worker({"hold", reg, "600"});
  REQUIRE(holder.read_line(milliseconds(30000)) == std::string("held"));
  const auto started = Clock::now();
  tfimm::Registry(reg, tfimm::RegistryOptions{milliseconds(10000)}).set_model_cache("x", "/x");
  const double waited = seconds_since(started);
  CHECK(waited > 0.2);
  CHECK(waited < 5.0);
  CHECK(holder.wait(milliseconds(30000)).code == 0);
  CHECK(tfimm::Registry(reg).entry("x").has_value());
  figure("busy: a set blocked by a 600 ms lock waited " +
         std::to_string(static_cast<int>(waited * 1000)) + " ms and succeeded");
}

TEST_CASE("many processes creating a brand-new registry at once migrate it exactly once",
          "[load][migration]") {
  const int rounds = scaled(3, 20);
  const int procs = scaled(16, 32);
  int failed = 0;
  for (int round = 0; round < rounds; ++round) {
    test::TestContext ctx;
    const std::string reg = ctx.path("new/registry.db");
    const auto start_at = std::to_string(epoch_ms() + 400);
    std::vector<Child> children;
    for (int p = 0; p < procs; ++p) {
      const std::string name = "w" + std::to_string(p);
      children.push_back(start_worker({"--start-at", start_at, "set", reg, name, "/" + name}));
    }
    const auto exits = wait_all(children, milliseconds(120000));
    for (const auto& e : exits) {
      INFO("round " << round << ": " << e.describe());
      CHECK(e.code == 0);
      failed += e.code != 0;
    }
    CHECK(migrations_of(reg) == all_migrations());
    SqliteProbe db(reg);
    CHECK(db.integer("PRAGMA user_version") == tfimm::schema_version());
    CHECK(db.integer("SELECT count(*) FROM models") == procs);
    CHECK(db.integrity() == "ok");
  }
  figure("migration: " + std::to_string(rounds) + " rounds of " + std::to_string(procs) +
         " processes creating one new registry at the same moment: " + std::to_string(failed) +
         " processes failed");
}

TEST_CASE("many processes opening a schema-1 registry at once upgrade it exactly once",
          "[load][migration]") {
  const int rounds = scaled(3, 20);
  const int procs = scaled(16, 32);
  int failed = 0;
  for (int round = 0; round < rounds; ++round) {
    test::TestContext ctx;
    const std::string reg = ctx.path("registry.db");
    create_schema1_registry(reg, 50);
    const auto start_at = std::to_string(epoch_ms() + 400);
    std::vector<Child> children;
    for (int p = 0; p < procs; ++p) {
      children.push_back(start_worker({"--start-at", start_at, "open", reg}));
    }
    const auto exits = wait_all(children, milliseconds(120000));
    for (const auto& e : exits) {
      INFO("round " << round << ": " << e.describe());
      CHECK(e.code == 0);
      CHECK(e.out.find("opened 50\n") != std::string::npos);
      failed += e.code != 0;
    }
    CHECK(migrations_of(reg) == all_migrations());
    SqliteProbe db(reg);
    CHECK(db.integer("PRAGMA user_version") == tfimm::schema_version());
    CHECK(db.integer("SELECT count(*) FROM models WHERE locked = 0 AND path LIKE '/old/%'") == 50);
    CHECK(db.integrity() == "ok");
  }
  figure("migration: " + std::to_string(rounds) + " rounds of " + std::to_string(procs) +
         " processes opening one schema-1 registry at the same moment: upgraded once, " +
         std::to_string(failed) + " processes failed");
}

}  // namespace tfimm::reliability
