#include "common/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <iterator>
#include <map>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include "common/fs.h"

namespace k3sma {
namespace {

using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

constexpr const char* kFile = "/etc/k3s-mirror-agent/config.yaml";

Result<Config> parse(const std::string& text) { return parseConfig({{kFile, text}}); }

// Parses text that must be valid; a failure prints the message instead of aborting.
Config parseValid(const std::vector<ConfigSource>& sources) {
  auto config = parseConfig(sources);
  if (!config) {
    ADD_FAILURE() << config.error().message;
    return Config{};
  }
  return config.value();
}
Config parseValid(const std::string& text) { return parseValid({{kFile, text}}); }

std::string errorOf(const Result<Config>& config) {
  if (config) {
    ADD_FAILURE() << "the config was accepted";
    return {};
  }
  return config.error().message;
}

// The example of the README's "Configuration" section, verbatim as it was before k3s.reload and
// verify came.
constexpr const char* kSpecExample =
    R"(registry:                          # the pull-through cache every node pulls through
  url: https://harbor.home.lab     # scheme://host[:port]
  ca_file: /etc/k3s-mirror-agent/harbor-ca.pem   # PEM; optional when publicly trusted
  # insecure_skip_verify: false
  # auth:                          # only for private projects
  #   username: robot$k3s
  #   password_file: /etc/k3s-mirror-agent/registry-password   # must be 0600, root-owned
mirrors:                           # upstream registry -> proxy-cache project
  docker.io: dockerhub-proxy
  ghcr.io: ghcr-proxy
  quay.io: quay-proxy
# mode: path                       # path (default) | rewrite
k3s:
  distribution: k3s                # k3s | rke2: file and unit names
  unit: auto                       # auto | an explicit unit name
  restart: on-change               # on-change | never
  restart_timeout: 120s            # our own deadline for "restarted and healthy"
daemon:                            # only `run` reads these
  debounce: 2s                     # quiet time after a config change before applying
  splay: 30s                       # random wait of 0..splay before a restart
  drift: correct                   # correct | report: a managed file changed by hand
  probe_interval: 60s              # cache health probe; 0 turns it off
  metrics_textfile: ""             # e.g. /var/lib/prometheus/node-exporter/k3s_mirror_agent.prom
)";

// The smallest valid config: four lines, so invalid cases can add from line 5 on.
constexpr const char* kMinimal = R"(registry:
  url: https://harbor.home.lab
mirrors:
  docker.io: dockerhub-proxy
)";

// ---------------------------------------------------------------------------------------------
// Valid configs

// Credentials in registry.url are refused and never echoed, whatever else is wrong with it: the
// message goes to stderr, the JSON error and the world-readable status.json.
TEST(ConfigParser, NeverEchoesCredentialsOrQueriesOfTheCacheUrl) {
  for (const char* url :
       {"https://robot:hunter2@harbor.home.lab", "https://hunter2@h/v2/p", "ftp://u:hunter2@h",
        "u:hunter2@h", "https://h/p?token=hunter2", "https://h/#hunter2", "harbor?hunter2"}) {
    const auto message =
        errorOf(parse(std::string("registry:\n  url: \"") + url + "\"\nmirrors: {docker.io: p}\n"));
    EXPECT_THAT(message, HasSubstr("registry.url")) << url;
    EXPECT_THAT(message, Not(HasSubstr("hunter2"))) << message;
  }
}

// The cache's host[:port] is a file name (its CA, <host>.crt, written as .<host>.crt.tmp-PID):
// check must refuse what apply could not write.
TEST(ConfigParser, RefusesAHostTooLongForTheFileNameOfItsCa) {
  const std::string label(63, 'a');
  const std::string host253 = label + "." + label + "." + label + "." + std::string(61, 'b');
  EXPECT_THAT(errorOf(parse("registry: {url: \"https://" + host253 + "\"}\nmirrors: {a.io: p}\n")),
              HasSubstr("at most 238 fit the file name"));
  const std::string host238 = label + "." + label + "." + label + "." + std::string(46, 'c');
  EXPECT_TRUE(parse("registry: {url: \"https://" + host238 + "\"}\nmirrors: {a.io: p}\n").ok());
  EXPECT_THAT(errorOf(parse("registry: {url: \"https://" + std::string(64, 'a') +
                            ".lab\"}\nmirrors: {a.io: p}\n")),
              HasSubstr("is not a valid host name"));
}

TEST(ConfigParser, ReadsTheSpecExampleWithEveryField) {
  const Config c = parseValid(kSpecExample);

  EXPECT_EQ(c.registry.url, "https://harbor.home.lab");
  EXPECT_EQ(c.registry.scheme, "https");
  EXPECT_EQ(c.registry.host, "harbor.home.lab");
  EXPECT_EQ(c.registry.hostname, "harbor.home.lab");
  EXPECT_EQ(c.registry.port, 443);
  EXPECT_EQ(c.registry.ca_file, "/etc/k3s-mirror-agent/harbor-ca.pem");
  EXPECT_FALSE(c.registry.insecure_skip_verify);
  EXPECT_FALSE(c.registry.auth.has_value());

  const std::map<std::string, std::string> mirrors = {
      {"docker.io", "dockerhub-proxy"}, {"ghcr.io", "ghcr-proxy"}, {"quay.io", "quay-proxy"}};
  EXPECT_EQ(c.mirrors, mirrors);
  EXPECT_EQ(c.mode, MirrorMode::kPath);

  EXPECT_EQ(c.k3s.distribution, Distribution::kK3s);
  EXPECT_EQ(c.k3s.unit, "auto");
  EXPECT_EQ(c.k3s.restart, RestartPolicy::kOnChange);
  EXPECT_EQ(c.k3s.restart_timeout, seconds(120));

  EXPECT_EQ(c.daemon.debounce, seconds(2));
  EXPECT_EQ(c.daemon.splay, seconds(30));
  EXPECT_EQ(c.daemon.drift, DriftPolicy::kCorrect);
  EXPECT_EQ(c.daemon.probe_interval, seconds(60));
  EXPECT_EQ(c.daemon.metrics_textfile, "");
}

TEST(ConfigParser, FillsInTheDefaultsOfEveryOptionalKey) {
  const Config c = parseValid(kMinimal);

  EXPECT_EQ(c.registry.port, 443);
  EXPECT_EQ(c.registry.ca_file, "");
  EXPECT_FALSE(c.registry.insecure_skip_verify);
  EXPECT_FALSE(c.registry.auth.has_value());
  EXPECT_EQ(c.mode, MirrorMode::kPath);
  EXPECT_EQ(c.k3s.distribution, Distribution::kK3s);
  EXPECT_EQ(c.k3s.unit, "auto");
  EXPECT_EQ(c.k3s.restart, RestartPolicy::kOnChange);
  EXPECT_EQ(c.k3s.restart_timeout, seconds(120));
  EXPECT_EQ(c.daemon.debounce, seconds(2));
  EXPECT_EQ(c.daemon.splay, seconds(30));
  EXPECT_EQ(c.daemon.drift, DriftPolicy::kCorrect);
  EXPECT_EQ(c.daemon.probe_interval, seconds(60));
  EXPECT_EQ(c.daemon.metrics_textfile, "");
}

TEST(ConfigParser, ReadsAnExplicitValueForEveryKey) {
  const Config c = parseValid(R"(registry:
  url: https://harbor.home.lab:8443/
  ca_file: /etc/k3s-mirror-agent/harbor-ca.pem
  insecure_skip_verify: true
  auth:
    username: robot$k3s
    password_file: /etc/k3s-mirror-agent/registry-password
mirrors:
  docker.io: dockerhub-proxy
  registry.k8s.io: k8s-proxy
  localhost:5000: local_cache
mode: rewrite
k3s:
  distribution: rke2
  unit: rke2-server.service
  restart: never
  restart_timeout: 5m
daemon:
  debounce: 500ms
  splay: 1m30s
  drift: report
  probe_interval: 0
  metrics_textfile: /var/lib/prometheus/node-exporter/k3s_mirror_agent.prom
)");

  EXPECT_EQ(c.registry.url, "https://harbor.home.lab:8443");
  EXPECT_EQ(c.registry.host, "harbor.home.lab:8443");
  EXPECT_EQ(c.registry.hostname, "harbor.home.lab");
  EXPECT_EQ(c.registry.port, 8443);
  EXPECT_EQ(c.registry.ca_file, "/etc/k3s-mirror-agent/harbor-ca.pem");
  EXPECT_TRUE(c.registry.insecure_skip_verify);
  ASSERT_TRUE(c.registry.auth.has_value());
  EXPECT_EQ(c.registry.auth->username, "robot$k3s");
  EXPECT_EQ(c.registry.auth->password_file, "/etc/k3s-mirror-agent/registry-password");
  EXPECT_EQ(c.registry.auth->password, "") << "parseConfig reads no file";

  const std::map<std::string, std::string> mirrors = {{"docker.io", "dockerhub-proxy"},
                                                      {"registry.k8s.io", "k8s-proxy"},
                                                      {"localhost:5000", "local_cache"}};
  EXPECT_EQ(c.mirrors, mirrors);
  EXPECT_EQ(c.mode, MirrorMode::kRewrite);

  EXPECT_EQ(c.k3s.distribution, Distribution::kRke2);
  EXPECT_EQ(c.k3s.unit, "rke2-server.service");
  EXPECT_EQ(c.k3s.restart, RestartPolicy::kNever);
  EXPECT_EQ(c.k3s.restart_timeout, minutes(5));

  EXPECT_EQ(c.daemon.debounce, milliseconds(500));
  EXPECT_EQ(c.daemon.splay, seconds(90));
  EXPECT_EQ(c.daemon.drift, DriftPolicy::kReport);
  EXPECT_EQ(c.daemon.probe_interval, Duration{0});
  EXPECT_EQ(c.daemon.metrics_textfile, "/var/lib/prometheus/node-exporter/k3s_mirror_agent.prom");
}

