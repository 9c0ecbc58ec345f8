#include "cmd_prune.hpp"

#include <iostream>

#include "output.hpp"

namespace tfimm::tool {

void setup_prune(CLI::App& app, Program& program) {
  auto options = std::make_shared<PruneCmdOptions>();
  auto* sub = app.add_subcommand(
      "prune", "Forget entries whose path no longer exists (never deletes files)");
  sub->add_flag("-n,--dry-run", options->dry_run, "Show what would be forgotten; change nothing");
  sub->add_option_function<std::string>(
         "--expire", [options](const std::string& age) { options->expire = age; },
         "Forget only entries missing for at least AGE (30s, 15m, 12h, 7d, 2w), as "
         "recorded by earlier audits and prunes")
      ->type_name("AGE");
  sub->add_option("-j,--jobs", options->jobs, "Paths checked at once (default: library's choice)")
      ->type_name("N")
      ->check(CLI::Range(1u, 256u));
  sub->add_flag("--all-hosts", options->all_hosts,
                "Also judge paths local to other hosts, as if they were this host's");
  sub->footer(
      "Entries whose path is local to another host are kept: only that host can\n"
      "tell whether the path is gone (prune there, or --all-hosts).\n"
      "Locked entries are always kept (see `lock`). With --expire, an entry is\n"
      "forgotten only once it has been missing that long; the first audit or prune\n"
      "that finds it missing starts the clock. Everything is forgotten in one\n"
      "transaction; an entry re-registered meanwhile is kept.\n\n"
      "Example:\n  tfimm-cache prune --dry-run\n  tfimm-cache prune --expire 7d");
  bind_command(sub, program, options, run_prune);
}

int run_prune(const GlobalOptions& global, const PruneCmdOptions& options) {
  PruneOptions prune_options;
  prune_options.dry_run = options.dry_run;
  if (options.expire) prune_options.expire = parse_duration(*options.expire);
  prune_options.audit.threads = options.jobs;
  prune_options.audit.all_hosts = options.all_hosts;

  Registry registry = open_registry(global);
  Progress progress("checking paths");
  prune_options.audit.progress = [&progress](std::size_t done, std::size_t total) {
    progress.update(done, total);
  };
  PruneReport report = registry.prune(prune_options);
  progress.finish();

  Style style(stdout_wants_colour());
  const char* removed_word = report.dry_run ? "would forget" : "forgot";
  Table table({"ACTION", "NAME", "STATUS", "PATH", "DETAIL"});
  for (const auto& item : report.removed) {
    table.add({{removed_word, Style::Colour::Red},
               item.entry.name,
               to_string(item.status),
               item.entry.path});
  }
  for (const auto& item : report.kept_locked) {
    std::string reason = item.entry.lock_reason.empty() ? "" : "lock: " + item.entry.lock_reason;
    table.add({{"kept (locked)", Style::Colour::Yellow},
               item.entry.name,
               to_string(item.status),
               item.entry.path,
               reason});
  }
  for (const auto& item : report.kept_young) {
    std::string since;
    if (item.entry.missing_since) {
      since = "missing since " + iso_time(*item.entry.missing_since) + " (" +
              age(*item.entry.missing_since) + " ago)";
    }
    table.add({{"kept (young)", Style::Colour::Yellow},
               item.entry.name,
               to_string(item.status),
               item.entry.path,
               since});
  }
  for (const auto& item : report.other_host) {
    table.add({{"kept (other host)", Style::Colour::Yellow},
               item.entry.name,
               to_string(item.status),
               item.entry.path,
               "local to host " + item.entry.local_to});
  }
  if (!table.empty()) table.print(std::cout, style);

  std::cout << (report.dry_run ? "dry run, nothing changed: " : "") << "checked " << report.checked
            << (report.checked == 1 ? " entry" : " entries") << ", " << removed_word << ' '
            << report.removed.size() << ", kept " << report.kept_locked.size() << " locked";
  if (options.expire) {
    std::cout << " and " << report.kept_young.size() << " missing for less than "
              << *options.expire;
  }
  if (!report.other_host.empty()) {
    std::cout << "; " << report.other_host.size() << " local to other hosts, not checked";
  }
  std::cout << '\n';
  return kExitOk;
}

}  // namespace tfimm::tool
