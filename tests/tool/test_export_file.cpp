// `export FILE` writes the file without destroying what FILE is: symlinks,
// modes, owners, FIFOs and devices survive; what cannot be written is
// refused with nothing changed.
#include <fcntl.h>
#include <pty.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <map>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "tool_test.hpp"

using tfimm::test::exists;
using tfimm::test::read_file;
using tfimm::test::write_file;
using tfimm::tooltest::require_error;
using tfimm::tooltest::Tool;

namespace {

struct stat stat_of(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) throw std::runtime_error("cannot lstat " + path);
  return st;
}

std::string link_text(const std::string& path) {
  char buf[4096];
  const ssize_t n = ::readlink(path.c_str(), buf, sizeof buf);
  if (n < 0) throw std::runtime_error("cannot readlink " + path);
  return std::string(buf, static_cast<std::size_t>(n));
}

// The names of the files in `dir`, to see that no temporary file is left.
std::vector<std::string> entries(const std::string& dir) {
  std::vector<std::string> names;
  auto r = tfimm::test::run_process({"ls", "-A", dir});
  for (const auto& line : tfimm::tooltest::lines(r.out)) names.push_back(line);
  return names;
}

// run_as(): the tool cannot be run as that user, because a directory above
// the build (a private temporary directory, a home directory) shuts it out.
constexpr int kCannotReachTool = 125;

// Runs the tool as user `uid` (group `uid`): its exit code and stderr.
std::pair<int, std::string> run_as(uid_t uid, const std::vector<std::string>& args) {
  int err_pipe[2];
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  std::vector<std::string> argv{TFIMM_TOOL};
  argv.insert(argv.end(), args.begin(), args.end());
  tfimm::test::ExecArgs exec_args(argv, {});
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    ::dup2(err_pipe[1], 2);
    const int null = ::open("/dev/null", O_RDWR);
    ::dup2(null, 0);
    ::dup2(null, 1);
    if (::setgid(uid) != 0 || ::setuid(uid) != 0) ::_exit(126);
    ::execve(exec_args.argv()[0], exec_args.argv(), exec_args.envp());
    ::_exit(errno == EACCES ? kCannotReachTool : 127);
  }
  ::close(err_pipe[1]);
  std::string err;
  char buf[4096];
  ssize_t n = 0;
  while ((n = ::read(err_pipe[0], buf, sizeof buf)) > 0)
    err.append(buf, static_cast<std::size_t>(n));
  ::close(err_pipe[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, err};
}

// Lets another user read and write `registry` and its -wal and -shm files.
void open_to_all(const std::string& registry) {
  for (const char* suffix : {"", "-wal", "-shm"}) {
    const std::string file = registry + suffix;
    if (exists(file)) REQUIRE(::chmod(file.c_str(), 0666) == 0);
  }
}

}  // namespace

TEST_CASE("export through a symlink writes the link's target and keeps the link",
          "[export][file][conformance]") {
  Tool tool;
  tool.ok({"set", "resnet18", "/data/resnet18"});
  const std::string expected = tool.snapshot();
  tool.make_dir("backups/real");
  const std::string target = tool.path("backups/real/registry.json");
  write_file(target, "old backup\n");

  SECTION("an absolute symlink") {
    const std::string link = tool.path("backup.json");
    REQUIRE(::symlink(target.c_str(), link.c_str()) == 0);
    tool.ok({"export", link});
    CHECK(S_ISLNK(stat_of(link).st_mode));
    CHECK(link_text(link) == target);
    CHECK(read_file(target) == expected);
  }
  SECTION("a chain of relative symlinks") {
    // backup.json -> backups/latest.json -> real/registry.json
    REQUIRE(::symlink("real/registry.json", tool.path("backups/latest.json").c_str()) == 0);
    REQUIRE(::symlink("backups/latest.json", tool.path("backup.json").c_str()) == 0);
    tool.ok({"export", tool.path("backup.json")});
    CHECK(link_text(tool.path("backup.json")) == "backups/latest.json");
    CHECK(link_text(tool.path("backups/latest.json")) == "real/registry.json");
    CHECK(read_file(target) == expected);
    CHECK(entries(tool.path("backups/real")) == std::vector<std::string>{"registry.json"});
  }
}

