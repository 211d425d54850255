#include "agent/registry.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>

#include "agent/preflight.h"
#include "agent/probe.h"
#include "common/digest.h"

namespace k3sma {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

// Answers from a script, by "METHOD URL" and, when a request carries one, its Authorization
// header; records every request. Unscripted requests get a 599, which no test expects.
class FakeHttp : public Http {
 public:
  using Answer = std::function<HttpResponse(const HttpRequest&)>;
  void on(const std::string& method_url, Answer answer) { script_[method_url] = std::move(answer); }
  void on(const std::string& method_url, const HttpResponse& response) {
    script_[method_url] = [response](const HttpRequest&) { return response; };
  }
  HttpResponse send(const HttpRequest& request) override {
    sent.push_back(request);
    auto it = script_.find(request.method + " " + request.url);
    if (it == script_.end()) {
      return {599, "", {}, "", {}, {}};
    }
    return it->second(request);
  }
  std::vector<std::string> lines() const {
    std::vector<std::string> out;
    for (const auto& r : sent) {
      out.push_back(r.method + " " + r.url);
    }
    return out;
  }
  std::vector<HttpRequest> sent;

 private:
  std::map<std::string, Answer> script_;
};

HttpResponse answer(int status, std::map<std::string, std::string> headers = {},
                    std::string body = "") {
  HttpResponse r;
  r.status = status;
  r.headers = std::move(headers);
  r.body = std::move(body);
  return r;
}

std::string authorizationOf(const HttpRequest& r) {
  for (const auto& h : r.headers) {
    if (h.rfind("Authorization: ", 0) == 0) {
      return h.substr(15);
    }
  }
  return "";
}

constexpr const char* kUrl = "https://harbor/v2/dockerhub-proxy/library/nginx/manifests/1.25";
constexpr const char* kPath = "dockerhub-proxy/library/nginx";
const std::string kDigest = "sha256:" + std::string(64, 'd');
constexpr const char* kChallenge =
    R"(Bearer realm="https://harbor/service/token",service="harbor-registry",scope="repository:dockerhub-proxy/library/nginx:pull")";
constexpr const char* kTokenUrl =
    "https://harbor/service/"
    "token?service=harbor-registry&scope=repository%3adockerhub-proxy%2flibrary%2fnginx%3apull";

// HEAD answers 401 without the token and 200 with it.
void scriptTokenRegistry(FakeHttp& http, const std::string& token_body) {
  http.on(std::string("HEAD ") + kUrl, [](const HttpRequest& r) {
    if (authorizationOf(r) == "Bearer T0K3N") {
      return answer(200, {{"docker-content-digest", kDigest}});
    }
    return answer(401, {{"www-authenticate", kChallenge}});
  });
  http.on(std::string("GET ") + kTokenUrl, answer(200, {}, token_body));
}

TEST(RegistryClient, ResolvesWithTheTokenTheRealmGivesAnonymously) {
  FakeHttp http;
  scriptTokenRegistry(http, R"({"token":"T0K3N","expires_in":300})");
  RegistryClient client(http, std::nullopt);
  const auto m = client.resolveManifest("docker.io/library/nginx:1.25", kUrl, kPath);
  EXPECT_TRUE(m.up) << m.error;
  EXPECT_EQ(m.http_status, 200);
  EXPECT_EQ(m.digest, kDigest);
  EXPECT_THAT(http.lines(),
              ElementsAre(std::string("HEAD ") + kUrl, std::string("GET ") + kTokenUrl,
                          std::string("HEAD ") + kUrl));
  EXPECT_EQ(authorizationOf(http.sent[1]), "");  // anonymous: no credentials to the realm
}

TEST(RegistryClient, TakesAnAccessTokenToo) {
  FakeHttp http;
  scriptTokenRegistry(http, R"({"access_token":"T0K3N"})");
  RegistryClient client(http, std::nullopt);
  EXPECT_TRUE(client.resolveManifest("nginx", kUrl, kPath).up);
}

TEST(RegistryClient, SendsTheCredentialsToTheRealmAsBasicAndNowhereElse) {
  FakeHttp http;
  scriptTokenRegistry(http, R"({"token":"T0K3N"})");
  RegistryClient client(http, Credentials{"robot$k3s", "s3cret"});
  EXPECT_TRUE(client.resolveManifest("nginx", kUrl, kPath).up);
  ASSERT_EQ(http.sent.size(), 3u);
  EXPECT_EQ(authorizationOf(http.sent[0]), "");
  EXPECT_EQ(authorizationOf(http.sent[1]), "Basic cm9ib3QkazNzOnMzY3JldA==");  // robot$k3s:s3cret
  EXPECT_EQ(authorizationOf(http.sent[2]), "Bearer T0K3N");
}

TEST(RegistryClient, AsksForTheScopeOfThePathWhenTheChallengeNamesNone) {
  FakeHttp http;
  http.on(std::string("HEAD ") + kUrl,
          answer(401, {{"www-authenticate", R"(Bearer realm="https://harbor/service/token")"}}));
  RegistryClient client(http, std::nullopt);
  (void)client.resolveManifest("nginx", kUrl, kPath);
  ASSERT_GE(http.sent.size(), 2u);
  EXPECT_EQ(
      http.sent[1].url,
      "https://harbor/service/token?scope=repository%3adockerhub-proxy%2flibrary%2fnginx%3apull");
}

TEST(RegistryClient, AsksWithTheOciAndDockerManifestTypes) {
  FakeHttp http;
  http.on(std::string("HEAD ") + kUrl, answer(200, {{"docker-content-digest", kDigest}}));
  RegistryClient client(http, std::nullopt);
  ASSERT_TRUE(client.resolveManifest("nginx", kUrl, kPath).up);
  const std::string accept = http.sent.at(0).headers.at(0);
  for (const char* type :
       {"application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.docker.distribution.manifest.v2+json"}) {
    EXPECT_THAT(accept, HasSubstr(type));
  }
}

TEST(RegistryClient, FallsBackToGetWhenHeadIsRefusedAndHashesTheBody) {
  FakeHttp http;
  const std::string manifest = R"({"schemaVersion":2})";
  http.on(std::string("HEAD ") + kUrl, answer(405));
  http.on(std::string("GET ") + kUrl, answer(200, {}, manifest));
  RegistryClient client(http, std::nullopt);
  const auto m = client.resolveManifest("nginx", kUrl, kPath);
  EXPECT_TRUE(m.up) << m.error;
  EXPECT_EQ(m.digest, "sha256:" + sha256Hex(manifest));
}

TEST(RegistryClient, NamesTheImageTheUrlAndTheRegistrysErrorCode) {
  FakeHttp http;
  http.on(std::string("HEAD ") + kUrl, answer(404));
  http.on(
      std::string("GET ") + kUrl,
      answer(404, {}, R"({"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]})"));
  RegistryClient client(http, std::nullopt);
  const auto m = client.resolveManifest("docker.io/library/nginx:1.25", kUrl, kPath);
  EXPECT_FALSE(m.up);
  EXPECT_EQ(m.http_status, 404);
  EXPECT_EQ(m.error, std::string("resolve docker.io/library/nginx:1.25 at ") + kUrl +
                         ": HTTP 404 MANIFEST_UNKNOWN (manifest unknown)");
}

TEST(RegistryClient, SaysUnauthorizedWhenTheTokenDoesNotGrantPull) {
  FakeHttp http;
  http.on(std::string("HEAD ") + kUrl, answer(401, {{"www-authenticate", kChallenge}}));
  http.on(std::string("GET ") + kUrl, answer(401, {{"www-authenticate", kChallenge}}));
  http.on(std::string("GET ") + kTokenUrl, answer(200, {}, R"({"token":"useless"})"));
  RegistryClient client(http, std::nullopt);
  const auto m = client.resolveManifest("nginx", kUrl, kPath);
  EXPECT_FALSE(m.up);
  EXPECT_THAT(m.error, HasSubstr("HTTP 401 UNAUTHORIZED"));
}

TEST(RegistryClient, ReportsARefusedTokenWithoutThePassword) {
  FakeHttp http;
  http.on(std::string("HEAD ") + kUrl, answer(401, {{"www-authenticate", kChallenge}}));
  http.on(std::string("GET ") + kTokenUrl,
          answer(401, {}, R"({"errors":[{"code":"UNAUTHORIZED","message":"bad"}]})"));
  RegistryClient client(http, Credentials{"robot$k3s", "s3cret"});
  const auto m = client.resolveManifest("nginx", kUrl, kPath);
  EXPECT_FALSE(m.up);
  EXPECT_THAT(m.error, HasSubstr("ask for a token at https://harbor/service/token: HTTP 401 "
                                 "UNAUTHORIZED (bad) (with registry.auth)"));
  EXPECT_THAT(m.error, Not(HasSubstr("s3cret")));
  EXPECT_THAT(m.error, Not(HasSubstr("cm9ib3Qk")));  // nor its base64
}

TEST(RegistryClient, AnswersABasicChallengeWithTheCredentials) {
  FakeHttp http;
  http.on(std::string("HEAD ") + kUrl, [](const HttpRequest& r) {
    return authorizationOf(r).rfind("Basic ", 0) == 0
               ? answer(200, {{"docker-content-digest", kDigest}})
               : answer(401, {{"www-authenticate", R"(Basic realm="harbor")"}});
  });
  RegistryClient with(http, Credentials{"u", "p"});
  EXPECT_TRUE(with.resolveManifest("nginx", kUrl, kPath).up);
  RegistryClient without(http, std::nullopt);
  EXPECT_THAT(without.resolveManifest("nginx", kUrl, kPath).error,
              HasSubstr("wants a password (Basic) and registry.auth is not set"));
}

TEST(RegistryClient, CountsTheCacheUpOn200Or401Only) {
  FakeHttp http;
  http.on("GET https://a/v2/", answer(401, {{"www-authenticate", kChallenge}}));
  http.on("GET https://b/v2/", answer(200));
  http.on("GET https://c/v2/", answer(503));
  RegistryClient client(http, std::nullopt);
  EXPECT_TRUE(client.probeV2("https://a").up);
  EXPECT_TRUE(client.probeV2("https://b").up);
  const auto down = client.probeV2("https://c");
  EXPECT_FALSE(down.up);
  EXPECT_EQ(down.error, "GET https://c/v2/: HTTP 503 (a registry answers 200 or 401)");
}

TEST(RegistryClient, PassesOnATransportError) {
  FakeHttp http;
  http.on(std::string("HEAD ") + kUrl, [](const HttpRequest&) {
    HttpResponse r;
    r.error = "HEAD x: Couldn't connect to server (Connection refused)";
    return r;
  });
  RegistryClient client(http, std::nullopt);
  const auto m = client.resolveManifest("nginx", kUrl, kPath);
  EXPECT_FALSE(m.up);
  EXPECT_EQ(m.http_status, 0);
  EXPECT_THAT(m.error, HasSubstr("Connection refused"));
}

TEST(RegistryErrorCode, ReadsTheFirstErrorAndIgnoresWhatIsNotJson) {
  EXPECT_EQ(registryErrorCode(R"({"errors":[{"code":"NAME_UNKNOWN","message":"no"},{}]})"),
            "NAME_UNKNOWN (no)");
  EXPECT_EQ(registryErrorCode("<html>502</html>"), "");
  EXPECT_EQ(registryErrorCode(R"({"errors":"x"})"), "");
}

Config harborConfig(MirrorMode mode) {
  Config c;
  c.registry.url = "https://harbor.home.lab";
  c.mirrors = {{"docker.io", "dockerhub-proxy"}};
  c.mode = mode;
  return c;
}

// Path mode: containerd's override_path puts the repository after the endpoint's path; rewrite
// mode: the repository is rewritten to <project>/<repository>. One Harbor URL either way.
TEST(ManifestLocation, IsTheSameHarborUrlInPathAndRewriteMode) {
  auto nginx = parseImageReference("docker.io/nginx:1.25").value();
  for (auto mode : {MirrorMode::kPath, MirrorMode::kRewrite}) {
    const auto where = manifestLocation(harborConfig(mode), nginx);
    EXPECT_EQ(where.url, "https://harbor.home.lab/v2/dockerhub-proxy/library/nginx/manifests/1.25");
    EXPECT_EQ(where.path, "dockerhub-proxy/library/nginx");
  }
}

Config verifying(Preflight preflight) {
  Config c = harborConfig(MirrorMode::kPath);
  c.verify.preflight = preflight;
  c.verify.images.push_back(
      {"docker.io/nginx:1", parseImageReference("docker.io/nginx:1").value(), "f:3"});
  return c;
}

ImageResolver failing(int& calls) {
  return [&calls](const Config&, const std::string&) {
    ++calls;
    ImageResult r;
    r.image = "docker.io/library/nginx:1";
    r.error = "resolve docker.io/library/nginx:1 at u: HTTP 404 MANIFEST_UNKNOWN";
    return std::vector<ImageResult>{r};
  };
}

TEST(Preflight, RequireStopsWithAProbeErrorNamingTheImage) {
  int calls = 0;
  const auto out = preflight(verifying(Preflight::kRequire), "", failing(calls));
  ASSERT_TRUE(out.error.has_value());
  EXPECT_EQ(out.error->kind, ErrorKind::kProbe);
  EXPECT_THAT(out.error->message,
              HasSubstr("nothing was changed: resolve docker.io/library/nginx:1"));
  EXPECT_EQ(calls, 1);
}

TEST(Preflight, WarnGoesOnWithAWarning) {
  int calls = 0;
  const auto out = preflight(verifying(Preflight::kWarn), "", failing(calls));
  EXPECT_FALSE(out.error.has_value());
  ASSERT_EQ(out.warnings.size(), 1u);
  EXPECT_THAT(out.warnings[0], HasSubstr("MANIFEST_UNKNOWN; applying anyway"));
}

TEST(Preflight, NoneAsksNothing) {
  int calls = 0;
  const auto out = preflight(verifying(Preflight::kNone), "", failing(calls));
  EXPECT_FALSE(out.error.has_value());
  EXPECT_TRUE(out.warnings.empty());
  EXPECT_EQ(calls, 0);
}

TEST(Preflight, PassesTheNewCaToTheResolver) {
  std::string seen;
  const ImageResolver resolver = [&seen](const Config&, const std::string& ca) {
    seen = ca;
    ImageResult r;
    r.up = true;
    return std::vector<ImageResult>{r};
  };
  const auto out = preflight(verifying(Preflight::kRequire), "NEW CA PEM", resolver);
  EXPECT_FALSE(out.error.has_value());
  EXPECT_EQ(seen, "NEW CA PEM");
}

}  // namespace
}  // namespace k3sma
