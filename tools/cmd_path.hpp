// tfimm-cache path: where a model is cached, as tfimm's cached_model_path()
// answers it.
#pragma once

#include <string>

#include "context.hpp"

namespace tfimm::tool {

struct PathOptions {
  std::string name;
  bool explain = false;
};

void setup_path(CLI::App& app, Program& program);
int run_path(const GlobalOptions& global, const PathOptions& options);

}  // namespace tfimm::tool
