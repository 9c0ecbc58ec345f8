// tfimm-cache migrate
#include <catch2/catch.hpp>
#include <regex>

#include "rawdb.hpp"
#include "schema_v1.hpp"
#include "tool_test.hpp"

using tfimm::tooltest::require_error;
using tfimm::tooltest::Tool;

namespace {

using tfimm::test::kSchemaV1;

// The application id the program stamps on its registries, read from one it
// wrote.
std::string application_id() {
  Tool probe;
  probe.ok({"set", "probe", "/probe"});
  return tfimm::test::RawDb(probe.registry()).text("PRAGMA application_id");
}

// A registry at schema version 1 (2020-09-13) holding one model.
void make_v1_registry(const Tool& tool) {
  tfimm::test::make_dirs(tool.path("state"));
  tfimm::test::RawDb db(tool.registry(), true);
  db.exec("PRAGMA journal_mode = WAL");
  db.exec("BEGIN");
  db.exec("PRAGMA application_id = " + application_id());
  db.exec(kSchemaV1);
  db.exec("INSERT INTO schema_migrations VALUES (1, 1600000000000)");
  db.exec("INSERT INTO models VALUES ('resnet18', '/data/resnet18', 1600000000000, 1600000000000)");
  db.exec("PRAGMA user_version = 1");
  db.exec("COMMIT");
}

}  // namespace

TEST_CASE("migrate --status of a registry that does not exist yet creates nothing", "[migrate]") {
  Tool tool;
  auto r = tool.run({"migrate", "--status"});
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("registry: " + tool.registry()) != std::string::npos);
  CHECK(r.out.find("none yet") != std::string::npos);
  CHECK(tool.ok({"migrate"}).find("none yet") != std::string::npos);
  CHECK_FALSE(tfimm::test::exists(tool.registry()));
}

TEST_CASE("migrate --status of a current registry lists applied migrations with times",
          "[migrate][conformance]") {
  Tool tool;
  tool.ok({"set", "resnet18", "/data/resnet18"});
  std::string out = tool.ok({"migrate", "--status"});
  CHECK(out.find("(up to date)") != std::string::npos);
  CHECK(std::regex_search(out, std::regex(R"(applied:  1  \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)")));
  CHECK(out.find("pending:  none") != std::string::npos);
}

TEST_CASE("migrate upgrades a registry written by release 1 and keeps its entries",
          "[migrate][upgrade]") {
  Tool tool;
  make_v1_registry(tool);
  std::string bytes = tfimm::test::read_file(tool.registry());

  std::string status = tool.ok({"migrate", "--status"});
  CHECK(status.find("schema:   version 1 of") != std::string::npos);
  CHECK(status.find("applied:  1  2020-09-13T12:26:40Z") != std::string::npos);
  CHECK(std::regex_search(status, std::regex(R"(pending:  2\b)")));
  CHECK(tfimm::test::read_file(tool.registry()) == bytes);  // --status changes nothing

  std::string out = tool.ok({"migrate"});
  CHECK(out.find("migrated from version 1 to") != std::string::npos);
  CHECK(out.find("(up to date)") != std::string::npos);
  CHECK(out.find("pending:  none") != std::string::npos);
  CHECK(tool.ok({"path", "resnet18"}) == "/data/resnet18\n");
  CHECK(tool.ok({"lock", "resnet18"}) == "locked resnet18\n");  // a schema 2 feature
  CHECK(tool.ok({"migrate"}).find("(up to date)") != std::string::npos);
}

TEST_CASE("migrate refuses a registry from a newer version with exit 3 and leaves it",
          "[migrate][errors]") {
  Tool tool;
  tool.ok({"set", "resnet18", "/data/resnet18"});
  tfimm::test::RawDb(tool.registry()).exec("PRAGMA user_version = 42");
  std::string bytes = tfimm::test::read_file(tool.registry());
  require_error(tool.run({"migrate"}), 3);
  CHECK(tfimm::test::read_file(tool.registry()) == bytes);
}
