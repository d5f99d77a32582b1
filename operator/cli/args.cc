#include "cli/args.h"

#include <algorithm>
#include <cctype>
#include <limits>
#include <map>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"

namespace patchgate::cli {
namespace {

struct CommandSpec {
  const char* name;
  int minArgs, maxArgs;
  std::set<std::string> flags;  // long names of the command's own flags
  const char* synopsis;
  const char* help;
  const char* summary;  // one line for the overview
};

const std::vector<CommandSpec>& commands() {
  static const std::vector<CommandSpec> kCommands = {
      {"get", 0, 1, {"output", "all-namespaces"}, "get [NAME] [-A] [-o table|wide|yaml|json|name]",
       "List Patches (or show one) like kubectl get.\n\n"
       "Examples:\n"
       "  PROG get -n shop\n"
       "  PROG get fix-checkout-pool -o yaml\n"
       "  PROG get -A\n", "list Patches, or show one (-o yaml|json)"},
      {"describe", 1, 1, {}, "describe NAME",
       "Show one Patch in detail: spec, phase, conditions, tests with their results,\n"
       "approvals, environment, diff, rollback point, history and recent events.\n\n"
       "Example:\n  PROG describe fix-checkout-pool -n shop\n", "show a Patch in detail: conditions, tests, approvals, diff, history"},
      {"watch", 1, 1, {"timeout"}, "watch NAME [--timeout 10m]",
       "Follow one Patch until it ends, printing each step as it happens.\n"
       "Exit code: 0 if it Succeeded (promoted and verified), 1 if it Failed or was\n"
       "RolledBack, deleted, or the timeout passed.\n\n"
       "Example:\n  PROG watch fix-checkout-pool -n shop --timeout 15m\n", "follow a Patch to its end; exit 0 only if it Succeeded"},
      {"diff", 1, 1, {}, "diff NAME",
       "Print what the Patch changes in production (from the API server's dry run).\n\n"
       "Example:\n  PROG diff fix-checkout-pool\n", "what a Patch changes in production (server-side dry run)"},
      {"history", 1, 1, {"output"}, "history KIND/NAME [-o table|yaml|json]",
       "List the rollback points (revisions) kept for a workload, oldest first.\n"
       "Revision N holds the workload and its configuration as they were before the\n"
       "Patch named in its row was promoted.\n\n"
       "Example:\n  PROG history deployment/checkout -n shop\n", "the rollback points (revisions) kept for a workload"},
      {"approve", 1, 1, {"comment"}, "approve NAME [--comment TEXT]",
       "Approve a Patch that waits for approval. Creates a PatchApproval in your name\n"
       "(the API server checks that it is you); the author cannot approve.\n\n"
       "Example:\n  PROG approve fix-checkout-pool --comment \"diff reviewed\"\n", "approve a Patch (as yourself, via a PatchApproval)"},
      {"reject", 1, 1, {"comment"}, "reject NAME [--comment TEXT]",
       "Reject a Patch: it ends Failed and production is untouched.\n\n"
       "Example:\n  PROG reject fix-checkout-pool --comment \"wrong pool size\"\n", "reject a Patch"},
      {"rollback", 1, 1, {"to-revision", "ticket", "reason", "wait", "timeout"},
       "rollback KIND/NAME [--to-revision N] --ticket T --reason R [--wait [--timeout D]]",
       "Roll a workload back to a recorded revision (default: the newest, i.e. undo\n"
       "the last promoted Patch). Creates a Patch with change.rollbackTo, so the\n"
       "rollback goes through the same audited path; --wait follows it to its end.\n\n"
       "Example:\n"
       "  PROG rollback deployment/checkout --ticket INC-4212 \\\n"
       "      --reason \"POOL=64 overloads the database\" --wait\n",
       "roll a workload back to a revision, through a rollback Patch"},
      {"create", 0, 0, {"filename", "wait", "timeout"}, "create -f FILE [--wait [--timeout D]]",
       "Validate a Patch manifest locally with the same rules as the API server,\n"
       "then create it. Fills spec.author with your user name when the Patch needs\n"
       "approval and names no author. FILE may be - for stdin.\n\n"
       "Example:\n  PROG create -f fix.yaml --wait\n", "validate a Patch manifest locally, then create it"},
      {"report", 1, 1, {}, "report NAME",
       "Print the change record of a Patch as Markdown: ticket, root cause,\n"
       "description, author, diff, environment, tests, approvals, promotion,\n"
       "verification, rollback and the timeline.\n\n"
       "Example:\n  PROG report fix-checkout-pool > INC-4211.md\n", "the change record of a Patch, as Markdown"},
      {"completion", 1, 1, {}, "completion bash",
       "Print a shell completion script.\n\nExample:\n  source <(PROG completion bash)\n", "shell completion script (bash)"},
      {"version", 0, 0, {}, "version", "Print the patchctl version.\n", "print the version"},
      {"help", 0, 1, {}, "help [COMMAND]", "Show help for a command.\n", "help for a command"},
  };
  return kCommands;
}

const CommandSpec* findCommand(std::string_view name) {
  for (const auto& c : commands())
    if (name == c.name) return &c;
  return nullptr;
}

struct FlagSpec {
  std::string name;   // long name
  char shortName;     // 0 if none
  bool takesValue;
  bool global;
};

const std::vector<FlagSpec>& flags() {
  static const std::vector<FlagSpec> kFlags = {
      {"kubeconfig", 0, true, true},  {"context", 0, true, true},
      {"namespace", 'n', true, true}, {"help", 'h', false, true},
      {"all-namespaces", 'A', false, false}, {"output", 'o', true, false},
      {"filename", 'f', true, false}, {"comment", 0, true, false},
      {"ticket", 0, true, false},     {"reason", 0, true, false},
      {"to-revision", 0, true, false}, {"wait", 0, false, false},
      {"timeout", 0, true, false},
  };
  return kFlags;
}

const FlagSpec* findFlag(std::string_view arg, std::string* value, bool* hasValue) {
  *hasValue = false;
  if (arg.size() > 2 && arg.substr(0, 2) == "--") {
    std::string_view body = arg.substr(2);
    auto eq = body.find('=');
    if (eq != std::string_view::npos) {
      *value = std::string(body.substr(eq + 1));
      *hasValue = true;
      body = body.substr(0, eq);
    }
    for (const auto& f : flags())
      if (f.name == body) return &f;
    return nullptr;
  }
  if (arg.size() >= 2 && arg[0] == '-' && arg[1] != '-') {
    for (const auto& f : flags()) {
      if (f.shortName != arg[1]) continue;
      if (arg.size() > 2) {  // -nshop, -oyaml, -n=shop
        std::string_view rest = arg.substr(2);
        if (!rest.empty() && rest[0] == '=') rest = rest.substr(1);
        *value = std::string(rest);
        *hasValue = true;
      }
      return &f;
    }
  }
  return nullptr;
}

}  // namespace

bool isCommand(std::string_view command) { return findCommand(command) != nullptr; }

absl::StatusOr<std::chrono::seconds> parseDuration(std::string_view textView) {
  const std::string text(textView);  // this abseil's string_view is its own type
  if (text.empty()) return absl::InvalidArgumentError("empty duration");
  int64_t plain = 0;
  if (absl::SimpleAtoi(text, &plain)) {
    if (plain < 0) return absl::InvalidArgumentError(absl::StrCat("negative duration: ", text));
    return std::chrono::seconds(plain);
  }
  int64_t total = 0;
  size_t i = 0;
  while (i < text.size()) {
    size_t j = i;
    while (j < text.size() && std::isdigit(static_cast<unsigned char>(text[j]))) ++j;
    if (j == i || j == text.size())
      return absl::InvalidArgumentError(
          absl::StrCat("invalid duration \"", text, "\" (use e.g. 90s, 10m, 1h30m)"));
    int64_t n = 0;
    if (!absl::SimpleAtoi(text.substr(i, j - i), &n))
      return absl::InvalidArgumentError(absl::StrCat("invalid duration \"", text, "\""));
    char unit = text[j];
    int64_t mult = unit == 's' ? 1 : unit == 'm' ? 60 : unit == 'h' ? 3600 : 0;
    if (mult == 0)
      return absl::InvalidArgumentError(
          absl::StrCat("invalid duration \"", text, "\" (units: s, m, h)"));
    // Bounded so that it cannot overflow (found by tests/fuzz duration_fuzzer).
    if (n > (std::numeric_limits<int64_t>::max() - total) / mult)
      return absl::InvalidArgumentError(absl::StrCat("duration \"", text, "\" is too long"));
    total += n * mult;
    i = j + 1;
  }
  return std::chrono::seconds(total);
}

absl::StatusOr<WorkloadRef> parseWorkloadRef(std::string_view textView) {
  const std::string text(textView);
  auto slash = text.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == text.size() ||
      text.find('/', slash + 1) != std::string::npos)
    return absl::InvalidArgumentError(absl::StrCat(
        "expected KIND/NAME (e.g. deployment/checkout), got \"", text, "\""));
  static const std::map<std::string, std::string> kKinds = {
      {"deployment", "Deployment"},   {"deployments", "Deployment"}, {"deploy", "Deployment"},
      {"statefulset", "StatefulSet"}, {"statefulsets", "StatefulSet"}, {"sts", "StatefulSet"},
      {"daemonset", "DaemonSet"},     {"daemonsets", "DaemonSet"},   {"ds", "DaemonSet"}};
  std::string kind = absl::AsciiStrToLower(text.substr(0, slash));
  // "deployment.apps/checkout" as kubectl prints it
  if (auto dot = kind.find('.'); dot != std::string::npos && kind.substr(dot) == ".apps")
    kind = kind.substr(0, dot);
  auto it = kKinds.find(kind);
  if (it == kKinds.end())
    return absl::InvalidArgumentError(absl::StrCat(
        "unsupported kind \"", text.substr(0, slash),
        "\": patchgate patches Deployment, StatefulSet and DaemonSet workloads"));
  return WorkloadRef{it->second, std::string(text.substr(slash + 1))};
}

