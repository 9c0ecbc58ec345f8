#include "cmd_undo.hpp"

#include <iostream>

#include "output.hpp"

namespace tfimm::tool {

namespace {

nlohmann::ordered_json optional_string(const std::optional<std::string>& value) {
  return value ? nlohmann::ordered_json(*value) : nlohmann::ordered_json(nullptr);
}

std::string subject(const std::string& name, const std::string& setting) {
  if (!name.empty()) return printable(name);
  return setting == "cache_dir" ? "the cache directory setting" : "the history retention setting";
}

// One line saying what the undo does to one entry or setting:
// "NAME: OLD -> NEW", with the lock where it matters.
std::string describe(const UndoChange& c) {
  const auto state = [&](const std::optional<std::string>& path, bool locked,
                         const std::string& reason) {
    if (!path) return std::string("(none)");
    std::string text = printable(*path);
    if (c.setting.empty() && locked) {
      text += reason.empty() ? " (locked)" : " (locked: " + printable(reason) + ")";
    }
    return text;
  };
  return subject(c.name, c.setting) + ": " + state(c.old_path, c.old_locked, c.old_lock_reason) +
         " -> " + state(c.new_path, c.new_locked, c.new_lock_reason);
}

}  // namespace

void setup_undo(CLI::App& app, Program& program) {
  auto options = std::make_shared<UndoCommandOptions>();
  auto* sub = app.add_subcommand("undo", "Revert one change set (see `history`)");
  sub->add_option("ID", options->id,
                  "A change-set id, or the id of any history row (meaning its change set)")
      ->required()
      ->check(whole_number());
  sub->add_flag("--force", options->force,
                "Revert even when later changes touched the same entries or settings "
                "(overwriting them)");
  sub->add_flag("--dry-run", options->dry_run, "Show what would change; change nothing");
  sub->add_flag("--json", options->json, "Print the result as JSON");
  sub->footer(
      "Every entry and setting the change set touched gets back the state it had\n"
      "before it, in one transaction: a set restores the path it replaced (or forgets\n"
      "a new entry), a clear, prune or import re-registers what it forgot with its lock,\n"
      "lock and unlock invert, set-dir and unset-dir restore the setting. The undo is\n"
      "recorded as a change set of its own, so undoing it redoes.\n"
      "Refused, changing nothing (exit 2), when a later change set touched any of the\n"
      "same entries or settings: the message names them; --force reverts anyway.\n"
      "JSON fields: change_set, recorded (number or null), dry_run, changes (name,\n"
      "setting, old_path, new_path, old_locked, old_lock_reason, new_locked,\n"
      "new_lock_reason), conflicts (name, setting, change_set, action).\n\n"
      "Example:\n  tfimm-cache history --limit 5\n  tfimm-cache undo 42 --dry-run");
  bind_command(sub, program, options, run_undo);
}

int run_undo(const GlobalOptions& global, const UndoCommandOptions& options) {
  Registry registry = open_registry(global);
  UndoOptions undo;
  undo.force = options.force;
  undo.dry_run = options.dry_run;
  const UndoReport report = registry.undo(options.id, undo);

  if (options.json) {
    auto changes = nlohmann::ordered_json::array();
    for (const auto& c : report.changes) {
      changes.push_back({{"name", c.name.empty() ? nlohmann::ordered_json(nullptr)
                                                 : nlohmann::ordered_json(c.name)},
                         {"setting", c.setting.empty() ? nlohmann::ordered_json(nullptr)
                                                       : nlohmann::ordered_json(c.setting)},
                         {"old_path", optional_string(c.old_path)},
                         {"new_path", optional_string(c.new_path)},
                         {"old_locked", c.old_locked},
                         {"old_lock_reason", c.old_lock_reason},
                         {"new_locked", c.new_locked},
                         {"new_lock_reason", c.new_lock_reason}});
    }
    auto conflicts = nlohmann::ordered_json::array();
    for (const auto& c : report.conflicts) {
      conflicts.push_back({{"name", c.name.empty() ? nlohmann::ordered_json(nullptr)
                                                   : nlohmann::ordered_json(c.name)},
                           {"setting", c.setting.empty() ? nlohmann::ordered_json(nullptr)
                                                         : nlohmann::ordered_json(c.setting)},
                           {"change_set", c.change_set},
                           {"action", c.action}});
    }
    std::cout << dump_json(
        {{"change_set", report.change_set},
         {"recorded", report.recorded == 0 ? nlohmann::ordered_json(nullptr)
                                           : nlohmann::ordered_json(report.recorded)},
         {"dry_run", report.dry_run},
         {"changes", changes},
         {"conflicts", conflicts}});
    return kExitOk;
  }

  const std::string set = "change set " + std::to_string(report.change_set);
  if (report.changes.empty()) {
    std::cout << "nothing to undo: everything " << set
              << " touched is already as it was before it\n";
    return kExitOk;
  }
  for (const auto& c : report.conflicts) {
    std::cerr << "tfimm-cache: note: overwriting the later change to " << subject(c.name, c.setting)
              << " (" << c.action << " in change set " << c.change_set << ")\n";
  }
  std::cout << (report.dry_run ? "would undo " : "undid ") << set;
  if (!report.dry_run) std::cout << " (recorded as change set " << report.recorded << ")";
  std::cout << ":\n";
  for (const auto& c : report.changes) {
    std::cout << "  " << describe(c) << '\n';
  }
  return kExitOk;
}

}  // namespace tfimm::tool
