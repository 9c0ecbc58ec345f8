#include "cmd_transfer.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ext/stdio_filebuf.h>
#include <iostream>

#include "output.hpp"
#include "output_file.hpp"
#include "tfimm/transfer.hpp"

namespace tfimm::tool {

namespace {

std::string errno_text() { return std::strerror(errno); }

// `file`, or standard input for "-", opened for reading. Throws UsageError.
int open_input(const std::string& file) {
  if (file == "-") {
    const int fd = ::fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) throw UsageError("cannot read standard input: " + errno_text());
    return fd;
  }
  const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw UsageError("cannot read " + printable(file) + ": " + errno_text());
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
    ::close(fd);
    throw UsageError("cannot read " + printable(file) + ": " + std::strerror(EISDIR));
  }
  return fd;
}

std::string plural(std::size_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

}  // namespace

void setup_export(CLI::App& app, Program& program) {
  auto options = std::make_shared<ExportOptions>();
  auto* sub = app.add_subcommand("export", "Write the registry contents as JSON");
  sub->add_option("FILE", options->file, "Output file; - or omitted: standard output");
  sub->add_flag("--with-history", options->with_history,
                "Also write every history row (import restores them)");
  sub->footer(
      "A file is replaced atomically (written beside it, then renamed), keeping\n"
      "its mode, owner and group; through a symbolic link, the link's target is.\n"
      "A FIFO or a device such as /dev/stdout is written to, never replaced.\n"
      "Format: {\"format\": \"tfimm-cache-export\", \"version\": 2, \"cache_dir\": PATH|null,\n"
      "[\"history\": [...],] \"models\": [{\"name\", \"path\", \"locked\", \"lock_reason\",\n"
      "\"created_at\", \"updated_at\", \"missing_since\"}, ...]} (see the README)\n\n"
      "Example:\n  tfimm-cache export registry-backup.json\n  tfimm-cache export | ssh other "
      "tfimm-cache import -");
  bind_command(sub, program, options, run_export);
}

int run_export(const GlobalOptions& global, const ExportOptions& options) {
  Registry registry = open_registry(global);
  tfimm::ExportOptions export_options;
  export_options.with_history = options.with_history;
  if (options.file == "-" || is_standard_output(options.file)) {
    registry.export_json(std::cout, export_options);
    return kExitOk;
  }
  ExportSummary summary;
  write_output_file(options.file, [&](std::ostream& out) {
    summary = registry.export_json(out, export_options);
  });
  std::cout << "exported " << plural(summary.entries, "entry", "entries")
            << (summary.cache_dir ? " and the cache directory setting" : "");
  if (options.with_history)
    std::cout << " with " << plural(summary.history, "history row", "history rows");
  std::cout << " to " << printable(options.file) << '\n';
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
      "All of it is applied in one transaction, or nothing is: one bad record\n"
      "refuses the whole file, and into a registry that does not exist yet every\n"
      "record is checked before anything is created. Without --replace,\n"
      "entries not in the file are kept and no lock is removed. --dry-run prints\n"
      "the counts the import would print and only reads the registry.\n\n"
      "Example:\n  tfimm-cache import backup.json --dry-run\n"
      "  tfimm-cache import backup.json --rewrite /mnt/old=/mnt/new");
  bind_command(sub, program, options, run_import);
}

int run_import(const GlobalOptions& global, const ImportCmdOptions& options) {
  const int fd = open_input(options.file);
  // A regular file can be read twice; a pipe is copied by the import as it
  // is checked (see Registry::import_json).
  __gnu_cxx::stdio_filebuf<char> buf(fd, std::ios::in, 65536);  // closes fd
  std::istream in(&buf);
  const std::string source = options.file == "-" ? "standard input" : printable(options.file);
  ImportOptions import_options;
  import_options.replace = options.replace;
  import_options.dry_run = options.dry_run;
  for (const auto& rewrite : options.rewrites) {
    auto eq = rewrite.find('=');
    import_options.rewrites.emplace_back(rewrite.substr(0, eq), rewrite.substr(eq + 1));
  }

  Registry registry = open_registry(global);
  ImportReport report;
  try {
    report = registry.import_json(in, import_options);
  } catch (const InvalidInput& e) {
    if (std::string_view(e.what()).rfind("invalid rewrite", 0) == 0) throw;
    throw UsageError("cannot import " + source + ": " + e.what() +
                     "; nothing was changed. Fix the file and retry");
  }
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
