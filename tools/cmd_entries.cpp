#include "cmd_entries.hpp"

#include <iostream>

#include "output.hpp"
#include "tfimm/names.hpp"
#include "tfimm/paths.hpp"

namespace tfimm::tool {

void setup_set(CLI::App& app, Program& program) {
  auto options = std::make_shared<SetOptions>();
  auto* sub = app.add_subcommand("set", "Register the cache location of one model");
  sub->add_option("NAME", options->name, "Model name, e.g. resnet18")->required();
  sub->add_option("PATH", options->path,
                  "Where the model's files are; stored absolute and normalised "
                  "(need not exist yet)")
      ->required();
  sub->footer(
      "Replaces any previous location of NAME. Prints the path as stored.\n\n"
      "Example:\n  tfimm-cache set resnet18 ~/models/resnet18");
  bind_command(sub, program, options, run_set);
}

int run_set(const GlobalOptions& global, const SetOptions& options) {
  Registry registry = open_registry(global);
  registry.set_model_cache(options.name, options.path);
  std::optional<Entry> entry = registry.entry(options.name);
  // Another process may have cleared it in between; report what we stored.
  std::string stored = entry ? entry->path : normalize_path(options.path);
  std::cout << "registered " << printable(options.name) << ": " << printable(stored) << '\n';
  std::string detail;
  PathStatus status = check_path(stored, &detail);
  if (status == PathStatus::Missing) {
    std::cerr << "tfimm-cache: note: " << printable(stored) << " does not exist yet\n";
  } else if (status != PathStatus::Ok) {
    std::cerr << "tfimm-cache: note: " << printable(stored) << ": " << to_string(status)
              << (detail.empty() ? "" : " (" + printable(detail) + ")") << '\n';
  }
  return kExitOk;
}

void setup_clear(CLI::App& app, Program& program) {
  auto options = std::make_shared<ClearOptions>();
  auto* sub =
      app.add_subcommand("clear", "Forget the cache location of models (never deletes files)");
  sub->add_option("NAME", options->names, "Model names")->required();
  sub->footer(
      "All names are checked first; then every entry is forgotten in one transaction,\n"
      "or none is. Files on disk are never touched. A name without an entry is not\n"
      "an error.\n\n"
      "Example:\n  tfimm-cache clear resnet18 vit_base");
  bind_command(sub, program, options, run_clear);
}

int run_clear(const GlobalOptions& global, const ClearOptions& options) {
  for (const auto& name : options.names) check_name(name);  // refuse before changing anything
  Registry registry = open_registry(global);
  std::vector<bool> removed;
  registry.transaction([&](Transaction& txn) {
    removed.clear();  // the body may be retried
    for (const auto& name : options.names) removed.push_back(txn.clear_model_cache(name));
  });
  for (std::size_t i = 0; i < options.names.size(); ++i) {
    if (removed[i]) {
      std::cout << "forgot " << printable(options.names[i]) << '\n';
    } else {
      std::cout << printable(options.names[i]) << ": no entry, nothing to forget\n";
    }
  }
  return kExitOk;
}

}  // namespace tfimm::tool
