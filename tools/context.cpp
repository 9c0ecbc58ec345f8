#include "context.hpp"

#include <chrono>

#include "output.hpp"

namespace tfimm::tool {

CLI::Validator whole_number() {
  return CLI::Validator(
      [](std::string& value) -> std::string {
        if (value.empty() || value.find_first_not_of("0123456789") != std::string::npos) {
          return "expected a whole number (0 or more), got '" + printable(value) + "'";
        }
        return {};
      },
      "");
}

Registry open_registry(const GlobalOptions& global) {
  RegistryOptions options;
  if (global.busy_timeout) {
    options.busy_timeout = std::chrono::milliseconds(*global.busy_timeout);
  }
  if (global.registry) {
    return Registry(*global.registry, options);
  }
  return Registry(options);
}

}  // namespace tfimm::tool
