// PatchPolicy: parsing with the CRD's rules, merging strictest-first, applying
// to a Patch, and the schedule (windows, freezes, emergencies) on a simulated
// clock: `now` is an argument, so time zones and DST changes are tested at
// exact instants.
#include "api/v1alpha1/patch_policy.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace patchgate::api::v1alpha1 {
namespace {

using absl::Weekday;

absl::Time at(const std::string& rfc3339) {
  absl::Time t;
  std::string err;
  EXPECT_TRUE(absl::ParseTime(absl::RFC3339_full, rfc3339, &t, &err)) << rfc3339 << ": " << err;
  return t;
}

std::string utc(absl::Time t) { return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone()); }

int minuteOf(const char* hhmm) {
  return ((hhmm[0] - '0') * 10 + (hhmm[1] - '0')) * 60 + (hhmm[3] - '0') * 10 + (hhmm[4] - '0');
}

ChangeWindow window(std::vector<Weekday> days, const char* start, const char* end, std::string zone = "UTC") {
  ChangeWindow w;
  w.days = std::move(days);
  w.startMinute = minuteOf(start);
  w.endMinute = minuteOf(end);
  w.timeZone = std::move(zone);
  return w;
}

PolicySpec withWindows(std::vector<ChangeWindow> windows, std::string source = "shop/default") {
  PolicySpec p;
  p.source = std::move(source);
  p.changeWindows = std::move(windows);
  return p;
}

Freeze freeze(const std::string& start, const std::string& end, std::string reason) {
  return Freeze{at(start), at(end), std::move(reason)};
}

bool openAt(const PolicySpec& p, const std::string& t) { return evaluateSchedule(p, false, at(t)).open; }

// The instant the schedule opens next, "" when closed without a known next
// or open now.
std::string nextAfter(const PolicySpec& p, const std::string& t, bool emergency = false) {
  auto v = evaluateSchedule(p, emergency, at(t));
  return v.next ? utc(*v.next) : "";
}

const std::vector<Weekday> kWeekdays = {Weekday::monday, Weekday::tuesday, Weekday::wednesday,
                                        Weekday::thursday, Weekday::friday};

// ---------------------------------------------------------------- parsing

Json fullPolicy() {
  return Json::parse(R"({
    "apiVersion": "patchgate.dev/v1alpha1", "kind": "PatchPolicy",
    "metadata": {"name": "default", "namespace": "shop"},
    "spec": {
      "approval": {"required": true, "approvers": 2, "allowedUsers": ["bob", "carol"],
                   "allowedGroups": ["sre-leads"], "allowServiceAccounts": false,
                   "requiredFor": ["SecretChanges", "Emergencies"]},
      "changeWindows": [
        {"days": ["Mon", "Tue", "Wed", "Thu"], "start": "09:00", "end": "17:00", "timeZone": "Europe/Berlin"},
        {"days": ["Fri"], "start": "22:00", "end": "02:00"}],
      "freezes": [{"start": "2026-12-20T00:00:00Z", "end": "2027-01-04T00:00:00Z",
                   "reason": "year-end freeze"}],
      "emergency": {"bypassWindows": true, "bypassFreezes": true, "approvers": 2},
      "environment": {"cpu": "2", "memory": "4Gi", "storage": "10Gi", "pods": 20,
                      "maxLifetimeSeconds": 86400},
      "secrets": {"allowCopy": false}}})");
}

std::string parseError(const Json& policy) {
  auto p = parsePolicy(policy);
  if (p.ok()) return "";
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(p.status().message());
}

TEST(ParsePolicy, ReadsEveryField) {
  auto p = parsePolicy(fullPolicy());
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->source, "shop/default");
  EXPECT_TRUE(p->approval.required);
  EXPECT_EQ(p->approval.approvers, 2);
  EXPECT_EQ(p->approval.allowedUsers, (std::vector<std::string>{"bob", "carol"}));
  EXPECT_EQ(p->approval.allowedGroups, (std::vector<std::string>{"sre-leads"}));
  EXPECT_FALSE(p->approval.allowServiceAccounts);
  EXPECT_TRUE(p->approval.forSecretChanges);
  EXPECT_TRUE(p->approval.forEmergencies);
  EXPECT_TRUE(p->approval.rules.empty());  // a parsed policy's rule is its allowed* fields

  ASSERT_EQ(p->changeWindows.size(), 2u);
  const ChangeWindow& w = p->changeWindows[0];
  EXPECT_EQ(w.days,
            (std::vector<Weekday>{Weekday::monday, Weekday::tuesday, Weekday::wednesday, Weekday::thursday}));
  EXPECT_EQ(w.startMinute, 9 * 60);
  EXPECT_EQ(w.endMinute, 17 * 60);
  EXPECT_EQ(w.timeZone, "Europe/Berlin");
  EXPECT_EQ(w.group, 0);
  EXPECT_EQ(p->changeWindows[1].timeZone, "UTC");
  EXPECT_EQ(p->changeWindows[1].startMinute, 22 * 60);
  EXPECT_EQ(p->changeWindows[1].endMinute, 2 * 60);
  EXPECT_EQ(p->changeWindows[1].group, 0);

  ASSERT_EQ(p->freezes.size(), 1u);
  EXPECT_EQ(p->freezes[0].start, at("2026-12-20T00:00:00Z"));
  EXPECT_EQ(p->freezes[0].end, at("2027-01-04T00:00:00Z"));
  EXPECT_EQ(p->freezes[0].reason, "year-end freeze");

  EXPECT_TRUE(p->emergency.bypassWindows);
  EXPECT_TRUE(p->emergency.bypassFreezes);
  EXPECT_EQ(p->emergency.approvers, 2);
  EXPECT_EQ(p->environment.cpu, "2");
  EXPECT_EQ(p->environment.memory, "4Gi");
  EXPECT_EQ(p->environment.storage, "10Gi");
  EXPECT_EQ(p->environment.pods, 20);
  EXPECT_EQ(p->environment.maxLifetimeSeconds, 86400);
  EXPECT_FALSE(p->allowSecretCopy);
}

TEST(ParsePolicy, AnEmptySpecGetsTheDefaults) {
  auto p = parsePolicy(Json::parse(R"({"metadata": {"name": "x", "namespace": "ns"}, "spec": {}})"));
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_FALSE(p->approval.required);
  EXPECT_EQ(p->approval.approvers, 1);
  EXPECT_FALSE(p->approval.forSecretChanges);
  EXPECT_TRUE(p->changeWindows.empty());
  EXPECT_TRUE(p->freezes.empty());
  EXPECT_FALSE(p->emergency.bypassWindows);
  EXPECT_EQ(p->environment.pods, 0);
  EXPECT_TRUE(p->environment.cpu.empty());
  EXPECT_TRUE(p->allowSecretCopy);
  // Absent days: every day. Nulls count as absent, as the API server drops them.
  Json j = fullPolicy();
  j["spec"]["changeWindows"][0].erase("days");
  j["spec"]["approval"]["approvers"] = nullptr;
  p = parsePolicy(j);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_TRUE(p->changeWindows[0].days.empty());
  EXPECT_EQ(p->approval.approvers, 1);
}

TEST(ParsePolicy, FreezeTimesMayCarryAnOffset) {
  Json j = fullPolicy();
  j["spec"]["freezes"][0]["start"] = "2026-12-20T01:00:00+01:00";
  j["spec"]["freezes"][0]["end"] = "2027-01-03T19:00:00-05:00";
  auto p = parsePolicy(j);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->freezes[0].start, at("2026-12-20T00:00:00Z"));
  EXPECT_EQ(p->freezes[0].end, at("2027-01-04T00:00:00Z"));
}

