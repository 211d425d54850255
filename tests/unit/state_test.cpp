#include "common/state.h"

#include <gtest/gtest.h>

namespace k3sma {
namespace {

TEST(State, RoundTripsThroughItsFile) {
  State s{"/etc/rancher/k3s/registries.yaml",
          Original::kBackedUp,
          {"docker.io", "ghcr.io"},
          {"harbor.home.lab"},
          {"/usr/local/share/ca-certificates/k3s-mirror-agent/h.crt"},
          "1.29 no-default-endpoint"};
  auto parsed = parseState(renderState(s), "state.json");
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  EXPECT_EQ(parsed.value(), s);
}

TEST(State, RendersTheSameBytesForTheSameState) {
  State s{"/r", Original::kAbsent, {"a"}, {}, {}, {}};
  EXPECT_EQ(renderState(s), renderState(s));
  EXPECT_EQ(renderState(s).back(), '\n');
}

TEST(State, RejectsABrokenFileNamingItAndSayingWhatToDo) {
  for (const char* text : {"", "{", "{\"version\": 2}", "{\"version\": 1}",
                           R"({"version":1,"registries":{"path":"/r","original":"maybe",)"
                           R"("mirrors":[],"configs":[]},"ca_files":[]})"}) {
    auto parsed = parseState(text, "/var/lib/k3s-mirror-agent/state.json");
    ASSERT_FALSE(parsed.ok()) << text;
    EXPECT_NE(parsed.error().message.find("/var/lib/k3s-mirror-agent/state.json"),
              std::string::npos);
    EXPECT_NE(parsed.error().message.find("move it away"), std::string::npos);
  }
}

}  // namespace
}  // namespace k3sma
