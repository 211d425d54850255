#include "common/plan.h"

#include <gtest/gtest.h>

namespace k3sma {
namespace {

TEST(MakePlan, IsEmptyWhenEveryFileAlreadyHoldsItsContent) {
  std::vector<DesiredFile> desired{{"/a", "x", 0600, FileRole::kRegistries},
                                   {"/b", std::nullopt, 0644, FileRole::kCa}};
  const auto plan = makePlan(desired, {{"/a", "x"}, {"/b", std::nullopt}});
  EXPECT_TRUE(plan.empty());
  EXPECT_FALSE(plan.restart_needed);
  EXPECT_FALSE(plan.update_ca_certificates);
}

TEST(MakePlan, AWrongModeAloneIsFixedWithoutARestart) {
  const auto plan =
      makePlan({{"/r", "same", 0600, FileRole::kRegistries}}, {{"/r", "same"}}, {{"/r", 0644}});
  ASSERT_EQ(plan.changes.size(), 1u);
  EXPECT_TRUE(plan.changes[0].mode_only);
  EXPECT_EQ(plan.changes[0].mode, 0600u);
  EXPECT_FALSE(plan.restart_needed);
  EXPECT_FALSE(plan.update_ca_certificates);
  EXPECT_TRUE(
      makePlan({{"/r", "same", 0600, FileRole::kRegistries}}, {{"/r", "same"}}, {{"/r", 0600}})
          .empty());
}

TEST(MakePlan, RegistriesChangeNeedsRestartButNotTheTrustStore) {
  const auto plan = makePlan({{"/r", "new", 0600, FileRole::kRegistries}}, {{"/r", "old"}});
  ASSERT_EQ(plan.changes.size(), 1u);
  EXPECT_EQ(plan.changes[0].before, "old");
  EXPECT_EQ(plan.changes[0].after, "new");
  EXPECT_TRUE(plan.restart_needed);
  EXPECT_FALSE(plan.update_ca_certificates);
}

TEST(MakePlan, CaChangeNeedsUpdateCaCertificatesAndRestart) {
  const auto plan = makePlan({{"/ca.crt", "pem", 0644, FileRole::kCa}}, {});
  ASSERT_EQ(plan.changes.size(), 1u);
  EXPECT_FALSE(plan.changes[0].before.has_value());
  EXPECT_TRUE(plan.update_ca_certificates);
  EXPECT_TRUE(plan.restart_needed);
}

TEST(MakePlan, RemovingAnObsoleteCaAlsoRebuildsTheTrustStore) {
  const auto plan =
      makePlan({{"/old.crt", std::nullopt, 0644, FileRole::kCa}}, {{"/old.crt", "pem"}});
  ASSERT_EQ(plan.changes.size(), 1u);
  EXPECT_FALSE(plan.changes[0].after.has_value());
  EXPECT_TRUE(plan.update_ca_certificates);
}

TEST(MakePlan, StateOrBackupChangesAloneNeedNoRestart) {
  const auto plan =
      makePlan({{"/s", "1", 0600, FileRole::kState}, {"/b", "2", 0600, FileRole::kBackup}}, {});
  EXPECT_EQ(plan.changes.size(), 2u);
  EXPECT_FALSE(plan.restart_needed);
  EXPECT_FALSE(plan.update_ca_certificates);
}

TEST(MakePlan, KeepsTheOrderOfTheDesiredFiles) {
  const auto plan = makePlan({{"/backup", "b", 0600, FileRole::kBackup},
                              {"/ca", "c", 0644, FileRole::kCa},
                              {"/reg", "r", 0600, FileRole::kRegistries},
                              {"/state", "s", 0600, FileRole::kState}},
                             {});
  ASSERT_EQ(plan.changes.size(), 4u);
  EXPECT_EQ(plan.changes[0].path, "/backup");
  EXPECT_EQ(plan.changes[1].path, "/ca");
  EXPECT_EQ(plan.changes[2].path, "/reg");
  EXPECT_EQ(plan.changes[3].path, "/state");
  EXPECT_EQ(plan.changes[1].mode, 0644u);
}

TEST(Steps, RebuildTheTrustStoreOnceAfterTheLastCaFileAndBeforeRegistries) {
  const auto plan = makePlan({{"/backup", "b", 0600, FileRole::kBackup},
                              {"/old.crt", std::nullopt, 0644, FileRole::kCa},
                              {"/new.crt", "c", 0644, FileRole::kCa},
                              {"/reg", "r", 0600, FileRole::kRegistries},
                              {"/state", "s", 0600, FileRole::kState}},
                             {{"/old.crt", "o"}});
  std::vector<std::string> order;
  for (const auto& step : steps(plan)) {
    order.push_back(step.change == nullptr ? "update-ca-certificates" : step.change->path);
  }
  EXPECT_EQ(order, (std::vector<std::string>{"/backup", "/old.crt", "/new.crt",
                                             "update-ca-certificates", "/reg", "/state"}));
}

TEST(Steps, RunNoCommandWhenNoCaChanged) {
  const auto plan = makePlan({{"/reg", "r", 0600, FileRole::kRegistries}}, {});
  const auto all = steps(plan);
  ASSERT_EQ(all.size(), 1u);
  EXPECT_NE(all[0].change, nullptr);
}

TEST(Steps, EndWithTheRebuildWhenACaFileIsLast) {
  const auto plan = makePlan({{"/ca.crt", "c", 0644, FileRole::kCa}}, {});
  const auto all = steps(plan);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[1].change, nullptr);
}

}  // namespace
}  // namespace k3sma