TEST(ConfigParser, ReloadsHotByDefaultAndTakesReloadRestart) {
  EXPECT_EQ(parseValid(std::string(kMinimal)).k3s.reload, ReloadPolicy::kAuto);
  EXPECT_EQ(parseValid(std::string(kMinimal) + "k3s:\n  reload: restart\n").k3s.reload,
            ReloadPolicy::kRestart);
}

TEST(ConfigParser, CompletesAShortUnitNameWithService) {
  const Config c = parseValid(std::string(kMinimal) + "k3s:\n  unit: k3s-edge\n");
  EXPECT_EQ(c.k3s.unit, "k3s-edge.service");
}

TEST(ConfigParser, KeepsAUnitNameThatAlreadyEndsInService) {
  const Config c = parseValid(std::string(kMinimal) + "k3s:\n  unit: k3s-agent.service\n");
  EXPECT_EQ(c.k3s.unit, "k3s-agent.service");
}

TEST(ConfigParser, AcceptsATemplatedUnitName) {
  const Config c = parseValid(std::string(kMinimal) + "k3s:\n  unit: k3s@edge.service\n");
  EXPECT_EQ(c.k3s.unit, "k3s@edge.service");
}

TEST(ConfigParser, ReadsRewriteMode) {
  EXPECT_EQ(parseValid(std::string(kMinimal) + "mode: rewrite\n").mode, MirrorMode::kRewrite);
  EXPECT_EQ(parseValid(std::string(kMinimal) + "mode: path\n").mode, MirrorMode::kPath);
}

TEST(ConfigParser, DropsTheTrailingSlashOfTheCacheUrl) {
  const Config c = parseValid(R"(registry:
  url: https://harbor.home.lab/
mirrors:
  docker.io: dockerhub-proxy
)");
  EXPECT_EQ(c.registry.url, "https://harbor.home.lab");
  EXPECT_EQ(c.registry.host, "harbor.home.lab");
}

TEST(ConfigParser, ReadsAnIpv4CacheUrlWithAPort) {
  const Config c = parseValid(R"(registry:
  url: https://192.168.1.10:5000
mirrors:
  docker.io: dockerhub-proxy
)");
  EXPECT_EQ(c.registry.url, "https://192.168.1.10:5000");
  EXPECT_EQ(c.registry.host, "192.168.1.10:5000");
  EXPECT_EQ(c.registry.hostname, "192.168.1.10");
  EXPECT_EQ(c.registry.port, 5000);
}

TEST(ConfigParser, ReadsABracketedIpv6CacheUrlWithAPort) {
  const Config c = parseValid(R"(registry:
  url: https://[fd00::10]:5000
mirrors:
  docker.io: dockerhub-proxy
)");
  EXPECT_EQ(c.registry.url, "https://[fd00::10]:5000");
  EXPECT_EQ(c.registry.host, "[fd00::10]:5000");
  EXPECT_EQ(c.registry.hostname, "fd00::10");
  EXPECT_EQ(c.registry.port, 5000);
}

TEST(ConfigParser, GivesABracketedIpv6CacheUrlWithoutAPortTheHttpsDefault) {
  const Config c = parseValid(R"(registry:
  url: "https://[fd00::10]"
mirrors:
  docker.io: dockerhub-proxy
)");
  EXPECT_EQ(c.registry.host, "[fd00::10]");
  EXPECT_EQ(c.registry.hostname, "fd00::10");
  EXPECT_EQ(c.registry.port, 443);
}

TEST(ConfigParser, ReadsAnHttpCacheUrlWithPort80ByDefault) {
  const Config c = parseValid(R"(registry:
  url: http://harbor.home.lab
mirrors:
  docker.io: dockerhub-proxy
)");
  EXPECT_EQ(c.registry.url, "http://harbor.home.lab");
  EXPECT_EQ(c.registry.scheme, "http");
  EXPECT_EQ(c.registry.host, "harbor.home.lab");
  EXPECT_EQ(c.registry.port, 80);
}

TEST(ConfigParser, ReadsAnExplicitPortOnAnHttpCacheUrl) {
  const Config c = parseValid(R"(registry:
  url: http://harbor.home.lab:8080
mirrors:
  docker.io: dockerhub-proxy
)");
  EXPECT_EQ(c.registry.host, "harbor.home.lab:8080");
  EXPECT_EQ(c.registry.port, 8080);
}

TEST(ConfigParser, AcceptsSectionsWithOnlyComments) {
  const Config c = parseValid(R"(registry:
  url: https://harbor.home.lab
mirrors:
  docker.io: dockerhub-proxy
k3s:
  # distribution: rke2
daemon:
  # debounce: 5s
)");
  EXPECT_EQ(c.k3s.distribution, Distribution::kK3s);
  EXPECT_EQ(c.k3s.unit, "auto");
  EXPECT_EQ(c.daemon.debounce, seconds(2));
}

TEST(ConfigParser, AcceptsAnEmptyMetricsTextfileAsNone) {
  const Config c = parseValid(std::string(kMinimal) + "daemon:\n  metrics_textfile: \"\"\n");
  EXPECT_EQ(c.daemon.metrics_textfile, "");
}

TEST(ConfigParser, AcceptsProjectNamesThatFollowTheDockerPathComponentGrammar) {
  for (const std::string project :
       {"a", "0", "dockerhub-proxy", "docker.hub", "docker_hub", "docker__hub", "docker--hub",
        "docker---hub", "a.b_c-d", "proxy2", "2proxy"}) {
    SCOPED_TRACE(project);
    const Config c = parseValid(R"(registry:
  url: https://harbor.home.lab
mirrors:
  docker.io: )" + project + "\n");
    EXPECT_EQ(c.mirrors.at("docker.io"), project);
  }
}

TEST(ConfigParser, AcceptsUpstreamsWithAPort) {
  const Config c = parseValid(R"(registry:
  url: https://harbor.home.lab
mirrors:
  registry.local:5000: local-proxy
  10.0.0.5:5000: lan-proxy
)");
  EXPECT_EQ(c.mirrors.at("registry.local:5000"), "local-proxy");
  EXPECT_EQ(c.mirrors.at("10.0.0.5:5000"), "lan-proxy");
}

