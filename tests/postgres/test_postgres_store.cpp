// The PostgreSQL backend: what is particular to a registry on a server
// (locations, schemas, passwords, roles, a server that goes away, many
// processes migrating at once). Each test has a schema of its own on the
// server ctest started; tests that stop a server start their own.
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "postgres_server.hpp"
#include "testutil.hpp"
#include "tfimm/errors.hpp"
#include "tfimm/registry.hpp"
#include "tfimm/transfer.hpp"

using namespace tfimm;
using tfimm::test::PgSchema;

namespace {

// The tool, run with a private HOME, on `location`.
test::ProcessResult tool(test::TestContext& ctx, const std::string& location,
                         std::vector<std::string> args) {
  args.insert(args.begin(), {TFIMM_TOOL, "--registry", location});
  return test::run_process(args, "", {{"HOME", ctx.home()}});
}

}  // namespace

TEST_CASE("a postgresql:// location keeps its registry in the schema its options name",
          "[postgresql][location]") {
  test::TestContext ctx;
  PgSchema schema;
  Registry reg(schema.location());
  CHECK_FALSE(reg.cached_model_path("resnet18"));
  reg.set_model_cache("resnet18", "/data/resnet18");
  CHECK(reg.cached_model_path("resnet18") == "/data/resnet18");
  CHECK(schema.sql("SELECT count(*) FROM models") == "1");
  // Another Registry on the same location sees it; the path is shown as given.
  Registry again(schema.location());
  CHECK(again.list_cached_models() == std::vector<std::string>{"resnet18"});
  CHECK(again.path() == schema.location());
}

TEST_CASE("without options the registry lives in schema tfimm_cache", "[postgresql][location]") {
  test::TestContext ctx;
  // A database of its own, so that the default schema is this test's alone.
  const std::string db = "d" + std::to_string(::getpid());
  test::pg_query(test::postgres_url(), "DROP DATABASE IF EXISTS " + db);
  test::pg_query(test::postgres_url(), "CREATE DATABASE " + db);
  std::string url = test::postgres_url();
  url.replace(url.find("/postgres?"), 10, "/" + db + "?");
  {
    Registry reg(url);
    reg.set_model_cache("vit", "/m/vit");
  }
  CHECK(test::pg_query(url, "SELECT count(*) FROM tfimm_cache.models") == "1");
  SECTION("postgres:// names the same registry") {
    std::string short_form = url;
    short_form.replace(0, std::string("postgresql").size(), "postgres");
    Registry reg(short_form);
    CHECK(reg.list_cached_models() == std::vector<std::string>{"vit"});
  }
  SECTION("$TFIMM_REGISTRY may be a URL") {
    ctx.env().set("TFIMM_REGISTRY", url);
    Registry reg;
    CHECK(reg.list_cached_models() == std::vector<std::string>{"vit"});
  }
  test::pg_query(test::postgres_url(), "DROP DATABASE " + db + " WITH (FORCE)");
}

TEST_CASE("reading a registry that does not exist on the server creates nothing",
          "[postgresql][location]") {
  test::TestContext ctx;
  PgSchema schema;
  Registry reg(schema.location());
  CHECK(reg.list_cached_models().empty());
  CHECK_FALSE(reg.clear_model_cache("nothing"));
  reg.unset_dir();
  CHECK(test::pg_query(test::postgres_url(), "SELECT count(*) FROM pg_namespace WHERE nspname = '" +
                                                 schema.name() + "'") == "0");
}

TEST_CASE("names and paths that are not valid UTF-8 round-trip byte-exact", "[postgresql][bytes]") {
  test::TestContext ctx;
  PgSchema schema;
  Registry reg(schema.location());
  const std::string path = "/data/caf\xe9/\xff\xfe model";
  reg.set_model_cache("latin1", path);
  reg.set_dir("/cache/\xc3\x28");
  Registry again(schema.location());
  CHECK(again.cached_model_path("latin1") == path);
  CHECK(again.entry("latin1")->path == path);
  CHECK(again.stored_dir() == "/cache/\xc3\x28");
  const auto rows = again.history("latin1");
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].new_path == path);
  const auto snap = again.snapshot();
  REQUIRE(snap.models.size() == 1);
  CHECK(snap.models[0].path == path);
}

