// tfimm-cache lock / unlock: protect entries from prune.
#pragma once

#include <string>

#include "context.hpp"

namespace tfimm::tool {

struct LockOptions {
  std::string name;
  std::string reason;
};

struct UnlockOptions {
  std::string name;
};

void setup_lock(CLI::App& app, Program& program);
int run_lock(const GlobalOptions& global, const LockOptions& options);

void setup_unlock(CLI::App& app, Program& program);
int run_unlock(const GlobalOptions& global, const UnlockOptions& options);

}  // namespace tfimm::tool
