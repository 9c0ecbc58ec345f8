#include "storage/actor.hpp"

#include <pwd.h>
#include <unistd.h>

#include <vector>

namespace tfimm::detail {

const Actor& actor_base() {
  static const Actor base = [] {
    Actor a;
    std::vector<char> buf(16384);
    passwd pw{};
    passwd* found = nullptr;
    if (::getpwuid_r(::geteuid(), &pw, buf.data(), buf.size(), &found) == 0 && found) {
      a.user = pw.pw_name;
    } else {
      a.user = std::to_string(::geteuid());
    }
    char host[256] = {};
    if (::gethostname(host, sizeof host - 1) == 0) a.host = host;
    return a;
  }();
  return base;
}

}  // namespace tfimm::detail