TEST_CASE("history records the path each set replaced, user and host quoted as columns",
          "[postgresql][history]") {
  test::TestContext ctx;
  PgSchema schema;
  Registry reg(schema.location());
  reg.set_model_cache("a", "/one");
  reg.transaction([](Transaction& tx) {
    tx.set_model_cache("a", "/two");
    tx.set_model_cache("b", "/b");
    tx.set_model_cache("a", "/three");
  });
  reg.clear_model_cache("b");
  const auto rows = reg.history("a");
  REQUIRE(rows.size() == 3);
  CHECK(rows[0].old_path == "/two");
  CHECK(rows[0].new_path == "/three");
  CHECK(rows[1].old_path == "/one");
  CHECK(rows[2].old_path == std::nullopt);
  CHECK_FALSE(rows[0].user.empty());
  CHECK(reg.history().size() == 5);
  CHECK(reg.list_cached_models() == std::vector<std::string>{"a"});
}

TEST_CASE("a transaction that throws leaves the registry on the server unchanged",
          "[postgresql][transaction]") {
  test::TestContext ctx;
  PgSchema schema;
  Registry reg(schema.location());
  reg.set_model_cache("keep", "/keep");
  CHECK_THROWS_AS(reg.transaction([](Transaction& tx) {
    tx.set_model_cache("new", "/new");
    tx.clear_model_cache("keep");
    throw std::runtime_error("stop");
  }),
                  std::runtime_error);
  CHECK(reg.list_cached_models() == std::vector<std::string>{"keep"});
  CHECK(reg.history().size() == 1);
}

TEST_CASE("the password of the location never appears in where, doctor, history or errors",
          "[postgresql][security]") {
  test::TestContext ctx;
  PgSchema schema;
  const std::string password = "tfimm-S3cret-pw";
  schema.sql("GRANT CREATE ON DATABASE postgres TO tfimm_pw");
  const std::string location = schema.location_as("tfimm_pw", password);
  Registry reg(location);
  reg.set_model_cache("resnet18", "/m/resnet18");
  CHECK(reg.path().find(password) == std::string::npos);
  CHECK(reg.path().find("tfimm_pw") != std::string::npos);
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"where"}, {"doctor"}, {"history"}, {"list"}, {"migrate", "--status"}}) {
    const auto r = tool(ctx, location, args);
    INFO(args[0] << ": " << r.out << r.err);
    CHECK(r.exit_code == 0);
    CHECK(r.out.find(password) == std::string::npos);
    CHECK(r.err.find(password) == std::string::npos);
  }
  SECTION("a wrong password is refused without showing either") {
    const std::string wrong = schema.location_as("tfimm_pw", "not-the-Pw-123");
    const auto r = tool(ctx, wrong, {"list"});
    CHECK(r.exit_code == 3);
    CHECK(r.err.find("not-the-Pw-123") == std::string::npos);
    CHECK(r.err.find("password authentication failed") != std::string::npos);
    CHECK_THROWS_AS(Registry(wrong).list_cached_models(), RegistryError);
  }
  SECTION("a password in the user:password@ form is removed too") {
    std::string url = location;
    url.erase(url.find("&password="));
    url.replace(url.find(":///"), 4, "://tfimm_pw:" + password + "@/");
    url.replace(url.find("&user=tfimm_pw"), std::string("&user=tfimm_pw").size(), "");
    Registry other(url);
    CHECK(other.list_cached_models() == std::vector<std::string>{"resnet18"});
    CHECK(other.path().find(password) == std::string::npos);
    const auto r = tool(ctx, url, {"where"});
    CHECK(r.out.find(password) == std::string::npos);
  }
  schema.sql("DROP OWNED BY tfimm_pw");
}

