// libFuzzer target: arbitrary bytes as a registry file.
//
// The input is written to a private file, which is then opened as a registry,
// read, diagnosed and written. Every failure must be a tfimm::Error kind: no
// crash, no other exception, no sanitizer report.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "tfimm/errors.hpp"
#include "tfimm/registry.hpp"

namespace {

std::string dir;

void remove_files(const std::string& reg) {
  for (const char* suffix : {"", "-wal", "-shm", "-journal"}) {
    ::unlink((reg + suffix).c_str());
  }
}

void cleanup() {
  remove_files(dir + "/registry.db");
  ::rmdir(dir.c_str());
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  char tmpl[] = "/tmp/tfimm-fuzz-open-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) std::abort();
  dir = tmpl;
  std::atexit(cleanup);
  ::setenv("HOME", dir.c_str(), 1);
  ::unsetenv("TFIMM_NETWORK_FS");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string reg = dir + "/registry.db";
  remove_files(reg);
  {
    std::ofstream out(reg, std::ios::binary);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  try {
    tfimm::Registry registry(reg, tfimm::RegistryOptions{std::chrono::milliseconds(100)});
    registry.entries();
    registry.history({}, 5);
    registry.snapshot();
    registry.diagnose();
    registry.set_model_cache("fuzz", "/fuzz");
    registry.clear_model_cache("fuzz");
    registry.entries();
  } catch (const tfimm::Error&) {
    // Refusing the file is fine, with one of the library's error kinds.
  }
  try {
    tfimm::migration_status(reg);
  } catch (const tfimm::Error&) {
  }
  remove_files(reg);
  return 0;
}
