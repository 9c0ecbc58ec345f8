#include "output.hpp"

#include "quote.hpp"  // the library's escaping, so messages and tables agree

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <iostream>
#include <ostream>
#include <streambuf>

namespace tfimm::tool {

namespace {

bool env_set(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0';
}

bool terminal_is_dumb() {
  const char* term = std::getenv("TERM");
  return term != nullptr && std::string_view(term) == "dumb";
}

// Display width of printable text: code points, not bytes.
std::size_t width(std::string_view text) {
  std::size_t n = 0;
  for (char c : text) {
    if ((static_cast<unsigned char>(c) & 0xC0u) != 0x80u) ++n;
  }
  return n;
}

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// A buffer over descriptor 1 that remembers the first failed write.
class CheckedStdoutBuf : public std::streambuf {
 public:
  CheckedStdoutBuf() { setp(buffer_, buffer_ + sizeof buffer_); }
  int error() const { return error_; }

 protected:
  int_type overflow(int_type c) override {
    if (!drain()) return traits_type::eof();
    if (traits_type::eq_int_type(c, traits_type::eof())) return traits_type::not_eof(c);
    *pptr() = traits_type::to_char_type(c);
    pbump(1);
    return c;
  }
  int sync() override { return drain() ? 0 : -1; }

 private:
  // Writes out the buffer; false (and the buffer dropped) once a write failed.
  bool drain() {
    const char* next = pbase();
    while (error_ == 0 && next < pptr()) {
      const ssize_t n = ::write(STDOUT_FILENO, next, static_cast<std::size_t>(pptr() - next));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) error_ = errno;
      if (n > 0) next += n;
    }
    setp(buffer_, buffer_ + sizeof buffer_);
    return error_ == 0;
  }

  char buffer_[65536];
  int error_ = 0;
};

// Never destroyed: std::cout is flushed after static destructors have run.
CheckedStdoutBuf* checked_stdout = nullptr;

}  // namespace

void check_stdout_writes() {
  if (checked_stdout != nullptr) return;
  checked_stdout = new CheckedStdoutBuf;  // NOLINT: lives as long as std::cout
  std::cout.rdbuf(checked_stdout);
  std::cout.exceptions(std::ios::badbit);
}

int stdout_error() { return checked_stdout == nullptr ? 0 : checked_stdout->error(); }

int stdout_unusable() {
  const int flags = ::fcntl(STDOUT_FILENO, F_GETFL);
  if (flags < 0) return errno;
  if ((flags & O_ACCMODE) == O_RDONLY) return EBADF;
  return 0;
}

bool stdout_is_terminal() { return ::isatty(STDOUT_FILENO) == 1; }

bool stdout_wants_colour() {
  return stdout_is_terminal() && !env_set("NO_COLOR") && !terminal_is_dumb();
}

std::string Style::paint(std::string_view text, Colour colour) const {
  if (!enabled_ || colour == Colour::None) return std::string(text);
  const char* code = "";
  switch (colour) {
    case Colour::None:
      break;
    case Colour::Bold:
      code = "1";
      break;
    case Colour::Red:
      code = "31";
      break;
    case Colour::Green:
      code = "32";
      break;
    case Colour::Yellow:
      code = "33";
      break;
    case Colour::Dim:
      code = "2";
      break;
  }
  return std::string("\x1b[") + code + "m" + std::string(text) + "\x1b[0m";
}

Style::Colour status_colour(PathStatus status) {
  if (status == PathStatus::Ok) return Style::Colour::Green;
  if (is_stale(status)) return Style::Colour::Red;
  return Style::Colour::Yellow;
}

std::string printable(std::string_view text) { return detail::escape(text); }

void Table::print(std::ostream& out, const Style& style) const {
  std::vector<std::size_t> widths;
  print_block(out, style, widths, true);
}