TEST_CASE("a read-only role can list, look up, audit and export, and its writes are refused",
          "[postgresql][roles]") {
  test::TestContext ctx;
  PgSchema schema;
  {
    Registry owner(schema.location());
    owner.set_model_cache("resnet18", "/nowhere/resnet18");
  }
  schema.sql("DROP ROLE IF EXISTS tfimm_reader_" + schema.name() + "; CREATE ROLE tfimm_reader_" +
             schema.name() + " LOGIN; GRANT USAGE ON SCHEMA " + schema.name() +
             " TO tfimm_reader_" + schema.name() + "; GRANT SELECT ON ALL TABLES IN SCHEMA " +
             schema.name() + " TO tfimm_reader_" + schema.name());
  const std::string reader = schema.location_as("tfimm_reader_" + schema.name());
  {
    Registry reg(reader);
    CHECK(reg.list_cached_models() == std::vector<std::string>{"resnet18"});
    CHECK(reg.cached_model_path("resnet18") == "/nowhere/resnet18");
    const auto report = reg.audit();
    CHECK(report.stale() == 1);
    CHECK_FALSE(report.recorded);
    CHECK(reg.snapshot().models.size() == 1);
    CHECK_THROWS_AS(reg.set_model_cache("vit", "/m/vit"), RegistryReadOnly);
    CHECK_THROWS_AS(reg.clear_model_cache("resnet18"), RegistryReadOnly);
    CHECK_FALSE(reg.clear_model_cache("absent"));  // nothing to change, nothing refused
    try {
      reg.set_dir("/cache");
      FAIL("set_dir was not refused");
    } catch (const RegistryReadOnly& e) {
      CHECK(std::string(e.what()).find("read-only for this role") != std::string::npos);
    }
    const auto r = tool(ctx, reader, {"set", "vit", "/m/vit"});
    CHECK(r.exit_code == 3);
  }
  CHECK(schema.sql("SELECT count(*) FROM models") == "1");
  CHECK(schema.sql("SELECT count(*) FROM history") == "1");
  schema.sql("DROP OWNED BY tfimm_reader_" + schema.name() + "; DROP ROLE tfimm_reader_" +
             schema.name());
}

TEST_CASE("where on a server that cannot be reached still says where, and that it cannot tell",
          "[postgresql][faults][tool]") {
  test::TestContext ctx;
  const std::string location =
      "postgresql://tfimm_pw:hunter2@/models?host=" + ctx.path("no-server-here");
  auto r = tool(ctx, location, {"where"});
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("registry: postgresql://tfimm_pw@/models?host=" + ctx.path("no-server-here")) !=
        std::string::npos);
  CHECK(r.out.find("exists:   unknown (cannot reach the PostgreSQL server") != std::string::npos);
  CHECK(r.out.find("hunter2") == std::string::npos);
  CHECK(r.err.find("hunter2") == std::string::npos);
}

