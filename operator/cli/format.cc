#include "cli/format.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <regex>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace patchgate::cli {
namespace {

std::string str(const Json& obj, const char* pointer) { return jsonString(obj, pointer); }

// A JSON scalar as text: strings as they are, numbers and booleans printed.
std::string scalar(const Json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return "";
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  return v.dump();
}

std::string orDash(std::string s) { return s.empty() ? "-" : s; }
std::string orNone(std::string s) { return s.empty() ? "<none>" : s; }

// "2024-05-01T10:00:00Z (5m ago)"
std::string when(const std::string& ts, TimePoint now) {
  if (ts.empty()) return "-";
  return absl::StrCat(ts, " (", age(ts, now), " ago)");
}

// Indents every non-empty line of `text` by `n` spaces; keeps a trailing newline.
std::string indent(const std::string& text, int n) {
  std::string pad(n, ' '), out;
  std::vector<std::string> lines = absl::StrSplit(text, '\n');
  bool trailing = !lines.empty() && lines.back().empty();
  if (trailing) lines.pop_back();
  for (size_t i = 0; i < lines.size(); ++i) {
    if (!lines[i].empty()) absl::StrAppend(&out, pad, lines[i]);
    if (i + 1 < lines.size() || trailing) out += "\n";
  }
  return out;
}

std::string trimRight(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// First line, cut to `max` characters: for table cells.
std::string oneLine(const std::string& s, size_t max = 80) {
  std::string out(s.substr(0, s.find('\n')));
  if (out.size() > max) out = out.substr(0, max - 3) + "...";
  return out;
}

const Json& arrayAt(const Json& obj, const char* pointer) {
  static const Json kEmpty = Json::array();
  const Json& v = jsonAt(obj, pointer);
  return v.is_array() ? v : kEmpty;
}

const Json* findCondition(const Json& patch, const std::string& type) {
  for (const auto& c : arrayAt(patch, "/status/conditions"))
    if (c.value("type", "") == type) return &c;
  return nullptr;
}

std::string testDuration(const Json& t) {
  if (t.contains("durationSeconds") && t["durationSeconds"].is_number())
    return shortSeconds(t["durationSeconds"].get<int64_t>());
  return elapsed(t.value("startedAt", ""), t.value("finishedAt", ""));
}

std::string changeKind(const Json& patch) {
  const Json& change = jsonAt(patch, "/spec/change");
  if (!change.is_object()) return "";
  if (change.contains("rollbackTo"))
    return absl::StrCat("rollback to revision ", jsonInt(change, "/rollbackTo/revision"));
  if (change.contains("image")) return absl::StrCat("image ", change.value("image", ""));
  return absl::StrCat(change.value("type", "strategic"), " patch");
}

bool isYamlSpecial(const std::string& s) {
  if (s.empty()) return true;
  static const std::regex kSpecial(
      "^(true|false|True|False|TRUE|FALSE|yes|no|Yes|No|YES|NO|on|off|On|Off|ON|OFF|y|n|Y|N|"
      "null|Null|NULL|~|[-+]?[0-9][0-9_]*(\\.[0-9_]*)?([eE][-+]?[0-9]+)?|[-+]?\\.[0-9]+|"
      "0x[0-9a-fA-F]+|0o[0-7]+|[-+]?\\.(inf|Inf|INF)|\\.(nan|NaN|NAN))$");
  if (std::regex_match(s, kSpecial)) return true;
  if (s.front() == ' ' || s.back() == ' ') return true;
  return false;
}

void emitYaml(YAML::Emitter& e, const Json& v) {
  switch (v.type()) {
    case Json::value_t::object:
      if (v.empty()) {
        e << YAML::Flow << YAML::BeginMap << YAML::EndMap;
        return;
      }
      e << YAML::BeginMap;
      for (const auto& [k, item] : v.items()) {
        e << YAML::Key;
        if (isYamlSpecial(k)) e << YAML::DoubleQuoted;
        e << k << YAML::Value;
        emitYaml(e, item);
      }
      e << YAML::EndMap;
      return;
    case Json::value_t::array:
      if (v.empty()) {
        e << YAML::Flow << YAML::BeginSeq << YAML::EndSeq;
        return;
      }
      e << YAML::BeginSeq;
      for (const auto& item : v) emitYaml(e, item);
      e << YAML::EndSeq;
      return;
    case Json::value_t::string: {
      const auto& s = v.get_ref<const std::string&>();
      if (s.find('\n') != std::string::npos && s.find_first_of("\t\r") == std::string::npos &&
          s.find(" \n") == std::string::npos)
        e << YAML::Literal << s;
      else if (isYamlSpecial(s))
        e << YAML::DoubleQuoted << s;
      else
        e << s;
      return;
    }
    case Json::value_t::null:
      e << YAML::Null;
      return;
    case Json::value_t::boolean:
      e << (v.get<bool>() ? "true" : "false");
      return;
    default:
      e << v.dump();
      return;
  }
}

}  // namespace

std::string humanDuration(std::chrono::seconds d) {
  int64_t s = d.count();
  if (s < 0) s = 0;
  if (s < 120) return absl::StrCat(s, "s");
  int64_t m = s / 60;
  if (m < 10) return s % 60 == 0 ? absl::StrCat(m, "m") : absl::StrCat(m, "m", s % 60, "s");
  if (m < 180) return absl::StrCat(m, "m");
  int64_t h = s / 3600;
  if (h < 8) return m % 60 == 0 ? absl::StrCat(h, "h") : absl::StrCat(h, "h", m % 60, "m");
  if (h < 48) return absl::StrCat(h, "h");
  int64_t days = h / 24;
  if (h < int64_t{24} * 8) return h % 24 == 0 ? absl::StrCat(days, "d") : absl::StrCat(days, "d", h % 24, "h");
  if (days < int64_t{365} * 2) return absl::StrCat(days, "d");
  return absl::StrCat(days / 365, "y");
}

std::string age(const std::string& timestamp, TimePoint now) {
  auto t = parseTime(timestamp);
  if (!t.ok()) return "<unknown>";
  return humanDuration(std::chrono::duration_cast<std::chrono::seconds>(now - *t));
}

std::string shortSeconds(int64_t s) {
  if (s < 0) s = 0;
  if (s < 60) return absl::StrCat(s, "s");
  if (s < 3600) return s % 60 ? absl::StrCat(s / 60, "m", s % 60, "s") : absl::StrCat(s / 60, "m");
  int64_t m = (s / 60) % 60;
  return m ? absl::StrCat(s / 3600, "h", m, "m") : absl::StrCat(s / 3600, "h");
}

std::string elapsed(const std::string& from, const std::string& to) {
  auto a = parseTime(from), b = parseTime(to);
  if (from.empty() || to.empty() || !a.ok() || !b.ok()) return "";
  return shortSeconds(std::chrono::duration_cast<std::chrono::seconds>(*b - *a).count());
}

std::string renderTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    if (widths.size() < row.size()) widths.resize(row.size(), 0);
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], row[i].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(widths[i] - row[i].size() + 3, ' ');
    }
    out += trimRight(line) + "\n";
  }
  return out;
}