absl::StatusOr<Invocation> parseArgs(const std::vector<std::string>& args) {
  Invocation inv;
  std::vector<std::pair<const FlagSpec*, std::string>> seen;
  bool positionalOnly = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (positionalOnly || a == "-" || a.empty() || a[0] != '-') {
      if (inv.command.empty() && !positionalOnly) inv.command = a;
      else inv.args.push_back(a);
      continue;
    }
    if (a == "--") {
      positionalOnly = true;
      continue;
    }
    std::string value;
    bool hasValue = false;
    const FlagSpec* f = findFlag(a, &value, &hasValue);
    if (!f) return absl::InvalidArgumentError(absl::StrCat("unknown flag: ", a));
    if (f->takesValue && !hasValue) {
      if (i + 1 >= args.size())
        return absl::InvalidArgumentError(absl::StrCat("flag needs an argument: ", a));
      value = args[++i];
    } else if (!f->takesValue && hasValue) {
      if (value != "true" && value != "false")
        return absl::InvalidArgumentError(absl::StrCat("flag takes no value: ", a));
      if (value == "false") continue;
    }
    seen.emplace_back(f, value);
  }
  // `help get` is `get --help`
  if (inv.command == "help") {
    inv.help = true;
    inv.command = inv.args.empty() ? "" : inv.args.front();
    inv.args.clear();
    if (!inv.command.empty() && !isCommand(inv.command))
      return absl::InvalidArgumentError(absl::StrCat("unknown command \"", inv.command, "\""));
    return inv;
  }
  const CommandSpec* cmd = inv.command.empty() ? nullptr : findCommand(inv.command);
  if (!inv.command.empty() && !cmd) {
    std::string hint = inv.command == "list" ? " (did you mean \"get\"?)" : "";
    return absl::InvalidArgumentError(absl::StrCat("unknown command \"", inv.command, "\"", hint));
  }
  for (const auto& [f, value] : seen) {
    if (f->name == "help") {
      inv.help = true;
      continue;
    }
    if (!f->global && cmd && !cmd->flags.contains(f->name))
      return absl::InvalidArgumentError(
          absl::StrCat("flag --", f->name, " does not apply to \"", inv.command, "\""));
    if (!f->global && !cmd)
      return absl::InvalidArgumentError(absl::StrCat("flag --", f->name, " needs a command"));
    if (f->name == "kubeconfig") inv.kubeconfig = value;
    else if (f->name == "context") inv.context = value;
    else if (f->name == "namespace") inv.ns = value;
    else if (f->name == "all-namespaces") inv.allNamespaces = true;
    else if (f->name == "output") inv.output = value;
    else if (f->name == "filename") inv.filename = value;
    else if (f->name == "comment") inv.comment = value;
    else if (f->name == "ticket") inv.ticket = value;
    else if (f->name == "reason") inv.reason = value;
    else if (f->name == "wait") inv.wait = true;
    else if (f->name == "timeout") {
      auto d = parseDuration(value);
      if (!d.ok()) return absl::InvalidArgumentError(absl::StrCat("--timeout: ", d.status().message()));
      inv.timeout = *d;
    } else if (f->name == "to-revision") {
      int64_t n = 0;
      if (!absl::SimpleAtoi(value, &n) || n < 1)
        return absl::InvalidArgumentError(
            absl::StrCat("--to-revision must be a positive number, got \"", value, "\""));
      inv.toRevision = n;
    }
  }
  if (inv.help || !cmd) return inv;

  int n = static_cast<int>(inv.args.size());
  if (n < cmd->minArgs || n > cmd->maxArgs) {
    std::string want = cmd->minArgs == cmd->maxArgs
                           ? absl::StrCat(cmd->minArgs == 0 ? "no" : std::to_string(cmd->minArgs),
                                          " argument", cmd->minArgs == 1 ? "" : "s")
                           : absl::StrCat(cmd->minArgs, " to ", cmd->maxArgs, " arguments");
    return absl::InvalidArgumentError(
        absl::StrCat("\"", inv.command, "\" takes ", want, ", got ", n, ": usage: ", cmd->synopsis));
  }
  if (!inv.output.empty()) {
    static const std::set<std::string> kGet = {"table", "wide", "yaml", "json", "name"};
    static const std::set<std::string> kHistory = {"table", "yaml", "json"};
    const auto& allowed = inv.command == "get" ? kGet : kHistory;
    if (!allowed.contains(inv.output))
      return absl::InvalidArgumentError(absl::StrCat(
          "unsupported output format \"", inv.output, "\" (one of: ", absl::StrJoin(allowed, ", "), ")"));
  }
  if (inv.allNamespaces && !inv.args.empty())
    return absl::InvalidArgumentError("a Patch name cannot be combined with --all-namespaces");
  if (inv.command == "create" && inv.filename.empty())
    return absl::InvalidArgumentError("create needs -f FILE (or -f - for stdin)");
  if (inv.command == "rollback") {
    if (inv.ticket.empty()) return absl::InvalidArgumentError("rollback needs --ticket (the trouble ticket)");
    if (inv.reason.empty())
      return absl::InvalidArgumentError("rollback needs --reason (why; it becomes the root cause)");
  }
  if ((inv.command == "rollback" || inv.command == "history")) {
    if (auto ref = parseWorkloadRef(inv.args[0]); !ref.ok()) return ref.status();
  }
  if (inv.command == "completion" && inv.args[0] != "bash")
    return absl::InvalidArgumentError("only bash completion is available: completion bash");
  if (inv.timeout.count() > 0 && (inv.command == "rollback" || inv.command == "create") && !inv.wait)
    return absl::InvalidArgumentError("--timeout applies with --wait");
  return inv;
}

