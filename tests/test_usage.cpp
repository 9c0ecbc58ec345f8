// Tests for lib/usage.cpp: disk_usage() against GNU du on real trees
// (hard links, sparse files, symlinks, special files, unreadable
// directories), missing paths, models found only in the cache directory,
// and the total.
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "disagreeing_mount.hpp"
#include "testutil.hpp"
#include "tfimm/errors.hpp"
#include "tfimm/registry.hpp"
#include "tfimm/usage.hpp"

namespace t = tfimm::test;
using tfimm::PathStatus;
using tfimm::UsageSource;

namespace {

// The number GNU du prints first on its last line: `du ARGS...`.
std::uint64_t du(std::vector<std::string> args) {
  args.insert(args.begin(), {"du", "--block-size=1"});
  const auto r = t::run_process(args);
  INFO("du stderr: " << r.err);
  std::istringstream in(r.out);
  std::string line, last;
  while (std::getline(in, line)) last = line;
  REQUIRE_FALSE(last.empty());
  return std::stoull(last.substr(0, last.find('\t')));
}

// Regular files below `path` (not following symlinks), each inode once.
std::uint64_t regular_files(const std::string& path) {
  const auto r = t::run_process({"find", path, "-type", "f", "-printf", "%i\\n"});
  std::set<std::string> inodes;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) inodes.insert(line);
  return inodes.size();
}

// The item named `name`; fails the test when there is none.
const tfimm::UsageItem& item(const tfimm::UsageReport& report, const std::string& name) {
  for (const auto& i : report.items) {
    if (i.name == name) return i;
  }
  FAIL("no item " << name);
  throw std::logic_error("unreachable");
}

// Requires `i` to have exactly du's counts of `path` (-D follows `path`
// itself when it is a symlink, as disk_usage does).
void require_like_du(const tfimm::UsageItem& i, const std::string& path) {
  INFO(i.name << " " << path);
  CHECK(i.status == PathStatus::Ok);
  CHECK(i.unreadable.empty());
  CHECK(i.counts.bytes == du({"-s", "-D", path}));
  CHECK(i.counts.apparent_bytes == du({"-s", "-D", "--apparent-size", path}));
  CHECK(i.counts.files == regular_files(path + "/."));
}

