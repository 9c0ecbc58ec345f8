// tfimm-cache set / clear: register and forget model-specific locations.
#pragma once

#include <string>
#include <vector>

#include "context.hpp"

namespace tfimm::tool {

struct SetOptions {
  std::string name;
  std::string path;
};

struct ClearOptions {
  std::vector<std::string> names;
};

void setup_set(CLI::App& app, Program& program);
int run_set(const GlobalOptions& global, const SetOptions& options);

void setup_clear(CLI::App& app, Program& program);
int run_clear(const GlobalOptions& global, const ClearOptions& options);

}  // namespace tfimm::tool
