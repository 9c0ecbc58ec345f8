#include "advice.hpp"

namespace tfimm::tool {
namespace {

const char* advice_for(const RegistryError& error) {
  // Most specific kinds first: they all derive from RegistryError.
  if (dynamic_cast<const RegistryTooNew*>(&error) != nullptr) return nullptr;
  if (dynamic_cast<const RegistryFull*>(&error) != nullptr) return nullptr;
  if (dynamic_cast<const NotARegistry*>(&error) != nullptr) {
    return "--registry FILE or $TFIMM_REGISTRY picks the registry file";
  }
  if (dynamic_cast<const RegistryBusy*>(&error) != nullptr) {
    return "The busy timeout is --busy-timeout MS";
  }
  if (dynamic_cast<const RegistryReadOnly*>(&error) != nullptr) {
    return "`tfimm-cache doctor` shows what this process may do; --registry FILE or "
           "$TFIMM_REGISTRY chooses another registry";
  }
  if (dynamic_cast<const RegistryCorrupt*>(&error) != nullptr) {
    return "`tfimm-cache export` makes the backups `tfimm-cache import` restores";
  }
  return "`tfimm-cache doctor` says more";
}

}  // namespace

std::string with_advice(const RegistryError& error, std::string message) {
  const char* advice = advice_for(error);
  if (advice == nullptr) return message;
  while (!message.empty() && (message.back() == '.' || message.back() == ' ')) message.pop_back();
  return message + ". " + advice;
}

}  // namespace tfimm::tool
