#include "tfimm/names.hpp"

#include <cstdint>

#include "quote.hpp"
#include "tfimm/errors.hpp"
#include "utf8.hpp"

namespace tfimm {
namespace detail {

// Length of the UTF-8 sequence starting at s[i], or 0 when it is not a
// valid, shortest-form encoding of a Unicode scalar value.
std::size_t utf8_sequence(std::string_view s, std::size_t i) {
  const auto byte = [&](std::size_t k) { return static_cast<std::uint8_t>(s[i + k]); };
  const std::uint8_t b0 = byte(0);
  if (b0 < 0x80) return 1;
  std::size_t len = 0;
  std::uint32_t cp = 0;
  if ((b0 & 0xE0) == 0xC0) {
    len = 2;
    cp = b0 & 0x1Fu;
  } else if ((b0 & 0xF0) == 0xE0) {
    len = 3;
    cp = b0 & 0x0Fu;
  } else if ((b0 & 0xF8) == 0xF0) {
    len = 4;
    cp = b0 & 0x07u;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  for (std::size_t k = 1; k < len; ++k) {
    if ((byte(k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (byte(k) & 0x3Fu);
  }
  const bool overlong =
      (len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000);
  if (overlong || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

bool valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t len = utf8_sequence(s, i);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

}  // namespace detail

std::optional<std::string> name_problem(std::string_view name) {
  if (name.empty()) return "a name must not be empty";
  if (name == "." || name == "..") return "'.' and '..' are not names";
  if (name.size() > kMaxNameBytes) {
    return "a name is at most " + std::to_string(kMaxNameBytes) + " bytes, this one has " +
           std::to_string(name.size());
  }
  if (name.front() == ' ' || name.back() == ' ') {
    return "a name must not start or end with a space";
  }
  for (std::size_t i = 0; i < name.size();) {
    const auto c = static_cast<unsigned char>(name[i]);
    if (c >= 0x20 && c < 0x7F && c != '/' && c != '\\') {  // printable ASCII, the usual case
      ++i;
      continue;
    }
    if (c == '/' || c == '\\') return "a name must not contain '/' or '\\'";
    if (c == 0) return "a name must not contain a NUL byte";
    if (c < 0x20 || c == 0x7F) return "a name must not contain control characters";
    const std::size_t len = detail::utf8_sequence(name, i);
    if (len == 0) return "a name must be valid UTF-8";
    // C1 control characters (U+0080..U+009F, encoded C2 80..C2 9F).
    if (len == 2 && c == 0xC2 && static_cast<unsigned char>(name[i + 1]) < 0xA0) {
      return "a name must not contain control characters";
    }
    i += len;
  }
  return std::nullopt;
}

void check_name(std::string_view name) {
  if (auto problem = name_problem(name)) {
    throw InvalidName("invalid model name " + detail::quote(name) + ": " + *problem);
  }
}

}  // namespace tfimm
