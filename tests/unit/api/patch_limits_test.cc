// Hostile Patch specs end in a validation error (which the reconciler turns
// into Validated=False, reason InvalidSpec), never a crash, a hang, a stack
// overflow or unbounded memory. Each test fails if its limit is removed.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "api/v1alpha1/patch.h"

namespace patchgate::api::v1alpha1 {
namespace {

using ::testing::HasSubstr;

Json withPatchText(const std::string& text, const std::string& type = "strategic") {
  return {{"spec",
           {{"target", {{"kind", "Deployment"}, {"name", "checkout"}}},
            {"change", {{"type", type}, {"patch", text}}},
            {"ticket", "INC-1"},
            {"rootCause", "pool exhausted"},
            {"tests", {{{"name", "smoke"}, {"image", "t:1"}}}}}}};
}

std::string errorOf(const Json& p) {
  auto s = parseSpec(p);
  return s.ok() ? "" : std::string(s.status().message());
}

// A map of one long string value, `bytes` long in all.
std::string yamlOfSize(size_t bytes) {
  std::string head = "a: '";
  return head + std::string(bytes - head.size() - 1, 'x') + "'";
}

TEST(PatchLimits, ChangeTextOfTenMiBIsRefused) {
  EXPECT_EQ(errorOf(withPatchText(yamlOfSize(kMaxChangeTextBytes))), "");
  std::string err = errorOf(withPatchText(yamlOfSize(10 << 20)));
  EXPECT_THAT(err, HasSubstr("spec.change.patch: too long: 10485760 bytes"));
  EXPECT_LT(err.size(), 200u);
}

TEST(PatchLimits, ConfigPatchTextOverOneMiBIsRefused) {
  Json p = withPatchText("spec: {replicas: 2}");
  p["spec"]["change"]["config"] = {{{"kind", "ConfigMap"}, {"name", "c"}, {"patch", yamlOfSize((1 << 20) + 1)}}};
  EXPECT_THAT(errorOf(p), HasSubstr("spec.change.config[0].patch: too long"));
}

TEST(PatchLimits, TenThousandTestsAreRefused) {
  Json p = withPatchText("spec: {replicas: 2}");
  Json tests = Json::array();
  for (int i = 0; i < 10000; ++i) tests.push_back({{"name", absl::StrCat("t", i)}, {"image", "i"}});
  p["spec"]["tests"] = tests;
  EXPECT_THAT(errorOf(p), HasSubstr("spec.tests: Too many: 10000: must have at most 20 items"));
  tests.erase(tests.begin() + kMaxTests, tests.end());
  p["spec"]["tests"] = tests;
  EXPECT_EQ(errorOf(p), "");  // the CRD's maxItems is allowed
}

TEST(PatchLimits, ConfigChangesAndIncludesAsTheCrdsMaxItems) {
  Json p = withPatchText("spec: {replicas: 2}");
  Json config = Json::array(), include = Json::array();
  for (int i = 0; i < 21; ++i) {
    config.push_back({{"kind", "ConfigMap"}, {"name", absl::StrCat("c", i)}, {"patch", "data: {a: b}"}});
    include.push_back({{"kind", "Service"}, {"name", absl::StrCat("s", i)}});
  }
  p["spec"]["change"]["config"] = config;
  EXPECT_THAT(errorOf(p), HasSubstr("spec.change.config: Too many: 21"));
  p["spec"]["change"].erase("config");
  p["spec"]["environment"]["include"] = include;
  EXPECT_THAT(errorOf(p), HasSubstr("spec.environment.include: Too many: 21"));
}

TEST(PatchLimits, TextFieldsAsTheCrdsMaxLength) {
  Json p = withPatchText("spec: {replicas: 2}");
  p["spec"]["ticket"] = std::string(129, 't');
  EXPECT_THAT(errorOf(p), HasSubstr("spec.ticket: Too long"));
  p["spec"]["ticket"] = "T-1";
  p["spec"]["rootCause"] = std::string(4097, 'r');
  EXPECT_THAT(errorOf(p), HasSubstr("spec.rootCause: Too long"));
  p["spec"]["rootCause"] = "why";
  p["spec"]["description"] = std::string(16385, 'd');
  EXPECT_THAT(errorOf(p), HasSubstr("spec.description: Too long"));
}

TEST(PatchLimits, NestingIsBounded) {
  auto nested = [](int depth) { return std::string(depth, '[') + "1" + std::string(depth, ']'); };
  EXPECT_TRUE(yamlToJson(nested(kMaxNestingDepth)).ok());
  // Deeper than ours but within yaml-cpp's own 2000: refused by our bound.
  EXPECT_THAT(std::string(yamlToJson(nested(kMaxNestingDepth + 50)).status().message()),
              HasSubstr("nested deeper than 100 levels"));
  // Thousands of levels: refused, no stack overflow.
  EXPECT_FALSE(yamlToJson(nested(5000)).ok());
  EXPECT_THAT(errorOf(withPatchText("a: " + nested(5000))), HasSubstr("spec.change.patch:"));
  EXPECT_THAT(errorOf(withPatchText(nested(200000), "json")), HasSubstr("spec.change.patch:"));
}

TEST(PatchLimits, AliasExpansionIsBounded) {
  // "Billion laughs": 10^6 values from a few hundred bytes.
  std::string laughs;
  laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
  const char* names = "abcdef";
  for (int i = 1; i < 6; ++i) {
    std::string prev = absl::StrCat("*", std::string(1, names[i - 1]));
    absl::StrAppend(&laughs, std::string(1, names[i]), ": &", std::string(1, names[i]), " [", prev);
    for (int k = 1; k < 10; ++k) absl::StrAppend(&laughs, ", ", prev);
    absl::StrAppend(&laughs, "]\n");
  }
  ASSERT_LT(laughs.size(), 1000u);
  EXPECT_THAT(std::string(yamlToJson(laughs).status().message()), HasSubstr("more than 100000 values"));
  // An alias inside the node it names (a cycle) ends too.
  EXPECT_THAT(std::string(yamlToJson("a: &a [1, *a]").status().message()), HasSubstr("nested deeper"));
}

TEST(PatchLimits, InvalidUtf8AndNulBytesAreRefused) {
  EXPECT_THAT(errorOf(withPatchText("a: \"caf\xc3\"")), HasSubstr("not valid UTF-8 at offset 7"));
  EXPECT_THAT(errorOf(withPatchText("a: \xed\xa0\x80")), HasSubstr("not valid UTF-8"));  // a surrogate
  EXPECT_THAT(errorOf(withPatchText(std::string("a: b\0c", 6))), HasSubstr("NUL byte at offset 4"));
  EXPECT_EQ(errorOf(withPatchText("a: caf\xc3\xa9")), "");
}

TEST(PatchLimits, YamlEscapesThatYamlCppTurnsIntoInvalidUtf8AreRefused) {
  // Found by tests/fuzz yaml_to_json_fuzzer (corpus/yaml_to_json/regression-escape-N):
  // yaml-cpp makes "\N" the single byte 0x85, which made dump() throw.
  for (const char* text : {"\"\\NUL\",", "a: \"x\\_y\"", "\"k\\N\": 1"}) {
    auto j = yamlToJson(text);
    EXPECT_THAT(std::string(j.status().message()), HasSubstr("not valid UTF-8")) << text;
  }
  auto ok = yamlToJson("a: \"\\x41\\u00e9\\t\"");
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ((*ok)["a"], "A\u00e9\t");
  EXPECT_NO_THROW((void)ok->dump());
}

TEST(PatchLimits, NumbersOutOfRangeAreRefusedNotThrown) {
  EXPECT_THAT(std::string(yamlToJson("a: 1e999").status().message()), HasSubstr("number out of range"));
  EXPECT_THAT(std::string(yamlToJson("a: -1e999").status().message()), HasSubstr("number out of range"));
  auto big = yamlToJson("a: 99999999999999999999");  // beyond int64: text, as before
  ASSERT_TRUE(big.ok());
  EXPECT_EQ((*big)["a"], "99999999999999999999");
}

TEST(PatchLimits, LongScalarsDoNotOverflowTheStack) {
  // std::regex recursed once per character here: a long number crashed.
  auto j = yamlToJson("a: " + std::string(900000, '1'));
  ASSERT_TRUE(j.ok()) << j.status();
  EXPECT_TRUE((*j)["a"].is_string());
  auto f = yamlToJson("a: 1." + std::string(900000, '5'));
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_TRUE((*f)["a"].is_number_float());
}

TEST(PatchLimits, UserValuesInMessagesAreCut) {
  Json p = withPatchText("spec: {replicas: 2}", std::string(1 << 20, 'z'));
  std::string err = errorOf(p);
  EXPECT_THAT(err, HasSubstr("spec.change.type: Unsupported value: \"zzz"));
  EXPECT_LT(err.size(), 200u);
}

}  // namespace
}  // namespace patchgate::api::v1alpha1
