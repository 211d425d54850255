#include "common/diff.h"

#include <gtest/gtest.h>

namespace k3sma {
namespace {

TEST(UnifiedDiff, IsEmptyForEqualTexts) {
  EXPECT_EQ(unifiedDiff(std::string("a\n"), std::string("a\n"), "/f"), "");
  EXPECT_EQ(unifiedDiff(std::nullopt, std::nullopt, "/f"), "");
}

TEST(UnifiedDiff, ShowsChangedLinesWithContextLikeDiffU) {
  const std::string diff =
      unifiedDiff(std::string("a\nb\nc\n"), std::string("a\nB\nc\n"), "/etc/f");
  EXPECT_EQ(diff, "--- a/etc/f\n+++ b/etc/f\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n");
}

TEST(UnifiedDiff, LabelsAMissingSideDevNull) {
  const std::string created = unifiedDiff(std::nullopt, std::string("x\n"), "/f");
  EXPECT_EQ(created.rfind("--- /dev/null\n+++ b/f\n", 0), 0u) << created;
  EXPECT_NE(created.find("+x\n"), std::string::npos);
  const std::string removed = unifiedDiff(std::string("x\n"), std::nullopt, "/f");
  EXPECT_EQ(removed.rfind("--- a/f\n+++ /dev/null\n", 0), 0u) << removed;
}

}  // namespace
}  // namespace k3sma
