// Tests for lib/names.cpp: which model names are accepted and why others are
// refused. What a refused name does to a registry is in test_registry.cpp.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "testutil.hpp"
#include "tfimm/errors.hpp"
#include "tfimm/names.hpp"

using tfimm::check_name;
using tfimm::name_problem;

TEST_CASE("real timm model names are accepted", "[names]") {
  tfimm::test::TestContext ctx;
  const std::vector<std::string> names = {
      "resnet18",
      "vit_base_patch16_224.augreg_in21k",
      "convnext-tiny",
      "swin_large_patch4_window12_384_in22k",
      "modèle",
      "模型",
      "a",
      "a.b",
      "...",  // not "." or "..": a plain file name
      "..a",
      "with inner space",
      "UPPER_case-123",
  };
  for (const auto& name : names) {
    INFO("name: " << name);
    CHECK_FALSE(name_problem(name).has_value());
    CHECK_NOTHROW(check_name(name));
  }
}

TEST_CASE("a name of exactly 255 bytes is accepted and 256 bytes is refused", "[names]") {
  tfimm::test::TestContext ctx;
  SECTION("ASCII") {
    CHECK_NOTHROW(check_name(std::string(tfimm::kMaxNameBytes, 'a')));
    CHECK_THROWS_AS(check_name(std::string(tfimm::kMaxNameBytes + 1, 'a')), tfimm::InvalidName);
  }
  SECTION("multi-byte UTF-8 counts bytes, not characters") {
    std::string e_acute = "\xc3\xa9";  // é, two bytes
    std::string name;
    for (int i = 0; i < 127; ++i) name += e_acute;                    // 254 bytes, 127 characters
    CHECK_NOTHROW(check_name(name + "a"));                            // 255 bytes
    CHECK_THROWS_AS(check_name(name + e_acute), tfimm::InvalidName);  // 256 bytes
  }
  CHECK(tfimm::kMaxNameBytes == 255);
}

TEST_CASE("names that could escape the cache directory or are not names are refused", "[names]") {
  tfimm::test::TestContext ctx;
  struct Case {
    std::string label;
    std::string name;
  };
  const std::vector<Case> cases = {
      {"empty", ""},
      {"dot", "."},
      {"dot-dot", ".."},
      {"slash", "a/b"},
      {"leading slash", "/etc"},
      {"trailing slash", "resnet18/"},
      {"traversal", "../../etc/passwd"},
      {"backslash", "a\\b"},
      {"backslash traversal", "..\\x"},
      {"embedded NUL", std::string("a\0b", 3)},
      {"only NUL", std::string(1, '\0')},
      {"control character 0x01",
       "a\x01"
       "b"},
      {"newline", "a\nb"},
      {"tab", "a\tb"},
      {"escape", "a\x1b[31mb"},
      {"DEL 0x7f",
       "a\x7f"
       "b"},
      {"C1 control character U+0085",
       "a\xc2\x85"
       "b"},
      {"invalid UTF-8 byte 0xff",
       "a\xff"
       "b"},
      {"truncated UTF-8 sequence", "caf\xc3"},
      {"lone continuation byte",
       "a\x80"
       "b"},
      {"overlong encoding of '/'",
       "a\xc0\xaf"
       "b"},
      {"UTF-16 surrogate",
       "a\xed\xa0\x80"
       "b"},
      {"leading space", " lead"},
      {"trailing space", "trail "},
      {"only spaces", "   "},
  };
  for (const auto& c : cases) {
    INFO("case: " << c.label);
    auto problem = name_problem(c.name);
    REQUIRE(problem.has_value());
    CHECK_FALSE(problem->empty());
    CHECK_THROWS_AS(check_name(c.name), tfimm::InvalidName);
  }
}

TEST_CASE("a refused name's message names the value and the rule", "[names]") {
  tfimm::test::TestContext ctx;
  SECTION("a slash") {
    CHECK_THROWS_WITH(check_name("a/b"), Catch::Contains("a/b") && Catch::Contains("/"));
  }
  SECTION("a leading space") {
    CHECK_THROWS_WITH(check_name(" lead"), Catch::Contains("lead") &&
                                               Catch::Contains("space", Catch::CaseSensitive::No));
  }
  SECTION("too long") {
    CHECK_THROWS_WITH(check_name(std::string(300, 'x')), Catch::Contains("255"));
  }
  SECTION("dot-dot") { CHECK_THROWS_WITH(check_name(".."), Catch::Contains("..")); }
  SECTION("empty") {
    CHECK_THROWS_WITH(check_name(""), Catch::Contains("empty", Catch::CaseSensitive::No));
  }
}

TEST_CASE("InvalidName is a tfimm::Error so one catch handles every library error", "[names]") {
  tfimm::test::TestContext ctx;
  CHECK_THROWS_AS(check_name("a/b"), tfimm::Error);
}