TEST_CASE("a writer holding the registry longer than the busy timeout gives RegistryBusy",
          "[postgresql][busy]") {
  test::TestContext ctx;
  PgSchema schema;
  Registry reg(schema.location(), RegistryOptions{std::chrono::milliseconds(300)});
  reg.set_model_cache("a", "/a");
  // Another process holds the registry's write lock in an open transaction.
  int to_child[2];
  int from_child[2];
  REQUIRE(::pipe(to_child) == 0);
  REQUIRE(::pipe(from_child) == 0);
  const pid_t child = ::fork();
  if (child == 0) {
    ::close(to_child[1]);
    ::close(from_child[0]);
    try {
      Registry holder(schema.location());
      holder.transaction([&](Transaction& tx) {
        tx.set_model_cache("held", "/held");
        tx.list_cached_models();  // writes the set: the lock is taken
        (void)::write(from_child[1], "x", 1);
        char c;
        (void)::read(to_child[0], &c, 1);  // until the parent is done
      });
    } catch (...) {
      ::_exit(1);
    }
    ::_exit(0);
  }
  ::close(to_child[0]);
  ::close(from_child[1]);
  char held = 0;
  REQUIRE(::read(from_child[0], &held, 1) == 1);  // the child holds it
  const auto start = std::chrono::steady_clock::now();
  CHECK_THROWS_AS(reg.set_model_cache("b", "/b"), RegistryBusy);
  const auto waited = std::chrono::steady_clock::now() - start;
  CHECK(waited >= std::chrono::milliseconds(250));
  CHECK(waited < std::chrono::seconds(5));
  // Reads never wait for a writer.
  CHECK(reg.list_cached_models() == std::vector<std::string>{"a"});
  ::close(to_child[1]);
  ::close(from_child[0]);
  int status = 0;
  ::waitpid(child, &status, 0);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(reg.list_cached_models() == std::vector<std::string>{"a", "held"});
}

TEST_CASE(
    "a writer of one entry holds only that entry: writers of others go on, whole-registry writes "
    "wait",
    "[postgresql][busy]") {
  PgSchema schema;
  Registry reg(schema.location(), RegistryOptions{std::chrono::milliseconds(300)});
  reg.set_model_cache("x", "/x");
  // Another session in the middle of a write of entry x, holding the locks
  // such a write takes (lib/storage/postgres/postgres_store.cpp).
  PGconn* other = PQconnectdb(test::postgres_url().c_str());
  REQUIRE(PQstatus(other) == CONNECTION_OK);
  const std::string registry_key = "tfimm_cache write " + schema.name();
  const char* values[] = {registry_key.c_str(), "x"};
  const auto exec = [&](const char* sql, int n) {
    PGresult* r = PQexecParams(other, sql, n, nullptr, n ? values : nullptr, nullptr, nullptr, 0);
    const auto status = PQresultStatus(r);
    PQclear(r);
    return status;
  };
  REQUIRE(exec("BEGIN", 0) == PGRES_COMMAND_OK);
  REQUIRE(exec("SELECT pg_advisory_xact_lock_shared(hashtextextended($1, 0)), "
               "pg_advisory_xact_lock(hashtextextended($1 || ' entry ' || "
               "encode(convert_to($2, 'UTF8'), 'hex'), 0))",
               2) == PGRES_TUPLES_OK);

  // Other entries are written at once.
  reg.set_model_cache("y", "/y");
  reg.lock("y", "pinned");
  CHECK(reg.clear_model_cache("y"));
  // The same entry waits for the busy timeout, as do writes that may touch
  // anything; the other write's entry is unchanged.
  CHECK_THROWS_AS(reg.set_model_cache("x", "/x2"), RegistryBusy);
  CHECK_THROWS_AS(reg.clear_model_cache("x"), RegistryBusy);
  CHECK_THROWS_AS(reg.transaction([](Transaction& tx) { tx.set_model_cache("z", "/z"); }),
                  RegistryBusy);
  CHECK_THROWS_AS(reg.set_dir("/cache"), RegistryBusy);
  CHECK(reg.cached_model_path("x") == "/x");

  REQUIRE(exec("COMMIT", 0) == PGRES_COMMAND_OK);
  PQfinish(other);
  reg.set_model_cache("x", "/x2");
  CHECK(reg.cached_model_path("x") == "/x2");
}

