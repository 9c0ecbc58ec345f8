#include "tfimm/paths.hpp"

#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <vector>

#include "quote.hpp"
#include "tfimm/errors.hpp"

namespace tfimm {
namespace {

std::optional<std::string> passwd_home(const char* user) {
  std::vector<char> buf(16384);
  passwd pw{};
  passwd* found = nullptr;
  const int rc = user == nullptr ? ::getpwuid_r(::geteuid(), &pw, buf.data(), buf.size(), &found)
                                 : ::getpwnam_r(user, &pw, buf.data(), buf.size(), &found);
  if (rc != 0 || found == nullptr || pw.pw_dir == nullptr || *pw.pw_dir == '\0') {
    return std::nullopt;
  }
  return std::string(pw.pw_dir);
}

std::string current_dir() {
  std::vector<char> buf(4096);
  while (::getcwd(buf.data(), buf.size()) == nullptr) {
    if (errno != ERANGE) {
      throw InvalidPath(std::string("cannot make a relative path absolute: the working "
                                    "directory is unreadable (") +
                        std::strerror(errno) + ")");
    }
    buf.resize(buf.size() * 2);
  }
  return buf.data();
}

// Whether `path` is absolute and already in lexically normal form (no empty,
// "." or ".." component, no trailing slash): normalize_path() would return it
// unchanged. The common case, checked without building anything.
bool is_normal_absolute(std::string_view path) {
  if (path.empty() || path.front() != '/') return false;
  if (path.size() == 1) return true;
  if (path.back() == '/') return false;
  for (std::size_t start = 1; start <= path.size();) {
    std::size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    const std::string_view part = path.substr(start, end - start);
    if (part.empty() || part == "." || part == "..") return false;
    start = end + 1;
  }
  return true;
}

}  // namespace

std::string home_dir() {
  // A relative $HOME would put "~" somewhere else in every working
  // directory; it is ignored like an unset one.
  const char* home = std::getenv("HOME");
  if (home != nullptr && *home == '/') return home;
  if (auto from_passwd = passwd_home(nullptr)) return *from_passwd;
  throw InvalidPath(
      "cannot expand '~': $HOME is not set to an absolute path and the user has no home "
      "directory in the password database");
}

std::string lexically_normal(std::string_view path) {
  const bool absolute = !path.empty() && path.front() == '/';
  std::vector<std::string_view> parts;
  std::size_t leading_dotdots = 0;
  std::size_t start = 0;
  while (start <= path.size()) {
    std::size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    const std::string_view part = path.substr(start, end - start);
    if (part.empty() || part == ".") {
      // skip
    } else if (part == "..") {
      if (!parts.empty()) {
        parts.pop_back();
      } else if (!absolute) {
        ++leading_dotdots;
      }
    } else {
      parts.push_back(part);
    }
    start = end + 1;
  }
  std::string out = absolute ? "/" : "";
  for (std::size_t i = 0; i < leading_dotdots; ++i) {
    out += out.empty() || out.back() == '/' ? ".." : "/..";
  }
  for (const auto& part : parts) {
    if (!out.empty() && out.back() != '/') out += '/';
    out += part;
  }
  if (out.empty()) out = ".";
  return out;
}

std::string normalize_path(std::string_view path) {
  if (path.empty()) throw InvalidPath("invalid path \"\": a path must not be empty");
  if (path.find('\0') != std::string_view::npos) {
    throw InvalidPath("invalid path " + detail::quote(path) + ": a path must not contain NUL");
  }
  if (is_normal_absolute(path)) return std::string(path);
  std::string expanded;
  if (path.front() == '~') {
    const std::size_t slash = path.find('/');
    const std::string_view user =
        path.substr(1, slash == std::string_view::npos ? path.npos : slash - 1);
    std::string home;
    if (user.empty()) {
      home = home_dir();
    } else {
      auto found = passwd_home(std::string(user).c_str());
      if (!found) {
        throw InvalidPath("invalid path " + detail::quote(path) + ": no user named " +
                          detail::quote(user) + " to expand '~" + std::string(user) + "'");
      }
      home = *found;
    }
    expanded = home + (slash == std::string_view::npos ? "" : std::string(path.substr(slash)));
  } else {
    expanded = std::string(path);
  }
  if (expanded.front() != '/') expanded = current_dir() + "/" + expanded;
  return lexically_normal(expanded);
}

std::string join_path(std::string_view dir, std::string_view name) {
  std::string out(dir);
  if (out.empty() || out.back() != '/') out += '/';
  out += name;
  return out;
}

}  // namespace tfimm
