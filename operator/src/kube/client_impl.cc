#include "kube/client_impl.h"

#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "kube/errors.h"

namespace patchgate::kube {

const char* toString(WatchEventType t) {
  switch (t) {
    case WatchEventType::kAdded: return "ADDED";
    case WatchEventType::kModified: return "MODIFIED";
    case WatchEventType::kDeleted: return "DELETED";
    case WatchEventType::kBookmark: return "BOOKMARK";
    case WatchEventType::kError: return "ERROR";
  }
  return "?";
}

std::string urlEncode(std::string_view value) { return percentEncode(value); }

namespace {

class Query {
 public:
  Query& add(std::string_view key, std::string_view value) {
    if (!value.empty()) parts_.push_back(absl::StrCat(std::string(key), "=", urlEncode(value)));
    return *this;
  }
  std::string apply(std::string path) const {
    if (parts_.empty()) return path;
    return absl::StrCat(path, "?", absl::StrJoin(parts_, "&"));
  }

 private:
  std::vector<std::string> parts_;
};

std::string contentTypeFor(PatchType t) {
  switch (t) {
    case PatchType::kJson: return "application/json-patch+json";
    case PatchType::kMerge: return "application/merge-patch+json";
    case PatchType::kStrategicMerge: return "application/strategic-merge-patch+json";
    case PatchType::kApply: return "application/apply-patch+yaml";
  }
  return "application/json";
}

}  // namespace

ClientImpl::ClientImpl(std::unique_ptr<Transport> transport, std::string fieldManager, double qps,
                       int burst)
    : transport_(std::move(transport)), fieldManager_(std::move(fieldManager)), qps_(qps),
      burst_(burst), tokens_(burst), last_(std::chrono::steady_clock::now()) {}

void ClientImpl::throttle() {
  if (qps_ <= 0) return;
  std::chrono::duration<double> wait{0};
  {
    std::lock_guard lock(mu_);
    auto now = std::chrono::steady_clock::now();
    tokens_ = std::min(burst_, tokens_ + std::chrono::duration<double>(now - last_).count() * qps_);
    last_ = now;
    tokens_ -= 1;
    if (tokens_ < 0) wait = std::chrono::duration<double>(-tokens_ / qps_);
  }
  if (wait.count() > 0) std::this_thread::sleep_for(wait);
}

absl::StatusOr<Json> ClientImpl::call(const std::string& verb, HttpRequest request) {
  throttle();
  request.timeout = requestTimeout_;
  auto start = std::chrono::steady_clock::now();
  auto resp = transport_->send(request);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (observer_) observer_(verb, resp.ok() ? resp->status : 0, secs);
  if (!resp.ok()) return resp.status();
  if (resp->status < 200 || resp->status > 299) return errorFromResponse(resp->status, resp->body);
  if (resp->body.empty()) return Json::object();
  return parseJson(resp->body);
}

absl::StatusOr<Json> ClientImpl::get(const ResourceType& rt, const std::string& ns,
                                     const std::string& name) {
  HttpRequest r;
  r.pathAndQuery = rt.path(ns, name);
  return call("GET", std::move(r));
}

absl::StatusOr<Json> ClientImpl::list(const ResourceType& rt, const std::string& ns,
                                      const ListOptions& o) {
  HttpRequest r;
  Query q;
  q.add("labelSelector", o.labelSelector).add("fieldSelector", o.fieldSelector);
  if (o.limit > 0) q.add("limit", std::to_string(o.limit));
  q.add("continue", o.continueToken).add("resourceVersion", o.resourceVersion);
  r.pathAndQuery = q.apply(rt.path(ns));
  return call("LIST", std::move(r));
}

absl::StatusOr<Json> ClientImpl::create(const ResourceType& rt, const std::string& ns,
                                        const Json& obj, const WriteOptions& o) {
  HttpRequest r;
  r.method = "POST";
  Query q;
  if (o.dryRun) q.add("dryRun", "All");
  q.add("fieldManager", o.fieldManager.empty() ? fieldManager_ : o.fieldManager);
  r.pathAndQuery = q.apply(rt.path(ns));
  r.body = obj.dump();
  r.contentType = "application/json";
  return call("POST", std::move(r));
}

absl::StatusOr<Json> ClientImpl::put(const ResourceType& rt, const std::string& ns,
                                     const Json& obj, const std::string& subresource,
                                     const WriteOptions& o) {
  HttpRequest r;
  r.method = "PUT";
  Query q;
  if (o.dryRun) q.add("dryRun", "All");
  q.add("fieldManager", o.fieldManager.empty() ? fieldManager_ : o.fieldManager);
  r.pathAndQuery = q.apply(rt.path(ns, jsonString(obj, "/metadata/name"), subresource));
  r.body = obj.dump();
  r.contentType = "application/json";
  return call("PUT", std::move(r));
}

absl::StatusOr<Json> ClientImpl::update(const ResourceType& rt, const std::string& ns,
                                        const Json& obj, const WriteOptions& o) {
  return put(rt, ns, obj, "", o);
}

absl::StatusOr<Json> ClientImpl::updateStatus(const ResourceType& rt, const std::string& ns,
                                              const Json& obj, const WriteOptions& o) {
  return put(rt, ns, obj, "status", o);
}

absl::StatusOr<Json> ClientImpl::patch(const ResourceType& rt, const std::string& ns,
                                       const std::string& name, PatchType type,
                                       const std::string& body, const PatchOptions& o) {
  HttpRequest r;
  r.method = "PATCH";
  Query q;
  if (o.dryRun) q.add("dryRun", "All");
  q.add("fieldManager", o.fieldManager.empty() ? fieldManager_ : o.fieldManager);
  if (o.force && type == PatchType::kApply) q.add("force", "true");
  r.pathAndQuery = q.apply(rt.path(ns, name, o.subresource));
  r.body = body;
  r.contentType = contentTypeFor(type);
  return call("PATCH", std::move(r));
}

absl::StatusOr<Json> ClientImpl::remove(const ResourceType& rt, const std::string& ns,
                                        const std::string& name, const DeleteOptions& o) {
  HttpRequest r;
  r.method = "DELETE";
  Json body = {{"apiVersion", "v1"}, {"kind", "DeleteOptions"}};
  if (!o.propagationPolicy.empty()) body["propagationPolicy"] = o.propagationPolicy;
  if (!o.preconditionUid.empty()) body["preconditions"]["uid"] = o.preconditionUid;
  if (!o.preconditionResourceVersion.empty())
    body["preconditions"]["resourceVersion"] = o.preconditionResourceVersion;
  if (o.gracePeriodSeconds) body["gracePeriodSeconds"] = *o.gracePeriodSeconds;
  if (o.dryRun) body["dryRun"] = Json::array({"All"});
  r.pathAndQuery = rt.path(ns, name);
  r.body = body.dump();
  r.contentType = "application/json";
  return call("DELETE", std::move(r));
}

absl::Status ClientImpl::watch(const ResourceType& rt, const std::string& ns,
                               const WatchOptions& o,
                               const std::function<bool(const WatchEvent&)>& onEvent,
                               std::stop_token stop) {
  HttpRequest r;
  Query q;
  q.add("watch", "true").add("labelSelector", o.labelSelector).add("fieldSelector", o.fieldSelector);
  q.add("resourceVersion", o.resourceVersion);
  if (o.allowBookmarks) q.add("allowWatchBookmarks", "true");
  if (o.timeoutSeconds > 0) q.add("timeoutSeconds", std::to_string(o.timeoutSeconds));
  r.pathAndQuery = q.apply(rt.path(ns));
  // The idle timeout must exceed the server's own stream timeout, or a quiet
  // watch would be cut by the client (cpprest's default is 30 s).
  r.timeout = std::chrono::seconds(o.timeoutSeconds > 0 ? o.timeoutSeconds + 30 : 3600);
  throttle();
  absl::Status decodeError;
  auto status = transport_->stream(
      r,
      [&](std::string_view line) {
        auto ev = decodeWatchEvent(line);
        if (!ev.ok()) {
          decodeError = ev.status();
          return false;
        }
        return onEvent(*ev);
      },
      stop);
  if (observer_) observer_("WATCH", status.ok() ? 200 : httpCode(status), 0);
  if (!status.ok()) return status;
  return decodeError;
}

absl::StatusOr<WatchEvent> decodeWatchEvent(std::string_view line) {
  auto parsed = parseJson(line);
  if (!parsed.ok()) return parsed.status();
  if (!parsed->is_object()) return absl::InvalidArgumentError("watch event: not a JSON object");
  auto type = parsed->find("type");
  const std::string t = type != parsed->end() && type->is_string() ? type->get<std::string>() : "";
  WatchEvent ev{WatchEventType::kError, Json()};
  if (auto obj = parsed->find("object"); obj != parsed->end()) ev.object = std::move(*obj);
  if (t == "ADDED") ev.type = WatchEventType::kAdded;
  else if (t == "MODIFIED") ev.type = WatchEventType::kModified;
  else if (t == "DELETED") ev.type = WatchEventType::kDeleted;
  else if (t == "BOOKMARK") ev.type = WatchEventType::kBookmark;
  return ev;
}

absl::StatusOr<Json> listAll(Client& client, const ResourceType& rt, const std::string& ns,
                             ListOptions options) {
  if (options.limit == 0) options.limit = 500;
  Json all;
  Json items = Json::array();
  while (true) {
    auto page = client.list(rt, ns, options);
    if (!page.ok()) return page.status();
    if (all.is_null()) {
      all = *page;
    }
    for (auto& item : (*page)["items"]) items.push_back(std::move(item));
    std::string next = jsonString(*page, "/metadata/continue");
    if (next.empty()) break;
    options.continueToken = next;
    options.resourceVersion.clear();  // the continue token pins the snapshot
  }
  all["items"] = std::move(items);
  if (all.contains("metadata")) all["metadata"].erase("continue");
  return all;
}

}  // namespace patchgate::kube
