#include "common/logging.h"

#include <chrono>
#include <iostream>

#include "absl/strings/str_cat.h"

namespace patchgate {

absl::StatusOr<LogLevel> parseLogLevel(std::string_view name) {
  if (name == "debug") return LogLevel::kDebug;
  if (name == "info") return LogLevel::kInfo;
  if (name == "warn" || name == "warning") return LogLevel::kWarn;
  if (name == "error") return LogLevel::kError;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown log level '", std::string(name), "' (want debug, info, warn or error)"));
}

void LogSink::write(const std::string& line) {
  std::lock_guard lock(mu_);
  out_ << line << '\n';
  out_.flush();
}

Logger::Logger() : sink_(std::make_shared<LogSink>(std::cerr, LogLevel::kInfo)) {}

Logger Logger::withValues(Fields fields) const {
  Logger child = *this;
  for (auto& f : fields) child.fields_.push_back(std::move(f));
  return child;
}

Logger Logger::withName(std::string_view name) const {
  Logger child = *this;
  child.name_ = child.name_.empty() ? std::string(name) : absl::StrCat(child.name_, ".", std::string(name));
  return child;
}

void Logger::log(LogLevel level, std::string_view msg, const Fields& kv) const {
  if (!sink_->enabled(level)) return;
  static constexpr const char* kNames[] = {"debug", "info", "warn", "error"};
  Json line = Json::object();
  line["ts"] = formatMicroTime(std::chrono::system_clock::now());
  line["level"] = kNames[static_cast<int>(level)];
  if (!name_.empty()) line["logger"] = name_;
  line["msg"] = msg;
  for (const auto& [k, v] : fields_) line[k] = v;
  for (const auto& [k, v] : kv) line[k] = v;
  sink_->write(line.dump(-1, ' ', false, Json::error_handler_t::replace));
}

}  // namespace patchgate
