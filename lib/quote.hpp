// How user-supplied values (names, paths, values of variables) are shown in
// messages and tables: one function, so that a value looks the same in an
// error message as in `tfimm-cache list`.
#pragma once

#include <cstdio>
#include <string>
#include <string_view>

#include "utf8.hpp"

namespace tfimm::detail {

// `value` safe to show on one line: newline and tab as \n and \t, other
// control characters (C0, DEL, and C1, which some terminals obey) and bytes
// that are not valid UTF-8 as \xNN, one per byte; valid UTF-8 is kept.
// With `in_quotes`, '"' and '\' are escaped too, so the quoted text is
// unambiguous.
inline std::string escape(std::string_view value, bool in_quotes = false) {
  std::string out;
  out.reserve(value.size());
  const auto hex = [&out](unsigned char c) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "\\x%02X", static_cast<unsigned>(c));
    out += buf;
  };
  for (std::size_t i = 0; i < value.size();) {
    const auto c = static_cast<unsigned char>(value[i]);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7F) {
      hex(c);
    } else if (in_quotes && (c == '"' || c == '\\')) {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c >= 0x80) {
      const std::size_t len = utf8_sequence(value, i);
      const bool c1 = len == 2 && c == 0xC2 && static_cast<unsigned char>(value[i + 1]) < 0xA0;
      if (len == 0 || c1) {
        hex(c);  // the following bytes are looked at on their own
      } else {
        out.append(value.substr(i, len));
        i += len;
        continue;
      }
    } else {
      out += static_cast<char>(c);
    }
    ++i;
  }
  return out;
}

// `value` escaped (see escape()) in double quotes, cut after 120 bytes, so
// that a message stays one readable line.
inline std::string quote(std::string_view value) {
  constexpr std::size_t kShown = 120;
  if (value.size() <= kShown) return "\"" + escape(value, true) + "\"";
  std::size_t cut = kShown;
  // Not in the middle of a UTF-8 sequence.
  while (cut > 0 && (static_cast<unsigned char>(value[cut]) & 0xC0u) == 0x80u) --cut;
  return "\"" + escape(value.substr(0, cut), true) + "...\"";
}

}  // namespace tfimm::detail
