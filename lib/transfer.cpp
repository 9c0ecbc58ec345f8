// JSON export and import of a registry's contents.
#include "tfimm/transfer.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string_view>
#include <utility>

#include "fs.hpp"
#include "quote.hpp"
#include "registry_impl.hpp"
#include "storage/name_order.hpp"
#include "storage/rules.hpp"
#include "tfimm/names.hpp"
#include "tfimm/paths.hpp"
#include "utf8.hpp"

namespace tfimm {
namespace {

using json = nlohmann::json;
using Lock = detail::CallLock;

constexpr const char* kFormatName = "tfimm-cache-export";

std::string to_hex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (const char ch : bytes) {
    const auto c = static_cast<unsigned char>(ch);
    out += kDigits[c >> 4];
    out += kDigits[c & 0xF];
  }
  return out;
}

std::optional<std::string> from_hex(std::string_view hex) {
  const auto digit = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  if (hex.size() % 2 != 0) return std::nullopt;
  std::string out;
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    const int hi = digit(hex[i]);
    const int lo = digit(hex[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>(hi * 16 + lo);
  }
  return out;
}

std::string record_label(std::size_t index, const std::string& name) {
  return "models[" + std::to_string(index) + "]" +
         (name.empty() ? std::string() : " (" + detail::quote(name) + ")");
}

// "line L, column C" of the byte at `offset` in `text` (both counted from 1).
std::string position_of(std::string_view text, std::size_t offset) {
  offset = std::min(offset, text.size());
  const auto before = text.substr(0, offset);
  const auto line = 1 + std::count(before.begin(), before.end(), '\n');
  const auto newline = before.rfind('\n');
  const auto column = newline == std::string_view::npos ? offset + 1 : offset - newline;
  return "line " + std::to_string(line) + ", column " + std::to_string(column);
}

// Where the first byte that does not start a valid UTF-8 sequence is;
// text.size() when there is none.
std::size_t first_invalid_utf8(std::string_view text) {
  std::size_t i = 0;
  while (i < text.size()) {
    const std::size_t n = detail::utf8_sequence(text, i);
    if (n == 0) return i;
    i += n;
  }
  return i;
}

// The parser's complaint in plain words, without its exception prefix and
// its "last read" echo of the input.
std::string plain_words(std::string_view text, std::size_t offset, const json::exception& e) {
  std::string what = e.what();
  if (e.id == 406) {  // a number that does not fit a double
    const auto quote = what.find('\'');
    const auto end = what.rfind('\'');
    const auto number = quote < end ? what.substr(quote + 1, end - quote - 1) : std::string();
    return "the number " + number + " is too large";
  }
  if (offset < text.size()) {
    const auto byte = static_cast<unsigned char>(text[offset]);
    if (byte == 0 || (byte >= 0x80 && detail::utf8_sequence(text, offset) == 0)) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02X", byte);
      return std::string("a byte that is not UTF-8 text (") + hex +
             "); an export file is UTF-8 JSON, and `tfimm-cache export` writes a path that "
             "is not UTF-8 as \"path_hex\"";
    }
  }
  for (const char* marker : {" - ", "]: ", ": "}) {
    const auto at = what.find(marker);
    if (at != std::string::npos) {
      what = what.substr(at + std::strlen(marker));
      break;
    }
  }
  what = what.substr(0, what.find("; last read"));
  if (what.rfind("invalid literal", 0) == 0) {
    return "this is not JSON (text needs double quotes; true, false and null are lower case)";
  }
  if (what.rfind("unexpected end of input", 0) == 0 ||
      what.rfind("invalid string: missing closing quote", 0) == 0) {
    return "the file ends before the JSON document does (was it cut short?)";
  }
  if (what.rfind("invalid string: control character", 0) == 0) {
    return "a control character inside a string must be escaped (\\n, \\t, \\u0001)";
  }
  return what;
}

// Reads a JSON document strictly (a SAX handler for json::sax_parse): a key
// given twice in one object is an error, not "the last one wins", and every
// error names where it is: the record of "models" it is in, if any, and the
// line and column.
class StrictReader {
 public:
  explicit StrictReader(std::string_view text) : text_(text) {}

  json document() && { return std::move(root_); }

  bool null() { return put(nullptr); }
  bool boolean(bool value) { return put(value); }
  bool number_integer(json::number_integer_t value) { return put(value); }
  bool number_unsigned(json::number_unsigned_t value) { return put(value); }
  bool number_float(json::number_float_t value, const json::string_t&) { return put(value); }
  bool string(json::string_t& value) { return put(std::move(value)); }
  bool binary(json::binary_t& value) { return put(json::binary(std::move(value))); }
  bool start_object(std::size_t) { return open(json::object()); }
  bool start_array(std::size_t) { return open(json::array()); }
  bool end_object() { return close(); }
  bool end_array() { return close(); }

