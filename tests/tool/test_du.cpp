// tfimm-cache du: sizes against GNU du on real trees, the JSON form, missing
// paths, models found only in the cache directory, unreadable directories,
// refused names and exit codes.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <sstream>

#include "disagreeing_mount.hpp"
#include "tool_test.hpp"

using tfimm::tooltest::has_escape;
using tfimm::tooltest::lines;
using tfimm::tooltest::require_error;
using tfimm::tooltest::run_in_terminal;
using tfimm::tooltest::Tool;

namespace {

// The first number GNU du prints on its last line: `du ARGS...`, as `prefix`
// (e.g. setpriv as another user) when given.
std::uint64_t du(std::vector<std::string> args, std::vector<std::string> prefix = {}) {
  args.insert(args.begin(), {"du", "--block-size=1"});
  args.insert(args.begin(), prefix.begin(), prefix.end());
  const auto r = tfimm::test::run_process(args);
  INFO("du stderr: " << r.err);
  std::istringstream in(r.out);
  std::string line, last;
  while (std::getline(in, line)) last = line;
  REQUIRE_FALSE(last.empty());
  return std::stoull(last.substr(0, last.find('\t')));
}

// A model directory: a file with three hard links, a sparse file, symlinks
// to /usr and to a file, a FIFO, nested directories.
void make_model(const std::string& root) {
  tfimm::test::make_dirs(root + "/sub/deeper");
  tfimm::test::write_file(root + "/weights.h5", std::string(200000, 'w'));
  REQUIRE(::link((root + "/weights.h5").c_str(), (root + "/again.h5").c_str()) == 0);
  REQUIRE(::link((root + "/weights.h5").c_str(), (root + "/sub/again.h5").c_str()) == 0);
  tfimm::test::write_file(root + "/sub/deeper/config.json", "{\"layers\": 18}");
  const int fd = ::open((root + "/sparse.bin").c_str(), O_WRONLY | O_CREAT, 0644);
  REQUIRE(fd >= 0);
  REQUIRE(::pwrite(fd, "x", 1, 32 << 20) == 1);
  ::close(fd);
  REQUIRE(::symlink("/usr", (root + "/to-usr").c_str()) == 0);
  REQUIRE(::symlink("weights.h5", (root + "/link.h5").c_str()) == 0);
  REQUIRE(::mkfifo((root + "/fifo").c_str(), 0644) == 0);
}

const nlohmann::json& model(const nlohmann::json& report, const std::string& name) {
  for (const auto& m : report["models"]) {
    if (m["name"] == name) return m;
  }
  FAIL("no model " << name << " in " << report.dump());
  throw std::logic_error("unreachable");
}

}  // namespace

TEST_CASE(
    "du --json gives each model's bytes, apparent bytes and files as du -s counts them, and a "
    "total as du -sc counts it",
    "[du]") {
  Tool tool;
  const std::string a = tool.path("models/resnet18");
  const std::string b = tool.path("models/vit");
  make_model(a);
  make_model(b);
  REQUIRE(::symlink(b.c_str(), tool.path("vit-link").c_str()) == 0);
  tool.ok({"set", "resnet18", a});
  tool.ok({"set", "vit", tool.path("vit-link")});  // followed
  tool.ok({"set", "alias", a});                    // counted once in the total
  const std::string before = tool.snapshot();

  for (const char* jobs : {"1", "8"}) {
    INFO("--jobs " << jobs);
    const auto report = tool.json({"du", "--json", "--jobs", jobs});
    REQUIRE(report["models"].size() == 3);
    for (const auto& [name, path] : std::vector<std::pair<std::string, std::string>>{
             {"resnet18", a}, {"vit", tool.path("vit-link")}, {"alias", a}}) {
      INFO(name);
      const auto& m = model(report, name);
      CHECK(m["path"] == path);
      CHECK(m["source"] == "entry");
      CHECK(m["status"] == "ok");
      CHECK(m["bytes"] == du({"-s", "-D", path}));
      CHECK(m["apparent_bytes"] == du({"-s", "-D", "--apparent-size", path}));
      CHECK(m["files"] == 3);  // weights (three links), config, sparse
      CHECK(m["unreadable"].empty());
    }
    CHECK(report["total"]["bytes"] == du({"-sc", a, b}));
    CHECK(report["total"]["apparent_bytes"] == du({"-sc", "--apparent-size", a, b}));
    CHECK(report["total"]["files"] == 6);
    CHECK(report["total"]["models"] == 3);
    CHECK(report["complete"] == true);
  }
  CHECK(tool.snapshot() == before);
}

