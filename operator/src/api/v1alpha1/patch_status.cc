#include "api/v1alpha1/patch_status.h"

#include <limits>
#include <tuple>
#include <type_traits>

#include "absl/strings/str_cat.h"

namespace patchgate::api::v1alpha1 {

namespace {

// One JSON field of a status struct. Each struct's list of them below is the
// one place its JSON names are written: toJson, parsePatchStatus and
// fullyPopulatedPatchStatus all walk the same lists, so they cannot disagree.
template <class S, class T>
struct Field {
  const char* name;
  T S::*member;
  bool omitEmpty = false;  // a list or map the operator never writes empty (Go's omitempty)
};
template <class S, class T>
Field(const char*, T S::*) -> Field<S, T>;
template <class S, class T>
Field(const char*, T S::*, bool) -> Field<S, T>;
constexpr bool kOmitEmpty = true;

template <class S>
using Tag = std::type_identity<S>;

auto fieldsOf(Tag<Condition>) {
  using C = Condition;
  return std::tuple{Field{"type", &C::type},
                    Field{"status", &C::status},
                    Field{"reason", &C::reason},
                    Field{"message", &C::message},
                    Field{"observedGeneration", &C::observedGeneration},
                    Field{"lastTransitionTime", &C::lastTransitionTime}};
}

auto fieldsOf(Tag<HistoryEntry>) {
  using H = HistoryEntry;
  return std::tuple{Field{"at", &H::at},
                    Field{"phase", &H::phase},
                    Field{"reason", &H::reason},
                    Field{"actor", &H::actor},
                    Field{"message", &H::message}};
}

auto fieldsOf(Tag<TargetRef>) {
  using T = TargetRef;
  return std::tuple{Field{"kind", &T::kind},
                    Field{"name", &T::name},
                    Field{"uid", &T::uid}};
}

auto fieldsOf(Tag<RollbackSource>) {
  using R = RollbackSource;
  return std::tuple{Field{"name", &R::name},
                    Field{"revision", &R::revision}};
}

auto fieldsOf(Tag<RollbackPoint>) {
  using R = RollbackPoint;
  return std::tuple{Field{"name", &R::name},
                    Field{"number", &R::number},
                    Field{"rollbackTarget", &R::rollbackTarget}};
}

auto fieldsOf(Tag<TestApiStatus>) {
  using T = TestApiStatus;
  return std::tuple{Field{"address", &T::address},
                    Field{"serverName", &T::serverName},
                    Field{"unavailable", &T::unavailable}};
}

auto fieldsOf(Tag<EnvironmentStatus>) {
  using E = EnvironmentStatus;
  return std::tuple{Field{"namespace", &E::namespace_},
                    Field{"createdAt", &E::createdAt},
                    Field{"testApi", &E::testApi},
                    Field{"baseResourceVersion", &E::baseResourceVersion},
                    Field{"services", &E::services},
                    Field{"message", &E::message},
                    Field{"readyAt", &E::readyAt},
                    Field{"omittedSecrets", &E::omittedSecrets, kOmitEmpty},
                    Field{"kept", &E::kept},
                    Field{"deletedAt", &E::deletedAt}};
}

auto fieldsOf(Tag<TestResult>) {
  using T = TestResult;
  return std::tuple{Field{"name", &T::name},
                    Field{"result", &T::result},
                    Field{"attempts", &T::attempts},
                    Field{"job", &T::job},
                    Field{"startedAt", &T::startedAt},
                    Field{"finishedAt", &T::finishedAt},
                    Field{"durationSeconds", &T::durationSeconds},
                    Field{"message", &T::message}};
}

auto fieldsOf(Tag<TestCaseReport>) {
  using T = TestCaseReport;
  return std::tuple{Field{"name", &T::name},
                    Field{"passed", &T::passed},
                    Field{"durationSeconds", &T::durationSeconds},
                    Field{"output", &T::output}};
}

auto fieldsOf(Tag<TestSuiteReport>) {
  using T = TestSuiteReport;
  return std::tuple{Field{"name", &T::name},
                    Field{"cases", &T::cases}};
}

auto fieldsOf(Tag<ApprovalRecord>) {
  using A = ApprovalRecord;
  return std::tuple{Field{"name", &A::name},
                    Field{"user", &A::user},
                    Field{"at", &A::at},
                    Field{"comment", &A::comment},
                    Field{"decision", &A::decision},
                    Field{"valid", &A::valid},
                    Field{"why", &A::why}};
}

auto fieldsOf(Tag<Intent>) {
  using I = Intent;
  return std::tuple{Field{"action", &I::action},
                    Field{"revision", &I::revision},
                    Field{"at", &I::at},
                    Field{"baseHash", &I::baseHash},
                    Field{"expectedHash", &I::expectedHash},
                    Field{"cause", &I::cause},
                    Field{"reason", &I::reason}};
}

auto fieldsOf(Tag<Promotion>) {
  using P = Promotion;
  return std::tuple{Field{"promotedAt", &P::promotedAt},
                    Field{"generation", &P::generation},
                    Field{"configHashes", &P::configHashes},
                    Field{"healthyAt", &P::healthyAt},
                    Field{"firstHealthyAt", &P::firstHealthyAt},
                    Field{"restartsAtHealthy", &P::restartsAtHealthy},
                    Field{"verifiedAt", &P::verifiedAt}};
}

auto fieldsOf(Tag<RollbackRecord>) {
  using R = RollbackRecord;
  return std::tuple{Field{"at", &R::at},
                    Field{"reason", &R::reason},
                    Field{"cause", &R::cause},
                    Field{"revision", &R::revision},
                    Field{"generation", &R::generation},
                    Field{"verifiedAt", &R::verifiedAt}};
}

auto fieldsOf(Tag<PolicyStatus>) {
  using P = PolicyStatus;
  return std::tuple{Field{"sources", &P::sources},
                    Field{"notes", &P::notes, kOmitEmpty},
                    Field{"schedule", &P::schedule}};
}

auto fieldsOf(Tag<PatchStatus>) {
  using S = PatchStatus;
  return std::tuple{Field{"phase", &S::phase},
                    Field{"message", &S::message},
                    Field{"startedAt", &S::startedAt},
                    Field{"finishedAt", &S::finishedAt},
                    Field{"observedGeneration", &S::observedGeneration},
                    Field{"conditions", &S::conditions, kOmitEmpty},
                    Field{"history", &S::history, kOmitEmpty},
                    Field{"target", &S::target},
                    Field{"baseHash", &S::baseHash},
                    Field{"expectedHash", &S::expectedHash},
                    Field{"diff", &S::diff},
                    Field{"rollbackSource", &S::rollbackSource},
                    Field{"environment", &S::environment},
                    Field{"tests", &S::tests, kOmitEmpty},
                    Field{"testReports", &S::testReports, kOmitEmpty},
                    Field{"approvals", &S::approvals},
                    Field{"refusedApprovals", &S::refusedApprovals, kOmitEmpty},
                    Field{"retests", &S::retests},
                    Field{"retestedAt", &S::retestedAt},
                    Field{"secretSources", &S::secretSources, kOmitEmpty},
                    Field{"revision", &S::revision},
                    Field{"intent", &S::intent},
                    Field{"promotion", &S::promotion},
                    Field{"rollback", &S::rollback},
                    Field{"policy", &S::policy}};
}

// Calls fn(field) for each field of S, in order, while it returns true.
template <class S, class Fn>
bool eachField(Fn&& fn) {
  return std::apply([&](const auto&... f) { return (fn(f) && ...); }, fieldsOf(Tag<S>{}));
}

// ---- to JSON ----------------------------------------------------------------

// Declared first: each calls the others for nested values.
Json encode(const std::string& v);
Json encode(int64_t v);
Json encode(bool v);
Json encode(double v);
template <class T>
Json encode(const std::vector<T>& v);
template <class T>
Json encode(const std::map<std::string, T>& v);
template <class S>
Json encode(const S& s);

Json encode(const std::string& v) { return v; }
Json encode(int64_t v) { return v; }
Json encode(bool v) { return v; }
Json encode(double v) { return v; }

template <class T>
Json encode(const std::vector<T>& v) {
  Json out = Json::array();
  for (const auto& item : v) out.push_back(encode(item));
  return out;
}

template <class T>
Json encode(const std::map<std::string, T>& v) {
  Json out = Json::object();
  for (const auto& [key, item] : v) out[key] = encode(item);
  return out;
}

template <class T>
void encodeField(Json& out, const char* name, const T& v, bool omitEmpty) {
  if constexpr (requires { v.empty(); }) {
    if (omitEmpty && v.empty()) return;
  }
  out[name] = encode(v);
}

template <class T>
void encodeField(Json& out, const char* name, const std::optional<T>& v, bool /*omitEmpty*/) {
  if (v) out[name] = encode(*v);
}

template <class S>
Json encode(const S& s) {
  Json out = Json::object();
  eachField<S>([&](const auto& f) {
    encodeField(out, f.name, s.*f.member, f.omitEmpty);
    return true;
  });
  return out;
}

// ---- from JSON --------------------------------------------------------------

absl::Status mustBe(const std::string& path, const char* what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": must be ", what));
}

