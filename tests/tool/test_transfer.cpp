// tfimm-cache export / import
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <regex>

#include <boost/filesystem.hpp>
#include <catch2/catch.hpp>

#include "tool_test.hpp"

using tfimm::tooltest::lines;
using tfimm::tooltest::require_error;
using tfimm::tooltest::Tool;

namespace {

std::vector<std::string> files_in(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& entry : boost::filesystem::directory_iterator(dir)) {
    out.push_back(entry.path().filename().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

const char* const kGood = R"({
  "format": "tfimm-cache-export", "version": 1, "cache_dir": "/srv/cache",
  "models": [{"name": "resnet18", "path": "/old/disk/resnet18", "locked": true,
              "lock_reason": "usb"},
             {"name": "vit", "path": "/old/disk/vit"}]
})";

// The counts of an import's summary line, dry run or not: the same numbers
// in the same order whichever wording says them.
std::vector<std::string> counts(const std::string& line) {
  std::vector<std::string> out;
  static const std::regex number("[0-9]+");
  for (std::sregex_iterator it(line.begin(), line.end(), number), end; it != end; ++it) {
    out.push_back(it->str());
  }
  return out;
}

// "action name" of every history row, newest first.
std::vector<std::string> actions(const Tool& tool, const std::string& name) {
  std::vector<std::string> out;
  for (const auto& row : tool.json({"history", name, "--json"})) {
    out.push_back(row["action"].get<std::string>() + " " + row["name"].get<std::string>());
  }
  return out;
}

}  // namespace

TEST_CASE("export writes the documented JSON to stdout", "[export][json][conformance]") {
  Tool tool;
  tool.ok({"set", "vit", "/data/vit"});
  tool.ok({"set", "resnet18", "/data/resnet18"});
  tool.ok({"lock", "vit", "--reason", "usb"});
  tool.ok({"set-dir", "/srv/cache"});
  for (auto args : {std::vector<std::string>{"export"}, {"export", "-"}}) {
    auto json = nlohmann::json::parse(tool.ok(args));
    CHECK(json["format"] == "tfimm-cache-export");
    CHECK(json["version"] == 2);
    CHECK(json["cache_dir"] == "/srv/cache");
    CHECK_FALSE(json.contains("history"));
    REQUIRE(json["models"].size() == 2);
    CHECK(json["models"][0]["name"] == "resnet18");
    CHECK(json["models"][1]["name"] == "vit");
    CHECK(json["models"][1]["locked"] == true);
    CHECK(json["models"][1]["lock_reason"] == "usb");
    CHECK(json["models"][1]["created_at"].is_number_integer());
    CHECK(json["models"][1]["updated_at"].is_number_integer());
    CHECK(json["models"][1]["missing_since"].is_null());
  }
}

