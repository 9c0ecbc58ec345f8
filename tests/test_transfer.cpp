// Tests for lib/transfer.cpp: the JSON backup format, and snapshot/import
// on a registry (all-or-nothing, --replace, path rewrites, dry run).
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "testutil.hpp"
#include "tfimm/errors.hpp"
#include "tfimm/registry.hpp"
#include "tfimm/transfer.hpp"

namespace t = tfimm::test;
using nlohmann::json;
using tfimm::Snapshot;

namespace {

// Every field of a snapshot, for exact comparisons.
std::string dump(const Snapshot& s) {
  std::ostringstream out;
  out << "cache_dir=" << (s.cache_dir ? *s.cache_dir : "(none)") << "\n";
  for (const auto& m : s.models) {
    out << m.name << " -> " << m.path << " locked=" << m.locked << " reason=" << m.lock_reason
        << "\n";
  }
  return out.str();
}

std::string dump(const std::vector<tfimm::Entry>& entries) {
  std::ostringstream out;
  for (const auto& e : entries) {
    out << e.name << " -> " << e.path << " " << e.created_at << " " << e.updated_at << " "
        << e.locked << " " << e.lock_reason << "\n";
  }
  return out.str();
}

Snapshot::Model model(const std::string& name, const std::string& path, bool locked = false,
                      const std::string& reason = {}) {
  Snapshot::Model m;
  m.name = name;
  m.path = path;
  m.locked = locked;
  m.lock_reason = reason;
  return m;
}

Snapshot sample() {
  Snapshot s;
  s.models = {model("vit_base_patch16_224.augreg_in21k", "/data/w/vit"),
              model("resnet18", "/data/w/resnet18", true, "paper baseline"),
              model("modèle \"quoted\"", "/data/it's/new\nline")};
  s.cache_dir = "/srv/tfimm";
  return s;
}

// Every count of an import report, for exact comparisons.
std::string dump(const tfimm::ImportReport& r) {
  std::ostringstream out;
  out << "added=" << r.added << " changed=" << r.changed << " unchanged=" << r.unchanged
      << " removed=" << r.removed << " locked=" << r.locked << " unlocked=" << r.unlocked
      << " locks_kept=" << r.locks_kept << " cache_dir_changed=" << r.cache_dir_changed;
  return out.str();
}

// "action name" of every history row, newest first.
std::vector<std::string> actions(tfimm::Registry& reg,
                                 const std::optional<std::string>& name = {}) {
  std::vector<std::string> out;
  for (const auto& r : reg.history(name)) out.push_back(r.action + " " + r.name);
  return out;
}

tfimm::ImportOptions dry(bool replace = false) {
  tfimm::ImportOptions options;
  options.dry_run = true;
  options.replace = replace;
  return options;
}

std::string export_text(const std::string& models, const std::string& extra = {}) {
  return R"({"format": "tfimm-cache-export", "version": 1, "cache_dir": null, )" + extra +
         R"("models": )" + models + "}";
}

}  // namespace

TEST_CASE("to_json writes the documented format, models sorted by name", "[transfer]") {
  t::TestContext ctx;
  const std::string text = tfimm::to_json(sample());
  CHECK(text.find('\n') != std::string::npos);  // pretty-printed
  auto doc = json::parse(text);
  CHECK(doc.at("format") == "tfimm-cache-export");
  CHECK(doc.at("version") == tfimm::kExportFormatVersion);
  CHECK(doc.at("cache_dir") == "/srv/tfimm");
  const auto& models = doc.at("models");
  REQUIRE(models.size() == 3);
  CHECK(models[0].at("name") == "modèle \"quoted\"");
  CHECK(models[0].at("path") == "/data/it's/new\nline");
  CHECK(models[1].at("name") == "resnet18");
  CHECK(models[1].at("locked") == true);
  CHECK(models[1].at("lock_reason") == "paper baseline");
  CHECK(models[2].at("name") == "vit_base_patch16_224.augreg_in21k");
  CHECK(models[2].at("locked") == false);
  CHECK(models[2].at("lock_reason") == "");

  SECTION("no cache directory is null") {
    Snapshot s = sample();
    s.cache_dir.reset();
    CHECK(json::parse(tfimm::to_json(s)).at("cache_dir").is_null());
  }
  SECTION("an empty registry is an empty list") {
    CHECK(json::parse(tfimm::to_json(Snapshot{})).at("models") == json::array());
  }
}