std::string usage(std::string_view program, std::string_view command) {
  std::string prog(program);
  const char* globals =
      "Global flags:\n"
      "  --kubeconfig PATH   kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster)\n"
      "  --context NAME      kubeconfig context (default: current-context)\n"
      "  -n, --namespace NS  namespace (default: the context's namespace)\n"
      "  -h, --help          help for a command\n";
  if (const CommandSpec* c = command.empty() ? nullptr : findCommand(command)) {
    std::string out = absl::StrCat("Usage: ", prog, " ", c->synopsis, " [global flags]\n\n",
                                   absl::StrReplaceAll(c->help, {{"PROG", prog}}));
    if (!c->flags.empty()) {
      out += "\nFlags:\n";
      static const std::map<std::string, std::string> kHelp = {
          {"output", "  -o, --output FORMAT   table (default), wide, yaml, json, name"},
          {"all-namespaces", "  -A, --all-namespaces  list across all namespaces"},
          {"timeout", "  --timeout DURATION    give up after this long (e.g. 90s, 15m; default: none)"},
          {"comment", "  --comment TEXT        recorded with the decision"},
          {"to-revision", "  --to-revision N       the revision to restore (default: the newest)"},
          {"ticket", "  --ticket T            trouble ticket of the rollback (required)"},
          {"reason", "  --reason R            why: the rollback Patch's root cause (required)"},
          {"wait", "  --wait                follow the Patch to its end; exit 0 only if it Succeeded"},
          {"filename", "  -f, --filename FILE   the Patch manifest (YAML or JSON; - for stdin)"},
      };
      for (const auto& f : c->flags) out += kHelp.at(f) + "\n";
    }
    return out + "\n" + globals;
  }
  std::string out = absl::StrCat(
      prog, ": see and act on patchgate Patches with your kubeconfig.\n\nUsage: ", prog,
      " COMMAND [ARGS] [flags]\n\nCommands:\n");
  for (const auto& c : commands()) {
    std::string first(c.summary);
    std::string name(c.name);
    name.resize(12, ' ');
    absl::StrAppend(&out, "  ", name, first, "\n");
  }
  absl::StrAppend(&out, "\n", globals, "\nRun '", prog,
                  " COMMAND --help' for a command's flags and examples.\n"
                  "Exit codes: 0 ok, 1 failure (or the Patch failed), 2 usage error.\n");
  return out;
}