TEST(ParsePolicy, QuantitiesMayBeIntegers) {
  Json j = fullPolicy();
  j["spec"]["environment"]["cpu"] = 4;
  auto p = parsePolicy(j);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->environment.cpu, "4");
}

TEST(ParsePolicy, DuplicateDaysCountOnce) {
  Json j = fullPolicy();
  j["spec"]["changeWindows"][0]["days"] = {"Fri", "Mon", "Fri"};
  auto p = parsePolicy(j);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->changeWindows[0].days, (std::vector<Weekday>{Weekday::monday, Weekday::friday}));
}

struct BadField {
  const char* pointer;  // JSON pointer under the full policy
  Json value;
  const char* error;  // the whole message, or a part of it
};

TEST(ParsePolicy, ErrorsNameTheFieldAsTheApiServerWould) {
  const std::vector<BadField> cases = {
      {"/spec/changeWindows/1/timeZone", "Mars/Olympus",
       "spec.changeWindows[1].timeZone: unknown time zone \"Mars/Olympus\""},
      // Names the loader would resolve against the machine or outside zoneinfo.
      {"/spec/changeWindows/0/timeZone", "localtime", "spec.changeWindows[0].timeZone: unknown time zone"},
      {"/spec/changeWindows/0/timeZone", "../../../etc/passwd",
       "spec.changeWindows[0].timeZone: unknown time zone"},
      {"/spec/changeWindows/0/timeZone", "/usr/share/zoneinfo/UTC",
       "spec.changeWindows[0].timeZone: unknown"},
      {"/spec/changeWindows/0/timeZone", "", "spec.changeWindows[0].timeZone: unknown time zone \"\""},
      {"/spec/changeWindows/0/start", "24:00", "spec.changeWindows[0].start: Invalid value: \"24:00\""},
      {"/spec/changeWindows/0/start", "9:00", "spec.changeWindows[0].start: Invalid value"},
      {"/spec/changeWindows/0/end", 1700,
       "spec.changeWindows[0].end: Invalid value: \"number\": must be of type string"},
      {"/spec/changeWindows/0/days/1", "Monday",
       "spec.changeWindows[0].days[1]: Unsupported value: \"Monday\""},
      {"/spec/approval/approvers", 0,
       "spec.approval.approvers: Invalid value: 0: must be greater than or equal to 1"},
      {"/spec/approval/approvers", 11,
       "spec.approval.approvers: Invalid value: 11: must be less than or equal to 10"},
      {"/spec/approval/approvers", "2",
       "spec.approval.approvers: Invalid value: \"string\": must be of type integer"},
      {"/spec/approval/approvers", 2.5,
       "spec.approval.approvers: Invalid value: \"number\": must be of type integer"},
      {"/spec/approval/required", "yes",
       "spec.approval.required: Invalid value: \"string\": must be of type boolean"},
      {"/spec/approval/requiredFor/0", "Always",
       "spec.approval.requiredFor[0]: Unsupported value: \"Always\""},
      {"/spec/approval/allowedUsers/1", "", "spec.approval.allowedUsers[1]: Invalid value"},
      {"/spec/approval/allowedGroups", "sre",
       "spec.approval.allowedGroups: Invalid value: \"string\": must be of type array"},
      {"/spec/freezes/0/end", "2026-12-19T00:00:00Z",
       "spec.freezes[0]: Invalid value: \"object\": a freeze must end after it starts"},
      {"/spec/freezes/0/end", "2026-12-20T00:00:00Z",
       "spec.freezes[0]: Invalid value: \"object\": a freeze must end after it starts"},
      {"/spec/freezes/0/start", "2026-12-20", "spec.freezes[0].start: Invalid value: \"2026-12-20\""},
      {"/spec/freezes/0/reason", "", "spec.freezes[0].reason: Required value"},
      {"/spec/emergency/approvers", 11, "spec.emergency.approvers: Invalid value: 11"},
      {"/spec/emergency/approvers", -1, "spec.emergency.approvers: Invalid value: -1"},
      {"/spec/environment/maxLifetimeSeconds", 59, "spec.environment.maxLifetimeSeconds: Invalid value: 59"},
      {"/spec/environment/maxLifetimeSeconds", 604801,
       "spec.environment.maxLifetimeSeconds: Invalid value: 604801"},
      {"/spec/environment/pods", 0, "spec.environment.pods: Invalid value: 0"},
      {"/spec/environment/cpu", "two",
       "spec.environment.cpu: Invalid value: \"two\": not a Kubernetes quantity"},
      {"/spec/environment/memory", "-1Gi",
       "spec.environment.memory: Invalid value: \"-1Gi\": must not be negative"},
      {"/spec/environment/storage", 1.5, "spec.environment.storage: Invalid value: \"number\""},
      {"/spec/secrets/allowCopy", "false",
       "spec.secrets.allowCopy: Invalid value: \"string\": must be of type boolean"},
      {"/spec/emergency", true, "spec.emergency: Invalid value: \"boolean\": must be of type object"},
  };
  for (const BadField& c : cases) {
    Json j = fullPolicy();
    j[Json::json_pointer(c.pointer)] = c.value;
    const std::string err = parseError(j);
    EXPECT_NE(err.find(c.error), std::string::npos)
        << c.pointer << " = " << c.value.dump() << ": got \"" << err << "\"";
  }
}

TEST(ParsePolicy, RequiredFieldsAndListLimits) {
  Json j = fullPolicy();
  j["spec"]["changeWindows"][0].erase("end");
  EXPECT_EQ(parseError(j), "spec.changeWindows[0].end: Required value");
  j = fullPolicy();
  j["spec"]["freezes"][0].erase("reason");
  EXPECT_EQ(parseError(j), "spec.freezes[0].reason: Required value");
  j = fullPolicy();
  j.erase("spec");
  EXPECT_EQ(parseError(j), "spec: Required value");

  j = fullPolicy();
  for (int i = 0; i < 18; ++i) j["spec"]["changeWindows"].push_back(j["spec"]["changeWindows"][0]);
  EXPECT_EQ(parseError(j), "");  // 21 is one too many, 20 is fine
  j["spec"]["changeWindows"].push_back(j["spec"]["changeWindows"][0]);
  EXPECT_EQ(parseError(j), "spec.changeWindows: Too many: 21: must have at most 20 items");
  j = fullPolicy();
  for (int i = 0; i < 50; ++i) j["spec"]["freezes"].push_back(j["spec"]["freezes"][0]);
  EXPECT_EQ(parseError(j), "spec.freezes: Too many: 51: must have at most 50 items");
  j = fullPolicy();
  j["spec"]["freezes"][0]["reason"] = std::string(1025, 'x');
  EXPECT_NE(parseError(j).find("spec.freezes[0].reason: Too long"), std::string::npos);
}

// ---------------------------------------------------------------- describeWindow

