// JSON export and import of a registry's contents.
#include "tfimm/transfer.hpp"

#include <fcntl.h>
#include <unistd.h>
#include <ext/stdio_filebuf.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <istream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <set>
#include <sstream>
#include <string_view>
#include <unordered_set>
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

using json = nlohmann::ordered_json;  // small objects: a vector beats a map
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

// The bytes of an export file as the parser reads them, with what an error
// message needs about the text read so far (the file is never held whole):
// the line and column of a recent byte, and the last few bytes.
class Input {
 public:
  explicit Input(std::streambuf& buf) : buf_(buf), chunk_(65536) {}

  // The next byte, or EOF; inline while the chunk lasts.
  int peek() {
    if (pos_ == end_ && !refill()) return std::char_traits<char>::eof();
    return static_cast<unsigned char>(chunk_[pos_]);
  }
  std::size_t offset() const { return offset_; }
  void advance() {
    if (pos_ == end_ && !refill()) return;
    const char c = chunk_[pos_++];
    window_[offset_ % kWindow] = c;
    if (c == '\n') {
      newlines_[lines_ % kNewlines] = offset_;
      ++lines_;
    }
    ++offset_;
  }

  // "line L, column C" of the byte at `offset` (counted from 1), for an
  // offset among the last bytes read.
  std::string position_of(std::size_t offset) const {
    offset = std::min(offset, offset_);
    std::size_t line = lines_;
    std::optional<std::size_t> line_start;
    for (std::size_t k = 0; k < std::min(lines_, kNewlines); ++k) {
      const std::size_t nl = newlines_[(lines_ - 1 - k) % kNewlines];
      if (nl >= offset) {
        --line;
        continue;
      }
      line_start = nl + 1;
      break;
    }
    const std::size_t column = offset - (line_start ? *line_start : 0) + 1;
    return "line " + std::to_string(line + 1) + ", column " + std::to_string(column);
  }

  // The byte at `offset`, if it is among the last bytes read.
  std::optional<unsigned char> byte_at(std::size_t offset) const {
    if (offset >= offset_ || offset + kWindow < offset_) return std::nullopt;
    return static_cast<unsigned char>(window_[offset % kWindow]);
  }

  // Where the first byte among the last ones read that does not start a
  // valid UTF-8 sequence is; `fallback` when there is none.
  std::size_t first_invalid_utf8(std::size_t fallback) const {
    const std::size_t first = offset_ > kWindow ? offset_ - kWindow : 0;
    std::string recent;
    for (std::size_t i = first; i < offset_; ++i) recent += window_[i % kWindow];
    std::size_t i = 0;
    // Skip the continuation bytes of a sequence that began before the window.
    while (i < recent.size() && (static_cast<unsigned char>(recent[i]) & 0xC0) == 0x80) ++i;
    while (i < recent.size()) {
      const std::size_t n = detail::utf8_sequence(recent, i);
      if (n == 0) return first + i;
      i += n;
    }
    return fallback;
  }

  bool sequence_invalid_at(std::size_t offset) const {
    const std::size_t first = offset_ > kWindow ? offset_ - kWindow : 0;
    if (offset < first || offset >= offset_) return false;
    std::string recent;
    for (std::size_t i = offset; i < offset_; ++i) recent += window_[i % kWindow];
    return detail::utf8_sequence(recent, 0) == 0;
  }

 private:
  static constexpr std::size_t kWindow = 16;
  static constexpr std::size_t kNewlines = 4;
  bool refill() {
    const std::streamsize n =
        buf_.sgetn(chunk_.data(), static_cast<std::streamsize>(chunk_.size()));
    pos_ = 0;
    end_ = n > 0 ? static_cast<std::size_t>(n) : 0;
    return end_ > 0;
  }
  std::streambuf& buf_;
  std::vector<char> chunk_;
  std::size_t pos_ = 0;
  std::size_t end_ = 0;
  std::size_t offset_ = 0;  // bytes read
  std::size_t lines_ = 0;   // newlines read
  std::array<std::size_t, kNewlines> newlines_{};
  std::array<char, kWindow> window_{};
};

// An input iterator over an Input, for json::sax_parse: it compares equal
// to the end iterator once the input is exhausted.
class InputIterator {
 public:
  using iterator_category = std::input_iterator_tag;
  using value_type = char;
  using difference_type = std::ptrdiff_t;
  using pointer = const char*;
  using reference = char;

  InputIterator() = default;
  explicit InputIterator(Input& in) : in_(&in) {}
  char operator*() const { return std::char_traits<char>::to_char_type(in_->peek()); }
  InputIterator& operator++() {
    in_->advance();
    return *this;
  }
  InputIterator operator++(int) {
    InputIterator before = *this;
    in_->advance();
    return before;
  }
  bool operator==(const InputIterator& other) const {
    if (other.in_ == nullptr) return at_end();
    if (in_ == nullptr) return other.at_end();
    return at_end() == other.at_end();
  }
  bool operator!=(const InputIterator& other) const { return !(*this == other); }

 private:
  bool at_end() const { return in_ == nullptr || in_->peek() == std::char_traits<char>::eof(); }
  Input* in_ = nullptr;
};