TEST(ConfigParser, SkipsTlsVerificationOnlyWhenAskedTo) {
  const Config c = parseValid(std::string(R"(registry:
  url: https://harbor.home.lab
  insecure_skip_verify: true
mirrors:
  docker.io: dockerhub-proxy
)"));
  EXPECT_TRUE(c.registry.insecure_skip_verify);
  EXPECT_FALSE(parseValid(R"(registry:
  url: https://harbor.home.lab
  insecure_skip_verify: false
mirrors:
  docker.io: dockerhub-proxy
)")
                   .registry.insecure_skip_verify);
}

TEST(ConfigParser, RecordsWhereEachKeyWasSet) {
  const Config c = parseValid(kSpecExample);
  EXPECT_EQ(c.originOf("registry.ca_file"), std::string(kFile) + ":3");
  EXPECT_EQ(c.originOf("registry.url"), std::string(kFile) + ":2");
  EXPECT_EQ(c.originOf("k3s.unit"), std::string(kFile) + ":15");
  EXPECT_EQ(c.originOf("daemon.metrics_textfile"), std::string(kFile) + ":23");
}

TEST(ConfigParser, RecordsWhereAuthWasSet) {
  const Config c = parseValid(R"(registry:
  url: https://harbor.home.lab
  auth:
    username: robot$k3s
    password_file: /etc/k3s-mirror-agent/registry-password
mirrors:
  docker.io: dockerhub-proxy
)");
  EXPECT_EQ(c.originOf("registry.auth.password_file"), std::string(kFile) + ":5");
}

TEST(ConfigParser, SaysConfigForTheOriginOfAKeyThatWasNeverSet) {
  const Config c = parseValid(kMinimal);
  EXPECT_EQ(c.originOf("registry.ca_file"), "config");
}

TEST(ConfigParser, AcceptsAnEmptyDropInFile) {
  const Config c =
      parseValid({{kFile, kMinimal}, {"/etc/k3s-mirror-agent/config.d/10-empty.yaml", ""}});
  EXPECT_EQ(c.registry.url, "https://harbor.home.lab");
}

TEST(ConfigParser, AcceptsADropInWithOnlyComments) {
  const Config c = parseValid(
      {{kFile, kMinimal}, {"/etc/k3s-mirror-agent/config.d/10-notes.yaml", "# nothing yet\n"}});
  EXPECT_EQ(c.mirrors.size(), 1u);
}

// ---------------------------------------------------------------------------------------------
// Drop-in merge

constexpr const char* kDropIn1 = "/etc/k3s-mirror-agent/config.d/10-site.yaml";
constexpr const char* kDropIn2 = "/etc/k3s-mirror-agent/config.d/20-node.yaml";

TEST(ConfigMerge, LetsALaterFileReplaceAnEarlierScalar) {
  const Config c = parseValid({
      {kFile, R"(registry:
  url: https://harbor.home.lab
mirrors:
  docker.io: dockerhub-proxy
daemon:
  debounce: 2s
  splay: 10s
)"},
      {kDropIn1, R"(registry:
  url: https://cache.site.lab:5000
daemon:
  debounce: 5s
)"},
  });
  EXPECT_EQ(c.registry.url, "https://cache.site.lab:5000");
  EXPECT_EQ(c.registry.host, "cache.site.lab:5000");
  EXPECT_EQ(c.registry.hostname, "cache.site.lab");
  EXPECT_EQ(c.registry.port, 5000);
  EXPECT_EQ(c.daemon.debounce, seconds(5));
  EXPECT_EQ(c.daemon.splay, seconds(10)) << "a key the drop-in does not name is kept";
  EXPECT_EQ(c.originOf("registry.url"), std::string(kDropIn1) + ":2");
  EXPECT_EQ(c.originOf("daemon.splay"), std::string(kFile) + ":7");
}

TEST(ConfigMerge, AppliesFilesInTheOrderGiven) {
  const Config c = parseValid({
      {kFile, std::string(kMinimal) + "k3s:\n  restart_timeout: 1m\n"},
      {kDropIn1, "k3s:\n  restart_timeout: 2m\n"},
      {kDropIn2, "k3s:\n  restart_timeout: 3m\n"},
  });
  EXPECT_EQ(c.k3s.restart_timeout, minutes(3));
  EXPECT_EQ(c.originOf("k3s.restart_timeout"), std::string(kDropIn2) + ":2");
}

TEST(ConfigMerge, MergesASectionKeyByKey) {
  const Config c = parseValid({
      {kFile, R"(registry:
  url: https://harbor.home.lab
mirrors:
  docker.io: dockerhub-proxy
)"},
      {kDropIn1, R"(registry:
  ca_file: /etc/k3s-mirror-agent/harbor-ca.pem
  auth:
    username: robot$k3s
)"},
      {kDropIn2, R"(registry:
  auth:
    password_file: /etc/k3s-mirror-agent/registry-password
)"},
  });
  EXPECT_EQ(c.registry.url, "https://harbor.home.lab");
  EXPECT_EQ(c.registry.ca_file, "/etc/k3s-mirror-agent/harbor-ca.pem");
  ASSERT_TRUE(c.registry.auth.has_value());
  EXPECT_EQ(c.registry.auth->username, "robot$k3s");
  EXPECT_EQ(c.registry.auth->password_file, "/etc/k3s-mirror-agent/registry-password");
}

TEST(ConfigMerge, TakesTheUnionOfMirrors) {
  const Config c = parseValid({
      {kFile, kMinimal},
      {kDropIn1, "mirrors:\n  ghcr.io: ghcr-proxy\n"},
      {kDropIn2, "mirrors:\n  quay.io: quay-proxy\n  registry.k8s.io: k8s-proxy\n"},
  });
  const std::map<std::string, std::string> mirrors = {{"docker.io", "dockerhub-proxy"},
                                                      {"ghcr.io", "ghcr-proxy"},
                                                      {"quay.io", "quay-proxy"},
                                                      {"registry.k8s.io", "k8s-proxy"}};
  EXPECT_EQ(c.mirrors, mirrors);
}

TEST(ConfigMerge, RefusesTheSameUpstreamInTwoFilesNamingBoth) {
  const auto message = errorOf(parseConfig({
      {kFile, kMinimal},
      {kDropIn1, "mirrors:\n  ghcr.io: ghcr-proxy\n  docker.io: other-proxy\n"},
  }));
  EXPECT_THAT(message, StartsWith(std::string(kDropIn1) + ":3: mirrors.docker.io:"));
  EXPECT_THAT(message, HasSubstr(std::string(kFile) + ":4"));
}

TEST(ConfigMerge, RefusesTheSameUpstreamInTwoFilesEvenWithTheSameProject) {
  const auto message = errorOf(parseConfig({
      {kFile, kMinimal},
      {kDropIn1, "mirrors:\n  docker.io: dockerhub-proxy\n"},
  }));
  EXPECT_THAT(message, StartsWith(std::string(kDropIn1) + ":2: mirrors.docker.io:"));
  EXPECT_THAT(message, HasSubstr("already set at " + std::string(kFile) + ":4"));
}

TEST(ConfigMerge, RefusesTheSameUpstreamInTwoDropInsNamingTheFirstDropIn) {
  const auto message = errorOf(parseConfig({
      {kFile, kMinimal},
      {kDropIn1, "# ghcr\nmirrors:\n  ghcr.io: ghcr-proxy\n"},
      {kDropIn2, "mirrors:\n  ghcr.io: ghcr-proxy2\n"},
  }));
  EXPECT_THAT(message, StartsWith(std::string(kDropIn2) + ":2: mirrors.ghcr.io:"));
  EXPECT_THAT(message, HasSubstr(std::string(kDropIn1) + ":3"));
}

TEST(ConfigMerge, NamesTheDropInThatHoldsAnError) {
  const auto message = errorOf(parseConfig({
      {kFile, kMinimal},
      {kDropIn1, "k3s:\n  restart: sometimes\n"},
  }));
  EXPECT_THAT(message, StartsWith(std::string(kDropIn1) + ":2: k3s.restart:"));
}

TEST(ConfigMerge, ChecksRequiredKeysOnlyAfterMerging) {
  const Config c = parseValid({
      {kFile, "mirrors:\n  docker.io: dockerhub-proxy\n"},
      {kDropIn1, "registry:\n  url: https://harbor.home.lab\n"},
  });
  EXPECT_EQ(c.registry.url, "https://harbor.home.lab");
}

TEST(ConfigMerge, ChecksTheCaFileAgainstTheMergedUrl) {
  const auto message = errorOf(parseConfig({
      {kFile, R"(registry:
  url: https://harbor.home.lab
  ca_file: /etc/k3s-mirror-agent/harbor-ca.pem
mirrors:
  docker.io: dockerhub-proxy
)"},
      {kDropIn1, "registry:\n  url: http://harbor.home.lab\n"},
  }));
  EXPECT_THAT(message, StartsWith(std::string(kFile) + ":3: registry.ca_file:"));
  EXPECT_THAT(message, HasSubstr("http://"));
}

// ---------------------------------------------------------------------------------------------
// Not configured yet: a config that sets neither registry.url nor mirrors is the package's
// example, not a mistake. It is its own kind, so the command line exits 2 and the daemon idles.

void expectUnconfigured(const Result<Config>& config, const std::string& file) {
  ASSERT_FALSE(config.ok()) << "the config was accepted";
  EXPECT_EQ(config.error().kind, ErrorKind::kUnconfigured) << config.error().message;
  EXPECT_THAT(config.error().message, StartsWith(file + ": not configured yet"));
}

TEST(UnconfiguredConfig, IsAnEmptyFile) { expectUnconfigured(parse(""), kFile); }

TEST(UnconfiguredConfig, IsAFileOfOnlyComments) {
  expectUnconfigured(parse("# registry:\n#   url: https://harbor.home.lab\n\n# mirrors:\n"), kFile);
}

TEST(UnconfiguredConfig, IsAnEmptyMainFileWithADaemonOnlyDropIn) {
  expectUnconfigured(parseConfig({{kFile, "# nothing yet\n"},
                                  {kDropIn1, "daemon:\n  debounce: 1s\n  probe_interval: 0s\n"}}),
                     kFile);
}

TEST(UnconfiguredConfig, IsOneThatSetsOnlyK3sAndDaemonSettings) {
  expectUnconfigured(parse("k3s:\n  restart: never\ndaemon:\n  drift: report\n"), kFile);
}

TEST(UnconfiguredConfig, StillRefusesAnInvalidKeyInsteadOfIdling) {
  const auto config = parse("# nothing yet\ndaemon:\n  debounce: soon\n");
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.error().kind, ErrorKind::kConfig);
  EXPECT_THAT(config.error().message, StartsWith(std::string(kFile) + ":3: daemon.debounce:"));
}

