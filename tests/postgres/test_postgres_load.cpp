// Many processes writing one registry on a PostgreSQL server, and a server
// that crashes under them: nothing acknowledged is ever lost.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "postgres_server.hpp"
#include "testutil.hpp"
#include "tfimm/errors.hpp"
#include "tfimm/registry.hpp"
#include "tfimm/transfer.hpp"

using namespace tfimm;

namespace {

// Forks `n` workers running `work(i, ack)`, where `ack` is a pipe to which a
// worker writes one line per acknowledged set; returns the lines and checks
// that every worker exited 0.
std::vector<std::string> run_workers(int n, const std::function<int(int, int)>& work) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  std::vector<pid_t> pids;
  for (int i = 0; i < n; ++i) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::close(fds[0]);
      int code = 1;
      try {
        code = work(i, fds[1]);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "worker %d: %s\n", i, e.what());
      }
      ::_exit(code);
    }
    pids.push_back(pid);
  }
  ::close(fds[1]);
  std::string all;
  char buf[4096];
  for (ssize_t got; (got = ::read(fds[0], buf, sizeof buf)) > 0;)
    all.append(buf, static_cast<std::size_t>(got));
  ::close(fds[0]);
  for (pid_t pid : pids) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
  }
  std::vector<std::string> lines;
  for (std::size_t at = 0, nl; (nl = all.find('\n', at)) != std::string::npos; at = nl + 1) {
    lines.push_back(all.substr(at, nl - at));
  }
  return lines;
}

void ack(int fd, const std::string& name) {
  const std::string line = name + "\n";  // shorter than PIPE_BUF: written whole
  (void)!::write(fd, line.data(), line.size());
}

}  // namespace

TEST_CASE("16 processes x 500 sets on one registry: every set is there, with its history",
          "[postgresql][load]") {
  test::TestContext ctx;
  test::PgSchema schema;
  Registry(schema.location()).set_dir("/cache");  // created before the load
  const auto acked = run_workers(16, [&](int worker, int fd) {
    Registry reg(schema.location(), RegistryOptions{std::chrono::seconds(60)});
    for (int k = 0; k < 500; ++k) {
      const std::string name = "w" + std::to_string(worker) + "-" + std::to_string(k);
      reg.set_model_cache(name, "/m/" + name);
      ack(fd, name);
    }
    return 0;
  });
  CHECK(acked.size() == 16 * 500);
  Registry reg(schema.location());
  CHECK(reg.list_cached_models().size() == 16 * 500);
  for (const auto& name : acked) CHECK(reg.cached_model_path(name) == "/m/" + name);
  CHECK(schema.sql("SELECT count(*) FROM history WHERE action = 'set'") == "8000");
}

TEST_CASE("a server that crashes and restarts during a load run loses no acknowledged set",
          "[postgresql][load][faults]") {
  test::TestContext ctx;
  test::PgServer server;
  Registry(server.url()).set_dir("/cache");
  const pid_t crasher = ::fork();
  if (crasher == 0) {
    // After the writers have started: stop the server as a crash would,
    // and start it again.
    ::usleep(700000);
    try {
      server.halt();
      ::usleep(300000);
      server.resume();
    } catch (...) {
      ::_exit(1);
    }
    ::_exit(0);
  }
  const auto acked = run_workers(4, [&](int worker, int fd) {
    Registry reg(server.url(), RegistryOptions{std::chrono::seconds(10)});
    int errors = 0;
    int k = 0;
    // For 3 s: well past the crash and the restart.
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(3);
    for (; std::chrono::steady_clock::now() < until; ++k) {
      const std::string name = "w" + std::to_string(worker) + "-" + std::to_string(k);
      try {
        reg.set_model_cache(name, "/m/" + name);
        ack(fd, name);
      } catch (const RegistryError&) {
        ++errors;  // refused, or unknown when the COMMIT was cut: never acknowledged
        ack(fd, "!refused");
        ::usleep(20000);
      }
    }
    return errors < k ? 0 : 2;
  });
  int status = 0;
  ::waitpid(crasher, &status, 0);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  std::size_t refused = 0;
  Registry reg(server.url());
  const auto names = reg.list_cached_models();
  const std::set<std::string> stored(names.begin(), names.end());
  std::size_t lost = 0;
  for (const auto& name : acked) {
    if (name == "!refused") {
      ++refused;
    } else if (stored.count(name) == 0) {
      ++lost;
    }
  }
  INFO(acked.size() << " acknowledged, " << stored.size() << " stored");
  CHECK(lost == 0);
  CHECK(refused > 0);  // the crash did cut in
  CHECK(acked.size() > refused);
}

