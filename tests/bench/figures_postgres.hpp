// The figures of a registry on PostgreSQL: our Registry against raw libpq
// on the same server and schema, in the same run.
#pragma once

#include <string>

#include "figures.hpp"

namespace tfimm::bench {

// cached_model_path on `location` (a URL naming a fresh schema) against a
// raw prepared SELECT on the same server.
Figure pg_lookup_hit(const Config& config, const std::string& location);
// set_model_cache with its history row against a raw INSERT ... ON CONFLICT
// in autocommit.
Figure pg_durable_set(const Config& config, const std::string& location);
// A fresh process connecting and answering one lookup (bench_open_ours on
// $TFIMM_REGISTRY = `location`) against raw PQconnectdb and one SELECT in a
// fresh process (bench_open_pq).
Figure pg_open(const Config& config, const std::string& location);

}  // namespace tfimm::bench