absl::Status decode(const Json& j, const std::string& path, std::string& out);
absl::Status decode(const Json& j, const std::string& path, int64_t& out);
absl::Status decode(const Json& j, const std::string& path, bool& out);
absl::Status decode(const Json& j, const std::string& path, double& out);
template <class T>
absl::Status decode(const Json& j, const std::string& path, std::vector<T>& out);
template <class T>
absl::Status decode(const Json& j, const std::string& path, std::map<std::string, T>& out);
template <class S>
absl::Status decode(const Json& j, const std::string& path, S& out);

absl::Status decode(const Json& j, const std::string& path, std::string& out) {
  if (!j.is_string()) return mustBe(path, "a string");
  out = j.get<std::string>();
  return absl::OkStatus();
}

absl::Status decode(const Json& j, const std::string& path, int64_t& out) {
  constexpr auto kMax = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  if (!j.is_number_integer() || (j.is_number_unsigned() && j.get<uint64_t>() > kMax))
    return mustBe(path, "an integer");
  out = j.get<int64_t>();
  return absl::OkStatus();
}

absl::Status decode(const Json& j, const std::string& path, bool& out) {
  if (!j.is_boolean()) return mustBe(path, "true or false");
  out = j.get<bool>();
  return absl::OkStatus();
}

absl::Status decode(const Json& j, const std::string& path, double& out) {
  if (!j.is_number()) return mustBe(path, "a number");
  out = j.get<double>();
  return absl::OkStatus();
}

