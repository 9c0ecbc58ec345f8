// tfimm-cache prune: forget entries whose path is gone.
#pragma once

#include <optional>
#include <string>

#include "context.hpp"

namespace tfimm::tool {

struct PruneCmdOptions {
  bool dry_run = false;
  std::optional<std::string> expire;  // a duration for parse_duration()
  unsigned jobs = 0;
  bool all_hosts = false;
};

void setup_prune(CLI::App& app, Program& program);
int run_prune(const GlobalOptions& global, const PruneCmdOptions& options);

}  // namespace tfimm::tool