std::string toYaml(const Json& value) {
  YAML::Emitter e;
  e.SetIndent(2);
  e.SetSeqFormat(YAML::Block);
  e.SetMapFormat(YAML::Block);
  emitYaml(e, value);
  std::string out = e.c_str();
  if (out.empty() || out.back() != '\n') out += "\n";
  return out;
}

Json forDisplay(Json obj) {
  if (obj.is_object() && obj.contains("metadata") && obj["metadata"].is_object())
    obj["metadata"].erase("managedFields");
  if (obj.is_object() && obj.contains("items") && obj["items"].is_array())
    for (auto& item : obj["items"]) item = forDisplay(std::move(item));
  return obj;
}

std::string targetOf(const Json& patch) {
  std::string kind = str(patch, "/spec/target/kind"), name = str(patch, "/spec/target/name");
  if (kind.empty() && name.empty()) return "";
  return absl::StrCat(kind, "/", name);
}

std::string patchTable(const Json& list, bool allNamespaces, bool wide, TimePoint now) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> header;
  if (allNamespaces) header.push_back("NAMESPACE");
  for (const char* h : {"NAME", "TARGET", "PHASE", "TICKET", "AGE"}) header.push_back(h);
  if (wide) {
    header.push_back("REVISION");
    header.push_back("MESSAGE");
  }
  rows.push_back(header);
  for (const auto& p : arrayAt(list, "/items")) {
    std::vector<std::string> row;
    if (allNamespaces) row.push_back(str(p, "/metadata/namespace"));
    row.push_back(str(p, "/metadata/name"));
    row.push_back(orDash(targetOf(p)));
    std::string phase = str(p, "/status/phase");
    row.push_back(phase.empty() ? "Pending" : phase);
    row.push_back(orDash(str(p, "/spec/ticket")));
    row.push_back(age(str(p, "/metadata/creationTimestamp"), now));
    if (wide) {
      int64_t rev = jsonInt(p, "/status/revision/number", 0);
      row.push_back(rev ? std::to_string(rev) : "-");
      row.push_back(oneLine(str(p, "/status/message"), 100));
    }
    rows.push_back(std::move(row));
  }
  return renderTable(rows);
}