TEST_CASE("a snapshot survives to_json and parse_snapshot unchanged", "[transfer]") {
  t::TestContext ctx;
  Snapshot s = sample();
  Snapshot sorted = s;
  std::sort(sorted.models.begin(), sorted.models.end(),
            [](const auto& a, const auto& b) { return a.name < b.name; });
  CHECK(dump(tfimm::parse_snapshot(tfimm::to_json(s))) == dump(sorted));
  s.cache_dir.reset();
  sorted.cache_dir.reset();
  CHECK(dump(tfimm::parse_snapshot(tfimm::to_json(s))) == dump(sorted));
}

TEST_CASE("parse_snapshot fills optional fields and normalises paths", "[transfer]") {
  t::TestContext ctx;
  auto s = tfimm::parse_snapshot(export_text(
      R"([{"name": "resnet18", "path": "~/w/resnet18"}, {"name": "vit", "path": "/a//b/./c/"}])"));
  auto with_dir = tfimm::parse_snapshot(R"({"format": "tfimm-cache-export", "version": 1,
                                            "cache_dir": "~/cache/", "models": []})");
  CHECK(with_dir.cache_dir == ctx.home() + "/cache");
  REQUIRE(s.models.size() == 2);
  CHECK(s.models[0].name == "resnet18");
  CHECK(s.models[0].path == ctx.home() + "/w/resnet18");
  CHECK_FALSE(s.models[0].locked);
  CHECK(s.models[0].lock_reason.empty());
  CHECK(s.models[1].path == "/a/b/c");
  CHECK_FALSE(s.cache_dir);
}

TEST_CASE("a malformed export is refused as InvalidInput naming the problem", "[transfer]") {
  t::TestContext ctx;
  using Catch::Contains;
  const auto ci = Catch::CaseSensitive::No;
  SECTION("not JSON") {
    CHECK_THROWS_AS(tfimm::parse_snapshot("this is not json {"), tfimm::InvalidInput);
    CHECK_THROWS_WITH(tfimm::parse_snapshot("this is not json {"), Contains("json", ci));
    CHECK_THROWS_AS(tfimm::parse_snapshot(""), tfimm::InvalidInput);
  }
  SECTION("not an object") {
    CHECK_THROWS_AS(tfimm::parse_snapshot("[1, 2]"), tfimm::InvalidInput);
  }
  SECTION("another format") {
    const std::string text = R"({"format": "pip-freeze", "version": 1, "models": []})";
    CHECK_THROWS_AS(tfimm::parse_snapshot(text), tfimm::InvalidInput);
    CHECK_THROWS_WITH(tfimm::parse_snapshot(text), Contains("format", ci));
  }
  SECTION("no format at all") {
    CHECK_THROWS_AS(tfimm::parse_snapshot(R"({"version": 1, "models": []})"), tfimm::InvalidInput);
  }
  SECTION("a newer format version") {
    const std::string text = R"({"format": "tfimm-cache-export", "version": 3, "models": []})";
    CHECK_THROWS_AS(tfimm::parse_snapshot(text), tfimm::InvalidInput);
    CHECK_THROWS_WITH(tfimm::parse_snapshot(text),
                      Contains("export format version 3 is not supported") &&
                          Contains("reads versions 1 and 2") && Contains("newer one"));
  }
  SECTION("models is not a list") {
    CHECK_THROWS_AS(tfimm::parse_snapshot(export_text(R"({"resnet18": "/x"})")),
                    tfimm::InvalidInput);
  }
  SECTION("a record without a name") {
    const std::string text = export_text(R"([{"path": "/data/x"}])");
    CHECK_THROWS_AS(tfimm::parse_snapshot(text), tfimm::InvalidInput);
    CHECK_THROWS_WITH(tfimm::parse_snapshot(text), Contains("name", ci));
  }
  SECTION("a record without a path") {
    CHECK_THROWS_AS(tfimm::parse_snapshot(export_text(R"([{"name": "resnet18"}])")),
                    tfimm::InvalidInput);
  }
  SECTION("a name of the wrong type") {
    CHECK_THROWS_AS(tfimm::parse_snapshot(export_text(R"([{"name": 18, "path": "/x"}])")),
                    tfimm::InvalidInput);
  }
  SECTION("locked of the wrong type") {
    CHECK_THROWS_AS(
        tfimm::parse_snapshot(export_text(R"([{"name": "a", "path": "/x", "locked": "yes"}])")),
        tfimm::InvalidInput);
  }
  SECTION("a bad name is InvalidInput too, naming it") {
    const std::string text = export_text(R"([{"name": "../etc", "path": "/x"}])");
    CHECK_THROWS_AS(tfimm::parse_snapshot(text), tfimm::InvalidInput);
    CHECK_THROWS_WITH(tfimm::parse_snapshot(text), Contains("../etc"));
  }
  SECTION("an empty path") {
    CHECK_THROWS_AS(tfimm::parse_snapshot(export_text(R"([{"name": "resnet18", "path": ""}])")),
                    tfimm::InvalidInput);
  }
  SECTION("a duplicate name") {
    const std::string text = export_text(
        R"([{"name": "resnet18", "path": "/a"}, {"name": "vit", "path": "/v"},
            {"name": "resnet18", "path": "/b"}])");
    CHECK_THROWS_AS(tfimm::parse_snapshot(text), tfimm::InvalidInput);
    CHECK_THROWS_WITH(tfimm::parse_snapshot(text), Contains("resnet18"));
  }
  SECTION("a cache_dir that is not a path") {
    CHECK_THROWS_AS(tfimm::parse_snapshot(export_text("[]", R"("cache_dir": "", )")),
                    tfimm::InvalidInput);
  }
}

