// tfimm-cache du: disk usage of the cached models, as du -s counts it.
#pragma once

#include <string>
#include <vector>

#include "context.hpp"

namespace tfimm::tool {

struct DuOptions {
  std::vector<std::string> names;  // empty: every entry and cache-directory model
  bool json = false;
  unsigned jobs = 0;  // directories read at once; 0: the library's default
  bool all_hosts = false;
};

void setup_du(CLI::App& app, Program& program);
int run_du(const GlobalOptions& global, const DuOptions& options);

}  // namespace tfimm::tool