  bool key(json::string_t& key) {
    if (stack_.back().value->contains(key)) {
      const std::string what = "the key " + detail::quote(key) + " appears more than once";
      throw InvalidInput(stack_.size() == 1
                             ? "the top-level object: " + what + "; give each key once"
                             : where() + ": " + what +
                                   "; give each key once, so that it "
                                   "is clear which value is meant");
    }
    key_ = std::move(key);
    return true;
  }

  bool parse_error(std::size_t position, const std::string&, const json::exception& e) {
    // `position` counts bytes read, so the offending byte is the one before;
    // but a bad UTF-8 sequence is noticed at the byte after its start.
    std::size_t offset = position > 0 ? position - 1 : 0;
    if (std::string_view(e.what()).find("UTF-8") != std::string_view::npos) {
      offset = first_invalid_utf8(text_);
    }
    if (complete_) {
      throw InvalidInput(position_of(text_, offset) +
                         ": text after the end of the JSON document; an export file is one "
                         "JSON object");
    }
    const std::string label = where();
    throw InvalidInput((label.empty() ? "" : label + ": ") + position_of(text_, offset) + ": " +
                       plain_words(text_, offset, e));
  }

 private:
  struct Frame {
    json* value;
    std::string key;  // its key in the parent object, "" in an array
  };

  json* place(json&& value) {
    if (stack_.empty()) {
      root_ = std::move(value);
      return &root_;
    }
    json& parent = *stack_.back().value;
    if (parent.is_array()) {
      parent.push_back(std::move(value));
      return &parent.back();
    }
    return &(parent[key_] = std::move(value));
  }
  bool put(json&& value) {
    place(std::move(value));
    complete_ = stack_.empty();
    return true;
  }
  bool open(json&& container) {
    std::string key = !stack_.empty() && stack_.back().value->is_object() ? key_ : std::string();
    json* value = place(std::move(container));
    stack_.push_back({value, std::move(key)});
    return true;
  }
  bool close() {
    stack_.pop_back();
    complete_ = stack_.empty();
    return true;
  }

  // "models[3] (\"name\")" inside a record of the top-level "models" list;
  // "" elsewhere.
  std::string where() const {
    if (stack_.size() < 2 || stack_[1].key != "models" || !stack_[1].value->is_array()) return "";
    const json& models = *stack_[1].value;
    if (stack_.size() == 2) return record_label(models.size(), "");
    const json& record = *stack_[2].value;
    const auto name = record.is_object() ? record.find("name") : record.end();
    return record_label(models.size() - 1,
                        name != record.end() && name->is_string() ? name->get<std::string>() : "");
  }

  std::string_view text_;
  json root_;
  std::vector<Frame> stack_;
  std::string key_;
  bool complete_ = false;  // the top-level value has ended
};

json read_strictly(std::string_view text) {
  if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) {
    throw InvalidInput(
        "the file is empty; an export file is the JSON object `tfimm-cache export` writes");
  }
  StrictReader reader(text);
  json::sax_parse(text.begin(), text.end(), &reader);
  return std::move(reader).document();
}

// Refuses a key of `object` not in `known`, naming it and the known keys.
void known_keys_only(const json& object, const std::string& label,
                     std::initializer_list<const char*> known) {
  for (const auto& item : object.items()) {
    if (std::find_if(known.begin(), known.end(), [&](const char* k) { return item.key() == k; }) !=
        known.end()) {
      continue;
    }
    std::string list;
    for (const char* k : known) list += (list.empty() ? "\"" : ", \"") + std::string(k) + "\"";
    throw InvalidInput(label + ": unknown key " + detail::quote(item.key()) +
                       " (known keys: " + list + "); a misspelt key would lose what it holds");
  }
}

