#include "common/challenge.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace k3sma {
namespace {

using ::testing::HasSubstr;

std::vector<Challenge> parsed(const std::string& text) {
  auto c = parseChallenges(text);
  if (!c) {
    ADD_FAILURE() << c.error().message;
    return {};
  }
  return c.value();
}

// What Harbor's registry sends for a repository (distribution's token auth).
TEST(WwwAuthenticate, ReadsHarborsBearerChallenge) {
  const auto c = parsed(
      R"(Bearer realm="https://harbor.home.lab/service/token",service="harbor-registry",scope="repository:dockerhub-proxy/library/nginx:pull")");
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].scheme, "bearer");
  EXPECT_EQ(c[0].params.at("realm"), "https://harbor.home.lab/service/token");
  EXPECT_EQ(c[0].params.at("service"), "harbor-registry");
  EXPECT_EQ(c[0].params.at("scope"), "repository:dockerhub-proxy/library/nginx:pull");
}

TEST(WwwAuthenticate, ReadsBasicWithSpacesAndCaseOfItsOwn) {
  const auto c = parsed(R"(BASIC  Realm = "Harbor, the registry" )");
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].scheme, "basic");
  EXPECT_EQ(c[0].params.at("realm"), "Harbor, the registry");
}

TEST(WwwAuthenticate, ReadsSeveralChallengesInOneHeader) {
  const auto c = parsed(R"(Basic realm="r1", Bearer realm="https://t/token",service=reg)");
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0].scheme, "basic");
  EXPECT_EQ(c[0].params.at("realm"), "r1");
  EXPECT_EQ(c[1].scheme, "bearer");
  EXPECT_EQ(c[1].params.at("service"), "reg");  // a token, not a quoted string
}

TEST(WwwAuthenticate, UnescapesQuotedPairs) {
  const auto c = parsed(R"(Bearer realm="a\"b\\c")");
  EXPECT_EQ(c.at(0).params.at("realm"), R"(a"b\c)");
}

TEST(WwwAuthenticate, ReadsASchemeWithoutParameters) {
  const auto c = parsed("Bearer");
  ASSERT_EQ(c.size(), 1u);
  EXPECT_TRUE(c[0].params.empty());
}

TEST(WwwAuthenticate, RefusesWhatCannotBeRead) {
  EXPECT_THAT(parseChallenges("").error().message, HasSubstr("no challenge"));
  EXPECT_THAT(parseChallenges(R"(Bearer realm="https://t/token)").error().message,
              HasSubstr("no closing quote"));
  EXPECT_THAT(parseChallenges(R"(Bearer realm="a" service="b")").error().message,
              HasSubstr("expected a comma after realm"));
  EXPECT_THAT(parseChallenges("=x").error().message, HasSubstr("expected an auth scheme"));
}

}  // namespace
}  // namespace k3sma