TEST(DescribeWindow, ReadsLikeAPerson) {
  EXPECT_EQ(describeWindow(window({Weekday::monday, Weekday::tuesday, Weekday::wednesday, Weekday::thursday},
                                  "09:00", "17:00", "Europe/Berlin")),
            "Mon-Thu 09:00-17:00 Europe/Berlin");
  EXPECT_EQ(describeWindow(window({Weekday::friday, Weekday::monday, Weekday::wednesday}, "09:00", "17:00")),
            "Mon,Wed,Fri 09:00-17:00 UTC");
  EXPECT_EQ(describeWindow(window({Weekday::saturday, Weekday::sunday}, "10:00", "12:30")),
            "Sat,Sun 10:00-12:30 UTC");
  EXPECT_EQ(describeWindow(window({Weekday::monday, Weekday::tuesday, Weekday::wednesday, Weekday::friday,
                                   Weekday::saturday, Weekday::sunday},
                                  "08:05", "09:00")),
            "Mon-Wed,Fri-Sun 08:05-09:00 UTC");
  EXPECT_EQ(describeWindow(window({}, "09:00", "17:00", "America/New_York")),
            "daily 09:00-17:00 America/New_York");
  EXPECT_EQ(describeWindow(window({Weekday::monday, Weekday::tuesday, Weekday::wednesday, Weekday::thursday,
                                   Weekday::friday, Weekday::saturday, Weekday::sunday},
                                  "09:00", "17:00")),
            "daily 09:00-17:00 UTC");
  EXPECT_EQ(describeWindow(window({Weekday::friday}, "22:00", "02:00")), "Fri 22:00-02:00(+1) UTC");
  EXPECT_EQ(describeWindow(window({Weekday::friday}, "18:00", "00:00")), "Fri 18:00-00:00(+1) UTC");
  EXPECT_EQ(describeWindow(window({Weekday::saturday}, "00:00", "00:00")), "Sat all day UTC");
  EXPECT_EQ(describeWindow(window({Weekday::saturday}, "09:00", "09:00")), "Sat 09:00-09:00(+1) UTC");
}

// ---------------------------------------------------------------- schedule: windows

TEST(Schedule, NoWindowsAndNoFreezesIsAlwaysOpen) {
  auto v = evaluateSchedule(PolicySpec{}, false, at("2026-06-01T03:00:00Z"));
  EXPECT_TRUE(v.open);
  EXPECT_FALSE(v.bypassed);
  EXPECT_EQ(v.why, "");
  EXPECT_FALSE(v.next);
}

// 09:00-17:00 Berlin is 08:00Z-16:00Z in winter (CET) and 07:00Z-15:00Z in
// summer (CEST): the window keeps its wall-clock hours across both changes.
TEST(Schedule, BerlinWindowKeepsItsLocalHoursAcrossDst) {
  PolicySpec p = withWindows({window(kWeekdays, "09:00", "17:00", "Europe/Berlin")});
  // Monday before the spring change (2026-03-29), CET.
  EXPECT_FALSE(openAt(p, "2026-03-23T07:59:59Z"));
  EXPECT_TRUE(openAt(p, "2026-03-23T08:00:00Z"));
  EXPECT_TRUE(openAt(p, "2026-03-23T15:59:59Z"));
  EXPECT_FALSE(openAt(p, "2026-03-23T16:00:00Z"));
  // Monday after it, CEST.
  EXPECT_FALSE(openAt(p, "2026-03-30T06:59:59Z"));
  EXPECT_TRUE(openAt(p, "2026-03-30T07:00:00Z"));
  EXPECT_TRUE(openAt(p, "2026-03-30T14:59:59Z"));
  EXPECT_FALSE(openAt(p, "2026-03-30T15:00:00Z"));
  // Friday before the autumn change (2026-10-25), still CEST; Monday after, CET.
  EXPECT_TRUE(openAt(p, "2026-10-23T07:00:00Z"));
  EXPECT_FALSE(openAt(p, "2026-10-26T07:00:00Z"));
  EXPECT_TRUE(openAt(p, "2026-10-26T08:00:00Z"));
  // Weekends are closed.
  EXPECT_FALSE(openAt(p, "2026-03-28T10:00:00Z"));
}

TEST(Schedule, NextOpeningLandsOnTheOtherSideOfADstChange) {
  PolicySpec p = withWindows({window(kWeekdays, "09:00", "17:00", "Europe/Berlin")});
  // Friday 17:00 CET; the next opening is Monday 09:00 CEST.
  auto v = evaluateSchedule(p, false, at("2026-03-27T16:00:00Z"));
  EXPECT_FALSE(v.open);
  ASSERT_TRUE(v.next);
  EXPECT_EQ(utc(*v.next), "2026-03-30T07:00:00Z");
  EXPECT_EQ(v.why,
            "outside change windows (Mon-Fri 09:00-17:00 Europe/Berlin); opens at 2026-03-30T07:00:00Z");
  // And back in October: Friday 17:00 CEST -> Monday 09:00 CET.
  EXPECT_EQ(nextAfter(p, "2026-10-23T15:00:00Z"), "2026-10-26T08:00:00Z");
  // Before the window on a weekday: the same day.
  EXPECT_EQ(nextAfter(p, "2026-03-30T05:12:34Z"), "2026-03-30T07:00:00Z");
}

// Berlin springs forward at 01:00Z on 2026-03-29: 02:00 CET becomes 03:00
// CEST. A window that starts in the skipped hour opens when the clock jumps.
TEST(Schedule, AWindowStartingInASkippedHourOpensWhenTheClockJumps) {
  PolicySpec p = withWindows({window({}, "02:30", "04:00", "Europe/Berlin")});
  EXPECT_FALSE(openAt(p, "2026-03-29T00:59:59Z"));  // 01:59:59 CET
  EXPECT_TRUE(openAt(p, "2026-03-29T01:00:00Z"));   // 03:00 CEST
  EXPECT_FALSE(openAt(p, "2026-03-29T02:00:00Z"));  // 04:00 CEST
  EXPECT_EQ(nextAfter(p, "2026-03-29T00:30:00Z"), "2026-03-29T01:00:00Z");
  // The day before and after, 02:30 local as usual.
  EXPECT_EQ(nextAfter(p, "2026-03-28T00:00:00Z"), "2026-03-28T01:30:00Z");  // CET
  EXPECT_EQ(nextAfter(p, "2026-03-29T03:00:00Z"), "2026-03-30T00:30:00Z");  // CEST
  // A window entirely inside the skipped hour does not occur that day.
  PolicySpec skipped = withWindows({window({Weekday::sunday}, "02:00", "02:59", "Europe/Berlin")});
  EXPECT_FALSE(openAt(skipped, "2026-03-29T01:00:00Z"));
  EXPECT_EQ(nextAfter(skipped, "2026-03-28T12:00:00Z"), "2026-04-05T00:00:00Z");  // the next Sunday, CEST
}

// Berlin falls back at 01:00Z on 2026-10-25: 03:00 CEST becomes 02:00 CET,
// so 02:00-03:00 local happens twice.
TEST(Schedule, BerlinRepeatedHourIsInsideTwice) {
  PolicySpec p = withWindows({window({Weekday::sunday}, "02:00", "03:00", "Europe/Berlin")});
  EXPECT_FALSE(openAt(p, "2026-10-24T23:59:59Z"));  // 01:59:59 CEST
  EXPECT_TRUE(openAt(p, "2026-10-25T00:00:00Z"));   // 02:00 CEST
  EXPECT_TRUE(openAt(p, "2026-10-25T00:59:59Z"));   // 02:59:59 CEST
  EXPECT_TRUE(openAt(p, "2026-10-25T01:00:00Z"));   // 02:00 CET, again
  EXPECT_TRUE(openAt(p, "2026-10-25T01:59:59Z"));   // 02:59:59 CET
  EXPECT_FALSE(openAt(p, "2026-10-25T02:00:00Z"));  // 03:00 CET
}

