#include "cli/patchctl_commands.h"

#include <algorithm>
#include <condition_variable>
#include <fstream>
#include <iostream>
#include <mutex>
#include <sstream>
#include <stop_token>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "api/v1alpha1/patch.h"
#include "cli/format.h"
#include "kube/errors.h"

namespace patchgate::cli {

namespace v1 = api::v1alpha1;
using kube::resources::kControllerRevision;
using kube::resources::kPatch;
using kube::resources::kPatchApproval;

const kube::ResourceType kSelfSubjectReview{"authentication.k8s.io", "v1", "selfsubjectreviews",
                                            "SelfSubjectReview", false};

namespace {

// Core v1 Events: the operator's recorder shows up there too, and
// involvedObject field selectors are served for them.
const kube::ResourceType kCoreEvent{"", "v1", "events", "Event", true};

// A 404 for the resource type itself (CRD not installed), not for an object.
bool isUnknownResource(const absl::Status& s) {
  return kube::isNotFound(s) && (absl::StrContains(s.message(), "could not find the requested resource") ||
                                 absl::StrContains(s.message(), "404 page not found"));
}

int fail(Env& env, const std::string& message) {
  env.err << "error: " << message << "\n";
  return kExitFailure;
}

int failStatus(Env& env, const absl::Status& s) { return fail(env, describeError(s, env.server)); }

// A Patch by name; NotFound reads "patch shop/x not found".
absl::StatusOr<Json> getPatch(Env& env, const std::string& name) {
  auto p = env.client.get(kPatch, env.ns, name);
  if (!p.ok() && kube::isNotFound(p.status()) && !isUnknownResource(p.status()))
    return absl::NotFoundError(absl::StrCat("patch ", env.ns, "/", name, " not found"));
  return p;
}

std::string identity(Env& env, absl::Status* error) {
  if (env.whoAmI) {
    auto who = env.whoAmI();
    if (!who.ok()) *error = who.status();
    return who.ok() ? *who : "";
  }
  auto review = selfSubjectReview(env.client);
  if (!review.ok()) {
    *error = review.status();
    return "";
  }
  env.reviewedGroups = review->groups;
  return review->user;
}

// The caller's groups; none when they cannot be told (fewer groups only
// mean fewer rights: the operator's checks fail safe).
std::vector<std::string> identityGroups(Env& env) {
  absl::StatusOr<std::vector<std::string>> groups = std::vector<std::string>{};
  if (env.whoAmIGroups) {
    groups = env.whoAmIGroups();
  } else if (!env.whoAmI) {
    absl::Status whoError;
    if (!env.reviewedGroups) identity(env, &whoError);
    if (!whoError.ok()) groups = whoError;
    else if (env.reviewedGroups) groups = *env.reviewedGroups;
  }
  if (!groups.ok()) {
    env.err << "note: cannot tell your groups (" << groups.status().message() << "); none recorded\n";
    return {};
  }
  return *groups;
}

std::string phaseOf(const Json& p) {
  std::string phase = jsonString(p, "/status/phase");
  return phase.empty() ? "Pending" : phase;
}

std::string randomSuffix(Random& random, int n) {
  static const char kChars[] = "bcdfghjklmnpqrstvwxz2456789";  // as Kubernetes' generateName
  std::string out;
  for (int i = 0; i < n; ++i)
    out += kChars[static_cast<size_t>(random.uniform01() * (sizeof(kChars) - 1)) % (sizeof(kChars) - 1)];
  return out;
}

void printObject(Env& env, const Json& obj, const std::string& format) {
  if (format == "json") env.out << forDisplay(obj).dump(4) << "\n";
  else env.out << toYaml(forDisplay(obj));
}

// ---- get --------------------------------------------------------------------

int cmdGet(const Invocation& inv, Env& env) {
  std::string format = inv.output.empty() ? "table" : inv.output;
  Json list;
  if (!inv.args.empty()) {
    auto p = getPatch(env, inv.args[0]);
    if (!p.ok()) return failStatus(env, p.status());
    if (format == "yaml" || format == "json") {
      printObject(env, *p, format);
      return kExitOk;
    }
    list = {{"items", Json::array({*p})}};
  } else {
    auto l = kube::listAll(env.client, kPatch, inv.allNamespaces ? "" : env.ns);
    if (!l.ok()) return failStatus(env, l.status());
    list = std::move(*l);
    if (format == "yaml" || format == "json") {
      Json out = {{"apiVersion", "v1"}, {"kind", "List"}, {"items", list.value("items", Json::array())}};
      for (auto& item : out["items"]) {
        item["apiVersion"] = v1::kApiVersion;
        item["kind"] = "Patch";
      }
      printObject(env, out, format);
      return kExitOk;
    }
  }
  const Json& items = list["items"];
  if (format == "name") {
    for (const auto& p : items) env.out << "patch.patchgate.dev/" << jsonString(p, "/metadata/name") << "\n";
    return kExitOk;
  }
  if (items.empty()) {
    env.err << (inv.allNamespaces ? std::string("No resources found\n")
                                  : absl::StrCat("No resources found in ", env.ns, " namespace.\n"));
    return kExitOk;
  }
  env.out << patchTable(list, inv.allNamespaces, format == "wide", env.clock.now());
  return kExitOk;
}

// ---- describe / diff / report -----------------------------------------------

std::string eventsSection(Env& env, const Json& patch) {
  kube::ListOptions lo;
  lo.fieldSelector = absl::StrCat("involvedObject.kind=Patch,involvedObject.name=",
                                  jsonString(patch, "/metadata/name"),
                                  ",involvedObject.uid=", jsonString(patch, "/metadata/uid"));
  auto events = env.client.list(kCoreEvent, env.ns, lo);
  if (!events.ok()) return "";  // not allowed to read events: leave them out
  std::vector<Json> items((*events)["items"].begin(), (*events)["items"].end());
  auto timeOf = [](const Json& e) {
    for (const char* p : {"/lastTimestamp", "/eventTime", "/metadata/creationTimestamp"})
      if (auto s = jsonString(e, p); !s.empty()) return s;
    return std::string();
  };
  std::sort(items.begin(), items.end(), [&](const Json& a, const Json& b) { return timeOf(a) < timeOf(b); });
  if (items.size() > 15) items.erase(items.begin(), items.end() - 15);
  std::string out = "Events:\n";
  if (items.empty()) return out + "  <none>\n";
  std::vector<std::vector<std::string>> rows = {{"TYPE", "REASON", "AGE", "MESSAGE"}};
  for (const auto& e : items) {
    std::string msg = e.value("message", e.value("note", ""));
    rows.push_back({e.value("type", ""), e.value("reason", ""), age(timeOf(e), env.clock.now()),
                    msg.substr(0, msg.find('\n'))});
  }
  for (const auto& line : absl::StrSplit(renderTable(rows), '\n', absl::SkipEmpty()))
    absl::StrAppend(&out, "  ", line, "\n");
  return out;
}

int cmdDescribe(const Invocation& inv, Env& env) {
  auto p = getPatch(env, inv.args[0]);
  if (!p.ok()) return failStatus(env, p.status());
  env.out << describePatch(*p, env.clock.now()) << eventsSection(env, *p);
  return kExitOk;
}

int cmdDiff(const Invocation& inv, Env& env) {
  auto p = getPatch(env, inv.args[0]);
  if (!p.ok()) return failStatus(env, p.status());
  std::string diff = jsonString(*p, "/status/diff");
  if (diff.empty()) {
    std::string msg = jsonString(*p, "/status/message");
    return fail(env, absl::StrCat("patch ", env.ns, "/", inv.args[0], " has no diff (", phaseOf(*p),
                                  msg.empty() ? std::string(": not validated yet") : ": " + msg, ")"));
  }
  env.out << diff;
  if (diff.back() != '\n') env.out << "\n";
  return kExitOk;
}

int cmdReport(const Invocation& inv, Env& env) {
  auto p = getPatch(env, inv.args[0]);
  if (!p.ok()) return failStatus(env, p.status());
  Json revision;
  if (std::string rev = jsonString(*p, "/status/revision/name"); !rev.empty()) {
    auto r = env.client.get(kControllerRevision, env.ns, rev);
    if (r.ok()) revision = std::move(*r);  // pruned or not readable: the report says less
  }
  env.out << reportMarkdown(*p, revision, env.clock.now());
  return kExitOk;
}

// ---- history / rollback -----------------------------------------------------

absl::StatusOr<Json> revisionsOf(Env& env, const WorkloadRef& ref) {
  kube::ListOptions lo;
  lo.labelSelector = absl::StrCat(v1::kLabelTarget, "=", ref.kind, ".", ref.name);
  auto list = kube::listAll(env.client, kControllerRevision, env.ns, lo);
  if (!list.ok()) return list.status();
  auto& items = (*list)["items"];
  std::sort(items.begin(), items.end(), [](const Json& a, const Json& b) {
    return a.value("revision", int64_t{0}) < b.value("revision", int64_t{0});
  });
  return list;
}

int cmdHistory(const Invocation& inv, Env& env) {
  auto ref = parseWorkloadRef(inv.args[0]);
  if (!ref.ok()) return fail(env, std::string(ref.status().message()));
  auto revs = revisionsOf(env, *ref);
  if (!revs.ok()) return failStatus(env, revs.status());
  if (inv.output == "yaml" || inv.output == "json") {
    printObject(env, {{"apiVersion", "v1"}, {"kind", "List"}, {"items", (*revs)["items"]}}, inv.output);
    return kExitOk;
  }
  if ((*revs)["items"].empty()) {
    env.err << "No revisions recorded for " << ref->kind << "/" << ref->name << " in namespace "
            << env.ns << " (a revision is recorded when a Patch is promoted).\n";
    return kExitOk;
  }
  auto patches = kube::listAll(env.client, kPatch, env.ns);
  env.out << historyTable(*revs, patches.ok() ? *patches : Json(), env.clock.now());
  return kExitOk;
}

int cmdRollback(const Invocation& inv, Env& env) {
  auto ref = parseWorkloadRef(inv.args[0]);
  if (!ref.ok()) return fail(env, std::string(ref.status().message()));
  auto revs = revisionsOf(env, *ref);
  if (!revs.ok()) return failStatus(env, revs.status());
  const Json& items = (*revs)["items"];
  if (items.empty())
    return fail(env, absl::StrCat("no revisions recorded for ", ref->kind, "/", ref->name, " in namespace ",
                                  env.ns, ": nothing to roll back to"));
  const Json* chosen = &items.back();
  if (inv.toRevision) {
    chosen = nullptr;
    std::vector<std::string> have;
    for (const auto& r : items) {
      have.push_back(std::to_string(r.value("revision", int64_t{0})));
      if (r.value("revision", int64_t{0}) == *inv.toRevision) chosen = &r;
    }
    if (!chosen)
      return fail(env, absl::StrCat("revision ", *inv.toRevision, " of ", ref->kind, "/", ref->name,
                                    " not found; recorded: ", absl::StrJoin(have, ", "), " (see `patchctl history ",
                                    ref->kind, "/", ref->name, "`)"));
  }
  int64_t number = chosen->value("revision", int64_t{0});
  Json patch = rollbackPatch(env.ns, ref->kind, ref->name, number, inv.ticket, inv.reason,
                             randomSuffix(env.random, 5), *chosen);
  // Every Patch names its author (admission requires it): you, with your
  // groups, whose rights to roll the workload back are checked.
  absl::Status whoError;
  std::string user = identity(env, &whoError);
  if (user.empty())
    return fail(env, absl::StrCat("a rollback names its author, and patchctl cannot tell who you are: ",
                                  describeError(whoError, env.server)));
  patch["spec"]["author"] = user;
  if (auto groups = identityGroups(env); !groups.empty()) patch["spec"]["authorGroups"] = groups;
  if (auto spec = v1::parseSpec(patch); !spec.ok())
    return fail(env, absl::StrCat("invalid rollback: ", spec.status().message()));
  auto created = env.client.create(kPatch, env.ns, patch);
  if (!created.ok()) return failStatus(env, created.status());
  std::string name = jsonString(*created, "/metadata/name");
  env.out << "patch " << env.ns << "/" << name << " created: rolls " << ref->kind << "/" << ref->name
          << " back to revision " << number << " (" << jsonString(*chosen, "/metadata/name") << ")\n";
  if (!inv.wait) {
    env.out << "follow it with: patchctl watch " << name << " -n " << env.ns << "\n";
    return kExitOk;
  }
  return followPatch(env, name, inv.timeout);
}

// ---- approve / reject -------------------------------------------------------

int cmdDecide(const Invocation& inv, Env& env, const std::string& decision) {
  const std::string& name = inv.args[0];
  auto p = getPatch(env, name);
  if (!p.ok()) return failStatus(env, p.status());
  std::string phase = phaseOf(*p);
  if (v1::phase::isTerminal(phase))
    return fail(env, absl::StrCat("patch ", env.ns, "/", name, " has already ended (", phase, ")"));
  absl::Status whoError;
  std::string user = identity(env, &whoError);
  if (user.empty())
    return fail(env, absl::StrCat("cannot tell who you are: ", describeError(whoError, env.server)));
  std::string author = jsonString(*p, "/spec/author");
  if (!author.empty() && author == user)
    return fail(env, absl::StrCat("you (", user, ") are the author of patch ", name,
                                  ": the author cannot ", decision, " their own patch"));
  bool required = jsonAt(*p, "/spec/promotion/approval/required") == Json(true);
  if (!required && decision == "approve")
    env.err << "note: patch " << name << " does not require approval; recording yours anyway\n";
  std::string base = name.substr(0, 40);
  Json approval = {
      {"apiVersion", v1::kApiVersion},
      {"kind", "PatchApproval"},
      {"metadata",
       {{"generateName", absl::StrCat(base, "-", decision, "-")},
        {"namespace", env.ns},
        {"labels", {{v1::kLabelPatch, name}}}}},
      {"spec",
       {{"patch", name},
        {"patchUID", jsonString(*p, "/metadata/uid")},
        {"patchGeneration", jsonInt(*p, "/metadata/generation", 1)},
        {"approver", user},
        {"decision", decision}}}};
  if (!inv.comment.empty()) approval["spec"]["comment"] = inv.comment;
  // For PatchPolicies that let groups approve (admission checks they are yours).
  if (auto groups = identityGroups(env); !groups.empty()) approval["spec"]["approverGroups"] = groups;
  auto created = env.client.create(kPatchApproval, env.ns, approval);
  if (!created.ok()) return failStatus(env, created.status());
  env.out << "patchapproval " << env.ns << "/" << jsonString(*created, "/metadata/name") << " created: "
          << user << (decision == "approve" ? " approves" : " rejects") << " patch " << name
          << " (generation " << jsonInt(*p, "/metadata/generation", 1) << ", now " << phase << ")\n";
  return kExitOk;
}

// ---- create -----------------------------------------------------------------

int cmdCreate(const Invocation& inv, Env& env) {
  std::string text;
  if (inv.filename == "-") {
    std::ostringstream s;
    s << std::cin.rdbuf();
    text = s.str();
  } else {
    std::ifstream f(inv.filename);
    if (!f) return fail(env, absl::StrCat("cannot read ", inv.filename));
    std::ostringstream s;
    s << f.rdbuf();
    text = s.str();
  }
  std::vector<Json> patches;
  for (const auto& doc : splitYamlDocuments(text)) {
    auto obj = v1::yamlToJson(doc);
    if (!obj.ok()) return fail(env, absl::StrCat(inv.filename, ": ", obj.status().message()));
    if (obj->is_null()) continue;
    if (!obj->is_object() || obj->value("kind", "") != "Patch" ||
        obj->value("apiVersion", "") != v1::kApiVersion)
      return fail(env, absl::StrCat(inv.filename, ": expected kind Patch (", v1::kApiVersion, "), got ",
                                    obj->is_object() ? obj->value("kind", "<no kind>") : "not an object"));
    patches.push_back(std::move(*obj));
  }
  if (patches.empty()) return fail(env, absl::StrCat(inv.filename, ": no Patch in it"));
  if (inv.wait && patches.size() > 1) return fail(env, "--wait follows one Patch; the file holds several");
  // Validate all before creating any.
  bool bad = false;
  std::string user;
  for (auto& p : patches) {
    std::string name = jsonString(p, "/metadata/name");
    std::string ns = jsonString(p, "/metadata/namespace");
    if (name.empty()) {
      env.err << "error: " << inv.filename << ": metadata.name: Required value\n";
      bad = true;
      continue;
    }
    if (!ns.empty() && !inv.ns.empty() && ns != inv.ns)
      return fail(env, absl::StrCat("the namespace from the file (", ns,
                                    ") does not match the namespace given with -n (", inv.ns, ")"));
    if (ns.empty()) p["metadata"]["namespace"] = env.ns;
    // Filled in before the spec is checked: every Patch names its author
    // (admission requires it), whose rights patchgate checks and who cannot
    // approve it.
    if (jsonString(p, "/spec/author").empty()) {
      if (user.empty()) {
        absl::Status whoError;
        user = identity(env, &whoError);
        if (user.empty())
          return fail(env, absl::StrCat("patch ", name, " must name its author, and ",
                                        "patchctl cannot tell who you are: ", describeError(whoError, env.server)));
      }
      p["spec"]["author"] = user;
      env.err << "note: spec.author set to " << user << " (patchgate checks that you may make the change; "
              << "the author cannot approve it)\n";
    }
    // The author's rights are checked with their groups: recorded when the
    // author is the caller (admission checks they are theirs).
    if (!jsonString(p, "/spec/author").empty() && !jsonAt(p, "/spec").contains("authorGroups")) {
      if (user.empty()) {
        absl::Status whoError;
        user = identity(env, &whoError);
      }
      if (!user.empty() && user == jsonString(p, "/spec/author")) {
        if (auto groups = identityGroups(env); !groups.empty()) p["spec"]["authorGroups"] = groups;
      }
    }
    auto spec = v1::parseSpec(p);
    if (!spec.ok()) {
      env.err << "error: patch " << name << " is invalid: " << spec.status().message() << "\n";
      bad = true;
      continue;
    }
  }
  if (bad) return kExitFailure;
  std::string last;
  for (const auto& p : patches) {
    std::string ns = jsonString(p, "/metadata/namespace");
    auto created = env.client.create(kPatch, ns, p);
    if (!created.ok()) return failStatus(env, created.status());
    last = jsonString(*created, "/metadata/name");
    env.out << "patch " << ns << "/" << last << " created\n";
  }
  if (!inv.wait) return kExitOk;
  Env scoped{env.client, jsonString(patches[0], "/metadata/namespace"), env.server, env.out, env.err,
             env.clock, env.random, env.whoAmI};
  return followPatch(scoped, last, inv.timeout);
}

}  // namespace

// ---- shared -----------------------------------------------------------------

absl::StatusOr<SelfReview> selfSubjectReview(kube::Client& client) {
  Json review = {{"apiVersion", "authentication.k8s.io/v1"}, {"kind", "SelfSubjectReview"}};
  auto r = client.create(kSelfSubjectReview, "", review);
  if (!r.ok()) {
    if (kube::isNotFound(r.status()))
      return absl::UnimplementedError(
          "the API server does not serve SelfSubjectReview (authentication.k8s.io/v1, Kubernetes 1.28+)");
    return r.status();
  }
  SelfReview out;
  out.user = jsonString(*r, "/status/userInfo/username");
  if (out.user.empty()) return absl::InternalError("SelfSubjectReview returned no user name");
  for (const auto& g : jsonAt(*r, "/status/userInfo/groups"))
    if (g.is_string()) out.groups.push_back(g.get<std::string>());
  return out;
}

absl::StatusOr<std::string> selfSubjectReviewUser(kube::Client& client) {
  auto review = selfSubjectReview(client);
  if (!review.ok()) return review.status();
  return review->user;
}

std::string describeError(const absl::Status& s, const std::string& server) {
  std::string msg(s.message());
  if (kube::reason(s) == "TransportError") {
    // "GET https://host/path: Failed to connect..." -> the cause only.
    std::string cause = msg;
    auto pos = msg.find(": ");
    if (pos != std::string::npos && msg.find("://") < pos) cause = msg.substr(pos + 2);
    return absl::StrCat("cannot reach the Kubernetes API at ", server, ": ", cause);
  }
  if (kube::isUnauthorized(s))
    return absl::StrCat("the Kubernetes API at ", server,
                        " did not accept your credentials (Unauthorized): check your kubeconfig or log in again");
  if (isUnknownResource(s))
    return absl::StrCat("the Kubernetes API at ", server,
                        " does not know this resource: is patchgate installed (its CRDs in crds/)?");
  if (kube::isForbidden(s)) return absl::StrCat("forbidden: ", msg);
  return msg;
}

std::vector<std::string> splitYamlDocuments(const std::string& text) {
  std::vector<std::string> docs(1);
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    absl::string_view trimmed = absl::StripTrailingAsciiWhitespace(line);
    if (trimmed == "---" || absl::StartsWith(trimmed, "--- ")) {
      docs.emplace_back();
      continue;
    }
    absl::StrAppend(&docs.back(), line, "\n");
  }
  docs.erase(std::remove_if(docs.begin(), docs.end(),
                            [](const std::string& d) {
                              for (absl::string_view l : absl::StrSplit(d, '\n')) {
                                l = absl::StripAsciiWhitespace(l);
                                if (!l.empty() && l[0] != '#') return false;
                              }
                              return true;
                            }),
             docs.end());
  return docs;
}