std::string bashCompletion(std::string_view program) {
  std::string cmds;
  for (const auto& c : commands()) absl::StrAppend(&cmds, cmds.empty() ? "" : " ", c.name);
  return absl::StrReplaceAll(
      R"BASH(# bash completion for patchctl (and kubectl-patchgate)
_patchctl() {
  local cur prev words cword
  if declare -F _init_completion >/dev/null; then _init_completion || return; else
    cur=${COMP_WORDS[COMP_CWORD]}; prev=${COMP_WORDS[COMP_CWORD-1]}; words=("${COMP_WORDS[@]}"); cword=$COMP_CWORD; fi
  local cmd="" i
  for ((i = 1; i < cword; i++)); do
    case ${words[i]} in -n|--namespace|--kubeconfig|--context|-o|--output|-f|--filename|--comment|--ticket|--reason|--to-revision|--timeout) ((i++));; -*) ;; *) cmd=${words[i]}; break;; esac
  done
  case $prev in
    -n|--namespace) COMPREPLY=($(compgen -W "$(kubectl get ns -o jsonpath='{.items[*].metadata.name}' 2>/dev/null)" -- "$cur")); return;;
    -o|--output) COMPREPLY=($(compgen -W "table wide yaml json name" -- "$cur")); return;;
    -f|--filename|--kubeconfig) COMPREPLY=($(compgen -f -- "$cur")); return;;
  esac
  if [[ -z $cmd ]]; then COMPREPLY=($(compgen -W "CMDS --kubeconfig --context --namespace --help" -- "$cur")); return; fi
  if [[ $cur == -* ]]; then COMPREPLY=($(compgen -W "--namespace --help --output --all-namespaces --timeout --comment --to-revision --ticket --reason --wait --filename" -- "$cur")); return; fi
  case $cmd in
    get|describe|watch|diff|approve|reject|report)
      local ns=() j
      for ((j = 1; j < cword; j++)); do [[ ${words[j]} == -n || ${words[j]} == --namespace ]] && ns=(-n "${words[j+1]}"); done
      COMPREPLY=($(compgen -W "$(PROG get -o name "${ns[@]}" 2>/dev/null | sed 's|.*/||')" -- "$cur"));;
    history|rollback) COMPREPLY=($(compgen -W "deployment/ statefulset/ daemonset/" -- "$cur")); compopt -o nospace 2>/dev/null;;
    completion) COMPREPLY=($(compgen -W "bash" -- "$cur"));;
    help) COMPREPLY=($(compgen -W "CMDS" -- "$cur"));;
  esac
}
complete -F _patchctl patchctl kubectl-patchgate
)BASH",
      {{"CMDS", cmds}, {"PROG", program == "kubectl patchgate" ? "kubectl-patchgate" : "patchctl"}});
}

}  // namespace patchgate::cli