TEST_CASE("a registry exported and imported elsewhere has the same contents",
          "[transfer][conformance]") {
  t::TestContext ctx;
  tfimm::Registry source(t::registry_location(ctx, "a.db"));
  source.set_model_cache("resnet18", "/data/w/resnet18");
  source.set_model_cache("vit", "/data/w/vit");
  source.lock("vit", "keep");
  source.set_dir("/srv/tfimm");
  Snapshot snap = source.snapshot();
  REQUIRE(snap.models.size() == 2);
  CHECK(snap.models[0].name == "resnet18");
  CHECK(snap.models[1].locked);
  CHECK(snap.models[1].lock_reason == "keep");
  CHECK(snap.cache_dir == "/srv/tfimm");

  tfimm::Registry target(t::registry_location(ctx, "b.db"));
  auto report = target.import(tfimm::parse_snapshot(tfimm::to_json(snap)));
  CHECK(report.added == 2);
  CHECK(report.changed == 0);
  CHECK(report.unchanged == 0);
  CHECK(report.removed == 0);
  CHECK(report.cache_dir_changed);
  CHECK(dump(target.snapshot()) == dump(snap));
  CHECK(target.entry("vit")->locked);
  std::vector<std::string> imported;
  for (const auto& r : target.history()) {
    if (r.action == "import") imported.push_back(r.name + " " + r.new_path.value_or("-"));
  }
  std::sort(imported.begin(), imported.end());
  CHECK(imported == std::vector<std::string>{"resnet18 /data/w/resnet18", "vit /data/w/vit"});

  SECTION("importing the same snapshot again changes nothing") {
    auto again = target.import(snap);
    CHECK(again.added == 0);
    CHECK(again.changed == 0);
    CHECK(again.unchanged == 2);
    CHECK_FALSE(again.cache_dir_changed);
  }
  SECTION("a changed path counts as changed") {
    snap.models[0].path = "/data/new/resnet18";
    auto changed = target.import(snap);
    CHECK(changed.changed == 1);
    CHECK(changed.unchanged == 1);
    CHECK(target.cached_model_path("resnet18") == "/data/new/resnet18");
  }
}

TEST_CASE("an import with one bad record changes nothing", "[transfer]") {
  t::TestContext ctx;
  const std::string file = ctx.path("registry.db");
  {
    tfimm::Registry reg(file);
    reg.set_model_cache("resnet18", "/data/resnet18");
    reg.set_dir("/srv/cache");
  }
  const std::string bytes = t::read_file(file);
  Snapshot s;
  s.cache_dir = "/srv/other";
  s.models = {model("vit", "/data/vit"), model("resnet18", "/data/changed")};
  SECTION("a bad name") {
    s.models.push_back(model("a/b", "/data/x"));
    tfimm::Registry reg(file);
    CHECK_THROWS_AS(reg.import(s), tfimm::InvalidInput);
    CHECK_THROWS_WITH(reg.import(s), Catch::Contains("a/b"));
  }
  SECTION("an empty path") {
    s.models.push_back(model("swin", ""));
    tfimm::Registry reg(file);
    CHECK_THROWS_AS(reg.import(s), tfimm::InvalidInput);
  }
  SECTION("a path with NUL") {
    s.models.push_back(model("swin", std::string("/a\0b", 4)));
    tfimm::Registry reg(file);
    CHECK_THROWS_AS(reg.import(s), tfimm::InvalidInput);
  }
  SECTION("a duplicate name, named at its second record") {
    s.models.push_back(model("vit", "/data/vit2"));
    tfimm::Registry reg(file);
    CHECK_THROWS_AS(reg.import(s), tfimm::InvalidInput);
    CHECK_THROWS_WITH(reg.import(s), Catch::StartsWith("models[2] (\"vit\")") &&
                                         Catch::Contains("more than once"));
  }
  SECTION("of a duplicate and a bad record, the earlier one is reported") {
    s.models.push_back(model("resnet18", "/data/again"));  // models[2]
    s.models.push_back(model("a/b", "/data/x"));           // models[3]
    tfimm::Registry reg(file);
    CHECK_THROWS_WITH(reg.import(s), Catch::StartsWith("models[2]"));
    std::swap(s.models[2], s.models[3]);
    CHECK_THROWS_WITH(reg.import(s), Catch::StartsWith("models[2] (\"a/b\")"));
  }
  SECTION("even with replace") {
    s.models.push_back(model("..", "/data/x"));
    tfimm::ImportOptions options;
    options.replace = true;
    tfimm::Registry reg(file);
    CHECK_THROWS_AS(reg.import(s, options), tfimm::InvalidInput);
  }
  tfimm::Registry reg(file);
  CHECK(reg.list_cached_models() == std::vector<std::string>{"resnet18"});
  CHECK(reg.cached_model_path("resnet18") == "/data/resnet18");
  CHECK(reg.stored_dir() == "/srv/cache");
  reg = tfimm::Registry(ctx.path("other.db"));  // closes the file
  CHECK(t::read_file(file) == bytes);
}