TEST(UnconfiguredConfig, IsNotAConfigWithOnlyTheRegistryUrlWhichLacksMirrors) {
  const auto config = parse("registry:\n  url: https://harbor.home.lab\n");
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.error().kind, ErrorKind::kConfig);
  EXPECT_EQ(config.error().message, std::string(kFile) +
                                        ": mirrors: is not set; add e.g. \"mirrors: "
                                        "{docker.io: dockerhub-proxy}\"");
}

TEST(UnconfiguredConfig, IsNotAConfigWithOnlyMirrorsWhichLacksTheRegistryUrl) {
  const auto config = parse("mirrors:\n  docker.io: dockerhub-proxy\n");
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.error().kind, ErrorKind::kConfig);
  EXPECT_THAT(config.error().message,
              StartsWith(std::string(kFile) + ": registry.url: is not set"));
}

// The example the package installs as /etc/k3s-mirror-agent/config.yaml (packaging/config.yaml):
// as shipped it is not configured; with its example block uncommented it is a valid config, so
// the example cannot fall behind the schema. The black-box test example_config_is_valid.sh runs
// `check` on both.
std::string shippedExample() {
  auto text = readFile(K3SMA_EXAMPLE_CONFIG);
  if (!text.ok() || !text.value()) {
    ADD_FAILURE() << "cannot read " << K3SMA_EXAMPLE_CONFIG;
    return {};
  }
  return *text.value();
}

// Removes the leading "# " of every line from the one starting "# registry:" on.
std::string uncommentExample(const std::string& text) {
  std::string out;
  bool in_example = false;
  std::string::size_type start = 0;
  while (start < text.size()) {
    auto end = text.find('\n', start);
    end = end == std::string::npos ? text.size() : end + 1;
    std::string line = text.substr(start, end - start);
    in_example = in_example || line.rfind("# registry:", 0) == 0;
    if (in_example && line.rfind("# ", 0) == 0) {
      line.erase(0, 2);
    }
    out += line;
    start = end;
  }
  return out;
}

TEST(ShippedExampleConfig, IsNotConfiguredAsShipped) {
  expectUnconfigured(parseConfig({{kDefaultConfigPath, shippedExample()}}), kDefaultConfigPath);
}

TEST(ShippedExampleConfig, IsValidWithItsExampleUncommented) {
  const std::string example = uncommentExample(shippedExample());
  ASSERT_NE(example, shippedExample()) << "no line starts with \"# registry:\"";
  const Config c = parseValid({{kDefaultConfigPath, example}});
  EXPECT_EQ(c.registry.url, "https://harbor.home.lab");
  EXPECT_EQ(c.registry.ca_file, "/etc/k3s-mirror-agent/harbor-ca.pem");
  EXPECT_FALSE(c.registry.auth.has_value());
  EXPECT_EQ(c.mirrors, (std::map<std::string, std::string>{{"docker.io", "dockerhub-proxy"},
                                                           {"ghcr.io", "ghcr-proxy"},
                                                           {"quay.io", "quay-proxy"}}));
  EXPECT_EQ(c.mode, MirrorMode::kPath);
  EXPECT_EQ(c.k3s.restart_timeout, seconds(120));
  EXPECT_EQ(c.daemon.probe_interval, seconds(60));
}

// ---------------------------------------------------------------------------------------------
// Invalid configs: every one names the file, the line and the key.

struct InvalidCase {
  std::string name;    // the test name's suffix
  std::string yaml;    // the whole file
  int line;            // 1-based; 0 for a problem of the whole config (a missing key)
  std::string key;     // as the message names it
  std::string reason;  // a part of the reason
};

// NOLINTNEXTLINE(readability-identifier-naming): GoogleTest looks PrintTo up by this name
void PrintTo(const InvalidCase& c, std::ostream* os) { *os << c.name; }

class InvalidConfig : public ::testing::TestWithParam<InvalidCase> {};

TEST_P(InvalidConfig, IsRefusedWithFileLineAndKey) {
  const auto& c = GetParam();
  const auto message = errorOf(parse(c.yaml));
  // "<file>:<line>: <key>: <reason>", or "<file>: <key>: <reason>" for the whole config.
  // Appended piece by piece: GCC 12 -O3 reports a false -Wrestrict for ":" + std::to_string().
  std::string where = kFile;
  if (c.line > 0) {
    where += ':';
    where += std::to_string(c.line);
  }
  where += ':';
  EXPECT_THAT(message, StartsWith(where + " " + c.key)) << c.yaml;
  EXPECT_THAT(message, HasSubstr(c.reason));
}

