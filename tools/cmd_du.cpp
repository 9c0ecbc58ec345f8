#include "cmd_du.hpp"

#include <cstdio>
#include <iostream>

#include "output.hpp"
#include "tfimm/usage.hpp"

namespace tfimm::tool {

namespace {

// "0 B", "512 B", "1.5 KiB", "20.0 GiB": binary units, one decimal.
std::string human(std::uint64_t bytes) {
  static const char* const kUnits[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  if (bytes < 1024) return std::to_string(bytes) + " B";
  double value = static_cast<double>(bytes) / 1024;
  std::size_t unit = 0;
  while (value >= 1024 && unit + 1 < std::size(kUnits)) {
    value /= 1024;
    ++unit;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f %s", value, kUnits[unit]);
  return buf;
}

std::string plural(std::size_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

nlohmann::ordered_json counts_json(const UsageCounts& counts) {
  return {
      {"bytes", counts.bytes}, {"apparent_bytes", counts.apparent_bytes}, {"files", counts.files}};
}

nlohmann::ordered_json to_json(const UsageItem& item) {
  nlohmann::ordered_json unreadable = nlohmann::ordered_json::array();
  for (const auto& p : item.unreadable) {
    unreadable.push_back({{"path", p.path}, {"error", p.message}});
  }
  return {{"name", item.name},
          {"path", item.path},
          {"source", to_string(item.source)},
          {"status", to_string(item.status)},
          {"bytes", item.counts.bytes},
          {"apparent_bytes", item.counts.apparent_bytes},
          {"files", item.counts.files},
          {"detail", item.detail},
          {"unreadable", std::move(unreadable)}};
}

// The report as one JSON object, written one model at a time (see
// JsonArrayWriter): {"models": [...], "total": {...}, "cache_dir": {...},
// "complete": bool}.
void print_json(const UsageReport& report) {
  std::cout << "{\n  \"models\": ";
  if (report.items.empty()) {
    std::cout << "[]";
  } else {
    bool first = true;
    for (const auto& item : report.items) {
      const std::string text =
          to_json(item).dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
      std::cout << (first ? "[\n    " : ",\n    ");
      for (char c : text) {
        std::cout << c;
        if (c == '\n') std::cout << "    ";
      }
      first = false;
    }
    std::cout << "\n  ]";
  }
  nlohmann::ordered_json total = counts_json(report.total);
  total["models"] = report.items.size();
  nlohmann::ordered_json cache_dir = {{"path", report.cache_dir.path},
                                      {"status", to_string(report.cache_dir_status)},
                                      {"detail", report.cache_dir_detail}};
  nlohmann::ordered_json rest = {{"total", std::move(total)},
                                 {"cache_dir", std::move(cache_dir)},
                                 {"complete", report.complete()}};
  // The remaining keys of the object, without its braces.
  const std::string text = dump_json(rest);
  const auto open = text.find('{');
  const auto close = text.rfind('}');
  std::cout << "," << text.substr(open + 1, close - open - 1) << "}\n";
}

// "; not counted: 1 missing, 1 not_accessible; 1 incomplete": what the
// total leaves out, or "" when nothing.
std::string not_counted(const UsageReport& report) {
  std::string out;
  for (PathStatus s : {PathStatus::Missing, PathStatus::DanglingLink, PathStatus::NotAccessible,
                       PathStatus::NotADirectory, PathStatus::Error, PathStatus::OtherHost}) {
    std::size_t n = 0;
    for (const auto& item : report.items) n += item.status == s ? 1u : 0u;
    if (n > 0)
      out += (out.empty() ? "; not counted: " : ", ") + std::to_string(n) + " " + to_string(s);
  }
  std::size_t partial = 0;
  for (const auto& item : report.items) partial += item.unreadable.empty() ? 0u : 1u;
  if (partial > 0) out += "; " + std::to_string(partial) + " incomplete (parts could not be read)";
  if (report.cache_dir_status != PathStatus::Ok && report.cache_dir_status != PathStatus::Missing) {
    out += "; the cache directory could not be listed";
  }
  return out;
}

}  // namespace

void setup_du(CLI::App& app, Program& program) {
  auto options = std::make_shared<DuOptions>();
  auto* sub = app.add_subcommand("du", "Disk usage of the cached models, as du -s counts it");
  sub->add_option("NAME", options->names,
                  "Only these models (default: every entry and every model found only in the "
                  "cache directory)");
  sub->add_flag("--json", options->json, "Print one JSON object");
  sub->add_option("-j,--jobs", options->jobs,
                  "Directories read at once (default: library's choice)")
      ->type_name("N")
      ->check(CLI::Range(1u, 256u));
  sub->add_flag("--all-hosts", options->all_hosts,
                "Also measure paths local to other hosts, as if they were this host's");
  sub->footer(
      "Counts what `du -s --block-size=1` (SIZE, bytes) and `du -s --apparent-size`\n"
      "(APPARENT, apparent_bytes) count for each model's path: every file, directory,\n"
      "symlink and special file below it, a file with several hard links once. A\n"
      "registered symlink is followed; symlinks below it are not. FILES counts the\n"
      "regular files. Models found only in the cache directory (<cache dir>/NAME,\n"
      "which `path` finds too) are shown with SOURCE cache_dir. The total counts\n"
      "every byte once, as `du -sc` does. A missing path counts nothing; only a\n"
      "path that certainly does not exist is `missing` (see audit). What cannot be\n"
      "read is named on stderr and left out. Exits with 1 when a count is\n"
      "incomplete: a path missing or not checkable, or something unreadable. A path\n"
      "local to another host (see audit) is shown as other_host and not counted.\n"
      "JSON: {\"models\": [{name, path, source, status, bytes, apparent_bytes, files,\n"
      "detail, unreadable}], \"total\": {bytes, apparent_bytes, files, models},\n"
      "\"cache_dir\": {path, status, detail}, \"complete\": bool}.\n\n"
      "Example:\n  tfimm-cache du\n  tfimm-cache du resnet18 --json | jq .total.bytes");
  bind_command(sub, program, options, run_du);
}

int run_du(const GlobalOptions& global, const DuOptions& options) {
  Registry registry = open_registry(global);
  Progress progress("measuring models");
  UsageOptions usage_options;
  usage_options.names = options.names;
  usage_options.threads = options.jobs;
  usage_options.all_hosts = options.all_hosts;
  usage_options.progress = [&progress](std::size_t done, std::size_t total) {
    progress.update(done, total);
  };
  const UsageReport report = disk_usage(registry, usage_options);
  progress.finish();

  for (const auto& item : report.items) {
    for (const auto& p : item.unreadable) {
      std::cerr << "tfimm-cache: note: cannot read " << printable(p.path) << ": " << p.message
                << "; the size of " << printable(item.name) << " leaves it out\n";
    }
  }
  if (report.cache_dir_status != PathStatus::Ok && report.cache_dir_status != PathStatus::Missing) {
    std::cerr << "tfimm-cache: note: cannot list the cache directory "
              << printable(report.cache_dir.path) << ": " << report.cache_dir_detail
              << "; models found only there are left out\n";
  }
  const int code = report.complete() ? kExitOk : kExitNegative;
  if (options.json) {
    print_json(report);
    return code;
  }

  Style style(stdout_wants_colour());
  if (!report.items.empty()) {
    Table table({"NAME", "SOURCE", "STATUS", "SIZE", "APPARENT", "FILES", "PATH", "DETAIL"});
    for (const auto& item : report.items) {
      std::string detail =
          item.is_symlink && !item.detail.empty() ? "-> " + item.detail : item.detail;
      if (!item.unreadable.empty()) {
        detail = "incomplete: " + plural(item.unreadable.size(), "part", "parts") +
                 " could not be read" + (detail.empty() ? "" : "; " + detail);
      }
      const bool counted = item.status == PathStatus::Ok;
      table.add({item.name,
                 to_string(item.source),
                 {to_string(item.status), status_colour(item.status)},
                 counted ? human(item.counts.bytes) : "-",
                 counted ? human(item.counts.apparent_bytes) : "-",
                 counted ? std::to_string(item.counts.files) : "-",
                 item.path,
                 {detail, item.unreadable.empty() ? Style::Colour::None : Style::Colour::Yellow}});
    }
    table.print(std::cout, style);
  }
  std::cout << "total: " << plural(report.items.size(), "model", "models") << ", "
            << human(report.total.bytes) << " on disk (" << report.total.bytes << " bytes), "
            << human(report.total.apparent_bytes) << " apparent, "
            << plural(report.total.files, "file", "files") << not_counted(report) << '\n';
  return code;
}

}  // namespace tfimm::tool
