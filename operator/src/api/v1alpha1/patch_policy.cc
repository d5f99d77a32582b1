// PatchPolicy: parsing with the CRD's rules, merging, applying to a Patch, and
// the schedule (change windows in local civil time, freezes, emergencies).
#include "api/v1alpha1/patch_policy.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <map>
#include <set>
#include <string_view>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace patchgate::api::v1alpha1 {

namespace {

// The CRD's bounds (crds/patchgate.dev_patchpolicies.yaml).
constexpr size_t kMaxWindows = 20;
constexpr size_t kMaxFreezes = 50;
constexpr size_t kMaxApproverNames = 100;
constexpr size_t kMaxNameLength = 253;
constexpr size_t kMaxReasonLength = 1024;
constexpr size_t kMaxTimeZoneLength = 64;
// How far ahead evaluateSchedule looks for the next opening.
constexpr absl::Duration kLookAhead = absl::Hours(24 * 366);

constexpr std::array<const char*, 7> kDayNames = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};

absl::Status fieldError(const std::string& path, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": ", what));
}

std::string quotedValue(const std::string& s) {
  constexpr size_t kMax = 64;
  if (s.size() <= kMax) return absl::StrCat("\"", s, "\"");
  return absl::StrCat("\"", s.substr(0, kMax), "...\"");
}

absl::Status wrongType(const std::string& path, const Json& v, const char* want) {
  return fieldError(path, absl::StrCat("Invalid value: \"", v.type_name(), "\": must be of type ", want));
}

// Characters, as the API server counts maxLength (not bytes).
size_t runeCount(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// The member `key` of `obj`, or nullptr when absent or null (the API server
// drops nulls of fields that are not nullable).
const Json* member(const Json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

absl::Status readObject(const Json& parent, const char* key, const std::string& path, const Json** out) {
  *out = member(parent, key);
  if (*out != nullptr && !(*out)->is_object()) return wrongType(path, **out, "object");
  return absl::OkStatus();
}

absl::Status readBool(const Json& obj, const char* key, const std::string& path, bool& out) {
  const Json* v = member(obj, key);
  if (v == nullptr) return absl::OkStatus();
  if (!v->is_boolean()) return wrongType(path, *v, "boolean");
  out = v->get<bool>();
  return absl::OkStatus();
}

absl::Status readInt(const Json& obj, const char* key, const std::string& path, int64_t min, int64_t max,
                     int64_t& out) {
  const Json* v = member(obj, key);
  if (v == nullptr) return absl::OkStatus();
  if (!v->is_number_integer()) return wrongType(path, *v, "integer");
  if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(max))
    return fieldError(path,
                      absl::StrCat("Invalid value: ", v->dump(), ": must be less than or equal to ", max));
  int64_t n = v->get<int64_t>();
  if (n < min)
    return fieldError(path, absl::StrCat("Invalid value: ", n, ": must be greater than or equal to ", min));
  if (n > max)
    return fieldError(path, absl::StrCat("Invalid value: ", n, ": must be less than or equal to ", max));
  out = n;
  return absl::OkStatus();
}

absl::Status readString(const Json& v, const std::string& path, std::string& out) {
  if (!v.is_string()) return wrongType(path, v, "string");
  out = v.get<std::string>();
  return absl::OkStatus();
}

absl::Status readArray(const Json& obj, const char* key, const std::string& path, size_t maxItems,
                       const Json** out) {
  *out = member(obj, key);
  if (*out == nullptr) return absl::OkStatus();
  if (!(*out)->is_array()) return wrongType(path, **out, "array");
  if ((*out)->size() > maxItems)
    return fieldError(path,
                      absl::StrCat("Too many: ", (*out)->size(), ": must have at most ", maxItems, " items"));
  return absl::OkStatus();
}

absl::Status readNames(const Json& obj, const char* key, const std::string& path,
                       std::vector<std::string>& out) {
  const Json* list = nullptr;
  if (auto s = readArray(obj, key, path, kMaxApproverNames, &list); !s.ok()) return s;
  if (list == nullptr) return absl::OkStatus();
  for (size_t i = 0; i < list->size(); ++i) {
    const std::string itemPath = absl::StrCat(path, "[", i, "]");
    std::string name;
    if (auto s = readString((*list)[i], itemPath, name); !s.ok()) return s;
    if (name.empty()) return fieldError(itemPath, "Invalid value: \"\": must be at least 1 chars long");
    if (runeCount(name) > kMaxNameLength)
      return fieldError(itemPath, absl::StrCat("Too long: may not be more than ", kMaxNameLength, " bytes"));
    out.push_back(std::move(name));
  }
  return absl::OkStatus();
}

// "HH:MM", 24 hours, as the CRD's pattern ^([01][0-9]|2[0-3]):[0-5][0-9]$.
std::optional<int> parseClock(std::string_view s) {
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  if (s.size() != 5 || !digit(s[0]) || !digit(s[1]) || s[2] != ':' || !digit(s[3]) || !digit(s[4]))
    return std::nullopt;
  int h = (s[0] - '0') * 10 + (s[1] - '0');
  int m = (s[3] - '0') * 10 + (s[4] - '0');
  if (h > 23 || m > 59) return std::nullopt;
  return h * 60 + m;
}

std::string formatClock(int minute) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%02d:%02d", minute / 60, minute % 60);
  return buf;
}

