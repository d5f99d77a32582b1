#include "grpc/api.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "api/v1alpha1/patch.h"
#include "api/v1alpha1/patch_status.h"
#include "cli/format.h"
#include "common/utf8.h"
#include "kube/errors.h"
#include "kube/resource.h"
#include "runtime/status.h"

namespace patchgate::grpcapi {

namespace v1 = api::v1alpha1;

namespace {

constexpr size_t kMaxOutput = 4096;

absl::Status requireName(const std::string& ns, const std::string& name) {
  if (ns.empty() || name.empty()) return absl::InvalidArgumentError("namespace and name are required");
  return absl::OkStatus();
}

std::string label(const Json& obj, const char* key) {
  const Json& labels = jsonAt(obj, "/metadata/labels");
  return labels.is_object() ? labels.value(key, "") : "";
}

}  // namespace

bool isTerminalPhase(const std::string& phase) {
  return phase == v1::phase::kSucceeded || phase == v1::phase::kFailed || phase == v1::phase::kRolledBack;
}

pb::Patch toProto(const Json& patch) {
  pb::Patch p;
  p.set_namespace_(jsonString(patch, "/metadata/namespace"));
  p.set_name(jsonString(patch, "/metadata/name"));
  p.set_uid(jsonString(patch, "/metadata/uid"));
  p.set_resource_version(jsonString(patch, "/metadata/resourceVersion"));
  p.set_phase(jsonString(patch, "/status/phase"));
  p.set_message(jsonString(patch, "/status/message"));
  p.set_ticket(jsonString(patch, "/spec/ticket"));
  p.set_root_cause(jsonString(patch, "/spec/rootCause"));
  p.set_target_kind(jsonString(patch, "/spec/target/kind"));
  p.set_target_name(jsonString(patch, "/spec/target/name"));
  const Json& status = jsonAt(patch, "/status");
  p.set_status_json(status.is_null() ? "{}" : status.dump());
  for (const auto& c : jsonAt(patch, "/status/conditions")) {
    if (!c.is_object()) continue;
    auto* pc = p.add_conditions();
    pc->set_type(c.value("type", ""));
    pc->set_status(c.value("status", ""));
    pc->set_reason(c.value("reason", ""));
    pc->set_message(c.value("message", ""));
  }
  return p;
}

Json suitesToJson(const pb::ReportTestResultsRequest& req) {
  std::vector<v1::TestSuiteReport> suites;
  for (const auto& s : req.suites()) {
    v1::TestSuiteReport& suite = suites.emplace_back(v1::TestSuiteReport{.name = s.name()});
    for (const auto& c : s.cases()) {
      std::string out = c.output();
      // Cut at a character boundary: half a UTF-8 sequence would make the
      // status unwritable (JSON text must be UTF-8).
      if (out.size() > kMaxOutput) out = truncateUtf8(out, kMaxOutput) + "\n[truncated]";
      suite.cases.push_back({c.name(), c.passed(), c.duration_seconds(), std::move(out)});
    }
  }
  return v1::toJson(suites);  // the shape the CRD declares for status.testReports.<test>
}

absl::Status checkReporterIdentity(const UserInfo& user, const std::string& envNs) {
  std::string saNs = serviceAccountNamespace(user.username);
  if (saNs.empty())
    return absl::PermissionDeniedError(
        absl::StrCat(user.username, " is not a service account; only test pods may report results"));
  if (saNs != envNs)
    return absl::PermissionDeniedError(
        absl::StrCat("service account of namespace ", saNs, " may not report for environment ", envNs));
  return absl::OkStatus();
}

absl::Status checkReporter(const UserInfo& user, const std::string& envNs, const Json& patch, const Json& pod) {
  if (auto s = checkReporterIdentity(user, envNs); !s.ok()) return s;
  std::string patchEnv = jsonString(patch, "/status/environment/namespace");
  if (patchEnv.empty() || patchEnv != envNs)
    return absl::PermissionDeniedError(
        absl::StrCat("namespace ", envNs, " is not the environment of patch ", kube::objectKey(patch)));
  std::string podName = jsonString(pod, "/metadata/name");
  bool ofAJob = false;
  for (const auto& ref : jsonAt(pod, "/metadata/ownerReferences"))
    if (ref.value("kind", "") == "Job" && ref.value("controller", false)) ofAJob = true;
  if (label(pod, v1::kLabelTest).empty() || !ofAJob)
    return absl::PermissionDeniedError(absl::StrCat("pod ", podName, " is not a patchgate test pod"));
  if (label(pod, v1::kLabelPatchUid) != jsonString(patch, "/metadata/uid"))
    return absl::PermissionDeniedError(
        absl::StrCat("pod ", podName, " tests another patch than ", kube::objectKey(patch)));
  return absl::OkStatus();
}

absl::StatusOr<Json> PatchgateApi::reportingPod(const UserInfo& user, const std::string& envNs) {
  if (user.podName.empty())
    return absl::PermissionDeniedError(
        absl::StrCat(user.username, ": only test pods may report results, with their own token (one bound to "
                     "the pod, as automounted); this token is bound to no pod"));
  kube::ListOptions lo;
  lo.fieldSelector = absl::StrCat("metadata.name=", user.podName);
  auto pods = client_.list(kube::resources::kPod, envNs, lo);
  if (!pods.ok()) return absl::UnavailableError(absl::StrCat("cannot look up the pod: ", pods.status().message()));
  // At most one pod has the name; a new one under it (another uid) is not the token's.
  const Json& items = jsonAt(*pods, "/items");
  if (items.is_array() && !items.empty() &&
      (user.podUid.empty() || jsonString(items[0], "/metadata/uid") == user.podUid))
    return items[0];
  return absl::PermissionDeniedError(absl::StrCat("the token's pod ", user.podName, " is not in ", envNs));
}

absl::StatusOr<runtime::Object> PatchgateApi::authorizedPatch(std::string_view authorization,
                                                              const std::string& verb, const std::string& ns,
                                                              const std::string& name) {
  // Authenticate before anything else, so that an anonymous caller learns
  // nothing, not even whether the request is well formed.
  auto user = auth_.authenticate(authorization);
  if (!user.ok()) return user.status();
  if (auto s = requireName(ns, name); !s.ok()) return s;
  if (auto s = auth_.authorize(*user, {verb, "patchgate.dev", "patches", ns, name}); !s.ok()) return s;
  auto obj = patches_.get(kube::makeKey(ns, name));
  if (!obj) return absl::NotFoundError(absl::StrCat("patch ", ns, "/", name, " not found"));
  return obj;
}

absl::StatusOr<pb::Patch> PatchgateApi::getPatch(std::string_view authorization,
                                                 const pb::GetPatchRequest& req) {
  auto obj = authorizedPatch(authorization, "get", req.namespace_(), req.name());
  if (!obj.ok()) return obj.status();
  return toProto(**obj);
}

absl::Status PatchgateApi::watchPatch(std::string_view authorization, const pb::WatchPatchRequest& req,
                                      const std::function<bool(const pb::PatchEvent&)>& send,
                                      const std::function<bool()>& cancelled) {
  auto first = authorizedPatch(authorization, "watch", req.namespace_(), req.name());
  if (!first.ok()) return first.status();
  const std::string key = kube::makeKey(req.namespace_(), req.name());
  runtime::Object last = *first;
  uint64_t seen;
  {
    std::lock_guard lock(mu_);
    seen = version_;
  }
  pb::PatchEvent ev;
  ev.set_type(pb::PatchEvent::CURRENT);
  *ev.mutable_patch() = toProto(*last);
  if (!send(ev)) return absl::CancelledError("client went away");
  while (true) {
    if (isTerminalPhase(jsonString(*last, "/status/phase"))) return absl::OkStatus();
    {
      std::unique_lock lock(mu_);
      // Woken by notify(); the timeout only bounds how late a cancellation is seen.
      cv_.wait_for(lock, std::chrono::milliseconds(500), [&] { return shutdown_ || version_ != seen; });
      if (shutdown_) return absl::UnavailableError("server shutting down");
      seen = version_;
    }
    if (cancelled()) return absl::CancelledError("client cancelled the watch");
    runtime::Object now = patches_.get(key);
    if (!now || jsonString(*now, "/metadata/uid") != jsonString(*last, "/metadata/uid")) {
      ev.set_type(pb::PatchEvent::DELETED);
      *ev.mutable_patch() = toProto(*last);
      send(ev);
      return absl::OkStatus();
    }
    if (jsonString(*now, "/metadata/resourceVersion") == jsonString(*last, "/metadata/resourceVersion"))
      continue;
    last = now;
    ev.set_type(pb::PatchEvent::MODIFIED);
    *ev.mutable_patch() = toProto(*last);
    if (!send(ev)) return absl::CancelledError("client went away");
  }
}

absl::StatusOr<pb::ListRevisionsResponse> PatchgateApi::listRevisions(std::string_view authorization,
                                                                      const pb::ListRevisionsRequest& req) {
  auto user = auth_.authenticate(authorization);
  if (!user.ok()) return user.status();
  if (req.namespace_().empty() || req.kind().empty() || req.name().empty())
    return absl::InvalidArgumentError("namespace, kind and name are required");
  if (auto s = auth_.authorize(*user, {"list", "apps", "controllerrevisions", req.namespace_(), ""}); !s.ok())
    return s;
  kube::ListOptions lo;
  lo.labelSelector = absl::StrCat(v1::kLabelTarget, "=", req.kind(), ".", req.name());
  auto list = kube::listAll(client_, kube::resources::kControllerRevision, req.namespace_(), lo);
  if (!list.ok())
    return absl::UnavailableError(absl::StrCat("cannot list revisions: ", list.status().message()));
  std::vector<Json> items;
  for (const auto& item : jsonAt(*list, "/items")) items.push_back(item);
  std::sort(items.begin(), items.end(),
            [](const Json& a, const Json& b) { return jsonInt(a, "/revision") < jsonInt(b, "/revision"); });
  pb::ListRevisionsResponse resp;
  for (const auto& item : items) {
    auto* r = resp.add_revisions();
    r->set_name(jsonString(item, "/metadata/name"));
    r->set_revision(jsonInt(item, "/revision"));
    r->set_creation_timestamp(jsonString(item, "/metadata/creationTimestamp"));
    r->set_patch(label(item, v1::kLabelPatch));
    const Json& ann = jsonAt(item, "/metadata/annotations");
    r->set_ticket(ann.is_object() ? ann.value(v1::kAnnotationTicket, "") : "");
  }
  return resp;
}

absl::StatusOr<pb::ChangeRecord> PatchgateApi::getChangeRecord(std::string_view authorization,
                                                               const pb::GetPatchRequest& req) {
  auto obj = authorizedPatch(authorization, "get", req.namespace_(), req.name());
  if (!obj.ok()) return obj.status();
  Json revision;
  if (std::string rev = jsonString(**obj, "/status/revision/name"); !rev.empty()) {
    auto r = client_.get(kube::resources::kControllerRevision, req.namespace_(), rev);
    if (r.ok()) revision = std::move(*r);  // pruned: the record says less
  }
  pb::ChangeRecord cr;
  cr.set_markdown(cli::reportMarkdown(**obj, revision, clock_.now()));
  return cr;
}

absl::StatusOr<pb::ReportTestResultsResponse> PatchgateApi::reportTestResults(
    std::string_view authorization, const pb::ReportTestResultsRequest& req) {
  auto user = auth_.authenticate(authorization);
  if (!user.ok()) return user.status();
  if (req.namespace_().empty() || req.patch().empty() || req.test().empty())
    return absl::InvalidArgumentError("namespace, patch and test are required");
  // Find the Patch: by its namespace when given, else the one of that name
  // whose environment is the caller's namespace.
  runtime::Object patch;
  bool nameExists = false;
  if (!req.patch_namespace().empty()) {
    patch = patches_.get(kube::makeKey(req.patch_namespace(), req.patch()));
    nameExists = patch != nullptr;
  } else {
    for (const auto& p : patches_.list()) {
      if (jsonString(*p, "/metadata/name") != req.patch()) continue;
      nameExists = true;
      if (jsonString(*p, "/status/environment/namespace") == req.namespace_()) patch = p;
    }
  }
  if (!nameExists) return absl::NotFoundError(absl::StrCat("patch ", req.patch(), " not found"));
  // Who is asking first (a service account of that namespace), then its pod.
  if (auto s = checkReporterIdentity(*user, req.namespace_()); !s.ok()) return s;
  if (!patch)  // the name exists, in another environment
    return absl::PermissionDeniedError(
        absl::StrCat("namespace ", req.namespace_(), " is not the environment of patch ", req.patch()));
  auto pod = reportingPod(*user, req.namespace_());
  if (!pod.ok()) return pod.status();
  if (auto s = checkReporter(*user, req.namespace_(), *patch, *pod); !s.ok()) return s;
  // ...and reports for its own test only.
  if (std::string runs = label(*pod, v1::kLabelTest); runs != req.test())
    return absl::PermissionDeniedError(
        absl::StrCat("pod ", jsonString(*pod, "/metadata/name"), " runs test ", runs, ", not ", req.test()));

  Json suites = suitesToJson(req);
  pb::ReportTestResultsResponse resp;
  for (const auto& s : req.suites()) {
    resp.set_suites(resp.suites() + 1);
    for (const auto& c : s.cases()) {
      resp.set_cases(resp.cases() + 1);
      if (!c.passed()) resp.set_failed(resp.failed() + 1);
    }
  }
  const std::string ns = jsonString(*patch, "/metadata/namespace");
  const std::string name = jsonString(*patch, "/metadata/name");
  auto written = runtime::updateStatus(client_, kube::resources::kPatch, ns, name, [&](Json& obj) {
    // Checked again on the fresh object: the environment may have changed.
    if (auto s = checkReporter(*user, req.namespace_(), obj, *pod); !s.ok()) return s;
    if (!obj["status"].is_object()) obj["status"] = Json::object();
    if (!obj["status"]["testReports"].is_object()) obj["status"]["testReports"] = Json::object();
    obj["status"]["testReports"][req.test()] = suites;
    return absl::OkStatus();
  });
  if (!written.ok()) {
    if (kube::isNotFound(written.status()))
      return absl::NotFoundError(absl::StrCat("patch ", ns, "/", name, " not found"));
    if (written.status().code() == absl::StatusCode::kPermissionDenied) return written.status();
    return absl::UnavailableError(absl::StrCat("cannot update the status: ", written.status().message()));
  }
  return resp;
}

void PatchgateApi::notify() {
  {
    std::lock_guard lock(mu_);
    ++version_;
  }
  cv_.notify_all();
}

void PatchgateApi::shutdown() {
  {
    std::lock_guard lock(mu_);
    shutdown_ = true;
  }
  cv_.notify_all();
}

}  // namespace patchgate::grpcapi