TEST_CASE("export to a file writes the same JSON atomically and leaves no temporary file",
          "[export][conformance]") {
  Tool tool;
  tool.ok({"set", "resnet18", "/data/resnet18"});
  std::string dir = tool.make_dir("backup");
  std::string file = dir + "/registry.json";
  tfimm::test::write_file(file, "old backup\n");
  // A second name for the old file: a rename leaves it intact, an in-place
  // rewrite would change it.
  REQUIRE(::link(file.c_str(), (dir + "/old-link.json").c_str()) == 0);

  std::string out = tool.ok({"export", file});
  CHECK(out == "exported 1 entry to " + file + "\n");
  CHECK(tfimm::test::read_file(file) == tool.snapshot());
  CHECK(tfimm::test::read_file(dir + "/old-link.json") == "old backup\n");
  CHECK(files_in(dir) == std::vector<std::string>{"old-link.json", "registry.json"});
  struct stat st {};
  REQUIRE(::stat(file.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == (0666 & ~[] {
          mode_t mask = ::umask(0);
          ::umask(mask);
          return mask;
        }()));
}

TEST_CASE("export to a directory that does not exist exits 2", "[export][errors][conformance]") {
  Tool tool;
  tool.ok({"set", "resnet18", "/data/resnet18"});
  auto r = tool.run({"export", tool.path("no/such/dir/backup.json")});
  require_error(r, 2);
  CHECK(r.err.find("no/such/dir/backup.json") != std::string::npos);
}

TEST_CASE("export then import into a fresh registry reproduces it", "[export][import]") {
  Tool source;
  source.ok({"set", "resnet18", "/data/resnet18"});
  source.ok({"set", "vit", "/data/vit"});
  source.ok({"lock", "vit", "--reason", "usb"});
  source.ok({"set-dir", "/srv/cache"});
  std::string file = source.path("backup.json");
  source.ok({"export", file});

  Tool target;
  std::string out = target.ok({"import", file});
  CHECK(out == "imported " + file +
                   ": 2 added, 0 changed, 0 unchanged, 1 locked; cache directory setting "
                   "changed\n");
  CHECK(target.snapshot() == source.snapshot());
  CHECK(target.ok({"dir"}) == "/srv/cache\n");
}

TEST_CASE("import - reads standard input", "[import][conformance]") {
  Tool tool;
  CHECK(tool.ok({"import", "-"}, kGood).rfind("imported standard input: 2 added", 0) == 0);
  CHECK(tool.ok({"path", "vit"}) == "/old/disk/vit\n");
  CHECK(tool.json({"list", "--json"})[0]["locked"] == true);
}

TEST_CASE("import --dry-run reports what would change and changes nothing",
          "[import][conformance]") {
  Tool tool;
  tool.ok({"set", "vit", "/old/disk/vit"});
  tool.ok({"set", "other", "/other"});
  std::string before = tool.snapshot();
  std::string out = tool.ok({"import", "-", "--dry-run", "--replace"}, kGood);
  CHECK(out ==
        "dry run, nothing changed: importing standard input would add 1, change 0, leave 1 "
        "unchanged, forget 1, lock 1, and change the cache directory setting\n");
  CHECK(tool.snapshot() == before);
}

TEST_CASE("import without --replace keeps other entries and with it forgets them",
          "[import][conformance]") {
  Tool tool;
  tool.ok({"set", "other", "/other"});
  SECTION("merge") {
    tool.ok({"import", "-"}, kGood);
    CHECK(tool.json({"list", "--json"}).size() == 3);
  }
  SECTION("replace") {
    CHECK(tool.ok({"import", "-", "--replace"}, kGood).find("1 forgotten") != std::string::npos);
    auto list = tool.json({"list", "--json"});
    REQUIRE(list.size() == 2);
    CHECK(list[0]["name"] == "resnet18");
    CHECK(list[1]["name"] == "vit");
  }
}

TEST_CASE("import --rewrite moves path prefixes, first match wins", "[import]") {
  Tool tool;
  tool.ok({"import", "-", "--rewrite", "/old/disk=/new/disk", "--rewrite", "/old=/elsewhere"},
          kGood);
  CHECK(tool.ok({"path", "resnet18"}) == "/new/disk/resnet18\n");
  CHECK(tool.ok({"path", "vit"}) == "/new/disk/vit\n");
}

TEST_CASE("import --rewrite without OLD=NEW exits 2 and changes nothing",
          "[import][errors][conformance]") {
  Tool tool;
  tool.ok({"set", "other", "/other"});
  std::string before = tool.snapshot();
  for (const char* bad : {"/old/disk", "=/new", "/old="}) {
    INFO(bad);
    require_error(tool.run({"import", "-", "--rewrite", bad}, kGood), 2);
  }
  CHECK(tool.snapshot() == before);
}

TEST_CASE("import of a file with one bad record changes nothing", "[import][errors]") {
  Tool tool;
  tool.ok({"set", "resnet18", "/data/resnet18"});
  tool.ok({"set-dir", "/mine"});
  std::string before = tool.snapshot();
  std::string bytes_before = tfimm::test::read_file(tool.registry());

  SECTION("a name with a slash") {
    auto r = tool.run({"import", "-"}, R"({"format": "tfimm-cache-export", "version": 1,
      "cache_dir": "/theirs",
      "models": [{"name": "vit", "path": "/v"}, {"name": "../escape", "path": "/e"},
                 {"name": "resnet18", "path": "/changed"}]})");
    require_error(r, 2);
    CHECK(r.err.find("../escape") != std::string::npos);
  }
  SECTION("an empty path") {
    require_error(tool.run({"import", "-"}, R"({"format": "tfimm-cache-export", "version": 1,
      "models": [{"name": "vit", "path": "/v"}, {"name": "bad", "path": ""}]})"),
                  2);
  }
  SECTION("a duplicate name") {
    require_error(tool.run({"import", "-", "--replace"},
                           R"({"format": "tfimm-cache-export", "version": 1,
      "models": [{"name": "vit", "path": "/v"}, {"name": "vit", "path": "/w"}]})"),
                  2);
  }
  SECTION("a record without a name") {
    require_error(tool.run({"import", "-"}, R"({"format": "tfimm-cache-export", "version": 1,
      "models": [{"name": "vit", "path": "/v"}, {"path": "/w"}]})"),
                  2);
  }
  CHECK(tool.snapshot() == before);
  CHECK(tool.json({"history", "--json"}).size() == 2);  // set and set_dir only
}

