// patchctl's command line: flags anywhere, per-command checks, usage errors.
#include "cli/args.h"

#include <gtest/gtest.h>

namespace patchgate::cli {
namespace {

absl::StatusOr<Invocation> parse(std::vector<std::string> args) { return parseArgs(args); }

std::string errorOf(std::vector<std::string> args) {
  auto inv = parseArgs(args);
  return inv.ok() ? "" : std::string(inv.status().message());
}

TEST(ParseArgs, GlobalFlagsAnywhere) {
  auto inv = parse({"-n", "shop", "get", "fix", "--kubeconfig=/k", "--context", "dev", "-o", "yaml"});
  ASSERT_TRUE(inv.ok()) << inv.status();
  EXPECT_EQ(inv->command, "get");
  EXPECT_EQ(inv->args, std::vector<std::string>{"fix"});
  EXPECT_EQ(inv->ns, "shop");
  EXPECT_EQ(inv->kubeconfig, "/k");
  EXPECT_EQ(inv->context, "dev");
  EXPECT_EQ(inv->output, "yaml");
}

TEST(ParseArgs, ShortFlagsWithAttachedValues) {
  auto inv = parse({"get", "-nshop", "-ojson"});
  ASSERT_TRUE(inv.ok()) << inv.status();
  EXPECT_EQ(inv->ns, "shop");
  EXPECT_EQ(inv->output, "json");
  inv = parse({"get", "-A"});
  ASSERT_TRUE(inv.ok());
  EXPECT_TRUE(inv->allNamespaces);
}

TEST(ParseArgs, RollbackFlags) {
  auto inv = parse({"rollback", "deploy/checkout", "--to-revision", "3", "--ticket", "INC-1",
                    "--reason", "bad", "--wait", "--timeout", "2m"});
  ASSERT_TRUE(inv.ok()) << inv.status();
  EXPECT_EQ(inv->toRevision, 3);
  EXPECT_EQ(inv->ticket, "INC-1");
  EXPECT_EQ(inv->reason, "bad");
  EXPECT_TRUE(inv->wait);
  EXPECT_EQ(inv->timeout, std::chrono::seconds(120));
}

TEST(ParseArgs, UsageErrorsSayWhatIsWrong) {
  EXPECT_NE(errorOf({"rollback", "deploy/x", "--reason", "r"}).find("--ticket"), std::string::npos);
  EXPECT_NE(errorOf({"rollback", "deploy/x", "--ticket", "t"}).find("--reason"), std::string::npos);
  EXPECT_NE(errorOf({"rollback", "deploy/x", "--ticket", "t", "--reason", "r", "--to-revision", "0"})
                .find("positive"),
            std::string::npos);
  EXPECT_NE(errorOf({"frobnicate"}).find("unknown command \"frobnicate\""), std::string::npos);
  EXPECT_NE(errorOf({"list"}).find("did you mean \"get\""), std::string::npos);
  EXPECT_NE(errorOf({"get", "--bogus"}).find("unknown flag: --bogus"), std::string::npos);
  EXPECT_NE(errorOf({"describe"}).find("takes 1 argument"), std::string::npos);
  EXPECT_NE(errorOf({"get", "a", "b"}).find("0 to 1 arguments"), std::string::npos);
  EXPECT_NE(errorOf({"describe", "x", "--comment", "c"}).find("does not apply to \"describe\""),
            std::string::npos);
  EXPECT_NE(errorOf({"get", "-o", "xml"}).find("unsupported output format"), std::string::npos);
  EXPECT_NE(errorOf({"history", "x", "-o", "wide"}).find("unsupported output format"), std::string::npos);
  EXPECT_NE(errorOf({"create"}).find("-f FILE"), std::string::npos);
  EXPECT_NE(errorOf({"get", "-n"}).find("needs an argument"), std::string::npos);
  EXPECT_NE(errorOf({"history", "pod/x"}).find("Deployment, StatefulSet and DaemonSet"), std::string::npos);
  EXPECT_NE(errorOf({"history", "checkout"}).find("KIND/NAME"), std::string::npos);
  EXPECT_NE(errorOf({"get", "x", "-A"}).find("--all-namespaces"), std::string::npos);
  EXPECT_NE(errorOf({"watch", "x", "--timeout", "soon"}).find("--timeout"), std::string::npos);
  EXPECT_NE(errorOf({"create", "-f", "x", "--timeout", "1m"}).find("--wait"), std::string::npos);
  EXPECT_NE(errorOf({"completion", "zsh"}).find("bash"), std::string::npos);
}

TEST(ParseArgs, HelpForEveryCommand) {
  for (std::string cmd : {"get", "describe", "watch", "diff", "history", "approve", "reject",
                          "rollback", "create", "report", "completion"}) {
    auto inv = parse({cmd, "--help"});
    ASSERT_TRUE(inv.ok()) << cmd << ": " << inv.status();
    EXPECT_TRUE(inv->help);
    EXPECT_EQ(inv->command, cmd);
    std::string text = usage("patchctl", cmd);
    EXPECT_NE(text.find("Usage: patchctl " + cmd), std::string::npos) << text;
    EXPECT_NE(text.find("patchctl " + cmd), std::string::npos);
    EXPECT_NE(text.find("--kubeconfig"), std::string::npos);
  }
  auto inv = parse({"help", "rollback"});
  ASSERT_TRUE(inv.ok());
  EXPECT_TRUE(inv->help);
  EXPECT_EQ(inv->command, "rollback");
  EXPECT_NE(usage("kubectl patchgate", "").find("kubectl patchgate COMMAND"), std::string::npos);
  EXPECT_NE(usage("patchctl", "rollback").find("--to-revision N"), std::string::npos);
}

TEST(ParseArgs, DoubleDashEndsFlags) {
  auto inv = parse({"describe", "--", "-weird"});
  ASSERT_TRUE(inv.ok()) << inv.status();
  EXPECT_EQ(inv->args, std::vector<std::string>{"-weird"});
}

TEST(ParseDuration, GoStyleAndSeconds) {
  EXPECT_EQ(*parseDuration("90"), std::chrono::seconds(90));
  EXPECT_EQ(*parseDuration("45s"), std::chrono::seconds(45));
  EXPECT_EQ(*parseDuration("10m"), std::chrono::seconds(600));
  EXPECT_EQ(*parseDuration("1h30m"), std::chrono::seconds(5400));
  EXPECT_FALSE(parseDuration("").ok());
  EXPECT_EQ(*parseDuration("0"), std::chrono::seconds(0));
  EXPECT_FALSE(parseDuration("5x").ok());
  EXPECT_FALSE(parseDuration("m").ok());
  EXPECT_FALSE(parseDuration("-3").ok());
}

TEST(ParseDuration, OverflowIsAnError) {
  // Found by tests/fuzz duration_fuzzer (UBSan: signed overflow of n * 3600;
  // corpus/duration/regression-hours-overflow).
  EXPECT_FALSE(parseDuration("99200909022299221h").ok());
  EXPECT_EQ(*parseDuration("2562047788015215h"), std::chrono::seconds(2562047788015215LL * 3600));
  EXPECT_FALSE(parseDuration("2562047788015216h").ok());
  EXPECT_FALSE(parseDuration("2562047788015215h3600s").ok());  // the sum
}

TEST(ParseWorkloadRef, KindsLikeKubectl) {
  for (std::string k : {"Deployment", "deployment", "deployments", "deploy", "deployment.apps"}) {
    auto ref = parseWorkloadRef(k + "/checkout");
    ASSERT_TRUE(ref.ok()) << k;
    EXPECT_EQ(ref->kind, "Deployment");
    EXPECT_EQ(ref->name, "checkout");
  }
  EXPECT_EQ(parseWorkloadRef("sts/db")->kind, "StatefulSet");
  EXPECT_EQ(parseWorkloadRef("ds/agent")->kind, "DaemonSet");
  EXPECT_FALSE(parseWorkloadRef("deploy/").ok());
  EXPECT_FALSE(parseWorkloadRef("/x").ok());
  EXPECT_FALSE(parseWorkloadRef("deploy/a/b").ok());
}

TEST(BashCompletion, NamesCommandsAndBothPrograms) {
  std::string s = bashCompletion("patchctl");
  EXPECT_NE(s.find("complete -F _patchctl patchctl kubectl-patchgate"), std::string::npos);
  EXPECT_NE(s.find("rollback"), std::string::npos);
  EXPECT_NE(s.find("patchctl get -o name"), std::string::npos);
}

}  // namespace
}  // namespace patchgate::cli