// The parser's complaint in plain words, without its exception prefix and
// its "last read" echo of the input.
std::string plain_words(const Input& in, std::size_t offset, const json::exception& e) {
  std::string what = e.what();
  if (e.id == 406) {  // a number that does not fit a double
    const auto quote = what.find('\'');
    const auto end = what.rfind('\'');
    const auto number = quote < end ? what.substr(quote + 1, end - quote - 1) : std::string();
    return "the number " + number + " is too large";
  }
  if (const auto byte = in.byte_at(offset)) {
    if (*byte == 0 || (*byte >= 0x80 && in.sequence_invalid_at(offset))) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02X", *byte);
      return std::string("a byte that is not UTF-8 text (") + hex +
             "); an export file is UTF-8 JSON, and `tfimm-cache export` writes a string that "
             "is not UTF-8 as its bytes in hex (\"path_hex\")";
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

// The lists of records in an export file, read one record at a time.
enum class List { Models, History };

// Reads an export file strictly and as a stream (a SAX handler for
// json::sax_parse): each record of the top-level "models" and "history"
// lists is handed to `on_record` as soon as it is complete and then
// dropped, so that memory does not grow with the file. A key given twice
// in one object is an error, not "the last one wins", and every error names
// where it is: the record it is in, if any, and the line and column. The
// top-level values other than the lists are kept (top()).
class StrictReader {
 public:
  using OnRecord = std::function<void(List, std::size_t index, const json& record)>;
  // `on_top` sees each top-level value other than a list when it is read.
  using OnTop = std::function<void(const std::string& key, const json& value)>;
  StrictReader(Input& in, OnRecord on_record, OnTop on_top)
      : in_(in), on_record_(std::move(on_record)), on_top_(std::move(on_top)) {}

  const json& top() const { return root_; }
  // The parser starts at byte `offset` of the input (after leading space).
  void start_at(std::size_t offset) { start_ = offset; }
  std::size_t count(List list) const { return counts_[static_cast<std::size_t>(list)]; }
  bool saw_list(List list) const { return seen_[static_cast<std::size_t>(list)]; }

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
    const Frame& frame = stack_.back();
    const bool repeated = frame.value->contains(key) ||
                          (stack_.size() == 1 && (key == "models" || key == "history") &&
                           saw_list(key == "models" ? List::Models : List::History));
    if (repeated) {
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
    std::size_t offset = start_ + (position > 0 ? position - 1 : 0);
    if (std::string_view(e.what()).find("UTF-8") != std::string_view::npos) {
      offset = in_.first_invalid_utf8(offset);
    }
    if (complete_) {
      throw InvalidInput(in_.position_of(offset) +
                         ": text after the end of the JSON document; an export file is one "
                         "JSON object");
    }
    const std::string label = where();
    throw InvalidInput((label.empty() ? "" : label + ": ") + in_.position_of(offset) + ": " +
                       plain_words(in_, offset, e));
  }

 private:
  struct Frame {
    json* value;
    std::string key;           // its key in the parent object, "" in an array
    std::optional<List> list;  // a top-level record list
  };

  // Whether the frame at `depth` is a top-level record list.
  std::optional<List> list_at(std::size_t depth) const {
    if (depth != 1 || stack_.size() < 2) return std::nullopt;
    return stack_[1].list;
  }

  json* place(json&& value) {
    if (stack_.empty()) {
      root_ = std::move(value);
      return &root_;
    }
    json& parent = *stack_.back().value;
    if (const auto list = list_at(stack_.size() - 1)) {
      // A record: held apart from its list, which stays empty.
      record_ = std::move(value);
      return &record_;
    }
    if (parent.is_array()) {
      parent.push_back(std::move(value));
      return &parent.back();
    }
    return &(parent[key_] = std::move(value));
  }
  bool put(json&& value) {
    const bool top_value = stack_.size() == 1 && stack_.back().value->is_object();
    json* placed = place(std::move(value));
    if (top_value) on_top_(key_, *placed);
    if (const auto list = list_at(stack_.size() - 1)) record_done(*list);
    complete_ = stack_.empty();
    return true;
  }
  bool open(json&& container) {
    std::string key = !stack_.empty() && stack_.back().value->is_object() ? key_ : std::string();
    json* value = place(std::move(container));
    std::optional<List> kind;
    if (stack_.size() == 1 && value->is_array()) {
      if (key == "models") kind = List::Models;
      if (key == "history") kind = List::History;
    }
    stack_.push_back({value, std::move(key), kind});
    if (const auto list = list_at(1); list && stack_.size() == 2) {
      seen_[static_cast<std::size_t>(*list)] = true;
    }
    return true;
  }
  bool close() {
    const Frame done = std::move(stack_.back());
    const bool was_list = list_at(1).has_value() && stack_.size() == 2;
    stack_.pop_back();
    if (stack_.size() == 1 && stack_.back().value->is_object() && !was_list) {
      on_top_(done.key, *done.value);  // a top-level container other than a record list
    }
    if (const auto list = list_at(stack_.size() - 1)) record_done(*list);
    complete_ = stack_.empty();
    return true;
  }
  void record_done(List list) {
    const std::size_t index = counts_[static_cast<std::size_t>(list)]++;
    on_record_(list, index, record_);
    record_ = json();
  }

  // "models[3] (\"name\")" inside a record of a top-level list; "" elsewhere.
  std::string where() const {
    const auto list = stack_.size() >= 2 ? list_at(1) : std::nullopt;
    if (!list) return "";
    const std::size_t index = counts_[static_cast<std::size_t>(*list)];
    std::string name;
    if (stack_.size() > 2 && record_.is_object()) {
      const auto it = record_.find("name");
      if (it != record_.end() && it->is_string()) name = it->get<std::string>();
    }
    return *list == List::Models ? record_label(index, name)
                                 : "history[" + std::to_string(index) + "]";
  }

  Input& in_;
  OnRecord on_record_;
  OnTop on_top_;
  json root_;
  json record_;
  std::vector<Frame> stack_;
  std::string key_;
  std::array<std::size_t, 2> counts_{};
  std::array<bool, 2> seen_{};
  bool complete_ = false;  // the top-level value has ended
  std::size_t start_ = 0;
};

// Reads `in` to its end through `reader`.
void read_strictly(Input& in, StrictReader& reader) {
  while (in.peek() != std::char_traits<char>::eof() &&
         std::isspace(std::char_traits<char>::to_char_type(in.peek())) != 0) {
    in.advance();
  }
  if (in.peek() == std::char_traits<char>::eof()) {
    throw InvalidInput(
        "the file is empty; an export file is the JSON object `tfimm-cache export` writes");
  }
  reader.start_at(in.offset());
  json::sax_parse(InputIterator(in), InputIterator(), &reader);
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
  enum class Dir { Keep, Set, Unset };
  ImportReport report;
};

// The rules for a batch of records: a record's path wins. With `replace`
// its lock and reason win too (and the entries not in the file go: see
// Applier::forget_the_rest). Without it a lock is never
// removed: an entry locked in the registry stays locked (with its reason)
// when the record is unlocked, and takes the record's reason when both are.
ImportPlan plan_import(const RegistryContents& before, const std::vector<Snapshot::Model>& models,
                       const detail::NameOrder& by_name, bool replace) {
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
  return plan;
}

// -- reading records ----------------------------------------------------------

// The keys of each version of the format, in the order export writes them.
const std::vector<const char*> kTopKeysV1 = {"format", "version", "cache_dir", "cache_dir_hex",
                                             "models"};
const std::vector<const char*> kTopKeysV2 = {"format",        "version", "cache_dir",
                                             "cache_dir_hex", "history", "models"};
const std::vector<const char*> kModelKeysV1 = {"name", "path", "path_hex", "locked", "lock_reason"};
const std::vector<const char*> kModelKeysV2 = {
    "name",       "path",       "path_hex",      "locked",   "lock_reason", "lock_reason_hex",
    "created_at", "updated_at", "missing_since", "local_to", "local_to_hex"};
// A history row: its fields as `history --json` shows them, times in ms.
const std::vector<const char*> kHistoryKeys = {
    "id",       "at",           "action", "name",     "name_hex", "old_path", "old_path_hex",
    "new_path", "new_path_hex", "user",   "user_hex", "host",     "host_hex", "pid"};

bool is_known(const std::vector<const char*>& known, const std::string& key) {
  return std::find_if(known.begin(), known.end(), [&](const char* k) { return key == k; }) !=
         known.end();
}

void known_keys_only(const json& object, const std::string& label,
                     const std::vector<const char*>& known, int version) {
  for (const auto& item : object.items()) {
    if (is_known(known, item.key())) continue;
    std::string list;
    for (const char* k : known) list += (list.empty() ? "\"" : ", \"") + std::string(k) + "\"";
    throw InvalidInput(label + ": unknown key " + detail::quote(item.key()) + " (version " +
                       std::to_string(version) + " of the format has " + list +
                       "); a misspelt key would lose what it holds");
  }
}

// A time in milliseconds since the epoch; nothing when absent (or null,
// with `nullable`).
std::optional<Timestamp> time_field(const json& object, const std::string& label, const char* key,
                                    bool nullable) {
  const auto it = object.find(key);
  if (it == object.end() || (nullable && it->is_null())) return std::nullopt;
  if (it->is_number_unsigned() &&
      it->get<json::number_unsigned_t>() > static_cast<json::number_unsigned_t>(INT64_MAX)) {
    throw InvalidInput(label + ": \"" + key + "\" is too large for a time in milliseconds");
  }
  if (!it->is_number_integer() || it->get<std::int64_t>() < 0) {
    throw InvalidInput(label + ": \"" + key + "\" must be a time in milliseconds since 1970" +
                       " (an integer >= 0" + (nullable ? ", or null" : "") + "), not " +
                       it->dump());
  }
  return it->get<std::int64_t>();
}

std::int64_t integer_field(const json& object, const std::string& label, const char* key) {
  const auto it = object.find(key);
  if (it == object.end()) throw InvalidInput(label + ": needs an integer \"" + key + "\"");
  if (!it->is_number_integer() ||
      (it->is_number_unsigned() &&
       it->get<json::number_unsigned_t>() > static_cast<json::number_unsigned_t>(INT64_MAX))) {
    throw InvalidInput(label + ": \"" + key + "\" must be an integer, not " + it->dump());
  }
  return it->get<std::int64_t>();
}

// One record of "models", as the file gives it (not yet checked against
// the registry's rules). `version` 0: not known yet (a version-1 file
// written by an older tfimm-cache has "version" after "models"): read by
// the newest rules, and `newer_key` gets the first key version 1 lacks.
Snapshot::Model model_from(const json& record, std::size_t index, int version,
                           std::optional<std::string>& newer_key) {
  if (!record.is_object()) {
    throw InvalidInput(record_label(index, "") + " must be an object, not " + record.type_name());
  }
  const auto name = record.find("name");
  if (name == record.end())
    throw InvalidInput(record_label(index, "") + ": needs a string \"name\"");
  if (!name->is_string()) {
    throw InvalidInput(record_label(index, "") + ": \"name\" must be a string, not " +
                       name->type_name());
  }
  Snapshot::Model model;
  model.name = name->get<std::string>();
  const std::string label = record_label(index, model.name);
  known_keys_only(record, label, version == 1 ? kModelKeysV1 : kModelKeysV2, version == 1 ? 1 : 2);
  if (version == 0 && !newer_key) {
    for (const auto& item : record.items()) {
      if (!is_known(kModelKeysV1, item.key())) {
        newer_key = label + ": the key " + detail::quote(item.key());
        break;
      }
    }
  }
  model.path = *path_field(record, label, "path");
  if (const auto locked = record.find("locked"); locked != record.end()) {
    if (!locked->is_boolean()) {
      throw InvalidInput(label + ": \"locked\" must be true or false, not " + locked->type_name());
    }
    model.locked = locked->get<bool>();
  }
  if (const auto reason = path_field(record, label, "lock_reason", true)) {
    model.lock_reason = *reason;
  }
  if (!model.locked && !model.lock_reason.empty()) {
    throw InvalidInput(label + ": has a \"lock_reason\" but is not locked; add \"locked\": " +
                       "true to keep the reason, or remove it");
  }
  model.created_at = time_field(record, label, "created_at", false);
  model.updated_at = time_field(record, label, "updated_at", false);
  model.missing_since = time_field(record, label, "missing_since", true);
  model.local_to = path_field(record, label, "local_to", true);
  if (model.local_to && !model.updated_at) {
    throw InvalidInput(label + ": gives \"local_to\" without \"created_at\" and " +
                       "\"updated_at\"; give all three, or none (then the import decides)");
  }
  if (model.created_at.has_value() != model.updated_at.has_value()) {
    throw InvalidInput(label + ": gives only one of \"created_at\" and \"updated_at\"; give " +
                       "both, or neither (then the import's time is used)");
  }
  if (model.missing_since && !model.updated_at) {
    throw InvalidInput(label + ": gives \"missing_since\" without \"created_at\" and " +
                       "\"updated_at\"; give all three");
  }
  return checked(std::move(model), index);
}

HistoryRecord history_from(const json& record, std::size_t index) {
  const std::string label = "history[" + std::to_string(index) + "]";
  if (!record.is_object()) {
    throw InvalidInput(label + " must be an object, not " + record.type_name());
  }
  known_keys_only(record, label, kHistoryKeys, 2);
  HistoryRecord r;
  r.id = integer_field(record, label, "id");
  r.at = integer_field(record, label, "at");
  const auto action = record.find("action");
  if (action == record.end() || !action->is_string() || action->get<std::string>().empty()) {
    throw InvalidInput(label + ": needs a non-empty string \"action\"");
  }
  r.action = action->get<std::string>();
  r.name = *path_field(record, label, "name");
  r.old_path = path_field(record, label, "old_path", true);
  r.new_path = path_field(record, label, "new_path", true);
  r.user = *path_field(record, label, "user");
  r.host = *path_field(record, label, "host");
  r.pid = integer_field(record, label, "pid");
  return r;
}

// What the top-level values say, checked as each arrives.
struct Header {
  int version = 0;  // 0: not read yet
  bool format = false;
  std::optional<std::string> cache_dir;
};

void read_top(Header& header, const std::string& key, const json& value) {
  if (key == "format") {
    if (!value.is_string() || value != kFormatName) {
      throw InvalidInput(std::string("not a tfimm-cache export: \"format\" must be \"") +
                         kFormatName + "\"");
    }
    header.format = true;
  } else if (key == "version") {
    if (!value.is_number_integer()) throw InvalidInput("\"version\" must be an integer");
    if (value != 1 && value != kExportFormatVersion) {
      throw InvalidInput("export format version " + value.dump() +
                         " is not supported; this build reads versions 1 and " +
                         std::to_string(kExportFormatVersion) +
                         ". Import it with the tfimm-cache that wrote it, or a newer one");
    }
    header.version = value.get<int>();
  }
}

// The whole document's checks, once it has been read.
void check_document(const StrictReader& reader, const Header& header,
                    const std::optional<std::string>& newer_key) {
  const json& doc = reader.top();
  if (!doc.is_object()) {
    throw InvalidInput(std::string("an export file must be a JSON object, not ") + doc.type_name());
  }
  if (!header.format) {
    throw InvalidInput(std::string("not a tfimm-cache export: \"format\" must be \"") +
                       kFormatName + "\"");
  }
  if (header.version == 0) throw InvalidInput("\"version\" must be an integer");
  // A later format that adds a key gets a new version number: a key this
  // version does not know is a mistake, not something to skip.
  known_keys_only(doc, "the top-level object", header.version == 1 ? kTopKeysV1 : kTopKeysV2,
                  header.version);
  if (header.version == 1 && newer_key) {
    throw InvalidInput(*newer_key + " is not in version 1 of the format; make it version 2, " +
                       "or remove the key");
  }
  if (!reader.saw_list(List::Models)) throw InvalidInput("\"models\" must be an array");
  if (const auto h = doc.find("history"); h != doc.end() && !reader.saw_list(List::History)) {
    throw InvalidInput("\"history\" must be an array");
  }
}

std::optional<std::string> cache_dir_of(const json& doc) {
  if (!doc.is_object()) return std::nullopt;
  const auto value = path_field(doc, "\"cache_dir\"", "cache_dir", true);
  if (!value) return std::nullopt;
  try {
    return normalize_path(*value);
  } catch (const InvalidPath& e) {
    throw InvalidInput(std::string("\"cache_dir\": ") + e.what());
  }
}

// Reads a whole export file from `in`, handing each checked model and
// history record to the callbacks in file order. Returns the cache
// directory it gives. Throws InvalidInput naming the first problem.
std::optional<std::string> read_export(
    std::istream& in, const std::function<void(Snapshot::Model&&, std::size_t)>& on_model,
    const std::function<void(HistoryRecord&&, std::size_t)>& on_history) {
  std::streambuf* buf = in.rdbuf();
  if (buf == nullptr) throw InvalidInput("the export file cannot be read");
  Input input(*buf);
  Header header;
  std::optional<std::string> newer_key;
  StrictReader reader(
      input,
      [&](List list, std::size_t index, const json& record) {
        if (list == List::Models) {
          on_model(model_from(record, index, header.version, newer_key), index);
        } else {
          if (header.version == 1) {
            throw InvalidInput(
                "the top-level object: unknown key \"history\" (version 1 of "
                "the format has none); make it version 2");
          }
          on_history(history_from(record, index), index);
        }
      },
      [&](const std::string& key, const json& value) { read_top(header, key, value); });
  read_strictly(input, reader);
  check_document(reader, header, newer_key);
  return cache_dir_of(reader.top());
}

// -- writing records -----------------------------------------------------------

// `value` as a JSON string (valid UTF-8 only: see put_text).
void put_quoted(std::string& out, std::string_view value) {
  out += '"';
  for (const char ch : value) {
    const auto c = static_cast<unsigned char>(ch);
    switch (ch) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (c < 0x20) {
          char esc[8];
          std::snprintf(esc, sizeof esc, "\\u%04x", c);
          out += esc;
        } else {
          out += ch;
        }
    }
  }
  out += '"';
}

// `"key": "value"`, or, for bytes that are not valid UTF-8 (JSON text is
// UTF-8), `"key_hex": "..."` with the bytes in hex: every string comes back
// byte for byte, and a valid one stays readable.
void put_text(std::string& out, const char* key, std::string_view value) {
  out += '"';
  out += key;
  if (detail::valid_utf8(value)) {
    out += "\": ";
    put_quoted(out, value);
  } else {
    out += "_hex\": \"";
    out += to_hex(value);
    out += '"';
  }
}

void put_optional_text(std::string& out, const char* key, const std::optional<std::string>& value) {
  if (value) {
    put_text(out, key, *value);
  } else {
    out += '"';
    out += key;
    out += "\": null";
  }
}

void put_number(std::string& out, const char* key, std::optional<std::int64_t> value) {
  out += '"';
  out += key;
  out += "\": ";
  out += value ? std::to_string(*value) : "null";
}

// One entry, on one line, keys in the documented order.
void put_model(std::string& out, const Entry& e) {
  out += "{";
  put_text(out, "name", e.name);
  out += ", ";
  put_text(out, "path", e.path);
  out += e.locked ? ", \"locked\": true, " : ", \"locked\": false, ";
  put_text(out, "lock_reason", e.lock_reason);
  out += ", ";
  put_number(out, "created_at", e.created_at);
  out += ", ";
  put_number(out, "updated_at", e.updated_at);
  out += ", ";
  put_number(out, "missing_since", e.missing_since);
  out += ", ";
  put_text(out, "local_to", e.local_to);
  out += "}";
}

// One history row, on one line: the fields of `history --json`, times in ms.
void put_history(std::string& out, const HistoryRecord& r) {
  out += "{";
  put_number(out, "id", r.id);
  out += ", ";
  put_number(out, "at", r.at);
  out += ", ";
  put_text(out, "action", r.action);
  out += ", ";
  put_text(out, "name", r.name);
  out += ", ";
  put_optional_text(out, "old_path", r.old_path);
  out += ", ";
  put_optional_text(out, "new_path", r.new_path);
  out += ", ";
  put_text(out, "user", r.user);
  out += ", ";
  put_text(out, "host", r.host);
  out += ", ";
  put_number(out, "pid", r.pid);
  out += "}";
}

// Writes an export file a piece at a time: the header, then each list.
class ExportWriter {
 public:
  explicit ExportWriter(std::ostream& out) : out_(out) {}

  void header(const std::optional<std::string>& cache_dir) {
    line_ = "{\n  \"format\": \"";
    line_ += kFormatName;
    line_ += "\",\n  \"version\": " + std::to_string(kExportFormatVersion) + ",\n  ";
    put_optional_text(line_, "cache_dir", cache_dir);
    flush();
  }
  // Opens a list ("history" or "models"); items follow, then close_list().
  void open_list(const char* key) {
    line_ = ",\n  \"";
    line_ += key;
    line_ += "\": [";
    first_ = true;
    flush();
  }
  // The buffer for the next item: fill it, then item_done().
  std::string& item() {
    line_ = first_ ? "\n    " : ",\n    ";
    first_ = false;
    return line_;
  }
  void item_done() {
    // Written in chunks, not per record: one call per 64 KiB.
    chunk_ += line_;
    if (chunk_.size() >= 65536) write_chunk();
  }
  void close_list() {
    line_ = first_ ? "]" : "\n  ]";
    flush();
  }
  void end() {
    line_ = "\n}\n";
    flush();
    write_chunk();
    out_.flush();
  }

 private:
  void flush() {
    chunk_ += line_;
    line_.clear();
  }
  void write_chunk() {
    out_.write(chunk_.data(), static_cast<std::streamsize>(chunk_.size()));
    chunk_.clear();
  }
  std::ostream& out_;
  std::string line_;
  std::string chunk_;
  bool first_ = true;
};

// Entries and history rows read from the store per page: memory holds one
// page, whatever the registry's size.
constexpr std::size_t kPage = 2048;

// -- applying records ------------------------------------------------------------

// 128 bits of a name: two names an import reads are the same only if these
// are, and two different names share them with a probability of about
// 2^-128 per pair. 16 bytes a name instead of the name itself, so that
// finding a repeated name does not hold every name of the file.
struct NameKey {
  std::uint64_t a = 0, b = 0;
  bool operator<(const NameKey& o) const { return a != o.a ? a < o.a : b < o.b; }
  bool operator==(const NameKey& o) const { return a == o.a && b == o.b; }
};

NameKey key_of(std::string_view name) {
  // FNV-1a, 64 bits, twice with different offsets and a different mix.
  std::uint64_t a = 0xcbf29ce484222325ull, b = 0x84222325cbf29ce4ull;
  for (const char ch : name) {
    const auto c = static_cast<unsigned char>(ch);
    a = (a ^ c) * 0x100000001b3ull;
    b = (b ^ (c + 0x9eu)) * 0x100000001b3ull;
    b ^= b >> 29;
  }
  return {a, b};
}

// The names an import has read: finds a name given twice, and which
// entries of the registry the file does not have (--replace).
class NameSet {
 public:
  // Whether `name` was added before; adds it.
  bool repeated(const std::string& name) {
    const NameKey key = key_of(name);
    if (std::binary_search(sorted_.begin(), sorted_.end(), key)) return true;
    if (!recent_.insert(name).second) return true;
    recent_keys_.push_back(key);
    if (recent_keys_.size() >= kRecent) fold();
    return false;
  }
  bool contains(const std::string& name) {
    fold();
    return std::binary_search(sorted_.begin(), sorted_.end(), key_of(name));
  }

 private:
  static constexpr std::size_t kRecent = 4096;
  void fold() {
    if (recent_keys_.empty()) return;
    std::sort(recent_keys_.begin(), recent_keys_.end());
    const auto middle = sorted_.size();
    sorted_.insert(sorted_.end(), recent_keys_.begin(), recent_keys_.end());
    std::inplace_merge(sorted_.begin(), sorted_.begin() + static_cast<std::ptrdiff_t>(middle),
                       sorted_.end());
    recent_keys_.clear();
    recent_.clear();
  }
  std::vector<NameKey> sorted_;
  std::unordered_set<std::string> recent_;
  std::vector<NameKey> recent_keys_;
};

using Rewrites = std::vector<std::pair<std::string, std::string>>;

Rewrites checked_rewrites(const ImportOptions& options) {
  Rewrites rewrites;
  for (const auto& [from, to] : options.rewrites) {
    try {
      rewrites.emplace_back(normalize_path(from), normalize_path(to));
    } catch (const InvalidPath& e) {
      throw InvalidInput(std::string("invalid rewrite: ") + e.what());
    }
  }
  return rewrites;
}

// Applies an import's records to the registry in batches, inside the one
// write transaction of the import. The same code plans a dry run (through
// a writer that discards) and a real import, so both report the same.
class Applier {
 public:
  Applier(detail::Writer& w, const Rewrites& rewrites, NameSet& names, bool replace, Timestamp now)
      : w_(w), rewrites_(rewrites), names_(names), replace_(replace), now_(now) {}

  void model(Snapshot::Model&& m) {
    m.path = rewrite(m.path, rewrites_);
    batch_.push_back(std::move(m));
    if (batch_.size() >= kBatch) write_batch();
  }
  void history(HistoryRecord&& r) {
    history_.push_back(std::move(r));
    if (history_.size() >= kBatch) write_history();
  }
  // The last batches, then what depends on the whole file: entries it does
  // not have (with replace), and what becomes of the cache directory, which
  // the caller applies (the Registry's rules for it).
  struct Finish {
    ImportReport report;
    ImportPlan::Dir dir = ImportPlan::Dir::Keep;
    std::optional<std::string> cache_dir;
  };
  Finish finish(const std::optional<std::string>& file_dir) {
    write_history();
    write_batch();
    if (replace_) forget_the_rest();
    std::optional<std::string> cache_dir;
    if (file_dir) cache_dir = rewrite(*file_dir, rewrites_);
    const auto before = w_.setting(detail::kCacheDirKey);
    ImportPlan::Dir dir = ImportPlan::Dir::Keep;
    if (cache_dir && cache_dir != before) {
      dir = ImportPlan::Dir::Set;
    } else if (!cache_dir && replace_ && before) {
      dir = ImportPlan::Dir::Unset;
    }
    report_.cache_dir_changed = dir != ImportPlan::Dir::Keep;
    return {report_, dir, cache_dir};
  }

 private:
  static constexpr std::size_t kBatch = 4096;

  void write_history() {
    if (history_.empty()) return;
    w_.begin_change();
    w_.restore_history(history_);
    history_.clear();
  }

  void write_batch() {
    if (batch_.empty()) return;
    const auto by_name = detail::name_order(
        batch_, [](const Snapshot::Model& m) -> const std::string& { return m.name; });
    std::vector<const std::string*> names;
    names.reserve(by_name.size());
    for (const auto& [key, i] : by_name) names.push_back(&batch_[i].name);
    RegistryContents contents;
    auto found = w_.models_named(names);
    for (auto& e : found) {
      if (e) contents.entries.emplace(e->name, std::move(*e));
    }
    const ImportPlan plan = plan_import(contents, batch_, by_name, replace_);
    add(plan.report);
    // A record with its own times is stored as it is (created, changed,
    // missing since); one without gets the import's time, as a set would.
    std::vector<detail::PathChange> plain;
    std::vector<detail::PathChange> timed_changes;
    std::vector<Entry> timed;
    timed.reserve(plan.paths.size());
    for (const auto& change : plan.paths) {
      const auto& m = batch_[index_of(by_name, *change.name)];
      if (!m.updated_at) {
        plain.push_back(change);
        continue;
      }
      Entry e;
      e.name = m.name;
      e.path = m.path;
      e.created_at = *m.created_at;
      e.updated_at = *m.updated_at;
      e.missing_since = m.missing_since;
      e.local_to = m.local_to ? *m.local_to : detail::local_to_of(m.path);
      if (const auto it = contents.entries.find(m.name); it != contents.entries.end()) {
        e.locked = it->second.locked;  // the lock is the plan's, below
        e.lock_reason = it->second.lock_reason;
      }
      timed.push_back(std::move(e));
      timed_changes.push_back(change);
    }
    if (!plan.paths.empty()) w_.begin_change();
    detail::set_models(w_, "import", plain, now_);
    w_.add_histories("import", timed_changes, now_);
    std::vector<const Entry*> rows;
    rows.reserve(timed.size());
    for (const auto& e : timed) rows.push_back(&e);
    w_.put_entries(rows);
    for (const auto& change : plan.locks) {
      // The lock it had (none for an entry this import adds), for undo.
      Entry current;
      current.name = *change.name;
      current.path = *change.path;
      if (const auto it = contents.entries.find(current.name); it != contents.entries.end()) {
        current.locked = it->second.locked;
        current.lock_reason = it->second.lock_reason;
      }
      detail::change_lock(w_, current, change.locked, *change.reason, now_);
    }
    batch_.clear();
  }

  static std::size_t index_of(const detail::NameOrder& by_name, const std::string& name) {
    const auto it = std::lower_bound(
        by_name.begin(), by_name.end(), std::pair<std::string_view, std::size_t>(name, 0),
        [](const auto& a, const auto& b) { return a.first < b.first; });
    return it->second;
  }

  // With replace: every entry the file does not have goes, a page at a time.
  void forget_the_rest() {
    std::optional<std::string> after;
    for (;;) {
      auto page = w_.models_after(after, kPage);
      if (page.empty()) break;
      after = page.back().name;
      for (const auto& e : page) {
        if (names_.contains(e.name)) continue;
        detail::forget_model(w_, "import", e, now_);
        ++report_.removed;
      }
    }
  }

  void add(const ImportReport& r) {
    report_.added += r.added;
    report_.changed += r.changed;
    report_.unchanged += r.unchanged;
    report_.locked += r.locked;
    report_.unlocked += r.unlocked;
    report_.locks_kept += r.locks_kept;
  }

  detail::Writer& w_;
  const Rewrites& rewrites_;
  NameSet& names_;
  bool replace_;
  Timestamp now_;
  std::vector<Snapshot::Model> batch_;
  std::vector<HistoryRecord> history_;
  ImportReport report_;
};

// An unnamed temporary file that holds a copy of what a reader reads
// through `tee`, to be read again through `copy`.
class Spool {
 public:
  explicit Spool(std::streambuf& source)
      : fd_(make_file()), tee(source, fd_), file_(fd_, std::ios::in, 65536), copy(&file_) {}
  // file_ closes the file.
  Spool(const Spool&) = delete;
  Spool& operator=(const Spool&) = delete;

  // After the first reading: the copy is complete, and read from its start.
  void finish_copy() {
    if (tee.error() != 0) {
      throw InvalidInput(std::string("could not keep a copy of the input to read it again: ") +
                         std::strerror(tee.error()) + " (in $TMPDIR, else /tmp)");
    }
    if (file_.pubseekpos(0, std::ios::in) != std::streampos(0)) {
      throw InvalidInput(std::string("could not read the copy of the input again: ") +
                         std::strerror(errno));
    }
  }

 private:
  static int make_file() {
    const char* env = std::getenv("TMPDIR");
    const std::string dir = env != nullptr && *env != '\0' ? env : "/tmp";
    int fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd < 0) {
      std::string name = dir + "/tfimm-import-XXXXXX";
      fd = ::mkostemp(name.data(), O_CLOEXEC);
      if (fd >= 0) ::unlink(name.c_str());
    }
    if (fd < 0) {
      throw InvalidInput("cannot create a temporary file in " + dir + " to hold the input: " +
                         std::strerror(errno) + "; set $TMPDIR to a writable directory");
    }
    return fd;
  }

  // Reads `source` and writes each chunk read to `fd` as well.
  class Tee final : public std::streambuf {
   public:
    Tee(std::streambuf& source, int fd) : source_(source), fd_(fd), buf_(65536) {}
    int error() const noexcept { return error_; }

   protected:
    int_type underflow() override {
      const std::streamsize n =
          source_.sgetn(buf_.data(), static_cast<std::streamsize>(buf_.size()));
      if (n <= 0) return traits_type::eof();
      std::size_t written = 0;
      while (error_ == 0 && written < static_cast<std::size_t>(n)) {
        const ssize_t w =
            ::write(fd_, buf_.data() + written, static_cast<std::size_t>(n) - written);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) error_ = errno;
        if (w > 0) written += static_cast<std::size_t>(w);
      }
      setg(buf_.data(), buf_.data(), buf_.data() + n);
      return traits_type::to_int_type(buf_[0]);
    }

   private:
    std::streambuf& source_;
    int fd_;
    std::vector<char> buf_;
    int error_ = 0;
  };

  int fd_;

 public:
  Tee tee;

 private:
  __gnu_cxx::stdio_filebuf<char> file_;

 public:
  std::istream copy;
};

