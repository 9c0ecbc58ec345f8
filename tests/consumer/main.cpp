// tfimm's seed example, through an installed tfimm-cache.
#include <tfimm/cache.hpp>

#include <iostream>

int main() {
  tfimm::set_model_cache("resnet18", "~/resnet18_saved");
  const auto path = tfimm::cached_model_path("resnet18");
  if (!path) {
    std::cerr << "resnet18 is not cached\n";
    return 1;
  }
  std::cout << *path << "\n";
  return 0;
}
