#include "cmd_retention.hpp"

#include <iostream>

#include "output.hpp"

namespace tfimm::tool {

void setup_forget_history(CLI::App& app, Program& program) {
  auto options = std::make_shared<ForgetHistoryOptions>();
  auto* sub = app.add_subcommand("forget-history", "Forget history rows older than an age");
  sub->add_option("--older-than", options->older_than,
                  "Age, e.g. 90d, 12w, 24h (units: s, m, h, d, w)")
      ->type_name("AGE")
      ->required();
  sub->add_flag("--dry-run", options->dry_run, "Count what would be forgotten; change nothing");
  sub->add_flag("--json", options->json, "Print the result as JSON");
  sub->footer(
      "Forgets whole change sets, oldest first, up to the newest one older than AGE,\n"
      "and records a `forget` row saying how many rows went. Entries, their paths and\n"
      "their timestamps are never touched; a forgotten change set can no longer be\n"
      "undone. JSON fields: rows, through (the newest row forgotten), recorded (the\n"
      "forget row's id, or null), dry_run.\n\n"
      "Example:\n  tfimm-cache forget-history --older-than 90d --dry-run");
  bind_command(sub, program, options, run_forget_history);
}

int run_forget_history(const GlobalOptions& global, const ForgetHistoryOptions& options) {
  const auto age = parse_duration(options.older_than);  // refused before opening anything
  Registry registry = open_registry(global);
  const ForgetReport report = registry.forget_history(age, options.dry_run);
  if (options.json) {
    std::cout << dump_json(
        {{"rows", report.rows},
         {"through", report.through == 0 ? nlohmann::ordered_json(nullptr)
                                         : nlohmann::ordered_json(report.through)},
         {"recorded", report.recorded == 0 ? nlohmann::ordered_json(nullptr)
                                           : nlohmann::ordered_json(report.recorded)},
         {"dry_run", report.dry_run}});
    return kExitOk;
  }
  if (report.rows == 0) {
    std::cout << "no history older than " << printable(options.older_than) << " to forget\n";
  } else {
    std::cout << (report.dry_run ? "would forget " : "forgot ") << report.rows
              << " history rows (up to row " << report.through << ")\n";
  }
  return kExitOk;
}

void setup_retain_history(CLI::App& app, Program& program) {
  auto options = std::make_shared<RetainHistoryOptions>();
  auto* sub = app.add_subcommand("retain-history", "Show or set how long history is kept");
  sub->add_option("AGE", options->age,
                  "Keep history this long (e.g. 90d), or `forever` (the default)");
  sub->add_flag("--json", options->json, "Print the setting as JSON");
  sub->footer(
      "With AGE, every later change also forgets history older than AGE, at most\n"
      "1000 rows per change, so no single change pays for a long backlog (run\n"
      "forget-history for that). Stored in the registry for every process; the\n"
      "change is recorded as a `retain` row. Without AGE, prints the setting.\n"
      "JSON fields: retain (AGE string, or null for forever).\n\n"
      "Example:\n  tfimm-cache retain-history 90d\n  tfimm-cache retain-history forever");
  bind_command(sub, program, options, run_retain_history);
}

int run_retain_history(const GlobalOptions& global, const RetainHistoryOptions& options) {
  std::optional<std::chrono::milliseconds> age;
  const bool change = !options.age.empty();
  if (change && options.age != "forever") age = parse_duration(options.age);
  Registry registry = open_registry(global);
  if (change) registry.set_history_retention(age);
  const auto now = registry.history_retention();
  if (options.json) {
    std::cout << dump_json({{"retain", now ? nlohmann::ordered_json(format_duration(*now))
                                           : nlohmann::ordered_json(nullptr)}});
    return kExitOk;
  }
  std::cout << (now ? "history older than " + format_duration(*now) +
                          " is forgotten as changes are made"
                    : std::string("history is kept forever"))
            << '\n';
  return kExitOk;
}

}  // namespace tfimm::tool
