#include "cmd_list.hpp"

#include <iostream>
#include <optional>

#include "output.hpp"

namespace tfimm::tool {

namespace {

// Whether the path exists, as far as anyone can tell: yes for ok, no for a
// path that certainly does not exist, and nothing when it could not be
// checked (permission denied, an I/O error, ...).
std::optional<bool> known_to_exist(PathStatus status) {
  if (status == PathStatus::Ok) return true;
  if (is_stale(status)) return false;
  return std::nullopt;
}

}  // namespace

void setup_list(CLI::App& app, Program& program) {
  auto options = std::make_shared<ListOptions>();
  auto* sub = app.add_subcommand("list", "List the model-specific entries, sorted by name");
  sub->add_flag("--json", options->json, "Print a JSON array, one object per entry");
  sub->add_option("-j,--jobs", options->jobs, "Paths checked at once (default: library's choice)")
      ->type_name("N")
      ->check(CLI::Range(1u, 256u));
  sub->footer(
      "Text columns: NAME, PATH, EXISTS (checked now: yes, no, or `unknown: STATUS`\n"
      "when the path could not be checked), LOCKED (with the reason).\n"
      "JSON fields: name (string), path (string), exists (bool, or null when the\n"
      "path could not be checked), status (string, as in audit), locked (bool),\n"
      "lock_reason (string), created_at, updated_at (ISO 8601 UTC strings),\n"
      "local_to (the host whose local file system holds the path, or \"\"; such a\n"
      "path is not checked on other hosts: status other_host).\n"
      "Paths are checked in parallel (--jobs at once), as audit does.\n"
      "Models found only under the cache directory are not entries (see `path`).\n\n"
      "Example:\n  tfimm-cache list\n  tfimm-cache list --json | jq -r '.[].name'");
  bind_command(sub, program, options, run_list);
}

int run_list(const GlobalOptions& global, const ListOptions& options) {
  Registry registry = open_registry(global);
  Progress progress("checking paths");
  AuditOptions check_options;
  check_options.threads = options.jobs;
  check_options.progress = [&progress](std::size_t done, std::size_t total) {
    progress.update(done, total);
  };
  std::vector<AuditItem> items = registry.check_entries(check_options);
  progress.finish();

  if (options.json) {
    JsonArrayWriter out(std::cout);
    for (const auto& item : items) {
      const auto& e = item.entry;
      const std::optional<bool> exists = known_to_exist(item.status);
      out.add({{"name", e.name},
               {"path", e.path},
               {"exists", exists ? nlohmann::ordered_json(*exists) : nlohmann::ordered_json()},
               {"status", to_string(item.status)},
               {"locked", e.locked},
               {"lock_reason", e.lock_reason},
               {"created_at", iso_time(e.created_at, true)},
               {"updated_at", iso_time(e.updated_at, true)},
               {"local_to", e.local_to}});
    }
    out.finish();
    return kExitOk;
  }

  Style style(stdout_wants_colour());
  if (items.empty()) {
    if (stdout_is_terminal()) {
      std::cout << "no model-specific entries in " << printable(registry.path()) << '\n';
    }
    return kExitOk;
  }
  Table table({"NAME", "PATH", "EXISTS", "LOCKED"});
  for (auto& item : items) {  // moved into the table: one copy of each string
    auto& e = item.entry;
    const std::optional<bool> exists = known_to_exist(item.status);
    Table::Cell cell =
        exists ? Table::Cell(yes_no(*exists), *exists ? Style::Colour::None : Style::Colour::Red)
               : Table::Cell("unknown: " + to_string(item.status), Style::Colour::Yellow);
    std::string locked;
    if (e.locked) locked = e.lock_reason.empty() ? "locked" : "locked: " + e.lock_reason;
    table.add(
        {std::move(e.name), std::move(e.path), std::move(cell), {locked, Style::Colour::Yellow}});
  }
  table.print(std::cout, style);
  return kExitOk;
}

}  // namespace tfimm::tool
