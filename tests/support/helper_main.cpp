// tfimm_test_helper: a real second process for the library tests.
//
//   tfimm_test_helper REGISTRY|default COMMAND [ARGS...]
//
// REGISTRY is a registry file opened with tfimm::Registry; "default" uses the
// free functions of cache.hpp on the default registry instead. Commands:
//
//   open               reads the registry (entries()): opens and checks it
//   set NAME PATH      set_model_cache
//   set-many PREFIX N  set_model_cache(PREFIX<i>, /models/PREFIX<i>), i < N,
//                      one call each
//   get NAME           prints cached_model_path; exit 1 when there is none
//   clear NAME         clear_model_cache
//   list               the registered names, one a line
//   set-dir PATH       set_dir
//   unset-dir          unset_dir
//   get-dir            prints get_dir()
//   dir-source         prints describe() of the layer get_dir() came from
//   location           prints the registry file
//
// When $TFIMM_TEST_START_AT (milliseconds since the Unix epoch) is set, the
// helper first sleeps until then, so that several helpers act at once.
//
// Exit codes: 0 ok, 1 absent, 2 tfimm::Error (message on stderr), 3 usage or
// any other failure.
#include <chrono>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "tfimm/cache.hpp"
#include "tfimm/errors.hpp"
#include "tfimm/registry.hpp"

namespace {

// The operations a command needs, on an explicit registry or the default one.
class Target {
 public:
  virtual ~Target() = default;
  virtual void open() = 0;
  virtual void set(const std::string& name, const std::string& path) = 0;
  virtual std::optional<std::string> get(const std::string& name) = 0;
  virtual void clear(const std::string& name) = 0;
  virtual std::vector<std::string> list() = 0;
  virtual void set_dir(const std::string& path) = 0;
  virtual void unset_dir() = 0;
  virtual tfimm::CacheDir dir() = 0;
  virtual std::string location() = 0;
};

class ExplicitTarget : public Target {
 public:
  explicit ExplicitTarget(const std::string& path) : registry_(path) {}
  void open() override { registry_.entries(); }
  void set(const std::string& name, const std::string& path) override {
    registry_.set_model_cache(name, path);
  }
  std::optional<std::string> get(const std::string& name) override {
    return registry_.cached_model_path(name);
  }
  void clear(const std::string& name) override { registry_.clear_model_cache(name); }
  std::vector<std::string> list() override { return registry_.list_cached_models(); }
  void set_dir(const std::string& path) override { registry_.set_dir(path); }
  void unset_dir() override { registry_.unset_dir(); }
  tfimm::CacheDir dir() override { return registry_.cache_dir(); }
  std::string location() override { return registry_.path(); }

 private:
  tfimm::Registry registry_;
};

class DefaultTarget : public Target {
 public:
  void open() override { tfimm::default_registry().entries(); }
  void set(const std::string& name, const std::string& path) override {
    tfimm::set_model_cache(name, path);
  }
  std::optional<std::string> get(const std::string& name) override {
    return tfimm::cached_model_path(name);
  }
  void clear(const std::string& name) override { tfimm::clear_model_cache(name); }
  std::vector<std::string> list() override { return tfimm::list_cached_models(); }
  void set_dir(const std::string& path) override { tfimm::set_dir(path); }
  void unset_dir() override { tfimm::unset_dir(); }
  tfimm::CacheDir dir() override { return tfimm::get_dir_origin(); }
  std::string location() override { return tfimm::default_registry().path(); }
};

void wait_for_start() {
  const char* start = std::getenv("TFIMM_TEST_START_AT");
  if (start == nullptr || *start == '\0') return;
  std::chrono::system_clock::time_point at{std::chrono::milliseconds(std::stoll(start))};
  std::this_thread::sleep_until(at);
}

int usage() {
  std::cerr << "usage: tfimm_test_helper REGISTRY|default COMMAND [ARGS...]\n";
  return 3;
}

int run(const std::vector<std::string>& args) {
  if (args.size() < 2) return usage();
  const std::string& command = args[1];
  auto need = [&](std::size_t count) { return args.size() == count + 2; };

  wait_for_start();
  std::unique_ptr<Target> target;
  if (args[0] == "default") {
    target = std::make_unique<DefaultTarget>();
  } else {
    target = std::make_unique<ExplicitTarget>(args[0]);
  }

  if (command == "open" && need(0)) {
    target->open();
  } else if (command == "set" && need(2)) {
    target->set(args[2], args[3]);
  } else if (command == "set-many" && need(2)) {
    int count = std::stoi(args[3]);
    for (int i = 0; i < count; ++i) {
      std::string name = args[2] + std::to_string(i);
      target->set(name, "/models/" + name);
    }
  } else if (command == "get" && need(1)) {
    auto path = target->get(args[2]);
    if (!path) return 1;
    std::cout << *path << '\n';
  } else if (command == "clear" && need(1)) {
    target->clear(args[2]);
  } else if (command == "list" && need(0)) {
    for (const auto& name : target->list()) std::cout << name << '\n';
  } else if (command == "set-dir" && need(1)) {
    target->set_dir(args[2]);
  } else if (command == "unset-dir" && need(0)) {
    target->unset_dir();
  } else if (command == "get-dir" && need(0)) {
    std::cout << target->dir().path << '\n';
  } else if (command == "dir-source" && need(0)) {
    std::cout << tfimm::describe(target->dir().source) << '\n';
  } else if (command == "location" && need(0)) {
    std::cout << target->location() << '\n';
  } else {
    return usage();
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(std::vector<std::string>(argv + 1, argv + argc));
  } catch (const tfimm::Error& e) {
    std::cerr << "tfimm::Error: " << e.what() << '\n';
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "unexpected exception: " << e.what() << '\n';
    return 3;
  }
}
