// Tests for lib/transfer.cpp: the JSON backup format, and snapshot/import
// on a registry (all-or-nothing, --replace, path rewrites, dry run).
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
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
    const std::string text = R"({"format": "tfimm-cache-export", "version": 2, "models": []})";
    CHECK_THROWS_AS(tfimm::parse_snapshot(text), tfimm::InvalidInput);
    CHECK_THROWS_WITH(tfimm::parse_snapshot(text), Contains("version", ci) && Contains("2"));
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

TEST_CASE("a registry exported and imported elsewhere has the same contents", "[transfer]") {
  t::TestContext ctx;
  tfimm::Registry source(ctx.path("a.db"));
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

  tfimm::Registry target(ctx.path("b.db"));
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

TEST_CASE("replace makes the registry equal to the snapshot", "[transfer]") {
  t::TestContext ctx;
  tfimm::Registry reg(ctx.path("registry.db"));
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

TEST_CASE("a dry-run import reports what would change and changes nothing", "[transfer]") {
  t::TestContext ctx;
  const std::string file = ctx.path("registry.db");
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

TEST_CASE("paths that are not valid UTF-8 survive export and import byte for byte", "[transfer]") {
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

  tfimm::Registry reg(ctx.path("registry.db"));
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
  SECTION("a name that is null") {
    const auto m = message(export_text(R"([{"name": null, "path": "/a"}])"));
    plain(m);
    CHECK_THAT(m, Contains("models[0]") && Contains("\"name\"") && Contains("null"));
  }
}