TEST_CASE("replace makes the registry equal to the snapshot", "[transfer][conformance]") {
  t::TestContext ctx;
  tfimm::Registry reg(t::registry_location(ctx));
  reg.set_model_cache("a", "/data/a");
  reg.set_model_cache("b", "/data/b");
  reg.set_model_cache("c", "/data/c");
  reg.set_dir("/srv/cache");
  Snapshot s;
  s.models = {model("a", "/data/a2"), model("d", "/data/d")};

  SECTION("with replace") {
    tfimm::ImportOptions options;
    options.replace = true;
    auto report = reg.import(s, options);
    CHECK(report.added == 1);
    CHECK(report.changed == 1);
    CHECK(report.removed == 2);
    CHECK(report.cache_dir_changed);
    CHECK(reg.list_cached_models() == std::vector<std::string>{"a", "d"});
    CHECK(reg.cached_model_path("a") == "/data/a2");
    CHECK_FALSE(reg.stored_dir());
  }
  SECTION("without replace others stay") {
    auto report = reg.import(s);
    CHECK(report.added == 1);
    CHECK(report.changed == 1);
    CHECK(report.removed == 0);
    CHECK_FALSE(report.cache_dir_changed);
    CHECK(reg.list_cached_models() == std::vector<std::string>{"a", "b", "c", "d"});
    CHECK(reg.stored_dir() == "/srv/cache");
  }
}

TEST_CASE("rewrites move path prefixes, whole components only, first match wins", "[transfer]") {
  t::TestContext ctx;
  tfimm::Registry reg(ctx.path("registry.db"));
  Snapshot s;
  s.models = {model("exact", "/old/disk"), model("below", "/old/disk/w/resnet18"),
              model("sibling", "/old/diskette/vit"), model("other", "/elsewhere/x"),
              model("nested", "/old/disk/deep/y")};
  tfimm::ImportOptions options;
  options.rewrites = {{"/old/disk/deep", "/deep"}, {"/old/disk", "/new/disk"}};
  reg.import(s, options);
  CHECK(reg.cached_model_path("exact") == "/new/disk");
  CHECK(reg.cached_model_path("below") == "/new/disk/w/resnet18");
  CHECK(reg.cached_model_path("sibling") == "/old/diskette/vit");
  CHECK(reg.cached_model_path("other") == "/elsewhere/x");
  CHECK(reg.cached_model_path("nested") == "/deep/y");

  SECTION("the first matching rule wins") {
    tfimm::Registry second(ctx.path("second.db"));
    options.rewrites = {{"/old", "/a"}, {"/old/disk", "/b"}};
    second.import(s, options);
    CHECK(second.cached_model_path("below") == "/a/disk/w/resnet18");
  }
}

TEST_CASE("a dry-run import reports what would change and changes nothing",
          "[transfer][conformance]") {
  t::TestContext ctx;
  const std::string file = t::registry_location(ctx);
  tfimm::Registry reg(file);
  reg.set_model_cache("a", "/data/a");
  reg.set_model_cache("b", "/data/b");
  const auto before = dump(reg.entries());
  Snapshot s;
  s.models = {model("a", "/data/a"), model("b", "/data/b2"), model("c", "/data/c")};
  s.cache_dir = "/srv/cache";
  tfimm::ImportOptions options;
  options.dry_run = true;
  options.replace = true;
  auto report = reg.import(s, options);
  CHECK(report.added == 1);
  CHECK(report.changed == 1);
  CHECK(report.unchanged == 1);
  CHECK(report.removed == 0);
  CHECK(report.cache_dir_changed);
  CHECK(dump(reg.entries()) == before);
  CHECK_FALSE(reg.stored_dir());
  CHECK(reg.history().size() == 2);
}