TEST_CASE("import of a malformed or unreadable file exits 2 and changes nothing",
          "[import][errors][conformance]") {
  Tool tool;
  tool.ok({"set", "resnet18", "/data/resnet18"});
  std::string before = tool.snapshot();
  SECTION("not JSON") { require_error(tool.run({"import", "-"}, "{not json"), 2); }
  SECTION("empty input") { require_error(tool.run({"import", "-"}, ""), 2); }
  SECTION("another format") {
    require_error(tool.run({"import", "-"}, R"({"format": "something-else", "version": 1})"), 2);
  }
  SECTION("a newer format version") {
    require_error(tool.run({"import", "-"},
                           R"({"format": "tfimm-cache-export", "version": 99, "models": []})"),
                  2);
  }
  SECTION("a missing file") {
    auto r = tool.run({"import", tool.path("missing.json")});
    require_error(r, 2);
    CHECK(r.err.find("missing.json") != std::string::npos);
  }
  SECTION("a directory") { require_error(tool.run({"import", tool.path("")}), 2); }
  CHECK(tool.snapshot() == before);
}

TEST_CASE("import --replace that unlocks an entry says so, records it, and prune then forgets it",
          "[import][locks][conformance]") {
  Tool tool;
  const std::string gone = tool.path("usb/convnext");  // does not exist
  tool.ok({"set", "convnext", gone});
  tool.ok({"lock", "convnext", "--reason", "on the USB disk"});
  const std::string file = R"({"format": "tfimm-cache-export", "version": 1, "cache_dir": null,
      "models": [{"name": "convnext", "path": ")" +
                           gone + R"("}]})";
  const std::string preview = tool.ok({"import", "-", "--replace", "--dry-run"}, file);
  CHECK(preview ==
        "dry run, nothing changed: importing standard input would add 0, change 1, leave 0 "
        "unchanged, forget 0, unlock 1\n");
  CHECK(tool.json({"list", "--json"})[0]["locked"] == true);
  const std::string done = tool.ok({"import", "-", "--replace"}, file);
  CHECK(done ==
        "imported standard input: 0 added, 1 changed, 0 unchanged, 0 forgotten, 1 "
        "unlocked\n");
  CHECK(counts(done) == counts(preview));
  CHECK(actions(tool, "convnext") ==
        std::vector<std::string>{"unlock convnext", "lock convnext", "set convnext"});
  CHECK(tool.ok({"prune"}).find("forgot  convnext") != std::string::npos);
  CHECK(actions(tool, "convnext").front() == "prune convnext");
}

TEST_CASE("a merge import keeps a lock the file does not have and says so",
          "[import][locks][conformance]") {
  Tool tool;
  tool.ok({"set", "vit", "/old/disk/vit"});
  tool.ok({"lock", "vit", "--reason", "mine"});
  const std::string out = tool.ok({"import", "-"}, kGood);
  CHECK(out ==
        "imported standard input: 1 added, 0 changed, 1 unchanged, 1 locked, 1 kept locked that "
        "the file has unlocked; cache directory setting changed\n");
  const auto list = tool.json({"list", "--json"});
  REQUIRE(list.size() == 2);
  CHECK(list[1]["name"] == "vit");
  CHECK(list[1]["locked"] == true);
  CHECK(list[1]["lock_reason"] == "mine");
  CHECK(actions(tool, "vit") == std::vector<std::string>{"lock vit", "set vit"});
  CHECK(actions(tool, "resnet18") == std::vector<std::string>{"lock resnet18", "import resnet18"});
}

