// Tests for lib/paths.cpp: the home directory, the normal form the registry
// stores, lexical normalisation and joining.
#include <pwd.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <climits>
#include <string>

#include "testutil.hpp"
#include "tfimm/errors.hpp"
#include "tfimm/paths.hpp"

using tfimm::lexically_normal;
using tfimm::normalize_path;

namespace {

// Changes the working directory for its lifetime.
class ScopedCwd {
 public:
  explicit ScopedCwd(const std::string& dir) {
    char buf[PATH_MAX];
    REQUIRE(::getcwd(buf, sizeof buf) != nullptr);
    old_ = buf;
    REQUIRE(::chdir(dir.c_str()) == 0);
  }
  ~ScopedCwd() { (void)!::chdir(old_.c_str()); }
  ScopedCwd(const ScopedCwd&) = delete;
  ScopedCwd& operator=(const ScopedCwd&) = delete;

 private:
  std::string old_;
};

std::string current_dir() {
  char buf[PATH_MAX];
  REQUIRE(::getcwd(buf, sizeof buf) != nullptr);
  return buf;
}

std::string passwd_home() {
  struct passwd* pw = ::getpwuid(::geteuid());
  REQUIRE(pw != nullptr);
  return pw->pw_dir;
}

}  // namespace

TEST_CASE("home_dir is $HOME, or the password database when HOME is unset, empty or relative",
          "[paths]") {
  tfimm::test::TestContext ctx;
  SECTION("HOME set") { CHECK(tfimm::home_dir() == ctx.home()); }
  SECTION("HOME empty") {
    ctx.env().set("HOME", "");
    CHECK(tfimm::home_dir() == passwd_home());
  }
  SECTION("HOME unset") {
    ctx.env().set("HOME", std::nullopt);
    CHECK(tfimm::home_dir() == passwd_home());
  }
  SECTION("HOME relative: ignored, since it would differ in every working directory") {
    ctx.env().set("HOME", "relhome");
    CHECK(tfimm::home_dir() == passwd_home());
    CHECK(normalize_path("~/x") == passwd_home() + "/x");
  }
}

TEST_CASE("a tilde becomes the home directory", "[paths]") {
  tfimm::test::TestContext ctx;
  const std::string home = ctx.home();
  CHECK(normalize_path("~") == home);
  CHECK(normalize_path("~/") == home);
  CHECK(normalize_path("~/resnet18_saved") == home + "/resnet18_saved");
  CHECK(normalize_path("~/a/../b/./c/") == home + "/b/c");
  SECTION("HOME itself is normalised") {
    ctx.env().set("HOME", home + "//./");
    CHECK(normalize_path("~/x") == home + "/x");
  }
  SECTION("a tilde not at the start is an ordinary character") {
    CHECK(normalize_path("/data/~/x") == "/data/~/x");
    CHECK(normalize_path("/data/~x") == "/data/~x");
  }
  SECTION("~user is that user's home") {
    struct passwd* root = ::getpwnam("root");
    REQUIRE(root != nullptr);
    CHECK(normalize_path("~root/models") == lexically_normal(root->pw_dir) + "/models");
  }
  SECTION("an unknown ~user is refused, naming it") {
    CHECK_THROWS_AS(normalize_path("~no_such_user_tfimm/x"), tfimm::InvalidPath);
    CHECK_THROWS_WITH(normalize_path("~no_such_user_tfimm/x"),
                      Catch::Contains("no_such_user_tfimm"));
  }
}

TEST_CASE("a relative path is made absolute against the working directory", "[paths]") {
  tfimm::test::TestContext ctx;
  tfimm::test::make_dirs(ctx.path("work/sub"));
  ScopedCwd cwd(ctx.path("work/sub"));
  const std::string here = current_dir();
  CHECK(normalize_path("models/resnet18") == here + "/models/resnet18");
  CHECK(normalize_path(".") == here);
  CHECK(normalize_path("./x/") == here + "/x");
  CHECK(normalize_path("..") == here.substr(0, here.rfind('/')));
  CHECK(normalize_path("../x") == here.substr(0, here.rfind('/')) + "/x");
  // The file need not exist, and nothing is created.
  CHECK_FALSE(tfimm::test::exists(here + "/models"));
}