// The label of the first repeated name among `models`, checked in order.
void check_no_repeats(NameSet& names, const Snapshot::Model& m, std::size_t index) {
  if (names.repeated(m.name)) {
    throw InvalidInput(record_label(index, m.name) + ": the name appears more than once");
  }
}

}  // namespace

std::string to_json(const Snapshot& snapshot) {
  std::vector<const Snapshot::Model*> sorted;
  for (const auto& m : snapshot.models) sorted.push_back(&m);
  std::sort(sorted.begin(), sorted.end(),
            [](const auto* a, const auto* b) { return a->name < b->name; });
  std::ostringstream out;
  ExportWriter writer(out);
  writer.header(snapshot.cache_dir);
  writer.open_list("models");
  const Timestamp now = detail::now_ms();
  for (const auto* m : sorted) {
    Entry e;
    e.name = m->name;
    e.path = m->path;
    e.locked = m->locked;
    e.lock_reason = m->lock_reason;
    e.created_at = m->created_at.value_or(now);
    e.updated_at = m->updated_at.value_or(now);
    e.missing_since = m->missing_since;
    e.local_to = m->local_to.value_or("");
    put_model(writer.item(), e);
    writer.item_done();
  }
  writer.close_list();
  writer.end();
  return out.str();
}

Snapshot parse_snapshot(std::string_view text) {
  std::istringstream in{std::string(text)};
  Snapshot snapshot;
  NameSet names;
  snapshot.cache_dir = read_export(
      in,
      [&](Snapshot::Model&& m, std::size_t index) {
        check_no_repeats(names, m, index);
        snapshot.models.push_back(std::move(m));
      },
      [](HistoryRecord&&, std::size_t) {});
  return snapshot;
}

