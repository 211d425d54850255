#include "common/reference.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace k3sma {
namespace {

using ::testing::HasSubstr;

ImageReference parsed(const std::string& text) {
  auto ref = parseImageReference(text);
  if (!ref) {
    ADD_FAILURE() << ref.error().message;
    return {};
  }
  return ref.value();
}

std::string errorOf(const std::string& text) {
  auto ref = parseImageReference(text);
  if (ref) {
    ADD_FAILURE() << text << " was accepted as " << ref.value().canonical();
    return {};
  }
  return ref.error().message;
}

// Docker Hub's official images live under library/: containerd asks a mirror for
// .../library/nginx/manifests/..., so that is the path the cache must serve.
TEST(ImageReference, PutsDockerHubOfficialImagesUnderLibrary) {
  const auto r = parsed("docker.io/nginx");
  EXPECT_EQ(r.host, "docker.io");
  EXPECT_EQ(r.repository, "library/nginx");
  EXPECT_EQ(r.tag, "latest");
  EXPECT_EQ(r.digest, "");
  EXPECT_EQ(r.canonical(), "docker.io/library/nginx:latest");
}

TEST(ImageReference, ReadsAShortNameAsDockerHub) {
  EXPECT_EQ(parsed("nginx:1.25").canonical(), "docker.io/library/nginx:1.25");
  EXPECT_EQ(parsed("bitnami/redis:7").canonical(), "docker.io/bitnami/redis:7");
}

TEST(ImageReference, TreatsDockerHubsOtherNamesAsDockerIo) {
  EXPECT_EQ(parsed("index.docker.io/library/busybox:1.36").host, "docker.io");
  EXPECT_EQ(parsed("registry-1.docker.io/busybox:1.36").repository, "library/busybox");
}

TEST(ImageReference, AddsNoLibraryOutsideDockerHub) {
  const auto r = parsed("registry.k8s.io/pause:3.9");
  EXPECT_EQ(r.host, "registry.k8s.io");
  EXPECT_EQ(r.repository, "pause");
  EXPECT_EQ(r.tag, "3.9");
}

TEST(ImageReference, KeepsThePortInTheHostAndTellsItFromATag) {
  const auto r = parsed("registry.local:5000/team/app:1.2.3");
  EXPECT_EQ(r.host, "registry.local:5000");
  EXPECT_EQ(r.repository, "team/app");
  EXPECT_EQ(r.tag, "1.2.3");
  const auto no_tag = parsed("localhost:5000/app");
  EXPECT_EQ(no_tag.host, "localhost:5000");
  EXPECT_EQ(no_tag.tag, "latest");
}

TEST(ImageReference, ReadsLocalhostAsAHost) {
  EXPECT_EQ(parsed("localhost/app:1").host, "localhost");
}

TEST(ImageReference, AsksForTheManifestByDigestWhenPinned) {
  const std::string digest = "sha256:" + std::string(64, 'a');
  const auto pinned = parsed("ghcr.io/org/tool@" + digest);
  EXPECT_EQ(pinned.digest, digest);
  EXPECT_EQ(pinned.tag, "");
  EXPECT_EQ(pinned.manifestReference(), digest);
  const auto both = parsed("quay.io/org/tool:v1@" + digest);
  EXPECT_EQ(both.tag, "v1");
  EXPECT_EQ(both.manifestReference(), digest);
  EXPECT_EQ(both.canonical(), "quay.io/org/tool:v1@" + digest);
}

TEST(ImageReference, AcceptsTheSeparatorsOfTheGrammar) {
  EXPECT_EQ(parsed("ghcr.io/a.b/c_d/e__f/g-h--i:T_1.x-y").repository, "a.b/c_d/e__f/g-h--i");
}

TEST(ImageReference, RefusesWhatIsNotAReference) {
  EXPECT_THAT(errorOf(""), HasSubstr("empty"));
  EXPECT_THAT(errorOf("docker.io/Nginx:1"), HasSubstr("\"Nginx\" is not a repository path"));
  EXPECT_THAT(errorOf("Docker.io/nginx:1"), HasSubstr("lower case"));
  EXPECT_THAT(errorOf("docker.io/nginx:"), HasSubstr("the tag \"\""));
  EXPECT_THAT(errorOf("docker.io/nginx:-1"), HasSubstr("the tag \"-1\""));
  EXPECT_THAT(errorOf("docker.io/nginx:" + std::string(129, 'a')), HasSubstr("the tag"));
  EXPECT_THAT(errorOf("docker.io/nginx@sha256:abc"), HasSubstr("64 lower-case hex"));
  EXPECT_THAT(errorOf("docker.io/nginx@md5:" + std::string(64, 'a')), HasSubstr("sha256"));
  EXPECT_THAT(errorOf("docker.io/"), HasSubstr("repository name is missing"));
  EXPECT_THAT(errorOf("docker.io//nginx"), HasSubstr("\"\" is not a repository path"));
  EXPECT_THAT(errorOf("ghcr.io/a..b"), HasSubstr("not a repository path"));
  EXPECT_THAT(errorOf("ghcr.io/a_-b"), HasSubstr("not a repository path"));
  EXPECT_THAT(errorOf("ghcr.io/-ab"), HasSubstr("not a repository path"));
  EXPECT_THAT(errorOf("docker.io/nginx 1"), HasSubstr("white space"));
  EXPECT_THAT(errorOf("https://docker.io/nginx"), HasSubstr("not a valid image reference"));
}

}  // namespace
}  // namespace k3sma
