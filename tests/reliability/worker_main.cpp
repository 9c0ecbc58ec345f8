// reliability_worker: the real second (third, sixteenth...) process of the
// reliability tests. Each command does one thing to a registry and reports it
// on stdout, one flushed line at a time, so that the test can read progress
// while the worker runs and kill it at any moment.
//
//   reliability_worker [OPTIONS] COMMAND REGISTRY [ARGS...]
//
// Options (before the command):
//   --start-at MS    sleep until MS (milliseconds since the Unix epoch), so
//                    that several workers act at the same moment
//   --busy MS        RegistryOptions::busy_timeout (default: the library's)
//   --umask OOO      umask before anything else (octal)
//   --as UID         as root, become user UID (group 65534, "nogroup") first;
//                    exits 77 when it cannot; does nothing when not root
//   --as-nobody      --as 65534
//
// Commands:
//   set REG NAME PATH            one set_model_cache; prints "ok"
//   set-many REG PREFIX N ROOT   set PREFIX<i> -> ROOT/PREFIX<i>, i < N; "ack i"
//                                after each set returned; then "longest MS",
//                                the longest a set took; on a throw "error
//                                <Kind> after MS ms: <message>"
//   txn-loop REG FROM COUNT      Registry::transaction setting g0..g9 to
//                                /gen/<k>/g<j>, k = FROM..; "begin k", "ack k"
//   import-loop REG N FROM COUNT import(replace) of N models i<j> ->
//                                /imp/<k>/i<j>; "begin k", "ack k"
//   reader REG STOPFILE          reads entries() until STOPFILE exists; exits 1
//                                ("torn ...") unless every read saw g0..g9 at
//                                one generation, never going back; prints
//                                "reads N generations M"
//   hold REG MS                  raw SQLite BEGIN IMMEDIATE; "held"; keeps the
//                                write lock MS ms or until a line or EOF on
//                                stdin; ROLLBACK; "released"
//   open REG                     "start", then entries() (migrates); "opened N"
//   list REG                     "entry NAME PATH" per entry, then "count N"
//   modes REG                    a set, then, with the registry still open,
//                                "db|wal|shm MODE UID GID" (or "... absent")
//   diagnose REG                 Registry::diagnose(): "journal_mode X",
//                                "network_fs 0|1", "warning TEXT"...
//   session REG                  opens REG, sets "before", prints "ready", then
//                                answers stdin lines "set NAME PATH", "list",
//                                "quit" with one line each
//   fill-rlimit REG EXTRA N      opens REG; limits file size (RLIMIT_FSIZE) to
//                                EXTRA bytes beyond the current -wal; then a
//                                set, an import of N models; then lifts the
//                                limit and sets "after"; one line per step
//   tmpfs-full DIR               in a private mount namespace, a 1 MB tmpfs on
//                                DIR filled to the last byte; one line per step;
//                                exits 77 when mounting is not allowed
//   tool-loop TOOL REG PREFIX N  runs `TOOL --registry REG set PREFIX<i> ...`
//                                N times (with --busy-timeout if --busy is
//                                given); "ack i" or "fail i after MS ms ..."
//
// Exit codes: 0 ok; 1 a check failed; 2 usage; 4 an operation threw (stdout:
// "error <Kind>: <message>"); 77 cannot run here.
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sqlite3.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tfimm/errors.hpp"
#include "tfimm/registry.hpp"

extern char** environ;

