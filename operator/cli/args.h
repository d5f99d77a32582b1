#pragma once

// patchctl's command line: what was asked for, parsed without touching a
// cluster, and the help texts. Global flags may appear anywhere (as kubectl).

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace patchgate::cli {

// Process exit codes.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;  // the command ran and failed (or the Patch did)
inline constexpr int kExitUsage = 2;    // bad command line

struct Invocation {
  std::string command;            // "" when none was given
  std::vector<std::string> args;  // positional arguments after the command
  // global
  std::string kubeconfig;
  std::string context;
  std::string ns;                 // "" = the kubeconfig context's namespace
  bool allNamespaces = false;
  bool help = false;
  // command flags
  std::string output;             // get/history: table|wide|yaml|json|name
  std::string filename;           // create -f
  std::string comment;            // approve/reject
  std::string ticket, reason;     // rollback
  std::optional<int64_t> toRevision;
  bool wait = false;              // rollback/create: follow the Patch to its end
  std::chrono::seconds timeout{0};  // watch/--wait; 0 = no limit
};

// Parses argv[1..]. Errors are usage errors (exit 2) and say what was wrong.
absl::StatusOr<Invocation> parseArgs(const std::vector<std::string>& args);

// "30s", "5m", "1h30m", "90" (seconds).
absl::StatusOr<std::chrono::seconds> parseDuration(std::string_view text);

// A workload reference "KIND/NAME" (kind case-insensitive, kubectl short
// names and plurals accepted) as {"Deployment", "checkout"}.
struct WorkloadRef {
  std::string kind;
  std::string name;
};
absl::StatusOr<WorkloadRef> parseWorkloadRef(std::string_view text);

// Help: the overview when `command` is empty, else that command's.
// `program` is "patchctl" or "kubectl patchgate".
std::string usage(std::string_view program, std::string_view command);
bool isCommand(std::string_view command);

// A bash completion script for `program` (commands, flags, Patch names).
std::string bashCompletion(std::string_view program);

}  // namespace patchgate::cli
