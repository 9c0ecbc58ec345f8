#include "cmd_history.hpp"

#include <iostream>

#include "output.hpp"

namespace tfimm::tool {

namespace {

nlohmann::ordered_json optional_string(const std::optional<std::string>& value) {
  return value ? nlohmann::ordered_json(*value) : nlohmann::ordered_json(nullptr);
}

template <typename T>
nlohmann::ordered_json optional_value(const std::optional<T>& value) {
  return value ? nlohmann::ordered_json(*value) : nlohmann::ordered_json(nullptr);
}

// Rows printed per aligned block of the text table: the listing holds this
// many at most, however long the history.
constexpr std::size_t kBlock = 1000;

// What the text table's NOTE column says about a row, beyond its paths.
std::string note(const HistoryRecord& r) {
  std::string out;
  const auto add = [&](const std::string& text) { out += (out.empty() ? "" : "; ") + text; };
  if (r.undoes) add("undo of " + std::to_string(*r.undoes));
  if (r.new_locked && *r.new_locked && r.new_lock_reason && !r.new_lock_reason->empty()) {
    add("reason: " + *r.new_lock_reason);
  }
  if (r.forgot_rows) {
    add("forgot " + std::to_string(*r.forgot_rows) + " rows up to " +
        std::to_string(r.forgot_through.value_or(0)));
  }
  return out;
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
      "Actions: set, clear, set_dir, unset_dir, lock, unlock, prune, import, retain\n"
      "(the history retention setting), forget (history forgotten).\n"
      "Every row belongs to a change set: the rows one command wrote together; its\n"
      "id is that of its first row, and `tfimm-cache undo ID` reverts it.\n"
      "Text columns: ID, SET (change set), TIME (UTC), ACTION, NAME, OLD, NEW,\n"
      "BY (user@host pid), NOTE (undo of N, lock reason, rows forgotten).\n"
      "JSON fields: id (number), at (ISO 8601 UTC string), action, name (string, or\n"
      "null for cache-directory changes), old_path, new_path (string or null),\n"
      "user, host (string), pid (number), change_set (number), undoes (number or\n"
      "null), old_locked, new_locked (boolean or null), old_lock_reason,\n"
      "new_lock_reason (string or null), old_missing_since (ISO time or null),\n"
      "forgot_through, forgot_rows (number or null).\n"
      "Rows are written as they are read: memory does not grow with the history.\n\n"
      "Example:\n  tfimm-cache history --limit 20\n  tfimm-cache history resnet18 --json");
  bind_command(sub, program, options, run_history);
}

int run_history(const GlobalOptions& global, const HistoryOptions& options) {
  Registry registry = open_registry(global);
  std::optional<std::string> name;
  if (!options.name.empty()) name = options.name;

  if (options.json) {
    JsonArrayWriter out(std::cout);
    registry.history(name, options.limit, [&](const HistoryRecord& r) {
      out.add({{"id", r.id},
               {"at", iso_time(r.at, true)},
               {"action", r.action},
               {"name",
                r.name.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(r.name)},
               {"old_path", optional_string(r.old_path)},
               {"new_path", optional_string(r.new_path)},
               {"user", r.user},
               {"host", r.host},
               {"pid", r.pid},
               {"change_set", r.change_set},
               {"undoes", optional_value(r.undoes)},
               {"old_locked", optional_value(r.old_locked)},
               {"old_lock_reason", optional_string(r.old_lock_reason)},
               {"new_locked", optional_value(r.new_locked)},
               {"new_lock_reason", optional_string(r.new_lock_reason)},
               {"old_missing_since",
                r.old_missing_since ? nlohmann::ordered_json(iso_time(*r.old_missing_since, true))
                                    : nlohmann::ordered_json(nullptr)},
               {"forgot_through", optional_value(r.forgot_through)},
               {"forgot_rows", optional_value(r.forgot_rows)}});
    });
    out.finish();
    return kExitOk;
  }

  Style style(stdout_wants_colour());
  Table table({"ID", "SET", "TIME", "ACTION", "NAME", "OLD", "NEW", "BY", "NOTE"});
  std::vector<std::size_t> widths;
  bool printed = false;
  const auto flush = [&] {
    table.print_block(std::cout, style, widths, !printed);
    printed = true;
    table.clear();
  };
  registry.history(name, options.limit, [&](const HistoryRecord& r) {
    const bool setting = r.name.empty();
    table.add({std::to_string(r.id), std::to_string(r.change_set), iso_time(r.at), r.action,
               !setting               ? r.name
               : r.action == "retain" ? "(history retention)"
               : r.action == "forget" ? "(history)"
                                      : "(cache dir)",
               r.old_path ? *r.old_path : "-", r.new_path ? *r.new_path : "-",
               r.user + "@" + r.host + " pid " + std::to_string(r.pid), note(r)});
    if (table.size() >= kBlock) flush();
  });
  if (table.size() > 0) flush();
  if (!printed && stdout_is_terminal()) std::cout << "no changes recorded\n";
  return kExitOk;
}

}  // namespace tfimm::tool
