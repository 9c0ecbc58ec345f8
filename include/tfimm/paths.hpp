// Path handling shared by the registry and its callers.
#pragma once

#include <string>
#include <string_view>

namespace tfimm {

// The home directory: $HOME when set to an absolute path, else the password
// database entry of the effective user (a relative $HOME is ignored, as an
// unset one is). Throws InvalidPath when neither gives one. Reads the environment; safe from any
// thread that does not modify it.
std::string home_dir();

// Makes `path` absolute and lexically normal, the form the registry stores:
// "~" and "~/..." become the home directory, "~user/..." that user's home;
// a relative path is taken against the current working directory at the
// time of the call; ".", ".." and repeated or trailing slashes are resolved
// without touching the file system (symlinks are not followed, and the path
// need not exist). Throws InvalidPath for an empty path, a path containing
// NUL, an unknown ~user, or an unreadable working directory.
std::string normalize_path(std::string_view path);

// Lexical normalisation only: resolves ".", ".." and repeated or trailing
// slashes. ".." at the root stays at the root; a relative path keeps its
// leading "..". Pure function.
std::string lexically_normal(std::string_view path);

// `dir` + "/" + `name`, for a normalised dir and a valid name.
std::string join_path(std::string_view dir, std::string_view name);

}  // namespace tfimm
