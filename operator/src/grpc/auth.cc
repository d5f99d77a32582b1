#include "grpc/auth.h"

#include <openssl/sha.h>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "kube/resource.h"

namespace patchgate::grpcapi {

namespace {

std::string tokenHash(const std::string& token) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(token.data()), token.size(), digest);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : digest) {
    out.push_back(hex[c >> 4]);
    out.push_back(hex[c & 15]);
  }
  return out;
}

absl::Status unavailable(const absl::Status& s, const std::string& what) {
  return absl::UnavailableError(absl::StrCat(what, ": ", std::string(s.message())));
}

std::string trim(std::string s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

}  // namespace

absl::StatusOr<std::string> parseBearer(std::string_view authorization) {
  if (authorization.empty())
    return absl::UnauthenticatedError("missing 'authorization: Bearer <token>' metadata");
  std::string v = trim(std::string(authorization));
  if (v.size() < 7 || !absl::AsciiStrToLower(v.substr(0, 7)).starts_with("bearer "))
    return absl::UnauthenticatedError("authorization metadata is not 'Bearer <token>'");
  std::string token = trim(v.substr(7));
  if (token.empty()) return absl::UnauthenticatedError("empty bearer token");
  return token;
}

std::string serviceAccountNamespace(const std::string& username) {
  const std::string prefix = "system:serviceaccount:";
  if (!username.starts_with(prefix)) return "";
  std::vector<std::string> parts = absl::StrSplit(username.substr(prefix.size()), ':');
  return parts.size() == 2 ? parts[0] : "";
}

absl::StatusOr<UserInfo> Authenticator::authenticate(std::string_view authorization) {
  auto token = parseBearer(authorization);
  if (!token.ok()) return token.status();
  std::string key = tokenHash(*token);
  {
    std::lock_guard lock(mu_);
    auto it = cache_.find(key);
    if (it != cache_.end()) {
      if (clock_.now() < it->second.expires) return it->second.user;
      cache_.erase(it);
    }
  }
  Json review = {
      {"apiVersion", "authentication.k8s.io/v1"}, {"kind", "TokenReview"}, {"spec", {{"token", *token}}}};
  if (!audience_.empty()) review["spec"]["audiences"] = Json::array({audience_});
  auto r = client_.create(kube::resources::kTokenReview, "", review);
  if (!r.ok()) return unavailable(r.status(), "TokenReview failed");
  const Json& status = jsonAt(*r, "/status");
  if (!status.is_object() || !status.value("authenticated", false)) {
    std::string err = jsonString(*r, "/status/error");
    return absl::UnauthenticatedError(err.empty() ? "invalid bearer token" : "invalid bearer token: " + err);
  }
  if (!audience_.empty()) {  // the API server says which of ours the token is for
    bool ours = false;
    for (const auto& a : jsonAt(*r, "/status/audiences")) ours = ours || a == audience_;
    if (!ours)
      return absl::UnauthenticatedError(absl::StrCat("the token is not for audience \"", audience_,
                                                     "\" (kubectl create token ... --audience ", audience_, ")"));
  }
  UserInfo user;
  user.username = jsonString(*r, "/status/user/username");
  user.uid = jsonString(*r, "/status/user/uid");
  for (const auto& g : jsonAt(*r, "/status/user/groups"))
    if (g.is_string()) user.groups.push_back(g.get<std::string>());
  const Json& extra = jsonAt(*r, "/status/user/extra");
  auto first = [&extra](const char* key) {
    if (!extra.is_object() || !extra.contains(key) || !extra[key].is_array() || extra[key].empty() ||
        !extra[key][0].is_string())
      return std::string();
    return extra[key][0].get<std::string>();
  };
  if (extra.is_object())
    for (auto& [k, v] : extra.items()) {
      if (!v.is_array()) continue;
      for (const auto& s : v)
        if (s.is_string()) user.extra[k].push_back(s.get<std::string>());
    }
  user.podName = first("authentication.kubernetes.io/pod-name");
  user.podUid = first("authentication.kubernetes.io/pod-uid");
  std::lock_guard lock(mu_);
  // Bounded: expired entries go when the cache grows.
  if (cache_.size() > 10000) {
    auto now = clock_.now();
    std::erase_if(cache_, [now](const auto& kv) { return kv.second.expires <= now; });
  }
  cache_[key] = Entry{user, clock_.now() + ttl_};
  return user;
}

absl::Status Authenticator::authorize(const UserInfo& user, const ResourceAttributes& attrs) {
  Json ra = {
      {"verb", attrs.verb}, {"group", attrs.group}, {"resource", attrs.resource}, {"namespace", attrs.ns}};
  if (!attrs.name.empty()) ra["name"] = attrs.name;
  Json review = {
      {"apiVersion", "authorization.k8s.io/v1"},
      {"kind", "SubjectAccessReview"},
      {"spec",
       {{"user", user.username}, {"uid", user.uid}, {"groups", user.groups}, {"resourceAttributes", ra}}}};
  if (!user.extra.empty()) review["spec"]["extra"] = user.extra;
  auto r = client_.create(kube::resources::kSubjectAccessReview, "", review);
  if (!r.ok()) return unavailable(r.status(), "SubjectAccessReview failed");
  if (jsonAt(*r, "/status/allowed") == Json(true)) return absl::OkStatus();
  std::string what =
      absl::StrCat(attrs.verb, " ", attrs.resource, attrs.group.empty() ? "" : "." + attrs.group);
  return absl::PermissionDeniedError(
      absl::StrCat(user.username, " may not ", what, " in namespace ", attrs.ns));
}

}  // namespace patchgate::grpcapi
