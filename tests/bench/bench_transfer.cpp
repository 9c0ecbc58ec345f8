// tfimm_bench_transfer: time and peak memory of `tfimm-cache export` and
// `import` of N entries, ours against a baseline tfimm-cache (today's
// release, given on the command line), in the same run: alternating runs
// of each, medians, their ratio. Every run is a fresh process, measured by
// wait4 (wall time, ru_maxrss).
//
//   tfimm_bench_transfer --entries 1000000 --baseline /path/to/old/tfimm-cache [--rounds 3]
//
// The baseline exports and imports its own format (version 1); ours, the
// version-2 file of the same registry. Imports go into a registry that does
// not exist yet (ours then reads the file twice: see import_json) and into
// an existing, empty one.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

namespace {

struct Run {
  double seconds = 0;
  double peak_mb = 0;
};

Run run(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  std::vector<std::string> copy = args;
  for (auto& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  const auto start = std::chrono::steady_clock::now();
  const pid_t pid = ::fork();
  if (pid < 0) std::exit(2);
  if (pid == 0) {
    if (std::freopen("/dev/null", "w", stdout) == nullptr) ::_exit(126);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  int status = 0;
  struct rusage usage {};
  ::wait4(pid, &status, 0, &usage);
  const auto end = std::chrono::steady_clock::now();
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::fprintf(stderr, "failed: %s %s\n", args[0].c_str(), args.back().c_str());
    std::exit(2);
  }
  return {std::chrono::duration<double>(end - start).count(),
          static_cast<double>(usage.ru_maxrss) / 1024.0};
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void remove_registry(const std::string& db) {
  for (const char* suffix : {"", "-wal", "-shm"}) ::unlink((db + suffix).c_str());
}

}  // namespace

int main(int argc, char** argv) {
  long entries = 100000;
  int rounds = 3;
  std::string baseline;
  const std::string ours = TFIMM_BENCH_TOOL;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string opt = argv[i];
    if (opt == "--entries") entries = std::atol(argv[i + 1]);
    if (opt == "--rounds") rounds = std::atoi(argv[i + 1]);
    if (opt == "--baseline") baseline = argv[i + 1];
  }
  if (baseline.empty()) {
    std::fprintf(
        stderr,
        "usage: tfimm_bench_transfer --entries N --baseline OLD_TFIMM_CACHE [--rounds R]\n");
    return 2;
  }
  char dir_template[] = "/tmp/tfimm-bench-transfer-XXXXXX";
  const std::string dir = ::mkdtemp(dir_template);
  const std::string seed = dir + "/seed.json";
  {
    std::ofstream out(seed);
    out << R"({"format": "tfimm-cache-export", "version": 1, "cache_dir": null, "models": [)";
    for (long i = 0; i < entries; ++i) {
      out << (i == 0 ? "" : ",\n") << R"({"name": "model_)" << i
          << R"(", "path": "/data/models/model_)" << i << R"("})";
    }
    out << "]}\n";
  }
  const std::string our_db = dir + "/ours.db", base_db = dir + "/base.db";
  run({ours, "--registry", our_db, "import", seed});
  run({baseline, "--registry", base_db, "import", seed});
  const std::string our_file = dir + "/ours.json", base_file = dir + "/base.json";
  const std::string target = dir + "/target.db";
  std::vector<double> ex_t[2], ex_m[2], im_t[2], im_m[2], ie_t[2], ie_m[2];
  for (int r = 0; r < rounds; ++r) {
    // Alternating, so that a slower moment of the machine hits both.
    for (int who = 0; who < 2; ++who) {
      const std::string& tool = who == 0 ? ours : baseline;
      const std::string& db = who == 0 ? our_db : base_db;
      const std::string& file = who == 0 ? our_file : base_file;
      Run e = run({tool, "--registry", db, "export", file});
      ex_t[who].push_back(e.seconds);
      ex_m[who].push_back(e.peak_mb);
      remove_registry(target);
      Run i = run({tool, "--registry", target, "import", file});
      im_t[who].push_back(i.seconds);
      im_m[who].push_back(i.peak_mb);
      // Into a registry that exists (empty): ours reads the file once.
      remove_registry(target);
      run({tool, "--registry", target, "migrate"});
      Run x = run({tool, "--registry", target, "import", file});
      ie_t[who].push_back(x.seconds);
      ie_m[who].push_back(x.peak_mb);
    }
  }
  std::printf("%ld entries, %d rounds, medians (ours / baseline = ratio)\n", entries, rounds);
  std::printf("export time  %8.2f s  / %8.2f s  = %.2f\n", median(ex_t[0]), median(ex_t[1]),
              median(ex_t[0]) / median(ex_t[1]));
  std::printf("export peak  %8.1f MB / %8.1f MB = %.3f\n", median(ex_m[0]), median(ex_m[1]),
              median(ex_m[0]) / median(ex_m[1]));
  std::printf("import time  %8.2f s  / %8.2f s  = %.2f\n", median(im_t[0]), median(im_t[1]),
              median(im_t[0]) / median(im_t[1]));
  std::printf("import peak  %8.1f MB / %8.1f MB = %.3f\n", median(im_m[0]), median(im_m[1]),
              median(im_m[0]) / median(im_m[1]));
  std::printf(
      "import into an existing registry: time %8.2f s / %8.2f s = %.2f, peak %.1f MB / "
      "%.1f MB = %.3f\n",
      median(ie_t[0]), median(ie_t[1]), median(ie_t[0]) / median(ie_t[1]), median(ie_m[0]),
      median(ie_m[1]), median(ie_m[0]) / median(ie_m[1]));
  remove_registry(our_db);
  remove_registry(base_db);
  remove_registry(target);
  for (const auto& f : {seed, our_file, base_file}) ::unlink(f.c_str());
  ::rmdir(dir.c_str());
  return 0;
}