namespace {

constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;
constexpr int kExitError = 4;
constexpr int kExitSkip = 77;

struct Options {
  std::optional<long long> start_at;
  std::optional<long long> busy_ms;
  std::optional<unsigned> umask_bits;
  std::optional<uid_t> as_user;
};

Options options;

void say(const std::string& line) {
  std::fwrite(line.data(), 1, line.size(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

// The most specific kind of a library error, by name.
std::string kind_of(const std::exception& e) {
  if (dynamic_cast<const tfimm::RegistryBusy*>(&e)) return "RegistryBusy";
  if (dynamic_cast<const tfimm::RegistryReadOnly*>(&e)) return "RegistryReadOnly";
  if (dynamic_cast<const tfimm::RegistryCorrupt*>(&e)) return "RegistryCorrupt";
  if (dynamic_cast<const tfimm::RegistryTooNew*>(&e)) return "RegistryTooNew";
  if (dynamic_cast<const tfimm::NotARegistry*>(&e)) return "NotARegistry";
  if (dynamic_cast<const tfimm::RegistryError*>(&e)) return "RegistryError";
  if (dynamic_cast<const tfimm::InvalidName*>(&e)) return "InvalidName";
  if (dynamic_cast<const tfimm::InvalidPath*>(&e)) return "InvalidPath";
  if (dynamic_cast<const tfimm::UnknownModel*>(&e)) return "UnknownModel";
  if (dynamic_cast<const tfimm::InvalidInput*>(&e)) return "InvalidInput";
  if (dynamic_cast<const tfimm::Error*>(&e)) return "Error";
  return "std::exception";
}

std::string error_line(const std::exception& e) { return "error " + kind_of(e) + ": " + e.what(); }

tfimm::RegistryOptions registry_options() {
  tfimm::RegistryOptions o;
  if (options.busy_ms) o.busy_timeout = std::chrono::milliseconds(*options.busy_ms);
  return o;
}

tfimm::Registry open(const std::string& path) { return tfimm::Registry(path, registry_options()); }

// Runs `step`, printing "<label> ok" or "<label> error <Kind>: <message>".
template <class Step>
bool attempt(const std::string& label, Step step) {
  try {
    step();
    say(label + " ok");
    return true;
  } catch (const std::exception& e) {
    say(label + " " + error_line(e));
    return false;
  }
}

int drop_privileges(uid_t user) {
  if (::geteuid() != 0) return 0;
  const gid_t group = 65534;
  if (::setgroups(1, &group) != 0 || ::setgid(group) != 0 || ::setuid(user) != 0) {
    std::cerr << "cannot become uid " << user << ": " << std::strerror(errno) << '\n';
    return kExitSkip;
  }
  // Changing uid makes the process undumpable, which also stops
  // LeakSanitizer (it needs ptrace) in sanitizer builds.
  ::prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
  return 0;
}

std::string stat_line(const std::string& label, const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return label + " absent";
  char mode[8];
  std::snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
  return label + " " + mode + " " + std::to_string(st.st_uid) + " " + std::to_string(st.st_gid);
}

off_t file_size(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? st.st_size : 0;
}

tfimm::Snapshot numbered_snapshot(int n, const std::string& root, std::size_t pad = 0) {
  tfimm::Snapshot snap;
  for (int j = 0; j < n; ++j) {
    const std::string name = "i" + std::to_string(j);
    snap.models.push_back({name, root + "/" + name + std::string(pad, 'p'), false, ""});
  }
  return snap;
}

// Waits for a line or end of file on stdin, at most `ms` milliseconds.
void wait_stdin(long long ms) {
  pollfd fd{0, POLLIN, 0};
  ::poll(&fd, 1, static_cast<int>(ms));
}

// -- commands -----------------------------------------------------------------

int cmd_set(const std::vector<std::string>& a) {
  open(a[0]).set_model_cache(a[1], a[2]);
  say("ok");
  return 0;
}

long long ms_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               start)
      .count();
}

int cmd_set_many(const std::vector<std::string>& a) {
  auto registry = open(a[0]);
  const int n = std::stoi(a[2]);
  long long longest = 0;
  for (int i = 0; i < n; ++i) {
    const std::string name = a[1] + std::to_string(i);
    const auto started = std::chrono::steady_clock::now();
    try {
      registry.set_model_cache(name, a[3] + "/" + name);
    } catch (const std::exception& e) {
      say("error " + kind_of(e) + " after " + std::to_string(ms_since(started)) +
          " ms: " + e.what());
      return kExitError;
    }
    longest = std::max(longest, ms_since(started));
    say("ack " + std::to_string(i));
  }
  say("longest " + std::to_string(longest));
  return 0;
}

int cmd_txn_loop(const std::vector<std::string>& a) {
  auto registry = open(a[0]);
  const long long from = std::stoll(a[1]);
  const long long count = std::stoll(a[2]);
  for (long long k = from; k < from + count; ++k) {
    say("begin " + std::to_string(k));
    registry.transaction([&](tfimm::Transaction& txn) {
      for (int j = 0; j < 10; ++j) {
        const std::string name = "g" + std::to_string(j);
        txn.set_model_cache(name, "/gen/" + std::to_string(k) + "/" + name);
      }
    });
    say("ack " + std::to_string(k));
  }
  return 0;
}

int cmd_import_loop(const std::vector<std::string>& a) {
  auto registry = open(a[0]);
  const int n = std::stoi(a[1]);
  const long long from = std::stoll(a[2]);
  const long long count = std::stoll(a[3]);
  tfimm::ImportOptions replace;
  replace.replace = true;
  for (long long k = from; k < from + count; ++k) {
    const auto snap = numbered_snapshot(n, "/imp/" + std::to_string(k));
    say("begin " + std::to_string(k));
    registry.import(snap, replace);
    say("ack " + std::to_string(k));
  }
  return 0;
}

// The generation of /gen/<k>/g<j>, or -1.
long long generation(const tfimm::Entry& e) {
  const std::string prefix = "/gen/";
  if (e.path.compare(0, prefix.size(), prefix) != 0) return -1;
  const auto slash = e.path.find('/', prefix.size());
  if (slash == std::string::npos || e.path.substr(slash + 1) != e.name) return -1;
  return std::stoll(e.path.substr(prefix.size(), slash - prefix.size()));
}

int cmd_reader(const std::vector<std::string>& a) {
  auto registry = open(a[0]);
  long long reads = 0;
  long long last = -1;
  long long generations = 0;
  struct stat st {};
  while (true) {
    // Check the stop file before reading, so that at least one read follows
    // the writer's last commit.
    const bool stop = ::stat(a[1].c_str(), &st) == 0;
    const auto entries = registry.entries();
    ++reads;
    std::vector<long long> gens;
    for (const auto& e : entries) {
      if (e.name.size() == 2 && e.name[0] == 'g') gens.push_back(generation(e));
    }
    std::ostringstream seen;
    for (auto g : gens) seen << ' ' << g;
    if (gens.size() != 10) {
      say("torn: read " + std::to_string(reads) + " saw " + std::to_string(gens.size()) +
          " of g0..g9:" + seen.str());
      return kExitFailed;
    }
    for (auto g : gens) {
      if (g != gens.front() || g < 0) {
        say("torn: read " + std::to_string(reads) + " saw generations" + seen.str());
        return kExitFailed;
      }
    }
    if (gens.front() < last) {
      say("went back: read " + std::to_string(reads) + " saw generation " +
          std::to_string(gens.front()) + " after " + std::to_string(last));
      return kExitFailed;
    }
    if (gens.front() != last) ++generations;
    last = gens.front();
    if (stop) break;
  }
  say("reads " + std::to_string(reads) + " generations " + std::to_string(generations) + " last " +
      std::to_string(last));
  return 0;
}

int cmd_hold(const std::vector<std::string>& a) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(a[0].c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
    say(std::string("error sqlite: ") + sqlite3_errmsg(db));
    return kExitError;
  }
  sqlite3_busy_timeout(db, 10000);
  char* message = nullptr;
  if (sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, &message) != SQLITE_OK) {
    say(std::string("error sqlite: ") + (message ? message : "?"));
    return kExitError;
  }
  say("held");
  wait_stdin(std::stoll(a[1]));
  sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
  say("released");
  sqlite3_close(db);
  return 0;
}

