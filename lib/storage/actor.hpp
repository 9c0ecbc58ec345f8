// Who makes changes from this process, for the history rows.
#pragma once

#include <string>

namespace tfimm::detail {

struct Actor {
  std::string user;
  std::string host;
};

// The user and host of this process, looked up once.
const Actor& actor_base();

}  // namespace tfimm::detail
