// The order in which set-based writes touch the rows of many names.
#pragma once

#include <algorithm>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace tfimm::detail {

// (name, index) of every item, sorted by name, equal names in item order:
// the order in which set-based writes touch each b-tree keyed by name at one
// place instead of everywhere at once. A stable sort: std::sort fell back to
// heap sort on names like bulk_0 .. bulk_99999.
using NameOrder = std::vector<std::pair<std::string_view, std::size_t>>;
template <class Items, class NameOf>
NameOrder name_order(const Items& items, NameOf name_of) {
  static_assert(std::is_reference_v<decltype(name_of(items[0]))>,
                "name_of must return a reference into the item: the order holds views");
  NameOrder order;
  order.reserve(items.size());
  for (std::size_t i = 0; i < items.size(); ++i) order.emplace_back(name_of(items[i]), i);
  std::stable_sort(order.begin(), order.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  return order;
}

}  // namespace tfimm::detail