TEST_CASE("paths that are not valid UTF-8 survive export and import byte for byte",
          "[transfer][conformance]") {
  t::TestContext ctx;
  const std::string odd_path = "/data/\xff\xfe/w\x80";
  Snapshot s;
  s.models = {model("latin1", odd_path)};
  s.cache_dir = "/srv/\xe9t\xe9";
  const std::string text = tfimm::to_json(s);

  const auto doc = json::parse(text);
  CHECK(doc["models"][0]["path_hex"] == "2f646174612ffffe2f7780");
  CHECK_FALSE(doc["models"][0].contains("path"));
  CHECK(doc.contains("cache_dir_hex"));

  tfimm::Registry reg(t::registry_location(ctx));
  reg.import(tfimm::parse_snapshot(text));
  CHECK(reg.entry("latin1")->path == odd_path);
  CHECK(reg.stored_dir() == std::optional<std::string>("/srv/\xe9t\xe9"));
}

TEST_CASE("a record with both path and path_hex, or bad hex, is refused", "[transfer]") {
  const std::string head = R"({"format":"tfimm-cache-export","version":1,"models":[)";
  CHECK_THROWS_WITH(tfimm::parse_snapshot(head + R"({"name":"a","path":"/x","path_hex":"2f"}]})"),
                    Catch::Contains("gives both \"path\" and \"path_hex\"; give one"));
  CHECK_THROWS_WITH(tfimm::parse_snapshot(head + R"({"name":"a","path_hex":"2f7"}]})"),
                    Catch::Contains("even number of hex digits"));
  CHECK_THROWS_WITH(tfimm::parse_snapshot(head + R"({"name":"a","path_hex":"zz"}]})"),
                    Catch::Contains("hex digits"));
}

TEST_CASE(
    "import --replace that unlocks an entry reports it, records an unlock and dry run shows it",
    "[transfer][import][locks]") {
  t::TestContext ctx;
  tfimm::Registry reg(ctx.path("registry.db"));
  reg.set_model_cache("usb", ctx.path("gone/usb"));  // a path that does not exist
  reg.lock("usb", "on the USB disk");
  Snapshot s;
  s.models = {model("usb", ctx.path("gone/usb"))};
  tfimm::ImportOptions replace;
  replace.replace = true;

  const auto preview = reg.import(s, dry(true));
  CHECK(preview.changed == 1);
  CHECK(preview.unchanged == 0);
  CHECK(preview.unlocked == 1);
  CHECK(reg.entry("usb")->locked);
  const auto report = reg.import(s, replace);
  CHECK(dump(report) == dump(preview));
  CHECK_FALSE(reg.entry("usb")->locked);
  CHECK(reg.entry("usb")->lock_reason.empty());
  CHECK(actions(reg, "usb") == std::vector<std::string>{"unlock usb", "lock usb", "set usb"});

  // The entry is no longer protected, and the history says who unprotected it.
  const auto pruned = reg.prune();
  REQUIRE(pruned.removed.size() == 1);
  CHECK(pruned.removed[0].entry.name == "usb");
  CHECK(actions(reg, "usb") ==
        std::vector<std::string>{"prune usb", "unlock usb", "lock usb", "set usb"});
}

TEST_CASE("a merge import keeps a lock the file does not have, and reports that it kept it",
          "[transfer][import][locks][conformance]") {
  t::TestContext ctx;
  tfimm::Registry reg(t::registry_location(ctx));
  reg.set_model_cache("a", "/data/a");
  reg.lock("a", "mine");
  Snapshot s;
  s.models = {model("a", "/data/a")};
  const auto preview = reg.import(s, dry());
  const auto report = reg.import(s);
  CHECK(dump(report) == dump(preview));
  CHECK(report.unchanged == 1);
  CHECK(report.changed == 0);
  CHECK(report.locks_kept == 1);
  CHECK(report.unlocked == 0);
  CHECK(reg.entry("a")->locked);
  CHECK(reg.entry("a")->lock_reason == "mine");
  CHECK(actions(reg, "a") == std::vector<std::string>{"lock a", "set a"});
}