std::string historyTable(const Json& revisions, const Json& patches, TimePoint now) {
  std::map<std::string, std::string> outcome;
  for (const auto& p : arrayAt(patches, "/items"))
    outcome[str(p, "/metadata/name")] = str(p, "/status/phase");
  std::vector<const Json*> items;
  for (const auto& r : arrayAt(revisions, "/items")) items.push_back(&r);
  std::sort(items.begin(), items.end(), [](const Json* a, const Json* b) {
    return a->value("revision", int64_t{0}) < b->value("revision", int64_t{0});
  });
  std::vector<std::vector<std::string>> rows = {
      {"REVISION", "NAME", "RECORDED", "PATCH", "TICKET", "PATCH OUTCOME", "ROOT CAUSE"}};
  for (const Json* r : items) {
    const Json& ann = jsonAt(*r, "/metadata/annotations");
    auto annotation = [&](const char* key) {
      return ann.is_object() ? ann.value(key, "") : std::string();
    };
    std::string recorded = annotation("patchgate.dev/recorded-at");
    if (recorded.empty()) recorded = str(*r, "/metadata/creationTimestamp");
    std::string patch = annotation("patchgate.dev/patch-name");
    std::string result;
    if (!patch.empty()) {
      auto it = outcome.find(patch);
      result = it == outcome.end() ? (patches.is_null() ? "" : "<deleted>") : it->second;
    }
    rows.push_back({std::to_string(r->value("revision", int64_t{0})), str(*r, "/metadata/name"),
                    recorded.empty() ? "-" : absl::StrCat(recorded, " (", age(recorded, now), " ago)"),
                    orDash(patch), orDash(annotation("patchgate.dev/ticket")), orDash(result),
                    orDash(oneLine(annotation("patchgate.dev/root-cause"), 60))});
  }
  return renderTable(rows);
}

// ---- describe ---------------------------------------------------------------

