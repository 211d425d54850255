#pragma once
// Golden files for rendered output: compare against tests/data/golden/<name>; with
// K3SMA_UPDATE_GOLDEN=1 in the environment, (re)write the file instead, for review in git diff.

#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "common/fs.h"

namespace k3sma::testing {

inline void expectGolden(const std::string& name, const std::string& actual) {
  const std::string path = std::string(K3SMA_GOLDEN_DIR) + "/" + name;
  if (const char* update = std::getenv("K3SMA_UPDATE_GOLDEN"); update && *update == '1') {
    ASSERT_TRUE(writeFileAtomic(path, actual, 0644).ok()) << path;
    return;
  }
  auto expected = readFile(path);
  ASSERT_TRUE(expected.ok()) << expected.error().message;
  ASSERT_TRUE(expected.value().has_value())
      << path << " is missing; run the test with K3SMA_UPDATE_GOLDEN=1 to create it";
  EXPECT_EQ(*expected.value(), actual) << "golden file " << path;
}

}  // namespace k3sma::testing
