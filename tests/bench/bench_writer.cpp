// The "contention" figure: one real process doing COUNT durable
// set_model_cache calls on REGISTRY, for names PREFIX0 .. PREFIX<COUNT-1>.
// Prints each call's latency in nanoseconds, one per line, then
// "errors N" (calls that threw, e.g. RegistryBusy). Exits 0 unless it could
// not run at all.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include "tfimm/registry.hpp"

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: bench_writer REGISTRY PREFIX COUNT\n");
    return 2;
  }
  const std::string prefix = argv[2];
  const long count = std::strtol(argv[3], nullptr, 10);
  std::vector<long long> latencies;
  latencies.reserve(static_cast<std::size_t>(count));
  long errors = 0;
  try {
    tfimm::Registry registry(argv[1]);
    for (long i = 0; i < count; ++i) {
      const std::string name = prefix + std::to_string(i);
      const auto start = std::chrono::steady_clock::now();
      try {
        registry.set_model_cache(name, "/models/" + name);
      } catch (const tfimm::Error& e) {
        ++errors;
        std::fprintf(stderr, "bench_writer: %s\n", e.what());
      }
      latencies.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(
                              std::chrono::steady_clock::now() - start)
                              .count());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_writer: %s\n", e.what());
    return 3;
  }
  for (const long long ns : latencies) std::printf("%lld\n", ns);
  std::printf("errors %ld\n", errors);
  return 0;
}
