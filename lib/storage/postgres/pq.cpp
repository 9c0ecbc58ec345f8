#include "storage/postgres/pq.hpp"

#include <libpq-fe.h>

#include <cstdlib>
#include <cstring>
#include <mutex>

namespace tfimm::detail::pq {

// -- Params -------------------------------------------------------------------

Params& Params::bytes(std::string_view value, Type type) {
  types_.push_back(static_cast<unsigned>(type));
  // A non-null pointer even for an empty value: a null pointer is SQL NULL.
  values_.push_back(value.data() != nullptr ? value.data() : "");
  lengths_.push_back(static_cast<int>(value.size()));
  formats_.push_back(1);
  return *this;
}

Params& Params::int8(std::int64_t value) {
  auto& out = owned_.emplace_back();
  auto u = static_cast<std::uint64_t>(value);
  for (int i = 7; i >= 0; --i) {
    out[static_cast<std::size_t>(i)] = static_cast<char>(u & 0xff);
    u >>= 8;
  }
  types_.push_back(static_cast<unsigned>(Type::Int8));
  values_.push_back(out.data());
  lengths_.push_back(8);
  formats_.push_back(1);
  return *this;
}

namespace {
void put_int4(std::string& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>((v >> shift) & 0xff);
}
}  // namespace

Params& Params::bytea_array(const std::vector<const std::string*>& values) {
  // PostgreSQL's binary array format: dimensions, a has-nulls flag, the
  // element type, each dimension's length and lower bound, then each
  // element as its length (-1: NULL) and its bytes.
  auto& out = arrays_.emplace_back();
  std::size_t total = 20;
  for (const auto* v : values) total += 4 + (v ? v->size() : 0);
  out.reserve(total);
  put_int4(out, 1);
  put_int4(out, 1);
  put_int4(out, static_cast<std::uint32_t>(Type::Bytea));
  put_int4(out, static_cast<std::uint32_t>(values.size()));
  put_int4(out, 1);
  for (const auto* v : values) {
    if (v == nullptr) {
      put_int4(out, 0xffffffffu);
    } else {
      put_int4(out, static_cast<std::uint32_t>(v->size()));
      out += *v;
    }
  }
  return bytes(out, Type::ByteaArray);
}

Params& Params::int8_array(const std::vector<std::optional<std::int64_t>>& values) {
  // The binary array format of bytea_array(), with 8-byte big-endian elements.
  auto& out = arrays_.emplace_back();
  out.reserve(20 + values.size() * 12);
  put_int4(out, 1);
  put_int4(out, 1);
  put_int4(out, static_cast<std::uint32_t>(Type::Int8));
  put_int4(out, static_cast<std::uint32_t>(values.size()));
  put_int4(out, 1);
  for (const auto& v : values) {
    if (!v) {
      put_int4(out, 0xffffffffu);
      continue;
    }
    put_int4(out, 8);
    const auto u = static_cast<std::uint64_t>(*v);
    put_int4(out, static_cast<std::uint32_t>(u >> 32));
    put_int4(out, static_cast<std::uint32_t>(u & 0xffffffffu));
  }
  return bytes(out, Type::Int8Array);
}

Params& Params::null(Type type) {
  types_.push_back(static_cast<unsigned>(type));
  values_.push_back(nullptr);
  lengths_.push_back(0);
  formats_.push_back(1);
  return *this;
}

// -- Result -------------------------------------------------------------------

Result::~Result() {
  if (r_) PQclear(r_);
}

Result& Result::operator=(Result&& other) noexcept {
  if (this != &other) {
    if (r_) PQclear(r_);
    r_ = other.r_;
    other.r_ = nullptr;
  }
  return *this;
}

int Result::rows() const noexcept { return r_ ? PQntuples(r_) : 0; }

bool Result::null(int row, int col) const noexcept { return PQgetisnull(r_, row, col) != 0; }

std::string Result::bytes(int row, int col) const {
  return std::string(PQgetvalue(r_, row, col), static_cast<std::size_t>(PQgetlength(r_, row, col)));
}

namespace {
std::uint64_t big_endian(const char* p, int n) {
  std::uint64_t v = 0;
  for (int i = 0; i < n; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}
}  // namespace

std::int64_t Result::int8(int row, int col) const {
  if (PQgetlength(r_, row, col) != 8) throw Error("tfimm: expected an int8 column", "", false);
  return static_cast<std::int64_t>(big_endian(PQgetvalue(r_, row, col), 8));
}

std::int32_t Result::int4(int row, int col) const {
  if (PQgetlength(r_, row, col) != 4) throw Error("tfimm: expected an int4 column", "", false);
  return static_cast<std::int32_t>(big_endian(PQgetvalue(r_, row, col), 4));
}

bool Result::boolean(int row, int col) const { return PQgetvalue(r_, row, col)[0] != 0; }

long Result::affected() const noexcept {
  const char* n = r_ ? PQcmdTuples(r_) : "";
  return *n ? std::strtol(n, nullptr, 10) : 0;
}

// -- Connection ---------------------------------------------------------------

namespace {

// Connections a child process inherited through fork(): the parent's
// sessions. Closing one in the child would end the parent's session (libpq
// sends Terminate on the shared socket), so they stay here, untouched and
// reachable, for the life of the process.
std::mutex abandoned_mutex;
std::vector<PGconn*>* abandoned = new std::vector<PGconn*>;

// libpq's message without its trailing newline.
std::string message_of(const char* text) {
  std::string m = text ? text : "";
  while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
  return m;
}

}  // namespace

Connection::Connection(const std::string& conninfo,
                       const std::vector<std::pair<std::string, std::string>>& defaults) {
  // Defaults first: the expanded URI and then the environment win over them
  // (libpq applies later keywords over earlier ones, and the environment
  // only where no keyword gave a value).
  std::vector<const char*> keys;
  std::vector<const char*> values;
  for (const auto& [key, value] : defaults) {
    if (key == "connect_timeout" && std::getenv("PGCONNECT_TIMEOUT")) continue;
    keys.push_back(key.c_str());
    values.push_back(value.c_str());
  }
  keys.push_back("dbname");
  values.push_back(conninfo.c_str());
  keys.push_back(nullptr);
  values.push_back(nullptr);
  conn_ = PQconnectdbParams(keys.data(), values.data(), /*expand_dbname=*/1);
  if (conn_ == nullptr) throw Error("out of memory", "", true);
  if (PQstatus(conn_) != CONNECTION_OK) {
    std::string m = message_of(PQerrorMessage(conn_));
    PQfinish(conn_);
    conn_ = nullptr;
    throw Error(m, "", true);
  }
}

Connection::~Connection() {
  if (conn_) PQfinish(conn_);
}

void Connection::abandon() noexcept {
  if (!conn_) return;
  std::lock_guard<std::mutex> lock(abandoned_mutex);
  abandoned->push_back(conn_);
  conn_ = nullptr;
}

void Connection::fail(PGresult* result, const char* fallback) {
  std::string state;
  std::string m;
  if (result) {
    if (const char* s = PQresultErrorField(result, PG_DIAG_SQLSTATE)) state = s;
    if (const char* primary = PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY)) {
      m = primary;
    } else {
      m = message_of(PQresultErrorMessage(result));
    }
    PQclear(result);
  }
  if (m.empty()) m = message_of(PQerrorMessage(conn_));
  if (m.empty()) m = fallback;
  const bool lost = PQstatus(conn_) != CONNECTION_OK;
  throw Error(m, state, lost);
}

Result Connection::exec(const std::string& sql, const Params& params) {
  auto found = prepared_.find(sql);
  if (found == prepared_.end()) {
    const std::string name = "tfimm_" + std::to_string(prepared_.size() + 1);
    PGresult* r = PQprepare(conn_, name.c_str(), sql.c_str(), params.size(), params.types());
    if (r == nullptr || PQresultStatus(r) != PGRES_COMMAND_OK) fail(r, "could not prepare");
    PQclear(r);
    found = prepared_.emplace(sql, name).first;
  }
  PGresult* r = PQexecPrepared(conn_, found->second.c_str(), params.size(), params.values(),
                               params.lengths(), params.formats(), /*resultFormat=*/1);
  const auto status = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) fail(r, "the query failed");
  return Result(r);
}