// The path in `object[key]` (a string) or `object[key + "_hex"]` (its bytes in
// hex), exactly one of them. With `nullable`, null or absent gives nothing.
std::optional<std::string> path_field(const json& object, const std::string& label,
                                      const std::string& key, bool nullable = false) {
  const auto text = object.find(key);
  const auto hex = object.find(key + "_hex");
  const bool has_text = text != object.end() && !(nullable && text->is_null());
  const bool has_hex = hex != object.end();
  if (has_text && has_hex) {
    throw InvalidInput(label + ": gives both \"" + key + "\" and \"" + key + "_hex\"; give one");
  }
  if (has_text) {
    if (text->is_string()) return text->get<std::string>();
    throw InvalidInput(label + ": \"" + key + "\" must be a string" + (nullable ? " or null" : "") +
                       ", not " + text->type_name());
  }
  if (has_hex) {
    if (!hex->is_string()) {
      throw InvalidInput(label + ": \"" + key + "_hex\" must be a string of hex digits, not " +
                         hex->type_name());
    }
    if (auto bytes = from_hex(hex->get<std::string>())) return *bytes;
    throw InvalidInput(label + ": \"" + key + "_hex\" must be an even number of hex digits");
  }
  if (nullable) return std::nullopt;
  throw InvalidInput(label + ": needs a string \"" + key + "\" (or \"" + key + "_hex\")");
}

// Checks one record; throws InvalidInput naming it.
Snapshot::Model checked(Snapshot::Model model, std::size_t index) {
  if (auto problem = name_problem(model.name)) {
    throw InvalidInput(record_label(index, model.name) + ": invalid name: " + *problem);
  }
  try {
    model.path = normalize_path(model.path);
  } catch (const InvalidPath& e) {
    throw InvalidInput(record_label(index, model.name) + ": " + e.what());
  }
  return model;
}

bool has_prefix(const std::string& path, const std::string& prefix) {
  if (prefix == "/") return true;
  return path == prefix ||
         (path.size() > prefix.size() && path.compare(0, prefix.size(), prefix) == 0 &&
          path[prefix.size()] == '/');
}

std::string rewrite(const std::string& path,
                    const std::vector<std::pair<std::string, std::string>>& rewrites) {
  for (const auto& [from, to] : rewrites) {
    if (has_prefix(path, from)) {
      return from == "/" ? lexically_normal(to + path)
                         : lexically_normal(to + path.substr(from.size()));
    }
  }
  return path;
}

// What the registry holds before an import.
struct RegistryContents {
  std::map<std::string, Entry> entries;
  std::optional<std::string> cache_dir;
};

// Every change an import makes, and its report. One function plans both the
// dry run and the real import, so that the two always report the same.
struct ImportPlan {
  // Path changes and new entries, in name order: written in two statements
  // for the whole import (see detail::name_order: 29% fewer instructions for
  // 100 000 new entries, the sort included).
  std::vector<detail::PathChange> paths;
  struct LockChange {
    const std::string* name;
    const std::string* path;  // the entry's path after the import
    bool locked;
    const std::string* reason;
  };
  std::vector<LockChange> locks;
  std::vector<const Entry*> removals;  // with replace
  enum class Dir { Keep, Set, Unset } cache_dir = Dir::Keep;
  ImportReport report;
};

// The rules: a record's path wins. With `replace` its lock and reason win
// too, and entries not in the snapshot go. Without it a lock is never
// removed: an entry locked in the registry stays locked (with its reason)
// when the record is unlocked, and takes the record's reason when both are.
ImportPlan plan_import(const RegistryContents& before, const std::vector<Snapshot::Model>& models,
                       const detail::NameOrder& by_name,
                       const std::optional<std::string>& cache_dir, bool replace) {
  static const std::string kNoReason;
  ImportPlan plan;
  auto& report = plan.report;
  plan.paths.reserve(models.size());
  for (const auto& [key, i] : by_name) {
    const auto& m = models[i];
    const auto it = before.entries.find(m.name);
    if (it == before.entries.end()) {
      plan.paths.push_back({&m.name, &m.path, nullptr});
      ++report.added;
      if (m.locked) {
        plan.locks.push_back({&m.name, &m.path, true, &m.lock_reason});
        ++report.locked;
      }
      continue;
    }
    const Entry& e = it->second;
    const bool path_changed = e.path != m.path;
    if (path_changed) plan.paths.push_back({&m.name, &m.path, &e.path});
    const bool keep_lock = !replace && e.locked && !m.locked;
    const bool lock = m.locked || keep_lock;
    const std::string& reason = m.locked ? m.lock_reason : keep_lock ? e.lock_reason : kNoReason;
    const bool lock_changed = lock != e.locked || (lock && reason != e.lock_reason);
    if (lock_changed) {
      plan.locks.push_back({&m.name, &m.path, lock, &reason});
      ++(lock ? report.locked : report.unlocked);
    }
    if (keep_lock) ++report.locks_kept;
    ++(path_changed || lock_changed ? report.changed : report.unchanged);
  }
  if (replace) {
    for (const auto& [name, e] : before.entries) {
      const bool imported = std::binary_search(
          by_name.begin(), by_name.end(), std::pair<std::string_view, std::size_t>(name, 0),
          [](const auto& a, const auto& b) { return a.first < b.first; });
      if (imported) continue;
      plan.removals.push_back(&e);
      ++report.removed;
    }
  }
  if (cache_dir && cache_dir != before.cache_dir) {
    plan.cache_dir = ImportPlan::Dir::Set;
  } else if (!cache_dir && replace && before.cache_dir) {
    plan.cache_dir = ImportPlan::Dir::Unset;
  }
  report.cache_dir_changed = plan.cache_dir != ImportPlan::Dir::Keep;
  return plan;
}

}  // namespace