int cmd_open(const std::vector<std::string>& a) {
  say("start");
  auto registry = open(a[0]);
  say("opened " + std::to_string(registry.entries().size()));
  return 0;
}

int cmd_list(const std::vector<std::string>& a) {
  auto registry = open(a[0]);
  const auto entries = registry.entries();
  for (const auto& e : entries) say("entry " + e.name + " " + e.path);
  say("count " + std::to_string(entries.size()));
  return 0;
}

int cmd_modes(const std::vector<std::string>& a) {
  auto registry = open(a[0]);
  registry.set_model_cache("modes", "/modes");
  say(stat_line("db", a[0]));
  say(stat_line("wal", a[0] + "-wal"));
  say(stat_line("shm", a[0] + "-shm"));
  say(stat_line("journal", a[0] + "-journal"));
  return 0;
}

int cmd_diagnose(const std::vector<std::string>& a) {
  auto registry = open(a[0]);
  const auto d = registry.diagnose();
  say("journal_mode " + d.journal_mode);
  say("network_fs " + std::string(d.network_fs ? "1" : "0"));
  say("integrity " + d.integrity);
  for (const auto& w : d.warnings) say("warning " + w);
  return 0;
}

int cmd_session(const std::vector<std::string>& a) {
  auto registry = open(a[0]);
  registry.set_model_cache("before", "/before");
  say("ready");
  std::string line;
  while (std::getline(std::cin, line)) {
    std::istringstream words(line);
    std::string verb;
    words >> verb;
    if (verb == "set") {
      std::string name, path;
      words >> name >> path;
      try {
        registry.set_model_cache(name, path);
        say("ok");
      } catch (const std::exception& e) {
        say(error_line(e));
      }
    } else if (verb == "list") {
      try {
        std::string names;
        for (const auto& n : registry.list_cached_models()) names += (names.empty() ? "" : ",") + n;
        say("entries " + names);
      } catch (const std::exception& e) {
        say(error_line(e));
      }
    } else if (verb == "quit") {
      break;
    } else {
      say("unknown " + verb);
    }
  }
  return 0;
}