TEST_CASE("a merge import with another lock reason changes it, reports and records it",
          "[transfer][import][locks][conformance]") {
  t::TestContext ctx;
  tfimm::Registry reg(t::registry_location(ctx));
  reg.set_model_cache("a", "/data/a");
  reg.lock("a", "old reason");
  Snapshot s;
  s.models = {model("a", "/data/a", true, "new reason")};
  const auto preview = reg.import(s, dry());
  const auto report = reg.import(s);
  CHECK(dump(report) == dump(preview));
  CHECK(report.changed == 1);
  CHECK(report.unchanged == 0);
  CHECK(report.locked == 1);
  CHECK(reg.entry("a")->lock_reason == "new reason");
  CHECK(actions(reg, "a") == std::vector<std::string>{"lock a", "lock a", "set a"});

  SECTION("the same reason again is unchanged and records nothing") {
    const auto again = reg.import(s);
    CHECK(again.unchanged == 1);
    CHECK(again.locked == 0);
    CHECK(actions(reg, "a").size() == 3);
  }
}

TEST_CASE("a new locked entry is recorded as imported, then locked",
          "[transfer][import][locks][conformance]") {
  t::TestContext ctx;
  tfimm::Registry reg(t::registry_location(ctx));
  Snapshot s;
  s.models = {model("a", "/data/a", true, "keep"), model("b", "/data/b")};
  const auto report = reg.import(s);
  CHECK(report.added == 2);
  CHECK(report.locked == 1);
  CHECK(actions(reg, "a") == std::vector<std::string>{"lock a", "import a"});
  CHECK(actions(reg, "b") == std::vector<std::string>{"import b"});
}

TEST_CASE("a dry-run import reports exactly the counts the real import reports",
          "[transfer][import][conformance]") {
  const bool replace = GENERATE(false, true);
  INFO("replace " << replace);
  t::TestContext ctx;
  const std::string file = t::registry_location(ctx);
  {
    tfimm::Registry reg(file);
    reg.set_model_cache("same", "/data/same");
    reg.set_model_cache("moved", "/data/moved");
    reg.set_model_cache("unlock_me", "/data/unlock_me");
    reg.lock("unlock_me", "old");
    reg.set_model_cache("reason", "/data/reason");
    reg.lock("reason", "old");
    reg.set_model_cache("lock_me", "/data/lock_me");
    reg.set_model_cache("not_in_file", "/data/not_in_file");
    reg.set_dir("/srv/old");
  }
  Snapshot s;
  s.models = {model("same", "/data/same"),
              model("moved", "/data/moved2"),
              model("unlock_me", "/data/unlock_me"),
              model("reason", "/data/reason", true, "new"),
              model("lock_me", "/data/lock_me", true, "now"),
              model("new", "/data/new", true, "fresh")};
  s.cache_dir = "/srv/new";
  tfimm::Registry reg(file);
  const auto history_before = reg.history().size();
  auto options = dry(replace);
  const auto preview = reg.import(s, options);
  CHECK(reg.history().size() == history_before);
  options.dry_run = false;
  const auto report = reg.import(s, options);
  CHECK(dump(preview) == dump(report));
  CHECK(report.added == 1);
  CHECK(report.changed == (replace ? 4u : 3u));  // moved, reason, lock_me (+ unlock_me)
  CHECK(report.unchanged == (replace ? 1u : 2u));
  CHECK(report.removed == (replace ? 1u : 0u));
  CHECK(report.locked == 3);  // reason, lock_me, new
  CHECK(report.unlocked == (replace ? 1u : 0u));
  CHECK(report.locks_kept == (replace ? 0u : 1u));
  CHECK(report.cache_dir_changed);
  // Every change the report counts is one history row.
  CHECK(reg.history().size() - history_before == report.added + report.removed + 1 /* moved */ +
                                                     report.locked + report.unlocked +
                                                     1 /* set_dir */);
}

TEST_CASE("a dry-run import of a registry that does not exist creates no file and no directory",
          "[transfer][import][dry-run]") {
  t::TestContext ctx;
  const std::string dir = ctx.path("state");
  tfimm::Registry reg(dir + "/tfimm/registry.db");
  Snapshot s;
  s.models = {model("a", "/data/a", true, "keep"), model("b", "/data/b")};
  s.cache_dir = "/srv/cache";
  const auto report = reg.import(s, dry(true));
  CHECK(report.added == 2);
  CHECK(report.locked == 1);
  CHECK(report.cache_dir_changed);
  CHECK_FALSE(t::exists(dir));
}