Snapshot Registry::snapshot() {
  Lock lock(impl_->mutex);
  Snapshot snap;
  impl_->store->read([&](detail::Reader& r) {
    for (auto& e : r.models()) {
      Snapshot::Model m;
      m.name = std::move(e.name);
      m.path = std::move(e.path);
      m.locked = e.locked;
      m.lock_reason = std::move(e.lock_reason);
      m.created_at = e.created_at;
      m.updated_at = e.updated_at;
      m.missing_since = e.missing_since;
      m.local_to = std::move(e.local_to);
      snap.models.push_back(std::move(m));
    }
    snap.cache_dir = r.setting(detail::kCacheDirKey);
  });
  return snap;
}

ExportSummary Registry::export_json(std::ostream& out, const ExportOptions& options) {
  Lock lock(impl_->mutex);
  ExportSummary summary;
  ExportWriter writer(out);
  // One snapshot of the registry, read a page at a time and written as it
  // is read.
  const bool found = impl_->store->read([&](detail::Reader& r) {
    const auto cache_dir = r.setting(detail::kCacheDirKey);
    summary.cache_dir = cache_dir.has_value();
    writer.header(cache_dir);
    if (options.with_history) {
      writer.open_list("history");
      std::int64_t after = 0;
      for (;;) {
        detail::HistoryQuery page_query;
        page_query.ascending = true;
        page_query.from = after;
        page_query.limit = kPage;
        const auto page = r.history(page_query);
        if (page.empty()) break;
        after = page.back().id;
        for (const auto& h : page) {
          put_history(writer.item(), h);
          writer.item_done();
        }
        summary.history += page.size();
        if (!out) return;
      }
      writer.close_list();
    }
    writer.open_list("models");
    std::optional<std::string> after;
    for (;;) {
      const auto page = r.models_after(after, kPage);
      if (page.empty()) break;
      after = page.back().name;
      for (const auto& e : page) {
        put_model(writer.item(), e);
        writer.item_done();
      }
      summary.entries += page.size();
      if (!out) return;  // the caller sees the failed stream
    }
    writer.close_list();
    writer.end();
  });
  if (!found) {
    writer.header(std::nullopt);
    if (options.with_history) {
      writer.open_list("history");
      writer.close_list();
    }
    writer.open_list("models");
    writer.close_list();
    writer.end();
  }
  return summary;
}

