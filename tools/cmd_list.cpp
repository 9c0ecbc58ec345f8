#include "cmd_list.hpp"

#include <iostream>

#include "output.hpp"

namespace tfimm::tool {

void setup_list(CLI::App& app, Program& program) {
  auto options = std::make_shared<ListOptions>();
  auto* sub = app.add_subcommand("list", "List the model-specific entries, sorted by name");
  sub->add_flag("--json", options->json, "Print a JSON array, one object per entry");
  sub->footer(
      "Text columns: NAME, PATH, EXISTS (yes/no, checked now), LOCKED (with the reason).\n"
      "JSON fields: name (string), path (string), exists (bool), locked (bool),\n"
      "lock_reason (string), created_at, updated_at (ISO 8601 UTC strings).\n"
      "Models found only under the cache directory are not entries (see `path`).\n\n"
      "Example:\n  tfimm-cache list\n  tfimm-cache list --json | jq -r '.[].name'");
  bind_command(sub, program, options, run_list);
}

int run_list(const GlobalOptions& global, const ListOptions& options) {
  Registry registry = open_registry(global);
  std::vector<Entry> entries = registry.entries();

  if (options.json) {
    JsonArrayWriter out(std::cout);
    for (const auto& e : entries) {
      out.add({{"name", e.name},
               {"path", e.path},
               {"exists", check_path(e.path) == PathStatus::Ok},
               {"locked", e.locked},
               {"lock_reason", e.lock_reason},
               {"created_at", iso_time(e.created_at, true)},
               {"updated_at", iso_time(e.updated_at, true)}});
    }
    out.finish();
    return kExitOk;
  }

  Style style(stdout_wants_colour());
  if (entries.empty()) {
    if (stdout_is_terminal()) {
      std::cout << "no model-specific entries in " << printable(registry.path()) << '\n';
    }
    return kExitOk;
  }
  Table table({"NAME", "PATH", "EXISTS", "LOCKED"});
  for (auto& e : entries) {  // moved into the table: one copy of each string
    bool exists = check_path(e.path) == PathStatus::Ok;
    std::string locked;
    if (e.locked) locked = e.lock_reason.empty() ? "locked" : "locked: " + e.lock_reason;
    table.add({std::move(e.name),
               std::move(e.path),
               {yes_no(exists), exists ? Style::Colour::None : Style::Colour::Red},
               {locked, Style::Colour::Yellow}});
  }
  table.print(std::cout, style);
  return kExitOk;
}

}  // namespace tfimm::tool