// An IANA name such as "Europe/Berlin" or "Etc/GMT+5". Anything else is
// refused before it reaches the loader, which reads the file of that name
// under the zoneinfo folder: no "..", no absolute paths, and not
// "localtime", which would make a window depend on the machine's own zone.
bool isZoneName(std::string_view name) {
  if (name.empty() || name.size() > kMaxTimeZoneLength || name == "localtime") return false;
  if (name.front() == '/' || name.back() == '/') return false;
  for (char c : name) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '/' ||
                    c == '_' || c == '-' || c == '+';
    if (!ok) return false;
  }
  return name.find("//") == std::string_view::npos;
}

std::optional<absl::TimeZone> loadZone(const std::string& name) {
  absl::TimeZone tz;
  if (!isZoneName(name) || !absl::LoadTimeZone(name, &tz)) return std::nullopt;
  return tz;
}

std::string formatUtc(absl::Time t) { return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone()); }

// --- Kubernetes quantities, compared exactly: digits x 10^exponent.

struct Quantity {
  bool negative = false;
  std::string digits;  // no leading or trailing zeros; empty for zero
  int64_t exponent = 0;
};

// digits *= factor, in decimal text (factor small).
void multiply(std::string& digits, int factor) {
  int carry = 0;
  for (auto it = digits.rbegin(); it != digits.rend(); ++it) {
    int v = (*it - '0') * factor + carry;
    *it = static_cast<char>('0' + v % 10);
    carry = v / 10;
  }
  while (carry > 0) {
    digits.insert(digits.begin(), static_cast<char>('0' + carry % 10));
    carry /= 10;
  }
}

// <sign><digits>[.<digits>]<suffix>, suffix one of n u m "" k M G T P E,
// Ki Mi Gi Ti Pi Ei, or e<int>/E<int>, as resource.ParseQuantity accepts.
std::optional<Quantity> parseQuantity(std::string_view s) {
  constexpr int64_t kMaxExponent = 1000000000;
  Quantity q;
  size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) q.negative = s[i++] == '-';
  size_t mantissaDigits = 0;
  int64_t fractionDigits = 0;
  bool dot = false;
  for (; i < s.size(); ++i) {
    if (s[i] >= '0' && s[i] <= '9') {
      q.digits.push_back(s[i]);
      ++mantissaDigits;
      if (dot) ++fractionDigits;
    } else if (s[i] == '.' && !dot) {
      dot = true;
    } else {
      break;
    }
  }
  if (mantissaDigits == 0) return std::nullopt;
  q.exponent = -fractionDigits;
  const std::string_view suffix = s.substr(i);
  static const std::map<std::string_view, int> kDecimal = {{"", 0},   {"n", -9}, {"u", -6}, {"m", -3},
                                                           {"k", 3},  {"M", 6},  {"G", 9},  {"T", 12},
                                                           {"P", 15}, {"E", 18}};
  static const std::map<std::string_view, int> kBinary = {{"Ki", 1}, {"Mi", 2}, {"Gi", 3},
                                                          {"Ti", 4}, {"Pi", 5}, {"Ei", 6}};
  if (auto d = kDecimal.find(suffix); d != kDecimal.end()) {
    q.exponent += d->second;
  } else if (auto b = kBinary.find(suffix); b != kBinary.end()) {
    for (int k = 0; k < b->second; ++k) multiply(q.digits, 1024);
  } else if (suffix[0] == 'e' || suffix[0] == 'E') {
    size_t j = 1;
    bool negativeExponent = false;
    if (j < suffix.size() && (suffix[j] == '+' || suffix[j] == '-')) negativeExponent = suffix[j++] == '-';
    if (j == suffix.size()) return std::nullopt;
    int64_t e = 0;
    for (; j < suffix.size(); ++j) {
      if (suffix[j] < '0' || suffix[j] > '9') return std::nullopt;
      e = e * 10 + (suffix[j] - '0');
      if (e > kMaxExponent) return std::nullopt;
    }
    q.exponent += negativeExponent ? -e : e;
  } else {
    return std::nullopt;
  }
  q.digits.erase(0, std::min(q.digits.find_first_not_of('0'), q.digits.size()));
  while (!q.digits.empty() && q.digits.back() == '0') {
    q.digits.pop_back();
    ++q.exponent;
  }
  if (q.digits.empty()) q = Quantity{};  // zero has no sign
  return q;
}

