// Tests: one Job per declared test in the environment namespace.
#include "absl/strings/str_cat.h"
#include "controllers/patch/conditions.h"
#include "controllers/patch/pass.h"
#include "controllers/patch/workload.h"
#include "kube/errors.h"

namespace patchgate::controllers::patch {

namespace v1 = api::v1alpha1;
using runtime::Action;

namespace {

std::string jobName(const std::string& test, int64_t attempt) {
  return absl::StrCat("pgt-", test, "-", attempt);
}

const Json& jobCondition(const Json& job, const std::string& type) {
  static const Json kNull;
  for (const auto& c : jsonAt(job, "/status/conditions"))
    if (c.value("type", "") == type && c.value("status", "") == "True") return c;
  return kNull;
}

}  // namespace

PatchReconciler::Step PatchReconciler::runTests(Pass& p) {
  if (v1::isConditionTrue(p.status.conditions, condition::kTestsPassed)) return std::nullopt;
  if (p.spec.tests.empty()) {
    setCondition(p, condition::kTestsPassed, true, reason::kTestsSkipped,
                 "no tests declared (allowed for rollbacks)");
    transition(p, v1::phase::kPromoting, reason::kTestsSkipped, "no tests declared; promoting");
    return std::nullopt;
  }
  std::string envNs = p.envNamespace();
  auto& results = p.status.tests;
  // A reference into `results`: valid until the next call.
  auto resultFor = [&](const std::string& name) -> v1::TestResult& {
    for (auto& r : results)
      if (r.name == name) return r;
    return results.emplace_back(v1::TestResult{.name = name, .result = "Pending", .attempts = 0});
  };
  std::string firstService;
  if (const auto& env = p.status.environment; env && env->services && !env->services->empty())
    firstService = env->services->front();

  int passed = 0;
  for (const auto& t : p.spec.tests) {
    v1::TestResult& r = resultFor(t.name);
    if (r.result == "Passed") {
      ++passed;
      continue;
    }
    if (r.result == "Failed") {
      std::string msg = absl::StrCat("test ", t.name, " failed after ", r.attempts,
                                     " attempt(s): ", r.message.value_or(""));
      setCondition(p, condition::kTestsPassed, false, reason::kTestFailed, msg);
      fail(p, reason::kTestFailed, msg + "; production untouched");
      return Action::await();
    }
    int64_t attempt = std::max<int64_t>(1, r.attempts);
    std::string name = jobName(t.name, attempt);
    auto job = client_.get(kube::resources::kJob, envNs, name);
    if (!job.ok() && !kube::isNotFound(job.status())) return job.status();
    if (!job.ok()) {
      Json env = Json::array({{{"name", "PATCHGATE_NAMESPACE"}, {"value", envNs}},
                              {{"name", "PATCHGATE_PATCH"}, {"value", p.name}},
                              {{"name", "PATCHGATE_PATCH_NAMESPACE"}, {"value", p.ns}},
                              {{"name", "PATCHGATE_TARGET_KIND"}, {"value", p.spec.target.kind}},
                              {{"name", "PATCHGATE_TARGET_NAME"}, {"value", p.spec.target.name}},
                              {{"name", "PATCHGATE_TARGET_SERVICE"}, {"value", firstService}},
                              {{"name", "PATCHGATE_TEST"}, {"value", t.name}},
                              {{"name", "PATCHGATE_ATTEMPT"}, {"value", std::to_string(attempt)}}});
      Json labels = ownedLabels(p);
      labels[v1::kLabelTest] = t.name;
      for (const auto& e : t.env) env.push_back(e);
      Json container = {{"name", "test"}, {"image", t.image}, {"imagePullPolicy", "IfNotPresent"},
                        {"env", env}, {"terminationMessagePolicy", "FallbackToLogsOnError"}};
      if (!t.command.empty()) container["command"] = t.command;
      if (!t.args.empty()) container["args"] = t.args;
      Json podSpec = {{"restartPolicy", "Never"}, {"containers", Json::array({container})}};
      auto withApi = addTestApi(p, podSpec);
      if (!withApi.ok()) return withApi.status();
      Json jobObj = {
          {"apiVersion", "batch/v1"}, {"kind", "Job"},
          {"metadata", {{"name", name}, {"namespace", envNs}, {"labels", labels}}},
          {"spec",
           {{"backoffLimit", 0},
            {"activeDeadlineSeconds", t.timeoutSeconds},
            {"template",
             {{"metadata", {{"labels", labels}}}, {"spec", podSpec}}}}}};
      auto created = client_.create(kube::resources::kJob, envNs, jobObj);
      if (!created.ok() && !kube::isAlreadyExists(created.status())) return created.status();
      r.attempts = attempt;
      r.result = "Running";
      r.job = name;
      if (!r.startedAt) r.startedAt = timeString(p.now);
      continue;
    }
    r.attempts = attempt;
    r.job = name;
    r.result = "Running";
    const Json& complete = jobCondition(*job, "Complete");
    const Json& failed = jobCondition(*job, "Failed");
    if (complete.is_null() && failed.is_null()) continue;
    // The container's termination message says what the test found.
    std::string message;
    kube::ListOptions lo;
    lo.labelSelector = "job-name=" + name;
    auto pods = client_.list(kube::resources::kPod, envNs, lo);
    if (pods.ok()) {
      for (const auto& pod : (*pods)["items"]) {
        for (const auto& cs : jsonAt(pod, "/status/containerStatuses")) {
          const Json& term = jsonAt(cs, "/state/terminated");
          if (term.is_object()) {
            message = term.value("message", "");
            if (message.empty()) message = absl::StrCat(term.value("reason", ""), " (exit code ",
                                                        term.value("exitCode", 0), ")");
          }
        }
      }
    }
    if (message.size() > 1024) message = message.substr(message.size() - 1024);
    while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) message.pop_back();
    r.finishedAt = timeString(p.now);
    double secs = secondsSince(r.startedAt.value_or(""), p.now);
    r.durationSeconds = static_cast<int64_t>(secs);
    if (!complete.is_null()) {
      r.result = "Passed";
      r.message = message.empty() ? "completed" : message;
      p.afterWrite.push_back([this, &p, name = t.name, secs, attempt] {
        metrics_->testFinished(name, "Passed", secs);
        recorder_.event(p.patch, runtime::EventType::kNormal, reason::kTestPassed, "Test",
                        absl::StrCat("test ", name, " passed (attempt ", attempt, ")"));
      });
      ++passed;
      continue;
    }
    std::string why = failed.value("reason", "") == "DeadlineExceeded"
                          ? absl::StrCat("timed out after ", t.timeoutSeconds, "s")
                          : (message.empty() ? failed.value("message", "failed") : message);
    r.message = why;
    p.afterWrite.push_back([this, name = t.name, secs] { metrics_->testFinished(name, "Failed", secs); });
    if (attempt <= t.retries) {
      r.attempts = attempt + 1;
      r.result = "Pending";
      p.afterWrite.push_back([this, &p, name = t.name, attempt, retries = t.retries, why] {
        recorder_.event(p.patch, runtime::EventType::kWarning, reason::kTestRetried, "Test",
                        absl::StrCat("test ", name, " failed (attempt ", attempt, " of ", retries + 1,
                                     "), retrying: ", why));
      });
      continue;
    }
    r.result = "Failed";
    std::string msg = absl::StrCat("test ", t.name, " failed after ", attempt, " attempt(s): ", why);
    setCondition(p, condition::kTestsPassed, false, reason::kTestFailed, msg);
    fail(p, reason::kTestFailed, msg + "; production untouched");
    return Action::await();
  }
  if (passed == static_cast<int>(p.spec.tests.size())) {
    setCondition(p, condition::kTestsPassed, true, reason::kTestsPassed,
                 absl::StrCat("all ", passed, " test(s) passed against the patched copy"));
    transition(p, p.spec.approvalRequired ? v1::phase::kAwaitingApproval : v1::phase::kPromoting,
               reason::kTestsPassed, absl::StrCat("all ", passed, " test(s) passed"));
    return std::nullopt;
  }
  setCondition(p, condition::kTestsPassed, false, reason::kTestsRunning,
               absl::StrCat(passed, " of ", p.spec.tests.size(), " test(s) passed so far"));
  p.status.message = absl::StrCat("running tests: ", passed, " of ", p.spec.tests.size(), " passed");
  return Action::requeue(options_.pollInterval);
}

}  // namespace patchgate::controllers::patch
