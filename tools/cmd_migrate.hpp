// tfimm-cache migrate: show or apply the registry schema migrations.
#pragma once

#include "context.hpp"

namespace tfimm::tool {

struct MigrateOptions {
  bool status_only = false;
};

void setup_migrate(CLI::App& app, Program& program);
int run_migrate(const GlobalOptions& global, const MigrateOptions& options);

}  // namespace tfimm::tool
