// Tests for lib/audit.cpp: checking every registered path against the disk,
// missing-since times, and prune (locks, --expire, --dry-run). Files on disk
// are never changed.
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "disagreeing_mount.hpp"
#include "rawdb.hpp"
#include "testutil.hpp"
#include "tfimm/errors.hpp"
#include "tfimm/registry.hpp"

namespace t = tfimm::test;
using tfimm::PathStatus;
using namespace std::chrono_literals;

namespace {

tfimm::Timestamp now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A registry whose entries are ok, missing, dangling, behind a symlink and
// locked. not_a_directory and not_accessible have tests of their own.
struct Fixture {
  t::TestContext ctx;
  std::string file = t::registry_location(ctx);
  tfimm::Registry reg{file};

  Fixture() {
    ctx.env().set("TFIMM_HOME", ctx.path("cache"));
    t::make_dirs(ctx.path("w/ok"));
    t::write_file(ctx.path("w/file.h5"), "weights");
    REQUIRE(::symlink(ctx.path("w/nowhere").c_str(), ctx.path("w/dangling").c_str()) == 0);
    REQUIRE(::symlink(ctx.path("w/ok").c_str(), ctx.path("w/link").c_str()) == 0);
    reg.set_model_cache("ok-dir", ctx.path("w/ok"));
    reg.set_model_cache("ok-file", ctx.path("w/file.h5"));
    reg.set_model_cache("missing", ctx.path("w/missing"));
    reg.set_model_cache("dangling", ctx.path("w/dangling"));
    reg.set_model_cache("linked", ctx.path("w/link"));
    reg.set_model_cache("locked-missing", ctx.path("w/gone"));
    reg.lock("locked-missing", "on the archive disk");
  }