TEST_CASE("export over an existing file keeps its mode, owner and group", "[export][file]") {
  Tool tool;
  tool.ok({"set", "resnet18", "/data/resnet18"});
  const std::string file = tool.path("backup.json");
  write_file(file, "old\n");

  SECTION("a 0600 file stays 0600") {
    REQUIRE(::chmod(file.c_str(), 0600) == 0);
    tool.ok({"export", file});
    CHECK((stat_of(file).st_mode & 07777) == 0600);
  }
  SECTION("a 0640 file owned by another user and group keeps them") {
    REQUIRE(::geteuid() == 0);  // the suite runs as root, which can give files away
    REQUIRE(::chown(file.c_str(), 65534, 65533) == 0);
    REQUIRE(::chmod(file.c_str(), 0640) == 0);
    tool.ok({"export", file});
    const struct stat st = stat_of(file);
    CHECK(st.st_uid == 65534);
    CHECK(st.st_gid == 65533);
    CHECK((st.st_mode & 07777) == 0640);
  }
  CHECK(read_file(file) == tool.snapshot());
}

TEST_CASE("export to a file owned by another user that this user cannot keep is refused",
          "[export][file]") {
  Tool tool;
  tool.ok({"set", "resnet18", "/data/resnet18"});
  REQUIRE(::chmod(tool.path("").c_str(), 0777) == 0);
  const std::string file = tool.path("backup.json");
  write_file(file, "old\n");
  REQUIRE(::chmod(file.c_str(), 0666) == 0);  // writable by all, owned by root
  REQUIRE(::chmod(tool.path("state").c_str(), 0777) == 0);
  open_to_all(tool.registry());
  auto [code, err] = run_as(65534, {"--registry", tool.registry(), "export", file});
  INFO(err);
  if (code == kCannotReachTool) {
    WARN("SKIPPED: uid 65534 cannot reach " << TFIMM_TOOL);
    return;
  }
  CHECK(code == 2);
  CHECK(err.find("belongs to uid 0") != std::string::npos);
  CHECK(err.find("nothing was changed") != std::string::npos);
  CHECK(read_file(file) == "old\n");
  CHECK(stat_of(file).st_uid == 0);
}

TEST_CASE("export to a FIFO writes the JSON to its reader and leaves the FIFO",
          "[export][file][conformance]") {
  Tool tool;
  tool.ok({"set", "resnet18", "/data/resnet18"});
  const std::string fifo = tool.path("pipe");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  std::string received;
  std::thread reader([&] { received = read_file(fifo); });
  auto r = tool.run({"export", fifo});
  reader.join();
  CHECK(r.exit_code == 0);
  CHECK(received == tool.snapshot());
  CHECK(S_ISFIFO(stat_of(fifo).st_mode));
}

TEST_CASE("export to a character device writes to it and never replaces it",
          "[export][file][conformance]") {
  Tool tool;
  tool.ok({"set", "resnet18", "/data/resnet18"});

  SECTION("a copy of /dev/null") {
    const std::string null = tool.path("null");
    REQUIRE(::mknod(null.c_str(), S_IFCHR | 0666, ::makedev(1, 3)) == 0);
    tool.ok({"export", null});
    const struct stat st = stat_of(null);
    CHECK(S_ISCHR(st.st_mode));
    CHECK(st.st_rdev == ::makedev(1, 3));
  }
  SECTION("a terminal, as /dev/stdout is at a prompt") {
    int master = -1, slave = -1;
    char name[256];
    REQUIRE(::openpty(&master, &slave, name, nullptr, nullptr) == 0);
    termios raw{};
    ::tcgetattr(slave, &raw);
    ::cfmakeraw(&raw);
    ::tcsetattr(slave, TCSANOW, &raw);
    tool.ok({"export", name});
    CHECK(S_ISCHR(stat_of(name).st_mode));
    ::fcntl(master, F_SETFL, O_NONBLOCK);
    std::string received;
    char buf[4096];
    ssize_t n = 0;
    while ((n = ::read(master, buf, sizeof buf)) > 0) {
      received.append(buf, static_cast<std::size_t>(n));
    }
    CHECK(received == tool.snapshot());
    ::close(slave);
    ::close(master);
  }
  SECTION("/dev/full: the write fails with exit 2 and the device stays") {
    auto r = tool.run({"export", "/dev/full"});
    require_error(r, 2);
    CHECK(r.err.find("/dev/full: No space left on device") != std::string::npos);
    CHECK(S_ISCHR(stat_of("/dev/full").st_mode));
  }
}

TEST_CASE("export to its own standard output, as /dev/stdout names it, is the JSON alone",
          "[export][file][conformance]") {
  Tool tool;
  tool.ok({"set", "resnet18", "/data/resnet18"});
  auto r = tool.run({"export", "/dev/stdout"});
  CHECK(r.exit_code == 0);
  CHECK(r.out == tool.snapshot());
}

