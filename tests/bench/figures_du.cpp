// The du figure: `tfimm-cache du` against GNU `du -s` over the same paths,
// both as whole processes, in the same run.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "figures.hpp"
#include "tfimm/registry.hpp"

namespace tfimm::bench {
namespace {

void make_dir(const std::string& path) {
  if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
    throw std::runtime_error("cannot create " + path + ": " + std::strerror(errno));
  }
}

void make_file(const std::string& path, std::size_t size) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::runtime_error("cannot create " + path + ": " + std::strerror(errno));
  const std::string content(size, 'w');
  const bool ok = ::write(fd, content.data(), size) == static_cast<ssize_t>(size);
  ::close(fd);
  if (!ok) throw std::runtime_error("cannot write " + path);
}

// The number after `(` and before ` bytes)` in tfimm-cache du's total line.
std::string total_of_tool(const std::string& out) {
  const auto end = out.rfind(" bytes)");
  const auto start = out.rfind('(', end);
  if (end == std::string::npos || start == std::string::npos) return {};
  return out.substr(start + 1, end - start - 1);
}

// The number on GNU du's last line (`N\ttotal` with -c).
std::string total_of_du(const std::string& out) {
  const auto line = out.rfind('\n', out.size() - 2);
  const std::string last = out.substr(line == std::string::npos ? 0 : line + 1);
  return last.substr(0, last.find('\t'));
}

}  // namespace

DuData make_du_data(const Config& config) {
  DuData data;
  data.registry = config.root + "/du.db";
  const std::string base = config.root + "/du";
  make_dir(base);
  Snapshot snapshot;
  for (std::size_t m = 0; m < config.du_models; ++m) {
    const std::string model = base + "/model_" + std::to_string(m);
    make_dir(model);
    for (std::size_t d = 0; d < config.du_dirs; ++d) {
      const std::string dir = model + "/part_" + std::to_string(d);
      make_dir(dir);
      for (std::size_t f = 0; f < config.du_files; ++f) {
        make_file(dir + "/shard_" + std::to_string(f), (m * 131 + d * 17 + f * 7) % 9000);
      }
    }
    data.paths.push_back(model);
    snapshot.models.push_back({"model_" + std::to_string(m), model, false, ""});
  }
  Registry(data.registry).import(snapshot);
  return data;
}

Figure du_walk(const Config& config, const DuData& data) {
  Figure f;
  f.name = "du: tfimm-cache du";
  f.unit = "ms";
  f.scale = 1e-6;
  f.goal_value = 1.0;
  if (config.tool.empty()) {
    f.skipped = config.tool_missing;
    return f;
  }
  if (config.du.empty()) {
    f.skipped = "du was not found in PATH (Debian package coreutils)";
    return f;
  }
  // The cache directory is empty: only the entries are walked.
  const std::string cache = config.root + "/du-empty-cache";
  make_dir(cache);
  const std::vector<std::string> ours{config.tool,   "--registry", data.registry,
                                      "--cache-dir", cache,        "du"};
  std::vector<std::string> base{config.du, "-s", "--block-size=1"};
  base.insert(base.end(), data.paths.begin(), data.paths.end());
  {
    const auto r = run_child(ours, Output::Capture, config.root);
    std::vector<std::string> with_total{config.du, "-sc", "--block-size=1"};
    with_total.insert(with_total.end(), data.paths.begin(), data.paths.end());
    const auto expected = run_child(with_total, Output::Capture, config.root);
    if (r.exit_code != 0 || expected.exit_code != 0 ||
        total_of_tool(r.out) != total_of_du(expected.out)) {
      throw std::runtime_error("du: tfimm-cache du's total (" + total_of_tool(r.out) +
                               ") differs from du -sc's (" + total_of_du(expected.out) +
                               "): " + r.err + expected.err);
    }
  }
  for (std::size_t rep = 0; rep < config.du_reps; ++rep) {
    const auto run = [&](const std::vector<std::string>& argv, Samples& samples) {
      const auto r = run_child(argv, Output::Discard, config.root);
      if (r.exit_code != 0) throw std::runtime_error("du: " + argv[0] + " failed");
      samples.add(r.wall_ns);
    };
    if (rep % 2 == 0) {
      run(ours, f.ours);
      run(base, f.base);
    } else {
      run(base, f.base);
      run(ours, f.ours);
    }
  }
  std::size_t inodes = data.paths.size() * (1 + config.du_dirs * (1 + config.du_files));
  f.note = std::to_string(data.paths.size()) + " models, " + std::to_string(inodes) +
           " inodes, warm cache, default --jobs / `du -s` over the same paths; " +
           std::to_string(config.du_reps) + " runs per side";
  return f;
}

}  // namespace tfimm::bench