// New York springs forward at 07:00Z on 2026-03-08 (02:00 EST -> 03:00 EDT):
// a 01:30-03:00 window lasts 30 minutes that day.
TEST(Schedule, NewYorkSpringForwardShortensAWindow) {
  PolicySpec p = withWindows({window({}, "01:30", "03:00", "America/New_York")});
  EXPECT_FALSE(openAt(p, "2026-03-08T06:29:59Z"));                          // 01:29:59 EST
  EXPECT_TRUE(openAt(p, "2026-03-08T06:30:00Z"));                           // 01:30 EST
  EXPECT_TRUE(openAt(p, "2026-03-08T06:59:59Z"));                           // 01:59:59 EST
  EXPECT_FALSE(openAt(p, "2026-03-08T07:00:00Z"));                          // 03:00 EDT
  EXPECT_EQ(nextAfter(p, "2026-03-08T07:00:00Z"), "2026-03-09T05:30:00Z");  // 01:30 EDT
  EXPECT_EQ(nextAfter(p, "2026-03-07T12:00:00Z"), "2026-03-08T06:30:00Z");
}

// New York falls back at 06:00Z on 2026-11-01 (02:00 EDT -> 01:00 EST), so
// 01:00-02:00 local happens twice. Each instant is judged by its wall clock.
TEST(Schedule, NewYorkFallBackJudgesEachRepeatedMinuteByItsWallClock) {
  PolicySpec p = withWindows({window({}, "01:30", "03:00", "America/New_York")});
  EXPECT_FALSE(openAt(p, "2026-11-01T05:29:59Z"));  // 01:29:59 EDT
  EXPECT_TRUE(openAt(p, "2026-11-01T05:30:00Z"));   // 01:30 EDT
  EXPECT_TRUE(openAt(p, "2026-11-01T05:59:59Z"));   // 01:59:59 EDT
  EXPECT_FALSE(openAt(p, "2026-11-01T06:00:00Z"));  // 01:00 EST: before 01:30 again
  EXPECT_FALSE(openAt(p, "2026-11-01T06:29:59Z"));  // 01:29:59 EST
  EXPECT_TRUE(openAt(p, "2026-11-01T06:30:00Z"));   // 01:30 EST
  EXPECT_TRUE(openAt(p, "2026-11-01T07:59:59Z"));   // 02:59:59 EST
  EXPECT_FALSE(openAt(p, "2026-11-01T08:00:00Z"));  // 03:00 EST
  // Closed in the gap, it reopens at the second 01:30.
  EXPECT_EQ(nextAfter(p, "2026-11-01T06:00:00Z"), "2026-11-01T06:30:00Z");
  // Before the first 01:30, the first one is next.
  EXPECT_EQ(nextAfter(p, "2026-11-01T05:00:00Z"), "2026-11-01T05:30:00Z");

  // A window covering the whole repeated hour holds both instances.
  PolicySpec covering = withWindows({window({}, "00:30", "02:30", "America/New_York")});
  EXPECT_TRUE(openAt(covering, "2026-11-01T05:15:00Z"));  // 01:15 EDT
  EXPECT_TRUE(openAt(covering, "2026-11-01T06:15:00Z"));  // 01:15 EST
  EXPECT_TRUE(openAt(covering, "2026-11-01T07:29:59Z"));  // 02:29:59 EST
  EXPECT_FALSE(openAt(covering, "2026-11-01T07:30:00Z"));

  // A window ending in the repeated hour closes, then opens again when the
  // clock is set back: the next opening is the transition itself.
  PolicySpec ending = withWindows({window({}, "00:00", "01:30", "America/New_York")});
  EXPECT_TRUE(openAt(ending, "2026-11-01T05:29:59Z"));   // 01:29:59 EDT
  EXPECT_FALSE(openAt(ending, "2026-11-01T05:30:00Z"));  // 01:30 EDT
  EXPECT_EQ(nextAfter(ending, "2026-11-01T05:45:00Z"), "2026-11-01T06:00:00Z");
  EXPECT_TRUE(openAt(ending, "2026-11-01T06:00:00Z"));   // 01:00 EST
  EXPECT_FALSE(openAt(ending, "2026-11-01T06:30:00Z"));  // 01:30 EST
}

// Nepal is UTC+05:45 all year; Lord Howe Island is +10:30 in winter and
// +11:00 in summer (a 30-minute DST).
TEST(Schedule, NonHourOffsets) {
  PolicySpec kathmandu = withWindows({window({}, "09:00", "17:00", "Asia/Kathmandu")});
  EXPECT_FALSE(openAt(kathmandu, "2026-06-01T03:14:59Z"));
  EXPECT_TRUE(openAt(kathmandu, "2026-06-01T03:15:00Z"));
  EXPECT_TRUE(openAt(kathmandu, "2026-06-01T11:14:59Z"));
  EXPECT_FALSE(openAt(kathmandu, "2026-06-01T11:15:00Z"));
  EXPECT_EQ(nextAfter(kathmandu, "2026-06-01T12:00:00Z"), "2026-06-02T03:15:00Z");

  PolicySpec lordHowe = withWindows({window({}, "09:00", "17:00", "Australia/Lord_Howe")});
  EXPECT_FALSE(openAt(lordHowe, "2026-01-14T21:59:59Z"));  // summer, +11:00
  EXPECT_TRUE(openAt(lordHowe, "2026-01-14T22:00:00Z"));
  EXPECT_FALSE(openAt(lordHowe, "2026-06-14T22:29:59Z"));  // winter, +10:30
  EXPECT_TRUE(openAt(lordHowe, "2026-06-14T22:30:00Z"));
  // Summer time starts on 2026-10-04 at 02:00 local (15:30Z on the 3rd):
  // 02:00-02:30 is skipped. A window from 02:00 opens at the jump, at 02:30.
  PolicySpec jump = withWindows({window({Weekday::sunday}, "02:00", "03:00", "Australia/Lord_Howe")});
  EXPECT_EQ(nextAfter(jump, "2026-10-03T12:00:00Z"), "2026-10-03T15:30:00Z");
  EXPECT_TRUE(openAt(jump, "2026-10-03T15:30:00Z"));   // 02:30 +11:00
  EXPECT_FALSE(openAt(jump, "2026-10-03T16:00:00Z"));  // 03:00 +11:00
}

TEST(Schedule, AWindowPastMidnightBelongsToTheDayItOpens) {
  PolicySpec p = withWindows({window({Weekday::friday}, "22:00", "02:00")});
  EXPECT_FALSE(openAt(p, "2026-06-05T21:59:59Z"));  // Fri
  EXPECT_TRUE(openAt(p, "2026-06-05T22:00:00Z"));
  EXPECT_TRUE(openAt(p, "2026-06-06T01:59:59Z"));  // Sat, still Friday's window
  EXPECT_FALSE(openAt(p, "2026-06-06T02:00:00Z"));
  EXPECT_FALSE(openAt(p, "2026-06-05T01:00:00Z"));  // Fri early: that is Thursday's night
  EXPECT_FALSE(openAt(p, "2026-06-06T23:00:00Z"));  // Sat night
  EXPECT_EQ(nextAfter(p, "2026-06-06T02:00:00Z"), "2026-06-12T22:00:00Z");

  // In a zone: Fri 22:00 in Berlin (CEST) is 20:00Z.
  PolicySpec berlin = withWindows({window({Weekday::friday}, "22:00", "02:00", "Europe/Berlin")});
  EXPECT_TRUE(openAt(berlin, "2026-06-05T20:00:00Z"));
  EXPECT_TRUE(openAt(berlin, "2026-06-05T23:59:59Z"));  // Sat 01:59:59 local
  EXPECT_FALSE(openAt(berlin, "2026-06-06T00:00:00Z"));
}

