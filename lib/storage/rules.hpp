// The registry's rules for changing rows, written once above every backend:
// a backend stores exactly what these functions give it.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "storage/store.hpp"
#include "storage/write_batch.hpp"

namespace tfimm::detail {

// Registers (or re-registers) `name` at `path`: a history row records the
// path it replaced; created_at and the lock stay; a re-registered entry is
// no longer missing; it is local to this host when its parent directory is
// on a local file system here (Entry::local_to).
void set_model(Writer& w, const std::string& name, const std::string& path, Timestamp now);

// What Entry::local_to a path registered now by this process gets: this
// host's name when the path's parent directory is on a local file system
// here, else "".
std::string local_to_of(const std::string& path);

// set_model() for every set of `batch`, in name order, in a few set-based
// statements. A batch names each name once.
void write_batch(Writer& w, const WriteBatch& batch, Timestamp now);

// set_model() for many names at once (an import): `changes` give each
// old path as the caller read it in this transaction; their host_local is
// decided here.
void set_models(Writer& w, const std::string& action, const std::vector<PathChange>& changes,
                Timestamp now);

// Records that the path of `seen` is missing since `now`, unless it was
// recorded missing earlier: the first time it was seen missing wins. Left
// alone when the entry changed since `seen` was read.
void mark_missing(Writer& w, const Entry& seen, Timestamp now);

// The path of `seen` was found again: it is no longer missing.
void mark_found(Writer& w, const Entry& seen);

}  // namespace tfimm::detail
