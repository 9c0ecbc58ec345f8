// Registry::undo: reverting one change set, recorded as a change set of its
// own. Written above the storage interface, once for every backend.
#include <map>
#include <set>

#include "fs.hpp"
#include "registry_impl.hpp"
#include "storage/rules.hpp"

namespace tfimm {

using Lock = detail::CallLock;
namespace {

using detail::HistoryQuery;
using detail::Writer;

// What one history row changed: an entry (by name) or a setting.
struct Key {
  std::string name;     // model name; empty for a setting
  std::string setting;  // empty for an entry
  bool operator<(const Key& other) const {
    // Entries in name order, settings after them.
    if (setting.empty() != other.setting.empty()) return setting.empty();
    return setting == other.setting ? name < other.name : setting < other.setting;
  }
};

// The setting a row with no model name changed; empty for a forget row.
std::string setting_of(const HistoryRecord& row) {
  if (!row.name.empty()) return {};
  if (row.action == "set_dir" || row.action == "unset_dir") return detail::kCacheDirKey;
  if (row.action == "retain") return detail::kRetentionKey;
  return {};
}

std::optional<Key> key_of(const HistoryRecord& row) {
  if (!row.name.empty()) return Key{row.name, {}};
  auto setting = setting_of(row);
  if (setting.empty()) return std::nullopt;
  return Key{{}, std::move(setting)};
}

std::string describe(const Key& key) {
  if (!key.name.empty()) return key.name;
  return key.setting == detail::kCacheDirKey ? "the cache directory setting"
                                             : "the history retention setting";
}

// The state one key had before the change set: what its first row there
// recorded as old.
struct Before {
  std::optional<std::string> value;  // path or setting value; nothing: absent
  std::optional<bool> locked;        // nothing: the change set left the lock alone
  std::string lock_reason;
  std::optional<Timestamp> missing_since;
};

std::string id_text(std::int64_t id) { return std::to_string(id); }

}  // namespace

UndoReport Registry::undo(std::int64_t id, const UndoOptions& options) {
  Lock lock(impl_->mutex);
  const std::string& where = impl_->store->display_name();
  const auto unknown = [&](const std::string& why) {
    return InvalidInput("cannot undo " + id_text(id) + ": " + why + " in registry " + where +
                        "; nothing was changed. `tfimm-cache history` shows the change sets");
  };
  if (id <= 0) throw unknown("change-set ids are positive numbers");

  UndoReport report;
  report.dry_run = options.dry_run;
  detail::WriteMode mode;
  mode.missing = detail::WriteMode::Missing::ExistingOnly;
  mode.bulk = true;
  if (options.dry_run) mode.outcome = detail::WriteMode::Outcome::DryRun;
  const bool exists = impl_->store->write(
      [&](Writer& w) {
        report.changes.clear();  // the body may be retried
        report.conflicts.clear();
        report.recorded = 0;
        // The change set: of the row `id`, which is its own first row when
        // `id` names a change set.
        HistoryQuery one;
        one.ascending = true;
        one.from = id - 1;
        one.limit = 1;
        const auto first = w.history(one);
        if (first.empty() || first.front().id != id) {
          const auto forgotten = w.setting(detail::kForgottenKey);
          if (forgotten && id <= std::stoll(*forgotten)) {
            throw unknown("its history was forgotten (history up to row " + *forgotten +
                          " is gone), so what it changed is no longer known");
          }
          throw unknown("there is no change set or history row with that id");
        }
        const std::int64_t set_id = first.front().change_set;
        report.change_set = set_id;
        HistoryQuery start;
        start.ascending = true;
        start.from = set_id - 1;
        start.limit = 1;
        const auto head = w.history(start);
        if (head.empty() || head.front().id != set_id) {
          throw unknown("change set " + id_text(set_id) +
                        " was partly forgotten by history retention, so what it changed is "
                        "no longer fully known");
        }

        // What it changed: for each key, the state before its first row.
        std::map<Key, Before> before;
        // Its rows are consecutive from its first one on: one writer at a
        // time adds rows.
        std::int64_t last = set_id;
        HistoryQuery rows;
        rows.ascending = true;
        rows.from = set_id - 1;
        rows.limit = 1024;
        for (bool more = true; more;) {
          const auto page = w.history(rows);
          more = page.size() == rows.limit;
          for (const auto& row : page) {
            if (row.change_set != set_id) {
              more = false;
              break;
            }
            last = row.id;
            if (row.action == "forget") {
              throw InvalidInput("cannot undo " + id_text(id) + ": change set " + id_text(set_id) +
                                 " forgot history, and forgotten history cannot be brought "
                                 "back; nothing was changed");
            }
            auto key = key_of(row);
            if (!key) continue;
            if (auto known = before.find(*key); known != before.end()) {
              // The first row to record the lock: the rows before it left
              // the lock alone, so it is the lock before the change set.
              if (!known->second.locked && row.old_locked) {
                known->second.locked = row.old_locked;
                known->second.lock_reason = row.old_lock_reason.value_or("");
              }
              continue;
            }
            Before b;
            b.value = row.old_path;
            b.locked = row.old_locked;
            b.lock_reason = row.old_lock_reason.value_or("");
            b.missing_since = row.old_missing_since;
            before.emplace(std::move(*key), std::move(b));
          }
          if (!page.empty()) rows.from = page.back().id;
        }

        // Later change sets that touched any of it: read in pages, so that
        // an old change set under a long history costs time, not memory.
        std::map<Key, HistoryRecord> later;
        HistoryQuery after;
        after.ascending = true;
        after.from = last;
        after.limit = 1024;
        for (;;) {
          const auto page = w.history(after);
          for (const auto& row : page) {
            auto key = key_of(row);
            if (key && before.count(*key) != 0 && later.count(*key) == 0) later.emplace(*key, row);
          }
          if (page.size() < after.limit) break;
          after.from = page.back().id;
        }
        for (const auto& [key, row] : later) {
          report.conflicts.push_back({key.name, key.setting, row.change_set, row.action});
        }
        if (!later.empty() && !options.force) {
          std::string list;
          std::set<std::int64_t> undone_by;
          for (const auto& [key, row] : later) {
            if (list.size() > 400) {
              list += ", ...";
              break;
            }
            list += (list.empty() ? "" : ", ") + describe(key) + " (" + row.action +
                    " in change set " + id_text(row.change_set) + ")";
            if (row.undoes == set_id) undone_by.insert(row.change_set);
          }
          std::string hint;
          if (!undone_by.empty()) {
            hint = " Change set " + id_text(set_id) + " was already undone by change set " +
                   id_text(*undone_by.begin()) + "; undo that one to redo it.";
          }
          throw InvalidInput("cannot undo change set " + id_text(set_id) + ": later changes " +
                             "touched " + std::to_string(later.size()) +
                             " of the same entries or settings: " + list +
                             ". Nothing was changed." + hint +
                             " To revert anyway, overwriting those later changes, use --force");
        }

        // Bring each key back to its state before the change set.
        const Timestamp now = detail::now_ms();
        for (const auto& [key, b] : before) {
          UndoChange change;
          change.name = key.name;
          change.setting = key.setting;
          HistoryRecord row;
          row.undoes = set_id;
          row.name = key.name;
          if (!key.setting.empty()) {
            const auto current = w.setting(key.setting);
            if (current == b.value) continue;
            change.old_path = current;
            change.new_path = b.value;
            if (b.value) {
              w.put_setting(key.setting, *b.value);
            } else {
              w.delete_setting(key.setting);
            }
            row.action = key.setting == detail::kRetentionKey ? "retain"
                         : b.value                            ? "set_dir"
                                                              : "unset_dir";
            row.old_path = current;
            row.new_path = b.value;
            w.add_row(row, now);
            report.changes.push_back(std::move(change));
            continue;
          }
          const auto current = w.model(key.name);
          if (current) {
            change.old_path = current->path;
            change.old_locked = current->locked;
            change.old_lock_reason = current->lock_reason;
          }
          if (!b.value) {
            if (!current) continue;
            w.delete_model(key.name);
            row.action = "clear";
            row.old_path = current->path;
            row.old_locked = current->locked;
            row.old_lock_reason = current->lock_reason;
            row.old_missing_since = current->missing_since;
            w.add_row(row, now);
          } else {
            Entry target;
            target.name = key.name;
            target.path = *b.value;
            target.created_at = current ? current->created_at : now;
            // A change set that left the lock alone: the lock stays as it is.
            if (b.locked) {
              target.locked = *b.locked;
              if (target.locked) target.lock_reason = b.lock_reason;
            } else if (current) {
              target.locked = current->locked;
              target.lock_reason = current->lock_reason;
            }
            target.missing_since = b.missing_since;
            // Registered again from here, as a set would: the host it is
            // local to is decided anew unless the path stays.
            target.local_to = current && current->path == target.path
                                  ? current->local_to
                                  : detail::local_to_of(target.path);
            if (current && current->path == target.path && current->locked == target.locked &&
                current->lock_reason == target.lock_reason) {
              continue;
            }
            change.new_locked = target.locked;
            change.new_lock_reason = target.lock_reason;
            w.put_entry(target, now);
            const bool path_changes = !current || current->path != target.path;
            row.action = path_changes ? "set" : target.locked ? "lock" : "unlock";
            row.old_path = change.old_path;
            row.new_path = target.path;
            if (current) {
              row.old_locked = current->locked;
              row.old_lock_reason = current->lock_reason;
              row.old_missing_since = current->missing_since;
            }
            row.new_locked = target.locked;
            row.new_lock_reason = target.lock_reason;
            w.add_row(row, now);
          }
          change.new_path = b.value;
          report.changes.push_back(std::move(change));
        }
        if (auto recorded = w.change_set()) report.recorded = *recorded;
      },
      mode);
  if (!exists) throw unknown("there is no change set or history row with that id");
  return report;
}

}  // namespace tfimm
