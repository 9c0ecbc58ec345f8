// Model names. A name becomes a directory name under the cache directory, so
// a valid name can never point outside it.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace tfimm {

// Longest name accepted, in bytes (the usual file-name limit).
inline constexpr std::size_t kMaxNameBytes = 255;

// Why `name` is not a valid model name, or nothing when it is. Refused: empty,
// "." and "..", any '/' or '\\', NUL or another control character, invalid
// UTF-8, more than kMaxNameBytes bytes, leading or trailing spaces.
// Pure function; safe from any thread.
std::optional<std::string> name_problem(std::string_view name);

// Throws InvalidName, naming the value and the rule it breaks, unless `name`
// is valid. Pure function; safe from any thread.
void check_name(std::string_view name);

}  // namespace tfimm
