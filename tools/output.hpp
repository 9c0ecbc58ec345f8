// Output formatting for tfimm-cache: aligned tables, times, optional colour
// and a progress bar. Colour and the progress bar appear only on a terminal;
// pipes and JSON get plain text.
#pragma once

#include <chrono>
#include <cstddef>
#include <iosfwd>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "tfimm/registry.hpp"

namespace tfimm::tool {

// Whether standard output is a terminal (a person is reading, not a program).
bool stdout_is_terminal();

// Makes every write to std::cout checked: std::cout then writes through a
// buffer over descriptor 1, and the first write that fails (a full disk, a
// reader that went away while SIGPIPE is ignored) throws
// std::ios_base::failure from the statement that wrote, so a long listing
// stops there. Later writes are discarded. Call once, first thing in main().
void check_stdout_writes();

// The errno of the first failed write to standard output, or 0.
int stdout_error();

// Why standard output cannot take any write at all, before one is tried:
// EBADF when descriptor 1 is closed or open only for reading; else 0.
int stdout_unusable();

// Whether to colour standard output: it is a terminal, $NO_COLOR is unset or
// empty (https://no-color.org) and $TERM is not "dumb".
bool stdout_wants_colour();

// ANSI colours, or plain text when disabled.
class Style {
 public:
  enum class Colour { None, Bold, Red, Green, Yellow, Dim };
  explicit Style(bool enabled) : enabled_(enabled) {}
  bool enabled() const { return enabled_; }
  std::string paint(std::string_view text, Colour colour) const;

 private:
  bool enabled_;
};

// The colour for a path status: green for ok, red for stale, yellow otherwise.
Style::Colour status_colour(PathStatus status);

// Text safe to print on one line, escaped exactly as the library's messages
// escape values: \n, \t, and \xNN for other control characters and for
// bytes that are not valid UTF-8.
std::string printable(std::string_view text);

// A table printed with each column padded to its widest cell (the last
// column is not padded). Cells are printed through printable(); colour does
// not count toward width.
class Table {
 public:
  struct Cell {
    std::string text;
    Style::Colour colour = Style::Colour::None;
    Cell(std::string t) : text(std::move(t)) {}  // NOLINT: implicit on purpose
    Cell(const char* t) : text(t) {}             // NOLINT
    Cell(std::string t, Style::Colour c) : text(std::move(t)), colour(c) {}
  };
  explicit Table(std::vector<std::string> header) : header_(std::move(header)) {}
  void add(std::vector<Cell> row) { rows_.push_back(std::move(row)); }
  bool empty() const { return rows_.empty(); }
  void print(std::ostream& out, const Style& style) const;
  // One block of a table printed in blocks, so that a long listing is never
  // held whole: every column at least as wide as `widths` says (empty: as
  // its cells need), which it then widens to what this block needed; the
  // header only when `header`.
  void print_block(std::ostream& out, const Style& style, std::vector<std::size_t>& widths,
                   bool header) const;
  void clear() { rows_.clear(); }
  std::size_t size() const { return rows_.size(); }

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<Cell>> rows_;
};

// "2024-05-01T10:00:00Z" (seconds) or "2024-05-01T10:00:00.123Z" (millis),
// always UTC.
std::string iso_time(Timestamp at, bool millis = false);

// How long ago `at` was, roughly: "3d", "5h", "12m", "40s".
std::string age(Timestamp at);

// JSON text for output: two-space indent, invalid UTF-8 replaced, newline.
std::string dump_json(const nlohmann::ordered_json& value);

// A JSON array written one element at a time, byte for byte as dump_json()
// writes the whole array, so that a listing of many entries never holds a
// document of all of them (for 100 000 entries that document alone took
// about 100 MiB).
class JsonArrayWriter {
 public:
  explicit JsonArrayWriter(std::ostream& out) : out_(out) {}
  void add(const nlohmann::ordered_json& element);
  // Closes the array; an empty one is "[]".
  void finish();

 private:
  std::ostream& out_;
  bool any_ = false;
};

// A one-line progress bar on stderr for slow checks: drawn only when stderr
// is a terminal and the work has taken longer than a moment, redrawn at most
// ten times a second, and erased when finished or destroyed.
class Progress {
 public:
  explicit Progress(std::string label);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;
  void update(std::size_t done, std::size_t total);
  void finish();

 private:
  std::string label_;
  bool enabled_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_;
};

// One "tfimm-cache: note: ..." line on stderr per environment variable the
// library ignored because its value is relative.
void note_ignored(const std::vector<IgnoredVariable>& ignored);

// "yes" / "no".
inline const char* yes_no(bool value) { return value ? "yes" : "no"; }

}  // namespace tfimm::tool
