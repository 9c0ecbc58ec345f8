// Mounts tests/support/disagreeing_fs.cpp (a FUSE file system whose listings
// disagree with its lookups) for one test, and always unmounts it again.
//
// Needs TFIMM_DISAGREEING_FS, the program's path ("" when the build found no
// libfuse3). Where FUSE cannot be used (no program, no /dev/fuse, mounting
// not permitted) usable() warns with the reason and the test returns early:
// Catch2 v2 cannot mark a test skipped, so such tests say "(skipped without
// FUSE)" in their names and carry the tag [fuse].
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "testutil.hpp"

namespace tfimm::test {

class DisagreeingMount {
 public:
  struct Options {
    std::string listing = "exact";                          // exact, swapcase or none
    std::vector<std::string> exists;                        // directories, relative to the root
    std::vector<std::pair<std::string, std::string>> fail;  // path, "EIO", ...
    int delay_ms = 0;
  };

  // Mounts on `mountpoint` (created if needed) and waits until it is there.
  DisagreeingMount(std::string mountpoint, const Options& options)
      : mountpoint_(std::move(mountpoint)), log_(mountpoint_ + ".log") {
    const std::string program = TFIMM_DISAGREEING_FS;
    if (program.empty()) {
      why_ = "this build found no libfuse3 (install libfuse3-dev and fuse3, then re-run cmake)";
      denied_ = true;
      return;
    }
    if (::access("/dev/fuse", R_OK | W_OK) != 0) {
      why_ = "/dev/fuse is not available here";
      denied_ = true;
      return;
    }
    make_dirs(mountpoint_);
    std::vector<std::string> argv{program, "--listing", options.listing};
    for (const auto& path : options.exists) argv.insert(argv.end(), {"--exists", path});
    for (const auto& [path, err] : options.fail)
      argv.insert(argv.end(), {"--fail", path + "=" + err});
    if (options.delay_ms > 0)
      argv.insert(argv.end(), {"--delay-ms", std::to_string(options.delay_ms)});
    argv.push_back(mountpoint_);
    ExecArgs exec(argv, {});
    const int log_fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    REQUIRE(log_fd >= 0);
    pid_ = ::fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      // The file system goes (and unmounts itself) if this test process dies.
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      ::dup2(log_fd, STDOUT_FILENO);
      ::dup2(log_fd, STDERR_FILENO);
      ::execve(exec.argv()[0], exec.argv(), exec.envp());
      ::_exit(127);
    }
    ::close(log_fd);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      if (is_fuse_mount()) {
        mounted_ = true;
        return;
      }
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        const std::string said = read_log();
        // Refused by the system, not broken: a container without the right
        // to mount, or a kernel without FUSE.
        denied_ = said.find("Operation not permitted") != std::string::npos ||
                  said.find("Permission denied") != std::string::npos ||
                  said.find("device not found") != std::string::npos;
        why_ = "mounting the FUSE file system failed: " + said;
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    why_ = "the FUSE file system did not appear within 10 s: " + read_log();
  }

  ~DisagreeingMount() {
    if (mounted_ && ::umount2(mountpoint_.c_str(), 0) != 0 &&
        ::umount2(mountpoint_.c_str(), MNT_DETACH) != 0) {
      // Not root: the FUSE helper may unmount what this user mounted.
      run_process({"fusermount3", "-u", "-z", mountpoint_});
    }
    if (pid_ > 0) {
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
      int status = 0;
      while (::waitpid(pid_, &status, WNOHANG) == 0) {
        if (std::chrono::steady_clock::now() > deadline) {
          ::kill(pid_, SIGKILL);
          ::waitpid(pid_, &status, 0);
          break;
        }
        ::kill(pid_, SIGTERM);
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }
  }

  DisagreeingMount(const DisagreeingMount&) = delete;
  DisagreeingMount& operator=(const DisagreeingMount&) = delete;

  const std::string& path() const { return mountpoint_; }
  std::string operator/(const std::string& child) const { return mountpoint_ + "/" + child; }
  bool mounted() const { return mounted_; }

  // With Options::delay_ms: the most delayed requests in flight at once
  // since the last call (0: none).
  int max_in_flight() {
    const std::string log = read_log();
    int most = 0;
    for (std::size_t at = log.find("in flight: ", seen_); at != std::string::npos;
         at = log.find("in flight: ", at + 1)) {
      most = std::max(most, std::atoi(log.c_str() + at + 11));
    }
    seen_ = log.size();
    return most;
  }

  // True when mounted. Otherwise warns why and returns false, so the test
  // can return; a mount that failed for any reason but a missing or
  // forbidden FUSE fails the test.
  bool usable() const {
    if (mounted_) return true;
    if (!denied_) FAIL(why_);
    WARN("SKIPPED: " << why_);
    return false;
  }

 private:
  bool is_fuse_mount() const {
    struct statfs sf {};
    return ::statfs(mountpoint_.c_str(), &sf) == 0 &&
           (static_cast<unsigned long>(sf.f_type) & 0xFFFFFFFFul) == 0x65735546ul;
  }

  std::string read_log() const {
    std::ifstream in(log_);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

  std::string mountpoint_;
  std::string log_;
  pid_t pid_ = -1;
  bool mounted_ = false;
  bool denied_ = false;   // FUSE is missing or forbidden here: skip, do not fail
  std::size_t seen_ = 0;  // of the log, by max_in_flight()
  std::string why_;
};

}  // namespace tfimm::test
