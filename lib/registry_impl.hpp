// Registry's private state, shared by registry.cpp, audit.cpp and transfer.cpp.
#pragma once

#include <memory>

#include "call_lock.hpp"
#include "storage/store.hpp"
#include "storage/write_batch.hpp"
#include "tfimm/registry.hpp"

namespace tfimm {

struct Registry::Impl {
  Impl(RegistryLocation where, RegistryOptions options)
      : address(where.path),
        location(shown(std::move(where))),
        busy_timeout(options.busy_timeout),
        mutex(location.path, [this] { forget_store(); }),
        store(detail::open_store(address, busy_timeout)),
        transaction(*this) {}

  // Where the store is, as given (a server URI keeps its password here, and
  // only here); `location.path` is what may be shown.
  std::string address;
  RegistryLocation location;
  std::chrono::milliseconds busy_timeout;
  detail::CallMutex mutex;  // one connection, calls serialised (see call_lock.hpp)
  std::unique_ptr<detail::Store> store;
  // The one Transaction passed to every body: it lives as long as the
  // Registry, so one kept past its body is refused, not a dangling reference.
  Transaction transaction;
  // Inside a transaction() body: its writer, and the sets the body made that
  // are not written yet (written together, see write_pending()).
  detail::Writer* writer = nullptr;
  detail::WriteBatch pending;

  // A child after fork(), where the thread that held this registry does not
  // exist: its connection and pending state belong to the parent.
  void forget_store() noexcept {
    store = detail::open_store(address, busy_timeout);
    writer = nullptr;
    pending.clear();
  }

  static RegistryLocation shown(RegistryLocation where) {
    where.path = detail::shown_location(where.path);
    return where;
  }

  // Writes the pending sets of a transaction() body and empties the batch:
  // before the body reads or makes any other change, and at its end.
  void write_pending();

  // The domain's changes, through the writer of a write transaction.
  void set_model(detail::Writer& w, const std::string& name, const std::string& normal_path);
  bool clear_model(detail::Writer& w, const std::string& name);
  void set_dir(detail::Writer& w, const std::string& normal_path);
  void unset_dir(detail::Writer& w);

  // Reads that work whether or not the registry file exists.
  std::optional<std::string> stored_dir();
  // The entry's path, else <cache dir>/<name> if it exists; with no reader
  // (no registry), only the latter.
  std::optional<std::string> cached_model_path(const std::string& name, detail::Reader* r);
};

namespace detail {
inline constexpr const char* kCacheDirKey = "cache_dir";
}

}  // namespace tfimm