TEST_CASE("under concurrent writers to one name each history row records the path it replaced",
          "[postgresql][load][history]") {
  test::TestContext ctx;
  test::PgSchema schema;
  Registry(schema.location()).set_model_cache("shared", "/start");
  run_workers(8, [&](int worker, int fd) {
    Registry reg(schema.location(), RegistryOptions{std::chrono::seconds(60)});
    for (int k = 0; k < 100; ++k) {
      reg.set_model_cache("shared", "/w" + std::to_string(worker) + "/" + std::to_string(k));
      ack(fd, "set");
    }
    return 0;
  });
  Registry reg(schema.location());
  auto rows = reg.history("shared");
  REQUIRE(rows.size() == 801);
  std::reverse(rows.begin(), rows.end());  // oldest first
  CHECK_FALSE(rows[0].old_path);
  std::size_t broken = 0;
  for (std::size_t i = 1; i < rows.size(); ++i) {
    if (rows[i].old_path != rows[i - 1].new_path) ++broken;
  }
  CHECK(broken == 0);
  CHECK(reg.cached_model_path("shared") == rows.back().new_path);
}

TEST_CASE("a client killed during transactions and imports leaves each one whole or absent",
          "[postgresql][load][crash]") {
  test::TestContext ctx;
  test::PgSchema schema;
  Registry(schema.location()).set_dir("/cache");
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  const pid_t child = ::fork();
  if (child == 0) {
    ::close(fds[0]);
    try {
      Registry reg(schema.location());
      for (int k = 0;; ++k) {
        if (k % 2 == 0) {
          reg.transaction([&](Transaction& tx) {
            for (int i = 0; i < 200; ++i) {
              tx.set_model_cache("t" + std::to_string(k) + "_" + std::to_string(i), "/m");
            }
          });
        } else {
          Snapshot snapshot;
          for (int i = 0; i < 200; ++i) {
            snapshot.models.push_back(
                {"t" + std::to_string(k) + "_" + std::to_string(i), "/m", false, ""});
          }
          reg.import(snapshot);
        }
        ack(fds[1], std::to_string(k));
      }
    } catch (...) {
      ::_exit(1);
    }
  }
  ::close(fds[1]);
  ::usleep(800000);
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  CHECK(WIFSIGNALED(status));
  std::string all;
  char buf[4096];
  for (ssize_t got; (got = ::read(fds[0], buf, sizeof buf)) > 0;) {
    all.append(buf, static_cast<std::size_t>(got));
  }
  ::close(fds[0]);
  int acked = 0;
  for (char c : all) acked += c == '\n' ? 1 : 0;
  REQUIRE(acked > 0);
  Registry reg(schema.location());
  std::map<int, int> per_batch;
  for (const auto& name : reg.list_cached_models()) {
    ++per_batch[std::stoi(name.substr(1, name.find('_') - 1))];
  }
  for (const auto& [k, count] : per_batch) {
    INFO("batch " << k);
    CHECK(count == 200);  // all of it, never part
  }
  for (int k = 0; k < acked; ++k) CHECK(per_batch.count(k) == 1);  // nothing acknowledged lost
  reg.set_model_cache("after", "/after");                          // the registry is still usable
  CHECK(reg.cached_model_path("after") == "/after");
}
