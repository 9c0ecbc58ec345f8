// Registry::transaction() and Transaction: inside the body the registry is
// changed and read only through the Transaction, so that no call returns a
// promise ("durable when it returns") that a rollback then breaks; and a
// Transaction used outside its body is refused, never a crash.
#include <sys/wait.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "testutil.hpp"
#include "tfimm/cache.hpp"
#include "tfimm/errors.hpp"
#include "tfimm/registry.hpp"

namespace t = tfimm::test;
using namespace std::chrono_literals;
using tfimm::Registry;
using tfimm::Transaction;
using tfimm::TransactionMisuse;

namespace {

// Every member of Registry that touches the registry, by name.
std::vector<std::pair<std::string, std::function<void()>>> every_member(Registry& reg,
                                                                        const std::string& dir) {
  tfimm::Snapshot snap;
  snap.models.push_back({"imported", "/data/imported", false, ""});
  return {
      {"get_dir", [&reg] { reg.get_dir(); }},
      {"cache_dir", [&reg] { reg.cache_dir(); }},
      {"set_dir", [&reg, dir] { reg.set_dir(dir); }},
      {"unset_dir", [&reg] { reg.unset_dir(); }},
      {"stored_dir", [&reg] { reg.stored_dir(); }},
      {"set_model_cache", [&reg] { reg.set_model_cache("vit", "/data/other"); }},
      {"clear_model_cache", [&reg] { reg.clear_model_cache("vit"); }},
      {"list_cached_models", [&reg] { reg.list_cached_models(); }},
      {"entries", [&reg] { reg.entries(); }},
      {"entry", [&reg] { reg.entry("vit"); }},
      {"cached_model_path", [&reg] { reg.cached_model_path("vit"); }},
      {"resolve", [&reg] { reg.resolve("vit"); }},
      {"transaction",
       [&reg] { reg.transaction([](Transaction& tx) { tx.set_model_cache("nested", "/n"); }); }},
      {"lock", [&reg] { reg.lock("vit", "keep"); }},
      {"unlock", [&reg] { reg.unlock("vit"); }},
      {"audit", [&reg] { reg.audit(); }},
      {"prune", [&reg] { reg.prune(); }},
      {"history", [&reg] { reg.history(); }},
      {"snapshot", [&reg] { reg.snapshot(); }},
      {"import", [&reg, snap] { reg.import(snap); }},
      {"diagnose", [&reg] { reg.diagnose(); }},
  };
}

// Every member of Transaction, by name.
std::vector<std::pair<std::string, std::function<void(Transaction&)>>> every_tx_member() {
  return {
      {"set_model_cache", [](Transaction& tx) { tx.set_model_cache("late", "/data/late"); }},
      {"clear_model_cache", [](Transaction& tx) { tx.clear_model_cache("vit"); }},
      {"set_dir", [](Transaction& tx) { tx.set_dir("/data/late_dir"); }},
      {"unset_dir", [](Transaction& tx) { tx.unset_dir(); }},
      {"cached_model_path", [](Transaction& tx) { tx.cached_model_path("vit"); }},
      {"list_cached_models", [](Transaction& tx) { tx.list_cached_models(); }},
  };
}

std::string misuse_message(const std::function<void()>& call) {
  try {
    call();
  } catch (const TransactionMisuse& e) {
    return e.what();
  }
  return "(no TransactionMisuse)";
}

// What the registry holds (entries, locks, the cache directory, the number
// of history rows), as one comparable value.
std::string contents(const std::string& file) {
  Registry fresh(file);
  std::string out;
  const auto snap = fresh.snapshot();
  for (const auto& m : snap.models) {
    out += m.name + "=" + m.path + (m.locked ? " locked:" + m.lock_reason : "") + "\n";
  }
  out += "dir=" + snap.cache_dir.value_or("-") + "\n";
  out += "history=" + std::to_string(fresh.history().size()) + "\n";
  return out;
}

}  // namespace

