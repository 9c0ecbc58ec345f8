// History retention: forgetting old history rows on request and, with a
// stored retention, a bounded number of them with every change.
#include "fs.hpp"
#include "registry_impl.hpp"
#include "storage/rules.hpp"

namespace tfimm {

using Lock = detail::CallLock;

using detail::HistoryQuery;
using detail::Writer;

std::string format_duration(std::chrono::milliseconds age) { return detail::format_duration(age); }

ForgetReport Registry::forget_history(std::chrono::milliseconds age, bool dry_run) {
  if (age.count() < 0) {
    throw InvalidInput("cannot forget history older than a negative age; nothing was changed");
  }
  Lock lock(impl_->mutex);
  ForgetReport report;
  report.dry_run = dry_run;
  detail::WriteMode mode;
  mode.missing = detail::WriteMode::Missing::ExistingOnly;
  mode.bulk = true;
  if (dry_run) mode.outcome = detail::WriteMode::Outcome::DryRun;
  impl_->store->write(
      [&](Writer& w) {
        report.rows = 0;
        report.through = 0;
        report.recorded = 0;
        const Timestamp now = detail::now_ms();
        const Timestamp cutoff = now - age.count();
        // From the start of the history up to the first row young enough to
        // keep, then back to the start of that row's change set: whole
        // change sets only, and never a gap in what remains.
        HistoryQuery q;
        q.ascending = true;
        q.limit = 1024;
        std::int64_t through = 0;
        std::size_t rows = 0;
        std::int64_t last_set = 0;  // the change set of the last old row
        std::size_t in_last_set = 0;
        for (bool more = true; more;) {
          const auto page = w.history(q);
          more = page.size() == q.limit;
          for (const auto& row : page) {
            if (row.at >= cutoff) {
              // Its change set began among the old rows (its rows are
              // consecutive): keep that change set whole.
              if (row.change_set == last_set) {
                rows -= in_last_set;
                through = last_set - 1;
              }
              more = false;
              break;
            }
            in_last_set = row.change_set == last_set ? in_last_set + 1 : 1;
            last_set = row.change_set;
            through = row.id;
            ++rows;
          }
          if (!page.empty()) q.from = page.back().id;
        }
        if (rows == 0) return;
        report.rows = rows;
        report.through = through;
        HistoryRecord row;
        row.action = "forget";
        row.forgot_through = through;
        row.forgot_rows = static_cast<std::int64_t>(rows);
        // Recorded before the old rows go: the newest id stays in the table,
        // so that an id is never given out again.
        w.add_row(row, now);
        detail::forget_rows(w, through);
        if (auto recorded = w.change_set()) report.recorded = *recorded;
      },
      mode);
  return report;
}

void Registry::set_history_retention(std::optional<std::chrono::milliseconds> age) {
  if (age && *age < std::chrono::seconds(1)) {
    throw InvalidInput("cannot keep history for less than one second (" +
                       std::to_string(age->count()) +
                       " ms): that would forget each change as it is made; nothing was changed. "
                       "Use `forever` to keep everything");
  }
  std::optional<std::string> value;
  if (age) value = detail::format_duration(*age);
  Lock lock(impl_->mutex);
  detail::WriteMode mode;
  // Keeping everything is what a registry that does not exist does already.
  if (!value) mode.missing = detail::WriteMode::Missing::ExistingOnly;
  impl_->store->write(
      [&](Writer& w) {
        const auto old = w.setting(detail::kRetentionKey);
        if (old == value) return;  // no change, no history row
        if (value) {
          w.put_setting(detail::kRetentionKey, *value);
        } else {
          w.delete_setting(detail::kRetentionKey);
        }
        w.add_history("retain", "", old, value, detail::now_ms());
      },
      mode);
}

std::optional<std::chrono::milliseconds> Registry::history_retention() {
  Lock lock(impl_->mutex);
  std::optional<std::string> value;
  impl_->store->read([&](detail::Reader& r) { value = r.setting(detail::kRetentionKey); },
                     detail::Store::Consistency::PerCall);
  if (!value) return std::nullopt;
  return parse_duration(*value);
}

}  // namespace tfimm
