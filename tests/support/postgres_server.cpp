#include "postgres_server.hpp"

#include <libpq-fe.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <random>
#include <stdexcept>
#include <vector>

namespace tfimm::test {

namespace {

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

void run_script(const std::string& action, const std::string& dir) {
  const auto r = run_process({TFIMM_PG_SCRIPT, action, dir});
  if (r.exit_code != 0) {
    throw std::runtime_error("postgres.sh " + action + " " + dir + " failed: " + r.err + r.out);
  }
}

}  // namespace

std::string postgres_url() {
  // The server ctest starts for this build tree; $TFIMM_TEST_POSTGRESQL_DIR
  // picks another.
  const char* env = std::getenv("TFIMM_TEST_POSTGRESQL_DIR");
  const std::string dir = env != nullptr && *env != '\0' ? env : TFIMM_PG_DIR;
  if (!exists(dir + "/url")) {
    throw std::runtime_error("no PostgreSQL test server runs in " + dir +
                             ": run the PostgreSQL tests through ctest, which starts it");
  }
  return trimmed(read_file(dir + "/url"));
}

std::string pg_query(const std::string& url, const std::string& sql) {
  PGconn* conn = PQconnectdb(url.c_str());
  if (PQstatus(conn) != CONNECTION_OK) {
    const std::string m = PQerrorMessage(conn);
    PQfinish(conn);
    throw std::runtime_error("cannot connect to " + url + ": " + m);
  }
  // Notices ("drop cascades to ...") are not the test's output.
  PQsetNoticeProcessor(
      conn, [](void*, const char*) {}, nullptr);
  PGresult* r = PQexec(conn, sql.c_str());
  const auto status = PQresultStatus(r);
  std::string out;
  if (status == PGRES_TUPLES_OK && PQntuples(r) > 0 && PQnfields(r) > 0) out = PQgetvalue(r, 0, 0);
  const std::string m = PQresultErrorMessage(r);
  PQclear(r);
  PQfinish(conn);
  if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
    throw std::runtime_error("`" + sql + "` failed: " + m);
  }
  return out;
}

PgSchema::PgSchema() {
  static std::atomic<unsigned> count{0};
  std::random_device rd;
  name_ = "t" + std::to_string(::getpid()) + "_" + std::to_string(count++) + "_" +
          std::to_string(rd() % 100000);
  location_ = postgres_url() + "&options=-csearch_path%3D" + name_;
}

PgSchema::~PgSchema() {
  try {
    pg_query(postgres_url(), "DROP SCHEMA IF EXISTS " + name_ + " CASCADE");
  } catch (...) {
  }
}

std::string PgSchema::location_as(const std::string& user, const std::string& password) const {
  std::string url = location_;
  const auto at = url.find("user=postgres");
  url.replace(at, std::string("user=postgres").size(), "user=" + user);
  if (!password.empty()) url += "&password=" + password;
  return url;
}

std::string PgSchema::sql(const std::string& sql) const {
  return pg_query(postgres_url(), "SET search_path = " + name_ + "; " + sql);
}

PgServer::PgServer() {
  static std::atomic<unsigned> count{0};
  dir_ = "/tmp/tfimm-pgs-" + std::to_string(::getpid()) + "-" + std::to_string(count++);
  run_script("start", dir_);
  url_ = trimmed(read_file(dir_ + "/url"));
}

PgServer::~PgServer() {
  try {
    run_script("stop", dir_);
  } catch (...) {
  }
}

bool on_postgresql() {
  const char* backend = std::getenv("TFIMM_TEST_BACKEND");
  return backend != nullptr && std::string(backend) == "postgresql";
}

std::string registry_location(const TestContext& ctx, const std::string& file) {
  if (!on_postgresql()) return ctx.path(file);
  // Schemas live until the process exits: ctest runs each test case in a
  // process of its own.
  static std::mutex mutex;
  static std::vector<std::unique_ptr<PgSchema>> schemas;
  std::lock_guard<std::mutex> lock(mutex);
  schemas.push_back(std::make_unique<PgSchema>());
  return schemas.back()->location();
}

void PgServer::halt() { run_script("halt", dir_); }
void PgServer::resume() { run_script("resume", dir_); }

}  // namespace tfimm::test