Json rollbackPatch(const std::string& ns, const std::string& kind, const std::string& name,
                   int64_t revision, const std::string& ticket, const std::string& reason,
                   const std::string& suffix, const Json& revisionObject) {
  std::string base = absl::AsciiStrToLower(name).substr(0, 63 - 10 - suffix.size());
  while (!base.empty() && (base.back() == '-' || base.back() == '.')) base.pop_back();
  std::string revName = jsonString(revisionObject, "/metadata/name");
  std::string recordedBy = jsonString(revisionObject, "/metadata/annotations/patchgate.dev~1patch-name");
  std::string description = absl::StrCat("roll ", kind, "/", name, " back to revision ", revision);
  if (!revName.empty()) absl::StrAppend(&description, " (", revName, ")");
  if (!recordedBy.empty())
    absl::StrAppend(&description, ": the state before patch ", recordedBy, " was promoted");
  absl::StrAppend(&description, "; requested with patchctl rollback");
  return {{"apiVersion", v1::kApiVersion},
          {"kind", "Patch"},
          {"metadata", {{"name", absl::StrCat("rollback-", base, "-", suffix)}, {"namespace", ns}}},
          {"spec",
           {{"target", {{"apiVersion", "apps/v1"}, {"kind", kind}, {"name", name}}},
            {"change", {{"rollbackTo", {{"revision", revision}}}}},
            {"ticket", ticket},
            {"rootCause", reason},
            {"description", description}}}};
}

