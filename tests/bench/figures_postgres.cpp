#include "figures_postgres.hpp"

#include <libpq-fe.h>

#include <map>
#include <memory>
#include <stdexcept>

#include "tfimm/registry.hpp"
#include "tfimm/transfer.hpp"

namespace tfimm::bench {
namespace {

volatile std::size_t pg_sink = 0;

void need(bool ok, const std::string& what) {
  if (!ok) throw std::runtime_error(what);
}

// The baseline's connection: the same URL, so the same server, database and
// schema; one prepared statement, binary parameters and results.
class RawPg {
 public:
  RawPg(const std::string& url, const char* sql, int params) {
    conn_ = PQconnectdb(url.c_str());
    need(PQstatus(conn_) == CONNECTION_OK, std::string("raw libpq: ") + PQerrorMessage(conn_));
    std::vector<Oid> types(static_cast<std::size_t>(params), 17);  // bytea
    if (params >= 3) types[2] = 20;                                // int8
    PGresult* r = PQprepare(conn_, "s", sql, params, types.data());
    need(PQresultStatus(r) == PGRES_COMMAND_OK,
         std::string("raw libpq prepare: ") + PQresultErrorMessage(r));
    PQclear(r);
  }
  ~RawPg() { PQfinish(conn_); }
  RawPg(const RawPg&) = delete;
  RawPg& operator=(const RawPg&) = delete;

  // Runs the statement; the size of the first column of the first row.
  std::size_t run(const std::vector<std::string>& values) {
    std::vector<const char*> v;
    std::vector<int> lengths, formats;
    for (const auto& s : values) {
      v.push_back(s.data());
      lengths.push_back(static_cast<int>(s.size()));
      formats.push_back(1);
    }
    PGresult* r = PQexecPrepared(conn_, "s", static_cast<int>(v.size()), v.data(), lengths.data(),
                                 formats.data(), 1);
    const auto status = PQresultStatus(r);
    need(status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK,
         std::string("raw libpq: ") + PQresultErrorMessage(r));
    const std::size_t size = PQntuples(r) > 0 ? static_cast<std::size_t>(PQgetlength(r, 0, 0)) : 0;
    PQclear(r);
    return size;
  }

