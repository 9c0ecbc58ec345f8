// tfimm-cache dir / set-dir / unset-dir: the cache directory setting.
#pragma once

#include <string>

#include "context.hpp"

namespace tfimm::tool {

struct DirOptions {
  bool show_origin = false;
};

struct SetDirOptions {
  std::string path;
};

struct UnsetDirOptions {};

void setup_dir(CLI::App& app, Program& program);
int run_dir(const GlobalOptions& global, const DirOptions& options);

void setup_set_dir(CLI::App& app, Program& program);
int run_set_dir(const GlobalOptions& global, const SetDirOptions& options);

void setup_unset_dir(CLI::App& app, Program& program);
int run_unset_dir(const GlobalOptions& global, const UnsetDirOptions& options);

}  // namespace tfimm::tool