TEST_CASE("a dry-run import works on a registry this process can only read",
          "[transfer][import][dry-run][permissions]") {
  if (::geteuid() != 0) {
    WARN("needs root to act as another user: skipped");
    return;
  }
  t::TestContext ctx;
  REQUIRE(::chmod(ctx.root().c_str(), 0777) == 0);  // the other user may create -wal and -shm
  const std::string file = ctx.path("registry.db");
  Snapshot s;
  s.models = {model("a", "/data/a2"), model("b", "/data/b", true, "keep")};
  {
    tfimm::Registry reg(file);
    reg.set_model_cache("a", "/data/a");
    reg.set_model_cache("old", "/data/old");
  }
  REQUIRE(::chmod(file.c_str(), 0444) == 0);
  const std::string bytes = t::read_file(file);

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
        tfimm::Registry reg(file);
        out = dump(reg.import(s, dry(true)));
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
  tfimm::ImportReport expected;
  expected.added = 1;    // b
  expected.changed = 1;  // a
  expected.removed = 1;  // old
  expected.locked = 1;   // b
  CHECK(got == dump(expected));
  CHECK(t::read_file(file) == bytes);
}

TEST_CASE("a key given twice is refused, naming the key and the record, at every level",
          "[transfer][strict]") {
  using Catch::Contains;
  SECTION("in a record: which path was meant is not for us to guess") {
    const std::string text = export_text(R"([{"name": "ok", "path": "/srv/ok"},
                        {"name": "a", "path": "/srv/a", "path": "/srv/evil"}])");
    CHECK_THROWS_AS(tfimm::parse_snapshot(text), tfimm::InvalidInput);
    CHECK_THROWS_WITH(tfimm::parse_snapshot(text), Contains("models[1] (\"a\")") &&
                                                       Contains("\"path\"") &&
                                                       Contains("more than once"));
  }
  SECTION("the name itself") {
    const std::string text = export_text(R"([{"name": "a", "name": "b", "path": "/srv/a"}])");
    CHECK_THROWS_WITH(tfimm::parse_snapshot(text),
                      Contains("models[0]") && Contains("\"name\"") && Contains("more than once"));
  }
  SECTION("in the top-level object") {
    const std::string text =
        R"({"format": "tfimm-cache-export", "version": 1, "cache_dir": "/srv/a",
            "models": [], "cache_dir": "/srv/evil"})";
    CHECK_THROWS_AS(tfimm::parse_snapshot(text), tfimm::InvalidInput);
    CHECK_THROWS_WITH(tfimm::parse_snapshot(text), Contains("top-level") &&
                                                       Contains("\"cache_dir\"") &&
                                                       Contains("more than once"));
  }
  SECTION("a models list given twice") {
    const std::string text = R"({"format": "tfimm-cache-export", "version": 1,
        "models": [{"name": "a", "path": "/a"}], "models": []})";
    CHECK_THROWS_WITH(tfimm::parse_snapshot(text),
                      Contains("\"models\"") && Contains("more than once"));
  }
}

TEST_CASE("an unknown key is refused, naming it and the keys that are known",
          "[transfer][strict]") {
  using Catch::Contains;
  SECTION("a typo in a record would silently lose the lock reason") {
    const std::string text =
        export_text(R"([{"name": "a", "path": "/a", "locked": true, "lock_reson": "usb"}])");
    CHECK_THROWS_AS(tfimm::parse_snapshot(text), tfimm::InvalidInput);
    CHECK_THROWS_WITH(tfimm::parse_snapshot(text), Contains("models[0] (\"a\")") &&
                                                       Contains("unknown key \"lock_reson\"") &&
                                                       Contains("\"lock_reason\""));
  }
  SECTION("in the top-level object") {
    const std::string text = export_text("[]", R"("cache_directory": "/srv", )");
    CHECK_THROWS_WITH(tfimm::parse_snapshot(text),
                      Contains("unknown key \"cache_directory\"") && Contains("\"cache_dir\""));
  }
}