// A model directory with everything du has a rule for: hard links (counted
// once), a sparse file (its blocks, not its length), symlinks to a big
// directory and to a file (the links counted, never followed), a FIFO, a
// socket, nested directories and an empty file.
void make_tree(const std::string& root) {
  t::make_dirs(root + "/sub/deeper");
  t::write_file(root + "/weights.h5", std::string(100000, 'w'));
  REQUIRE(::link((root + "/weights.h5").c_str(), (root + "/weights-link.h5").c_str()) == 0);
  REQUIRE(::link((root + "/weights.h5").c_str(), (root + "/sub/weights-again.h5").c_str()) == 0);
  t::write_file(root + "/sub/deeper/config.json", "{}");
  t::write_file(root + "/empty", "");
  const int fd = ::open((root + "/sparse.bin").c_str(), O_WRONLY | O_CREAT, 0644);
  REQUIRE(fd >= 0);
  REQUIRE(::pwrite(fd, "x", 1, 64 << 20) == 1);  // 64 MiB long, one block written
  ::close(fd);
  REQUIRE(::symlink("/usr", (root + "/to-usr").c_str()) == 0);
  REQUIRE(::symlink("weights.h5", (root + "/sub/to-weights").c_str()) == 0);
  REQUIRE(::mkfifo((root + "/fifo").c_str(), 0644) == 0);
  const int sock = ::socket(AF_UNIX, SOCK_STREAM, 0);
  REQUIRE(sock >= 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::string sock_path = root + "/sock";
  REQUIRE(sock_path.size() < sizeof addr.sun_path);
  std::copy(sock_path.begin(), sock_path.end(), addr.sun_path);
  REQUIRE(::bind(sock, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  ::close(sock);
}

struct Fixture {
  t::TestContext ctx;
  tfimm::Registry reg{ctx.path("registry.db")};
  std::string cache = ctx.path("cache");
  Fixture() {
    ctx.env().set("TFIMM_HOME", cache);
    t::make_dirs(cache);
  }
};

}  // namespace

TEST_CASE(
    "disk_usage counts a model as du -s does: hard links once, sparse files by their blocks, "
    "symlinks inside not followed, FIFOs and sockets",
    "[usage]") {
  Fixture f;
  const std::string model = f.ctx.path("models/resnet18");
  make_tree(model);
  f.reg.set_model_cache("resnet18", model);

  for (unsigned threads : {1u, 4u, 0u}) {
    INFO("threads " << threads);
    tfimm::UsageOptions options;
    options.threads = threads;
    const auto report = tfimm::disk_usage(f.reg, options);
    REQUIRE(report.items.size() == 1);
    const auto& i = report.items[0];
    CHECK(i.name == "resnet18");
    CHECK(i.path == model);
    CHECK(i.source == UsageSource::Entry);
    require_like_du(i, model);
    CHECK(i.counts.files == 4);  // weights (3 links), config, empty, sparse
    CHECK(i.counts.apparent_bytes > (64u << 20));
    CHECK(i.counts.bytes < (1u << 20));
    CHECK(report.complete());
    CHECK(report.total.bytes == i.counts.bytes);
    CHECK(report.total.apparent_bytes == i.counts.apparent_bytes);
    CHECK(report.total.files == i.counts.files);
  }
}

TEST_CASE("a registered path that is a symlink is followed, as a registered file is counted",
          "[usage]") {
  Fixture f;
  make_tree(f.ctx.path("real/vit"));
  REQUIRE(::symlink(f.ctx.path("real/vit").c_str(), f.ctx.path("vit-link").c_str()) == 0);
  t::write_file(f.ctx.path("single.h5"), std::string(5000, 'x'));
  f.reg.set_model_cache("vit", f.ctx.path("vit-link"));
  f.reg.set_model_cache("single", f.ctx.path("single.h5"));

  const auto report = tfimm::disk_usage(f.reg);
  require_like_du(item(report, "vit"), f.ctx.path("vit-link"));
  CHECK(item(report, "vit").is_symlink);
  CHECK(item(report, "vit").detail == f.ctx.path("real/vit"));
  CHECK_FALSE(item(report, "single").is_symlink);
  CHECK(item(report, "vit").counts.bytes > 100000);
  const auto& single = item(report, "single");
  CHECK(single.counts.bytes == du({"-s", f.ctx.path("single.h5")}));
  CHECK(single.counts.apparent_bytes == 5000);
  CHECK(single.counts.files == 1);
}

TEST_CASE(
    "a missing path is shown as missing and counts nothing; a dangling link and a path below a "
    "file likewise; the others are still counted",
    "[usage]") {
  Fixture f;
  make_tree(f.ctx.path("models/ok"));
  t::write_file(f.ctx.path("models/file"), "x");
  REQUIRE(::symlink(f.ctx.path("nowhere").c_str(), f.ctx.path("models/dangling").c_str()) == 0);
  f.reg.set_model_cache("ok", f.ctx.path("models/ok"));
  f.reg.set_model_cache("gone", f.ctx.path("models/gone"));
  f.reg.set_model_cache("dangling", f.ctx.path("models/dangling"));
  f.reg.set_model_cache("below-file", f.ctx.path("models/file/x"));

  const auto report = tfimm::disk_usage(f.reg);
  REQUIRE(report.items.size() == 4);
  CHECK(item(report, "gone").status == PathStatus::Missing);
  CHECK(item(report, "dangling").status == PathStatus::DanglingLink);
  CHECK(item(report, "below-file").status == PathStatus::NotADirectory);
  for (const char* name : {"gone", "dangling", "below-file"}) {
    INFO(name);
    CHECK(item(report, name).counts.bytes == 0);
    CHECK(item(report, name).counts.files == 0);
    CHECK_FALSE(item(report, name).complete());
  }
  require_like_du(item(report, "ok"), f.ctx.path("models/ok"));
  CHECK(report.total.bytes == item(report, "ok").counts.bytes);
  CHECK_FALSE(report.complete());
  // Nothing was recorded: du reads only.
  CHECK_FALSE(f.reg.entry("gone")->missing_since);
}

TEST_CASE(
    "models found only under the cache directory are counted and marked cache_dir; one with an "
    "entry is counted once, as the entry",
    "[usage]") {
  Fixture f;
  make_tree(f.cache + "/efficientnet_b0");
  t::write_file(f.cache + "/loose.h5", std::string(3000, 'l'));
  t::make_dirs(f.cache + "/resnet18");  // the entry's own path is elsewhere
  make_tree(f.ctx.path("models/resnet18"));
  make_tree(f.cache + "/inside");
  f.reg.set_model_cache("resnet18", f.ctx.path("models/resnet18"));
  f.reg.set_model_cache("inside", f.cache + "/inside");

  const auto report = tfimm::disk_usage(f.reg);
  std::vector<std::pair<std::string, UsageSource>> seen;
  for (const auto& i : report.items) seen.emplace_back(i.name, i.source);
  CHECK(seen ==
        std::vector<std::pair<std::string, UsageSource>>{{"efficientnet_b0", UsageSource::CacheDir},
                                                         {"inside", UsageSource::Entry},
                                                         {"loose.h5", UsageSource::CacheDir},
                                                         {"resnet18", UsageSource::Entry}});
  require_like_du(item(report, "efficientnet_b0"), f.cache + "/efficientnet_b0");
  CHECK(item(report, "efficientnet_b0").path == f.cache + "/efficientnet_b0");
  CHECK(item(report, "resnet18").path == f.ctx.path("models/resnet18"));
  CHECK(item(report, "loose.h5").counts.apparent_bytes == 3000);
  CHECK(report.cache_dir.path == f.cache);
  CHECK(report.cache_dir_status == PathStatus::Ok);
  CHECK(report.complete());
}

TEST_CASE(
    "the total counts every byte once, as du -sc does: a path registered twice, a model inside "
    "another and hard links between models",
    "[usage]") {
  Fixture f;
  make_tree(f.ctx.path("models/a"));
  make_tree(f.ctx.path("models/b"));
  REQUIRE(::link(f.ctx.path("models/a/weights.h5").c_str(),
                 f.ctx.path("models/b/shared.h5").c_str()) == 0);
  f.reg.set_model_cache("a", f.ctx.path("models/a"));
  f.reg.set_model_cache("a-alias", f.ctx.path("models/a"));
  f.reg.set_model_cache("a-sub", f.ctx.path("models/a/sub"));
  f.reg.set_model_cache("b", f.ctx.path("models/b"));
  REQUIRE(::symlink(f.ctx.path("models/b").c_str(), f.ctx.path("b-link").c_str()) == 0);
  f.reg.set_model_cache("b-link", f.ctx.path("b-link"));

  const auto report = tfimm::disk_usage(f.reg);
  // Each model on its own is what du -s says about it alone.
  for (const char* name : {"a", "a-alias", "a-sub", "b", "b-link"}) {
    require_like_du(item(report, name), item(report, name).path);
  }
  const std::vector<std::string> all{f.ctx.path("models/a"), f.ctx.path("models/b")};
  CHECK(report.total.bytes == du({"-sc", all[0], all[1]}));
  CHECK(report.total.apparent_bytes == du({"-sc", "--apparent-size", all[0], all[1]}));
  CHECK(report.total.files == regular_files(f.ctx.path("models")));
}

TEST_CASE("a huge flat directory is counted as du counts it", "[usage]") {
  Fixture f;
  const std::string model = f.ctx.path("models/flat");
  t::make_dirs(model);
  for (int i = 0; i < 20000; ++i) {
    t::write_file(model + "/shard-" + std::to_string(i),
                  std::string(static_cast<std::size_t>(i % 7000), 's'));
  }
  f.reg.set_model_cache("flat", model);
  const auto report = tfimm::disk_usage(f.reg);
  require_like_du(item(report, "flat"), model);
  CHECK(item(report, "flat").counts.files == 20000);
}

TEST_CASE("a tree deeper than the longest path the system takes is counted as du counts it",
          "[usage]") {
  Fixture f;
  const std::string model = f.ctx.path("models/deep");
  std::string dir = model;
  t::make_dirs(dir);
  // 30 levels of 200-byte names: about 6 000 bytes, more than PATH_MAX.
  const int base = ::open(model.c_str(), O_RDONLY | O_DIRECTORY);
  REQUIRE(base >= 0);
  int fd = base;
  for (int level = 0; level < 30; ++level) {
    const std::string name(200, static_cast<char>('a' + level % 26));
    REQUIRE(::mkdirat(fd, name.c_str(), 0755) == 0);
    const int next = ::openat(fd, name.c_str(), O_RDONLY | O_DIRECTORY);
    REQUIRE(next >= 0);
    if (fd != base) ::close(fd);
    fd = next;
  }
  const int file = ::openat(fd, "weights.h5", O_WRONLY | O_CREAT, 0644);
  REQUIRE(file >= 0);
  REQUIRE(::write(file, std::string(30000, 'w').data(), 30000) == 30000);
  ::close(file);
  ::close(fd);
  ::close(base);
  f.reg.set_model_cache("deep", model);
  const auto report = tfimm::disk_usage(f.reg);
  const auto& i = item(report, "deep");
  CHECK(i.unreadable.empty());
  CHECK(i.counts.bytes == du({"-s", model}));
  CHECK(i.counts.apparent_bytes == du({"-s", "--apparent-size", model}));
  CHECK(i.counts.files == 1);
  // The fixture's directory cannot be removed by path either: cut the
  // chain from the top, one level at a time, with rm (which walks by fd).
  CHECK(t::run_process({"rm", "-rf", model}).exit_code == 0);
}

TEST_CASE("a file system mounted below a model is crossed, as du crosses it", "[usage]") {
  Fixture f;
  const std::string model = f.ctx.path("models/m");
  make_tree(model);
  t::make_dirs(model + "/mnt");
  if (::mount("tmpfs", (model + "/mnt").c_str(), "tmpfs", 0, "size=4m") != 0) {
    WARN("cannot mount a tmpfs here (needs root and mount rights): " << std::strerror(errno));
    return;
  }
  t::write_file(model + "/mnt/on-tmpfs.bin", std::string(300000, 't'));
  f.reg.set_model_cache("m", model);
  const auto report = tfimm::disk_usage(f.reg);
  const auto& i = item(report, "m");
  const auto by_du = du({"-s", model});
  const auto by_du_apparent = du({"-s", "--apparent-size", model});
  ::umount2((model + "/mnt").c_str(), MNT_DETACH);
  CHECK(i.counts.bytes == by_du);
  CHECK(i.counts.apparent_bytes == by_du_apparent);
  CHECK(i.counts.bytes > 300000);
}

TEST_CASE(
    "named models are resolved as cached_model_path resolves them; an unknown or invalid name is "
    "refused before anything is walked",
    "[usage]") {
  Fixture f;
  make_tree(f.ctx.path("models/a"));
  make_tree(f.cache + "/fallback");
  make_tree(f.cache + "/other");
  f.reg.set_model_cache("a", f.ctx.path("models/a"));
  f.reg.set_model_cache("gone", f.ctx.path("models/gone"));

  tfimm::UsageOptions options;
  options.names = {"fallback", "a", "a", "gone"};
  const auto report = tfimm::disk_usage(f.reg, options);
  REQUIRE(report.items.size() == 3);
  CHECK(report.items[0].name == "a");
  CHECK(report.items[1].name == "fallback");
  CHECK(report.items[1].source == UsageSource::CacheDir);
  CHECK(report.items[2].name == "gone");
  CHECK(report.items[2].status == PathStatus::Missing);
  require_like_du(report.items[1], f.cache + "/fallback");

  options.names = {"a", "nosuchmodel"};
  try {
    tfimm::disk_usage(f.reg, options);
    FAIL("an unknown model was accepted");
  } catch (const tfimm::UnknownModel& e) {
    const std::string message = e.what();
    CHECK(message.find("nosuchmodel") != std::string::npos);
    CHECK(message.find(f.cache + "/nosuchmodel") != std::string::npos);
  }
  options.names = {"a", "../etc"};
  CHECK_THROWS_AS(tfimm::disk_usage(f.reg, options), tfimm::InvalidName);
}

TEST_CASE("progress is reported from the calling thread up to every model", "[usage]") {
  Fixture f;
  for (int i = 0; i < 20; ++i) {
    const std::string model = f.ctx.path("models/m" + std::to_string(i));
    make_tree(model);
    f.reg.set_model_cache("m" + std::to_string(i), model);
  }
  const auto caller = std::this_thread::get_id();
  std::vector<std::pair<std::size_t, std::size_t>> calls;
  bool other_thread = false;
  tfimm::UsageOptions options;
  options.threads = 3;
  options.progress = [&](std::size_t done, std::size_t total) {
    other_thread |= std::this_thread::get_id() != caller;
    calls.emplace_back(done, total);
  };
  const auto report = tfimm::disk_usage(f.reg, options);
  CHECK_FALSE(other_thread);
  REQUIRE_FALSE(calls.empty());
  CHECK(calls.back() == std::make_pair(std::size_t{20}, std::size_t{20}));
  CHECK(report.items.size() == 20);
}

TEST_CASE("an exception thrown by the progress callback reaches the caller after the walk",
          "[usage]") {
  Fixture f;
  for (int i = 0; i < 5; ++i) {
    const std::string model = f.ctx.path("models/m" + std::to_string(i));
    make_tree(model);
    f.reg.set_model_cache("m" + std::to_string(i), model);
  }
  tfimm::UsageOptions options;
  options.threads = 4;
  options.progress = [](std::size_t, std::size_t) { throw std::runtime_error("stop"); };
  CHECK_THROWS_WITH(tfimm::disk_usage(f.reg, options), "stop");
  // The registry is still usable: nothing was left running or locked.
  options.progress = nullptr;
  CHECK(tfimm::disk_usage(f.reg, options).items.size() == 5);
}

TEST_CASE(
    "an unreadable directory inside a model is reported with its path and the system's reason, "
    "and the rest is counted as du counts it as the same user",
    "[usage][permissions]") {
  if (::geteuid() != 0) {
    WARN("needs root to act as uid 65534: skipped");
    return;
  }
  Fixture f;
  REQUIRE(::chmod(f.ctx.root().c_str(), 0755) == 0);
  const std::string model = f.ctx.path("models/m");
  make_tree(model);
  t::make_dirs(model + "/private/inner");
  t::write_file(model + "/private/inner/secret.bin", std::string(50000, 's'));
  REQUIRE(::chmod((model + "/private").c_str(), 0700) == 0);
  // A registry of uid 65534's own: it could only read the root's.
  const std::string own = f.ctx.path("nobody");
  t::make_dirs(own);
  REQUIRE(::chown(own.c_str(), 65534, 65534) == 0);

  // The walk as uid 65534, in a child process; its answer through a pipe.
  int out[2];
  REQUIRE(::pipe(out) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(out[0]);
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(126);
    std::string text;
    try {
      tfimm::Registry reg(own + "/registry.db");
      reg.set_model_cache("m", model);
      reg.set_model_cache("gone", f.ctx.path("models/gone"));
      const auto report = tfimm::disk_usage(reg);
      for (const auto& i : report.items) {
        text += i.name + " " + tfimm::to_string(i.status) + " " + std::to_string(i.counts.bytes) +
                " " + std::to_string(i.counts.apparent_bytes) + " " +
                std::to_string(i.unreadable.size()) + "\n";
        for (const auto& p : i.unreadable) text += "unreadable " + p.path + ": " + p.message + "\n";
      }
      text += std::string("complete ") + (report.complete() ? "yes" : "no") + "\n";
    } catch (const std::exception& e) {
      text = std::string("error ") + e.what() + "\n";
    }
    const ssize_t n = ::write(out[1], text.data(), text.size());
    ::_exit(n == static_cast<ssize_t>(text.size()) ? 0 : 1);
  }
  ::close(out[1]);
  std::string text;
  char buf[4096];
  for (ssize_t n; (n = ::read(out[0], buf, sizeof buf)) > 0;) text.append(buf, std::size_t(n));
  ::close(out[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);

  const auto as_nobody = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "du",
                               "--block-size=1"});
    const auto r = t::run_process(args);
    return r.out.substr(0, r.out.find('\t'));
  };
  const std::string expected =
      "gone missing 0 0 0\n"
      "m ok " +
      as_nobody({"-s", model}) + " " + as_nobody({"-s", "--apparent-size", model}) +
      " 1\n"
      "unreadable " +
      model + "/private: Permission denied\n" + "complete no\n";
  CHECK(text == expected);
}

