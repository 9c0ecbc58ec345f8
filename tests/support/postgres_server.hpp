// The PostgreSQL side of the tests: the throwaway server ctest starts
// (support/postgres.sh), a fresh schema per test on it, and private servers
// for tests that stop one.
#pragma once

#include <string>

#include "testutil.hpp"

namespace tfimm::test {

// The URL of the test server ctest started for this build tree (or the one
// in $TFIMM_TEST_POSTGRESQL_DIR): superuser, Unix socket. Throws when none runs.
std::string postgres_url();

// Runs `sql` on `url` with libpq and returns the first column of its first
// row ("" when none). Throws std::runtime_error with the server's message.
std::string pg_query(const std::string& url, const std::string& sql);

// A schema of its own for one test, dropped (with everything in it) when the
// object dies: location() is the test server's URL with options that make
// the registry live in it.
class PgSchema {
 public:
  PgSchema();
  ~PgSchema();
  PgSchema(const PgSchema&) = delete;
  PgSchema& operator=(const PgSchema&) = delete;
  const std::string& name() const { return name_; }
  // The registry's location: the server URL with -csearch_path=<name>.
  const std::string& location() const { return location_; }
  // The same registry as `user` (and `password=...` when given) would reach it.
  std::string location_as(const std::string& user, const std::string& password = "") const;
  // `sql` as the superuser, with search_path set to this schema.
  std::string sql(const std::string& sql) const;

 private:
  std::string name_;
  std::string location_;
};

// A PostgreSQL server of one test's own, in a short directory of its own
// (a test may stop and restart it); stopped and removed when the object dies.
class PgServer {
 public:
  PgServer();
  ~PgServer();
  PgServer(const PgServer&) = delete;
  PgServer& operator=(const PgServer&) = delete;
  const std::string& url() const { return url_; }
  void halt();    // pg_ctl stop -m immediate: as if it crashed
  void resume();  // started again on the same data

 private:
  std::string dir_;
  std::string url_;
};

}  // namespace tfimm::test
