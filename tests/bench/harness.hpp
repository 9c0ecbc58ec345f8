// The benchmark harness: per-operation samples, median and p99, real child
// processes timed with their peak memory, and the figure table.
//
// Every figure measures our code and its baseline in the same run, in
// alternating blocks, so that a noisy neighbour slows both alike.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace tfimm::bench {

// Nanoseconds on the monotonic clock.
inline std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Measurements of one side of a figure, in nanoseconds (or any one unit).
class Samples {
 public:
  void add(double value) { values_.push_back(value); }
  void add_all(const Samples& other);
  std::size_t size() const { return values_.size(); }
  bool empty() const { return values_.empty(); }
  // Nearest-rank percentile, q in [0, 1]; 0 when there are no samples.
  double percentile(double q) const;
  double median() const { return percentile(0.5); }
  double p99() const { return percentile(0.99); }
  double sum() const;

 private:
  std::vector<double> values_;
};

// Runs `ours` and `base` `rounds` times each in blocks of `block` calls,
// alternating which goes first, and records each call's duration. `ours`
// and `base` get the index of the call within the whole run, so both sides
// see the same sequence of inputs.
void interleave(std::size_t rounds, std::size_t block, const std::function<void(std::size_t)>& ours,
                const std::function<void(std::size_t)>& base, Samples& ours_ns, Samples& base_ns);

// A finished child process.
struct ChildResult {
  int exit_code = -1;  // -1 when killed by a signal
  int signal = 0;
  double wall_ns = 0;
  long max_rss_kib = 0;  // peak resident memory of this child (wait4)
  std::string out;       // stdout, when captured
  std::string err;       // stderr, when captured
};

// How a child's output is handled.
enum class Output { Discard, Capture };

// A started child process; `wait()` reaps it.
class Child {
 public:
  // Starts `argv` (argv[0] is a path) with the current environment plus
  // `env`; stdin is /dev/null. Throws std::runtime_error when it cannot start.
  Child(const std::vector<std::string>& argv, Output output, const std::string& scratch_dir,
        const std::map<std::string, std::string>& env = {});
  ~Child();
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ChildResult wait();

 private:
  int pid_ = -1;
  std::int64_t started_ns_ = 0;
  std::string out_path_;
  std::string err_path_;
};

// Runs one child to completion.
ChildResult run_child(const std::vector<std::string>& argv, Output output,
                      const std::string& scratch_dir,
                      const std::map<std::string, std::string>& env = {});

// -- the figure table ---------------------------------------------------------

enum class Goal { AtMost, AtLeast };

struct Figure {
  std::string name;     // "lookup hit"
  std::string unit;     // unit of the samples after scaling: "us" or "ms"
  double scale = 1e-3;  // multiply a sample by this to get `unit`
  Samples ours;
  Samples base;
  // ours/base of the medians unless set explicitly (contention: throughput).
  std::optional<double> ratio;
  Goal goal = Goal::AtMost;
  double goal_value = 1.0;
  bool extra_ok = true;                // the goal's other conditions (contention: 0 errors)
  std::string note;                    // one line shown under the table
  std::optional<std::string> skipped;  // why it was not measured

  double computed_ratio() const;
  bool met() const;
};

// Prints the table of figures and the notes below it.
void print_table(const std::vector<Figure>& figures);

}  // namespace tfimm::bench