TEST(Schedule, EqualStartAndEndIsAWholeDay) {
  PolicySpec p = withWindows({window({Weekday::saturday}, "00:00", "00:00")});
  EXPECT_FALSE(openAt(p, "2026-06-05T23:59:59Z"));  // Fri
  EXPECT_TRUE(openAt(p, "2026-06-06T00:00:00Z"));   // Sat
  EXPECT_TRUE(openAt(p, "2026-06-06T23:59:59Z"));
  EXPECT_FALSE(openAt(p, "2026-06-07T00:00:00Z"));  // Sun
  // From 09:00, the 24 hours to 09:00 the next day.
  PolicySpec nine = withWindows({window({Weekday::monday}, "09:00", "09:00")});
  EXPECT_FALSE(openAt(nine, "2026-06-01T08:59:59Z"));
  EXPECT_TRUE(openAt(nine, "2026-06-01T09:00:00Z"));
  EXPECT_TRUE(openAt(nine, "2026-06-02T08:59:59Z"));
  EXPECT_FALSE(openAt(nine, "2026-06-02T09:00:00Z"));
  // Every day, all day: always open.
  EXPECT_TRUE(openAt(withWindows({window({}, "00:00", "00:00", "Europe/Berlin")}), "2026-03-29T01:30:00Z"));
}

TEST(Schedule, WindowsOfOnePolicyAddUp) {
  PolicySpec p =
      withWindows({window({Weekday::monday}, "09:00", "12:00"), window({Weekday::monday}, "13:00", "17:00"),
                   window({Weekday::wednesday}, "09:00", "10:00", "America/New_York")});
  EXPECT_TRUE(openAt(p, "2026-06-01T10:00:00Z"));
  EXPECT_FALSE(openAt(p, "2026-06-01T12:30:00Z"));
  EXPECT_EQ(nextAfter(p, "2026-06-01T12:30:00Z"), "2026-06-01T13:00:00Z");
  EXPECT_EQ(nextAfter(p, "2026-06-01T17:00:00Z"), "2026-06-03T13:00:00Z");  // Wed 09:00 EDT
  auto v = evaluateSchedule(p, false, at("2026-06-02T10:00:00Z"));
  EXPECT_EQ(
      v.why,
      "outside change windows (Mon 09:00-12:00 UTC; Mon 13:00-17:00 UTC; Wed 09:00-10:00 America/New_York); "
      "opens at 2026-06-03T13:00:00Z");
}

TEST(Schedule, AWindowInAZoneThatDoesNotLoadNeverOpens) {
  PolicySpec p = withWindows({window({}, "00:00", "00:00", "Mars/Olympus")});
  auto v = evaluateSchedule(p, false, at("2026-06-01T10:00:00Z"));
  EXPECT_FALSE(v.open);
  EXPECT_FALSE(v.next);
  EXPECT_EQ(v.why, "outside change windows (daily all day Mars/Olympus)");
}

// ---------------------------------------------------------------- schedule: freezes

TEST(Schedule, AFreezeClosesInsideAWindowUntilItEnds) {
  PolicySpec p = withWindows({window({}, "09:00", "17:00")});
  p.freezes = {freeze("2026-12-20T00:00:00Z", "2027-01-04T00:00:00Z", "year-end freeze")};
  auto v = evaluateSchedule(p, false, at("2026-12-22T10:00:00Z"));
  EXPECT_FALSE(v.open);
  ASSERT_TRUE(v.next);
  EXPECT_EQ(utc(*v.next), "2027-01-04T09:00:00Z");  // the freeze ends at night: the window opens later
  EXPECT_EQ(v.why, "freeze until 2027-01-04T00:00:00Z: year-end freeze; opens at 2027-01-04T09:00:00Z");
  // Start inclusive, end exclusive.
  EXPECT_TRUE(openAt(p, "2026-12-19T16:59:59Z"));
  p.freezes = {freeze("2026-12-20T10:00:00Z", "2026-12-20T12:30:00Z", "db migration")};
  EXPECT_TRUE(openAt(p, "2026-12-20T09:59:59Z"));
  EXPECT_FALSE(openAt(p, "2026-12-20T10:00:00Z"));
  EXPECT_TRUE(openAt(p, "2026-12-20T12:30:00Z"));
  // A freeze ending inside a window: open at its end, to the second.
  EXPECT_EQ(nextAfter(p, "2026-12-20T11:00:00Z"), "2026-12-20T12:30:00Z");
}

TEST(Schedule, FreezesWithoutWindowsAndOverlappingFreezes) {
  PolicySpec p;
  p.freezes = {freeze("2027-01-01T00:00:00Z", "2027-01-10T00:00:00Z", "A"),
               freeze("2027-01-05T00:00:00Z", "2027-01-20T00:00:00Z", "B")};
  EXPECT_TRUE(openAt(p, "2026-12-31T23:59:59Z"));
  // Only A holds on the 3rd, but its end falls inside B: next is B's end.
  auto v = evaluateSchedule(p, false, at("2027-01-03T00:00:00Z"));
  EXPECT_FALSE(v.open);
  EXPECT_EQ(v.why, "freeze until 2027-01-10T00:00:00Z: A; opens at 2027-01-20T00:00:00Z");
  // Both hold on the 7th: the one that ends last is named.
  v = evaluateSchedule(p, false, at("2027-01-07T00:00:00Z"));
  EXPECT_EQ(v.why, "freeze until 2027-01-20T00:00:00Z: B; opens at 2027-01-20T00:00:00Z");
  EXPECT_TRUE(openAt(p, "2027-01-20T00:00:00Z"));
}

TEST(Schedule, NothingWithin366DaysHasNoNext) {
  PolicySpec p = withWindows({window({}, "09:00", "17:00")});
  p.freezes = {freeze("2026-01-01T00:00:00Z", "2028-01-01T00:00:00Z", "moratorium")};
  auto v = evaluateSchedule(p, false, at("2026-06-01T10:00:00Z"));
  EXPECT_FALSE(v.open);
  EXPECT_FALSE(v.next);
  EXPECT_EQ(v.why, "freeze until 2028-01-01T00:00:00Z: moratorium");
  // Just within reach.
  p.freezes = {freeze("2026-01-01T00:00:00Z", "2027-06-01T09:00:00Z", "moratorium")};
  EXPECT_EQ(nextAfter(p, "2026-06-01T10:00:00Z"), "2027-06-01T09:00:00Z");
  EXPECT_EQ(nextAfter(p, "2026-05-30T10:00:00Z"), "");  // 367 days ahead
}

// ---------------------------------------------------------------- schedule: emergencies

