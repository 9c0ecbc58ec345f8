#include "cmd_audit.hpp"

#include <iostream>

#include "output.hpp"

namespace tfimm::tool {

namespace {

nlohmann::ordered_json to_json(const AuditItem& item) {
  return {{"name", item.entry.name},
          {"path", item.entry.path},
          {"status", to_string(item.status)},
          {"locked", item.entry.locked},
          {"detail", item.detail},
          {"missing_since", item.entry.missing_since
                                ? nlohmann::ordered_json(iso_time(*item.entry.missing_since, true))
                                : nlohmann::ordered_json(nullptr)},
          {"local_to", item.entry.local_to}};
}

std::string summary(const AuditReport& report) {
  std::string out = std::to_string(report.items.size()) +
                    (report.items.size() == 1 ? " entry" : " entries") + " checked";
  for (PathStatus s :
       {PathStatus::Ok, PathStatus::Missing, PathStatus::DanglingLink, PathStatus::NotAccessible,
        PathStatus::NotADirectory, PathStatus::Error, PathStatus::OtherHost}) {
    if (std::size_t n = report.count(s); n > 0)
      out += ", " + std::to_string(n) + " " + to_string(s);
  }
  std::size_t stale = report.stale();
  std::size_t stale_locked = 0;
  for (const auto& item : report.items) {
    if (is_stale(item.status) && item.entry.locked) ++stale_locked;
  }
  if (stale == 0) return out + "; nothing stale";
  out += "; " + std::to_string(stale) + " stale";
  if (stale_locked > 0) out += " (" + std::to_string(stale_locked) + " locked)";
  if (stale > stale_locked) out += "; `tfimm-cache prune` forgets the unlocked ones";
  return out;
}

}  // namespace

void setup_audit(CLI::App& app, Program& program) {
  auto options = std::make_shared<AuditCmdOptions>();
  auto* sub = app.add_subcommand("audit", "Check every registered path and the cache directory");
  sub->add_flag("--json", options->json, "Print a JSON array, one object per entry");
  sub->add_option("-j,--jobs", options->jobs, "Paths checked at once (default: library's choice)")
      ->type_name("N")
      ->check(CLI::Range(1u, 256u));
  sub->add_flag("--all-hosts", options->all_hosts,
                "Also check paths local to other hosts, as if they were this host's");
  sub->footer(
      "Never changes or deletes files; records when each path was first found\n"
      "missing (used by prune --expire). Exits with 1 when an entry is stale\n"
      "(missing, a dangling link, or below a file). A path registered on\n"
      "another host's local file system is not checked here (other_host).\n"
      "Statuses: ok, missing, dangling_link, not_accessible, not_a_directory, error,\n"
      "other_host.\n"
      "JSON fields: name, path, status (string), locked (bool), detail (string),\n"
      "missing_since (ISO 8601 UTC string or null), local_to (host name, or \"\").\n\n"
      "Example:\n  tfimm-cache audit\n  tfimm-cache audit --json --jobs 32");
  bind_command(sub, program, options, run_audit);
}

int run_audit(const GlobalOptions& global, const AuditCmdOptions& options) {
  Registry registry = open_registry(global);
  Progress progress("checking paths");
  AuditOptions audit_options;
  audit_options.threads = options.jobs;
  audit_options.all_hosts = options.all_hosts;
  audit_options.progress = [&progress](std::size_t done, std::size_t total) {
    progress.update(done, total);
  };
  AuditReport report = registry.audit(audit_options);
  progress.finish();

  if (!report.recorded) {
    std::cerr << "tfimm-cache: note: the registry is read-only here; missing-since times were "
                 "not recorded\n";
  }
  if (options.json) {
    JsonArrayWriter out(std::cout);
    for (const auto& item : report.items) out.add(to_json(item));
    out.finish();
    return report.stale() > 0 ? kExitNegative : kExitOk;
  }

  Style style(stdout_wants_colour());
  if (!report.items.empty()) {
    Table table({"NAME", "STATUS", "LOCKED", "PATH", "DETAIL"});
    for (const auto& item : report.items) {
      std::string detail =
          item.is_symlink && !item.detail.empty() ? "-> " + item.detail : item.detail;
      if (item.status == PathStatus::OtherHost) {
        detail = "local to host " + item.entry.local_to + "; audit there, or --all-hosts";
      }
      if (item.entry.missing_since) {
        detail = "missing since " + iso_time(*item.entry.missing_since) + " (" +
                 age(*item.entry.missing_since) + " ago)" + (detail.empty() ? "" : "; " + detail);
      }
      table.add({item.entry.name,
                 {to_string(item.status), status_colour(item.status)},
                 {item.entry.locked ? "locked" : "-", Style::Colour::None},
                 item.entry.path,
                 detail});
    }
    table.print(std::cout, style);
  }
  std::cout << "cache dir: " << printable(report.cache_dir.path) << " ("
            << describe(report.cache_dir.source) << "): "
            << style.paint(to_string(report.cache_dir_status),
                           status_colour(report.cache_dir_status))
            << '\n';
  std::cout << summary(report) << '\n';
  return report.stale() > 0 ? kExitNegative : kExitOk;
}

}  // namespace tfimm::tool
