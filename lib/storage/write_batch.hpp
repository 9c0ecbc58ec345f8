// Sets of a transaction body, held as a value until they are written
// together (leveldb's WriteBatch): what a transaction of many sets costs is
// then close to an import.
#pragma once

#include <cstddef>
#include <deque>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>

namespace tfimm::detail {

class WriteBatch {
 public:
  // Sets held before the batch asks to be written: about 10 MB.
  static constexpr std::size_t kMaxSets = 65536;

  // Registers `name` at `path` when the batch is written.
  void set(std::string name, std::string path) {
    sets_.emplace_back(std::move(name), std::move(path));
    names_.insert(sets_.back().first);
  }

  // Whether set(name, ...) must wait until the batch is written: the name is
  // already in it (its history row records the path it replaces, so the
  // earlier set must be stored first), or the batch is full.
  bool must_write_before(const std::string& name) const {
    return names_.count(name) != 0 || sets_.size() >= kMaxSets;
  }

  bool empty() const noexcept { return sets_.empty(); }
  // (name, path) of each set, in the order given (a deque: the strings stay
  // where they are, so the set of names can point into them).
  const std::deque<std::pair<std::string, std::string>>& sets() const noexcept { return sets_; }

  void clear() noexcept {
    names_.clear();
    sets_.clear();
  }

 private:
  std::deque<std::pair<std::string, std::string>> sets_;
  std::unordered_set<std::string_view> names_;
};

}  // namespace tfimm::detail
