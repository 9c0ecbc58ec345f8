#include "cmd_lock.hpp"

#include <iostream>

#include "output.hpp"

namespace tfimm::tool {

void setup_lock(CLI::App& app, Program& program) {
  auto options = std::make_shared<LockOptions>();
  auto* sub = app.add_subcommand("lock", "Keep an entry even when its path is missing");
  sub->add_option("NAME", options->name, "Model name (must have an entry)")->required();
  sub->add_option("--reason", options->reason, "Why it is locked, shown by list and prune")
      ->type_name("TEXT");
  sub->footer(
      "prune never forgets a locked entry, e.g. one on a disk that is sometimes\n"
      "unmounted.\n\n"
      "Example:\n  tfimm-cache lock resnet18 --reason \"on the USB disk\"");
  bind_command(sub, program, options, run_lock);
}

int run_lock(const GlobalOptions& global, const LockOptions& options) {
  Registry registry = open_registry(global);
  registry.lock(options.name, options.reason);
  std::cout << "locked " << printable(options.name);
  if (!options.reason.empty()) std::cout << " (" << printable(options.reason) << ")";
  std::cout << '\n';
  return kExitOk;
}

void setup_unlock(CLI::App& app, Program& program) {
  auto options = std::make_shared<UnlockOptions>();
  auto* sub = app.add_subcommand("unlock", "Let prune forget an entry again");
  sub->add_option("NAME", options->name, "Model name (must have an entry)")->required();
  sub->footer("Example:\n  tfimm-cache unlock resnet18");
  bind_command(sub, program, options, run_unlock);
}

int run_unlock(const GlobalOptions& global, const UnlockOptions& options) {
  Registry registry = open_registry(global);
  if (registry.unlock(options.name)) {
    std::cout << "unlocked " << printable(options.name) << '\n';
  } else {
    std::cout << printable(options.name) << " was not locked\n";
  }
  return kExitOk;
}

}  // namespace tfimm::tool