TEST_CASE("every Registry member called inside its own transaction body is refused by name",
          "[transaction][conformance]") {
  t::TestContext ctx;
  const std::string file = t::registry_location(ctx);
  Registry reg(file);
  reg.set_model_cache("vit", "/data/vit");
  reg.set_dir(ctx.path("cache"));
  const auto history_before = reg.history().size();

  reg.transaction([&](Transaction& tx) {
    tx.set_model_cache("in_tx", "/data/in_tx");
    for (const auto& [name, call] : every_member(reg, ctx.path("other"))) {
      const std::string message = misuse_message(call);
      INFO(name << ": " << message);
      // get_dir() is cache_dir().path: the refusal names cache_dir.
      CHECK_THAT(message, Catch::Contains("Registry::" + (name == "get_dir" ? "cache_dir" : name)));
      CHECK_THAT(message, Catch::Contains("use the Transaction& passed to it"));
      CHECK_THAT(message, Catch::Contains(file));
    }
    // The transaction is still usable after the refusals, and unchanged.
    CHECK(tx.list_cached_models() == std::vector<std::string>{"in_tx", "vit"});
  });

  // Only the transaction's own change was committed.
  CHECK(reg.history().size() == history_before + 1);
  CHECK(reg.list_cached_models() == std::vector<std::string>{"in_tx", "vit"});
  CHECK(reg.cached_model_path("vit") == "/data/vit");
  CHECK(reg.stored_dir() == ctx.path("cache"));
  CHECK_FALSE(reg.entry("vit")->locked);
}

TEST_CASE("a write refused inside a body that then throws was never reported durable",
          "[transaction][conformance]") {
  t::TestContext ctx;
  const std::string file = t::registry_location(ctx);
  Registry reg(file);
  reg.set_model_cache("vit", "/data/vit");
  const auto before = contents(file);

  bool returned = false;
  CHECK_THROWS_AS(reg.transaction([&](Transaction& tx) {
    tx.set_model_cache("resnet18", "/data/resnet18");
    tx.clear_model_cache("vit");
    tx.set_dir(ctx.path("cache"));
    try {
      reg.set_model_cache("durable?", "/data/durable");
      returned = true;
    } catch (const TransactionMisuse&) {
    }
    throw std::runtime_error("abandon");
  }),
                  std::runtime_error);
  CHECK_FALSE(returned);
  CHECK(contents(file) == before);
  // And the registry works as before.
  reg.set_model_cache("after", "/data/after");
  CHECK(reg.list_cached_models() == std::vector<std::string>{"after", "vit"});
}

TEST_CASE("a nested transaction is refused and the outer one still commits",
          "[transaction][conformance]") {
  t::TestContext ctx;
  const std::string file = t::registry_location(ctx);
  Registry reg(file);
  reg.transaction([&](Transaction& outer) {
    outer.set_model_cache("outer", "/data/outer");
    CHECK_THROWS_WITH(
        reg.transaction([](Transaction& inner) { inner.set_model_cache("inner", "/data/inner"); }),
        Catch::Contains("Registry::transaction was called inside a transaction() body"));
  });
  CHECK(reg.list_cached_models() == std::vector<std::string>{"outer"});
}

TEST_CASE("a Transaction kept past its body is refused with a clear error, not a crash",
          "[transaction][conformance]") {
  t::TestContext ctx;
  const std::string file = t::registry_location(ctx);
  Registry reg(file);
  reg.set_model_cache("vit", "/data/vit");
  Transaction* kept = nullptr;
  reg.transaction([&](Transaction& tx) {
    kept = &tx;
    tx.set_model_cache("inside", "/data/inside");
  });
  const auto before = contents(file);
  for (const auto& [name, call] : every_tx_member()) {
    const std::string message = misuse_message([&, call = call] { call(*kept); });
    INFO(name << ": " << message);
    CHECK_THAT(message, Catch::Contains("Transaction::" + name +
                                        " was called outside its "
                                        "transaction() body"));
    CHECK_THAT(message, Catch::Contains(file));
  }
  // From another thread too.
  std::string from_thread;
  std::thread([&] { from_thread = misuse_message([&] { kept->set_dir("/x"); }); }).join();
  CHECK_THAT(from_thread, Catch::Contains("Transaction::set_dir was called outside"));
  CHECK(contents(file) == before);
}