TEST_CASE("a child after fork() connects anew and the parent's connection keeps working",
          "[postgresql][fork]") {
  test::TestContext ctx;
  PgSchema schema;
  Registry reg(schema.location());
  reg.set_model_cache("parent", "/p");
  const pid_t child = ::fork();
  if (child == 0) {
    try {
      reg.set_model_cache("child", "/c");
      ::_exit(reg.list_cached_models().size() == 2 ? 0 : 2);
    } catch (...) {
      ::_exit(1);
    }
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  // Had the child used (or closed) the parent's session, this would fail.
  CHECK(reg.list_cached_models() == std::vector<std::string>{"child", "parent"});
  reg.set_model_cache("after", "/a");
  CHECK(reg.history().size() == 3);
}

TEST_CASE("8 processes opening a new registry at once migrate it exactly once",
          "[postgresql][migrations]") {
  test::TestContext ctx;
  PgSchema schema;
  std::vector<pid_t> children;
  for (int i = 0; i < 8; ++i) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      try {
        Registry reg(schema.location());
        reg.set_model_cache("m" + std::to_string(i), "/m");
        ::_exit(0);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "child %d: %s\n", i, e.what());
        ::_exit(1);
      }
    }
    children.push_back(pid);
  }
  for (pid_t pid : children) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
  }
  CHECK(schema.sql("SELECT count(*) FROM schema_migrations") ==
        std::to_string(migration_status(schema.location()).latest));
  CHECK(schema.sql("SELECT count(*) FROM models") == "8");
}

TEST_CASE(
    "a registry written by release 1 is upgraded with its data intact, each entry local to no host",
    "[postgresql][migrations][hosts]") {
  test::TestContext ctx;
  PgSchema schema;
  test::pg_query(test::postgres_url(), "CREATE SCHEMA " + schema.name());
  schema.sql(test::read_file(TFIMM_PG_MIGRATION_001));
  schema.sql("INSERT INTO schema_migrations VALUES (1, 1700000000000, 1)");
  schema.sql(
      "INSERT INTO models VALUES ('resnet18'::bytea, '/data/resnet18'::bytea, 1, 2, true, "
      "'paper'::bytea, 3)");
  schema.sql(
      "INSERT INTO history(at, action, name, old_path, new_path, \"user\", host, pid) VALUES "
      "(4, 'lock', 'resnet18'::bytea, '/data/resnet18'::bytea, '/data/resnet18'::bytea, "
      "'ana'::bytea, 'node-a'::bytea, 42)");

  Registry reg(schema.location());
  CHECK(migration_status(schema.location()).pending == std::vector<int>{2, 3});
  auto entries = reg.entries();
  REQUIRE(entries.size() == 1);
  CHECK(entries[0].path == "/data/resnet18");
  CHECK(entries[0].created_at == 1);
  CHECK(entries[0].updated_at == 2);
  CHECK(entries[0].locked);
  CHECK(entries[0].lock_reason == "paper");
  CHECK(entries[0].missing_since == 3);
  CHECK(entries[0].local_to.empty());
  REQUIRE(reg.audit().items.size() == 1);
  CHECK(reg.audit().items[0].status == PathStatus::Missing);  // judged here, as before
  REQUIRE(reg.history().size() == 1);
  CHECK(reg.history()[0].host == "node-a");
  CHECK(migration_status(schema.location()).pending.empty());
  CHECK(schema.sql("SELECT max(version) FROM schema_migrations") == "3");
  // Code of schema 2 may still use it: the hosts migration only adds.
  CHECK(schema.sql("SELECT oldest_compatible FROM schema_migrations WHERE version = 3") == "2");
}

