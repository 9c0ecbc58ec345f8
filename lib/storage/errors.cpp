#include "storage/errors.hpp"

#include "tfimm/errors.hpp"

namespace tfimm::detail {

void raise(const Failure& f) {
  const std::string& where = f.where;
  // Every operation reads as a phrase with the registry after it: "could not
  // record history in /srv/registry.db".
  const std::string doing = f.operation + " " + where;
  switch (f.kind) {
    case Failure::Kind::Busy:
      throw RegistryBusy(where, "registry " + where +
                                    " is busy: another process held its lock for longer than "
                                    "the busy timeout of " +
                                    std::to_string(f.busy_timeout.count()) + " ms, so this " +
                                    "process could not " + doing +
                                    "; nothing was changed. Retry, or raise the busy timeout");
    case Failure::Kind::ReadOnlyFileSystem:
    case Failure::Kind::ReadOnly: {
      const bool fs = f.kind == Failure::Kind::ReadOnlyFileSystem;
      throw RegistryReadOnly(
          where, "registry " + where +
                     (fs ? " is on a read-only file system"
                         : " is read-only for this process (file or directory permissions)") +
                     "; could not " + doing + ", nothing was changed. " +
                     (fs ? "To change it, use a copy on a writable file system"
                         : "Ask its owner for write access, or use another registry"));
    }
    case Failure::Kind::Corrupt:
      throw RegistryCorrupt(where, "registry " + where + " is damaged (" + f.detail +
                                       "); could not " + doing +
                                       ", nothing was changed. Restore it from a backup (an "
                                       "export), or move it aside");
    case Failure::Kind::Full:
      throw RegistryFull(where, "the disk holding registry " + where +
                                    " is full (or a quota or file-size limit was reached); "
                                    "could not " +
                                    doing + ", nothing was changed. Free space and retry");
    case Failure::Kind::CannotOpen:
      throw RegistryError(where, "cannot open registry " + where + ": " + f.detail);
    case Failure::Kind::Other:
      break;
  }
  throw RegistryError(where, "could not " + doing + ": " + f.detail);
}

}  // namespace tfimm::detail
