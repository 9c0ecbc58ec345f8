// libFuzzer target: parse_snapshot() on arbitrary export files.
//
// It must return or throw InvalidInput, nothing else. What it returns holds
// only valid, unique names and absolute, normal paths, and survives a
// to_json() / parse_snapshot() round trip unchanged.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>

#include "tfimm/errors.hpp"
#include "tfimm/names.hpp"
#include "tfimm/paths.hpp"
#include "tfimm/transfer.hpp"

namespace {

void require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "invariant broken: %s\n", what);
    std::abort();
  }
}

bool same(const tfimm::Snapshot& a, const tfimm::Snapshot& b) {
  if (a.cache_dir != b.cache_dir || a.models.size() != b.models.size()) return false;
  auto x = a.models;
  auto y = b.models;
  const auto by_name = [](const auto& l, const auto& r) { return l.name < r.name; };
  std::sort(x.begin(), x.end(), by_name);
  std::sort(y.begin(), y.end(), by_name);
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (x[i].name != y[i].name || x[i].path != y[i].path || x[i].locked != y[i].locked ||
        x[i].lock_reason != y[i].lock_reason) {
      return false;
    }
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  ::setenv("HOME", "/home/fuzz", 1);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  tfimm::Snapshot snap;
  try {
    snap = tfimm::parse_snapshot(text);
  } catch (const tfimm::InvalidInput&) {
    return 0;
  }
  std::set<std::string> names;
  for (const auto& m : snap.models) {
    require(!tfimm::name_problem(m.name).has_value(), "every parsed name is valid");
    require(names.insert(m.name).second, "parsed names are unique");
    require(!m.path.empty() && m.path.front() == '/', "parsed paths are absolute");
    require(tfimm::lexically_normal(m.path) == m.path, "parsed paths are normal");
  }
  if (snap.cache_dir) {
    require(tfimm::lexically_normal(*snap.cache_dir) == *snap.cache_dir, "cache_dir is normal");
  }
  tfimm::Snapshot back;
  try {
    back = tfimm::parse_snapshot(tfimm::to_json(snap));
  } catch (const tfimm::InvalidInput& e) {
    std::fprintf(stderr, "re-parse failed: %s\n", e.what());
    require(false, "an export of a parsed snapshot parses again");
  }
  require(same(snap, back), "to_json / parse_snapshot round-trips");
  return 0;
}