ImportReport Registry::import(const Snapshot& snapshot, const ImportOptions& options) {
  // Check everything before changing anything.
  const Rewrites rewrites = checked_rewrites(options);
  std::vector<Snapshot::Model> models;
  models.reserve(snapshot.models.size());
  NameSet names;
  for (std::size_t i = 0; i < snapshot.models.size(); ++i) {
    models.push_back(checked(snapshot.models[i], i));
    check_no_repeats(names, models.back(), i);
  }
  std::optional<std::string> cache_dir;
  if (snapshot.cache_dir) cache_dir = normalize_path(*snapshot.cache_dir);

  Lock lock(impl_->mutex);
  detail::WriteMode mode;
  mode.bulk = true;
  if (options.dry_run) mode.outcome = detail::WriteMode::Outcome::DryRun;
  ImportReport report;
  impl_->store->write(
      [&](detail::Writer& w) {
        Applier applier(w, rewrites, names, options.replace, detail::now_ms());
        for (auto& m : models) applier.model(Snapshot::Model(m));
        const auto done = applier.finish(cache_dir);
        if (done.dir == ImportPlan::Dir::Set) impl_->set_dir(w, *done.cache_dir);
        if (done.dir == ImportPlan::Dir::Unset) impl_->unset_dir(w);
        report = done.report;
      },
      mode);
  return report;
}

