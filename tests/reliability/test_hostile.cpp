// Hostile input: names that try to leave the cache directory, names and paths
// that try to inject SQL or are very long, and symlinks that audit, prune and
// clear must report but never follow or delete.
#include <sys/stat.h>
#include <unistd.h>

#include <boost/filesystem.hpp>
#include <catch2/catch.hpp>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "common.hpp"
#include "sqlite_probe.hpp"
#include "testutil.hpp"
#include "tfimm/names.hpp"
#include "tfimm/paths.hpp"
#include "tfimm/registry.hpp"
#include "tfimm/transfer.hpp"

namespace tfimm::reliability {
namespace {

using namespace std::string_literals;

// Whether `name`, accepted as a model name, stays a direct child of `dir`.
bool stays_inside(const std::string& dir, const std::string& name) {
  const std::string joined = tfimm::join_path(dir, name);
  const std::string normal = tfimm::lexically_normal(joined);
  return normal.size() > dir.size() + 1 && normal.compare(0, dir.size() + 1, dir + "/") == 0 &&
         normal.find('/', dir.size() + 1) == std::string::npos;
}

// What is on disk below `root`: every entry's type, size and link target,
// without following links.
std::map<std::string, std::string> tree(const std::string& root) {
  namespace fs = boost::filesystem;
  std::map<std::string, std::string> out;
  for (fs::recursive_directory_iterator it(root), end; it != end; ++it) {
    struct stat st {};
    ::lstat(it->path().c_str(), &st);
    std::string what = std::to_string(st.st_mode) + " " + std::to_string(st.st_size);
    if (S_ISLNK(st.st_mode)) what += " -> " + fs::read_symlink(it->path()).string();
    out[it->path().string()] = what;
  }
  return out;
}

// The names directly in `dir`, not following links.
std::size_t count_entries(const std::string& dir) {
  namespace fs = boost::filesystem;
  std::size_t n = 0;
  for (fs::directory_iterator it(dir), end; it != end; ++it) ++n;
  return n;
}

}  // namespace

TEST_CASE("every traversal form of a model name is refused and nothing is written",
          "[hostile][names]") {
  const std::vector<std::string> refused{"",
                                         ".",
                                         "..",
                                         "../x",
                                         "../../etc/passwd",
                                         "x/../..",
                                         "/etc/passwd",
                                         "/",
                                         "a/b",
                                         "..\\x",
                                         "\\",
                                         "x\\..\\..",
                                         "..\0x"s,
                                         "\0"s,
                                         " ..",
                                         ".. ",
                                         "\n..",
                                         "..\n",
                                         "x\ty",
                                         "\x7f",
                                         "\xc0\xae\xc0\xae",
                                         "\xc0\xaf",
                                         "\xe0\x80\xae",
                                         "\xed\xa0\x80",
                                         "\xc2\x85..",
                                         "\xff\xfe",
                                         std::string(256, 'a'),
                                         "..%2f..\\..",
                                         "x\r"};
  test::TestContext ctx;
  const std::string reg = ctx.path("registry.db");
  tfimm::Registry registry(reg);
  for (const auto& name : refused) {
    INFO("name \"" << name << "\" (" << name.size() << " bytes)");
    CHECK(tfimm::name_problem(name).has_value());
    CHECK_THROWS_AS(tfimm::check_name(name), tfimm::InvalidName);
    CHECK_THROWS_AS(registry.set_model_cache(name, "/x"), tfimm::InvalidName);
    CHECK_THROWS_AS(registry.cached_model_path(name), tfimm::InvalidName);
    CHECK_THROWS_AS(registry.clear_model_cache(name), tfimm::InvalidName);
    CHECK_THROWS_AS(registry.lock(name), tfimm::InvalidName);
    if (name.find('\0') == std::string::npos) {
      const auto r = run_worker({"set", reg, name, "/x"});
      CHECK(r.out.rfind("error InvalidName: ", 0) == 0);
      if (!kTool.empty()) {
        Child tool({kTool, "--registry", reg, "set", name, "/x"});
        CHECK(tool.wait(milliseconds(30000)).code == 2);
      }
    }
  }
  // Nothing was created: every refusal came before the registry was touched.
  CHECK_FALSE(file_exists(reg));

  // Look-alikes that are ordinary names stay inside the cache directory.
  for (const std::string name :
       {"...", "..a", "a..", "%2e%2e", "%2e%2e%2f", "\xef\xbc\x8e\xef\xbc\x8e",
        "\xe2\x80\xa4\xe2\x80\xa4", "~", "~root", "$HOME", "-", ".hidden"}) {
    INFO("name \"" << name << "\"");
    CHECK_FALSE(tfimm::name_problem(name).has_value());
    CHECK(stays_inside("/cache/tfimm", name));
  }
}

TEST_CASE("no generated name is accepted and resolves outside the cache directory",
          "[hostile][names][property]") {
  const int count = scaled(150000, 3000000);
  std::mt19937 rng(20240611);
  const std::vector<std::string> alphabet{".",
                                          "/",
                                          "\\",
                                          " ",
                                          "a",
                                          "\0"s,
                                          "~",
                                          "%",
                                          "2e",
                                          "2f",
                                          "\xc0",
                                          "\xae",
                                          "\x80",
                                          "\xff",
                                          "\n",
                                          "\xef\xbc\x8e",
                                          "\xe2\x88\x95",
                                          "\xc2\x85"};
  const std::vector<std::string> tokens{"..",       ".",   "/",     "\\", "a",
                                        "",         "%2e", "..%2f", "~",  "\xef\xbc\x8e",
                                        "\xc0\xae", " ",   "../",   "/.."};
  const std::vector<std::string> dirs{"/cache/tfimm", "/home/u/.cache/tfimm", "/c"};
  int accepted = 0;
  int escaped = 0;
  int inconsistent = 0;
  std::string first_escape;
  for (int i = 0; i < count; ++i) {
    std::string name;
    const auto length = rng() % 12;
    switch (i % 3) {
      case 0:  // random bytes
        for (std::size_t k = 0; k < length; ++k) name += static_cast<char>(rng() & 0xFF);
        break;
      case 1:  // a biased alphabet
        for (std::size_t k = 0; k < length; ++k) name += alphabet[rng() % alphabet.size()];
        break;
      default:  // structured traversal pieces
        for (std::size_t k = 0; k < length; ++k) name += tokens[rng() % tokens.size()];
        break;
    }
    const bool ok = !tfimm::name_problem(name).has_value();
    if (i % 16 == 0) {  // the throwing form agrees (exceptions are slow)
      bool threw = false;
      try {
        tfimm::check_name(name);
      } catch (const tfimm::InvalidName&) {
        threw = true;
      }
      inconsistent += threw == ok;
    }
    if (!ok) continue;
    ++accepted;
    for (const auto& dir : dirs) {
      if (!stays_inside(dir, name)) {
        if (escaped++ == 0) first_escape = name;
      }
    }
  }
  INFO("first escaping name: \"" << first_escape << "\"");
  CHECK(escaped == 0);
  CHECK(inconsistent == 0);
  CHECK(accepted > count / 20);  // the generator does produce valid names
  figure("names: " + std::to_string(count) + " generated names, " + std::to_string(accepted) +
         " accepted, " + std::to_string(escaped) + " of those resolve outside the cache dir");
}

TEST_CASE("quotes, SQL fragments and a 100 KB path round-trip byte-exact, schema unchanged",
          "[hostile][sql]") {
  test::TestContext ctx;
  const std::string reg = ctx.path("registry.db");
  tfimm::Registry(reg).set_model_cache("seed", "/seed");
  const auto schema_before = SqliteProbe(reg).schema();

  std::string long_path;
  while (long_path.size() < 100 * 1024) long_path += "/seg'\"; DROP TABLE models;--`$(x)%s";
  const std::map<std::string, std::string> values{
      {"'; DROP TABLE models; --", "/p/'; DROP TABLE models; --"},
      {"\"; DROP TABLE settings; --", "/p/\"; DELETE FROM history; --"},
      {"Robert'); DROP TABLE history;--", "/p/Robert'); DROP TABLE history;--"},
      {"x' OR '1'='1", "/p/x' OR '1'='1"},
      {"a'b\"c`d", "/p/new\nline/tab\t/cr\r/esc\x1b[31m"},
      {"%s%n%x", "/p/\xff\xfe not utf-8 \xc0\xaf"},
      {"\xc3\xa9\xe4\xb8\xad\xf0\x9f\x99\x82", "/p/\xc3\xa9\xe4\xb8\xad\xf0\x9f\x99\x82"},
      {std::string(255, '\''), "/p/" + std::string(300, '"')},
      {"long", long_path},
  };
  std::size_t i = 0;
  for (const auto& [name, path] : values) {
    INFO("name \"" << name << "\"");
    // Alternately through another process and through the tool.
    if (i++ % 2 == 0 || kTool.empty()) {
      const auto r = run_worker({"set", reg, name, path});
      CHECK(r.code == 0);
    } else {
      Child tool({kTool, "--registry", reg, "set", name, path});
      const auto r = tool.wait(milliseconds(30000));
      INFO(r.describe());
      CHECK(r.code == 0);
    }
  }
  tfimm::Registry registry(reg);
  registry.set_dir("/dir/'; DROP TABLE settings; --");
  registry.lock("'; DROP TABLE models; --", "reason'); DROP TABLE models; --");

  for (const auto& [name, path] : values) {
    INFO("name \"" << name << "\"");
    const auto entry = registry.entry(name);
    REQUIRE(entry.has_value());
    CHECK(entry->path == path);
    CHECK(registry.cached_model_path(name) == path);
    CHECK(registry.history(name, 1).at(0).new_path == path);
  }
  CHECK(registry.entry("'; DROP TABLE models; --")->lock_reason ==
        "reason'); DROP TABLE models; --");
  CHECK(registry.stored_dir() == "/dir/'; DROP TABLE settings; --");
  CHECK(registry.list_cached_models().size() == values.size() + 1);

  SqliteProbe db(reg);
  for (const auto& [name, path] : values) {
    CHECK(db.text("SELECT path FROM models WHERE name = ?1", {name}) == path);
  }
  CHECK(db.schema() == schema_before);
  CHECK(db.integrity() == "ok");
  figure("sql: " + std::to_string(values.size()) +
         " hostile names/paths (quotes, SQL, control bytes, invalid UTF-8, a " +
         std::to_string(long_path.size()) + "-byte path) round-trip byte-exact; schema unchanged");
}

TEST_CASE("audit reports symlinks, and prune and clear never follow or delete anything on disk",
          "[hostile][symlinks]") {
  test::TestContext ctx;
  const std::string reg = ctx.path("registry.db");
  const std::string data = ctx.path("data");
  test::make_dirs(data + "/real_a");
  test::make_dirs(data + "/real_d");
  test::make_dirs(data + "/links");
  test::write_file(data + "/real_a/weights.bin", "weights a");
  test::write_file(data + "/real_d/weights.bin", "weights d");
  REQUIRE(::symlink((data + "/real_a").c_str(), (data + "/links/a").c_str()) == 0);
  REQUIRE(::symlink((data + "/gone").c_str(), (data + "/links/b").c_str()) == 0);
  REQUIRE(::symlink((data + "/links/loop").c_str(), (data + "/links/loop").c_str()) == 0);
  REQUIRE(::symlink("/etc", (data + "/links/etc").c_str()) == 0);

  tfimm::Registry registry(reg);
  registry.set_model_cache("a", data + "/links/a");
  registry.set_model_cache("b", data + "/links/b");
  registry.set_model_cache("c", data + "/missing");
  registry.set_model_cache("d", data + "/real_d");
  registry.set_model_cache("e", data + "/links/loop");
  registry.set_model_cache("f", data + "/links/etc");

  const auto by_name = [](const tfimm::AuditReport& report) {
    std::map<std::string, tfimm::AuditItem> out;
    for (const auto& item : report.items) out[item.entry.name] = item;
    return out;
  };
  auto items = by_name(registry.audit());
  CHECK(items["a"].status == tfimm::PathStatus::Ok);
  CHECK(items["a"].is_symlink);
  CHECK(items["b"].status == tfimm::PathStatus::DanglingLink);
  CHECK(items["b"].is_symlink);
  CHECK(items["c"].status == tfimm::PathStatus::Missing);
  CHECK_FALSE(items["c"].is_symlink);
  CHECK(items["d"].status == tfimm::PathStatus::Ok);
  CHECK_FALSE(items["d"].is_symlink);
  CHECK(items["e"].status == tfimm::PathStatus::Error);  // a loop: not stale, kept
  CHECK(items["e"].is_symlink);
  CHECK(items["f"].status == tfimm::PathStatus::Ok);
  CHECK(items["f"].is_symlink);
  CHECK(items["f"].detail.find("/etc") != std::string::npos);  // names the target

  // The target of a goes away: a is now a dangling link too.
  REQUIRE(::rename((data + "/real_a").c_str(), (data + "/moved_a").c_str()) == 0);
  items = by_name(registry.audit());
  CHECK(items["a"].status == tfimm::PathStatus::DanglingLink);
  CHECK(items["a"].is_symlink);

  const auto on_disk = tree(data);
  const auto etc_before = count_entries("/etc");
  std::string how;
  SECTION("through the library") {
    how = "library";
    CHECK(registry.clear_model_cache("d"));
    const auto report = registry.prune();
    std::vector<std::string> removed;
    for (const auto& item : report.removed) removed.push_back(item.entry.name);
    CHECK(removed == std::vector<std::string>{"a", "b", "c"});
    CHECK(registry.clear_model_cache("f"));
  }
  SECTION("through the tool") {
    how = "tool";
    if (kTool.empty()) {
      WARN("tfimm-cache is not built: skipped");
      return;
    }
    Child clear({kTool, "--registry", reg, "clear", "d", "f"});
    CHECK(clear.wait(milliseconds(30000)).code == 0);
    Child prune({kTool, "--registry", reg, "prune"});
    const auto r = prune.wait(milliseconds(30000));
    INFO(r.describe());
    CHECK(r.code == 0);
  }
  CHECK(registry.list_cached_models() == std::vector<std::string>{"e"});
  // Every file, directory and link is exactly as it was; link targets too.
  CHECK(tree(data) == on_disk);
  CHECK(test::read_file(data + "/moved_a/weights.bin") == "weights a");
  CHECK(test::read_file(data + "/real_d/weights.bin") == "weights d");
  CHECK(count_entries("/etc") == etc_before);
  figure("symlinks (" + how +
         "): audit reports is_symlink for links, dangling_link once the target is gone; clear "
         "and prune forgot 5 entries and changed nothing on disk");
}

TEST_CASE("an export with hostile values imports back to the same registry", "[hostile][sql]") {
  tfimm::Snapshot snap;
  snap.cache_dir = "/dir/\"quoted\"/'; DROP TABLE settings; --";
  snap.models.push_back({"'; DROP TABLE models; --", "/p/\"\\\n\t\x01", true, "'); --"});
  snap.models.push_back({"\xc3\xa9\xf0\x9f\x99\x82", "/p/" + std::string(50000, '\''), false, ""});
  const auto back = tfimm::parse_snapshot(tfimm::to_json(snap));
  REQUIRE(back.models.size() == 2);
  CHECK(back.cache_dir == snap.cache_dir);
  for (const auto& m : snap.models) {
    bool found = false;
    for (const auto& b : back.models) {
      if (b.name == m.name) {
        found = true;
        CHECK(b.path == m.path);
        CHECK(b.locked == m.locked);
        CHECK(b.lock_reason == m.lock_reason);
      }
    }
    CHECK(found);
  }
}

// Found by fuzz_import: nlohmann::json reports a number out of range with
// an exception of its own, which escaped as a plain std::exception.
TEST_CASE("an export file with an out-of-range number is refused as invalid input",
          "[hostile][import]") {
  const std::string text =
      R"({"format": "tfimm-cache-export", "version": 1, "models": [], "x": 1e400})";
  CHECK_THROWS_AS(tfimm::parse_snapshot(text), tfimm::InvalidInput);
  if (kTool.empty()) return;
  test::TestContext ctx;
  const std::string file = ctx.path("export.json");
  test::write_file(file, text);
  Child tool({kTool, "--registry", ctx.path("registry.db"), "import", file});
  const auto r = tool.wait(milliseconds(30000));
  INFO(r.describe());
  CHECK(r.code == 2);  // bad input, not "the registry cannot be used"
  CHECK_FALSE(file_exists(ctx.path("registry.db")));
}

}  // namespace tfimm::reliability