 private:
  PGconn* conn_ = nullptr;
};

std::string int8(std::int64_t value) {
  std::string out(8, '\0');
  auto u = static_cast<std::uint64_t>(value);
  for (int i = 7; i >= 0; --i) {
    out[static_cast<std::size_t>(i)] = static_cast<char>(u & 0xff);
    u >>= 8;
  }
  return out;
}

// Registers `count` models model_<i> at /models/model_<i> in one import.
void seed(Registry& registry, std::size_t count, std::vector<std::string>& names,
          std::vector<std::string>& paths) {
  Snapshot snapshot;
  for (std::size_t i = 0; i < count; ++i) {
    names.push_back("model_" + std::to_string(i));
    paths.push_back("/models/" + names.back());
    snapshot.models.push_back({names.back(), paths.back(), false, ""});
  }
  registry.import(snapshot);
}

[[gnu::noinline]] std::size_t pg_ours_lookup(Registry& registry, const std::string& name) {
  const auto path = registry.cached_model_path(name);
  return path ? path->size() : 0;
}

[[gnu::noinline]] std::size_t pg_base_lookup(RawPg& raw, const std::string& name) {
  return raw.run({name});
}

}  // namespace

Figure pg_lookup_hit(const Config& config, const std::string& location) {
  Figure f;
  f.name = "lookup hit (PostgreSQL)";
  f.unit = "us";
  f.goal_value = 1.2;
  Registry registry(location);
  std::vector<std::string> names, paths;
  seed(registry, config.lookup_entries, names, paths);
  RawPg raw(location, "SELECT path FROM models WHERE name = $1", 1);
  for (std::size_t i = 0; i < std::min<std::size_t>(names.size(), 50); ++i) {
    need(registry.cached_model_path(names[i]) == paths[i], "lookup hit: wrong answer");
    need(pg_base_lookup(raw, names[i]) == paths[i].size(), "lookup hit: baseline found no row");
  }
  interleave(
      config.lookup_rounds, config.lookup_block,
      [&](std::size_t i) {
        pg_sink = pg_sink + pg_ours_lookup(registry, names[(i * 7919) % names.size()]);
      },
      [&](std::size_t i) {
        pg_sink = pg_sink + pg_base_lookup(raw, names[(i * 7919) % names.size()]);
      },
      f.ours, f.base);
  f.note = "PostgreSQL over a Unix socket, " + std::to_string(names.size()) +
           " entries; baseline: a prepared SELECT through raw libpq";
  return f;
}

Figure pg_durable_set(const Config& config, const std::string& location) {
  Figure f;
  f.name = "durable set (PostgreSQL)";
  f.unit = "ms";
  f.scale = 1e-6;
  f.goal_value = 1.3;
  Registry registry(location);
  registry.set_model_cache("warm", "/models/warm");  // creates the schema
  RawPg raw(location,
            "INSERT INTO models(name, path, created_at, updated_at) VALUES($1, $2, $3, $3) "
            "ON CONFLICT (name) DO UPDATE SET path = excluded.path, "
            "updated_at = excluded.updated_at",
            3);
  const std::size_t block = config.smoke ? 5 : 10;
  interleave(
      config.durable_sets / block, block,
      [&](std::size_t i) {
        const std::string name = "ours_" + std::to_string(i);
        registry.set_model_cache(name, "/models/" + name);
      },
      [&](std::size_t i) {
        const std::string name = "base_" + std::to_string(i);
        pg_sink = pg_sink + raw.run({name, "/models/" + name, int8(static_cast<std::int64_t>(i))});
      },
      f.ours, f.base);
  need(registry.list_cached_models().size() == 1 + 2 * (config.durable_sets / block) * block,
       "durable set: entries missing");
  f.note =
      "ours: one transaction with its history row; baseline: INSERT ... ON CONFLICT in "
      "autocommit, no history";
  return f;
}

Figure pg_open(const Config& config, const std::string& location) {
  Figure f;
  f.name = "open (PostgreSQL)";
  f.unit = "ms";
  f.scale = 1e-6;
  f.goal_value = 1.3;
  if (config.open_ours.empty()) {
    f.skipped = "bench_open_ours was not built";
    return f;
  }
  const std::string raw_program = TFIMM_BENCH_OPEN_PQ;
  Registry registry(location);
  std::vector<std::string> names, paths;
  seed(registry, 100, names, paths);  // also migrates: each process below only connects
  const std::map<std::string, std::string> env = {{"TFIMM_REGISTRY", location}};
  const auto argv = [&](bool ours, const std::string& name) {
    return ours ? std::vector<std::string>{config.open_ours, name}
                : std::vector<std::string>{raw_program, location, name};
  };
  for (const bool ours : {true, false}) {
    const auto r = run_child(argv(ours, names[0]), Output::Capture, config.root, env);
    need(r.exit_code == 0 && r.out == paths[0] + "\n",
         "open (PostgreSQL): " + argv(ours, names[0])[0] + " answered wrongly: " + r.out + r.err);
  }
  for (std::size_t rep = 0; rep < config.process_reps; ++rep) {
    const auto& name = names[(rep * 37) % names.size()];
    // Alternating which goes first, so that neither always finds the
    // server's caches warmed by the other.
    for (const bool ours : {rep % 2 == 0, rep % 2 != 0}) {
      const auto r = run_child(argv(ours, name), Output::Discard, config.root, env);
      need(r.exit_code == 0, "open (PostgreSQL): " + argv(ours, name)[0] + " failed for " + name);
      (ours ? f.ours : f.base).add(r.wall_ns);
    }
  }
  f.note =
      "whole process (spawn to exit): default registry via $TFIMM_REGISTRY (a postgresql:// URL) "
      "and one lookup, vs PQconnectdb and one SELECT; each connects anew";
  return f;
}

}  // namespace tfimm::bench
