// The next step for a registry error, in the tool's words: the library says
// what happened and what to do in its own terms; only the tool knows its
// options and commands.
#pragma once

#include <string>

#include "tfimm/errors.hpp"

namespace tfimm::tool {

// `message` (the error's text) with the tool's advice for the kind of
// `error` appended as a sentence, when there is any.
std::string with_advice(const RegistryError& error, std::string message);

}  // namespace tfimm::tool