TEST_CASE("du --json has the fields in the README's order", "[du]") {
  Tool tool;
  make_model(tool.path("m"));
  tool.ok({"set", "m", tool.path("m")});
  const std::string out = tool.ok({"du", "--json"});
  const auto report = nlohmann::ordered_json::parse(out);
  std::vector<std::string> keys;
  for (const auto& [key, value] : report.items()) keys.push_back(key);
  CHECK(keys == std::vector<std::string>{"models", "total", "cache_dir", "complete"});
  keys.clear();
  for (const auto& [key, value] : report["models"][0].items()) keys.push_back(key);
  CHECK(keys == std::vector<std::string>{"name", "path", "source", "status", "bytes",
                                         "apparent_bytes", "files", "detail", "unreadable"});
  keys.clear();
  for (const auto& [key, value] : report["total"].items()) keys.push_back(key);
  CHECK(keys == std::vector<std::string>{"bytes", "apparent_bytes", "files", "models"});
  keys.clear();
  for (const auto& [key, value] : report["cache_dir"].items()) keys.push_back(key);
  CHECK(keys == std::vector<std::string>{"path", "status", "detail"});
}

TEST_CASE(
    "du shows models found only in the cache directory as cache_dir, a missing path as missing, "
    "and exits 1 when a count is incomplete",
    "[du]") {
  Tool tool;
  const std::string cache = tool.home() + "/.cache/tfimm";
  make_model(cache + "/efficientnet_b0");
  make_model(tool.path("models/resnet18"));
  tool.ok({"set", "resnet18", tool.path("models/resnet18")});
  tool.ok({"set", "gone", tool.path("models/gone")});

  const auto r = tool.run({"du"});
  INFO(r.out << r.err);
  CHECK(r.exit_code == 1);
  CHECK(r.err.empty());
  const auto table = lines(r.out);
  REQUIRE(table.size() == 5);  // header, three models, total
  const auto source = table[0].find("SOURCE");
  const auto status = table[0].find("STATUS");
  const auto size = table[0].find("SIZE");
  CHECK(table[0].rfind("NAME", 0) == 0);
  CHECK(table[1].rfind("efficientnet_b0 ", 0) == 0);
  CHECK(table[1].substr(source, 10) == "cache_dir ");
  CHECK(table[2].rfind("gone ", 0) == 0);
  CHECK(table[2].substr(status, 8) == "missing ");
  CHECK(table[2].substr(size, 2) == "- ");
  CHECK(table[3].rfind("resnet18 ", 0) == 0);
  CHECK(table[3].substr(source, 6) == "entry ");
  CHECK(table[3].substr(status, 3) == "ok ");
  const std::uint64_t total = du({"-sc", cache + "/efficientnet_b0", tool.path("models/resnet18")});
  CHECK(table[4].rfind("total: 3 models, ", 0) == 0);
  CHECK(table[4].find("(" + std::to_string(total) + " bytes)") != std::string::npos);
  CHECK(table[4].find("; not counted: 1 missing") != std::string::npos);

  const auto json = tool.json({"du", "--json"}, 1);
  CHECK(model(json, "efficientnet_b0")["source"] == "cache_dir");
  CHECK(model(json, "efficientnet_b0")["path"] == cache + "/efficientnet_b0");
  CHECK(model(json, "gone")["status"] == "missing");
  CHECK(model(json, "gone")["bytes"] == 0);
  CHECK(json["total"]["bytes"] == total);
  CHECK(json["complete"] == false);

  SECTION("with every path there it exits 0") {
    tool.ok({"clear", "gone"});
    CHECK(tool.run({"du"}).exit_code == 0);
  }
  SECTION("named models only: an entry and a cache-directory model") {
    const auto named = tool.json({"du", "--json", "resnet18", "efficientnet_b0"});
    REQUIRE(named["models"].size() == 2);
    CHECK(named["models"][0]["name"] == "efficientnet_b0");
    CHECK(named["models"][1]["name"] == "resnet18");
    CHECK(named["total"]["bytes"] == total);
  }
}