void set_file_limit(rlim_t bytes) {
  rlimit limit{};
  ::getrlimit(RLIMIT_FSIZE, &limit);
  limit.rlim_cur = bytes;
  ::setrlimit(RLIMIT_FSIZE, &limit);
}

int cmd_fill_rlimit(const std::vector<std::string>& a) {
  auto registry = open(a[0]);
  const auto before = registry.entries();  // opens: -wal and -shm exist now
  ::signal(SIGXFSZ, SIG_IGN);
  const auto extra = static_cast<rlim_t>(std::stoll(a[1]));
  set_file_limit(static_cast<rlim_t>(file_size(a[0] + "-wal")) + extra);
  say("limited");
  attempt("set", [&] { registry.set_model_cache("full-set", "/full/set"); });
  attempt("import",
          [&] { registry.import(numbered_snapshot(std::stoi(a[2]), "/full/import", 200)); });
  attempt("transaction", [&] {
    registry.transaction([](tfimm::Transaction& txn) {
      for (int j = 0; j < 200; ++j) {
        txn.set_model_cache("t" + std::to_string(j), "/full/txn/" + std::string(300, 'x'));
      }
    });
  });
  set_file_limit(RLIM_INFINITY);
  say("space returned");
  attempt("after", [&] { registry.set_model_cache("after", "/after"); });
  say("entries " + std::to_string(registry.entries().size()) + " before " +
      std::to_string(before.size()));
  return 0;
}

int cmd_tmpfs_full(const std::vector<std::string>& a) {
  const std::string& dir = a[0];
  if (::unshare(CLONE_NEWNS) != 0 ||
      ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
      ::mount("tfimm-full", dir.c_str(), "tmpfs", 0, "size=1m,mode=0755") != 0) {
    std::cerr << "cannot mount a tmpfs on " << dir << ": " << std::strerror(errno) << '\n';
    return kExitSkip;
  }
  const std::string reg = dir + "/registry.db";
  std::optional<tfimm::Registry> registry(open(reg));
  for (int i = 0; i < 20; ++i) registry->set_model_cache("m" + std::to_string(i), "/models/m");
  const auto before = registry->entries();
  say("before " + std::to_string(before.size()));

  // Fill the file system to the last byte.
  const auto fill = [](const std::string& filler) {
    const int fd = ::open(filler.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    std::vector<char> block(4096, 'f');
    long long filled = 0;
    for (std::size_t chunk = block.size(); chunk > 0;) {
      const ssize_t n = ::write(fd, block.data(), chunk);
      if (n > 0) {
        filled += n;
      } else if (errno == ENOSPC || errno == EFBIG) {
        chunk /= 2;
      } else {
        break;
      }
    }
    ::fsync(fd);
    ::close(fd);
    return filled;
  };
  const std::string filler = dir + "/filler";
  const long long filled = fill(filler);
  say("filled " + std::to_string(filled));

  const bool set_ok = attempt("set", [&] { registry->set_model_cache("full-set", "/full/set"); });
  attempt("import", [&] { registry->import(numbered_snapshot(3000, "/full/import", 200)); });
  {
    // What another process would see now.
    auto other = open(reg);
    const auto now = other.entries();
    const bool unchanged = now.size() == before.size() + (set_ok ? 1 : 0);
    say(std::string("unchanged ") + (unchanged ? "yes" : "no"));
  }
  // Once no connection has it open (its -wal emptied and removed), a new
  // process reads the registry as it is on disk: SQLite could not make the
  // -shm it needs on a full disk. A write says the disk is full.
  registry.reset();
  const std::string filler2 = dir + "/filler2";
  fill(filler2);  // the space the removed -wal gave back
  {
    auto fresh = open(reg);
    attempt("read while full",
            [&] { say("read while full " + std::to_string(fresh.entries().size()) + " entries"); });
    attempt("write while full", [&] { fresh.set_model_cache("full-set-2", "/full/set2"); });
    attempt("audit while full",
            [&] { say(std::string("audit recorded ") + (fresh.audit().recorded ? "yes" : "no")); });
  }
  registry.emplace(open(reg));
  ::unlink(filler.c_str());
  ::unlink(filler2.c_str());
  say("space returned");
  attempt("after", [&] { registry->set_model_cache("after", "/after"); });
  auto fresh = open(reg);
  say("entries " + std::to_string(fresh.entries().size()));
  say("integrity " + fresh.diagnose().integrity);
  return 0;
}

int cmd_tool_loop(const std::vector<std::string>& a) {
  const int n = std::stoi(a[3]);
  int failures = 0;
  for (int i = 0; i < n; ++i) {
    const std::string name = a[2] + std::to_string(i);
    const std::string path = "/tool/" + name;
    std::vector<std::string> args{a[0], "--registry", a[1]};
    if (options.busy_ms) {
      args.insert(args.end(), {"--busy-timeout", std::to_string(*options.busy_ms)});
    }
    args.insert(args.end(), {"set", name, path});
    std::vector<char*> argv;
    for (auto& s : args) argv.push_back(s.data());
    argv.push_back(nullptr);
    char err_template[] = "/tmp/tfimm-tool-err-XXXXXX";
    const int err_fd = ::mkstemp(err_template);
    ::unlink(err_template);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, err_fd, 2);
    pid_t pid = -1;
    int status = 0;
    const auto started = std::chrono::steady_clock::now();
    const int rc = ::posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc == 0) {
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
    }
    if (rc == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
      say("ack " + std::to_string(i));
    } else {
      std::string err(4096, '\0');
      const ssize_t got = ::pread(err_fd, err.data(), err.size(), 0);
      err.resize(got > 0 ? static_cast<std::size_t>(got) : 0);
      for (char& c : err) c = c == '\n' ? ' ' : c;
      say("fail " + std::to_string(i) + " after " + std::to_string(ms_since(started)) +
          " ms status " + std::to_string(status) + ": " + err);
      ++failures;
    }
    ::close(err_fd);
  }
  return failures == 0 ? 0 : kExitFailed;
}

