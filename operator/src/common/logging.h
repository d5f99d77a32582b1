#pragma once

#include <memory>
#include <mutex>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/json.h"

namespace patchgate {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

absl::StatusOr<LogLevel> parseLogLevel(std::string_view name);

// Where log lines go. One sink is shared by all loggers of a process; it is
// safe to use from many threads.
class LogSink {
 public:
  LogSink(std::ostream& out, LogLevel level) : out_(out), level_(level) {}
  bool enabled(LogLevel level) const { return level >= level_; }
  void write(const std::string& line);

 private:
  std::mutex mu_;
  std::ostream& out_;
  LogLevel level_;
};

// Structured JSON logger in the style of logr: a constant message plus
// key/values. withValues() returns a child logger carrying extra fields
// (controller, namespace, name, reconcileID). Cheap to copy.
class Logger {
 public:
  using Fields = std::vector<std::pair<std::string, Json>>;

  Logger();  // logs to stderr at info
  explicit Logger(std::shared_ptr<LogSink> sink) : sink_(std::move(sink)) {}

  Logger withValues(Fields fields) const;
  Logger withName(std::string_view name) const;

  void debug(std::string_view msg, const Fields& kv = {}) const { log(LogLevel::kDebug, msg, kv); }
  void info(std::string_view msg, const Fields& kv = {}) const { log(LogLevel::kInfo, msg, kv); }
  void warn(std::string_view msg, const Fields& kv = {}) const { log(LogLevel::kWarn, msg, kv); }
  void error(std::string_view msg, const Fields& kv = {}) const { log(LogLevel::kError, msg, kv); }
  void log(LogLevel level, std::string_view msg, const Fields& kv) const;

 private:
  std::shared_ptr<LogSink> sink_;
  std::string name_;
  Fields fields_;
};

}  // namespace patchgate