template <class T>
absl::Status decode(const Json& j, const std::string& path, std::vector<T>& out) {
  if (!j.is_array()) return mustBe(path, "a list");
  out.clear();
  for (size_t i = 0; i < j.size(); ++i)
    if (auto s = decode(j[i], absl::StrCat(path, "[", i, "]"), out.emplace_back()); !s.ok()) return s;
  return absl::OkStatus();
}

template <class T>
absl::Status decode(const Json& j, const std::string& path, std::map<std::string, T>& out) {
  if (!j.is_object()) return mustBe(path, "a map");
  out.clear();
  for (const auto& [key, item] : j.items())
    if (auto s = decode(item, absl::StrCat(path, "[\"", key, "\"]"), out[key]); !s.ok()) return s;
  return absl::OkStatus();
}

template <class T>
absl::Status decodeField(const Json& j, const std::string& path, T& out) {
  return decode(j, path, out);
}

template <class T>
absl::Status decodeField(const Json& j, const std::string& path, std::optional<T>& out) {
  return decode(j, path, out.emplace());
}

// Absent (or null) fields keep the struct's defaults.
template <class S>
absl::Status decode(const Json& j, const std::string& path, S& out) {
  if (!j.is_object()) return mustBe(path, "an object");
  absl::Status status;
  eachField<S>([&](const auto& f) {
    auto it = j.find(f.name);
    if (it == j.end() || it->is_null()) return true;
    status = decodeField(*it, absl::StrCat(path, ".", f.name), out.*f.member);
    return status.ok();
  });
  return status;
}

// ---- every field set --------------------------------------------------------

void populate(std::string& v) { v = "x"; }
void populate(int64_t& v) { v = 1; }
void populate(bool& v) { v = true; }
void populate(double& v) { v = 0.5; }
template <class T>
void populate(std::optional<T>& v);
template <class T>
void populate(std::vector<T>& v);
template <class T>
void populate(std::map<std::string, T>& v);
template <class S>
void populate(S& s);

template <class T>
void populate(std::optional<T>& v) {
  populate(v.emplace());
}
template <class T>
void populate(std::vector<T>& v) {
  populate(v.emplace_back());
}
template <class T>
void populate(std::map<std::string, T>& v) {
  populate(v["key"]);
}
template <class S>
void populate(S& s) {
  eachField<S>([&](const auto& f) {
    populate(s.*f.member);
    return true;
  });
}

}  // namespace

Json toJson(const PatchStatus& status) { return encode(status); }
Json toJson(const Condition& condition) { return encode(condition); }
Json toJson(const std::vector<TestSuiteReport>& suites) { return encode(suites); }

absl::StatusOr<PatchStatus> parsePatchStatus(const Json& status) {
  PatchStatus out;
  if (status.is_null()) return out;
  if (auto s = decode(status, "status", out); !s.ok()) return s;
  return out;
}

PatchStatus fullyPopulatedPatchStatus() {
  PatchStatus s;
  populate(s);
  return s;
}

std::string phaseOf(const Json& patch) { return jsonString(patch, "/status/phase"); }

bool setCondition(std::vector<Condition>& conditions, Condition condition, const std::string& now) {
  condition.lastTransitionTime = now;
  for (auto& existing : conditions) {
    if (existing.type != condition.type) continue;
    if (existing.status == condition.status && existing.lastTransitionTime)
      condition.lastTransitionTime = existing.lastTransitionTime;
    if (condition == existing) return false;
    existing = std::move(condition);
    return true;
  }
  conditions.push_back(std::move(condition));
  return true;
}

const Condition* findCondition(const std::vector<Condition>& conditions, std::string_view type) {
  for (const auto& c : conditions)
    if (c.type == type) return &c;
  return nullptr;
}

bool isConditionTrue(const std::vector<Condition>& conditions, std::string_view type) {
  const Condition* c = findCondition(conditions, type);
  return c && c->status == "True";
}

bool removeCondition(std::vector<Condition>& conditions, std::string_view type) {
  for (auto it = conditions.begin(); it != conditions.end(); ++it) {
    if (it->type == type) {
      conditions.erase(it);
      return true;
    }
  }
  return false;
}

}  // namespace patchgate::api::v1alpha1