void Table::print_block(std::ostream& out, const Style& style, std::vector<std::size_t>& widths,
                        bool header) const {
  widths.resize(header_.size(), 0);
  for (std::size_t i = 0; i < header_.size(); ++i)
    widths[i] = std::max(widths[i], width(header_[i]));
  for (const auto& row : rows_) {
    for (std::size_t i = 0; i < row.size() && i < widths.size(); ++i) {
      widths[i] = std::max(widths[i], width(printable(row[i].text)));
    }
  }
  auto emit = [&](std::size_t i, const std::string& text, Style::Colour colour) {
    out << style.paint(text, colour);
    if (i + 1 < widths.size()) out << std::string(widths[i] - width(text) + 2, ' ');
  };
  if (header) {
    for (std::size_t i = 0; i < header_.size(); ++i) emit(i, header_[i], Style::Colour::Bold);
    out << '\n';
  }
  for (const auto& row : rows_) {
    // Trailing empty cells would only leave trailing spaces.
    std::size_t last = row.size();
    while (last > 0 && row[last - 1].text.empty()) --last;
    for (std::size_t i = 0; i < last && i < widths.size(); ++i) {
      std::string text = printable(row[i].text);
      out << style.paint(text, row[i].colour);
      if (i + 1 < last) out << std::string(widths[i] - width(text) + 2, ' ');
    }
    out << '\n';
  }
}

std::string iso_time(Timestamp at, bool millis) {
  std::int64_t seconds = at / 1000;
  std::int64_t ms = at % 1000;
  if (ms < 0) {
    ms += 1000;
    seconds -= 1;
  }
  auto t = static_cast<std::time_t>(seconds);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::string out(buf);
  if (millis) {
    std::snprintf(buf, sizeof buf, ".%03d", static_cast<int>(ms));
    out += buf;
  }
  return out + "Z";
}

std::string age(Timestamp at) {
  std::int64_t s = (now_ms() - at) / 1000;
  if (s < 0) s = 0;
  if (s >= 2 * 86400) return std::to_string(s / 86400) + "d";
  if (s >= 2 * 3600) return std::to_string(s / 3600) + "h";
  if (s >= 2 * 60) return std::to_string(s / 60) + "m";
  return std::to_string(s) + "s";
}

std::string dump_json(const nlohmann::ordered_json& value) {
  return value.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

void JsonArrayWriter::add(const nlohmann::ordered_json& element) {
  // One level deeper than dump() puts it: two more spaces after each line
  // break. Strings hold no raw line breaks (JSON escapes them).
  const std::string text =
      element.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
  out_ << (any_ ? ",\n  " : "[\n  ");
  for (char c : text) {
    out_ << c;
    if (c == '\n') out_ << "  ";
  }
  any_ = true;
}

void JsonArrayWriter::finish() { out_ << (any_ ? "\n]\n" : "[]\n"); }

void note_ignored(const std::vector<IgnoredVariable>& ignored) {
  for (const auto& var : ignored) {
    std::cerr << "tfimm-cache: note: ignored $" << var.name << "=" << printable(var.value)
              << ": not an absolute path, so it would mean a different directory in every "
                 "working directory; set it to an absolute path or unset it\n";
  }
}

Progress::Progress(std::string label)
    : label_(std::move(label)),
      enabled_(::isatty(STDERR_FILENO) == 1 && !terminal_is_dumb()),
      start_(std::chrono::steady_clock::now()),
      last_(start_) {}

Progress::~Progress() { finish(); }

void Progress::update(std::size_t done, std::size_t total) {
  if (!enabled_ || total == 0) return;
  using namespace std::chrono_literals;
  auto now = std::chrono::steady_clock::now();
  if (now - start_ < 300ms) return;  // a quick run never shows a bar
  if (drawn_ && now - last_ < 100ms && done < total) return;
  last_ = now;
  constexpr std::size_t kBar = 30;
  std::size_t filled = total == 0 ? kBar : std::min(kBar, done * kBar / total);
  std::string line = "\r\x1b[K" + label_ + " [" + std::string(filled, '#') +
                     std::string(kBar - filled, '.') + "] " + std::to_string(done) + "/" +
                     std::to_string(total);
  std::cerr << line << std::flush;
  drawn_ = true;
}

void Progress::finish() {
  if (drawn_) {
    drawn_ = false;
    try {
      std::cerr << "\r\x1b[K" << std::flush;
    } catch (const std::ios_base::failure&) {
      // std::cerr flushes std::cout first, which may have failed; the
      // failure is reported where it was thrown first. Never from here: this
      // runs in the destructor too.
    }
  }
}

}  // namespace tfimm::tool