TEST_CASE(
    "a registry of a newer schema is refused untouched unless it declares this code "
    "compatible",
    "[postgresql][migrations]") {
  test::TestContext ctx;
  PgSchema schema;
  Registry(schema.location()).set_model_cache("a", "/a");
  const int latest = migration_status(schema.location()).latest;
  const std::string newer = std::to_string(latest + 1);
  SECTION("an incompatible newer schema") {
    schema.sql("INSERT INTO schema_migrations VALUES(" + newer + ", 0, " + newer + ")");
    Registry reg(schema.location());
    try {
      reg.set_model_cache("b", "/b");
      FAIL("not refused");
    } catch (const RegistryTooNew& e) {
      CHECK(e.found_version() == latest + 1);
      CHECK(e.known_version() == latest);
    }
    CHECK_THROWS_AS(reg.list_cached_models(), RegistryTooNew);
    CHECK(schema.sql("SELECT count(*) FROM models") == "1");
  }
  SECTION("a newer schema that older code may still use") {
    schema.sql("INSERT INTO schema_migrations VALUES(" + newer + ", 0, " + std::to_string(latest) +
               ")");
    Registry reg(schema.location());
    reg.set_model_cache("b", "/b");
    CHECK(reg.list_cached_models() == std::vector<std::string>{"a", "b"});
    CHECK(schema.sql("SELECT max(version) FROM schema_migrations") == newer);
  }
}

TEST_CASE(
    "a server stopped in the middle gives RegistryError at once, and the next call "
    "reconnects",
    "[postgresql][faults]") {
  test::TestContext ctx;
  test::PgServer server;
  Registry reg(server.url());
  reg.set_model_cache("before", "/b");
  server.halt();
  const auto start = std::chrono::steady_clock::now();
  CHECK_THROWS_AS(reg.set_model_cache("during", "/d"), RegistryError);
  CHECK_THROWS_AS(reg.list_cached_models(), RegistryError);
  try {
    reg.cached_model_path("before");
    FAIL("no error");
  } catch (const RegistryError& e) {
    CHECK(std::string(e.what()).find("cannot reach the PostgreSQL server") != std::string::npos);
  }
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(15));
  server.resume();
  CHECK(reg.list_cached_models() == std::vector<std::string>{"before"});
  reg.set_model_cache("after", "/a");
  CHECK(reg.list_cached_models() == std::vector<std::string>{"after", "before"});
}

TEST_CASE("a registry at schema 1 keeps every history row, each its own change set",
          "[postgresql][migrations][undo]") {
  PgSchema schema;
  Registry(schema.location()).set_model_cache("a", "/a");
  // Back to schema 1 exactly: what migrations 2 and 3 added taken away again.
  schema.sql(
      "ALTER TABLE models DROP COLUMN local_to; "
      "ALTER TABLE history DROP COLUMN change_set, "
      "DROP COLUMN undoes, DROP COLUMN old_locked, DROP COLUMN old_lock_reason, "
      "DROP COLUMN new_locked, DROP COLUMN new_lock_reason, DROP COLUMN old_missing_since, "
      "DROP COLUMN forgot_through, DROP COLUMN forgot_rows; "
      "DELETE FROM schema_migrations WHERE version > 1; "
      "UPDATE models SET locked = true, lock_reason = 'paper'; "
      "INSERT INTO history(at, action, name, old_path, new_path, \"user\", host, pid) VALUES "
      "(1600000020000, 'lock', 'a', '/a', '/a', 'ann', 'h1', 11), "
      "(1600000030000, 'set_dir', '', NULL, '/cache', 'bob', 'h2', 12)");
  REQUIRE(migration_status(schema.location()).current == 1);

  Registry reg(schema.location());
  const auto rows = reg.history();
  REQUIRE(rows.size() == 3);
  for (const auto& row : rows) CHECK(row.change_set == row.id);
  CHECK(rows[0].action == "set_dir");
  CHECK(rows[0].user == "bob");
  CHECK(rows[1].new_locked == true);
  CHECK(migration_status(schema.location()).current == migration_status(schema.location()).latest);
  reg.undo(rows[1].id);  // the old lock row: undone by unlocking
  CHECK_FALSE(reg.entry("a")->locked);
  reg.undo(rows[0].id);
  CHECK_FALSE(reg.stored_dir());
}