TEST_CASE("du refuses an invalid or unknown name with exit 2 and one line, before any walk",
          "[du]") {
  Tool tool;
  tool.ok({"set", "resnet18", tool.make_dir("models/resnet18")});
  const auto unknown = tool.run({"du", "resnet18", "mobilenet"});
  require_error(unknown, 2);
  CHECK(unknown.err.find("\"mobilenet\"") != std::string::npos);
  CHECK(unknown.err.find(tool.home() + "/.cache/tfimm/mobilenet") != std::string::npos);
  const auto invalid = tool.run({"du", "../etc"});
  require_error(invalid, 2);
  CHECK(invalid.err.find("invalid model name \"../etc\"") != std::string::npos);
  require_error(tool.run({"du", "--jobs", "0"}), 2);
  require_error(tool.run({"du", "--jobs", "many"}), 2);
}

TEST_CASE("du on a registry that does not exist counts the cache directory and creates nothing",
          "[du]") {
  Tool tool;
  make_model(tool.home() + "/.cache/tfimm/convnext");
  const auto report = tool.json({"du", "--json"});
  REQUIRE(report["models"].size() == 1);
  CHECK(report["models"][0]["source"] == "cache_dir");
  CHECK_FALSE(tfimm::test::exists(tool.registry()));
  CHECK_FALSE(tfimm::test::exists(tool.path("state")));
}

TEST_CASE(
    "du as a user who cannot read a directory inside a model names it on stderr, counts the "
    "rest as du does for that user, and exits 1",
    "[du][permissions]") {
  Tool tool;
  const std::string m = tool.path("models/m");
  make_model(m);
  tfimm::test::make_dirs(m + "/private/inner");
  tfimm::test::write_file(m + "/private/inner/secret.bin", std::string(40000, 's'));
  REQUIRE(::chmod((m + "/private").c_str(), 0700) == 0);
  tool.ok({"set", "m", m});
  REQUIRE(::chmod(tool.path("").c_str(), 0755) == 0);
  REQUIRE(::chmod(tool.path("state").c_str(), 0755) == 0);
  REQUIRE(::chmod(tool.registry().c_str(), 0644) == 0);
  const std::vector<std::string> as_nobody{"setpriv", "--reuid=65534", "--regid=65534",
                                           "--clear-groups"};
  std::vector<std::string> argv = as_nobody;
  argv.insert(argv.end(), {TFIMM_TOOL, "--registry", tool.registry(), "--cache-dir",
                           tool.path("no-cache"), "du", "--json"});
  const auto r = tfimm::test::run_process(argv);
  INFO(r.out << r.err);
  if (r.exit_code == 127 || r.err.find("setpriv") != std::string::npos ||
      r.err.find("Permission denied") == std::string::npos) {
    WARN("cannot run as another user here: " << r.err);
    return;
  }
  CHECK(r.exit_code == 1);
  CHECK(r.err == "tfimm-cache: note: cannot read " + m +
                     "/private: Permission denied; the size of m leaves it out\n");
  const auto report = nlohmann::json::parse(r.out);
  const auto& item = model(report, "m");
  CHECK(item["status"] == "ok");
  CHECK(item["bytes"] == du({"-s", m}, as_nobody));
  CHECK(item["apparent_bytes"] == du({"-s", "--apparent-size", m}, as_nobody));
  REQUIRE(item["unreadable"].size() == 1);
  CHECK(item["unreadable"][0]["path"] == m + "/private");
  CHECK(item["unreadable"][0]["error"] == "Permission denied");
  CHECK(report["complete"] == false);
  // As root everything is readable: the secret is counted.
  CHECK(tool.json({"du", "--json"})["models"][0]["bytes"] == du({"-s", m}));
}

TEST_CASE(
    "du as a user who cannot list the cache directory says so on stderr, counts the entries and "
    "exits 1",
    "[du][permissions]") {
  Tool tool;
  make_model(tool.path("models/m"));
  tool.ok({"set", "m", tool.path("models/m")});
  const std::string cache = tool.make_dir("cache");
  make_model(cache + "/hidden");
  REQUIRE(::chmod(cache.c_str(), 0700) == 0);
  REQUIRE(::chmod(tool.path("").c_str(), 0755) == 0);
  REQUIRE(::chmod(tool.path("state").c_str(), 0755) == 0);
  REQUIRE(::chmod(tool.registry().c_str(), 0644) == 0);
  const auto r = tfimm::test::run_process({"setpriv", "--reuid=65534", "--regid=65534",
                                           "--clear-groups", TFIMM_TOOL, "--registry",
                                           tool.registry(), "--cache-dir", cache, "du"});
  INFO(r.out << r.err);
  if (r.exit_code == 127 || r.err.find("setpriv") != std::string::npos ||
      r.err.find("Permission denied") == std::string::npos) {
    WARN("cannot run as another user here: " << r.err);
    return;
  }
  CHECK(r.exit_code == 1);
  CHECK(r.err == "tfimm-cache: note: cannot list the cache directory " + cache +
                     ": Permission denied; models found only there are left out\n");
  const auto table = lines(r.out);
  REQUIRE(table.size() == 3);  // header, m, total
  CHECK(table[1].rfind("m ", 0) == 0);
  CHECK(table[2].find("; the cache directory could not be listed") != std::string::npos);
}