std::string to_json(const Snapshot& snapshot) {
  json doc;
  doc["format"] = kFormatName;
  doc["version"] = kExportFormatVersion;
  // Paths are any bytes and JSON strings are UTF-8: a path that is not
  // valid UTF-8 travels as hex ("path_hex", "cache_dir_hex") so that it comes
  // back byte for byte.
  if (!snapshot.cache_dir) {
    doc["cache_dir"] = nullptr;
  } else if (detail::valid_utf8(*snapshot.cache_dir)) {
    doc["cache_dir"] = *snapshot.cache_dir;
  } else {
    doc["cache_dir_hex"] = to_hex(*snapshot.cache_dir);
  }
  doc["models"] = json::array();
  std::vector<const Snapshot::Model*> sorted;
  for (const auto& m : snapshot.models) sorted.push_back(&m);
  std::sort(sorted.begin(), sorted.end(),
            [](const auto* a, const auto* b) { return a->name < b->name; });
  for (const auto* m : sorted) {
    json record = {{"name", m->name}};
    if (detail::valid_utf8(m->path)) {
      record["path"] = m->path;
    } else {
      record["path_hex"] = to_hex(m->path);
    }
    record["locked"] = m->locked;
    record["lock_reason"] = m->lock_reason;
    doc["models"].push_back(std::move(record));
  }
  return doc.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

Snapshot parse_snapshot(std::string_view text) {
  const json doc = read_strictly(text);
  if (!doc.is_object()) {
    throw InvalidInput(std::string("an export file must be a JSON object, not ") + doc.type_name());
  }
  const auto format = doc.find("format");
  if (format == doc.end() || !format->is_string() || *format != kFormatName) {
    throw InvalidInput(std::string("not a tfimm-cache export: \"format\" must be \"") +
                       kFormatName + "\"");
  }
  const auto version = doc.find("version");
  if (version == doc.end() || !version->is_number_integer()) {
    throw InvalidInput("\"version\" must be an integer");
  }
  if (*version != kExportFormatVersion) {
    throw InvalidInput("export format version " + version->dump() + " is not supported; this " +
                       "build reads version " + std::to_string(kExportFormatVersion));
  }
  // A later format that adds a key gets a new version number: a key this
  // version does not know is a mistake, not something to skip.
  known_keys_only(doc, "the top-level object",
                  {"format", "version", "cache_dir", "cache_dir_hex", "models"});
  Snapshot snapshot;
  if (const auto value = path_field(doc, "\"cache_dir\"", "cache_dir", true)) {
    try {
      snapshot.cache_dir = normalize_path(*value);
    } catch (const InvalidPath& e) {
      throw InvalidInput(std::string("\"cache_dir\": ") + e.what());
    }
  }

  const auto models = doc.find("models");
  if (models == doc.end() || !models->is_array()) {
    throw InvalidInput("\"models\" must be an array");
  }
  std::set<std::string> seen;
  for (std::size_t i = 0; i < models->size(); ++i) {
    const auto& record = (*models)[i];
    if (!record.is_object()) {
      throw InvalidInput(record_label(i, "") + " must be an object, not " + record.type_name());
    }
    Snapshot::Model model;
    const auto field = [&](const char* key) -> const json* {
      auto it = record.find(key);
      return it == record.end() ? nullptr : &*it;
    };
    const json* name = field("name");
    if (name == nullptr) throw InvalidInput(record_label(i, "") + ": needs a string \"name\"");
    if (!name->is_string()) {
      throw InvalidInput(record_label(i, "") + ": \"name\" must be a string, not " +
                         name->type_name());
    }
    model.name = name->get<std::string>();
    const std::string label = record_label(i, model.name);
    known_keys_only(record, label, {"name", "path", "path_hex", "locked", "lock_reason"});
    model.path = *path_field(record, label, "path");
    if (const json* locked = field("locked")) {
      if (!locked->is_boolean()) {
        throw InvalidInput(label + ": \"locked\" must be true or false, not " +
                           locked->type_name());
      }
      model.locked = locked->get<bool>();
    }
    if (const json* reason = field("lock_reason")) {
      if (!reason->is_string()) {
        throw InvalidInput(label + ": \"lock_reason\" must be a string, not " +
                           reason->type_name());
      }
      model.lock_reason = reason->get<std::string>();
    }
    if (!model.locked && !model.lock_reason.empty()) {
      throw InvalidInput(label + ": has a \"lock_reason\" but is not locked; add \"locked\": " +
                         "true to keep the reason, or remove it");
    }
    model = checked(std::move(model), i);
    if (!seen.insert(model.name).second) {
      throw InvalidInput(label + ": the name appears more than once");
    }
    snapshot.models.push_back(std::move(model));
  }
  return snapshot;
}

Snapshot Registry::snapshot() {
  Lock lock(impl_->mutex);
  Snapshot snap;
  impl_->store->read([&](detail::Reader& r) {
    for (auto& e : r.models()) {
      snap.models.push_back({std::move(e.name), std::move(e.path), e.locked, e.lock_reason});
    }
    snap.cache_dir = r.setting(detail::kCacheDirKey);
  });
  return snap;
}

ImportReport Registry::import(const Snapshot& snapshot, const ImportOptions& options) {
  // Check everything before changing anything.
  std::vector<std::pair<std::string, std::string>> rewrites;
  for (const auto& [from, to] : options.rewrites) {
    try {
      rewrites.emplace_back(normalize_path(from), normalize_path(to));
    } catch (const InvalidPath& e) {
      throw InvalidInput(std::string("invalid rewrite: ") + e.what());
    }
  }
  std::vector<Snapshot::Model> models;
  models.reserve(snapshot.models.size());
  std::optional<InvalidInput> bad_record;
  for (std::size_t i = 0; i < snapshot.models.size() && !bad_record; ++i) {
    try {
      models.push_back(checked(snapshot.models[i], i));
    } catch (const InvalidInput& e) {
      bad_record = e;
    }
    if (!bad_record) models.back().path = rewrite(models.back().path, rewrites);
  }
  // The records in name order (an export is in it already): the writes
  // below follow it, and a repeated name sits next to its repetition.
  const auto by_name = detail::name_order(
      models, [](const Snapshot::Model& m) -> const std::string& { return m.name; });
  // The first problem in record order: a name seen before, or a bad record.
  std::size_t repeat = models.size();
  for (std::size_t k = 1; k < by_name.size(); ++k) {
    if (by_name[k].first == by_name[k - 1].first) repeat = std::min(repeat, by_name[k].second);
  }
  if (repeat < models.size()) {
    throw InvalidInput(record_label(repeat, models[repeat].name) +
                       ": the name appears more than once");
  }
  if (bad_record) throw *bad_record;
  std::optional<std::string> cache_dir;
  if (snapshot.cache_dir) cache_dir = rewrite(normalize_path(*snapshot.cache_dir), rewrites);

  Lock lock(impl_->mutex);
  // A dry run plans exactly as a real import (against an empty registry
  // when there is none), and its changes are discarded: it creates nothing
  // and needs no write access.
  detail::WriteMode mode;
  mode.bulk = true;
  if (options.dry_run) mode.outcome = detail::WriteMode::Outcome::DryRun;
  ImportReport report;
  impl_->store->write(
      [&](detail::Writer& w) {
        const auto now = detail::now_ms();
        RegistryContents contents;
        for (auto& e : w.models()) contents.entries.emplace(e.name, std::move(e));
        contents.cache_dir = w.setting(detail::kCacheDirKey);
        const ImportPlan plan = plan_import(contents, models, by_name, cache_dir, options.replace);
        detail::set_models(w, "import", plan.paths, now);
        for (const auto& change : plan.locks) {
          // The lock it had (none for an entry this import adds), for undo.
          Entry current;
          current.name = *change.name;
          current.path = *change.path;
          if (auto it = contents.entries.find(current.name); it != contents.entries.end()) {
            current.locked = it->second.locked;
            current.lock_reason = it->second.lock_reason;
          }
          detail::change_lock(w, current, change.locked, *change.reason, now);
        }
        for (const auto* e : plan.removals) detail::forget_model(w, "import", *e, now);
        if (plan.cache_dir == ImportPlan::Dir::Set) impl_->set_dir(w, *cache_dir);
        if (plan.cache_dir == ImportPlan::Dir::Unset) impl_->unset_dir(w);
        report = plan.report;
      },
      mode);
  return report;
}

}  // namespace tfimm
