// tfimm-cache history: the recorded changes, newest first.
#pragma once

#include <cstddef>
#include <string>

#include "context.hpp"

namespace tfimm::tool {

struct HistoryOptions {
  std::string name;  // empty: every change
  bool json = false;
  std::size_t limit = 0;  // 0: all
};

void setup_history(CLI::App& app, Program& program);
int run_history(const GlobalOptions& global, const HistoryOptions& options);

}  // namespace tfimm::tool
