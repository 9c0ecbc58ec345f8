// tfimm-cache list: the model-specific entries.
#pragma once

#include "context.hpp"

namespace tfimm::tool {

struct ListOptions {
  bool json = false;
  unsigned jobs = 0;  // paths checked at once; 0: the library's default
};

void setup_list(CLI::App& app, Program& program);
int run_list(const GlobalOptions& global, const ListOptions& options);

}  // namespace tfimm::tool
