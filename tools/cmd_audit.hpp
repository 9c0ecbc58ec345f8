// tfimm-cache audit: check every registered path and the cache directory.
#pragma once

#include "context.hpp"

namespace tfimm::tool {

struct AuditCmdOptions {
  bool json = false;
  unsigned jobs = 0;  // 0: the library's default
  bool all_hosts = false;
};

void setup_audit(CLI::App& app, Program& program);
int run_audit(const GlobalOptions& global, const AuditCmdOptions& options);

}  // namespace tfimm::tool