const InvalidCase kInvalidCases[] = {
    // Unknown keys
    {"UnknownTopLevelKey", std::string(kMinimal) + "mirror_mode: path\n", 5,
     "mirror_mode:", "unknown key"},
    {"UnknownRegistryKey", R"(registry:
  url: https://harbor.home.lab
  cafile: /etc/k3s-mirror-agent/harbor-ca.pem
mirrors:
  docker.io: dockerhub-proxy
)",
     3, "registry.cafile:", "unknown key"},
    {"UnknownK3sKey", std::string(kMinimal) + "k3s:\n  units: k3s\n", 6,
     "k3s.units:", "unknown key"},
    {"UnknownDaemonKey", std::string(kMinimal) + "daemon:\n  debounce: 2s\n  splay_max: 30s\n", 7,
     "daemon.splay_max:", "unknown key"},
    {"UnknownAuthKey", R"(registry:
  url: https://harbor.home.lab
  auth:
    username: robot$k3s
    user: robot$k3s
    password_file: /etc/k3s-mirror-agent/registry-password
mirrors:
  docker.io: dockerhub-proxy
)",
     5, "registry.auth.user:", "unknown key"},
    {"InlinePassword", R"(registry:
  url: https://harbor.home.lab
  auth:
    username: robot$k3s
    password: hunter2
mirrors:
  docker.io: dockerhub-proxy
)",
     5, "registry.auth.password:", "password_file"},

    // Wrong types
    {"ListWhereAScalarIsExpected", R"(registry:
  url: [https://harbor.home.lab, https://backup.home.lab]
mirrors:
  docker.io: dockerhub-proxy
)",
     2, "registry.url:", "not a list"},
    {"MappingWhereAScalarIsExpected", std::string(kMinimal) + "k3s:\n  restart: {when: always}\n",
     6, "k3s.restart:", "not a mapping"},
    {"KeyWithoutAValue", R"(registry:
  url:
mirrors:
  docker.io: dockerhub-proxy
)",
     2, "registry.url:", "has no value"},
    {"ScalarWhereASectionIsExpected", std::string(kMinimal) + "k3s: k3s\n", 5,
     "k3s:", "must be a mapping"},
    {"ListWhereTheRegistrySectionIsExpected", R"(registry:
  - https://harbor.home.lab
mirrors:
  docker.io: dockerhub-proxy
)",
     1, "registry:", "must be a mapping"},
    {"ScalarWhereTheAuthSectionIsExpected", R"(registry:
  url: https://harbor.home.lab
  auth: robot$k3s
mirrors:
  docker.io: dockerhub-proxy
)",
     3, "registry.auth:", "must be a mapping"},
    {"MirrorsAsAList", R"(registry:
  url: https://harbor.home.lab
mirrors:
  - docker.io
  - ghcr.io
)",
     3, "mirrors:", "must be a mapping"},
    {"MirrorsAsAScalar", R"(registry:
  url: https://harbor.home.lab
mirrors: docker.io
)",
     3, "mirrors:", "must be a mapping"},
    {"TopLevelList", R"(- registry
- mirrors
)",
     1, "the top level:", "must be a mapping"},

    // The cache URL
    {"UrlWithoutScheme", R"(registry:
  url: harbor.home.lab
mirrors:
  docker.io: dockerhub-proxy
)",
     2, "registry.url:", "must start with https:// or http://"},
    {"UrlWithFtpScheme", R"(registry:
  url: ftp://harbor.home.lab
mirrors:
  docker.io: dockerhub-proxy
)",
     2, "registry.url:", "must start with https:// or http://"},
    {"UrlWithAPath", R"(registry:
  url: https://harbor.home.lab/dockerhub-proxy
mirrors:
  docker.io: dockerhub-proxy
)",
     2, "registry.url:", "without a path"},
    {"UrlWithAQuery", R"(registry:
  url: https://harbor.home.lab?ns=docker.io
mirrors:
  docker.io: dockerhub-proxy
)",
     2, "registry.url:", "without a path"},
    {"UrlWithCredentials", R"(registry:
  url: https://robot:secret@harbor.home.lab
mirrors:
  docker.io: dockerhub-proxy
)",
     2, "registry.url:", "credentials"},
    {"UrlWithPortZero", R"(registry:
  url: https://harbor.home.lab:0
mirrors:
  docker.io: dockerhub-proxy
)",
     2, "registry.url:", "from 1 to 65535"},
    {"UrlWithPortAbove65535", R"(registry:
  url: https://harbor.home.lab:70000
mirrors:
  docker.io: dockerhub-proxy
)",
     2, "registry.url:", "from 1 to 65535"},
    {"UrlWithALeadingZeroInThePort", R"(registry:
  url: https://harbor.home.lab:08443
mirrors:
  docker.io: dockerhub-proxy
)",
     2, "registry.url:", "from 1 to 65535"},
    {"UrlWithANonNumericPort", R"(registry:
  url: https://harbor.home.lab:abc
mirrors:
  docker.io: dockerhub-proxy
)",
     2, "registry.url:", "from 1 to 65535"},
    {"UrlWithAColonButNoPort", R"(registry:
  url: "https://harbor.home.lab:"
mirrors:
  docker.io: dockerhub-proxy
)",
     2, "registry.url:", "port after : is missing"},
    {"UrlWithAnEmptyHost", R"(registry:
  url: https://:5000
mirrors:
  docker.io: dockerhub-proxy
)",
     2, "registry.url:", "host is missing"},
    {"UrlWithNothingAfterTheScheme", R"(registry:
  url: https://
mirrors:
  docker.io: dockerhub-proxy
)",
     2, "registry.url:", "host is missing"},
    {"UrlWithAnInvalidHostName", R"(registry:
  url: https://harbor_cache.home.lab
mirrors:
  docker.io: dockerhub-proxy
)",
     2, "registry.url:", "not a valid host name"},
    {"UrlWithAnUnclosedIpv6Bracket", R"(registry:
  url: https://[fd00::10
mirrors:
  docker.io: dockerhub-proxy
)",
     2, "registry.url:", "closing ]"},
    {"UrlWithANonIpv6InBrackets", R"(registry:
  url: https://[harbor.home.lab]
mirrors:
  docker.io: dockerhub-proxy
)",
     2, "registry.url:", "not an IPv6 address"},

    // Mirror keys (upstreams)
    {"MirrorKeyWithAScheme", R"(registry:
  url: https://harbor.home.lab
mirrors:
  https://docker.io: dockerhub-proxy
)",
     4, "mirrors.https://docker.io:", "without a scheme"},
    {"MirrorKeyWithAPath", R"(registry:
  url: https://harbor.home.lab
mirrors:
  docker.io/library: dockerhub-proxy
)",
     4, "mirrors.docker.io/library:", "without a path"},
    {"MirrorKeyInUpperCase", R"(registry:
  url: https://harbor.home.lab
mirrors:
  Docker.io: dockerhub-proxy
)",
     4, "mirrors.Docker.io:", "lower case"},
    {"WildcardMirror", R"(registry:
  url: https://harbor.home.lab
mirrors:
  docker.io: dockerhub-proxy
  "*": catch-all
)",
     5, "mirrors.*:", "wildcard"},
    {"MirrorKeyWithPortZero", R"(registry:
  url: https://harbor.home.lab
mirrors:
  registry.local:0: local-proxy
)",
     4, "mirrors.registry.local:0:", "from 1 to 65535"},
    {"MirrorKeyWithAnInvalidHostName", R"(registry:
  url: https://harbor.home.lab
mirrors:
  docker..io: dockerhub-proxy
)",
     4, "mirrors.docker..io:", "not a valid host name"},
    {"MirrorKeyThatIsAList", R"(registry:
  url: https://harbor.home.lab
mirrors:
  [docker.io, ghcr.io]: dockerhub-proxy
)",
     4, "mirrors:", "registry host names"},

    // Projects: one repository path component, [a-z0-9]+ ( ( [._] | __ | -+ ) [a-z0-9]+ )*
    {"ProjectInUpperCase", R"(registry:
  url: https://harbor.home.lab
mirrors:
  docker.io: DockerHub
)",
     4, "mirrors.docker.io:", "not a valid repository path component"},
    {"ProjectWithALeadingDash", R"(registry:
  url: https://harbor.home.lab
mirrors:
  docker.io: -proxy
)",
     4, "mirrors.docker.io:", "not a valid repository path component"},
    {"ProjectWithATrailingDash", R"(registry:
  url: https://harbor.home.lab
mirrors:
  docker.io: proxy-
)",
     4, "mirrors.docker.io:", "not a valid repository path component"},
    {"ProjectWithASlash", R"(registry:
  url: https://harbor.home.lab
mirrors:
  docker.io: proxies/dockerhub
)",
     4, "mirrors.docker.io:", "not a valid repository path component"},
    {"ProjectWithThreeUnderscores", R"(registry:
  url: https://harbor.home.lab
mirrors:
  docker.io: docker___hub
)",
     4, "mirrors.docker.io:", "not a valid repository path component"},
    {"ProjectWithTwoDots", R"(registry:
  url: https://harbor.home.lab
mirrors:
  docker.io: docker..hub
)",
     4, "mirrors.docker.io:", "not a valid repository path component"},
    {"ProjectWithADashBeforeAnUnderscore", R"(registry:
  url: https://harbor.home.lab
mirrors:
  docker.io: docker-_hub
)",
     4, "mirrors.docker.io:", "not a valid repository path component"},
    {"ProjectWithADotBeforeADash", R"(registry:
  url: https://harbor.home.lab
mirrors:
  docker.io: docker.-hub
)",
     4, "mirrors.docker.io:", "not a valid repository path component"},
    {"EmptyProject", R"(registry:
  url: https://harbor.home.lab
mirrors:
  docker.io: ""
)",
     4, "mirrors.docker.io:", "not a valid repository path component"},
    {"ProjectWithASpace", R"(registry:
  url: https://harbor.home.lab
mirrors:
  docker.io: docker hub
)",
     4, "mirrors.docker.io:", "not a valid repository path component"},
    {"ProjectMissing", R"(registry:
  url: https://harbor.home.lab
mirrors:
  docker.io:
  ghcr.io: ghcr-proxy
)",
     4, "mirrors.docker.io:", "has no value"},

    // Duplicate keys in one mapping
    {"DuplicateKeyInASection", R"(registry:
  url: https://harbor.home.lab
  url: https://backup.home.lab
mirrors:
  docker.io: dockerhub-proxy
)",
     3, "registry.url:", "duplicate key"},
    {"DuplicateMirror", R"(registry:
  url: https://harbor.home.lab
mirrors:
  docker.io: dockerhub-proxy
  ghcr.io: ghcr-proxy
  docker.io: other-proxy
)",
     6, "mirrors.docker.io:", "duplicate key"},
    {"DuplicateSection", std::string(kMinimal) + "registry:\n  ca_file: /etc/ca.pem\n", 5,
     "registry:", "duplicate key"},

    // Durations
    {"DurationWithoutAUnit", std::string(kMinimal) + "daemon:\n  debounce: 2\n", 6,
     "daemon.debounce:", "is not a duration"},
    {"DurationWithAnUnknownUnit", std::string(kMinimal) + "daemon:\n  splay: 2x\n", 6,
     "daemon.splay:", "is not a duration"},
    {"NegativeDuration", std::string(kMinimal) + "daemon:\n  probe_interval: -1s\n", 6,
     "daemon.probe_interval:", "is not a duration"},
    {"FractionalDuration", std::string(kMinimal) + "k3s:\n  restart_timeout: 1.5s\n", 6,
     "k3s.restart_timeout:", "is not a duration"},
    {"DurationWithoutANumber", std::string(kMinimal) + "daemon:\n  debounce: s\n", 6,
     "daemon.debounce:", "is not a duration"},
    {"DurationWithUnitsOutOfOrder", std::string(kMinimal) + "daemon:\n  splay: 1s2m\n", 6,
     "daemon.splay:", "is not a duration"},
    {"DurationOfCenturies", std::string(kMinimal) + "k3s:\n  restart_timeout: 999999999h\n", 6,
     "k3s.restart_timeout:", "is not a duration"},
    {"ZeroRestartTimeout", std::string(kMinimal) + "k3s:\n  restart_timeout: 0\n", 6,
     "k3s.restart_timeout:", "longer than 0"},

    // Booleans and choices
    {"YesForABoolean", R"(registry:
  url: https://harbor.home.lab
  insecure_skip_verify: yes
mirrors:
  docker.io: dockerhub-proxy
)",
     3, "registry.insecure_skip_verify:", "must be true or false"},
    {"BogusMode", std::string(kMinimal) + "mode: mirror\n", 5, "mode:", "path or rewrite"},
    {"BogusDistribution", std::string(kMinimal) + "k3s:\n  distribution: k8s\n", 6,
     "k3s.distribution:", "k3s or rke2"},
    {"BogusRestart", std::string(kMinimal) + "k3s:\n  restart: always\n", 6,
     "k3s.restart:", "on-change or never"},
    {"BogusReload", std::string(kMinimal) + "k3s:\n  reload: never\n", 6,
     "k3s.reload:", "auto or restart"},
    {"BogusDrift", std::string(kMinimal) + "daemon:\n  drift: ignore\n", 6,
     "daemon.drift:", "correct or report"},

    // Unit names and paths
    {"UnitWithABadCharacter", std::string(kMinimal) + "k3s:\n  unit: k3s/agent.service\n", 6,
     "k3s.unit:", "not a systemd unit name"},
    {"UnitWithASpace", std::string(kMinimal) + "k3s:\n  unit: k3s agent\n", 6,
     "k3s.unit:", "not a systemd unit name"},
    {"UnitThatIsNotAService", std::string(kMinimal) + "k3s:\n  unit: k3s.socket\n", 6,
     "k3s.unit:", "must be a .service unit"},
    {"RelativeMetricsTextfile", std::string(kMinimal) + "daemon:\n  metrics_textfile: k3s.prom\n",
     6, "daemon.metrics_textfile:", "absolute path"},
    {"MetricsTextfileNotEndingInProm",
     std::string(kMinimal) + "daemon:\n  metrics_textfile: /var/lib/node-exporter/k3s.txt\n", 6,
     "daemon.metrics_textfile:", ".prom"},
    {"RelativeCaFile", R"(registry:
  url: https://harbor.home.lab
  ca_file: harbor-ca.pem
mirrors:
  docker.io: dockerhub-proxy
)",
     3, "registry.ca_file:", "absolute path"},
    {"RelativePasswordFile", R"(registry:
  url: https://harbor.home.lab
  auth:
    username: robot$k3s
    password_file: registry-password
mirrors:
  docker.io: dockerhub-proxy
)",
     5, "registry.auth.password_file:", "absolute path"},
    {"EmptyUsername", R"(registry:
  url: https://harbor.home.lab
  auth:
    username: ""
    password_file: /etc/k3s-mirror-agent/registry-password
mirrors:
  docker.io: dockerhub-proxy
)",
     4, "registry.auth.username:", "must not be empty"},

    // YAML itself
    {"InvalidYamlSyntax", R"(registry:
  url: https://harbor.home.lab
 ca_file: /etc/k3s-mirror-agent/harbor-ca.pem
mirrors:
  docker.io: dockerhub-proxy
)",
     3, "invalid YAML", "invalid YAML"},
    {"TabIndentation", "registry:\n\turl: https://harbor.home.lab\n", 2, "invalid YAML",
     "invalid YAML"},
    {"TwoYamlDocuments", R"(registry:
  url: https://harbor.home.lab
mirrors:
  docker.io: dockerhub-proxy
---
mirrors:
  ghcr.io: ghcr-proxy
)",
     6, "more than one YAML document", "one config in each file"},

    // Checks over the whole config
    {"MissingRegistryUrl", "mirrors:\n  docker.io: dockerhub-proxy\n", 0,
     "registry.url:", "is not set"},
    {"MissingRegistrySection", "mirrors:\n  docker.io: dockerhub-proxy\nmode: path\n", 0,
     "registry.url:", "is not set"},
    {"MissingMirrors", "registry:\n  url: https://harbor.home.lab\n", 0, "mirrors:", "is not set"},
    {"EmptyMirrors", "registry:\n  url: https://harbor.home.lab\nmirrors: {}\n", 0,
     "mirrors:", "is not set"},
    {"AuthWithoutUsername", R"(registry:
  url: https://harbor.home.lab
  auth:
    password_file: /etc/k3s-mirror-agent/registry-password
mirrors:
  docker.io: dockerhub-proxy
)",
     3, "registry.auth.username:", "is not set"},
    {"AuthWithoutPasswordFile", R"(registry:
  url: https://harbor.home.lab
  auth:
    username: robot$k3s
mirrors:
  docker.io: dockerhub-proxy
)",
     3, "registry.auth.password_file:", "is not set"},
    {"CaFileWithAnHttpUrl", R"(registry:
  url: http://harbor.home.lab
  ca_file: /etc/k3s-mirror-agent/harbor-ca.pem
mirrors:
  docker.io: dockerhub-proxy
)",
     3, "registry.ca_file:", "http://"},
    {"InsecureSkipVerifyWithAnHttpUrl", R"(registry:
  url: http://harbor.home.lab
  insecure_skip_verify: true
mirrors:
  docker.io: dockerhub-proxy
)",
     3, "registry.insecure_skip_verify:", "http://"},
};

