#include "common/json.h"

#include <cstdio>
#include <ctime>

#include "absl/strings/str_cat.h"

namespace patchgate {

namespace {

// Deep nesting is refused before parsing: nlohmann::json parses iteratively
// but copies, compares and dumps recursively, and 200,000 levels in one watch
// line overflowed the stack (found with the watch_stream fuzz target). The
// API server itself stops at 10000 levels, but 9000 still overflowed a
// thread's 8 MiB stack in the ASan build (sanitize.address.unit), where frames
// are larger; Kubernetes objects nest a few dozen levels, so 1000 leaves ample
// room and keeps every recursive walk far from the stack's end.
constexpr int kMaxJsonDepth = 1000;

bool nestedTooDeep(std::string_view text) {
  int depth = 0;
  bool inString = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (inString) {
      if (c == '\\') ++i;
      else if (c == '"') inString = false;
    } else if (c == '"') {
      inString = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth) return true;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return false;
}

}  // namespace

absl::StatusOr<Json> parseJson(std::string_view text) {
  if (nestedTooDeep(text))
    return absl::InvalidArgumentError(absl::StrCat("invalid JSON: nested deeper than ", kMaxJsonDepth, " levels"));
  try {
    return Json::parse(text.begin(), text.end());
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("invalid JSON: ", e.what()));
  }
}

const Json& jsonAt(const Json& obj, const char* pointer) {
  static const Json kNull;  // immutable, safe to share
  try {
    Json::json_pointer p(pointer);
    if (!obj.contains(p)) return kNull;
    return obj.at(p);
  } catch (const Json::exception&) {
    return kNull;
  }
}

std::string jsonString(const Json& obj, const char* pointer) {
  const Json& v = jsonAt(obj, pointer);
  return v.is_string() ? v.get<std::string>() : std::string();
}

int64_t jsonInt(const Json& obj, const char* pointer, int64_t fallback) {
  const Json& v = jsonAt(obj, pointer);
  return v.is_number_integer() ? v.get<int64_t>() : fallback;
}

namespace {
std::tm toUtc(std::time_t t) {
  std::tm tm{};
  gmtime_r(&t, &tm);
  return tm;
}
}  // namespace

std::string formatTime(std::chrono::system_clock::time_point t) {
  std::tm tm = toUtc(std::chrono::system_clock::to_time_t(t));
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string formatMicroTime(std::chrono::system_clock::time_point t) {
  auto secs = std::chrono::time_point_cast<std::chrono::seconds>(t);
  if (secs > t) secs -= std::chrono::seconds(1);
  auto micros = std::chrono::duration_cast<std::chrono::microseconds>(t - secs).count();
  std::tm tm = toUtc(std::chrono::system_clock::to_time_t(secs));
  char buf[48];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  char out[96];
  std::snprintf(out, sizeof(out), "%s.%06lldZ", buf, static_cast<long long>(micros));
  return out;
}

absl::StatusOr<std::chrono::system_clock::time_point> parseTime(std::string_view text) {
  std::tm tm{};
  int year, mon, day, hour, min, sec;
  std::string s(text);
  if (std::sscanf(s.c_str(), "%d-%d-%dT%d:%d:%d", &year, &mon, &day, &hour, &min, &sec) != 6) {
    return absl::InvalidArgumentError(absl::StrCat("not an RFC 3339 time: '", std::string(text), "'"));
  }
  // Out-of-range fields would overflow timegm's result or the clock's
  // nanoseconds, which span 1677-2262 (found by tests/fuzz duration_fuzzer:
  // "22-0611-30T04:32:43Z", "190-01-01T00:00:00Z").
  if (year < 1700 || year > 2200 || mon < 1 || mon > 12 || day < 1 || day > 31 || hour < 0 || hour > 23 ||
      min < 0 || min > 59 || sec < 0 || sec > 60) {
    return absl::InvalidArgumentError(absl::StrCat("not an RFC 3339 time: '", std::string(text), "'"));
  }
  tm.tm_year = year - 1900;
  tm.tm_mon = mon - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = min;
  tm.tm_sec = sec;
  auto tp = std::chrono::system_clock::from_time_t(timegm(&tm));
  // Fractional seconds, if any.
  auto dot = s.find('.');
  if (dot != std::string::npos) {
    size_t end = dot + 1;
    int64_t frac = 0;
    int digits = 0;
    while (end < s.size() && std::isdigit(static_cast<unsigned char>(s[end]))) {
      if (digits < 6) {
        frac = frac * 10 + (s[end] - '0');
        ++digits;
      }
      ++end;
    }
    while (digits < 6) {
      frac *= 10;
      ++digits;
    }
    tp += std::chrono::microseconds(frac);
  }
  return tp;
}

}  // namespace patchgate