TEST_CASE("doctor and where on a server show its version, the role, its privileges and TLS",
          "[postgresql][doctor]") {
  test::TestContext ctx;
  PgSchema schema;
  SECTION("a registry not created yet") {
    const auto where = tool(ctx, schema.location(), {"where"});
    CHECK(where.exit_code == 0);
    CHECK(where.out.find("exists:   no (created on the first change)") != std::string::npos);
    const auto r = tool(ctx, schema.location(), {"doctor"});
    INFO(r.out << r.err);
    CHECK(r.out.find("server:      PostgreSQL 1") != std::string::npos);
    CHECK(r.out.find("privileges:  may create the registry") != std::string::npos);
    CHECK(r.out.find("file:") == std::string::npos);
  }
  SECTION("a registry in use") {
    Registry(schema.location()).set_model_cache("a", "/a");
    const auto where = tool(ctx, schema.location(), {"where"});
    CHECK(where.out.find("exists:   yes") != std::string::npos);
    const auto r = tool(ctx, schema.location(), {"doctor"});
    INFO(r.out << r.err);
    CHECK(r.out.find("role:        postgres") != std::string::npos);
    CHECK(r.out.find("privileges:  read and write") != std::string::npos);
    CHECK(r.out.find("TLS:         no") != std::string::npos);
    CHECK(r.out.find("schema:      " + schema.name()) != std::string::npos);
    CHECK(r.out.find("entries:     1") != std::string::npos);
    const auto status = migration_status(schema.location());
    CHECK(r.out.find("schema:      version " + std::to_string(status.latest) +
                     " (this build knows " + std::to_string(status.latest) + ")") !=
          std::string::npos);
  }
}

TEST_CASE("a schema that holds other tables but no registry is refused and left alone",
          "[postgresql][location]") {
  test::TestContext ctx;
  PgSchema schema;
  test::pg_query(test::postgres_url(), "CREATE SCHEMA " + schema.name());
  schema.sql("CREATE TABLE models (x int); INSERT INTO models VALUES (1)");
  Registry reg(schema.location());
  CHECK_THROWS_AS(reg.set_model_cache("a", "/a"), NotARegistry);
  CHECK_THROWS_AS(reg.list_cached_models(), NotARegistry);
  CHECK(schema.sql("SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()") == "1");
  CHECK(schema.sql("SELECT x FROM models") == "1");
}

TEST_CASE("what libpq takes from the environment comes with the location (PGHOST)",
          "[postgresql][location]") {
  test::TestContext ctx;
  PgSchema schema;
  std::string url = schema.location();
  const auto host = url.find("host=");
  const auto end = url.find('&', host);
  const std::string dir = url.substr(host + 5, end - host - 5);
  url.erase(host, end - host + 1);  // "host=...&"
  ctx.env().set("PGHOST", dir);
  Registry reg(url);
  reg.set_model_cache("a", "/a");
  CHECK(schema.sql("SELECT count(*) FROM models") == "1");
}

TEST_CASE("a connection lost during COMMIT is reported as a change that may or may not be stored",
          "[postgresql][faults]") {
  test::TestContext ctx;
  PgSchema schema;
  // Named, so that only this test's session is ended.
  Registry reg(schema.location() + "&application_name=" + schema.name());
  reg.set_model_cache("a", "/a");
  // A deferred trigger makes the COMMIT itself take a while; the session is
  // ended from outside while it runs.
  schema.sql(
      "CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS "
      "$$ BEGIN PERFORM pg_sleep(3); RETURN NULL; END $$; "
      "CREATE CONSTRAINT TRIGGER slow AFTER INSERT OR UPDATE ON models "
      "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit()");
  std::string message;
  const pid_t killer = ::fork();
  if (killer == 0) {
    ::usleep(1000000);
    try {
      test::pg_query(test::postgres_url(),
                     "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                     "WHERE query = 'COMMIT' AND state = 'active' AND application_name = '" +
                         schema.name() + "'");
    } catch (...) {
      ::_exit(1);
    }
    ::_exit(0);
  }
  try {
    reg.set_model_cache("b", "/b");
  } catch (const RegistryError& e) {
    message = e.what();
  }
  int status = 0;
  ::waitpid(killer, &status, 0);
  CHECK(message.find("whether it was stored is unknown") != std::string::npos);
  schema.sql("DROP TRIGGER slow ON models");
  CHECK(reg.cached_model_path("a") == "/a");  // and the next call reconnects
}