TEST_CASE("a file that is not JSON is refused in plain words with its line and column",
          "[transfer][strict]") {
  using Catch::Contains;
  const auto message = [](const std::string& text) {
    try {
      tfimm::parse_snapshot(text);
    } catch (const tfimm::InvalidInput& e) {
      return std::string(e.what());
    }
    return std::string("(accepted)");
  };
  const auto plain = [](const std::string& m) {
    INFO(m);
    CHECK(m.find("json.exception") == std::string::npos);
    CHECK(m.find("last read") == std::string::npos);
    CHECK(m.find('\n') == std::string::npos);
  };
  SECTION("a bare word") {
    const auto m = message("{\n  \"format\": tfimm\n}");
    plain(m);
    CHECK_THAT(m, Contains("line 2, column"));
  }
  SECTION("an empty file") {
    const auto m = message("");
    plain(m);
    CHECK_THAT(m, Contains("empty"));
    CHECK_THAT(message(" \n\t"), Contains("empty"));
  }
  SECTION("cut short") {
    const auto m = message(R"({"format": "tfimm-cache-export", "models": [)");
    plain(m);
    CHECK_THAT(m, Contains("ends"));
  }
  SECTION("bytes that are not UTF-8, in a string or outside one") {
    for (const std::string& text :
         {export_text("[{\"name\": \"a\", \"path\": \"/data/\xe9t\xe9\"}]"),
          std::string("\xff\xfe{\0\"\0")}) {
      const auto m = message(text);
      plain(m);
      CHECK_THAT(m, Contains("UTF-8") && Contains("line 1, column"));
    }
  }
  SECTION("a number too large, named by its record") {
    const auto m = message(export_text(R"([{"name": "a", "path": "/a"},
                                           {"name": "b", "path": "/b", "locked": 1e400}])"));
    plain(m);
    CHECK_THAT(m, Contains("models[1] (\"b\")") && Contains("1e400") && Contains("line 2"));
  }
  SECTION("a path that is null, named by its record") {
    const auto m = message(export_text(R"([{"name": "a", "path": null}])"));
    plain(m);
    CHECK_THAT(m, Contains("models[0] (\"a\")") && Contains("\"path\"") && Contains("null"));
    CHECK(m.find("not both") == std::string::npos);
  }
  SECTION("text after the document") {
    const auto m = message(export_text("[]") + "\n}");
    plain(m);
    CHECK_THAT(m, Contains("line 2, column 1") && Contains("after the end"));
  }
  SECTION("a lock reason on an unlocked record, which the import would drop") {
    const auto m = message(
        export_text(R"([{"name": "a", "path": "/a", "locked": false, "lock_reason": "usb"}])"));
    CHECK_THAT(
        m, Contains("models[0] (\"a\")") && Contains("\"lock_reason\"") && Contains("not locked"));
  }
  SECTION("a name that is null") {
    const auto m = message(export_text(R"([{"name": null, "path": "/a"}])"));
    plain(m);
    CHECK_THAT(m, Contains("models[0]") && Contains("\"name\"") && Contains("null"));
  }
}

namespace {

// Every field of every entry, for exact comparisons.
std::string every_field(tfimm::Registry& reg) {
  std::ostringstream out;
  for (const auto& e : reg.entries()) {
    out << e.name << " -> " << e.path << " " << e.created_at << " " << e.updated_at << " "
        << e.locked << " [" << e.lock_reason << "] "
        << (e.missing_since ? std::to_string(*e.missing_since) : "-") << "\n";
  }
  return out.str();
}

}  // namespace

TEST_CASE("export_json and import_json carry every field byte for byte, history included",
          "[transfer][history][conformance]") {
  t::TestContext ctx;
  tfimm::Registry source(t::registry_location(ctx, "a.db"));
  source.set_model_cache("gone", ctx.path("gone"));
  source.set_model_cache("odd", "/data/\xc3\x28/odd");  // a path that is not UTF-8
  source.lock("odd", std::string("reason \xff with a NUL \0 inside", 26));
  source.audit();  // records since when both paths are missing
  tfimm::ExportOptions with_history;
  with_history.with_history = true;
  std::stringstream file;
  const auto summary = source.export_json(file, with_history);
  CHECK(summary.entries == 2);
  CHECK(summary.history == 3);
  const std::string text = file.str();
  CHECK(text.find("\"lock_reason_hex\": \"726561736f6e20ff2077697468") != std::string::npos);
  CHECK(text.find("\"path_hex\"") != std::string::npos);

  tfimm::Registry target(t::registry_location(ctx, "b.db"));
  const auto report = target.import_json(file);
  CHECK(report.added == 2);
  CHECK(every_field(target) == every_field(source));
  REQUIRE(target.entry("gone")->missing_since.has_value());
  const auto restored = target.history();
  const auto original = source.history();
  REQUIRE(restored.size() == original.size() + 3);  // two imports and a lock
  for (std::size_t i = 0; i < original.size(); ++i) {
    const auto& a = restored[restored.size() - 1 - i];
    const auto& b = original[original.size() - 1 - i];
    CHECK(a.at == b.at);
    CHECK(a.action == b.action);
    CHECK(a.name == b.name);
    CHECK(a.old_path == b.old_path);
    CHECK(a.new_path == b.new_path);
    CHECK(a.user == b.user);
    CHECK(a.host == b.host);
    CHECK(a.pid == b.pid);
  }

  SECTION("a dry run reports what the import reports, and the import again changes nothing") {
    std::stringstream again(text);
    const auto dry_report = target.import_json(again, dry());
    again.clear();
    again.seekg(0);
    const auto real = target.import_json(again);
    CHECK(dump(dry_report) == dump(real));
    CHECK(real.unchanged == 2);
    CHECK(target.history().size() == restored.size());
  }
}
