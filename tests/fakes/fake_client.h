#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <stop_token>
#include <string>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "common/clock.h"
#include "kube/client.h"

namespace patchgate::testing {

// An in-memory API server behind kube::Client, for controller and runtime unit
// tests. It keeps the rules controllers rely on:
// - resourceVersion: one global counter (a string of an int), bumped on every
//   persisted write; a write that changes nothing is not persisted (no bump,
//   no event), as the API server does;
// - create sets uid, creationTimestamp (from the injected clock), generation 1;
//   409 AlreadyExists when the name is taken; generateName is honoured;
// - update/updateStatus: a non-empty metadata.resourceVersion that is not the
//   stored one is a 409 Conflict (empty means unconditional); 404 if missing;
// - every resource has a status subresource: writes to the main resource keep
//   the stored status, writes to "status" change nothing but status (see
//   setStatusSubresource() to turn that off per resource); create drops the
//   status then; generation bumps when anything but metadata/status changes,
//   and when deletion starts;
// - patch: kMerge is RFC 7386; kStrategicMerge is treated as a merge patch (no
//   patchMergeKey semantics: lists are replaced whole); kJson is RFC 6902 (a
//   failed "test" or an unappliable op is 422 Invalid, a malformed body 400);
//   kApply is a merge patch that creates the object when missing (no field
//   ownership). A metadata.resourceVersion in a merge patch is a precondition,
//   as on the real server;
// - remove: preconditions (uid, resourceVersion) give 409 Conflict; with
//   finalizers it only sets deletionTimestamp (and returns the object); the
//   object goes away once a later update/patch empties its finalizers. No
//   garbage collection: propagationPolicy is recorded, not acted upon;
// - list: labelSelector (`a=b`, `a==b`, `a!=b`, `a`, `!a`, `a in (x,y)`,
//   `a notin (x)`), fieldSelector equality on dotted paths
//   (`metadata.name=x`), limit/continue paging; items sorted by key;
// - watch: replays the events logged after the requested resourceVersion
//   (everything current as ADDED when it is "" or "0"), then blocks until new
//   events or `stop`. Label filters apply to each event's object (no synthetic
//   DELETED when an object stops matching).
// Error injection: failNext() for any verb, failNextWatch(), expireWatchesBefore()
// (410 as an ERROR event), interruptWatches() (open watches end with a status).
// Every call is recorded; calls() returns the log. Thread-safe.
class FakeClient final : public kube::Client {
 public:
  struct Call {
    std::string verb;      // get list create update updateStatus patch delete watch
    std::string resource;  // plural, e.g. "leases"
    std::string ns;
    std::string name;
    Json body;             // object written, parsed patch (string if not JSON), delete options
    std::string subresource;      // "status" for updateStatus and status patches
    std::string patchType;        // "json", "merge", "strategic", "apply"
    std::string resourceVersion;  // list/watch option
    std::string labelSelector;    // list/watch option
    std::string continueToken;    // list option
    int64_t limit = 0;            // list option
    bool dryRun = false;
  };

  FakeClient();  // timestamps from the wall clock
  explicit FakeClient(Clock& clock);
  ~FakeClient() override;

  // kube::Client
  absl::StatusOr<Json> get(const kube::ResourceType& rt, const std::string& ns,
                           const std::string& name) override;
  absl::StatusOr<Json> list(const kube::ResourceType& rt, const std::string& ns,
                            const kube::ListOptions& options = {}) override;
  absl::StatusOr<Json> create(const kube::ResourceType& rt, const std::string& ns,
                              const Json& obj, const kube::WriteOptions& options = {}) override;
  absl::StatusOr<Json> update(const kube::ResourceType& rt, const std::string& ns,
                              const Json& obj, const kube::WriteOptions& options = {}) override;
  absl::StatusOr<Json> updateStatus(const kube::ResourceType& rt, const std::string& ns,
                                    const Json& obj,
                                    const kube::WriteOptions& options = {}) override;
  absl::StatusOr<Json> patch(const kube::ResourceType& rt, const std::string& ns,
                             const std::string& name, kube::PatchType type,
                             const std::string& body,
                             const kube::PatchOptions& options = {}) override;
  absl::StatusOr<Json> remove(const kube::ResourceType& rt, const std::string& ns,
                              const std::string& name,
                              const kube::DeleteOptions& options = {}) override;
  absl::Status watch(const kube::ResourceType& rt, const std::string& ns,
                     const kube::WatchOptions& options,
                     const std::function<bool(const kube::WatchEvent&)>& onEvent,
                     std::stop_token stop) override;

