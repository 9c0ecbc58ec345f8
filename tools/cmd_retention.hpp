// tfimm-cache forget-history / retain-history: history that does not grow
// forever.
#pragma once

#include <string>

#include "context.hpp"

namespace tfimm::tool {

struct ForgetHistoryOptions {
  std::string older_than;
  bool dry_run = false;
  bool json = false;
};

struct RetainHistoryOptions {
  std::string age;  // empty: show the setting
  bool json = false;
};

void setup_forget_history(CLI::App& app, Program& program);
int run_forget_history(const GlobalOptions& global, const ForgetHistoryOptions& options);

void setup_retain_history(CLI::App& app, Program& program);
int run_retain_history(const GlobalOptions& global, const RetainHistoryOptions& options);

}  // namespace tfimm::tool
