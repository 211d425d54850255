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
  State s{"/etc/rancher/k3s/registries.yaml", Original::kAbsent, {"a"}, {}, {}, {}};
  EXPECT_EQ(renderState(s), renderState(s));
  EXPECT_EQ(renderState(s).back(), '\n');
}

TEST(State, RejectsABrokenFileNamingItAndSayingWhatToDo) {
  // One literal in two pieces, named so that no list holds a suspicious concatenation.
  constexpr const char* kUnknownOriginal =
      R"({"version":1,"registries":{"path":"/r","original":"maybe",)"
      R"("mirrors":[],"configs":[]},"ca_files":[]})";
  for (const char* text :
       {"", "{", "[1]", "{\"version\": 2}", "{\"version\": 1}", kUnknownOriginal}) {
    auto parsed = parseState(text, "/var/lib/k3s-mirror-agent/state.json");
    ASSERT_FALSE(parsed.ok()) << text;
    EXPECT_NE(parsed.error().message.find("/var/lib/k3s-mirror-agent/state.json"),
              std::string::npos);
    EXPECT_NE(parsed.error().message.find("move it away"), std::string::npos);
  }
}

// A complete state whose version is no integer, or none that fits, is refused for its version
// (1.7e79 went through nlohmann's get<int>: undefined behaviour, which UBSan caught).
TEST(State, RefusesAVersionThatIsNoIntegerThatFits) {
  const std::string good = renderState(State{});
  ASSERT_TRUE(parseState(good, "state.json").ok());
  const std::string version = "\"version\": 1,";
  ASSERT_NE(good.find(version), std::string::npos) << good;
  for (const char* bad : {"1.7e79", "1.5", "\"1\"", "4294967297", "-4294967295", "null"}) {
    std::string text = good;
    text.replace(text.find(version), version.size(), "\"version\": " + std::string(bad) + ",");
    auto parsed = parseState(text, "state.json");
    ASSERT_FALSE(parsed.ok()) << text;
    EXPECT_NE(parsed.error().message.find("unsupported version"), std::string::npos)
        << parsed.error().message;
  }
}

// Restore removes the CA files the state lists: a state edited to name any other file must be
// refused, not acted on.
TEST(State, RefusesPathsThatAreNotTheAgentsOwn) {
  const std::string dir = "/usr/local/share/ca-certificates/k3s-mirror-agent/";
  for (const std::string& ca : {dir + "../../../../etc/passwd", std::string("/etc/passwd"),
                                dir + "sub/x.crt", dir + ".hidden.crt", dir + "x.pem", dir}) {
    State s{"/etc/rancher/k3s/registries.yaml", Original::kAbsent, {}, {}, {ca}, {}};
    auto parsed = parseState(renderState(s), "state.json");
    ASSERT_FALSE(parsed.ok()) << ca;
    EXPECT_NE(parsed.error().message.find("is not in " + dir.substr(0, dir.size() - 1)),
              std::string::npos)
        << parsed.error().message;
  }
  State elsewhere{"/etc/shadow", Original::kAbsent, {}, {}, {}, {}};
  auto parsed = parseState(renderState(elsewhere), "state.json");
  ASSERT_FALSE(parsed.ok());
  EXPECT_NE(parsed.error().message.find("is not a registries.yaml the agent writes"),
            std::string::npos);
  State rke2{"/etc/rancher/rke2/registries.yaml", Original::kAbsent, {}, {}, {dir + "h_1.crt"}, {}};
  EXPECT_TRUE(parseState(renderState(rke2), "state.json").ok());
}

}  // namespace
}  // namespace k3sma
