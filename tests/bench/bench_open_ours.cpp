// The "open" figure, our side: a fresh process opens the default registry
// ($TFIMM_REGISTRY) and answers one lookup, as a Python process importing
// tfimm would. Prints the path; exits 0 when found, 1 when not, 3 on an
// error.
#include <cstdio>
#include <exception>

#include "tfimm/cache.hpp"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: bench_open_ours NAME  (registry from $TFIMM_REGISTRY)\n");
    return 2;
  }
  try {
    const auto path = tfimm::cached_model_path(argv[1]);
    if (!path) return 1;
    std::printf("%s\n", path->c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_open_ours: %s\n", e.what());
    return 3;
  }
}
