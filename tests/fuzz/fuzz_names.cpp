// libFuzzer target: model names and path normalisation.
//
// Invariants checked on every input:
// - check_name() throws InvalidName exactly when name_problem() gives a reason;
// - an accepted name joined to a cache directory stays one component below it,
//   also after lexical normalisation: it can never point outside;
// - lexically_normal() is idempotent, and its result has no empty, "." or
//   (for absolute paths) ".." components;
// - normalize_path() returns an absolute, lexically normal path or throws
//   InvalidPath, nothing else.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "tfimm/errors.hpp"
#include "tfimm/names.hpp"
#include "tfimm/paths.hpp"

namespace {

void require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "invariant broken: %s\n", what);
    std::abort();
  }
}

bool has_bad_component(const std::string& path, bool absolute) {
  std::size_t start = absolute ? 1 : 0;
  if (path == "/" || path == ".") return false;
  bool leading = true;
  while (start <= path.size()) {
    std::size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    const std::string_view part(path.data() + start, end - start);
    if (part.empty() || part == ".") return true;
    if (part == "..") {
      if (absolute || !leading) return true;
    } else {
      leading = false;
    }
    start = end + 1;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);

  // Names.
  const auto problem = tfimm::name_problem(input);
  bool threw = false;
  try {
    tfimm::check_name(input);
  } catch (const tfimm::InvalidName&) {
    threw = true;
  }
  require(threw == problem.has_value(), "check_name agrees with name_problem");
  if (!problem) {
    for (const std::string dir : {"/cache/tfimm", "/c", "/home/user/.cache/tfimm"}) {
      const std::string joined = tfimm::join_path(dir, input);
      const std::string normal = tfimm::lexically_normal(joined);
      require(normal == joined, "an accepted name needs no normalisation");
      require(normal.size() > dir.size() + 1 && normal.compare(0, dir.size() + 1, dir + "/") == 0,
              "an accepted name stays below the cache directory");
      require(normal.find('/', dir.size() + 1) == std::string::npos,
              "an accepted name is one path component");
    }
  }

  // Lexical normalisation.
  const std::string normal = tfimm::lexically_normal(input);
  require(tfimm::lexically_normal(normal) == normal, "lexically_normal is idempotent");
  const bool absolute = !input.empty() && input.front() == '/';
  require(absolute == (normal.front() == '/'), "lexically_normal keeps absoluteness");
  require(!has_bad_component(normal, absolute), "lexically_normal leaves no bad component");

  // Full normalisation (may read $HOME and the password database).
  try {
    const std::string path = tfimm::normalize_path(input);
    require(!path.empty() && path.front() == '/', "normalize_path is absolute");
    require(tfimm::lexically_normal(path) == path, "normalize_path is lexically normal");
  } catch (const tfimm::InvalidPath&) {
  }
  return 0;
}
