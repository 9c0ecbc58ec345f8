#include "cmd_history.hpp"

#include <iostream>

#include "output.hpp"

namespace tfimm::tool {

namespace {

nlohmann::ordered_json optional_string(const std::optional<std::string>& value) {
  return value ? nlohmann::ordered_json(*value) : nlohmann::ordered_json(nullptr);
}

}  // namespace

void setup_history(CLI::App& app, Program& program) {
  auto options = std::make_shared<HistoryOptions>();
  auto* sub = app.add_subcommand("history", "Show recorded changes, newest first");
  sub->add_option("NAME", options->name, "Only the changes of this model");
  sub->add_flag("--json", options->json, "Print a JSON array, one object per change");
  sub->add_option("--limit", options->limit, "At most N changes (default: all)")
      ->type_name("N")
      ->check(whole_number());
  sub->footer(
      "Actions: set, clear, set_dir, unset_dir, lock, unlock, prune, import.\n"
      "Text columns: TIME (UTC), ACTION, NAME, OLD, NEW, BY (user@host pid).\n"
      "JSON fields: id (number), at (ISO 8601 UTC string), action, name (string, or\n"
      "null for cache-directory changes), old_path, new_path (string or null),\n"
      "user, host (string), pid (number).\n\n"
      "Example:\n  tfimm-cache history --limit 20\n  tfimm-cache history resnet18 --json");
  bind_command(sub, program, options, run_history);
}

int run_history(const GlobalOptions& global, const HistoryOptions& options) {
  Registry registry = open_registry(global);
  std::optional<std::string> name;
  if (!options.name.empty()) name = options.name;
  std::vector<HistoryRecord> records = registry.history(name, options.limit);

  if (options.json) {
    JsonArrayWriter out(std::cout);
    for (const auto& r : records) {
      out.add({{"id", r.id},
               {"at", iso_time(r.at, true)},
               {"action", r.action},
               {"name",
                r.name.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(r.name)},
               {"old_path", optional_string(r.old_path)},
               {"new_path", optional_string(r.new_path)},
               {"user", r.user},
               {"host", r.host},
               {"pid", r.pid}});
    }
    out.finish();
    return kExitOk;
  }

  if (records.empty()) {
    if (stdout_is_terminal()) std::cout << "no changes recorded\n";
    return kExitOk;
  }
  Style style(stdout_wants_colour());
  Table table({"TIME", "ACTION", "NAME", "OLD", "NEW", "BY"});
  for (const auto& r : records) {
    table.add({iso_time(r.at), r.action, r.name.empty() ? "(cache dir)" : r.name,
               r.old_path ? *r.old_path : "-", r.new_path ? *r.new_path : "-",
               r.user + "@" + r.host + " pid " + std::to_string(r.pid)});
  }
  table.print(std::cout, style);
  return kExitOk;
}

}  // namespace tfimm::tool