struct Command {
  const char* name;
  std::size_t args;  // after the command, including the registry
  int (*run)(const std::vector<std::string>&);
};

constexpr Command kCommands[] = {
    {"set", 3, cmd_set},
    {"set-many", 4, cmd_set_many},
    {"txn-loop", 3, cmd_txn_loop},
    {"import-loop", 4, cmd_import_loop},
    {"reader", 2, cmd_reader},
    {"hold", 2, cmd_hold},
    {"open", 1, cmd_open},
    {"list", 1, cmd_list},
    {"modes", 1, cmd_modes},
    {"diagnose", 1, cmd_diagnose},
    {"session", 1, cmd_session},
    {"fill-rlimit", 3, cmd_fill_rlimit},
    {"tmpfs-full", 1, cmd_tmpfs_full},
    {"tool-loop", 4, cmd_tool_loop},
};

int usage() {
  std::cerr << "usage: reliability_worker [--start-at MS] [--busy MS] [--umask OOO] "
               "[--as UID] [--as-nobody] COMMAND REGISTRY [ARGS...]\n";
  return kExitUsage;
}

int run(std::vector<std::string> args) {
  std::size_t i = 0;
  for (; i < args.size() && args[i].rfind("--", 0) == 0; ++i) {
    const std::string& opt = args[i];
    if (opt == "--as-nobody") {
      options.as_user = 65534;
    } else if (i + 1 < args.size() && opt == "--as") {
      options.as_user = static_cast<uid_t>(std::stoul(args[++i]));
    } else if (i + 1 < args.size() && opt == "--start-at") {
      options.start_at = std::stoll(args[++i]);
    } else if (i + 1 < args.size() && opt == "--busy") {
      options.busy_ms = std::stoll(args[++i]);
    } else if (i + 1 < args.size() && opt == "--umask") {
      options.umask_bits = static_cast<unsigned>(std::stoul(args[++i], nullptr, 8));
    } else {
      return usage();
    }
  }
  if (i >= args.size()) return usage();
  const std::string command = args[i];
  std::vector<std::string> rest(args.begin() + static_cast<std::ptrdiff_t>(i) + 1, args.end());
  if (options.umask_bits) ::umask(static_cast<mode_t>(*options.umask_bits));
  if (options.as_user) {
    if (int rc = drop_privileges(*options.as_user); rc != 0) return rc;
  }
  if (options.start_at) {
    std::this_thread::sleep_until(
        std::chrono::system_clock::time_point(std::chrono::milliseconds(*options.start_at)));
  }
  for (const auto& c : kCommands) {
    if (command == c.name) {
      if (rest.size() != c.args) return usage();
      return c.run(rest);
    }
  }
  return usage();
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(std::vector<std::string>(argv + 1, argv + argc));
  } catch (const std::exception& e) {
    say(error_line(e));
    std::cerr << error_line(e) << '\n';
    return kExitError;
  }
}
