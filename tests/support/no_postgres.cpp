// registry_location() in a build without the PostgreSQL backend: files only.
#include <stdexcept>

#include "testutil.hpp"

namespace tfimm::test {

bool on_postgresql() { return false; }

std::string registry_location(const TestContext& ctx, const std::string& file) {
  return ctx.path(file);
}

}  // namespace tfimm::test