ImportReport Registry::import_json(std::istream& given, const ImportOptions& options) {
  const Rewrites rewrites = checked_rewrites(options);
  Lock lock(impl_->mutex);
  // The file is read once, inside the import's transaction, and checked as
  // it is applied: a bad record rolls all of it back. A registry that does
  // not exist yet would be created by the first batch, so then every record
  // is checked first, without the registry, and the file read again (from
  // an unnamed temporary copy when it cannot be read twice, as a pipe).
  const bool exists = options.dry_run || impl_->store->read([](detail::Reader&) {},
                                                            detail::Store::Consistency::PerCall);
  std::istream* in = &given;
  std::unique_ptr<Spool> spool;
  NameSet names;
  if (!exists) {
    const auto check = [&](std::istream& text) {
      read_export(
          text, [&](Snapshot::Model&& m, std::size_t index) { check_no_repeats(names, m, index); },
          [](HistoryRecord&&, std::size_t) {});
    };
    const auto start = given.tellg();
    if (start == std::istream::pos_type(-1)) {
      given.clear();
      spool = std::make_unique<Spool>(*given.rdbuf());
      std::istream tee(&spool->tee);
      check(tee);
      spool->finish_copy();
      in = &spool->copy;
    } else {
      check(given);
      given.clear();
      given.seekg(start);
      if (!given) throw InvalidInput("the export file cannot be read again; nothing was changed");
    }
  }
  detail::WriteMode mode;
  mode.bulk = true;
  if (options.dry_run) mode.outcome = detail::WriteMode::Outcome::DryRun;
  ImportReport report;
  impl_->store->write(
      [&](detail::Writer& w) {
        Applier applier(w, rewrites, names, options.replace, detail::now_ms());
        const auto cache_dir = read_export(
            *in,
            [&](Snapshot::Model&& m, std::size_t index) {
              if (exists) check_no_repeats(names, m, index);
              applier.model(std::move(m));
            },
            [&](HistoryRecord&& r, std::size_t) { applier.history(std::move(r)); });
        const auto done = applier.finish(cache_dir);
        if (done.dir == ImportPlan::Dir::Set) impl_->set_dir(w, *done.cache_dir);
        if (done.dir == ImportPlan::Dir::Unset) impl_->unset_dir(w);
        report = done.report;
      },
      mode);
  return report;
}

}  // namespace tfimm