TEST(Schedule, AnEmergencyPassesWhatThePolicyLetsItPass) {
  PolicySpec p = withWindows({window(kWeekdays, "09:00", "17:00", "Europe/Berlin")});
  p.freezes = {freeze("2026-12-20T00:00:00Z", "2027-01-04T00:00:00Z", "year-end freeze")};
  const absl::Time inFreezeInWindow = at("2026-12-22T10:00:00Z");
  const absl::Time inFreezeAtNight = at("2026-12-22T23:00:00Z");

  // No bypass allowed: an emergency waits like anyone.
  EXPECT_FALSE(evaluateSchedule(p, true, inFreezeInWindow).open);

  p.emergency.bypassFreezes = true;
  auto v = evaluateSchedule(p, true, inFreezeInWindow);
  EXPECT_TRUE(v.open);
  EXPECT_TRUE(v.bypassed);
  EXPECT_EQ(v.why, "emergency: passes the freeze until 2027-01-04T00:00:00Z: year-end freeze");
  EXPECT_FALSE(v.next);
  // Not an emergency: still closed.
  EXPECT_FALSE(evaluateSchedule(p, false, inFreezeInWindow).open);
  // Passing the freeze does not pass the windows: it opens in the morning.
  v = evaluateSchedule(p, true, inFreezeAtNight);
  EXPECT_FALSE(v.open);
  EXPECT_EQ(v.why,
            "outside change windows (Mon-Fri 09:00-17:00 Europe/Berlin); opens at 2026-12-23T08:00:00Z");

  p.emergency.bypassWindows = true;
  v = evaluateSchedule(p, true, inFreezeAtNight);
  EXPECT_TRUE(v.open);
  EXPECT_TRUE(v.bypassed);
  EXPECT_EQ(v.why,
            "emergency: passes the freeze until 2027-01-04T00:00:00Z: year-end freeze and the change windows "
            "(Mon-Fri 09:00-17:00 Europe/Berlin)");
}

TEST(Schedule, AnEmergencyThatNeedsNoBypassIsNotBypassed) {
  PolicySpec p = withWindows({window({}, "09:00", "17:00")});
  p.emergency.bypassWindows = true;
  p.emergency.bypassFreezes = true;
  auto v = evaluateSchedule(p, true, at("2026-06-01T10:00:00Z"));
  EXPECT_TRUE(v.open);
  EXPECT_FALSE(v.bypassed);
  EXPECT_EQ(v.why, "");
  v = evaluateSchedule(p, true, at("2026-06-01T20:00:00Z"));
  EXPECT_TRUE(v.open);
  EXPECT_TRUE(v.bypassed);
  EXPECT_EQ(v.why, "emergency: passes the change windows (daily 09:00-17:00 UTC)");
}

TEST(Schedule, AnEmergencyPassingWindowsStillWaitsForTheFreezeToEnd) {
  PolicySpec p = withWindows({window({}, "09:00", "17:00")});
  p.freezes = {freeze("2026-12-20T00:00:00Z", "2027-01-04T00:00:00Z", "year-end freeze")};
  p.emergency.bypassWindows = true;
  auto v = evaluateSchedule(p, true, at("2026-12-22T23:00:00Z"));
  EXPECT_FALSE(v.open);
  ASSERT_TRUE(v.next);
  EXPECT_EQ(utc(*v.next), "2027-01-04T00:00:00Z");  // at night, windows do not apply to it
  EXPECT_EQ(v.why, "freeze until 2027-01-04T00:00:00Z: year-end freeze; opens at 2027-01-04T00:00:00Z");
  // Without the emergency, the window's opening.
  EXPECT_EQ(nextAfter(p, "2026-12-22T23:00:00Z"), "2027-01-04T09:00:00Z");
}

// ---------------------------------------------------------------- merging

TEST(MergePolicies, WindowsOfDifferentPoliciesMustAllHold) {
  // 09:00-17:00 Berlin on weekdays and 08:00-12:00 New York every day.
  PolicySpec berlin = withWindows({window(kWeekdays, "09:00", "17:00", "Europe/Berlin")}, "cluster/default");
  PolicySpec newYork = withWindows({window({}, "08:00", "12:00", "America/New_York")}, "shop/us");
  PolicySpec m = mergePolicies({berlin, newYork});
  ASSERT_EQ(m.changeWindows.size(), 2u);
  EXPECT_NE(m.changeWindows[0].group, m.changeWindows[1].group);

  // In winter both are on standard time: 08:00Z-16:00Z and 13:00Z-17:00Z.
  EXPECT_FALSE(openAt(m, "2026-02-02T12:59:59Z"));
  EXPECT_TRUE(openAt(m, "2026-02-02T13:00:00Z"));
  EXPECT_TRUE(openAt(m, "2026-02-02T15:59:59Z"));
  EXPECT_FALSE(openAt(m, "2026-02-02T16:00:00Z"));
  // Why names only the policy whose windows it is outside of.
  auto v = evaluateSchedule(m, false, at("2026-02-02T10:00:00Z"));
  EXPECT_EQ(v.why,
            "outside change windows (daily 08:00-12:00 America/New_York); opens at 2026-02-02T13:00:00Z");
  v = evaluateSchedule(m, false, at("2026-02-02T16:30:00Z"));
  EXPECT_EQ(v.why,
            "outside change windows (Mon-Fri 09:00-17:00 Europe/Berlin); opens at 2026-02-03T13:00:00Z");
  v = evaluateSchedule(m, false, at("2026-02-02T20:00:00Z"));
  EXPECT_EQ(
      v.why,
      "outside change windows (Mon-Fri 09:00-17:00 Europe/Berlin) and (daily 08:00-12:00 America/New_York); "
      "opens at 2026-02-03T13:00:00Z");
  // Friday evening: Monday.
  EXPECT_EQ(nextAfter(m, "2026-02-06T16:00:00Z"), "2026-02-09T13:00:00Z");
  // New York moves to summer time three weeks before Berlin: 12:00Z-16:00Z.
  EXPECT_EQ(nextAfter(m, "2026-03-10T10:00:00Z"), "2026-03-10T12:00:00Z");
  EXPECT_TRUE(openAt(m, "2026-03-10T12:00:00Z"));
  // Both on summer time: 07:00Z-15:00Z and 12:00Z-16:00Z.
  EXPECT_TRUE(openAt(m, "2026-04-06T14:59:59Z"));
  EXPECT_FALSE(openAt(m, "2026-04-06T15:00:00Z"));
}

TEST(MergePolicies, DisjointWindowsNeverOpen) {
  PolicySpec m = mergePolicies({withWindows({window({}, "09:00", "10:00")}, "a/a"),
                                withWindows({window({}, "11:00", "12:00")}, "b/b")});
  auto v = evaluateSchedule(m, false, at("2026-06-01T10:30:00Z"));
  EXPECT_FALSE(v.open);
  EXPECT_FALSE(v.next);
  EXPECT_EQ(v.why, "outside change windows (daily 09:00-10:00 UTC) and (daily 11:00-12:00 UTC)");
}

TEST(MergePolicies, APolicyWithoutWindowsDoesNotNarrowThem) {
  PolicySpec windows = withWindows({window({}, "09:00", "17:00")});
  PolicySpec none;
  none.source = "cluster/default";
  PolicySpec m = mergePolicies({none, windows});
  EXPECT_TRUE(openAt(m, "2026-06-01T10:00:00Z"));
  EXPECT_FALSE(openAt(m, "2026-06-01T18:00:00Z"));
}