TEST_CASE("export to what cannot hold a file is refused with exit 2 and nothing changed",
          "[export][file]") {
  Tool tool;
  tool.ok({"set", "resnet18", "/data/resnet18"});

  SECTION("a dangling symlink") {
    const std::string link = tool.path("backup.json");
    REQUIRE(::symlink(tool.path("gone/backup.json").c_str(), link.c_str()) == 0);
    auto r = tool.run({"export", link});
    require_error(r, 2);
    CHECK(r.err.find("symbolic link to " + tool.path("gone/backup.json") +
                     ", which does not exist") != std::string::npos);
    CHECK(link_text(link) == tool.path("gone/backup.json"));
    CHECK_FALSE(exists(tool.path("gone")));
  }
  SECTION("a directory") {
    const std::string dir = tool.make_dir("backups");
    auto r = tool.run({"export", dir});
    require_error(r, 2);
    CHECK(r.err.find("is a directory") != std::string::npos);
    CHECK(entries(dir).empty());
  }
  SECTION("a block device") {
    // Major 240 is reserved for local use: no driver answers behind it.
    const std::string disk = tool.path("disk");
    REQUIRE(::mknod(disk.c_str(), S_IFBLK | 0600, ::makedev(240, 0)) == 0);
    auto r = tool.run({"export", disk});
    require_error(r, 2);
    CHECK(r.err.find("it is a block device") != std::string::npos);
    CHECK(S_ISBLK(stat_of(disk).st_mode));
  }
  SECTION("a missing parent directory") {
    auto r = tool.run({"export", tool.path("nowhere/backup.json")});
    require_error(r, 2);
    CHECK(r.err.find("the directory " + tool.path("nowhere") + " does not exist") !=
          std::string::npos);
    CHECK_FALSE(exists(tool.path("nowhere")));
  }
  SECTION("a read-only directory") {
    const std::string dir = tool.make_dir("readonly");
    write_file(dir + "/backup.json", "old\n");
    REQUIRE(::chmod(dir.c_str(), 0555) == 0);
    REQUIRE(::chmod(tool.path("").c_str(), 0777) == 0);
    REQUIRE(::chmod(tool.path("state").c_str(), 0777) == 0);
    open_to_all(tool.registry());
    auto [code, err] =
        run_as(65534, {"--registry", tool.registry(), "export", dir + "/backup.json"});
    INFO(err);
    if (code == kCannotReachTool) {
      ::chmod(dir.c_str(), 0755);
      WARN("SKIPPED: uid 65534 cannot reach " << TFIMM_TOOL);
      return;
    }
    CHECK(code == 2);
    CHECK(err.find("cannot create a file in " + dir + ": Permission denied") != std::string::npos);
    CHECK(read_file(dir + "/backup.json") == "old\n");
    CHECK(entries(dir) == std::vector<std::string>{"backup.json"});
    ::chmod(dir.c_str(), 0755);
  }
}

TEST_CASE("export to a file syncs the file, then renames it into place and syncs its directory",
          "[export][durability]") {
  if (tfimm::test::run_process({"strace", "-V"}).exit_code != 0) {
    WARN("strace is not installed: skipped");
    return;
  }
  Tool tool;
  tool.ok({"set", "resnet18", "/data/resnet18"});
  const std::string dir = tool.make_dir("backup");
  const std::string file = dir + "/registry.json";
  const std::string trace = tool.path("trace");
  const auto run = tfimm::test::run_process(
      {"strace", "-f", "-qq", "-e", "trace=openat,fsync,fdatasync,rename,renameat,renameat2,close",
       "-o", trace, TFIMM_TOOL, "--registry", tool.registry(), "export", file},
      {},
      // LeakSanitizer cannot run under ptrace (sanitizer builds).
      {{"ASAN_OPTIONS", "detect_leaks=0"}});
  INFO(run.err);
  REQUIRE(run.exit_code == 0);
  // In order: an fsync of a file opened in `dir`, a rename onto `file`, an
  // fsync of `dir` itself.
  std::map<std::string, std::string> open_fds;  // fd -> path
  int step = 0;
  std::istringstream lines(read_file(trace));
  for (std::string line; std::getline(lines, line);) {
    const auto quote = line.find('"');
    if (line.find("openat(") != std::string::npos && quote != std::string::npos) {
      const auto end = line.find('"', quote + 1);
      open_fds[line.substr(line.rfind("= ") + 2)] = line.substr(quote + 1, end - quote - 1);
    } else if (const auto at = line.find("sync("); at != std::string::npos) {
      const std::string synced = open_fds[line.substr(at + 5, line.find(')', at) - at - 5)];
      if (step == 0 && synced.rfind(dir + "/", 0) == 0) step = 1;
      if (step == 2 && synced == dir) step = 3;
    } else if (line.find("rename") != std::string::npos &&
               line.find("\"" + file + "\"") != std::string::npos && step == 1) {
      step = 2;
    }
  }
  INFO(read_file(trace));
  CHECK(step == 3);
}
