// Errors thrown by the tfimm-cache library.
//
// One hierarchy rooted in tfimm::Error. Each kind is named for what a caller
// can do about it: fix the input (InvalidName, InvalidPath, InvalidInput) or
// fix the registry file and its surroundings (RegistryError and its kinds),
// or fix the calling code (TransactionMisuse).
// Every message names the refused value or the file, and the next step.
#pragma once

#include <stdexcept>
#include <string>

namespace tfimm {

// Base of every exception the library throws on purpose.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A model name that could escape the cache directory or is not a name at all.
class InvalidName : public Error {
 public:
  using Error::Error;
};

// A path that cannot be stored (empty, contains NUL, unknown ~user, ...).
class InvalidPath : public Error {
 public:
  using Error::Error;
};

// Other bad input: a malformed import file, an unknown model for lock/unlock,
// a malformed duration.
class InvalidInput : public Error {
 public:
  using Error::Error;
};

// An operation named a model that has no entry in the registry.
class UnknownModel : public InvalidInput {
 public:
  using InvalidInput::InvalidInput;
};

// A Registry used against the rules of transaction(): one of its members
// called inside its own transaction body (use the Transaction& passed to the
// body instead), or a Transaction used outside its body (after the body
// returned, from another thread, or in a process forked inside the body).
// Nothing was changed.
class TransactionMisuse : public Error {
 public:
  using Error::Error;
};

// The registry file cannot be used. path() names the file.
class RegistryError : public Error {
 public:
  RegistryError(const std::string& path, const std::string& message)
      : Error(message), path_(path) {}
  const std::string& path() const noexcept { return path_; }

 private:
  std::string path_;
};

// The file exists but is not a tfimm-cache registry (another application's
// SQLite database, or not SQLite at all). It is left untouched.
class NotARegistry : public RegistryError {
 public:
  using RegistryError::RegistryError;
};

// The registry was written by a newer version of tfimm-cache.
class RegistryTooNew : public RegistryError {
 public:
  RegistryTooNew(const std::string& path, const std::string& message, int found_version,
                 int known_version)
      : RegistryError(path, message),
        found_version_(found_version),
        known_version_(known_version) {}
  int found_version() const noexcept { return found_version_; }
  int known_version() const noexcept { return known_version_; }

 private:
  int found_version_;
  int known_version_;
};

// SQLite reports the file as damaged.
class RegistryCorrupt : public RegistryError {
 public:
  using RegistryError::RegistryError;
};

// Another process held the registry locked for longer than the busy timeout.
class RegistryBusy : public RegistryError {
 public:
  using RegistryError::RegistryError;
};

// A write was asked of a registry that this process can only read.
class RegistryReadOnly : public RegistryError {
 public:
  using RegistryError::RegistryError;
};

// A write did not fit: the disk holding the registry is full, or a quota or
// a file-size limit was reached. Reads still work; free space and retry.
class RegistryFull : public RegistryError {
 public:
  using RegistryError::RegistryError;
};

}  // namespace tfimm
