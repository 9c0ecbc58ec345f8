// A small RAII layer over libpq: one connection, its results, and the
// statements it has prepared. Values only ever travel as bound parameters,
// in binary format (bytes exactly as given: a path need not be UTF-8), and
// results come back in binary format too.
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

typedef struct pg_conn PGconn;
typedef struct pg_result PGresult;

namespace tfimm::detail::pq {

// What libpq or the server refused: the server's message and SQLSTATE, or
// a connection that failed or was lost (sqlstate() empty then).
class Error : public std::runtime_error {
 public:
  Error(const std::string& message, std::string sqlstate, bool connection_lost)
      : std::runtime_error(message), sqlstate_(std::move(sqlstate)), lost_(connection_lost) {}
  const std::string& sqlstate() const noexcept { return sqlstate_; }
  // The connection is gone (never made, or broken during the call).
  bool connection_lost() const noexcept { return lost_; }

 private:
  std::string sqlstate_;
  bool lost_;
};

// Parameter types, by their fixed PostgreSQL type OIDs.
enum class Type : unsigned {
  Bytea = 17,
  Int8 = 20,
  Text = 25,
  ByteaArray = 1001,
  Int8Array = 1016
};

// The parameters of one statement, in order ($1, $2, ...). Bytes are
// borrowed: they must outlive the call that sends them.
class Params {
 public:
  Params& bytes(std::string_view value, Type type = Type::Bytea);
  Params& int8(std::int64_t value);
  Params& null(Type type);
  Params& optional_bytes(const std::string* value) {
    return value ? bytes(*value) : null(Type::Bytea);
  }
  // A bytea[] of `values` (nullptr: NULL), copied: for set-based
  // statements over unnest($n).
  Params& bytea_array(const std::vector<const std::string*>& values);
  // An int8[] of `values` (nullopt: NULL), copied.
  Params& int8_array(const std::vector<std::optional<std::int64_t>>& values);

  int size() const noexcept { return static_cast<int>(types_.size()); }
  const unsigned* types() const noexcept { return types_.data(); }
  const char* const* values() const noexcept { return values_.data(); }
  const int* lengths() const noexcept { return lengths_.data(); }
  const int* formats() const noexcept { return formats_.data(); }

 private:
  std::vector<unsigned> types_;
  std::vector<const char*> values_;
  std::vector<int> lengths_;
  std::vector<int> formats_;
  // Big-endian int8 encodings, pointed to by values_: a deque keeps each
  // in place as more are added.
  std::deque<std::array<char, 8>> owned_;
  std::deque<std::string> arrays_;  // binary array encodings
};

// One result, freed when it dies.
class Result {
 public:
  explicit Result(PGresult* r = nullptr) noexcept : r_(r) {}
  ~Result();
  Result(Result&& other) noexcept : r_(other.r_) { other.r_ = nullptr; }
  Result& operator=(Result&& other) noexcept;
  Result(const Result&) = delete;
  Result& operator=(const Result&) = delete;

  int rows() const noexcept;
  bool null(int row, int col) const noexcept;
  // A column's value, exactly (bytea, text).
  std::string bytes(int row, int col) const;
  std::int64_t int8(int row, int col) const;  // an int8 column
  std::int32_t int4(int row, int col) const;  // an int4 column
  bool boolean(int row, int col) const;       // a bool column
  // Rows changed by an INSERT, UPDATE or DELETE.
  long affected() const noexcept;

 private:
  PGresult* r_;
};

// One connection to a server, opened by the constructor; prepared
// statements are kept for its life. Not safe from several threads; never
// used in a child process after fork() (abandon() it there).
class Connection {
 public:
  // `conninfo`: a URI or key=value string, with everything libpq honours
  // beside it (PGHOST, ~/.pgpass, service files). `defaults` are keyword
  // values applied unless the URI or the environment sets them. Throws
  // Error (connection_lost) when the server cannot be reached or refuses.
  Connection(const std::string& conninfo,
             const std::vector<std::pair<std::string, std::string>>& defaults);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Runs `sql` (one statement, $n parameters) prepared once per
  // connection; binary results. Throws Error.
  Result exec(const std::string& sql, const Params& params = Params());
  // Runs `sql` as it is, without parameters (may hold several statements:
  // a migration, BEGIN, COMMIT). Throws Error.
  void run(const std::string& sql);

  // Whether a transaction is open (or failed and not yet ended).
  bool in_transaction() const noexcept;
  bool broken() const noexcept;
  // Ends an open transaction, ignoring any failure (the connection may be gone).
  void rollback_quietly() noexcept;

  // In a child process after fork(): the connection (and its socket) are
  // the parent's. Keeps them untouched and reachable for the life of the
  // process; the destructor then does nothing.
  void abandon() noexcept;

  PGconn* get() const noexcept { return conn_; }
  // Facts about the session, for doctor.
  std::string parameter(const char* name) const;
  // The value of a connection option as libpq used it ("" when unset).
  std::string option(const char* keyword) const;
  int server_version() const noexcept;
  bool ssl_in_use() const noexcept;
  std::string ssl_protocol() const;  // "TLSv1.3"
  std::string user() const;

 private:
  [[noreturn]] void fail(PGresult* result, const char* fallback);
  PGconn* conn_ = nullptr;
  std::unordered_map<std::string, std::string> prepared_;  // sql -> statement name
};

// The password of `conninfo` (a URI's user:password@, or password=), if any,
// as libpq reads it (decoded).
std::string password_of(const std::string& conninfo);

}  // namespace tfimm::detail::pq
