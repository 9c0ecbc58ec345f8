#include "harness.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <numeric>
#include <sstream>
#include <stdexcept>

extern char** environ;

namespace tfimm::bench {

void Samples::add_all(const Samples& other) {
  values_.insert(values_.end(), other.values_.begin(), other.values_.end());
}

double Samples::percentile(double q) const {
  if (values_.empty()) return 0;
  std::vector<double> sorted = values_;
  std::sort(sorted.begin(), sorted.end());
  const double rank = std::ceil(q * static_cast<double>(sorted.size()));
  const auto index = static_cast<std::size_t>(std::max(1.0, rank)) - 1;
  return sorted[std::min(index, sorted.size() - 1)];
}

double Samples::sum() const { return std::accumulate(values_.begin(), values_.end(), 0.0); }

void interleave(std::size_t rounds, std::size_t block, const std::function<void(std::size_t)>& ours,
                const std::function<void(std::size_t)>& base, Samples& ours_ns, Samples& base_ns) {
  const auto run = [&](const std::function<void(std::size_t)>& op, std::size_t first,
                       Samples& out) {
    for (std::size_t i = first; i < first + block; ++i) {
      const auto start = now_ns();
      op(i);
      out.add(static_cast<double>(now_ns() - start));
    }
  };
  for (std::size_t r = 0; r < rounds; ++r) {
    const std::size_t first = r * block;
    if (r % 2 == 0) {
      run(ours, first, ours_ns);
      run(base, first, base_ns);
    } else {
      run(base, first, base_ns);
      run(ours, first, ours_ns);
    }
  }
}

// -- child processes ----------------------------------------------------------

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

int unique_counter() {
  static int counter = 0;
  return ++counter;
}

}  // namespace

Child::Child(const std::vector<std::string>& argv, Output output, const std::string& scratch_dir,
             const std::map<std::string, std::string>& env) {
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string kv(*e);
    const auto eq = kv.find('=');
    if (eq != std::string::npos && env.count(kv.substr(0, eq)) != 0) continue;
    env_strings.push_back(kv);
  }
  for (const auto& [name, value] : env) env_strings.push_back(name + "=" + value);
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = argv;
  std::vector<char*> argp;
  for (auto& s : args) argp.push_back(s.data());
  argp.push_back(nullptr);

  if (output == Output::Capture) {
    const std::string stem = scratch_dir + "/child-" + std::to_string(::getpid()) + "-" +
                             std::to_string(unique_counter());
    out_path_ = stem + ".out";
    err_path_ = stem + ".err";
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  const char* out = out_path_.empty() ? "/dev/null" : out_path_.c_str();
  const char* err = err_path_.empty() ? "/dev/null" : err_path_.c_str();
  posix_spawn_file_actions_addopen(&actions, 1, out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&actions, 2, err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  started_ns_ = now_ns();
  const int rc = ::posix_spawn(&pid_, argp[0], &actions, nullptr, argp.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    pid_ = -1;
    throw std::runtime_error("cannot start " + argv[0] + ": " + std::strerror(rc));
  }
}

Child::~Child() {
  if (pid_ > 0) {
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
  if (!out_path_.empty()) ::unlink(out_path_.c_str());
  if (!err_path_.empty()) ::unlink(err_path_.c_str());
}

ChildResult Child::wait() {
  ChildResult result;
  int status = 0;
  rusage usage{};
  pid_t got = -1;
  do {
    got = ::wait4(pid_, &status, 0, &usage);
  } while (got < 0 && errno == EINTR);
  result.wall_ns = static_cast<double>(now_ns() - started_ns_);
  pid_ = -1;
  if (got < 0) throw std::runtime_error(std::string("wait4 failed: ") + std::strerror(errno));
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) result.signal = WTERMSIG(status);
  result.max_rss_kib = usage.ru_maxrss;
  if (!out_path_.empty()) result.out = slurp(out_path_);
  if (!err_path_.empty()) result.err = slurp(err_path_);
  return result;
}

ChildResult run_child(const std::vector<std::string>& argv, Output output,
                      const std::string& scratch_dir,
                      const std::map<std::string, std::string>& env) {
  Child child(argv, output, scratch_dir, env);
  return child.wait();
}

// -- the figure table ---------------------------------------------------------

double Figure::computed_ratio() const {
  if (ratio) return *ratio;
  const double b = base.median();
  return b > 0 ? ours.median() / b : 0;
}

bool Figure::met() const {
  const double r = computed_ratio();
  if (!extra_ok) return false;
  return goal == Goal::AtMost ? r <= goal_value : r >= goal_value;
}

namespace {

std::string fixed(double value, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, value);
  return buf;
}

// Three significant digits, enough for noisy timings.
std::string sig3(double value) {
  const double a = std::fabs(value);
  if (a >= 100) return fixed(value, 0);
  if (a >= 10) return fixed(value, 1);
  if (a >= 1) return fixed(value, 2);
  return fixed(value, 3);
}

std::string pad(const std::string& text, std::size_t width, bool left) {
  if (text.size() >= width) return text;
  const std::string fill(width - text.size(), ' ');
  return left ? text + fill : fill + text;
}

}  // namespace

void print_table(const std::vector<Figure>& figures) {
  const std::vector<std::pair<std::string, std::size_t>> columns = {
      {"figure", 18},   {"unit", 5},  {"ours p50", 10}, {"ours p99", 10}, {"base p50", 10},
      {"base p99", 10}, {"ratio", 7}, {"goal", 8},      {"met", 4}};
  std::string header, rule;
  for (std::size_t i = 0; i < columns.size(); ++i) {
    header += pad(columns[i].first, columns[i].second, i < 2) + " ";
    rule += std::string(columns[i].second, '-') + " ";
  }
  std::cout << header << "\n" << rule << "\n";
  for (const auto& f : figures) {
    std::cout << pad(f.name, 18, true) << " ";
    if (f.skipped) {
      std::cout << "skipped: " << *f.skipped << "\n";
      continue;
    }
    const auto cell = [&](double ns) { return pad(sig3(ns * f.scale), 10, false) + " "; };
    std::cout << pad(f.unit, 5, true) << " " << cell(f.ours.median()) << cell(f.ours.p99())
              << cell(f.base.median()) << cell(f.base.p99())
              << pad(fixed(f.computed_ratio(), 2), 7, false) << " "
              << pad((f.goal == Goal::AtMost ? "<= " : ">= ") + fixed(f.goal_value, 1), 8, false)
              << " " << pad(f.met() ? "yes" : "NO", 4, false) << "\n";
  }
  bool any_note = false;
  for (const auto& f : figures) {
    if (f.note.empty()) continue;
    if (!any_note) std::cout << "\n";
    any_note = true;
    std::cout << "  " << f.name << ": " << f.note << "\n";
  }
  std::cout.flush();
}

}  // namespace tfimm::bench
