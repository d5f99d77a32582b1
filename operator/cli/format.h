#pragma once

// Pure formatting for patchctl: every function takes the objects as the API
// server returns them (JSON) and the current time, and returns text. No I/O,
// no client, so each output is unit-tested with plain JSON.

#include <chrono>
#include <string>
#include <vector>

#include "common/json.h"

namespace patchgate::cli {

using TimePoint = std::chrono::system_clock::time_point;

// kubectl's age: "45s", "5m", "3h", "2d", "1y" (and "<unknown>" for a bad
// timestamp). As apimachinery's duration.HumanDuration, shortened.
std::string humanDuration(std::chrono::seconds d);
std::string age(const std::string& timestamp, TimePoint now);
// "1m12s"-style elapsed time between two RFC 3339 timestamps; "" if either is missing.
std::string elapsed(const std::string& from, const std::string& to);
// "45s", "1m12s", "1h2m" for a number of seconds.
std::string shortSeconds(int64_t seconds);

// Columns padded like kubectl (three spaces between columns, header first).
std::string renderTable(const std::vector<std::vector<std::string>>& rows);

// JSON as YAML (block style; strings quoted when YAML would read them as
// something else, multi-line strings as literal blocks).
std::string toYaml(const Json& value);

// Drops what kubectl hides by default (metadata.managedFields).
Json forDisplay(Json obj);

// `patchctl get`: NAME TARGET PHASE TICKET AGE (NAMESPACE first with
// allNamespaces; wide adds REVISION and MESSAGE).
std::string patchTable(const Json& list, bool allNamespaces, bool wide, TimePoint now);

// `patchctl history`: revisions sorted by number. `patches` (a Patch list, may
// be null) supplies the outcome of the Patch that recorded each revision.
std::string historyTable(const Json& revisions, const Json& patches, TimePoint now);

// `patchctl describe`: everything a person needs to understand one Patch.
std::string describePatch(const Json& patch, TimePoint now);

// `patchctl report`: the change record as Markdown. `revision` is the
// ControllerRevision of the rollback point when it could be read (else null).
std::string reportMarkdown(const Json& patch, const Json& revision, TimePoint now);

// Escapes a value for a Markdown table cell (pipes, newlines).
std::string markdownCell(const std::string& text);

// Watching one Patch: remembers what was already shown and turns each new
// version of the object into the lines to print (new history entries, then
// a changed status message within the phase).
class ProgressPrinter {
 public:
  std::vector<std::string> update(const Json& patch);

 private:
  std::vector<std::string> seen_;  // history entries already printed (dumped)
  std::string lastPhase_;
  std::string lastMessage_;
};

// "Deployment/checkout" from spec.target.
std::string targetOf(const Json& patch);

}  // namespace patchgate::cli