TEST_CASE("absolute paths are normalised lexically and need not exist", "[paths]") {
  tfimm::test::TestContext ctx;
  CHECK(normalize_path("/") == "/");
  CHECK(normalize_path("//") == "/");
  CHECK(normalize_path("/a//b///c") == "/a/b/c");
  CHECK(normalize_path("/a/b/") == "/a/b");
  CHECK(normalize_path("/a/b//") == "/a/b");
  CHECK(normalize_path("/a/./b/.") == "/a/b");
  CHECK(normalize_path("/a/b/../c") == "/a/c");
  CHECK(normalize_path("/a/b/../../..") == "/");
  CHECK(normalize_path("/../x") == "/x");
  CHECK(normalize_path("/no/such/dir/at/all") == "/no/such/dir/at/all");
}

TEST_CASE("normalisation does not follow symlinks", "[paths]") {
  tfimm::test::TestContext ctx;
  tfimm::test::make_dirs(ctx.path("real/deep"));
  REQUIRE(::symlink(ctx.path("real/deep").c_str(), ctx.path("link").c_str()) == 0);
  // Physically link/.. is real/; lexically it is the temp dir itself.
  CHECK(normalize_path(ctx.path("link/../x")) == ctx.path("x"));
  CHECK(normalize_path(ctx.path("link")) == ctx.path("link"));
}

TEST_CASE("an empty path or one containing NUL is refused", "[paths]") {
  tfimm::test::TestContext ctx;
  SECTION("empty") {
    CHECK_THROWS_AS(normalize_path(""), tfimm::InvalidPath);
    CHECK_THROWS_WITH(normalize_path(""), Catch::Contains("empty", Catch::CaseSensitive::No));
  }
  SECTION("embedded NUL") {
    CHECK_THROWS_AS(normalize_path(std::string("/a\0b", 4)), tfimm::InvalidPath);
  }
  SECTION("trailing NUL") {
    CHECK_THROWS_AS(normalize_path(std::string("/a/b\0", 5)), tfimm::InvalidPath);
  }
  SECTION("InvalidPath is a tfimm::Error") { CHECK_THROWS_AS(normalize_path(""), tfimm::Error); }
}

TEST_CASE("odd but legal characters survive normalisation byte for byte", "[paths]") {
  tfimm::test::TestContext ctx;
  for (const std::string path :
       {"/it's/a \"quoted\" dir", "/data/mod\xc3\xa8le", "/new\nline", "/tab\there", "/a;b|c$d"}) {
    INFO("path: " << path);
    CHECK(normalize_path(path) == path);
  }
  std::string long_path;
  for (int i = 0; i < 40; ++i) long_path += "/" + std::string(99, static_cast<char>('a' + i % 26));
  CHECK(long_path.size() == 4000);
  CHECK(normalize_path(long_path) == long_path);
}

TEST_CASE("lexically_normal resolves dots and slashes without an absolute base", "[paths]") {
  tfimm::test::TestContext ctx;
  CHECK(lexically_normal("a/./b/../c") == "a/c");
  CHECK(lexically_normal("a//b/") == "a/b");
  CHECK(lexically_normal("../a") == "../a");
  CHECK(lexically_normal("../../a/b") == "../../a/b");
  CHECK(lexically_normal("a/../..") == "..");
  CHECK(lexically_normal("a/..") == ".");
  CHECK(lexically_normal("./a") == "a");
  CHECK(lexically_normal("/..") == "/");
  CHECK(lexically_normal("/../a/") == "/a");
  CHECK(lexically_normal("/") == "/");
  CHECK(lexically_normal("///a") == "/a");
  CHECK(lexically_normal("/a/b/c/../../d") == "/a/d");
  // Touches no file system: the working directory does not matter.
  tfimm::test::make_dirs(ctx.path("w"));
  ScopedCwd cwd(ctx.path("w"));
  CHECK(lexically_normal("x/y/..") == "x");
}

TEST_CASE("join_path puts exactly one slash between directory and name", "[paths]") {
  tfimm::test::TestContext ctx;
  CHECK(tfimm::join_path("/data/cache", "resnet18") == "/data/cache/resnet18");
  CHECK(tfimm::join_path("/data/cache", "vit.augreg") == "/data/cache/vit.augreg");
  CHECK(tfimm::join_path("/", "resnet18") == "/resnet18");
}