int compareMagnitude(const Quantity& a, const Quantity& b) {
  if (a.digits.empty() || b.digits.empty()) return a.digits.empty() ? (b.digits.empty() ? 0 : -1) : 1;
  // Where the leading digit sits: digits d1..dn x 10^e is d1.d2..dn x 10^(n-1+e).
  const int64_t ma = static_cast<int64_t>(a.digits.size()) + a.exponent;
  const int64_t mb = static_cast<int64_t>(b.digits.size()) + b.exponent;
  if (ma != mb) return ma < mb ? -1 : 1;
  const size_t n = std::max(a.digits.size(), b.digits.size());
  for (size_t k = 0; k < n; ++k) {
    const char da = k < a.digits.size() ? a.digits[k] : '0';
    const char db = k < b.digits.size() ? b.digits[k] : '0';
    if (da != db) return da < db ? -1 : 1;
  }
  return 0;
}

absl::Status readQuantity(const Json& obj, const char* key, const std::string& path, std::string& out) {
  const Json* v = member(obj, key);
  if (v == nullptr) return absl::OkStatus();
  std::string text;
  if (v->is_number_integer()) {
    text = v->dump();
  } else if (v->is_string()) {
    text = v->get<std::string>();
  } else {
    return wrongType(path, *v, "integer or string");
  }
  auto q = parseQuantity(text);
  if (!q)
    return fieldError(path,
                      absl::StrCat("Invalid value: ", quotedValue(text), ": not a Kubernetes quantity"));
  if (q->negative)
    return fieldError(path, absl::StrCat("Invalid value: ", quotedValue(text), ": must not be negative"));
  out = text;
  return absl::OkStatus();
}

// --- parsing, one section at a time