TEST(MergePolicies, MergingAgainKeepsTheGroupsApart) {
  PolicySpec a = withWindows({window({}, "09:00", "12:00"), window({}, "14:00", "16:00")}, "a/a");
  PolicySpec b = withWindows({window({}, "10:00", "15:00")}, "b/b");
  PolicySpec c = withWindows({window({}, "11:00", "18:00")}, "c/c");
  PolicySpec once = mergePolicies({a, b, c});
  PolicySpec twice = mergePolicies({mergePolicies({a, b}), c});
  ASSERT_EQ(once.changeWindows.size(), 4u);
  ASSERT_EQ(twice.changeWindows.size(), 4u);
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(once.changeWindows[i].group, twice.changeWindows[i].group) << i;
  EXPECT_EQ(once.changeWindows[0].group, once.changeWindows[1].group);  // a's two windows stay one group
  EXPECT_EQ(once.source, "a/a, b/b, c/c");
  EXPECT_EQ(twice.source, "a/a, b/b, c/c");
  // 11:00-12:00 and 14:00-15:00.
  EXPECT_FALSE(openAt(once, "2026-06-01T10:30:00Z"));
  EXPECT_TRUE(openAt(once, "2026-06-01T11:30:00Z"));
  EXPECT_FALSE(openAt(once, "2026-06-01T13:00:00Z"));
  EXPECT_EQ(nextAfter(once, "2026-06-01T12:00:00Z"), "2026-06-01T14:00:00Z");
  EXPECT_EQ(nextAfter(twice, "2026-06-01T15:00:00Z"), "2026-06-02T11:00:00Z");
}

TEST(MergePolicies, TheStrictestOfEverything) {
  auto shop = parsePolicy(fullPolicy());
  ASSERT_TRUE(shop.ok()) << shop.status();
  auto cluster = parsePolicy(Json::parse(R"({
    "metadata": {"name": "default", "namespace": "patchgate-system"},
    "spec": {
      "approval": {"approvers": 3, "allowServiceAccounts": true},
      "freezes": [{"start": "2026-11-26T00:00:00Z", "end": "2026-11-28T00:00:00Z", "reason": "Black Friday"}],
      "emergency": {"bypassWindows": true, "bypassFreezes": false, "approvers": 3},
      "environment": {"cpu": "500m", "memory": "5G", "pods": 30, "maxLifetimeSeconds": 3600}}})"));
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  PolicySpec m = mergePolicies({*cluster, *shop});
  EXPECT_EQ(m.source, "patchgate-system/default, shop/default");
  EXPECT_TRUE(m.approval.required);
  EXPECT_EQ(m.approval.approvers, 3);
  EXPECT_TRUE(m.approval.forSecretChanges);
  EXPECT_TRUE(m.approval.forEmergencies);
  EXPECT_FALSE(m.approval.allowServiceAccounts);
  EXPECT_TRUE(m.approval.allowedUsers.empty());  // moved into rules
  ASSERT_EQ(m.approval.rules.size(), 2u);
  EXPECT_EQ(m.approval.rules[1].source, "shop/default");
  EXPECT_EQ(m.approval.rules[1].users, (std::vector<std::string>{"bob", "carol"}));
  EXPECT_EQ(m.changeWindows.size(), 2u);
  EXPECT_EQ(m.freezes.size(), 2u);
  EXPECT_TRUE(m.emergency.bypassWindows);
  EXPECT_FALSE(m.emergency.bypassFreezes);
  EXPECT_EQ(m.emergency.approvers, 3);
  EXPECT_EQ(m.environment.cpu, "500m");
  EXPECT_EQ(m.environment.memory, "4Gi");  // 4.29e9 < 5e9
  EXPECT_EQ(m.environment.storage, "10Gi");
  EXPECT_EQ(m.environment.pods, 20);
  EXPECT_EQ(m.environment.maxLifetimeSeconds, 3600);
  EXPECT_FALSE(m.allowSecretCopy);
}

TEST(MergePolicies, NothingToMergeIsNoPolicy) {
  PolicySpec m = mergePolicies({});
  EXPECT_FALSE(m.approval.required);
  EXPECT_TRUE(m.allowSecretCopy);
  EXPECT_TRUE(evaluateSchedule(m, false, at("2026-06-01T10:00:00Z")).open);
  EXPECT_TRUE(mayApprove(m, "anyone", {}));
}

TEST(MergePolicies, AQuantityThatDoesNotParseLosesToOneThatDoes) {
  PolicySpec a, b;
  a.environment.cpu = "lots";
  b.environment.cpu = "4";
  EXPECT_EQ(mergePolicies({a, b}).environment.cpu, "4");
  EXPECT_EQ(mergePolicies({b, a}).environment.cpu, "4");
}

// ---------------------------------------------------------------- who may approve

PolicySpec approvers(std::string source, std::vector<std::string> users, std::vector<std::string> groups,
                     bool serviceAccounts = false) {
  PolicySpec p;
  p.source = std::move(source);
  p.approval.allowedUsers = std::move(users);
  p.approval.allowedGroups = std::move(groups);
  p.approval.allowServiceAccounts = serviceAccounts;
  return p;
}

TEST(MayApprove, WithinOnePolicyUsersOrGroups) {
  PolicySpec p = approvers("shop/default", {"bob", "carol"}, {"sre-leads"});
  EXPECT_TRUE(mayApprove(p, "bob", {}));
  EXPECT_TRUE(mayApprove(p, "erin", {"devs", "sre-leads"}));
  std::string why;
  EXPECT_FALSE(mayApprove(p, "erin", {"devs"}, &why));
  EXPECT_EQ(why, "erin may not approve: policy shop/default allows only bob, carol, or members of sre-leads");
  // No lists: anyone (the author is the caller's to refuse).
  EXPECT_TRUE(mayApprove(approvers("shop/open", {}, {}), "erin", {}));
}

TEST(MayApprove, AcrossPoliciesEveryRule) {
  PolicySpec m = mergePolicies({approvers("shop/default", {"bob", "carol"}, {"sre-leads"}),
                                approvers("cluster/default", {"carol", "dave"}, {})});
  EXPECT_TRUE(mayApprove(m, "carol", {}));
  EXPECT_TRUE(mayApprove(m, "dave", {"sre-leads"}));  // a group in one, a name in the other
  std::string why;
  EXPECT_FALSE(mayApprove(m, "bob", {"sre-leads"}, &why));
  EXPECT_EQ(why, "bob may not approve: policy cluster/default allows only carol, dave");
  EXPECT_FALSE(mayApprove(m, "dave", {}, &why));
  EXPECT_EQ(why, "dave may not approve: policy shop/default allows only bob, carol, or members of sre-leads");
  // A policy without lists narrows nothing.
  PolicySpec withOpen = mergePolicies({m, approvers("ns/open", {}, {})});
  EXPECT_TRUE(mayApprove(withOpen, "carol", {}));
}

TEST(MayApprove, AnIntersectionThatLeavesNobodyMeansNobody) {
  PolicySpec m = mergePolicies({approvers("a/a", {"bob"}, {}), approvers("b/b", {"carol"}, {})});
  EXPECT_FALSE(mayApprove(m, "bob", {}));
  EXPECT_FALSE(mayApprove(m, "carol", {}));
  EXPECT_FALSE(mayApprove(m, "erin", {}));
  PolicySpec groups = mergePolicies({approvers("a/a", {}, {"x"}), approvers("b/b", {}, {"y"})});
  EXPECT_FALSE(mayApprove(groups, "erin", {"x"}));
  EXPECT_TRUE(mayApprove(groups, "erin", {"x", "y"}));  // a member of both passes both
}