int followPatch(Env& env, const std::string& name, std::chrono::seconds timeout) {
  auto current = getPatch(env, name);
  if (!current.ok()) return failStatus(env, current.status());
  ProgressPrinter printer;
  env.out << "patch " << env.ns << "/" << name << ": " << targetOf(*current) << ", ticket "
          << jsonString(*current, "/spec/ticket") << "\n";
  auto show = [&](const Json& p) {
    for (const auto& line : printer.update(p)) env.out << line << "\n";
    env.out.flush();
  };
  auto finish = [&](const Json& p) {
    std::string phase = phaseOf(p);
    env.out << "patch " << env.ns << "/" << name << " " << phase << ": "
            << jsonString(p, "/status/message") << "\n";
    if (phase == v1::phase::kSucceeded) return kExitOk;
    env.out << "details: patchctl describe " << name << " -n " << env.ns << "\n";
    return kExitFailure;
  };
  show(*current);
  if (v1::phase::isTerminal(phaseOf(*current))) return finish(*current);

  // The deadline stops the watch through its stop token.
  auto start = std::chrono::steady_clock::now();
  auto deadline = timeout.count() > 0 ? start + timeout : std::chrono::steady_clock::time_point::max();
  std::stop_source expired;
  std::jthread timer;
  if (timeout.count() > 0) {
    timer = std::jthread([&expired, deadline](std::stop_token done) {
      std::mutex mu;
      std::unique_lock lock(mu);
      std::condition_variable_any cv;
      cv.wait_until(lock, done, deadline, [] { return false; });
      if (!done.stop_requested()) expired.request_stop();
    });
  }

  std::string rv = jsonString(*current, "/metadata/resourceVersion");
  int failures = 0;
  while (true) {
    if (expired.stop_requested()) {
      env.out.flush();
      return fail(env, absl::StrCat("timed out after ", shortSeconds(timeout.count()), " waiting for patch ",
                                    env.ns, "/", name, " (", phaseOf(*current), ")"));
    }
    kube::WatchOptions wo;
    wo.fieldSelector = absl::StrCat("metadata.name=", name);
    wo.resourceVersion = rv;
    auto remaining = std::chrono::duration_cast<std::chrono::seconds>(deadline - std::chrono::steady_clock::now());
    wo.timeoutSeconds = std::clamp<int64_t>(remaining.count(), 1, 300);
    std::optional<int> exitCode;
    bool relist = false;
    absl::Status streamError;
    auto s = env.client.watch(
        kPatch, env.ns, wo,
        [&](const kube::WatchEvent& ev) {
          switch (ev.type) {
            case kube::WatchEventType::kBookmark:
              rv = jsonString(ev.object, "/metadata/resourceVersion");
              return true;
            case kube::WatchEventType::kError:
              if (jsonInt(ev.object, "/code") == 410) relist = true;
              else streamError = kube::apiError(static_cast<int>(jsonInt(ev.object, "/code", 500)),
                                                jsonString(ev.object, "/reason"),
                                                jsonString(ev.object, "/message"));
              return false;
            case kube::WatchEventType::kDeleted:
              env.out << "patch " << env.ns << "/" << name << " was deleted\n";
              exitCode = kExitFailure;
              return false;
            default:
              break;
          }
          if (jsonString(ev.object, "/metadata/name") != name) return true;
          *current = ev.object;
          rv = jsonString(ev.object, "/metadata/resourceVersion");
          show(ev.object);
          if (v1::phase::isTerminal(phaseOf(ev.object))) {
            exitCode = finish(ev.object);
            return false;
          }
          return true;
        },
        expired.get_token());
    if (exitCode) return *exitCode;
    if (s.ok() && !streamError.ok()) s = streamError;
    if (!s.ok() && kube::isGone(s)) relist = true;
    if (relist || !s.ok()) {
      if (!s.ok() && !relist) {
        if (!kube::isRetryable(s) || ++failures > 5) return failStatus(env, s);
        std::this_thread::sleep_for(std::chrono::seconds(1));
      }
      auto again = getPatch(env, name);
      if (!again.ok()) {
        if (kube::isRetryable(again.status()) && ++failures <= 5) continue;
        return failStatus(env, again.status());
      }
      *current = std::move(*again);
      rv = jsonString(*current, "/metadata/resourceVersion");
      show(*current);
      if (v1::phase::isTerminal(phaseOf(*current))) return finish(*current);
      continue;
    }
    failures = 0;  // the server closed a healthy stream: watch again from rv
  }
}

int run(const Invocation& inv, Env& env) {
  const std::string& c = inv.command;
  if (c == "get") return cmdGet(inv, env);
  if (c == "describe") return cmdDescribe(inv, env);
  if (c == "watch") return followPatch(env, inv.args[0], inv.timeout);
  if (c == "diff") return cmdDiff(inv, env);
  if (c == "history") return cmdHistory(inv, env);
  if (c == "rollback") return cmdRollback(inv, env);
  if (c == "approve") return cmdDecide(inv, env, "approve");
  if (c == "reject") return cmdDecide(inv, env, "reject");
  if (c == "create") return cmdCreate(inv, env);
  if (c == "report") return cmdReport(inv, env);
  env.err << "error: command \"" << c << "\" does not run against a cluster\n";
  return kExitUsage;
}

}  // namespace patchgate::cli
