// tfimm-cache where: which registry file is used, and why.
#pragma once

#include "context.hpp"

namespace tfimm::tool {

struct WhereOptions {};

void setup_where(CLI::App& app, Program& program);
int run_where(const GlobalOptions& global, const WhereOptions& options);

}  // namespace tfimm::tool