TEST_CASE("import --dry-run prints the counts the import then prints, for every kind of change",
          "[import][dry-run]") {
  const bool replace = GENERATE(false, true);
  INFO("replace " << replace);
  Tool tool;
  tool.ok({"set", "vit", "/data/vit"});                // path changes
  tool.ok({"set", "resnet18", "/old/disk/resnet18"});  // gets locked
  tool.ok({"set", "mine", "/data/mine"});              // not in the file
  tool.ok({"lock", "mine", "--reason", "mine"});
  tool.ok({"set-dir", "/elsewhere"});
  std::vector<std::string> args{"import", "-"};
  if (replace) args.push_back("--replace");
  const std::string before = tool.snapshot();
  const auto history_before = tool.json({"history", "--json"}).size();
  args.push_back("--dry-run");
  const std::string preview = tool.ok(args, kGood);
  CHECK(tool.snapshot() == before);
  CHECK(tool.json({"history", "--json"}).size() == history_before);
  args.pop_back();
  const std::string done = tool.ok(args, kGood);
  CHECK(counts(done) == counts(preview));
  CHECK(preview.find(", and change the cache directory setting") != std::string::npos);
  CHECK(done.find("; cache directory setting changed") != std::string::npos);
  CHECK(done == (replace ? "imported standard input: 0 added, 2 changed, 0 unchanged, 1 "
                           "forgotten, 1 locked; cache directory setting changed\n"
                         : "imported standard input: 0 added, 2 changed, 0 unchanged, 1 "
                           "locked; cache directory setting changed\n"));
  // vit's new path, resnet18's lock, the cache directory, and with
  // --replace the forgotten entry: one history row each.
  CHECK(tool.json({"history", "--json"}).size() == history_before + (replace ? 4 : 3));
}

TEST_CASE("import --dry-run on a registry that does not exist creates no file and no directory",
          "[import][dry-run]") {
  Tool tool;
  const std::string dir = tool.path("state");
  const std::string registry = dir + "/tfimm/registry.db";
  auto r = tool.run_bare({"--registry", registry, "import", "-", "--dry-run"}, kGood);
  REQUIRE(r.exit_code == 0);
  CHECK(r.out ==
        "dry run, nothing changed: importing standard input would add 2, change 0, leave 0 "
        "unchanged, lock 1, and change the cache directory setting\n");
  CHECK_FALSE(tfimm::test::exists(dir));
  // The default registry too.
  r = tool.run_bare({"import", "-", "--dry-run"}, kGood);
  REQUIRE(r.exit_code == 0);
  CHECK_FALSE(tfimm::test::exists(tool.home() + "/.local"));
}

TEST_CASE("import --dry-run works for a user who can only read the registry",
          "[import][dry-run][permissions]") {
  if (::geteuid() != 0) {
    WARN("needs root to run the tool as another user: skipped");
    return;
  }
  Tool tool;
  tool.ok({"set", "vit", "/data/vit"});
  tool.ok({"set", "mine", "/data/mine"});
  const std::string expected = tool.ok({"import", "-", "--replace", "--dry-run"}, kGood);
  // The directory stays writable (a reader needs the -shm file), the file
  // is the owner's alone.
  REQUIRE(::chmod(tool.path("").c_str(), 0755) == 0);
  REQUIRE(::chmod(tool.path("state").c_str(), 0777) == 0);
  REQUIRE(::chmod(tool.registry().c_str(), 0644) == 0);
  const std::string bytes = tfimm::test::read_file(tool.registry());
  const auto r = tfimm::test::run_process(
      {"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", TFIMM_TOOL, "--registry",
       tool.registry(), "import", "-", "--replace", "--dry-run"},
      kGood);
  INFO(r.err);
  if (r.exit_code == 127 && r.err.find("setpriv") != std::string::npos) {
    WARN("SKIPPED: uid 65534 cannot run " << TFIMM_TOOL << ": " << r.err);
    return;
  }
  CHECK(r.exit_code == 0);
  CHECK(r.out == expected);
  CHECK(tfimm::test::read_file(tool.registry()) == bytes);
  // The real import is refused for that user, and changes nothing.
  const auto refused = tfimm::test::run_process(
      {"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", TFIMM_TOOL, "--registry",
       tool.registry(), "import", "-", "--replace"},
      kGood);
  require_error(refused, 3);
  CHECK(tfimm::test::read_file(tool.registry()) == bytes);
}