void Connection::run(const std::string& sql) {
  PGresult* r = PQexec(conn_, sql.c_str());
  const auto status = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) fail(r, "the statement failed");
  PQclear(r);
}

bool Connection::in_transaction() const noexcept {
  const auto s = PQtransactionStatus(conn_);
  return s == PQTRANS_INTRANS || s == PQTRANS_INERROR || s == PQTRANS_ACTIVE;
}

bool Connection::broken() const noexcept { return !conn_ || PQstatus(conn_) != CONNECTION_OK; }

void Connection::rollback_quietly() noexcept {
  if (broken() || !in_transaction()) return;
  if (PGresult* r = PQexec(conn_, "ROLLBACK")) PQclear(r);
}

std::string Connection::parameter(const char* name) const {
  const char* v = PQparameterStatus(conn_, name);
  return v ? v : "";
}

std::string Connection::option(const char* keyword) const {
  std::string value;
  if (PQconninfoOption* options = PQconninfo(conn_)) {
    for (auto* o = options; o->keyword; ++o) {
      if (std::strcmp(o->keyword, keyword) == 0 && o->val) value = o->val;
    }
    PQconninfoFree(options);
  }
  return value;
}

int Connection::server_version() const noexcept { return PQserverVersion(conn_); }

bool Connection::ssl_in_use() const noexcept { return PQsslInUse(conn_) != 0; }

std::string Connection::ssl_protocol() const {
  const char* p = PQsslAttribute(conn_, "protocol");
  return p ? p : "";
}

std::string Connection::user() const {
  const char* u = PQuser(conn_);
  return u ? u : "";
}

// -- passwords ----------------------------------------------------------------

std::string password_of(const std::string& conninfo) {
  PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), nullptr);
  std::string password;
  if (options) {
    for (auto* o = options; o->keyword; ++o) {
      if (std::strcmp(o->keyword, "password") == 0 && o->val) password = o->val;
    }
    PQconninfoFree(options);
  }
  return password;
}

}  // namespace tfimm::detail::pq