TEST_CASE(
    "du prints a path that is not UTF-8 escaped in text and with U+FFFD in JSON, and a control "
    "character escaped",
    "[du]") {
  Tool tool;
  const std::string odd = tool.path("models/w\xff\nx");
  make_model(odd);
  tool.ok({"set", "odd", odd});
  const std::string text = tool.ok({"du"});
  CHECK(lines(text).size() == 3);  // one line for the model
  CHECK(text.find("models/w\\xFF\\nx") != std::string::npos);
  const auto json = tool.json({"du", "--json"});
  CHECK(json["models"][0]["path"] == tool.path("models/w\xef\xbf\xbd\nx"));
  // du -0 ends its line with NUL: the path holds a newline.
  const auto r = tfimm::test::run_process({"du", "-s0", "--block-size=1", odd});
  CHECK(json["models"][0]["bytes"] == std::stoull(r.out.substr(0, r.out.find('\t'))));
}

TEST_CASE("du shows the target of a registered symlink, as audit does", "[du]") {
  Tool tool;
  make_model(tool.path("models/real"));
  REQUIRE(::symlink(tool.path("models/real").c_str(), tool.path("models/link").c_str()) == 0);
  tool.ok({"set", "linked", tool.path("models/link")});
  const auto table = lines(tool.ok({"du"}));
  REQUIRE(table.size() == 3);
  CHECK(table[1].find("-> " + tool.path("models/real")) != std::string::npos);
}

TEST_CASE(
    "du walks models in parallel, --jobs at once, with a progress bar only at a terminal "
    "(skipped without FUSE)",
    "[du][fuse]") {
  Tool tool;
  constexpr int kDelayMs = 200;
  constexpr int kPaths = 20;
  tfimm::test::DisagreeingMount::Options options;
  options.delay_ms = kDelayMs;
  nlohmann::json models = nlohmann::json::array();
  for (int i = 0; i < kPaths; ++i) {
    options.exists.push_back("d" + std::to_string(i) + "/model");
    models.push_back({{"name", "m" + std::to_string(i)},
                      {"path", tool.path("share/d" + std::to_string(i) + "/model")},
                      {"locked", false},
                      {"lock_reason", ""}});
  }
  tfimm::test::DisagreeingMount share(tool.path("share"), options);
  if (!share.usable()) return;
  const nlohmann::json backup{
      {"format", "tfimm-cache-export"}, {"version", 1}, {"cache_dir", nullptr}, {"models", models}};
  tool.ok({"import", "-"}, backup.dump());

  // How many of the share's (slow) requests were in flight at once: the
  // walk's parallelism, seen by the file system, whatever the machine's load.
  const auto in_flight = [&](const std::vector<std::string>& args) {
    share.max_in_flight();  // from here on
    auto json = tool.json(args);
    REQUIRE(json["models"].size() == kPaths);
    for (const auto& item : json["models"]) CHECK(item.at("status") == "ok");
    return share.max_in_flight();
  };
  const int by_default = in_flight({"du", "--json"});
  CHECK(by_default > 4);
  const int four = in_flight({"du", "--json", "--jobs", "4"});
  CHECK(four >= 2);
  CHECK(four <= 4);
  INFO("in flight at once: " << by_default << " by default, " << four << " with --jobs 4");

  const auto piped = tool.run({"du"});
  CHECK(piped.exit_code == 0);
  CHECK_FALSE(has_escape(piped.err));
  const std::string seen =
      run_in_terminal({TFIMM_TOOL, "--registry", tool.registry(), "du"}, {{"TERM", "xterm"}});
  CHECK(seen.find("measuring models [") != std::string::npos);
  CHECK(seen.find("m19") != std::string::npos);
}