std::string caseName(const ::testing::TestParamInfo<InvalidCase>& param) {
  return param.param.name;
}

INSTANTIATE_TEST_SUITE_P(ConfigParser, InvalidConfig, ::testing::ValuesIn(kInvalidCases), caseName);

TEST(ConfigParser, HasAtLeastThirtyFiveDistinctInvalidCases) {
  std::set<std::string> names;
  std::set<std::string> texts;
  for (const auto& c : kInvalidCases) {
    names.insert(c.name);
    texts.insert(c.yaml);
  }
  EXPECT_EQ(names.size(), std::size(kInvalidCases));
  EXPECT_EQ(texts.size(), std::size(kInvalidCases));
  EXPECT_GE(texts.size(), 35u);
}

TEST(ConfigParser, RefusesAnInlinePasswordWithoutRepeatingIt) {
  const auto message = errorOf(parse(R"(registry:
  url: https://harbor.home.lab
  auth:
    username: robot$k3s
    password: hunter2-secret
mirrors:
  docker.io: dockerhub-proxy
)"));
  EXPECT_THAT(message, HasSubstr("password_file"));
  EXPECT_THAT(message, Not(HasSubstr("hunter2-secret")));
}

TEST(ConfigParser, RefusesCredentialsInTheUrlWithoutRepeatingThem) {
  const auto message = errorOf(parse(R"(registry:
  url: https://robot:hunter2-secret@harbor.home.lab
mirrors:
  docker.io: dockerhub-proxy
)"));
  EXPECT_THAT(message, HasSubstr("registry.auth"));
  EXPECT_THAT(message, Not(HasSubstr("hunter2-secret")));
}

// An error echoes a key or a value as written, and either can hold a URL with credentials: an
// upstream written as a URL, a typo (the fuzzer's "x https://host:user:pw@r.io: v"), a project
// or an image that runs into one. Whatever echoes it, it is shown masked.
TEST(ConfigParser, NeverEchoesCredentialsOfAUrlFromTheFile) {
  const std::string harbor = "registry:\n  url: https://harbor.home.lab\nmirrors:\n";
  for (const std::string& text : {
           std::string(kMinimal) + "x https://robot:hunter2-secret@r.io: v\n",
           harbor + "  https://robot:hunter2-secret@r.io: dockerhub-proxy\n",
           harbor + "  docker.io: \"https://robot:hunter2-secret@r.io\"\n",
           std::string(kMinimal) + "k3s:\n  unit: https://robot:hunter2-secret@r.io\n",
           std::string(kMinimal) +
               "verify:\n  images:\n    - https://robot:hunter2-secret@r.io/x:1\n",
       }) {
    const auto message = errorOf(parse(text));
    EXPECT_THAT(message, HasSubstr("https://***@r.io")) << text;
    EXPECT_THAT(message, Not(HasSubstr("hunter2-secret"))) << text;
  }
}

TEST(ConfigParser, ListsTheKnownKeysWhenAKeyIsUnknown) {
  const auto message = errorOf(parse(std::string(kMinimal) + "k3s:\n  units: k3s\n"));
  EXPECT_THAT(message, HasSubstr("distribution"));
  EXPECT_THAT(message, HasSubstr("restart_timeout"));
  EXPECT_THAT(message, HasSubstr("unit"));
}

// The bracketed IPv6 form must be refused like "https://harbor.home.lab:" is: a ':' after ']'
// with no port once slipped through, and "[fd00::10]:" became a configs.<host> key.
TEST(ConfigParser, RefusesABracketedIpv6CacheUrlWithAColonButNoPort) {
  const auto message = errorOf(parse(R"(registry:
  url: "https://[fd00::10]:"
mirrors:
  docker.io: dockerhub-proxy
)"));
  EXPECT_THAT(message, StartsWith(std::string(kFile) + ":2: registry.url:"));
  EXPECT_THAT(message, HasSubstr("port after : is missing"));
}

// The same hole for mirror keys: "docker.io:" is refused, "[fd00::10]:" is accepted.
TEST(ConfigParser, RefusesABracketedIpv6UpstreamWithAColonButNoPort) {
  const auto message = errorOf(parse(R"(registry:
  url: https://harbor.home.lab
mirrors:
  "[fd00::10]:": lan-proxy
)"));
  EXPECT_THAT(message, StartsWith(std::string(kFile) + ":4: mirrors.[fd00::10]::"));
  EXPECT_THAT(message, HasSubstr("port after : is missing"));
}

TEST(ConfigParser, RefusesAnUpstreamWithAColonButNoPort) {
  const auto message = errorOf(parse(R"(registry:
  url: https://harbor.home.lab
mirrors:
  "docker.io:": dockerhub-proxy
)"));
  EXPECT_THAT(message, StartsWith(std::string(kFile) + ":4: mirrors.docker.io::"));
  EXPECT_THAT(message, HasSubstr("port after : is missing"));
}

TEST(ConfigParser, ReportsTheFirstProblemOnly) {
  const auto message = errorOf(parse(R"(registry:
  url: ftp://harbor.home.lab
mirrors:
  docker.io: DockerHub
)"));
  EXPECT_THAT(message, StartsWith(std::string(kFile) + ":2: registry.url:"));
  EXPECT_THAT(message, Not(HasSubstr("DockerHub")));
}

TEST(ConfigParser, NamesTheMainFileForAKeyMissingAfterMerging) {
  const auto message = errorOf(parseConfig({
      {kFile, "registry:\n  url: https://harbor.home.lab\n"},
      {kDropIn1, "daemon:\n  debounce: 1s\n"},
  }));
  EXPECT_THAT(message, StartsWith(std::string(kFile) + ": mirrors:"));
}

// ---------------------------------------------------------------------------------------------
// loadConfig: the main file, config.d/*.yaml and the password file

constexpr const char* kPasswordFile = "/etc/k3s-mirror-agent/registry-password";

// A config directory and a --root under one temporary directory.
class LoadConfig : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(::geteuid(), 0u) << "these tests check root ownership"; }

  void write(const std::string& path, const std::string& content, mode_t mode = 0644) {
    auto written = writeFileAtomic(path, content, mode);
    ASSERT_TRUE(written.ok()) << written.error().message;
  }
  void writeConfig(const std::string& content) { write(configPath(), content); }
  void writeDropIn(const std::string& name, const std::string& content) {
    write(etc_ + "/config.d/" + name, content);
  }
  // A config with auth whose password_file key sits on line 5.
  void writeConfigWithAuth() {
    writeConfig(R"(registry:
  url: https://harbor.home.lab
  auth:
    username: robot$k3s
    password_file: /etc/k3s-mirror-agent/registry-password
mirrors:
  docker.io: dockerhub-proxy
)");
  }
  void writePassword(const std::string& content, mode_t mode) {
    write(root_.path(kPasswordFile), content, mode);
  }

  std::string configPath() const { return etc_ + "/config.yaml"; }
  std::string passwordPath() const { return root_.path(kPasswordFile); }
  Result<Config> load() const { return loadConfig(configPath(), root_); }

  TempDir tmp_;
  std::string etc_ = tmp_.path() + "/config";
  Root root_{tmp_.path() + "/root"};
};

TEST_F(LoadConfig, ReadsTheMainFileAlone) {
  writeConfig(kMinimal);
  auto config = load();
  ASSERT_TRUE(config.ok()) << config.error().message;
  EXPECT_EQ(config.value().registry.url, "https://harbor.home.lab");
  EXPECT_EQ(config.value().originOf("registry.url"), configPath() + ":2");
}

TEST_F(LoadConfig, ReadsDropInsInNameOrder) {
  writeConfig(kMinimal);
  // Written in reverse, so the directory's own order is unlikely to match the name order.
  writeDropIn("20-b.yaml", "daemon:\n  debounce: 7s\nmirrors:\n  quay.io: quay-proxy\n");
  writeDropIn("10-a.yaml",
              "daemon:\n  debounce: 5s\n  splay: 1m\nmirrors:\n  ghcr.io: ghcr-proxy\n");
  auto config = load();
  ASSERT_TRUE(config.ok()) << config.error().message;
  const Config& c = config.value();
  EXPECT_EQ(c.daemon.debounce, seconds(7));
  EXPECT_EQ(c.daemon.splay, minutes(1));
  EXPECT_EQ(c.originOf("daemon.debounce"), etc_ + "/config.d/20-b.yaml:2");
  EXPECT_EQ(c.originOf("daemon.splay"), etc_ + "/config.d/10-a.yaml:3");
  const std::map<std::string, std::string> mirrors = {
      {"docker.io", "dockerhub-proxy"}, {"ghcr.io", "ghcr-proxy"}, {"quay.io", "quay-proxy"}};
  EXPECT_EQ(c.mirrors, mirrors);
}

TEST_F(LoadConfig, IgnoresFilesThatAreNotYamlAndDotfiles) {
  writeConfig(kMinimal);
  writeDropIn("10-a.yaml", "k3s:\n  restart: never\n");
  // Each of these would make the config invalid if it were read.
  writeDropIn(".20-hidden.yaml", "bogus: key\n");
  writeDropIn("30-c.yml", "bogus: key\n");
  writeDropIn("40-d.yaml.bak", "bogus: key\n");
  writeDropIn("50-e.yaml~", "bogus: key\n");
  writeDropIn("README", "bogus: key\n");
  auto config = load();
  ASSERT_TRUE(config.ok()) << config.error().message;
  EXPECT_EQ(config.value().k3s.restart, RestartPolicy::kNever);
}

TEST_F(LoadConfig, NamesTheDropInThatHoldsAnError) {
  writeConfig(kMinimal);
  writeDropIn("10-a.yaml", "# site defaults\nk3s:\n  restart: always\n");
  const auto message = errorOf(load());
  EXPECT_THAT(message, StartsWith(etc_ + "/config.d/10-a.yaml:3: k3s.restart:"));
}

TEST_F(LoadConfig, RefusesTheSameUpstreamInTheMainFileAndADropIn) {
  writeConfig(kMinimal);
  writeDropIn("10-a.yaml", "mirrors:\n  docker.io: other-proxy\n");
  const auto message = errorOf(load());
  EXPECT_THAT(message, StartsWith(etc_ + "/config.d/10-a.yaml:2: mirrors.docker.io:"));
  EXPECT_THAT(message, HasSubstr(configPath() + ":4"));
}

TEST_F(LoadConfig, RefusesAMissingMainConfigNamingItsPath) {
  const auto message = errorOf(load());
  EXPECT_THAT(message, HasSubstr(configPath()));
}

TEST_F(LoadConfig, RefusesAMissingMainConfigEvenWithDropIns) {
  writeDropIn("10-a.yaml", kMinimal);
  const auto message = errorOf(load());
  EXPECT_THAT(message, HasSubstr(configPath()));
}

TEST_F(LoadConfig, ReadsThePasswordWithoutItsTrailingNewline) {
  writeConfigWithAuth();
  writePassword("s3cret-Pa55\n", 0600);
  auto config = load();
  ASSERT_TRUE(config.ok()) << config.error().message;
  ASSERT_TRUE(config.value().registry.auth.has_value());
  EXPECT_EQ(config.value().registry.auth->password, "s3cret-Pa55");
}

TEST_F(LoadConfig, ReadsAPasswordWithoutAnyNewlineOrWithCrLf) {
  writeConfigWithAuth();
  for (const std::string content : {"s3cret", "s3cret\r\n"}) {
    writePassword(content, 0600);
    auto config = load();
    ASSERT_TRUE(config.ok()) << config.error().message;
    EXPECT_EQ(config.value().registry.auth->password, "s3cret");
  }
}

TEST_F(LoadConfig, AcceptsAPasswordFileOnlyTheOwnerCanRead) {
  writeConfigWithAuth();
  writePassword("s3cret\n", 0400);
  auto config = load();
  ASSERT_TRUE(config.ok()) << config.error().message;
  EXPECT_EQ(config.value().registry.auth->password, "s3cret");
}

TEST_F(LoadConfig, RefusesAPasswordFileReadableByOthersSayingChmod600) {
  writeConfigWithAuth();
  writePassword("hunter2-secret\n", 0644);
  const auto message = errorOf(load());
  EXPECT_THAT(message, StartsWith(configPath() + ":5: registry.auth.password_file:"));
  EXPECT_THAT(message, HasSubstr("chmod 600"));
  EXPECT_THAT(message, HasSubstr(passwordPath()));
  EXPECT_THAT(message, Not(HasSubstr("hunter2-secret")));
}

TEST_F(LoadConfig, RefusesAPasswordFileReadableByItsGroup) {
  writeConfigWithAuth();
  writePassword("hunter2-secret\n", 0640);
  const auto message = errorOf(load());
  EXPECT_THAT(message, HasSubstr("chmod 600"));
  EXPECT_THAT(message, Not(HasSubstr("hunter2-secret")));
}

TEST_F(LoadConfig, RefusesAPasswordFileWritableByOthers) {
  writeConfigWithAuth();
  writePassword("hunter2-secret\n", 0602);
  const auto message = errorOf(load());
  EXPECT_THAT(message, HasSubstr("chmod 600"));
}

TEST_F(LoadConfig, RefusesAPasswordFileNotOwnedByRoot) {
  writeConfigWithAuth();
  writePassword("hunter2-secret\n", 0600);
  ASSERT_EQ(::chown(passwordPath().c_str(), 1000, 1000), 0);
  const auto message = errorOf(load());
  EXPECT_THAT(message, StartsWith(configPath() + ":5: registry.auth.password_file:"));
  EXPECT_THAT(message, HasSubstr("owned by root"));
  EXPECT_THAT(message, Not(HasSubstr("hunter2-secret")));
}

TEST_F(LoadConfig, RefusesAMissingPasswordFile) {
  writeConfigWithAuth();
  const auto message = errorOf(load());
  EXPECT_THAT(message, StartsWith(configPath() + ":5: registry.auth.password_file:"));
  EXPECT_THAT(message, HasSubstr(passwordPath()));
}

TEST_F(LoadConfig, RefusesAPasswordFileThatIsADirectory) {
  writeConfigWithAuth();
  ASSERT_TRUE(makeDirs(passwordPath(), 0700).ok());
  const auto message = errorOf(load());
  EXPECT_THAT(message, StartsWith(configPath() + ":5: registry.auth.password_file:"));
  EXPECT_THAT(message, HasSubstr("not a regular file"));
}

TEST_F(LoadConfig, RefusesAnEmptyPasswordFile) {
  writeConfigWithAuth();
  writePassword("", 0600);
  const auto message = errorOf(load());
  EXPECT_THAT(message, StartsWith(configPath() + ":5: registry.auth.password_file:"));
  EXPECT_THAT(message, HasSubstr("empty"));
}

TEST_F(LoadConfig, RefusesAPasswordFileHoldingOnlyANewline) {
  writeConfigWithAuth();
  writePassword("\n", 0600);
  const auto message = errorOf(load());
  EXPECT_THAT(message, HasSubstr("empty"));
}

TEST_F(LoadConfig, RefusesAPasswordFileOfTwoLinesWithoutShowingEitherLine) {
  writeConfigWithAuth();
  writePassword("first-line-Xq7\nsecond-line-Zr9\n", 0600);
  const auto message = errorOf(load());
  EXPECT_THAT(message, StartsWith(configPath() + ":5: registry.auth.password_file:"));
  EXPECT_THAT(message, Not(HasSubstr("first-line-Xq7")));
  EXPECT_THAT(message, Not(HasSubstr("second-line-Zr9")));
}

TEST_F(LoadConfig, ReadsThePasswordFileUnderTheRoot) {
  writeConfigWithAuth();
  // The password file is looked up under --root, not at its node path on this machine.
  writePassword("under-root\n", 0600);
  auto config = load();
  ASSERT_TRUE(config.ok()) << config.error().message;
  EXPECT_EQ(config.value().registry.auth->password, "under-root");
}

TEST_F(LoadConfig, NamesTheDropInThatSetThePasswordFile) {
  writeConfig(kMinimal);
  writeDropIn("10-auth.yaml", R"(registry:
  auth:
    username: robot$k3s
    password_file: /etc/k3s-mirror-agent/registry-password
)");
  writePassword("hunter2-secret\n", 0644);
  const auto message = errorOf(load());
  EXPECT_THAT(message, StartsWith(etc_ + "/config.d/10-auth.yaml:4: registry.auth.password_file:"));
  EXPECT_THAT(message, Not(HasSubstr("hunter2-secret")));
}

TEST_F(LoadConfig, ReadsNoPasswordFileWithoutAuth) {
  writeConfig(kMinimal);
  auto config = load();
  ASSERT_TRUE(config.ok()) << config.error().message;
  EXPECT_FALSE(config.value().registry.auth.has_value());
}

// ---------------------------------------------------------------------------------------------
// verify: images resolved through the cache, and the preflight gate

TEST(ConfigVerify, ReadsImagesNormalisedAndThePreflight) {
  const Config c = parseValid(std::string(kMinimal) + R"(verify:
  images: [docker.io/busybox:1.36, "docker.io/library/nginx@sha256:)" +
                              std::string(64, 'a') +
                              R"("]
  preflight: require
)");
  ASSERT_EQ(c.verify.images.size(), 2u);
  EXPECT_EQ(c.verify.images[0].text, "docker.io/busybox:1.36");
  EXPECT_EQ(c.verify.images[0].reference.repository, "library/busybox");
  EXPECT_EQ(c.verify.images[0].origin, std::string(kFile) + ":6");
  EXPECT_EQ(c.verify.images[1].reference.digest, "sha256:" + std::string(64, 'a'));
  EXPECT_EQ(c.verify.preflight, Preflight::kRequire);
}

TEST(ConfigVerify, WarnsByDefaultAndVerifiesNothing) {
  const Config c = parseValid(kMinimal);
  EXPECT_EQ(c.verify.preflight, Preflight::kWarn);
  EXPECT_TRUE(c.verify.images.empty());
}

TEST(ConfigVerify, RefusesAnImageOfAnUpstreamThatIsNotMirrored) {
  EXPECT_EQ(errorOf(parse(std::string(kMinimal) + R"(verify:
  images:
    - docker.io/library/busybox:1.36
    - ghcr.io/org/app:1
)")),
            std::string(kFile) +
                ":8: verify.images: \"ghcr.io/org/app:1\" is from ghcr.io, which is not "
                "mirrored; add it under mirrors or pick an image of a mirrored upstream");
}

TEST(ConfigVerify, RefusesABadReferenceNamingItsLine) {
  EXPECT_THAT(errorOf(parse(std::string(kMinimal) + "verify:\n  images:\n    - docker.io/Nginx\n")),
              StartsWith(std::string(kFile) + ":7: verify.images: \"docker.io/Nginx\" is not a "
                                              "valid image reference"));
}

TEST(ConfigVerify, RefusesImagesThatAreNotAListAndAnUnknownPreflight) {
  EXPECT_THAT(errorOf(parse(std::string(kMinimal) + "verify:\n  images: docker.io/nginx\n")),
              HasSubstr(":6: verify.images: must be a list of image references"));
  EXPECT_THAT(errorOf(parse(std::string(kMinimal) + "verify:\n  preflight: maybe\n")),
              HasSubstr(":6: verify.preflight: must be none or warn or require, got \"maybe\""));
  EXPECT_THAT(errorOf(parse(std::string(kMinimal) + "verify:\n  image: [nginx]\n")),
              HasSubstr("verify.image: unknown key"));
}

// A name of digits and dots is an IPv4 address or nothing: "https://1.2.3" once skipped the
// certificate's name check.
TEST(ConfigVerify, RefusesAUrlHostOfDigitsThatIsNoIpv4Address) {
  EXPECT_THAT(errorOf(parse("registry:\n  url: https://1.2.3\nmirrors:\n  docker.io: p\n")),
              HasSubstr(":2: registry.url: \"1.2.3\" is neither a host name nor an IPv4 address"));
  EXPECT_THAT(errorOf(parse("registry:\n  url: https://[::1::2]\nmirrors:\n  docker.io: p\n")),
              HasSubstr("not an IPv6 address"));
  EXPECT_EQ(parseValid("registry:\n  url: https://10.0.0.1:8443\nmirrors:\n  docker.io: p\n")
                .registry.hostname,
            "10.0.0.1");
}

}  // namespace
}  // namespace k3sma
