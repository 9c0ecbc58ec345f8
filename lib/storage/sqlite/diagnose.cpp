// What `doctor` shows about an SQLite registry: its file, its side files,
// its schema and integrity, read without changing anything.
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>

#include <cstdio>

#include "access.hpp"
#include "fs.hpp"
#include "storage/sqlite/sqlite_store.hpp"

namespace tfimm::detail {
namespace {

// "user:group" of a file, by name where the system knows them.
std::string owner_of(const struct stat& st) {
  const passwd* pw = ::getpwuid(st.st_uid);
  const group* gr = ::getgrgid(st.st_gid);
  return (pw ? pw->pw_name : std::to_string(st.st_uid)) + ":" +
         (gr ? gr->gr_name : std::to_string(st.st_gid));
}

std::string mode_of(const struct stat& st) {
  char mode[8];
  std::snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
  return mode;
}

// Whether whoever the mode bits let write the registry `reg` may also write
// `side` (its -wal or -shm file): its owner, its group, everyone.
bool writable_by_registry_writers(const struct stat& reg, const struct stat& side) {
  const bool by_all = (side.st_mode & S_IWOTH) != 0;
  const bool by_group = side.st_gid == reg.st_gid && (side.st_mode & S_IWGRP) != 0;
  const bool by_owner = side.st_uid == reg.st_uid && (side.st_mode & S_IWUSR) != 0;
  const bool owner_ok = (reg.st_mode & S_IWUSR) == 0 || by_owner || by_group || by_all;
  const bool group_ok = (reg.st_mode & S_IWGRP) == 0 || by_group || by_all;
  const bool all_ok = (reg.st_mode & S_IWOTH) == 0 || by_all;
  return owner_ok && group_ok && all_ok;
}

// A warning when the registry's -wal or -shm file cannot be written by some
// user who can write the registry. SQLite makes them with the registry's mode
// when it creates them; ones left by a user who could only read the registry
// then keep everyone else from writing it.
std::optional<std::string> side_file_warning(const std::string& path, const struct stat& st,
                                             const std::string& owner,
                                             const std::string& file_mode) {
  std::vector<std::string> narrower;
  for (const char* suffix : {"-wal", "-shm"}) {
    struct stat side {};
    const std::string file = path + suffix;
    if (::stat(file.c_str(), &side) == 0 && !writable_by_registry_writers(st, side)) {
      narrower.push_back(file);
    }
  }
  if (narrower.empty()) return std::nullopt;
  struct stat side {};
  ::stat(narrower.front().c_str(), &side);
  const bool one = narrower.size() == 1;
  const std::string files = one ? narrower[0] : narrower[0] + " " + narrower[1];
  return files + (one ? " has" : " have") + " owner " + owner_of(side) + " and mode " +
         mode_of(side) + ", but the registry has owner " + owner + " and mode " + file_mode +
         ": some users who can write the registry cannot write " + (one ? "it" : "them") +
         ", and their writes fail with RegistryReadOnly. Give " + (one ? "it" : "them") +
         " the registry's group and mode, as " + (one ? "its" : "their") +
         " owner or root (safe while the registry is in use): chgrp " +
         owner.substr(owner.find(':') + 1) + " " + files + " && chmod " + file_mode + " " + files;
}

}  // namespace

MigrationStatus SqliteStore::migration_status() { return inspect_migrations(path_); }

void SqliteStore::diagnose(Diagnosis& d, const std::function<void(Reader&)>& also_read) {
  struct stat st {};
  d.exists = ::stat(d.path.c_str(), &st) == 0;
  d.network_fs = on_network_fs(d.path, &d.fs_type);
  d.write_problem = write_problem(d.path);
  if (d.exists) {
    d.file_mode = mode_of(st);
    d.owner = owner_of(st);
    if (S_ISREG(st.st_mode) && (st.st_mode & S_IWOTH) != 0) {
      d.warnings.push_back("the registry file is writable by every user (mode " + d.file_mode +
                           "); anyone can change where models are loaded from");
    }
    if (auto warning = side_file_warning(d.path, st, d.owner, d.file_mode)) {
      d.warnings.push_back(std::move(*warning));
    }
  } else if (!d.write_problem.empty()) {
    d.warnings.push_back("the registry does not exist, and " + d.write_problem +
                         ": every change will fail until that is fixed");
  }
  if (d.exists) {
    try {
      // The schema first, read-only: a registry that needs migrating is
      // reported, not migrated.
      const auto status = inspect_migrations(d.path);
      d.schema = status.current;
      d.pending = status.pending;
      // A connection of its own that only looks: the registry's own one
      // would switch the journal mode to what this process would use.
      SqliteStore probe(d.path, std::chrono::milliseconds(5000));
      probe.inspect_ = true;
      if (d.pending.empty() && probe.open(false)) {
        probe.read(
            [&](Reader& r) {
              d.integrity = probe.integrity_check();
              d.journal_mode = probe.journal_mode();
              d.entries = r.model_count();
              also_read(r);
            },
            Consistency::Snapshot);
        if (d.integrity != "ok") d.warnings.push_back("integrity check failed: " + d.integrity);
      } else if (!d.pending.empty()) {
        d.warnings.push_back(
            "the registry has schema " + std::to_string(d.schema) + " and needs upgrading to " +
            std::to_string(schema_version()) +
            (d.write_problem.empty()
                 ? "; the next command that opens it upgrades it (or `tfimm-cache migrate`)"
                 : ", which this process cannot do: " + d.write_problem +
                       ". Run `tfimm-cache migrate` as a user who can write it"));
      }
    } catch (const RegistryTooNew& e) {
      d.schema = e.found_version();
      d.problem = e.what();
    } catch (const RegistryError& e) {
      d.problem = e.what();
    }
    if (!d.problem.empty()) d.warnings.push_back(d.problem);
    if (d.problem.empty() && !d.write_problem.empty()) {
      d.warnings.push_back("changes to the registry will fail: " + d.write_problem);
    }
  }
  if (d.network_fs) {
    d.warnings.push_back(
        "the registry is on a network file system (" + d.fs_type +
        "): it uses SQLite's rollback journal instead of WAL, and is only as "
        "safe as that file system's locks; prefer a local disk, or, for a registry "
        "shared by several machines, a PostgreSQL server (a postgresql:// "
        "location)");
  }
}

}  // namespace tfimm::detail