TEST_CASE(
    "a server that accepts the connection but never answers gives RegistryError, never a hang",
    "[postgresql][faults]") {
  test::TestContext ctx;
  // A socket where a server's would be, listening, that nobody ever serves:
  // the kernel accepts the connection and libpq waits for an answer.
  const std::string dir = "/tmp/tfimm-mute-" + std::to_string(::getpid());
  test::make_dirs(dir);
  const int listener = ::socket(AF_UNIX, SOCK_STREAM, 0);
  REQUIRE(listener >= 0);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  const std::string socket_path = dir + "/.s.PGSQL.5432";
  std::snprintf(address.sun_path, sizeof address.sun_path, "%s", socket_path.c_str());
  REQUIRE(::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  REQUIRE(::listen(listener, 16) == 0);
  SECTION("connect_timeout in the location bounds the wait") {
    Registry reg("postgresql:///postgres?host=" + dir + "&connect_timeout=2");
    const auto start = std::chrono::steady_clock::now();
    CHECK_THROWS_AS(reg.list_cached_models(), RegistryError);
    const auto waited = std::chrono::steady_clock::now() - start;
    CHECK(waited >= std::chrono::milliseconds(1500));
    CHECK(waited < std::chrono::seconds(8));
  }
  SECTION("without one, the default of 10 s does") {
    Registry reg("postgresql:///postgres?host=" + dir);
    const auto start = std::chrono::steady_clock::now();
    CHECK_THROWS_AS(reg.set_model_cache("a", "/a"), RegistryError);
    const auto waited = std::chrono::steady_clock::now() - start;
    CHECK(waited >= std::chrono::seconds(8));
    CHECK(waited < std::chrono::seconds(20));
  }
  ::close(listener);
  ::unlink(socket_path.c_str());
  ::rmdir(dir.c_str());
}

TEST_CASE("a multi-host location, a service file and PGOPTIONS reach the registry as libpq would",
          "[postgresql][location]") {
  test::TestContext ctx;
  PgSchema schema;
  Registry(schema.location()).set_model_cache("a", "/a");
  std::string url = schema.location();
  const auto host = url.find("host=") + 5;
  const std::string dir = url.substr(host, url.find('&', host) - host);
  SECTION("the first host is down: the next one that takes writes answers") {
    std::string multi = url;
    multi.replace(host, dir.size(), ctx.path("nothing-here") + "," + dir);
    multi += "&target_session_attrs=read-write";
    Registry reg(multi);
    reg.set_model_cache("b", "/b");
    CHECK(reg.list_cached_models() == std::vector<std::string>{"a", "b"});
  }
  SECTION("service= names a section of the service file") {
    test::write_file(ctx.path("pg_service.conf"), "[tfimm]\nhost=" + dir +
                                                      "\ndbname=postgres\nuser=postgres\n"
                                                      "options=-csearch_path=" +
                                                      schema.name() + "\n");
    ctx.env().set("PGSERVICEFILE", ctx.path("pg_service.conf"));
    Registry reg("postgresql://?service=tfimm");
    CHECK(reg.list_cached_models() == std::vector<std::string>{"a"});
  }
  SECTION("PGOPTIONS sets the schema as the location's options would") {
    ctx.env().set("PGOPTIONS", "-csearch_path=" + schema.name());
    Registry reg(test::postgres_url());
    CHECK(reg.list_cached_models() == std::vector<std::string>{"a"});
  }
}