TEST_CASE("an import file with a key given twice or an unknown key exits 2 naming both",
          "[import][errors][strict][conformance]") {
  Tool tool;
  tool.ok({"set", "a", "/srv/a"});
  const std::string before = tool.snapshot();
  SECTION("a path given twice") {
    auto r = tool.run({"import", "-"}, R"({"format": "tfimm-cache-export", "version": 1,
        "models": [{"name": "a", "path": "/srv/a", "path": "/srv/evil"}]})");
    require_error(r, 2);
    CHECK(r.err.find("cannot import standard input: models[0] (\"a\"): the key \"path\" appears "
                     "more than once") != std::string::npos);
  }
  SECTION("a top-level key given twice") {
    auto r = tool.run({"import", "-"}, R"({"format": "tfimm-cache-export", "version": 1,
        "models": [{"name": "a", "path": "/srv/a"}], "models": []})");
    require_error(r, 2);
    CHECK(r.err.find("the key \"models\" appears more than once") != std::string::npos);
  }
  SECTION("a misspelt key") {
    auto r = tool.run({"import", "-"}, R"({"format": "tfimm-cache-export", "version": 1,
        "models": [{"name": "a", "path": "/srv/b", "locked": true, "lock_reson": "usb"}]})");
    require_error(r, 2);
    CHECK(r.err.find("models[0] (\"a\"): unknown key \"lock_reson\"") != std::string::npos);
  }
  CHECK(tool.snapshot() == before);
}

TEST_CASE("an unreadable import file gets one line in plain words with where it is",
          "[import][errors][strict]") {
  Tool tool;
  const std::string file = tool.path("backup.json");
  SECTION("not JSON") {
    tfimm::test::write_file(file, "{\n  \"format\": tfimm-cache-export\n}\n");
    auto r = tool.run({"import", file});
    require_error(r, 2);
    CHECK(r.err.find("cannot import " + file + ": line 2, column") != std::string::npos);
    CHECK(r.err.find("json.exception") == std::string::npos);
  }
  SECTION("empty") {
    tfimm::test::write_file(file, "");
    auto r = tool.run({"import", file});
    require_error(r, 2);
    CHECK(r.err.find("is empty") != std::string::npos);
  }
  SECTION("Latin-1 instead of UTF-8") {
    tfimm::test::write_file(file,
                            "{\"format\": \"tfimm-cache-export\", \"version\": 1, "
                            "\"models\": [{\"name\": \"a\", \"path\": \"/\xe9t\xe9\"}]}");
    auto r = tool.run({"import", file});
    require_error(r, 2);
    CHECK(r.err.find("models[0] (\"a\"): line 1, column") != std::string::npos);
    CHECK(r.err.find("not UTF-8") != std::string::npos);
  }
  SECTION("a number too large") {
    auto r = tool.run({"import", "-"}, "{\"format\": \"tfimm-cache-export\", \"version\": 1e999}");
    require_error(r, 2);
    CHECK(r.err.find("1e999 is too large") != std::string::npos);
  }
  SECTION("a null path") {
    auto r = tool.run({"import", "-"}, R"({"format": "tfimm-cache-export", "version": 1,
        "models": [{"name": "a", "path": null}]})");
    require_error(r, 2);
    CHECK(r.err.find("models[0] (\"a\"): \"path\" must be a string, not null") !=
          std::string::npos);
  }
  CHECK_FALSE(tfimm::test::exists(tool.registry()));
}

namespace {

// Every history row, oldest first, with what an export carries of it:
// when, what and who, not its id nor what undo needs (a restored row is a
// record, a change set of its own).
std::vector<nlohmann::json> history_rows(const Tool& tool) {
  std::vector<nlohmann::json> out;
  for (auto row : tool.json({"history", "--json"})) {
    nlohmann::json kept;
    for (const char* key :
         {"at", "action", "name", "old_path", "new_path", "user", "host", "pid"}) {
      kept[key] = row.at(key);
    }
    out.insert(out.begin(), kept);
  }
  return out;
}

}  // namespace