TEST(MayApprove, ServiceAccountsOnlyWhenEveryPolicyAllowsThem) {
  const std::string bot = "system:serviceaccount:ci:deployer";
  std::string why;
  EXPECT_FALSE(mayApprove(approvers("shop/default", {}, {}), bot, {}, &why));
  EXPECT_EQ(why,
            "system:serviceaccount:ci:deployer may not approve: policy shop/default does not allow "
            "ServiceAccounts");
  EXPECT_TRUE(mayApprove(approvers("shop/default", {}, {}, true), bot, {}));
  PolicySpec m = mergePolicies({approvers("a/a", {}, {}, true), approvers("b/b", {}, {}, false)});
  EXPECT_FALSE(mayApprove(m, bot, {}, &why));
  EXPECT_NE(why.find("policy b/b does not allow ServiceAccounts"), std::string::npos) << why;
  EXPECT_TRUE(mayApprove(m, "bob", {}));
  // Allowed, a ServiceAccount still has to be named (or in a group).
  PolicySpec named = approvers("a/a", {"alice"}, {}, true);
  EXPECT_FALSE(mayApprove(named, bot, {"system:serviceaccounts"}));
  named.approval.allowedUsers.push_back(bot);
  EXPECT_TRUE(mayApprove(named, bot, {}));
}

// ---------------------------------------------------------------- quantities

TEST(CompareQuantity, ComparesExactly) {
  struct Case {
    const char* a;
    const char* b;
    int want;
  };
  const std::vector<Case> cases = {
      {"500m", "1", -1},
      {"1", "1Ki", -1},
      {"1Ki", "1M", -1},
      {"1000m", "1", 0},
      {"1k", "1000", 0},
      {"1e3", "1k", 0},
      {"1E3", "1000", 0},
      {"1E", "1e18", 0},  // E alone is exa
      {"1Ki", "1024", 0},
      {"1.5Gi", "1536Mi", 0},
      {"0.5", "500m", 0},
      {".5", "0.5", 0},
      {"5.", "5", 0},
      {"1n", "1u", -1},
      {"100u", "0.1m", 0},
      {"128974848", "129e6", -1},
      {"129e6", "129M", 0},
      {"1Ei", "1E", 1},
      {"4Gi", "5G", -1},
      {"2e-3", "2m", 0},
      {"1e+3", "1k", 0},
      {"0.001", "1m", 0},
      {"007", "7", 0},
      {"0", "0m", 0},
      {"0", "-0", 0},
      {"+1", "1", 0},
      {"-1", "0", -1},
      {"-2", "-1", -1},
      {"-1Ki", "-1k", -1},
      // Beyond int64 and long double's precision.
      {"123456789012345678901234567890", "123456789012345678901234567891", -1},
      {"8Ei", "9223372036854775808", 0},
      {"1e999999999", "1e1000000000", -1},
  };
  for (const Case& c : cases) {
    auto got = compareQuantity(c.a, c.b);
    ASSERT_TRUE(got) << c.a << " vs " << c.b;
    EXPECT_EQ(*got, c.want) << c.a << " vs " << c.b;
    auto back = compareQuantity(c.b, c.a);
    ASSERT_TRUE(back);
    EXPECT_EQ(*back, -c.want) << c.b << " vs " << c.a;
  }
}

TEST(CompareQuantity, NotAQuantity) {
  for (const char* bad : {"", "m", "1X", "e3", "1e", "1e+", "1ki", "1Ki2", "1.2.3", "1 Gi", "--1",
                          "1e10000000000", "0x10", "Gi"}) {
    EXPECT_FALSE(compareQuantity(bad, "1")) << bad;
    EXPECT_FALSE(compareQuantity("1", bad)) << bad;
  }
}

// ---------------------------------------------------------------- applying to a Patch

PatchSpec basicPatch() {
  PatchSpec s;
  s.author = "alice";
  s.secrets = "copy";  // whatever the default, the policy's effect shows
  return s;
}

TEST(ApplyPolicy, RaisesApprovalAndSaysWhy) {
  PolicySpec p;
  p.source = "shop/default";
  p.approval.required = true;
  p.approval.approvers = 2;
  PatchSpec s = basicPatch();
  auto notes = applyPolicy(p, s);
  EXPECT_TRUE(s.approvalRequired);
  EXPECT_EQ(s.approvers, 2);
  EXPECT_EQ(notes, (std::vector<std::string>{"approval required by policy shop/default",
                                             "approvals from 2 people required by policy shop/default"}));
}

TEST(ApplyPolicy, NeverLowersWhatThePatchAskedFor) {
  PolicySpec p;
  p.source = "shop/default";
  p.approval.required = true;
  p.approval.approvers = 2;
  p.environment.maxLifetimeSeconds = 7200;
  PatchSpec s = basicPatch();
  s.approvalRequired = true;
  s.approvers = 3;
  s.secrets = "omit";
  s.keepOnFailureSeconds = 3600;
  s.ttlSecondsAfterFinished = 60;
  EXPECT_TRUE(applyPolicy(p, s).empty());
  EXPECT_TRUE(s.approvalRequired);
  EXPECT_EQ(s.approvers, 3);
  EXPECT_EQ(s.secrets, "omit");
  EXPECT_EQ(s.keepOnFailureSeconds, 3600);
  EXPECT_EQ(s.ttlSecondsAfterFinished, 60);
  // An empty policy changes nothing.
  PatchSpec plain = basicPatch();
  EXPECT_TRUE(applyPolicy(PolicySpec{}, plain).empty());
  EXPECT_FALSE(plain.approvalRequired);
  EXPECT_EQ(plain.secrets, "copy");
}

TEST(ApplyPolicy, ApproverCountMattersOnlyWhenApprovalIsRequired) {
  PolicySpec p;
  p.approval.approvers = 2;
  PatchSpec s = basicPatch();
  EXPECT_TRUE(applyPolicy(p, s).empty());
  EXPECT_FALSE(s.approvalRequired);
  EXPECT_EQ(s.approvers, 1);
}

TEST(ApplyPolicy, SecretChangesAndEmergenciesNeedApprovalWhenThePolicySaysSo) {
  PolicySpec p;
  p.source = "shop/default";
  p.approval.forSecretChanges = true;
  p.approval.forEmergencies = true;
  PatchSpec s = basicPatch();
  s.change.config = {ConfigChange{"ConfigMap", "settings", "merge", "{}"}};
  EXPECT_TRUE(applyPolicy(p, s).empty());
  EXPECT_FALSE(s.approvalRequired);

  s.change.config.push_back(ConfigChange{"Secret", "db", "merge", "{}"});
  EXPECT_EQ(applyPolicy(p, s),
            (std::vector<std::string>{"approval required by policy shop/default: it changes a Secret"}));
  EXPECT_TRUE(s.approvalRequired);

  PatchSpec e = basicPatch();
  e.priority = "emergency";
  EXPECT_EQ(applyPolicy(p, e),
            (std::vector<std::string>{"approval required by policy shop/default: it is an emergency"}));
  EXPECT_TRUE(e.approvalRequired);
}

TEST(ApplyPolicy, SecretsAndLifetimes) {
  PolicySpec a, b;
  a.source = "cluster/default";
  a.allowSecretCopy = false;
  b.source = "shop/default";
  b.environment.maxLifetimeSeconds = 3600;
  PolicySpec m = mergePolicies({a, b});
  PatchSpec s = basicPatch();
  s.ttlSecondsAfterFinished = 7200;
  auto notes = applyPolicy(m, s);
  EXPECT_EQ(s.secrets, "omit");
  EXPECT_EQ(s.keepOnFailureSeconds, 3600);
  EXPECT_EQ(s.ttlSecondsAfterFinished, 3600);
  EXPECT_EQ(notes,
            (std::vector<std::string>{
                "Secrets are not copied into the test environment: forbidden by policies cluster/default, "
                "shop/default",
                "a failed environment is kept at most 3600s (policies cluster/default, shop/default)",
                "a finished environment is kept at most 3600s (policies cluster/default, shop/default)"}));
}

}  // namespace
}  // namespace patchgate::api::v1alpha1