std::string describePatch(const Json& p, TimePoint now) {
  std::ostringstream o;
  auto field = [&](const std::string& label, const std::string& value) {
    std::string l = absl::StrCat(label, ":");
    o << l << std::string(l.size() < 14 ? 14 - l.size() : 1, ' ') << value << "\n";
  };
  const Json& spec = jsonAt(p, "/spec");
  const Json& status = jsonAt(p, "/status");
  field("Name", str(p, "/metadata/name"));
  field("Namespace", str(p, "/metadata/namespace"));
  field("Created", when(str(p, "/metadata/creationTimestamp"), now));
  field("Target", orNone(targetOf(p)));
  field("Ticket", orNone(str(p, "/spec/ticket")));
  field("Root cause", orNone(str(p, "/spec/rootCause")));
  if (!str(p, "/spec/description").empty()) field("Description", str(p, "/spec/description"));
  field("Author", orNone(str(p, "/spec/author")));
  field("Priority", spec.is_object() ? spec.value("priority", "normal") : "normal");
  if (spec.is_object() && spec.value("cancel", false)) field("Cancel", "requested");

  o << "Change:       " << changeKind(p) << "\n";
  const Json& change = jsonAt(p, "/spec/change");
  if (change.is_object() && change.contains("patch"))
    o << indent(trimRight(scalar(change["patch"])), 4) << "\n";
  for (const auto& c : arrayAt(p, "/spec/change/config"))
    o << "  " << c.value("kind", "") << "/" << c.value("name", "") << " (" << c.value("type", "merge")
      << "): " << oneLine(c.value("patch", ""), 120) << "\n";

  std::string phase = str(p, "/status/phase");
  field("Phase", phase.empty() ? "Pending" : phase);
  if (!str(p, "/status/message").empty()) field("Message", str(p, "/status/message"));
  if (!str(p, "/status/startedAt").empty()) field("Started", when(str(p, "/status/startedAt"), now));
  if (!str(p, "/status/finishedAt").empty())
    field("Finished", absl::StrCat(when(str(p, "/status/finishedAt"), now), ", took ",
                                   elapsed(str(p, "/status/startedAt"), str(p, "/status/finishedAt"))));
  if (jsonInt(p, "/status/retests", 0) > 0)
    field("Retests", absl::StrCat(jsonInt(p, "/status/retests", 0), " (production drifted)"));

  o << "Conditions:\n";
  const Json& conds = arrayAt(p, "/status/conditions");
  if (conds.empty()) {
    o << "  <none>\n";
  } else {
    std::vector<std::vector<std::string>> rows = {{"TYPE", "STATUS", "REASON", "AGE", "MESSAGE"}};
    for (const auto& c : conds)
      rows.push_back({c.value("type", ""), c.value("status", ""), c.value("reason", ""),
                      age(c.value("lastTransitionTime", ""), now), oneLine(c.value("message", ""), 120)});
    o << indent(renderTable(rows), 2);
  }

  o << "Environment:\n";
  const Json& env = jsonAt(p, "/status/environment");
  if (!env.is_object()) {
    o << "  <none yet>\n";
  } else {
    o << "  Namespace:  " << orNone(env.value("namespace", "")) << "\n";
    std::vector<std::string> services;
    for (const auto& s : arrayAt(env, "/services")) services.push_back(scalar(s));
    if (!services.empty()) o << "  Services:   " << absl::StrJoin(services, ", ") << "\n";
    if (env.contains("createdAt")) o << "  Created:    " << when(env.value("createdAt", ""), now) << "\n";
    if (env.contains("readyAt")) o << "  Ready:      " << when(env.value("readyAt", ""), now) << "\n";
    if (env.contains("deletedAt")) o << "  Deleted:    " << when(env.value("deletedAt", ""), now) << "\n";
    else if (env.value("kept", false)) o << "  Kept:       for debugging (keepOnFailure)\n";
  }

  o << "Tests:\n";
  const Json& tests = arrayAt(p, "/status/tests");
  if (tests.empty()) {
    std::vector<std::string> names;
    for (const auto& t : arrayAt(p, "/spec/tests")) names.push_back(t.value("name", ""));
    o << "  " << (names.empty() ? "<none>" : absl::StrCat("not run yet: ", absl::StrJoin(names, ", ")))
      << "\n";
  } else {
    std::vector<std::vector<std::string>> rows = {{"NAME", "RESULT", "ATTEMPTS", "DURATION", "MESSAGE"}};
    for (const auto& t : tests)
      rows.push_back({t.value("name", ""), t.value("result", ""), scalar(t.value("attempts", Json(0))),
                      orDash(testDuration(t)), oneLine(t.value("message", ""), 120)});
    o << indent(renderTable(rows), 2);
  }

  bool approvalRequired = jsonAt(p, "/spec/promotion/approval/required") == Json(true);
  o << "Approval:     "
    << (approvalRequired
            ? absl::StrCat("required (", jsonInt(p, "/spec/promotion/approval/approvers", 1),
                           " approver(s), not the author)")
            : std::string("not required"))
    << "\n";
  const Json& approvals = arrayAt(p, "/status/approvals");
  if (!approvals.empty()) {
    std::vector<std::vector<std::string>> rows = {{"USER", "DECISION", "VALID", "AGE", "COMMENT"}};
    for (const auto& a : approvals) {
      std::string valid = a.contains("valid") ? scalar(a["valid"]) : "-";
      if (a.contains("why")) valid += " (" + a.value("why", "") + ")";
      rows.push_back({a.value("user", ""), a.value("decision", "approve"), valid,
                      age(a.value("at", ""), now), oneLine(a.value("comment", ""), 80)});
    }
    o << indent(renderTable(rows), 2);
  }

  std::string diff = str(p, "/status/diff");
  o << "Diff:";
  if (diff.empty()) o << "         <not computed yet>\n";
  else o << "\n" << indent(trimRight(diff), 2) << "\n";

  if (status.is_object() && status.contains("rollbackSource"))
    field("Restores", absl::StrCat("revision ", jsonInt(p, "/status/rollbackSource/revision"), " (",
                                   str(p, "/status/rollbackSource/name"), ")"));
  if (status.is_object() && status.contains("revision"))
    field("Rollback point", absl::StrCat(str(p, "/status/revision/name"), " (revision ",
                                         jsonInt(p, "/status/revision/number"), ")"));
  if (status.is_object() && status.contains("promotion")) {
    field("Promoted", when(str(p, "/status/promotion/promotedAt"), now));
    if (!str(p, "/status/promotion/verifiedAt").empty())
      field("Verified", when(str(p, "/status/promotion/verifiedAt"), now));
  }
  if (status.is_object() && status.contains("rollback")) {
    field("Rolled back", when(str(p, "/status/rollback/at"), now));
    field("  to", str(p, "/status/rollback/revision"));
    field("  because", str(p, "/status/rollback/reason"));
  }

  o << "History:\n";
  const Json& history = arrayAt(p, "/status/history");
  if (history.empty()) {
    o << "  <none>\n";
  } else {
    std::vector<std::vector<std::string>> rows = {{"TIME", "PHASE", "REASON", "MESSAGE"}};
    for (const auto& h : history)
      rows.push_back({h.value("at", ""), h.value("phase", ""), h.value("reason", ""),
                      oneLine(h.value("message", ""), 140)});
    o << indent(renderTable(rows), 2);
  }
  return o.str();
}

