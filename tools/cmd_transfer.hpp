// tfimm-cache export / import: back up and restore the registry contents.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "context.hpp"

namespace tfimm::tool {

struct ExportOptions {
  std::string file = "-";  // "-": standard output
  bool with_history = false;
};

struct ImportCmdOptions {
  std::string file;  // "-": standard input
  bool replace = false;
  std::vector<std::string> rewrites;  // "OLD=NEW"
  bool dry_run = false;
};

void setup_export(CLI::App& app, Program& program);
int run_export(const GlobalOptions& global, const ExportOptions& options);

void setup_import(CLI::App& app, Program& program);
int run_import(const GlobalOptions& global, const ImportCmdOptions& options);

}  // namespace tfimm::tool
