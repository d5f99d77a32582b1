#include "common/failpoint.h"

#include <gtest/gtest.h>

#include <chrono>

namespace patchgate {
namespace {

TEST(Failpoints, RefuseCountsDownAndOnlyForItsPoint) {
  Failpoints fp("after:create:jobs,before:updateStatus:patches:Verifying=refuse:2,other=refuse:x");
  EXPECT_TRUE(fp.refuses("before:updateStatus:patches:Verifying"));
  EXPECT_FALSE(fp.refuses("before:updateStatus:patches:Promoting"));
  EXPECT_TRUE(fp.refuses("before:updateStatus:patches:Verifying"));
  EXPECT_FALSE(fp.refuses("before:updateStatus:patches:Verifying"));  // two only
  EXPECT_FALSE(fp.refuses("after:create:jobs"));  // an exit point is not a refusal
  EXPECT_FALSE(fp.refuses("other"));              // a malformed count refuses nothing
}

TEST(Failpoints, APausePausesOnceAndUnarmedPointsDoNothing) {
  Failpoints fp("after:patch:deployments=pause:1");
  auto t0 = std::chrono::steady_clock::now();
  fp.hit("after:patch:configmaps");  // not armed
  fp.hit("after:patch:deployments");
  auto paused = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(paused, std::chrono::milliseconds(950));
  t0 = std::chrono::steady_clock::now();
  fp.hit("after:patch:deployments");  // once only
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(500));
}

TEST(Failpoints, AnExitPointEndsTheProcess) {
  Failpoints fp("after:create:namespaces");
  fp.hit("after:create:jobs");
  EXPECT_EXIT(fp.hit("after:create:namespaces"), ::testing::ExitedWithCode(3), "failpoint hit; exiting");
}

}  // namespace
}  // namespace patchgate