  // Everything on disk is exactly as the fixture made it.
  void check_disk_untouched() {
    CHECK(t::read_file(ctx.path("w/file.h5")) == "weights");
    CHECK(t::exists(ctx.path("w/ok")));
    CHECK(t::exists(ctx.path("w/dangling")));  // the dangling link itself
    CHECK_FALSE(t::exists(ctx.path("w/nowhere")));
    CHECK(t::exists(ctx.path("w/link")));
    CHECK_FALSE(t::exists(ctx.path("w/missing")));
    CHECK_FALSE(t::exists(ctx.path("cache")));
  }
};

const tfimm::AuditItem& item(const tfimm::AuditReport& report, const std::string& name) {
  for (const auto& i : report.items) {
    if (i.entry.name == name) return i;
  }
  FAIL("no audit item for " << name);
  throw std::logic_error("unreachable");
}

std::vector<std::string> names(const std::vector<tfimm::PruneItem>& items) {
  std::vector<std::string> out;
  for (const auto& i : items) out.push_back(i.entry.name);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

TEST_CASE("audit reports the state of every registered path and of the cache directory",
          "[audit][conformance]") {
  Fixture f;
  f.reg.set_model_cache("under-file", f.ctx.path("w/file.h5/sub"));
  auto report = f.reg.audit();

  REQUIRE(report.items.size() == 7);
  std::vector<std::string> order;
  for (const auto& i : report.items) order.push_back(i.entry.name);
  CHECK(std::is_sorted(order.begin(), order.end()));

  CHECK(item(report, "ok-dir").status == PathStatus::Ok);
  CHECK_FALSE(item(report, "ok-dir").is_symlink);
  CHECK(item(report, "ok-file").status == PathStatus::Ok);
  CHECK(item(report, "missing").status == PathStatus::Missing);
  CHECK(item(report, "dangling").status == PathStatus::DanglingLink);
  CHECK(item(report, "dangling").is_symlink);
  CHECK(item(report, "dangling").detail == f.ctx.path("w/nowhere"));
  CHECK(item(report, "linked").status == PathStatus::Ok);
  CHECK(item(report, "linked").is_symlink);
  CHECK(item(report, "linked").detail == f.ctx.path("w/ok"));
  CHECK(item(report, "under-file").status == PathStatus::NotADirectory);
  CHECK(item(report, "locked-missing").status == PathStatus::Missing);
  CHECK(item(report, "locked-missing").entry.locked);
  CHECK(item(report, "locked-missing").entry.lock_reason == "on the archive disk");

  CHECK(report.count(PathStatus::Ok) == 3);
  CHECK(report.count(PathStatus::Missing) == 2);
  CHECK(report.count(PathStatus::DanglingLink) == 1);
  CHECK(report.count(PathStatus::NotADirectory) == 1);
  CHECK(report.count(PathStatus::Error) == 0);
  CHECK(report.recorded);

  CHECK(report.cache_dir.path == f.ctx.path("cache"));
  CHECK(report.cache_dir.source == tfimm::DirSource::TfimmHome);
  CHECK(report.cache_dir_status == PathStatus::Missing);
  f.check_disk_untouched();

  SECTION("an existing cache directory is ok") {
    t::make_dirs(f.ctx.path("cache"));
    CHECK(f.reg.audit().cache_dir_status == PathStatus::Ok);
  }
  SECTION("one checking thread and many give the same answers") {
    for (unsigned threads : {1u, 16u}) {
      tfimm::AuditOptions options;
      options.threads = threads;
      auto again = f.reg.audit(options);
      REQUIRE(again.items.size() == report.items.size());
      for (std::size_t i = 0; i < again.items.size(); ++i) {
        CHECK(again.items[i].entry.name == report.items[i].entry.name);
        CHECK(again.items[i].status == report.items[i].status);
      }
    }
  }
}

TEST_CASE("audit reports progress on the calling thread up to the total", "[audit][conformance]") {
  Fixture f;
  std::vector<std::pair<std::size_t, std::size_t>> calls;
  const auto caller = std::this_thread::get_id();
  bool other_thread = false;
  tfimm::AuditOptions options;
  options.threads = 4;
  options.progress = [&](std::size_t done, std::size_t total) {
    if (std::this_thread::get_id() != caller) other_thread = true;
    calls.emplace_back(done, total);
  };
  f.reg.audit(options);
  REQUIRE_FALSE(calls.empty());
  CHECK_FALSE(other_thread);
  CHECK(calls.back() == std::make_pair(std::size_t{6}, std::size_t{6}));
  for (std::size_t i = 1; i < calls.size(); ++i) {
    CHECK(calls[i].first >= calls[i - 1].first);
    CHECK(calls[i].second == 6);
  }
}

TEST_CASE("audit records when a path was first found missing and clears it when found",
          "[audit][conformance]") {
  Fixture f;
  const auto before = now_ms();
  f.reg.audit();
  const auto after = now_ms();

  for (const std::string name : {"missing", "dangling", "locked-missing"}) {
    INFO("name: " << name);
    auto e = f.reg.entry(name);
    REQUIRE(e);
    REQUIRE(e->missing_since);
    CHECK(*e->missing_since >= before);
    CHECK(*e->missing_since <= after);
  }
  for (const std::string name : {"ok-dir", "ok-file", "linked"}) {
    INFO("name: " << name);
    CHECK_FALSE(f.reg.entry(name)->missing_since);
  }
  const auto first = *f.reg.entry("missing")->missing_since;

  SECTION("a second audit keeps the first time") {
    std::this_thread::sleep_for(5ms);
    f.reg.audit();
    CHECK(f.reg.entry("missing")->missing_since == first);
  }
  SECTION("the path coming back clears it") {
    t::make_dirs(f.ctx.path("w/missing"));
    auto report = f.reg.audit();
    CHECK(item(report, "missing").status == PathStatus::Ok);
    CHECK_FALSE(f.reg.entry("missing")->missing_since);
  }
  SECTION("registering the name again clears it") {
    f.reg.set_model_cache("missing", f.ctx.path("w/missing"));
    CHECK_FALSE(f.reg.entry("missing")->missing_since);
  }
  SECTION("another process sees the recorded time") {
    tfimm::Registry other(f.file);
    CHECK(other.entry("missing")->missing_since == first);
  }
}

TEST_CASE("auditing a registry that does not exist reports nothing and creates nothing",
          "[audit]") {
  t::TestContext ctx;
  tfimm::Registry reg(ctx.path("none/registry.db"));
  auto report = reg.audit();
  CHECK(report.items.empty());
  CHECK(report.stale() == 0);
  CHECK(report.cache_dir.path == ctx.home() + "/.cache/tfimm");
  CHECK(report.cache_dir_status == PathStatus::Missing);
  auto pruned = reg.prune();
  CHECK(pruned.removed.empty());
  CHECK(pruned.checked == 0);
  CHECK_FALSE(t::exists(ctx.path("none")));
}

TEST_CASE("a path behind an unreadable directory is not accessible, not stale", "[audit]") {
  Fixture f;
  if (::geteuid() == 0) {
    WARN("running as root: permission checks do not apply, not_accessible is not tested");
    return;
  }
  t::make_dirs(f.ctx.path("w/locked/model"));
  f.reg.set_model_cache("behind-lock", f.ctx.path("w/locked/model"));
  REQUIRE(::chmod(f.ctx.path("w/locked").c_str(), 0) == 0);
  auto report = f.reg.audit();
  CHECK(item(report, "behind-lock").status == PathStatus::NotAccessible);
  CHECK_FALSE(item(report, "behind-lock").detail.empty());
  auto pruned = f.reg.prune();
  CHECK(names(pruned.removed) == std::vector<std::string>{"dangling", "missing"});
  CHECK(f.reg.entry("behind-lock"));
  ::chmod(f.ctx.path("w/locked").c_str(), 0700);
}

TEST_CASE("prune forgets missing and dangling entries, keeps locked ones, deletes no file",
          "[audit][conformance]") {
  Fixture f;
  const auto history_before = f.reg.history().size();
  auto report = f.reg.prune();

  CHECK_FALSE(report.dry_run);
  CHECK(report.checked == 6);
  CHECK(names(report.removed) == std::vector<std::string>{"dangling", "missing"});
  CHECK(names(report.kept_locked) == std::vector<std::string>{"locked-missing"});
  CHECK(report.kept_young.empty());
  for (const auto& removed : report.removed) {
    CHECK(removed.status ==
          (removed.entry.name == "dangling" ? PathStatus::DanglingLink : PathStatus::Missing));
  }
  CHECK(f.reg.list_cached_models() ==
        std::vector<std::string>{"linked", "locked-missing", "ok-dir", "ok-file"});
  f.check_disk_untouched();

  auto history = f.reg.history();
  REQUIRE(history.size() == history_before + 2);
  for (std::size_t i = 0; i < 2; ++i) {
    CHECK(history[i].action == "prune");
    CHECK(history[i].old_path ==
          f.ctx.path(history[i].name == "dangling" ? "w/dangling" : "w/missing"));
  }

  SECTION("a second prune finds nothing more to forget") {
    auto again = f.reg.prune();
    CHECK(again.removed.empty());
    CHECK(again.checked == 4);
  }
}

TEST_CASE("an entry whose path lies below a file is stale: it cannot exist, so prune forgets it",
          "[audit][conformance]") {
  Fixture f;
  f.reg.set_model_cache("under-file", f.ctx.path("w/file.h5/sub"));
  auto report = f.reg.audit();
  CHECK(item(report, "under-file").status == PathStatus::NotADirectory);
  CHECK(report.stale() == 4);
  CHECK(f.reg.entry("under-file")->missing_since);
  auto pruned = f.reg.prune();
  CHECK(names(pruned.removed) == std::vector<std::string>{"dangling", "missing", "under-file"});
  CHECK_FALSE(f.reg.entry("under-file"));
  f.check_disk_untouched();
}

TEST_CASE("a dry-run prune reports the same entries and forgets nothing", "[audit][conformance]") {
  Fixture f;
  const auto before = f.reg.list_cached_models();
  const auto history_before = f.reg.history().size();
  tfimm::PruneOptions options;
  options.dry_run = true;
  auto dry = f.reg.prune(options);

  CHECK(dry.dry_run);
  CHECK(names(dry.removed) == std::vector<std::string>{"dangling", "missing"});
  CHECK(names(dry.kept_locked) == std::vector<std::string>{"locked-missing"});
  CHECK(f.reg.list_cached_models() == before);
  CHECK(f.reg.history().size() == history_before);
  f.check_disk_untouched();

  auto real = f.reg.prune();
  CHECK(names(real.removed) == names(dry.removed));
}

TEST_CASE("prune with expire forgets only entries missing for at least that long", "[audit]") {
  Fixture f;
  f.reg.unlock("locked-missing");
  f.reg.audit();  // "missing", "dangling" and "locked-missing" are missing from now on
  f.reg.set_model_cache("never-audited", f.ctx.path("w/never"));
  {
    t::RawDb db(f.file);
    const auto ten_days_ago = now_ms() - 10LL * 24 * 3600 * 1000;
    db.exec("UPDATE models SET missing_since = " + std::to_string(ten_days_ago) +
            " WHERE name IN ('missing', 'dangling')");
  }
  tfimm::PruneOptions options;
  options.expire = 7 * 24h;
  const auto before = now_ms();
  auto report = f.reg.prune(options);

  CHECK(names(report.removed) == std::vector<std::string>{"dangling", "missing"});
  CHECK(names(report.kept_young) == std::vector<std::string>{"locked-missing", "never-audited"});
  CHECK(report.kept_locked.empty());
  CHECK(f.reg.entry("locked-missing"));
  // Prune, like audit, starts the clock for an entry found missing.
  auto never = f.reg.entry("never-audited");
  REQUIRE(never);
  REQUIRE(never->missing_since);
  CHECK(*never->missing_since >= before);
  f.check_disk_untouched();

  SECTION("without expire every stale unlocked entry goes") {
    auto all = f.reg.prune();
    CHECK(names(all.removed) == std::vector<std::string>{"locked-missing", "never-audited"});
  }
}

TEST_CASE("an entry re-registered while prune checks paths is kept", "[audit][conformance]") {
  Fixture f;
  t::make_dirs(f.ctx.path("w/restored"));
  bool reregistered = false;
  int helper_exit = -1;
  std::string helper_err;
  tfimm::PruneOptions options;
  options.audit.progress = [&](std::size_t done, std::size_t total) {
    if (done == total && !reregistered) {
      reregistered = true;
      // Another process fixes the entry after its path was found missing.
      auto r =
          t::run_process({TFIMM_TEST_HELPER, f.file, "set", "missing", f.ctx.path("w/restored")});
      helper_exit = r.exit_code;
      helper_err = r.err;
    }
  };
  auto report = f.reg.prune(options);
  REQUIRE(reregistered);
  INFO("helper stderr: " << helper_err);
  CHECK(helper_exit == 0);
  CHECK(names(report.removed) == std::vector<std::string>{"dangling"});
  auto e = f.reg.entry("missing");
  REQUIRE(e);
  CHECK(e->path == f.ctx.path("w/restored"));
}

namespace {

// Ten models on a share whose listing disagrees with its lookups; enough in
// one directory for the audit to list the directory instead of looking up
// each path.
const std::vector<std::string> kShareModels{
    "resnet18",        "resnet50",     "vit_base",  "vit_large",  "convnext",
    "efficientnet_b0", "mobilenet_v3", "swin_tiny", "deit_small", "regnet"};

t::DisagreeingMount::Options share_of_models(const std::string& listing) {
  t::DisagreeingMount::Options options;
  options.listing = listing;
  for (const auto& name : kShareModels) options.exists.push_back("models/" + name);
  return options;
}

}  // namespace

TEST_CASE(
    "audit and prune never call missing a path that a case-insensitive or automount listing "
    "leaves out (skipped without FUSE)",
    "[audit][fuse]") {
  t::TestContext ctx;
  tfimm::Registry reg{ctx.path("registry.db")};
  // swapcase: a case-insensitive share lists "RESNET18" for "resnet18";
  // none: an automount directory lists nothing until a name is looked up.
  const std::string listing = GENERATE(std::string("swapcase"), std::string("none"));
  t::DisagreeingMount share(ctx.path("share"), share_of_models(listing));
  if (!share.usable()) return;
  INFO("listing: " << listing);
  for (const auto& name : kShareModels) reg.set_model_cache(name, share / ("models/" + name));
  reg.set_model_cache("absent", share / "models/absent");

  const auto report = reg.audit();
  REQUIRE(report.items.size() == kShareModels.size() + 1);
  for (const auto& name : kShareModels) {
    INFO(name);
    CHECK(item(report, name).status == PathStatus::Ok);
    CHECK_FALSE(item(report, name).entry.missing_since);
  }
  CHECK(item(report, "absent").status == PathStatus::Missing);
  CHECK(report.stale() == 1);

  tfimm::PruneOptions dry_run;
  dry_run.dry_run = true;
  CHECK(names(reg.prune(dry_run).removed) == std::vector<std::string>{"absent"});
  CHECK(names(reg.prune().removed) == std::vector<std::string>{"absent"});
  CHECK(reg.entries().size() == kShareModels.size());
  for (const auto& name : kShareModels) CHECK(reg.entry(name));
}

TEST_CASE(
    "a lookup that fails with EIO, ESTALE, ETIMEDOUT, ELOOP, ENAMETOOLONG or EACCES is never "
    "stale, in a listed directory or one that cannot be opened (skipped without FUSE)",
    "[audit][fuse]") {
  t::TestContext ctx;
  tfimm::Registry reg{ctx.path("registry.db")};
  auto options = share_of_models("none");
  const std::vector<std::pair<std::string, std::string>> failing{{"eio", "EIO"},
                                                                 {"estale", "ESTALE"},
                                                                 {"etimedout", "ETIMEDOUT"},
                                                                 {"eloop", "ELOOP"},
                                                                 {"enametoolong", "ENAMETOOLONG"},
                                                                 {"eacces", "EACCES"}};
  for (const auto& [name, err] : failing) options.fail.push_back({"models/" + name, err});
  // A whole directory whose lookup fails: it cannot be listed either.
  options.fail.push_back({"broken", "EIO"});
  t::DisagreeingMount share(ctx.path("share"), options);
  if (!share.usable()) return;
  for (const auto& name : kShareModels) reg.set_model_cache(name, share / ("models/" + name));
  for (const auto& [name, err] : failing) reg.set_model_cache(name, share / ("models/" + name));
  for (int i = 0; i < 8; ++i) {
    reg.set_model_cache("broken" + std::to_string(i), share / ("broken/m" + std::to_string(i)));
  }

  const auto report = reg.audit();
  for (const auto& [name, err] : failing) {
    INFO(name);
    CHECK(item(report, name).status ==
          (err == "EACCES" ? PathStatus::NotAccessible : PathStatus::Error));
    CHECK_FALSE(item(report, name).detail.empty());
  }
  for (int i = 0; i < 8; ++i) {
    CHECK(item(report, "broken" + std::to_string(i)).status == PathStatus::Error);
  }
  CHECK(report.stale() == 0);
  CHECK(reg.prune().removed.empty());
  CHECK(reg.entries().size() == kShareModels.size() + failing.size() + 8);
}

TEST_CASE("check_entries reports what audit reports and records nothing", "[audit][conformance]") {
  Fixture f;
  const auto history = f.reg.history().size();
  const auto checked = f.reg.check_entries();
  REQUIRE(checked.size() == 6);
  CHECK(checked[0].entry.name == "dangling");
  for (const auto& i : checked) CHECK_FALSE(i.entry.missing_since);
  CHECK_FALSE(f.reg.entry("missing")->missing_since);
  CHECK(f.reg.history().size() == history);

  const auto report = f.reg.audit();
  REQUIRE(report.items.size() == checked.size());
  for (std::size_t i = 0; i < checked.size(); ++i) {
    INFO(checked[i].entry.name);
    CHECK(checked[i].entry.name == report.items[i].entry.name);
    CHECK(checked[i].status == report.items[i].status);
    CHECK(checked[i].is_symlink == report.items[i].is_symlink);
    CHECK(checked[i].detail == report.items[i].detail);
  }
  CHECK(f.reg.entry("missing")->missing_since);
  f.check_disk_untouched();
}

TEST_CASE("every way of registering a name again clears when its path was found missing",
          "[audit][conformance]") {
  Fixture f;
  f.reg.audit();
  REQUIRE(f.reg.entry("missing")->missing_since);
  REQUIRE(f.reg.entry("dangling")->missing_since);
  const std::string moved = f.ctx.path("w/moved");
  SECTION("set_model_cache") { f.reg.set_model_cache("missing", moved); }
  SECTION("one set in a transaction") {
    f.reg.transaction([&](tfimm::Transaction& tx) { tx.set_model_cache("missing", moved); });
  }
  SECTION("many sets in a transaction, written together") {
    f.reg.transaction([&](tfimm::Transaction& tx) {
      tx.set_model_cache("dangling", moved + "-too");
      tx.set_model_cache("missing", moved);
    });
    CHECK_FALSE(f.reg.entry("dangling")->missing_since);
  }
  SECTION("an import") {
    tfimm::Snapshot snapshot;
    snapshot.models.push_back({"missing", moved, false, ""});
    f.reg.import(snapshot);
  }
  const auto e = f.reg.entry("missing");
  REQUIRE(e);
  CHECK(e->path == moved);
  CHECK_FALSE(e->missing_since);
  // Entries not registered again keep their time.
  CHECK(f.reg.entry("locked-missing")->missing_since);
}

TEST_CASE("a dry-run prune works on a registry this process can only read and changes nothing",
          "[audit][dry-run][permissions]") {
  if (::geteuid() != 0) {
    WARN("needs root to act as another user: skipped");
    return;
  }
  Fixture f;
  REQUIRE(::chmod(f.ctx.root().c_str(), 0777) == 0);  // the other user may create -wal and -shm
  REQUIRE(::chmod(f.file.c_str(), 0444) == 0);
  const std::string bytes = t::read_file(f.file);

  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(fds[0]);
    std::string out;
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) {
      out = "cannot become uid 65534";
    } else {
      try {
        tfimm::Registry reg(f.file);
        tfimm::PruneOptions options;
        options.dry_run = true;
        const auto report = reg.prune(options);
        for (const auto& name : names(report.removed)) out += name + " ";
        out += "| kept locked: " + std::to_string(report.kept_locked.size());
      } catch (const std::exception& e) {
        out = std::string("threw: ") + e.what();
      }
    }
    const auto n = ::write(fds[1], out.data(), out.size());
    ::_exit(n == static_cast<ssize_t>(out.size()) ? 0 : 1);
  }
  ::close(fds[1]);
  std::string got;
  char buf[512];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;)
    got.append(buf, static_cast<std::size_t>(n));
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  CHECK(got == "dangling missing | kept locked: 1");
  CHECK(t::read_file(f.file) == bytes);
  CHECK(f.reg.entries().size() == 6);
}
