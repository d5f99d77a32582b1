#pragma once

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "common/logging.h"
#include "fakes/fake_clock.h"

namespace patchgate::testing {

// A logger that formats every line (so logging code runs) and drops it.
inline Logger quietLogger() {
  static std::ostream* const kNull = new std::ostream(nullptr);
  return Logger(std::make_shared<LogSink>(*kNull, LogLevel::kDebug));
}

// For state reached on another thread: polls `pred` every millisecond of
// real time, for at most `timeout`. Returns whether it came true.
inline bool eventually(const std::function<bool()>& pred,
                       std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

// Advances `clock` by `step` until `pred` holds: for a thread that computes
// its deadline from the clock at a moment the test cannot observe.
inline bool advanceUntil(FakeClock& clock, Clock::Duration step, const std::function<bool()>& pred,
                         std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  return eventually(
      [&] {
        if (pred()) return true;
        clock.advance(step);
        return false;
      },
      timeout);
}

// Holds still for a few ms of real time, to show that something does NOT
// happen (a blocked get(), a delayed item); kept short.
inline void briefly() { std::this_thread::sleep_for(std::chrono::milliseconds(20)); }

// A fresh directory, removed with its content.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "pg-unit-XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  std::string write(const std::string& name, const std::string& content) const {
    auto p = path_ / name;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary | std::ios::trunc) << content;
    return p.string();
  }

 private:
  std::filesystem::path path_;
};

}  // namespace patchgate::testing

namespace patchgate::testing {
inline const absl::Status& toStatus(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& toStatus(const absl::StatusOr<T>& s) {
  return s.status();
}
}  // namespace patchgate::testing

// gtest 1.12 has no status matchers.
#define ASSERT_OK(expr)                                                        \
  do {                                                                         \
    const auto& pg_result_ = (expr);                                           \
    ASSERT_TRUE(::patchgate::testing::toStatus(pg_result_).ok())               \
        << #expr << ": " << ::patchgate::testing::toStatus(pg_result_);        \
  } while (0)
#define EXPECT_OK(expr)                                                        \
  do {                                                                         \
    const auto& pg_result_ = (expr);                                           \
    EXPECT_TRUE(::patchgate::testing::toStatus(pg_result_).ok())               \
        << #expr << ": " << ::patchgate::testing::toStatus(pg_result_);        \
  } while (0)
