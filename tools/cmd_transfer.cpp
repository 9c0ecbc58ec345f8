#include "cmd_transfer.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>

#include "output.hpp"
#include "output_file.hpp"
#include "tfimm/transfer.hpp"

namespace tfimm::tool {

namespace {

std::string errno_text() { return std::strerror(errno); }

// The whole of `file`, or of standard input for "-". Throws UsageError.
// An export of a million entries is about 150 MB; anything past this is not
// an export file (a device that never ends, such as /dev/zero, included).
constexpr std::size_t kMaxImportBytes = std::size_t{1} << 30;

std::string read_input(const std::string& file) {
  int fd = STDIN_FILENO;
  if (file != "-") {
    fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw UsageError("cannot read " + file + ": " + errno_text());
  }
  std::string text;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      std::string message = "cannot read " + file + ": " + errno_text();
      if (fd != STDIN_FILENO) ::close(fd);
      throw UsageError(message);
    }
    if (n == 0) break;
    text.append(buf, static_cast<std::size_t>(n));
    if (text.size() > kMaxImportBytes) {
      if (fd != STDIN_FILENO) ::close(fd);
      throw UsageError("cannot import " + printable(file) + ": it is larger than " +
                       std::to_string(kMaxImportBytes >> 30) +
                       " GiB, far more than an export of a million entries; nothing was "
                       "changed. Check that it is an export file");
    }
  }
  if (fd != STDIN_FILENO) ::close(fd);
  return text;
}

std::string plural(std::size_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

}  // namespace

void setup_export(CLI::App& app, Program& program) {
  auto options = std::make_shared<ExportOptions>();
  auto* sub = app.add_subcommand("export", "Write the registry contents as JSON");
  sub->add_option("FILE", options->file, "Output file; - or omitted: standard output");
  sub->footer(
      "A file is replaced atomically (written beside it, then renamed), keeping\n"
      "its mode, owner and group; through a symbolic link, the link's target is.\n"
      "A FIFO or a device such as /dev/stdout is written to, never replaced.\n"
      "Format: {\"format\": \"tfimm-cache-export\", \"version\": 1, \"cache_dir\": PATH|null,\n"
      "\"models\": [{\"name\", \"path\", \"locked\", \"lock_reason\"}, ...]}\n\n"
      "Example:\n  tfimm-cache export registry-backup.json\n  tfimm-cache export | ssh other "
      "tfimm-cache import -");
  bind_command(sub, program, options, run_export);
}

int run_export(const GlobalOptions& global, const ExportOptions& options) {
  Registry registry = open_registry(global);
  Snapshot snapshot = registry.snapshot();
  std::string json = to_json(snapshot);
  if (json.empty() || json.back() != '\n') json += '\n';
  if (options.file == "-" || is_standard_output(options.file)) {
    std::cout << json;
    return kExitOk;
  }
  write_output_file(options.file, json);
  std::cout << "exported " << plural(snapshot.models.size(), "entry", "entries")
            << (snapshot.cache_dir ? " and the cache directory setting" : "") << " to "
            << printable(options.file) << '\n';
  return kExitOk;
}

void setup_import(CLI::App& app, Program& program) {
  auto options = std::make_shared<ImportCmdOptions>();
  auto* sub = app.add_subcommand("import", "Load entries from an export file");
  sub->add_option("FILE", options->file, "Export file; - for standard input")->required();
  sub->add_flag("--replace", options->replace,
                "Make the registry equal to the file (forget entries not in it)");
  sub->add_option("--rewrite", options->rewrites,
                  "Move paths under the prefix OLD to NEW (repeatable; first match wins)")
      ->type_name("OLD=NEW")
      ->check(CLI::Validator(
          [](std::string& value) -> std::string {
            auto eq = value.find('=');
            if (eq == std::string::npos || eq == 0 || eq + 1 == value.size()) {
              return "expected OLD=NEW with both sides non-empty, got '" + value + "'";
            }
            return {};
          },
          ""))
      ->allow_extra_args(false);
  sub->add_flag("-n,--dry-run", options->dry_run, "Show what would change; change nothing");
  sub->footer(
      "Every record is checked first; then all of it is applied in one transaction,\n"
      "or nothing is (one bad record refuses the whole file). Without --replace,\n"
      "entries not in the file are kept and no lock is removed. --dry-run prints\n"
      "the counts the import would print and only reads the registry.\n\n"
      "Example:\n  tfimm-cache import backup.json --dry-run\n"
      "  tfimm-cache import backup.json --rewrite /mnt/old=/mnt/new");
  bind_command(sub, program, options, run_import);
}

int run_import(const GlobalOptions& global, const ImportCmdOptions& options) {
  std::string text = read_input(options.file);
  const std::string source = options.file == "-" ? "standard input" : printable(options.file);
  Snapshot snapshot;
  try {
    snapshot = parse_snapshot(text);
  } catch (const InvalidInput& e) {
    throw UsageError("cannot import " + source + ": " + e.what() +
                     "; nothing was changed. Fix the file and retry");
  }
  ImportOptions import_options;
  import_options.replace = options.replace;
  import_options.dry_run = options.dry_run;
  for (const auto& rewrite : options.rewrites) {
    auto eq = rewrite.find('=');
    import_options.rewrites.emplace_back(rewrite.substr(0, eq), rewrite.substr(eq + 1));
  }

  Registry registry = open_registry(global);
  ImportReport report = registry.import(snapshot, import_options);
  // One line, the same counts for a dry run as for the real import; lock
  // changes and kept locks only when there are any.
  if (options.dry_run) {
    std::cout << "dry run, nothing changed: importing " << source << " would add " << report.added
              << ", change " << report.changed << ", leave " << report.unchanged << " unchanged";
    if (options.replace) std::cout << ", forget " << report.removed;
    if (report.locked > 0) std::cout << ", lock " << report.locked;
    if (report.unlocked > 0) std::cout << ", unlock " << report.unlocked;
    if (report.locks_kept > 0) {
      std::cout << ", keep " << report.locks_kept << " locked that the file has unlocked";
    }
    if (report.cache_dir_changed) std::cout << ", and change the cache directory setting";
  } else {
    std::cout << "imported " << source << ": " << report.added << " added, " << report.changed
              << " changed, " << report.unchanged << " unchanged";
    if (options.replace) std::cout << ", " << report.removed << " forgotten";
    if (report.locked > 0) std::cout << ", " << report.locked << " locked";
    if (report.unlocked > 0) std::cout << ", " << report.unlocked << " unlocked";
    if (report.locks_kept > 0) {
      std::cout << ", " << report.locks_kept << " kept locked that the file has unlocked";
    }
    if (report.cache_dir_changed) std::cout << "; cache directory setting changed";
  }
  std::cout << '\n';
  return kExitOk;
}

}  // namespace tfimm::tool
