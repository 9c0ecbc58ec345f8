// fork() while a Registry is in use: the child gets a working registry, the
// explicit Registry objects and the default registry behind tfimm's free
// functions alike, and the parent keeps working. Every child runs under a
// time limit and is killed if it hangs, so a deadlock fails a test instead of
// hanging it.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "testutil.hpp"
#include "tfimm/cache.hpp"
#include "tfimm/errors.hpp"
#include "tfimm/registry.hpp"

namespace t = tfimm::test;
using namespace std::chrono_literals;
using tfimm::Registry;

namespace {

constexpr int kHung = -1000;

// Waits for `pid` for at most `limit`; kills it when it takes longer.
// Returns its exit code, kHung when it had to be killed, or -signal.
int wait_for(pid_t pid, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (true) {
    int status = 0;
    const pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
    if (done < 0 && errno != EINTR) return -9999;
    if (std::chrono::steady_clock::now() >= deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return kHung;
    }
    std::this_thread::sleep_for(2ms);
  }
}

// Runs `body` in a child made with fork() from the calling thread; its
// return value is the exit code, 100 when it throws. Never returns in the
// child.
pid_t spawn(const std::function<int()>& body) {
  const pid_t pid = ::fork();
  if (pid != 0) return pid;
  int rc = 100;
  try {
    rc = body();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "child: %s\n", e.what());
  } catch (...) {
  }
  ::_exit(rc);
}

int in_child(const std::function<int()>& body, std::chrono::milliseconds limit = 15s) {
  const pid_t pid = spawn(body);
  return pid < 0 ? -9998 : wait_for(pid, limit);
}

// Threads calling reads and writes through `ops` in a loop until stopped,
// counting calls and failures.
class Traffic {
 public:
  using Op = std::function<void(int thread, long n)>;
  Traffic(int threads, Op op) {
    for (int i = 0; i < threads; ++i) {
      threads_.emplace_back([this, i, op] {
        for (long n = 0; !stop_.load(); ++n) {
          try {
            op(i, n);
            calls_.fetch_add(1);
          } catch (const std::exception& e) {
            if (failures_.fetch_add(1) == 0) std::fprintf(stderr, "traffic: %s\n", e.what());
          }
        }
      });
    }
  }
  ~Traffic() { stop(); }
  void stop() {
    stop_ = true;
    for (auto& th : threads_) {
      if (th.joinable()) th.join();
    }
  }
  long calls() const { return calls_.load(); }
  long failures() const { return failures_.load(); }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<long> calls_{0};
  std::atomic<long> failures_{0};
  std::vector<std::thread> threads_;
};

// Waits until `traffic` made at least `calls` more calls.
void let_run(const Traffic& traffic, long calls) {
  const long start = traffic.calls();
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (traffic.calls() < start + calls && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(1ms);
  }
}

}  // namespace

TEST_CASE("a child forked while other threads read and write one Registry reads and writes it",
          "[fork]") {
  t::TestContext ctx;
  const std::string file = ctx.path("registry.db");
  Registry reg(file);
  reg.set_model_cache("seed", "/data/seed");
  Traffic traffic(4, [&](int thread, long n) {
    switch (thread) {
      case 0:
        reg.set_model_cache("w" + std::to_string(n % 20), "/data/w/" + std::to_string(n));
        break;
      case 1:
        reg.transaction([&](tfimm::Transaction& tx) {
          tx.set_model_cache("tx_a", "/data/a/" + std::to_string(n));
          tx.set_model_cache("tx_b", "/data/b/" + std::to_string(n));
        });
        break;
      case 2:
        if (reg.cached_model_path("seed") != std::optional<std::string>("/data/seed")) {
          throw std::runtime_error("seed lost");
        }
        break;
      default:
        reg.entries();
        reg.get_dir();
    }
  });
  std::vector<int> codes;
  for (int i = 0; i < 50; ++i) {
    let_run(traffic, 5);
    const std::string name = "child" + std::to_string(i);
    codes.push_back(in_child([&] {
      reg.set_model_cache(name, "/data/" + name);
      if (reg.cached_model_path(name) != "/data/" + name) return 1;
      if (reg.cached_model_path("seed") != std::optional<std::string>("/data/seed")) return 2;
      return 0;
    }));
    if (codes.back() != 0) break;  // one hung child is enough to know
  }
  let_run(traffic, 20);
  traffic.stop();
  CHECK(codes == std::vector<int>(50, 0));
  CHECK(traffic.failures() == 0);
  Registry fresh(file);
  for (int i = 0; i < 50; ++i) {
    const std::string name = "child" + std::to_string(i);
    CHECK(fresh.cached_model_path(name) == "/data/" + name);
  }
}

TEST_CASE("a child forked while other threads use the default registry reads and writes it",
          "[fork]") {
  t::TestContext ctx;
  ctx.env().set("TFIMM_REGISTRY", ctx.path("default.db"));
  // The default registry is made once per process, where the environment
  // says at first use; so the whole scenario runs in a process of its own.
  const int scenario = in_child(
      [&] {
        tfimm::set_model_cache("seed", "/data/seed");
        Traffic traffic(3, [&](int thread, long n) {
          if (thread == 0) {
            tfimm::set_model_cache("w" + std::to_string(n % 20), "/data/w/" + std::to_string(n));
          } else if (thread == 1) {
            tfimm::list_cached_models();
            tfimm::get_dir();
          } else if (tfimm::cached_model_path("seed") != std::optional<std::string>("/data/seed")) {
            throw std::runtime_error("seed lost");
          }
        });
        int failed = 0;
        for (int i = 0; i < 50; ++i) {
          let_run(traffic, 5);
          const std::string name = "child" + std::to_string(i);
          const int rc = in_child([&] {
            tfimm::set_model_cache(name, "/data/" + name);
            return tfimm::cached_model_path(name) == "/data/" + name ? 0 : 1;
          }, 10s);
          if (rc != 0) {
            std::fprintf(stderr, "fork %d: child ended with %d\n", i, rc);
            ++failed;
            break;
          }
        }
        let_run(traffic, 20);
        traffic.stop();
        if (traffic.failures() != 0) return 2;
        return failed == 0 ? 0 : 1;
      },
      120s);
  CHECK(scenario == 0);
  Registry fresh(ctx.path("default.db"));
  CHECK(fresh.list_cached_models().size() == 1 + 20 + 50);
}