  // --- Test setup: not recorded in calls(), never fails, ignores the rules.
  // Stores `obj` as given (status included), adding uid/creationTimestamp/
  // generation when missing and a fresh resourceVersion; emits ADDED or
  // MODIFIED. Namespace is taken from the object. Returns what was stored.
  Json seed(const kube::ResourceType& rt, Json obj);
  // Removes an object at once (finalizers ignored), emitting DELETED.
  void erase(const kube::ResourceType& rt, const std::string& ns, const std::string& name);
  // The stored object, or null JSON.
  Json object(const kube::ResourceType& rt, const std::string& ns, const std::string& name) const;
  std::vector<Json> objects(const kube::ResourceType& rt, const std::string& ns = {}) const;
  // Turns off status-subresource rules for a resource (updates write status).
  void setStatusSubresource(const kube::ResourceType& rt, bool enabled);
  // SubjectAccessReviews are answered, not stored: `reviewer` gets the
  // review's spec and returns its status ({"allowed": ..., "reason": ...}).
  // Without one, everything is allowed.
  void setAccessReviewer(std::function<Json(const Json& spec)> reviewer);

  // --- Error injection.
  // The next call of `verb` (optionally only for `resource`, plural) fails
  // with `status`, after being recorded. Queued: several failNext calls fail
  // that many calls, in order.
  void failNext(const std::string& verb, absl::Status status, const std::string& resource = {});
  void failNextWatch(absl::Status status) { failNext("watch", std::move(status)); }
  // The next watch answers 200 and sends one ERROR event carrying `status` (a
  // metav1.Status), then ends, as the API server does for errors it meets
  // after the stream started.
  void failNextWatchWithEvent(Json status);
  // Compaction: watches starting from a resourceVersion older than `rv` get
  // an ERROR event with a 410 Expired metav1.Status (the server's "too old
  // resource version"), as do open watches still positioned before it. `rv`
  // is capped at the latest resourceVersion, so that a fresh list can always
  // be watched from (else a relist would loop).
  void expireWatchesBefore(int64_t rv);
  // Ends the watches open now. With OK (the server closed the stream at its
  // timeout) they first deliver the events already logged, then return OK;
  // with an error (connection lost) they return it at once, dropping
  // undelivered events, as a broken connection does.
  void interruptWatches(absl::Status status = absl::OkStatus());
  // Logs a BOOKMARK for `rt` at a fresh resourceVersion (as if other kinds
  // had been written meanwhile) and returns that version.
  int64_t bookmark(const kube::ResourceType& rt);

  // --- Inspection.
  std::vector<Call> calls() const;
  std::vector<Call> calls(const std::string& verb, const std::string& resource = {}) const;
  void clearCalls();
  int64_t resourceVersion() const;  // the latest one handed out
  int activeWatches() const;
  // Waits (real time, bounded by `timeout`) until `pred` holds on the call
  // log; re-checked after every call. Returns whether it held.
  bool waitForCalls(const std::function<bool(const std::vector<Call>&)>& pred,
                    std::chrono::milliseconds timeout = std::chrono::seconds(5)) const;
  // Same for the number of open watches.
  bool waitForActiveWatches(int n,
                            std::chrono::milliseconds timeout = std::chrono::seconds(5)) const;

 private:
  using Key = std::tuple<std::string, std::string, std::string>;  // resource id, ns, name
  struct LoggedEvent {
    int64_t rv;
    std::string resourceId;
    std::string ns;
    kube::WatchEventType type;
    Json object;
  };

  static std::string resourceId(const kube::ResourceType& rt);
  std::string nsFor(const kube::ResourceType& rt, const std::string& ns, const Json& obj) const;
  absl::Status recordLocked(Call call);
  std::string nextRvLocked();
  void emitLocked(const kube::ResourceType& rt, kube::WatchEventType type, const Json& obj);
  bool hasStatusSubresourceLocked(const kube::ResourceType& rt) const;
  Json stampCreateLocked(const kube::ResourceType& rt, const std::string& ns, Json obj);
  // Stores `next` over `stored` (same key) applying metadata rules; deletes
  // when deletion finished. Returns what the server would answer.
  Json commitLocked(const kube::ResourceType& rt, const Key& key, const Json& stored, Json next,
                    bool statusWrite, bool dryRun);
  absl::StatusOr<Json> applyPatch(const Json& stored, kube::PatchType type,
                                  const std::string& body) const;

  Clock* clock_;
  std::unique_ptr<Clock> ownedClock_;

  mutable std::mutex mu_;
  mutable std::condition_variable_any cv_;  // calls, events, watch changes
  std::map<Key, Json> objects_;
  std::vector<LoggedEvent> events_;
  std::set<std::string> noStatusSubresource_;
  std::vector<Call> calls_;
  struct Failure {
    std::string verb, resource;
    absl::Status status;
  };
  std::deque<Failure> failures_;
  std::deque<Json> watchErrorEvents_;
  int64_t rv_ = 0;
  int64_t uidCounter_ = 0;
  int64_t nameCounter_ = 0;
  std::function<Json(const Json&)> accessReviewer_;
  int64_t expiredBefore_ = 0;
  uint64_t interruptEpoch_ = 0;
  absl::Status interruptStatus_;
  size_t interruptFlushUpTo_ = 0;  // events_ index an OK interrupt flushes to
  int activeWatches_ = 0;
};

// Label selector matching as the API server does it (equality, inequality,
// existence, in/notin). Exposed for tests. Errors on a malformed selector.
absl::StatusOr<bool> matchesLabelSelector(const std::string& selector, const Json& labels);

}  // namespace patchgate::testing