TEST_CASE(
    "a path whose lookup fails with EIO or EACCES is an error, never missing, and a failing "
    "child is reported as unreadable (skipped without FUSE)",
    "[usage][fuse]") {
  Fixture f;
  t::DisagreeingMount::Options options;
  options.exists = {"models/ok", "models/ok/a", "models/ok/bad", "models/eio", "models/eacces"};
  options.fail = {{"models/eio", "EIO"}, {"models/eacces", "EACCES"}, {"models/ok/bad", "EIO"}};
  t::DisagreeingMount share(f.ctx.path("share"), options);
  if (!share.usable()) return;
  f.reg.set_model_cache("ok", share / "models/ok");
  f.reg.set_model_cache("eio", share / "models/eio");
  f.reg.set_model_cache("eacces", share / "models/eacces");

  const auto report = tfimm::disk_usage(f.reg);
  CHECK(item(report, "eio").status == PathStatus::Error);
  CHECK(item(report, "eacces").status == PathStatus::NotAccessible);
  CHECK_FALSE(item(report, "eio").detail.empty());
  const auto& ok = item(report, "ok");
  CHECK(ok.status == PathStatus::Ok);
  REQUIRE(ok.unreadable.size() == 1);
  CHECK(ok.unreadable[0].path == share / "models/ok/bad");
  CHECK(ok.unreadable[0].message == std::string(std::strerror(EIO)));
  CHECK_FALSE(report.complete());
}
