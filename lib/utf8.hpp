// UTF-8 validation, shared by name checks and the export format.
#pragma once

#include <cstddef>
#include <string_view>

namespace tfimm::detail {

// Length of the UTF-8 sequence starting at s[i], or 0 when it is not a valid,
// shortest-form encoding of a Unicode scalar value.
std::size_t utf8_sequence(std::string_view s, std::size_t i);

// Whether all of `s` is valid UTF-8.
bool valid_utf8(std::string_view s);

}  // namespace tfimm::detail
