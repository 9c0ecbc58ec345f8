// Shared by the reliability tests: where the worker and the tool are, how
// many iterations to run (CI or soak), and how measured figures are reported.
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "child.hpp"

namespace tfimm::reliability {

// The helper program (worker_main.cpp) and the admin tool; the tool is
// empty when this build has none.
inline const std::string kWorker = RELIABILITY_WORKER;
inline const std::string kTool = TFIMM_TOOL;

// Exit codes of reliability_worker (see worker_main.cpp).
enum WorkerExit : int {
  kWorkerOk = 0,
  kWorkerFailed = 1,  // a check inside the worker failed
  kWorkerError = 4,   // an operation threw (stdout: "error <Kind>: <message>")
  kWorkerSkip = 77,   // cannot run here (no privileges to drop, no mount)
};

// Whether this build runs under sanitizers (-DTFIMM_SANITIZE=...), which
// make every process several times slower.
#ifdef RELIABILITY_SANITIZED
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif

// TFIMM_SOAK=1 (or any value but 0) runs the long version of every test.
inline bool soak() {
  const char* value = std::getenv("TFIMM_SOAK");
  return value != nullptr && *value != '\0' && std::string(value) != "0";
}
inline int scaled(int ci, int soak_count) { return soak() ? soak_count : ci; }

// A measured figure: printed on stderr, and appended to the file named by
// $TFIMM_RELIABILITY_REPORT so that CI can show every figure at the end.
inline void figure(const std::string& text) {
  std::fprintf(stderr, "figure: %s\n", text.c_str());
  if (const char* file = std::getenv("TFIMM_RELIABILITY_REPORT"); file && *file) {
    std::ofstream(file, std::ios::app) << text << '\n';
  }
}

// Runs the worker with `args` and waits for it.
inline Exit run_worker(const std::vector<std::string>& args, const Env& env = {},
                       milliseconds timeout = milliseconds(120000)) {
  std::vector<std::string> argv{kWorker};
  argv.insert(argv.end(), args.begin(), args.end());
  Child child(argv, env);
  return child.wait(timeout);
}

inline Child start_worker(const std::vector<std::string>& args, const Env& env = {}) {
  std::vector<std::string> argv{kWorker};
  argv.insert(argv.end(), args.begin(), args.end());
  return Child(argv, env);
}

inline double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

inline bool file_exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

// "0644"-style permission bits of `path`, or "absent".
inline std::string mode_of(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return "absent";
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", st.st_mode & 07777);
  return buf;
}

}  // namespace tfimm::reliability
