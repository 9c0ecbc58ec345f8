// Quoting of user-supplied values in messages.
#pragma once

#include <cstdio>
#include <string>
#include <string_view>

namespace tfimm::detail {

// `value` in double quotes, with control characters, backslash, quote and
// bytes >= 0x80 that may be invalid UTF-8 kept visible as escapes, and cut
// after 120 bytes, so that a message stays one readable line.
inline std::string quote(std::string_view value) {
  std::string out = "\"";
  std::size_t shown = 0;
  for (char ch : value) {
    if (++shown > 120) {
      out += "...";
      break;
    }
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20 || c == 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += ch;
    }
  }
  out += '"';
  return out;
}

}  // namespace tfimm::detail