// ---- report -----------------------------------------------------------------

std::string markdownCell(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '|') out += "\\|";
    else if (c == '\n') out += "<br>";
    else if (c != '\r') out += c;
  }
  return out.empty() ? "-" : out;
}

namespace {
// A fenced block whose fence is longer than any backtick run inside.
std::string fenced(const std::string& body, const std::string& lang) {
  size_t run = 0, longest = 0;
  for (char c : body) {
    run = c == '`' ? run + 1 : 0;
    longest = std::max(longest, run);
  }
  std::string fence(std::max<size_t>(3, longest + 1), '`');
  return absl::StrCat(fence, lang, "\n", trimRight(std::string(body)), "\n", fence, "\n");
}
}  // namespace

std::string reportMarkdown(const Json& p, const Json& revision, TimePoint now) {
  std::ostringstream o;
  const Json& status = jsonAt(p, "/status");
  auto has = [&](const char* key) { return status.is_object() && status.contains(key); };
  std::string ticket = str(p, "/spec/ticket"), name = str(p, "/metadata/name");
  std::string ns = str(p, "/metadata/namespace");
  std::string phase = str(p, "/status/phase");
  if (phase.empty()) phase = "Pending";

  o << "# " << (ticket.empty() ? "(no ticket)" : ticket) << ": " << name << "\n\n";
  o << "| | |\n|---|---|\n";
  auto row = [&](const std::string& k, const std::string& v) {
    o << "| " << k << " | " << markdownCell(v) << " |\n";
  };
  row("Ticket", ticket);
  row("Patch", absl::StrCat(ns, "/", name));
  row("Target", targetOf(p));
  row("Change", changeKind(p));
  row("Outcome", absl::StrCat("**", phase, "**", str(p, "/status/message").empty() ? "" : " — ",
                              str(p, "/status/message")));
  row("Author", str(p, "/spec/author").empty() ? "not recorded" : str(p, "/spec/author"));
  row("Priority", jsonAt(p, "/spec/priority").is_string() ? str(p, "/spec/priority") : "normal");
  row("Created", str(p, "/metadata/creationTimestamp"));
  row("Started", str(p, "/status/startedAt"));
  if (has("finishedAt"))
    row("Finished", absl::StrCat(str(p, "/status/finishedAt"), " (took ",
                                 elapsed(str(p, "/status/startedAt"), str(p, "/status/finishedAt")), ")"));
  o << "\n## Root cause\n\n" << (str(p, "/spec/rootCause").empty() ? "_not given_" : str(p, "/spec/rootCause"))
    << "\n";
  o << "\n## Description\n\n"
    << (str(p, "/spec/description").empty() ? "_none_" : str(p, "/spec/description")) << "\n";

  o << "\n## Change\n\n";
  const Json& change = jsonAt(p, "/spec/change");
  if (change.is_object() && change.contains("patch")) {
    o << "A " << change.value("type", "strategic") << " patch of " << targetOf(p) << ":\n\n"
      << fenced(scalar(change["patch"]), "yaml");
  } else if (change.is_object() && change.contains("image")) {
    o << "Image: `" << change.value("image", "") << "`\n";
  } else if (change.is_object() && change.contains("rollbackTo")) {
    o << "Roll " << targetOf(p) << " back to revision " << jsonInt(change, "/rollbackTo/revision");
    if (has("rollbackSource")) o << " (`" << str(p, "/status/rollbackSource/name") << "`)";
    o << ", workload and configuration together.\n";
  }
  const Json& config = arrayAt(p, "/spec/change/config");
  if (!config.empty()) {
    o << "\nConfiguration changed with it:\n\n";
    for (const auto& c : config)
      o << "- " << c.value("kind", "") << " `" << c.value("name", "") << "` (" << c.value("type", "merge")
        << "): `" << oneLine(c.value("patch", ""), 200) << "`\n";
  }

  o << "\n## Diff\n\nWhat the change does to production, from the API server's dry run:\n\n";
  std::string diff = str(p, "/status/diff");
  o << (diff.empty() ? std::string("_not computed (the patch did not pass validation)_\n")
                     : fenced(diff, "text"));

  o << "\n## Test environment\n\n";
  const Json& env = jsonAt(p, "/status/environment");
  if (!env.is_object()) {
    o << "_No environment was created._\n";
  } else {
    o << "- Namespace: `" << env.value("namespace", "") << "`\n";
    std::vector<std::string> services;
    for (const auto& s : arrayAt(env, "/services")) services.push_back(absl::StrCat("`", scalar(s), "`"));
    if (!services.empty()) o << "- Services: " << absl::StrJoin(services, ", ") << "\n";
    if (env.contains("createdAt")) o << "- Created: " << env.value("createdAt", "") << "\n";
    if (env.contains("readyAt"))
      o << "- Ready: " << env.value("readyAt", "") << " (after "
        << elapsed(env.value("createdAt", ""), env.value("readyAt", "")) << ")\n";
    if (env.contains("deletedAt")) o << "- Deleted: " << env.value("deletedAt", "") << "\n";
    else if (env.value("kept", false)) o << "- Kept for debugging (keepOnFailure)\n";
  }
  if (jsonInt(p, "/status/retests", 0) > 0)
    o << "- Re-tested " << jsonInt(p, "/status/retests", 0)
      << " time(s) because production changed while testing\n";

  o << "\n## Tests\n\n";
  const Json& tests = arrayAt(p, "/status/tests");
  if (tests.empty()) {
    o << (arrayAt(p, "/spec/tests").empty() ? "_No tests declared._\n" : "_No test ran._\n");
  } else {
    o << "| Test | Result | Attempts | Duration | Started | Message |\n|---|---|---|---|---|---|\n";
    for (const auto& t : tests)
      o << "| " << markdownCell(t.value("name", "")) << " | " << markdownCell(t.value("result", ""))
        << " | " << scalar(t.value("attempts", Json(0))) << " | " << markdownCell(testDuration(t))
        << " | " << markdownCell(t.value("startedAt", "")) << " | "
        << markdownCell(t.value("message", "")) << " |\n";
  }
  // Structured results that test pods reported through the gRPC API
  // (status.testReports: test -> suites -> cases).
  const Json& reports = jsonAt(p, "/status/testReports");
  if (reports.is_object() && !reports.empty()) {
    o << "\n### Reported results\n\n| Test | Suite | Case | Result | Duration |\n|---|---|---|---|---|\n";
    for (const auto& [test, suites] : reports.items()) {
      if (!suites.is_array()) continue;
      for (const auto& suite : suites) {
        if (!suite.is_object() || !suite.contains("cases") || !suite["cases"].is_array()) continue;
        for (const auto& c : suite["cases"]) {
          if (!c.is_object()) continue;
          double secs = c.value("durationSeconds", 0.0);
          char dur[32];
          std::snprintf(dur, sizeof(dur), "%.2fs", secs);
          o << "| " << markdownCell(test) << " | " << markdownCell(suite.value("name", "")) << " | "
            << markdownCell(c.value("name", "")) << " | "
            << (c.value("passed", false) ? "passed" : "**failed**") << " | " << dur << " |\n";
        }
      }
    }
  }

  o << "\n## Approvals\n\n";
  bool required = jsonAt(p, "/spec/promotion/approval/required") == Json(true);
  const Json& approvals = arrayAt(p, "/status/approvals");
  if (!required && approvals.empty()) {
    o << "Not required by this patch's policy.\n";
  } else {
    if (required)
      o << "Required: " << jsonInt(p, "/spec/promotion/approval/approvers", 1)
        << " approver(s) other than the author.\n\n";
    if (approvals.empty()) {
      o << "_None given._\n";
    } else {
      o << "| Approver | Decision | Valid | At | Comment |\n|---|---|---|---|---|\n";
      for (const auto& a : approvals) {
        std::string valid = a.contains("valid") ? scalar(a["valid"]) : "-";
        if (a.contains("why")) valid += " (" + a.value("why", "") + ")";
        o << "| " << markdownCell(a.value("user", "")) << " | " << markdownCell(a.value("decision", "approve"))
          << " | " << markdownCell(valid) << " | " << markdownCell(a.value("at", "")) << " | "
          << markdownCell(a.value("comment", "")) << " |\n";
      }
    }
  }

  o << "\n## Promotion\n\n";
  if (has("revision")) {
    o << "- Rollback point: revision " << jsonInt(p, "/status/revision/number") << " (`"
      << str(p, "/status/revision/name") << "`)";
    std::string recorded = revision.is_object()
                               ? jsonString(revision, "/metadata/annotations/patchgate.dev~1recorded-at")
                               : "";
    if (!recorded.empty()) o << ", recorded " << recorded;
    o << ": the workload and its configuration as they were before this patch\n";
  }
  if (has("promotion")) {
    o << "- Promoted: " << str(p, "/status/promotion/promotedAt");
    if (jsonInt(p, "/status/promotion/generation", 0))
      o << " (" << targetOf(p) << " generation " << jsonInt(p, "/status/promotion/generation", 0) << ")";
    o << "\n";
  } else {
    o << "_Not promoted: production was not changed by this patch._\n";
  }

  o << "\n## Verification\n\n";
  const Json* verified = findCondition(p, "Verified");
  if (!str(p, "/status/promotion/verifiedAt").empty()) {
    o << "Production became healthy at " << str(p, "/status/promotion/verifiedAt") << " (after "
      << elapsed(str(p, "/status/promotion/promotedAt"), str(p, "/status/promotion/verifiedAt"))
      << ")";
    if (verified) o << ": " << verified->value("message", "");
    o << ".\n";
  } else if (verified) {
    o << "Not verified: " << verified->value("message", "") << "\n";
  } else {
    o << "_Not reached._\n";
  }

  o << "\n## Rollback\n\n";
  if (has("rollback")) {
    o << "Production was rolled back at " << str(p, "/status/rollback/at") << " to `"
      << str(p, "/status/rollback/revision") << "`.\n\nReason: " << str(p, "/status/rollback/reason")
      << "\n";
  } else if (has("revision")) {
    o << "No rollback was needed. To undo this change: `patchctl rollback " << targetOf(p)
      << " --to-revision " << jsonInt(p, "/status/revision/number") << " -n " << ns
      << " --ticket <ticket> --reason <why>`\n";
  } else {
    o << "Not applicable: production was not changed.\n";
  }

  o << "\n## Timeline\n\n";
  const Json& history = arrayAt(p, "/status/history");
  if (history.empty()) {
    o << "_No events recorded._\n";
  } else {
    o << "| Time | Phase | Reason | Actor | Message |\n|---|---|---|---|---|\n";
    for (const auto& h : history)
      o << "| " << markdownCell(h.value("at", "")) << " | " << markdownCell(h.value("phase", "")) << " | "
        << markdownCell(h.value("reason", "")) << " | " << markdownCell(h.value("actor", "")) << " | "
        << markdownCell(h.value("message", "")) << " |\n";
  }
  o << "\n---\n_Change record generated by patchctl at " << formatTime(now) << " from "
    << "patches.patchgate.dev " << ns << "/" << name << " (uid " << str(p, "/metadata/uid") << ")._\n";
  return o.str();
}