TEST_CASE("a Transaction used by another thread during its body is refused",
          "[transaction][conformance]") {
  t::TestContext ctx;
  const std::string file = t::registry_location(ctx);
  Registry reg(file);
  std::string message;
  reg.transaction([&](Transaction& tx) {
    tx.set_model_cache("body", "/data/body");
    std::thread([&] {
      message = misuse_message([&] { tx.set_model_cache("thread", "/data/thread"); });
    }).join();
  });
  CHECK_THAT(message, Catch::Contains("from another thread than the body's"));
  CHECK(reg.list_cached_models() == std::vector<std::string>{"body"});
}

TEST_CASE("another thread calling the Registry during a transaction waits for it to end",
          "[transaction][conformance]") {
  t::TestContext ctx;
  const std::string file = t::registry_location(ctx);
  Registry reg(file);
  reg.set_model_cache("vit", "/data/vit0");
  std::atomic<bool> started{false};
  std::atomic<bool> done{false};
  std::optional<std::string> seen;
  std::thread other;
  reg.transaction([&](Transaction& tx) {
    tx.set_model_cache("vit", "/data/vit1");
    other = std::thread([&] {
      started = true;
      seen = reg.cached_model_path("vit");
      reg.set_model_cache("vit", "/data/vit2");
      done = true;
    });
    while (!started) std::this_thread::yield();
    std::this_thread::sleep_for(200ms);
    CHECK_FALSE(done);  // still waiting: the transaction is not over
    tx.set_model_cache("late", "/data/late");
  });
  other.join();
  CHECK(done);
  CHECK(seen == "/data/vit1");  // it read after the commit
  CHECK(reg.cached_model_path("vit") == "/data/vit2");
  CHECK(reg.list_cached_models() == std::vector<std::string>{"late", "vit"});
}

TEST_CASE("reads through the Transaction see its own uncommitted changes",
          "[transaction][conformance]") {
  t::TestContext ctx;
  const std::string file = t::registry_location(ctx);
  Registry reg(file);
  reg.set_model_cache("vit", "/data/vit0");
  reg.transaction([&](Transaction& tx) {
    tx.set_model_cache("vit", "/data/vit1");
    tx.set_model_cache("resnet18", "/data/resnet18");
    CHECK(tx.cached_model_path("vit") == "/data/vit1");
    CHECK(tx.clear_model_cache("resnet18"));
    CHECK(tx.list_cached_models() == std::vector<std::string>{"vit"});
    // Another Registry of the same file sees only what was committed.
    Registry other(file);
    CHECK(other.cached_model_path("vit") == "/data/vit0");
  });
  CHECK(reg.cached_model_path("vit") == "/data/vit1");
}

TEST_CASE("the free functions inside a transaction of the default registry are refused",
          "[transaction]") {
  t::TestContext ctx;
  ctx.env().set("TFIMM_REGISTRY", ctx.path("default.db"));
  // The default registry is made once per process, at first use: in a child.
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    int rc = 0;
    try {
      tfimm::default_registry().transaction([&](Transaction& tx) {
        tx.set_model_cache("vit", "/data/vit");
        try {
          tfimm::set_model_cache("free", "/data/free");
          rc = 1;
        } catch (const TransactionMisuse&) {
        }
        try {
          tfimm::list_cached_models();
          rc = 2;
        } catch (const TransactionMisuse&) {
        }
      });
      if (tfimm::list_cached_models() != std::vector<std::string>{"vit"}) rc = 3;
    } catch (...) {
      rc = 4;
    }
    ::_exit(rc);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}