TEST_CASE(
    "a version-2 export with history restores the entries with their times and locks and the "
    "history exactly",
    "[export][import][history][conformance]") {
  Tool source;
  const std::string there = source.make_dir("models/there");
  const std::string gone = source.path("models/gone");
  source.ok({"set", "there", there});
  source.ok({"set", "gone", gone});
  // A reason that is not UTF-8: carried as its bytes, never as U+FFFD.
  source.ok({"lock", "there", "--reason", "disk \xff\xfe of ann"});
  source.ok({"set-dir", "/srv/cache"});
  source.run({"audit"});  // records since when "gone" is missing
  const std::string file = source.path("backup.json");
  CHECK(source.ok({"export", "--with-history", file}) ==
        "exported 2 entries and the cache directory setting with 4 history rows to " + file + "\n");
  const auto doc = nlohmann::json::parse(tfimm::test::read_file(file));
  CHECK(doc["version"] == 2);
  CHECK(doc["history"].size() == 4);
  CHECK(doc["models"][1]["lock_reason_hex"] == "6469736b20fffe206f6620616e6e");
  CHECK_FALSE(doc["models"][1].contains("lock_reason"));
  CHECK(doc["models"][0]["missing_since"].is_number_integer());

  Tool target;
  CHECK(target.ok({"import", file}) ==
        "imported " + file +
            ": 2 added, 0 changed, 0 unchanged, 1 locked; cache directory setting changed\n");
  CHECK(target.json({"list", "--json"}) == source.json({"list", "--json"}));
  CHECK(target.snapshot() == source.snapshot());
  // The restored rows first, then the import's own (2 entries, a lock, the
  // cache directory).
  auto restored = history_rows(target);
  REQUIRE(restored.size() == 4 + 4);
  restored.resize(4);
  CHECK(restored == history_rows(source));

  SECTION("importing the same file again adds no history row twice") {
    target.ok({"import", file});
    CHECK(history_rows(target).size() == 8);
  }
  SECTION("the missing-since clock keeps running: prune --expire forgets what was missing long") {
    ::sleep(2);
    CHECK(target.ok({"prune", "--expire", "1s"}).find("gone") != std::string::npos);
    CHECK(target.run({"path", "gone"}).exit_code == 1);
  }
}

TEST_CASE(
    "a version-1 export with its keys in any order still imports and a version-2 key in it is "
    "refused",
    "[import][conformance]") {
  Tool tool;
  // What tfimm-cache 0.1 wrote: keys in alphabetical order, "version" last.
  const std::string v1 = R"({"cache_dir": null, "format": "tfimm-cache-export",
      "models": [{"lock_reason": "", "locked": false, "name": "a", "path": "/srv/a"}],
      "version": 1})";
  CHECK(tool.ok({"import", "-"}, v1) ==
        "imported standard input: 1 added, 0 changed, 0 unchanged\n");
  CHECK(tool.ok({"path", "a"}) == "/srv/a\n");
  const std::string before = tool.snapshot();
  auto r = tool.run({"import", "-"}, R"({"format": "tfimm-cache-export",
      "models": [{"name": "b", "path": "/srv/b", "created_at": 1, "updated_at": 2}],
      "version": 1})");
  require_error(r, 2);
  CHECK(r.err.find("models[0] (\"b\"): the key \"created_at\" is not in version 1 of the format") !=
        std::string::npos);
  CHECK(tool.snapshot() == before);
}

TEST_CASE("an export of an unknown version is refused naming the version and what to do",
          "[import][errors][conformance]") {
  Tool tool;
  auto r =
      tool.run({"import", "-"}, R"({"format": "tfimm-cache-export", "version": 7, "models": []})");
  require_error(r, 2);
  CHECK(r.err.find("export format version 7 is not supported; this build reads versions 1 and "
                   "2. Import it with the tfimm-cache that wrote it, or a newer one") !=
        std::string::npos);
  CHECK_FALSE(tfimm::test::exists(tool.registry()));
}