// ---- watch ------------------------------------------------------------------

std::vector<std::string> ProgressPrinter::update(const Json& patch) {
  std::vector<std::string> lines;
  auto line = [](const std::string& at, const std::string& phase, const std::string& message) {
    std::string time = at.size() >= 19 ? std::string(at.substr(11, 8)) : std::string(8, ' ');
    std::string ph(phase);
    if (ph.size() < 17) ph.resize(17, ' ');
    return trimRight(absl::StrCat(time, "  ", ph, " ", message));
  };
  for (const auto& h : arrayAt(patch, "/status/history")) {
    std::string key = h.dump();
    if (std::find(seen_.begin(), seen_.end(), key) != seen_.end()) continue;
    seen_.push_back(key);
    if (seen_.size() > 500) seen_.erase(seen_.begin());
    std::string message = h.value("message", "");
    lines.push_back(line(h.value("at", ""), h.value("phase", ""), message));
    lastPhase_ = h.value("phase", "");
    lastMessage_ = message;
  }
  std::string phase = str(patch, "/status/phase"), message = str(patch, "/status/message");
  if (!message.empty() && (message != lastMessage_ || phase != lastPhase_)) {
    lines.push_back(line("", phase.empty() ? "Pending" : phase, message));
    lastPhase_ = phase;
    lastMessage_ = message;
  }
  return lines;
}

}  // namespace patchgate::cli