absl::Status parseApproval(const Json& spec, PolicyApproval& out) {
  const Json* a = nullptr;
  if (auto s = readObject(spec, "approval", "spec.approval", &a); !s.ok() || a == nullptr) return s;
  if (auto s = readBool(*a, "required", "spec.approval.required", out.required); !s.ok()) return s;
  if (auto s = readInt(*a, "approvers", "spec.approval.approvers", 1, 10, out.approvers); !s.ok()) return s;
  if (auto s = readNames(*a, "allowedUsers", "spec.approval.allowedUsers", out.allowedUsers); !s.ok())
    return s;
  if (auto s = readNames(*a, "allowedGroups", "spec.approval.allowedGroups", out.allowedGroups); !s.ok())
    return s;
  if (auto s = readBool(*a, "allowServiceAccounts", "spec.approval.allowServiceAccounts",
                        out.allowServiceAccounts);
      !s.ok())
    return s;
  const Json* requiredFor = nullptr;
  if (auto s = readArray(*a, "requiredFor", "spec.approval.requiredFor", 2, &requiredFor); !s.ok()) return s;
  if (requiredFor != nullptr) {
    for (size_t i = 0; i < requiredFor->size(); ++i) {
      const std::string path = absl::StrCat("spec.approval.requiredFor[", i, "]");
      std::string what;
      if (auto s = readString((*requiredFor)[i], path, what); !s.ok()) return s;
      if (what == "SecretChanges") {
        out.forSecretChanges = true;
      } else if (what == "Emergencies") {
        out.forEmergencies = true;
      } else {
        return fieldError(path, absl::StrCat("Unsupported value: ", quotedValue(what),
                                             ": supported values: \"SecretChanges\", \"Emergencies\""));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status parseWindow(const Json& w, const std::string& path, ChangeWindow& out) {
  if (!w.is_object()) return wrongType(path, w, "object");
  const Json* days = nullptr;
  if (auto s = readArray(w, "days", path + ".days", 7, &days); !s.ok()) return s;
  if (days != nullptr) {
    std::set<int> seen;
    for (size_t i = 0; i < days->size(); ++i) {
      const std::string dayPath = absl::StrCat(path, ".days[", i, "]");
      std::string name;
      if (auto s = readString((*days)[i], dayPath, name); !s.ok()) return s;
      auto it = std::find(kDayNames.begin(), kDayNames.end(), name);
      if (it == kDayNames.end())
        return fieldError(dayPath,
                          absl::StrCat("Unsupported value: ", quotedValue(name),
                                       ": supported values: \"Mon\", \"Tue\", \"Wed\", \"Thu\", \"Fri\", "
                                       "\"Sat\", \"Sun\""));
      seen.insert(static_cast<int>(it - kDayNames.begin()));
    }
    // absl::Weekday counts from Monday, as kDayNames does.
    for (int d : seen) out.days.push_back(static_cast<absl::Weekday>(d));
  }
  for (auto [key, minute] : {std::pair{"start", &out.startMinute}, std::pair{"end", &out.endMinute}}) {
    const std::string fieldPath = absl::StrCat(path, ".", key);
    const Json* v = member(w, key);
    if (v == nullptr) return fieldError(fieldPath, "Required value");
    std::string text;
    if (auto s = readString(*v, fieldPath, text); !s.ok()) return s;
    auto m = parseClock(text);
    if (!m)
      return fieldError(fieldPath,
                        absl::StrCat("Invalid value: ", quotedValue(text), ": must be HH:MM (00:00-23:59)"));
    *minute = *m;
  }
  if (const Json* tz = member(w, "timeZone"); tz != nullptr) {
    const std::string tzPath = path + ".timeZone";
    if (auto s = readString(*tz, tzPath, out.timeZone); !s.ok()) return s;
    if (!loadZone(out.timeZone))
      return fieldError(tzPath, absl::StrCat("unknown time zone ", quotedValue(out.timeZone)));
  }
  return absl::OkStatus();
}

absl::Status parseFreeze(const Json& f, const std::string& path, Freeze& out) {
  if (!f.is_object()) return wrongType(path, f, "object");
  for (auto [key, time] : {std::pair{"start", &out.start}, std::pair{"end", &out.end}}) {
    const std::string fieldPath = absl::StrCat(path, ".", key);
    const Json* v = member(f, key);
    if (v == nullptr) return fieldError(fieldPath, "Required value");
    std::string text;
    if (auto s = readString(*v, fieldPath, text); !s.ok()) return s;
    std::string err;
    if (!absl::ParseTime(absl::RFC3339_full, text, time, &err))
      return fieldError(fieldPath,
                        absl::StrCat("Invalid value: ", quotedValue(text),
                                     ": must be an RFC 3339 date-time such as 2026-12-20T00:00:00Z"));
  }
  const Json* reason = member(f, "reason");
  if (reason == nullptr) return fieldError(path + ".reason", "Required value");
  if (auto s = readString(*reason, path + ".reason", out.reason); !s.ok()) return s;
  if (out.reason.empty()) return fieldError(path + ".reason", "Required value");
  if (runeCount(out.reason) > kMaxReasonLength)
    return fieldError(path + ".reason",
                      absl::StrCat("Too long: may not be more than ", kMaxReasonLength, " bytes"));
  if (out.end <= out.start)
    return fieldError(path, "Invalid value: \"object\": a freeze must end after it starts");
  return absl::OkStatus();
}

absl::Status parseSchedule(const Json& spec, PolicySpec& out) {
  const Json* windows = nullptr;
  if (auto s = readArray(spec, "changeWindows", "spec.changeWindows", kMaxWindows, &windows); !s.ok())
    return s;
  if (windows != nullptr) {
    for (size_t i = 0; i < windows->size(); ++i) {
      ChangeWindow w;
      if (auto s = parseWindow((*windows)[i], absl::StrCat("spec.changeWindows[", i, "]"), w); !s.ok())
        return s;
      out.changeWindows.push_back(std::move(w));
    }
  }
  const Json* freezes = nullptr;
  if (auto s = readArray(spec, "freezes", "spec.freezes", kMaxFreezes, &freezes); !s.ok()) return s;
  if (freezes != nullptr) {
    for (size_t i = 0; i < freezes->size(); ++i) {
      Freeze f;
      if (auto s = parseFreeze((*freezes)[i], absl::StrCat("spec.freezes[", i, "]"), f); !s.ok()) return s;
      out.freezes.push_back(std::move(f));
    }
  }
  return absl::OkStatus();
}

absl::Status parseLimits(const Json& spec, PolicySpec& out) {
  const Json* e = nullptr;
  if (auto s = readObject(spec, "emergency", "spec.emergency", &e); !s.ok()) return s;
  if (e != nullptr) {
    if (auto s = readBool(*e, "bypassWindows", "spec.emergency.bypassWindows", out.emergency.bypassWindows);
        !s.ok())
      return s;
    if (auto s = readBool(*e, "bypassFreezes", "spec.emergency.bypassFreezes", out.emergency.bypassFreezes);
        !s.ok())
      return s;
    if (auto s = readInt(*e, "approvers", "spec.emergency.approvers", 0, 10, out.emergency.approvers);
        !s.ok())
      return s;
  }
  const Json* env = nullptr;
  if (auto s = readObject(spec, "environment", "spec.environment", &env); !s.ok()) return s;
  if (env != nullptr) {
    PolicyEnvironment& o = out.environment;
    if (auto s = readQuantity(*env, "cpu", "spec.environment.cpu", o.cpu); !s.ok()) return s;
    if (auto s = readQuantity(*env, "memory", "spec.environment.memory", o.memory); !s.ok()) return s;
    if (auto s = readQuantity(*env, "storage", "spec.environment.storage", o.storage); !s.ok()) return s;
    if (auto s = readInt(*env, "pods", "spec.environment.pods", 1, 1000, o.pods); !s.ok()) return s;
    if (auto s = readInt(*env, "maxLifetimeSeconds", "spec.environment.maxLifetimeSeconds", 60, 604800,
                         o.maxLifetimeSeconds);
        !s.ok())
      return s;
  }
  const Json* secrets = nullptr;
  if (auto s = readObject(spec, "secrets", "spec.secrets", &secrets); !s.ok()) return s;
  if (secrets != nullptr) {
    if (auto s = readBool(*secrets, "allowCopy", "spec.secrets.allowCopy", out.allowSecretCopy); !s.ok())
      return s;
  }
  return absl::OkStatus();
}

// --- the schedule

// A policy's windows with their zones loaded once, grouped (ChangeWindow::group).
class Windows {
 public:
  explicit Windows(const std::vector<ChangeWindow>& windows) : windows_(windows) {
    for (size_t i = 0; i < windows.size(); ++i) {
      zones_.push_back(loadZone(windows[i].timeZone));
      groups_[windows[i].group].push_back(i);
    }
  }

  // The groups `t` is not inside any window of (empty: inside, or no windows).
  std::vector<int> groupsOutside(absl::Time t) const {
    std::vector<int> out;
    for (const auto& [group, members] : groups_) {
      if (std::none_of(members.begin(), members.end(), [&](size_t i) { return inside(i, t); }))
        out.push_back(group);
    }
    return out;
  }

  // "(A; B)" for each group, joined with " and ".
  std::string describe(const std::vector<int>& groups) const {
    std::vector<std::string> parts;
    for (int g : groups) {
      std::vector<std::string> names;
      for (size_t i : groups_.at(g)) names.push_back(describeWindow(windows_[i]));
      parts.push_back(absl::StrCat("(", absl::StrJoin(names, "; "), ")"));
    }
    return absl::StrJoin(parts, " and ");
  }

  // Every instant in (from, to] at which a window may open: each window's
  // start on each listed day, and each offset change in a window's zone (a
  // clock set back can bring a window's hours back).
  void openingCandidates(absl::Time from, absl::Time to, std::vector<absl::Time>& out) const {
    std::set<std::string> zonesSeen;
    for (size_t i = 0; i < windows_.size(); ++i) {
      if (!zones_[i]) continue;
      const absl::TimeZone& tz = *zones_[i];
      const ChangeWindow& w = windows_[i];
      const absl::CivilDay last = absl::ToCivilDay(to, tz);
      for (absl::CivilDay d = absl::ToCivilDay(from, tz) - 1; d <= last; ++d) {
        if (!listed(w, d)) continue;
        const auto info =
            tz.At(absl::CivilSecond(d.year(), d.month(), d.day(), w.startMinute / 60, w.startMinute % 60, 0));
        switch (info.kind) {
          case absl::TimeZone::TimeInfo::UNIQUE:
            out.push_back(info.pre);
            break;
          case absl::TimeZone::TimeInfo::SKIPPED:  // the first minute after the gap
            out.push_back(info.trans);
            break;
          case absl::TimeZone::TimeInfo::REPEATED:  // the start happens twice
            out.push_back(info.pre);
            out.push_back(info.post);
            break;
        }
      }
      if (!zonesSeen.insert(w.timeZone).second) continue;
      absl::TimeZone::CivilTransition tr;
      for (absl::Time t = from; t <= to && tz.NextTransition(t, &tr);) {
        const absl::Time at = tz.At(tr.to).trans;
        if (at <= t) break;
        out.push_back(at);
        t = at;
      }
    }
  }

  bool empty() const { return windows_.empty(); }

 private:
  static bool listed(const ChangeWindow& w, absl::CivilDay d) {
    return w.days.empty() || std::find(w.days.begin(), w.days.end(), absl::GetWeekday(d)) != w.days.end();
  }

  // Local civil time decides (see ChangeWindow). A zone that does not load
  // never matches: a window cannot be trusted in a zone we cannot read.
  bool inside(size_t i, absl::Time t) const {
    if (!zones_[i]) return false;
    const ChangeWindow& w = windows_[i];
    const absl::CivilMinute local = absl::ToCivilMinute(t, *zones_[i]);
    const absl::CivilDay day(local);
    const int minute = local.hour() * 60 + local.minute();
    const bool pastMidnight = w.endMinute <= w.startMinute;
    if (listed(w, day) && minute >= w.startMinute && (pastMidnight || minute < w.endMinute)) return true;
    return pastMidnight && minute < w.endMinute && listed(w, day - 1);
  }

  const std::vector<ChangeWindow>& windows_;
  std::vector<std::optional<absl::TimeZone>> zones_;
  std::map<int, std::vector<size_t>> groups_;
};

// The freeze holding `t` that ends last, if any.
const Freeze* activeFreeze(const std::vector<Freeze>& freezes, absl::Time t) {
  const Freeze* found = nullptr;
  for (const Freeze& f : freezes) {
    if (f.start <= t && t < f.end && (found == nullptr || f.end > found->end)) found = &f;
  }
  return found;
}

std::string describeFreeze(const Freeze& f) {
  return absl::StrCat("freeze until ", formatUtc(f.end), ": ", f.reason);
}

std::optional<absl::Time> nextOpening(const PolicySpec& policy, const Windows& windows, bool applyWindows,
                                      bool applyFreezes, absl::Time now) {
  const absl::Time limit = now + kLookAhead;
  std::vector<absl::Time> candidates;
  if (applyWindows) windows.openingCandidates(now, limit, candidates);
  if (applyFreezes) {
    for (const Freeze& f : policy.freezes) candidates.push_back(f.end);
  }
  std::sort(candidates.begin(), candidates.end());
  candidates.erase(std::unique(candidates.begin(), candidates.end()), candidates.end());
  for (absl::Time c : candidates) {
    if (c <= now) continue;
    if (c > limit) break;
    if (applyFreezes && activeFreeze(policy.freezes, c) != nullptr) continue;
    if (applyWindows && !windows.groupsOutside(c).empty()) continue;
    return c;
  }
  return std::nullopt;
}

std::string policyName(const std::string& source) {
  if (source.empty()) return "a policy";
  return absl::StrCat(source.find(", ") == std::string::npos ? "policy " : "policies ", source);
}

bool isServiceAccount(const std::string& user) { return user.rfind("system:serviceaccount:", 0) == 0; }

bool contains(const std::vector<std::string>& list, const std::string& s) {
  return std::find(list.begin(), list.end(), s) != list.end();
}

bool changesSecret(const PatchSpec& spec) {
  return std::any_of(spec.change.config.begin(), spec.change.config.end(),
                     [](const ConfigChange& c) { return c.kind == "Secret"; });
}

std::string smallerQuantity(const std::string& a, const std::string& b) {
  if (a.empty()) return b;
  if (b.empty()) return a;
  if (auto c = compareQuantity(a, b)) return *c <= 0 ? a : b;
  return parseQuantity(a) ? a : b;  // one that parses beats one that does not
}

int64_t smallerLimit(int64_t a, int64_t b) {
  if (a <= 0) return b;
  if (b <= 0) return a;
  return std::min(a, b);
}

}  // namespace

absl::StatusOr<PolicySpec> parsePolicy(const Json& policy) {
  if (!policy.is_object()) return fieldError("<root>", "Invalid value: must be an object");
  const Json* spec = member(policy, "spec");
  if (spec == nullptr) return fieldError("spec", "Required value");
  if (!spec->is_object()) return wrongType("spec", *spec, "object");
  PolicySpec out;
  const std::string ns = jsonString(policy, "/metadata/namespace");
  const std::string name = jsonString(policy, "/metadata/name");
  out.source = ns.empty() ? name : absl::StrCat(ns, "/", name);
  if (auto s = parseApproval(*spec, out.approval); !s.ok()) return s;
  if (auto s = parseSchedule(*spec, out); !s.ok()) return s;
  if (auto s = parseLimits(*spec, out); !s.ok()) return s;
  return out;
}

std::vector<ApproverRule> approverRules(const PolicySpec& policy) {
  if (!policy.approval.rules.empty()) return policy.approval.rules;
  return {ApproverRule{policy.source, policy.approval.allowedUsers, policy.approval.allowedGroups,
                       policy.approval.allowServiceAccounts}};
}

bool mayApprove(const PolicySpec& policy, const std::string& user, const std::vector<std::string>& groups,
                std::string* why) {
  for (const ApproverRule& rule : approverRules(policy)) {
    std::string refusal;
    if (isServiceAccount(user) && !rule.allowServiceAccounts) {
      refusal = absl::StrCat(user, " may not approve: ", policyName(rule.source),
                             " does not allow ServiceAccounts");
    } else if (!rule.users.empty() || !rule.groups.empty()) {
      const bool byGroup = std::any_of(groups.begin(), groups.end(),
                                       [&](const std::string& g) { return contains(rule.groups, g); });
      if (!contains(rule.users, user) && !byGroup) {
        std::vector<std::string> who;
        if (!rule.users.empty()) who.push_back(absl::StrJoin(rule.users, ", "));
        if (!rule.groups.empty())
          who.push_back(absl::StrCat("members of ", absl::StrJoin(rule.groups, ", ")));
        refusal = absl::StrCat(user, " may not approve: ", policyName(rule.source), " allows only ",
                               absl::StrJoin(who, ", or "));
      }
    }
    if (!refusal.empty()) {
      if (why != nullptr) *why = std::move(refusal);
      return false;
    }
  }
  return true;
}

PolicySpec mergePolicies(const std::vector<PolicySpec>& policies) {
  PolicySpec out;
  if (policies.empty()) return out;
  std::vector<std::string> sources;
  out.approval.allowServiceAccounts = true;
  out.emergency.bypassWindows = true;
  out.emergency.bypassFreezes = true;
  int nextGroup = 0;
  for (const PolicySpec& p : policies) {
    if (!p.source.empty()) sources.push_back(p.source);
    PolicyApproval& a = out.approval;
    a.required = a.required || p.approval.required;
    a.approvers = std::max(a.approvers, p.approval.approvers);
    a.forSecretChanges = a.forSecretChanges || p.approval.forSecretChanges;
    a.forEmergencies = a.forEmergencies || p.approval.forEmergencies;
    a.allowServiceAccounts = a.allowServiceAccounts && p.approval.allowServiceAccounts;
    for (ApproverRule& r : approverRules(p)) a.rules.push_back(std::move(r));

    // Each input's groups get fresh numbers, so windows of different
    // policies never stand in for each other.
    std::map<int, int> renumber;
    for (const ChangeWindow& w : p.changeWindows) {
      auto [it, added] = renumber.emplace(w.group, nextGroup);
      if (added) ++nextGroup;
      out.changeWindows.push_back(w);
      out.changeWindows.back().group = it->second;
    }
    out.freezes.insert(out.freezes.end(), p.freezes.begin(), p.freezes.end());

    out.emergency.bypassWindows = out.emergency.bypassWindows && p.emergency.bypassWindows;
    out.emergency.bypassFreezes = out.emergency.bypassFreezes && p.emergency.bypassFreezes;
    out.emergency.approvers = std::max(out.emergency.approvers, p.emergency.approvers);

    PolicyEnvironment& e = out.environment;
    e.cpu = smallerQuantity(e.cpu, p.environment.cpu);
    e.memory = smallerQuantity(e.memory, p.environment.memory);
    e.storage = smallerQuantity(e.storage, p.environment.storage);
    e.pods = smallerLimit(e.pods, p.environment.pods);
    e.maxLifetimeSeconds = smallerLimit(e.maxLifetimeSeconds, p.environment.maxLifetimeSeconds);

    out.allowSecretCopy = out.allowSecretCopy && p.allowSecretCopy;
  }
  out.source = absl::StrJoin(sources, ", ");
  return out;
}

std::optional<int> compareQuantity(const std::string& a, const std::string& b) {
  auto qa = parseQuantity(a);
  auto qb = parseQuantity(b);
  if (!qa || !qb) return std::nullopt;
  const bool aNegative = qa->negative && !qa->digits.empty();
  const bool bNegative = qb->negative && !qb->digits.empty();
  if (aNegative != bNegative) return aNegative ? -1 : 1;
  const int magnitude = compareMagnitude(*qa, *qb);
  return aNegative ? -magnitude : magnitude;
}

std::vector<std::string> applyPolicy(const PolicySpec& policy, PatchSpec& spec) {
  std::vector<std::string> notes;
  const std::string by = policyName(policy.source);
  if (!spec.approvalRequired) {
    std::optional<std::string> reason;  // why approval is now required
    if (policy.approval.required) {
      reason = "";
    } else if (policy.approval.forSecretChanges && changesSecret(spec)) {
      reason = ": it changes a Secret";
    } else if (policy.approval.forEmergencies && spec.priority == "emergency") {
      reason = ": it is an emergency";
    }
    if (reason) {
      spec.approvalRequired = true;
      notes.push_back(absl::StrCat("approval required by ", by, *reason));
    }
  }
  if (spec.approvalRequired && spec.approvers < policy.approval.approvers) {
    spec.approvers = policy.approval.approvers;
    notes.push_back(absl::StrCat("approvals from ", spec.approvers, " people required by ", by));
  }
  if (!policy.allowSecretCopy && spec.secrets == "copy") {
    spec.secrets = "omit";
    notes.push_back(absl::StrCat("Secrets are not copied into the test environment: forbidden by ", by));
  }
  const int64_t maxLifetime = policy.environment.maxLifetimeSeconds;
  if (maxLifetime > 0 && spec.keepOnFailureSeconds > maxLifetime) {
    spec.keepOnFailureSeconds = maxLifetime;
    notes.push_back(absl::StrCat("a failed environment is kept at most ", maxLifetime, "s (", by, ")"));
  }
  if (maxLifetime > 0 && spec.ttlSecondsAfterFinished > maxLifetime) {
    spec.ttlSecondsAfterFinished = maxLifetime;
    notes.push_back(absl::StrCat("a finished environment is kept at most ", maxLifetime, "s (", by, ")"));
  }
  return notes;
}

ScheduleVerdict evaluateSchedule(const PolicySpec& policy, bool emergency, absl::Time now) {
  ScheduleVerdict v;
  const Windows windows(policy.changeWindows);
  const bool applyWindows = !(emergency && policy.emergency.bypassWindows);
  const bool applyFreezes = !(emergency && policy.emergency.bypassFreezes);
  const std::vector<int> outside = windows.groupsOutside(now);
  const Freeze* freeze = activeFreeze(policy.freezes, now);
  if (outside.empty() && freeze == nullptr) return v;

  if ((outside.empty() || !applyWindows) && (freeze == nullptr || !applyFreezes)) {
    std::vector<std::string> passed;
    if (freeze != nullptr) passed.push_back(absl::StrCat("the ", describeFreeze(*freeze)));
    if (!outside.empty()) passed.push_back(absl::StrCat("the change windows ", windows.describe(outside)));
    v.bypassed = true;
    v.why = absl::StrCat("emergency: passes ", absl::StrJoin(passed, " and "));
    return v;
  }

  v.open = false;
  v.next = nextOpening(policy, windows, applyWindows, applyFreezes, now);
  if (freeze != nullptr && applyFreezes) {
    v.why = describeFreeze(*freeze);
  } else {
    v.why = absl::StrCat("outside change windows ", windows.describe(outside));
  }
  if (v.next) absl::StrAppend(&v.why, "; opens at ", formatUtc(*v.next));
  return v;
}

std::string describeWindow(const ChangeWindow& w) {
  std::set<int> days;
  for (absl::Weekday d : w.days) days.insert(static_cast<int>(d));
  std::string when;
  if (days.empty() || days.size() == kDayNames.size()) {
    when = "daily";
  } else {
    std::vector<std::string> runs;
    for (auto it = days.begin(); it != days.end();) {
      int first = *it;
      int last = first;
      for (++it; it != days.end() && *it == last + 1; ++it) last = *it;
      if (last - first >= 2) {
        runs.push_back(absl::StrCat(kDayNames[first], "-", kDayNames[last]));
      } else {
        for (int d = first; d <= last; ++d) runs.push_back(kDayNames[d]);
      }
    }
    when = absl::StrJoin(runs, ",");
  }
  std::string hours;
  if (w.startMinute == 0 && w.endMinute == 0) {
    hours = "all day";
  } else {
    hours = absl::StrCat(formatClock(w.startMinute), "-", formatClock(w.endMinute),
                         w.endMinute <= w.startMinute ? "(+1)" : "");
  }
  return absl::StrCat(when, " ", hours, " ", w.timeZone);
}

}  // namespace patchgate::api::v1alpha1
