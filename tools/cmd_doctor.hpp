// tfimm-cache doctor: check the registry file and its surroundings.
#pragma once

#include "context.hpp"

namespace tfimm::tool {

struct DoctorOptions {};

void setup_doctor(CLI::App& app, Program& program);
int run_doctor(const GlobalOptions& global, const DoctorOptions& options);

}  // namespace tfimm::tool
