// PostgreSQL's SQLSTATEs and connection failures, mapped to the storage
// layer's neutral error kinds (storage/errors.hpp).
#include "storage/errors.hpp"
#include "storage/postgres/postgres_store.hpp"
#include "storage/postgres/pq.hpp"
#include "tfimm/errors.hpp"

namespace tfimm::detail {
namespace {

Failure::Kind kind_of(const std::string& state) {
  if (state == "55P03" || state == "40001" || state == "40P01") return Failure::Kind::Busy;
  if (state == "42501" || state == "25006") return Failure::Kind::ReadOnly;
  if (state == "53100") return Failure::Kind::Full;
  if (state == "XX001" || state == "XX002") return Failure::Kind::Corrupt;
  return Failure::Kind::Other;
}

// `text` with every occurrence of `secret` replaced: a server or libpq
// message must never carry the password on.
std::string scrub(std::string text, const std::string& secret) {
  if (secret.empty()) return text;
  for (auto at = text.find(secret); at != std::string::npos; at = text.find(secret, at)) {
    text.replace(at, secret.size(), "***");
    at += 3;
  }
  return text;
}

}  // namespace

void PostgresStore::fail(const pq::Error& error, const char* operation) {
  const std::string detail = scrub(error.what(), password_);
  if (error.connection_lost()) {
    // The next call connects again.
    drop_connection();
    depth_ = 0;
    absent_.reset();
    throw RegistryError(display_, "cannot reach the PostgreSQL server of registry " + display_ +
                                      " to " + operation + " it: " + detail +
                                      "; nothing was changed. Check that the server runs and "
                                      "accepts this connection, then retry");
  }
  Failure f;
  f.kind = kind_of(error.sqlstate());
  f.where = display_;
  f.operation = operation;
  f.detail = detail + " (SQLSTATE " + error.sqlstate() + ")";
  f.busy_timeout = busy_timeout_;
  if (f.kind == Failure::Kind::ReadOnly) {
    // Not a file: the role lacks the privilege, or the server is a standby.
    const bool standby = error.sqlstate() == "25006";
    throw RegistryReadOnly(
        display_, "registry " + display_ +
                      (standby ? " is on a read-only server (a standby)"
                               : " is read-only for this role (PostgreSQL privileges)") +
                      "; could not " + operation + " " + display_ + ", nothing was changed. " +
                      (standby ? "Connect to the primary (target_session_attrs=read-write)"
                               : "Ask the database owner to grant it, or use another role") +
                      ": " + detail);
  }
  raise(f);
}

}  // namespace tfimm::detail
