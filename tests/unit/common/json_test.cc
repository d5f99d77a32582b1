#include "common/json.h"

#include <gtest/gtest.h>

namespace patchgate {
namespace {

using std::chrono::system_clock;
using namespace std::chrono_literals;

// 1700000000 s after the epoch is 2023-11-14T22:13:20Z.
const system_clock::time_point kT0{std::chrono::seconds(1'700'000'000)};

TEST(JsonTime, FormatTimeIsRfc3339UtcSeconds) {
  EXPECT_EQ(formatTime(kT0), "2023-11-14T22:13:20Z");
  EXPECT_EQ(formatTime(kT0 + 999ms), "2023-11-14T22:13:20Z");  // truncated
}

TEST(JsonTime, FormatMicroTimeKeepsMicroseconds) {
  EXPECT_EQ(formatMicroTime(kT0 + 250ms), "2023-11-14T22:13:20.250000Z");
  EXPECT_EQ(formatMicroTime(kT0 + 1us), "2023-11-14T22:13:20.000001Z");
  // Before the epoch the fraction still counts forward from the second below.
  EXPECT_EQ(formatMicroTime(system_clock::time_point(-500ms)), "1969-12-31T23:59:59.500000Z");
}

TEST(JsonTime, RoundTrips) {
  for (auto t : {kT0, kT0 + 123456us, kT0 + 59s + 999999us,
                 system_clock::time_point(-500ms)}) {
    auto micro = parseTime(formatMicroTime(t));
    ASSERT_TRUE(micro.ok()) << micro.status();
    EXPECT_EQ(*micro, t) << formatMicroTime(t);
  }
  for (auto t : {kT0, kT0 + 123456us, kT0 + 59s + 999999us}) {
    auto secs = parseTime(formatTime(t));
    ASSERT_TRUE(secs.ok());
    EXPECT_EQ(*secs, std::chrono::floor<std::chrono::seconds>(t)) << formatTime(t);
  }
}

TEST(JsonTime, ParsesWhatTheApiServerWrites) {
  EXPECT_EQ(*parseTime("2023-11-14T22:13:20Z"), kT0);
  EXPECT_EQ(*parseTime("2023-11-14T22:13:20.5Z"), kT0 + 500ms);
  EXPECT_EQ(*parseTime("2023-11-14T22:13:20.123456789Z"), kT0 + 123456us);  // ns truncated
  EXPECT_FALSE(parseTime("yesterday").ok());
  EXPECT_FALSE(parseTime("").ok());
}

TEST(Json, ParseAndPointerHelpers) {
  auto j = parseJson(R"({"metadata":{"name":"a","generation":3},"n":1.5})");
  ASSERT_TRUE(j.ok());
  EXPECT_EQ(jsonString(*j, "/metadata/name"), "a");
  EXPECT_EQ(jsonString(*j, "/metadata/generation"), "");  // not a string
  EXPECT_EQ(jsonString(*j, "/missing/deep"), "");
  EXPECT_EQ(jsonInt(*j, "/metadata/generation"), 3);
  EXPECT_EQ(jsonInt(*j, "/n", -1), -1);  // not an integer
  EXPECT_EQ(jsonInt(*j, "/missing", 7), 7);
  EXPECT_TRUE(jsonAt(*j, "/missing").is_null());
  EXPECT_TRUE(jsonAt(*j, "not a pointer").is_null());
  EXPECT_EQ(jsonAt(*j, "/metadata/name"), "a");

  auto bad = parseJson("{nope");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace patchgate