TEST_CASE("a bad version-2 file changes nothing: a repeated name or a cut-short file or bad times",
          "[import][errors][conformance]") {
  Tool tool;
  tool.ok({"set", "keep", "/srv/keep"});
  const std::string before = tool.snapshot();
  std::string text;
  std::string expected;
  SECTION("a name given twice, far apart") {
    text = R"({"format": "tfimm-cache-export", "version": 2, "models": [)";
    for (int i = 0; i < 10000; ++i) {
      text += R"({"name": "m)" + std::to_string(i) + R"(", "path": "/srv/m"},)";
    }
    text += R"({"name": "m17", "path": "/srv/again"}]})";
    expected = "models[10000] (\"m17\"): the name appears more than once";
  }
  SECTION("a file cut short") {
    text = tool.snapshot();
    text = text.substr(0, text.size() / 2);
    expected = "the file ends before the JSON document does (was it cut short?)";
  }
  SECTION("a time that is not a time") {
    text = R"({"format": "tfimm-cache-export", "version": 2, "models": [
        {"name": "x", "path": "/srv/x", "created_at": -5, "updated_at": 1}]})";
    expected = "models[0] (\"x\"): \"created_at\" must be a time in milliseconds since 1970";
  }
  SECTION("only one of the times") {
    text = R"({"format": "tfimm-cache-export", "version": 2, "models": [
        {"name": "x", "path": "/srv/x", "updated_at": 1}]})";
    expected = "gives only one of \"created_at\" and \"updated_at\"";
  }
  SECTION("a name that is not UTF-8, in hex") {
    text = R"({"format": "tfimm-cache-export", "version": 2, "models": [
        {"name_hex": "ff", "path": "/srv/x"}]})";
    expected = "models[0]: needs a string \"name\"";
  }
  SECTION("a history row without its action") {
    text = R"({"format": "tfimm-cache-export", "version": 2, "history": [{"id": 1, "at": 5,
        "name": "x", "old_path": null, "new_path": "/x", "user": "u", "host": "h", "pid": 1}],
        "models": []})";
    expected = "history[0]: needs a non-empty string \"action\"";
  }
  auto r = tool.run({"import", "--replace", "-"}, text);
  require_error(r, 2);
  CHECK(r.err.find(expected) != std::string::npos);
  CHECK(tool.snapshot() == before);
}

namespace {}  // namespace

TEST_CASE("export and import of 100 000 entries stream: each child stays under 60 MB",
          "[export][import][memory][conformance]") {
  if (tfimm::tooltest::memory_is_sanitizers()) return;
  // Holding the whole registry took 84 MB to import and 120 MB to export
  // 100 000 entries (860 MB each way for a million); streaming holds a page
  // of entries, a batch of records, 16 bytes per name and the database's
  // own cache.
  Tool tool;
  constexpr int kEntries = 100000;
  const std::string file = tool.path("many.json");
  {
    std::string text = R"({"format": "tfimm-cache-export", "version": 1, "cache_dir": null, )"
                       R"("models": [)";
    for (int i = 0; i < kEntries; ++i) {
      text += (i == 0 ? "" : ",\n") + std::string(R"({"name": "model_)") + std::to_string(i) +
              R"(", "path": "/data/models/model_)" + std::to_string(i) + R"("})";
    }
    text += "]}";
    tfimm::test::write_file(file, text);
  }
  constexpr long kBoundKib = 60 * 1024;
  CHECK(tfimm::tooltest::peak_rss_kib(tool.registry(), {"import", file}) < kBoundKib);
  const std::string out = tool.path("export.json");
  CHECK(tfimm::tooltest::peak_rss_kib(tool.registry(), {"export", "--with-history", out}) <
        kBoundKib);
  CHECK(tfimm::tooltest::peak_rss_kib(tool.registry(), {"import", "--replace", out}) < kBoundKib);
  CHECK(tfimm::tooltest::peak_rss_kib(tool.registry(), {"import", "--dry-run", out}) < kBoundKib);
  // Read only now: a child forked while this process held the parsed file
  // would count its pages until it exec'd.
  const auto doc = nlohmann::json::parse(tfimm::test::read_file(out));
  CHECK(doc["models"].size() == kEntries);
  CHECK(doc["history"].size() == kEntries);
}
