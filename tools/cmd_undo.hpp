// tfimm-cache undo: revert one change set.
#pragma once

#include <cstdint>

#include "context.hpp"

namespace tfimm::tool {

struct UndoCommandOptions {
  std::int64_t id = 0;
  bool force = false;
  bool dry_run = false;
  bool json = false;
};

void setup_undo(CLI::App& app, Program& program);
int run_undo(const GlobalOptions& global, const UndoCommandOptions& options);

}  // namespace tfimm::tool
