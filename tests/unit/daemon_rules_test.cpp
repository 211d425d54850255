// The daemon's decisions without a loop or a clock: what to do once the debounce has passed,
// what an apply is called, and which directories and names are watched.
#include "agent/daemon_rules.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/fs.h"

namespace k3sma {

// So that a failure says "kSplay", not "4-byte object <02-00 00-00>". In k3sma, where gtest's
// argument-dependent lookup finds them.
// NOLINTNEXTLINE(readability-identifier-naming): GoogleTest looks PrintTo up by this name
void PrintTo(Next next, std::ostream* os) {
  constexpr const char* kNames[] = {"kNothing", "kApply", "kSplay", "kReportDrift", "kHoldBack"};
  *os << kNames[static_cast<size_t>(next)];
}
// NOLINTNEXTLINE(readability-identifier-naming): as above
void PrintTo(WatchKind kind, std::ostream* os) {
  *os << (kind == WatchKind::kConfig ? "kConfig" : "kManaged");
}

namespace {

using namespace std::chrono_literals;

// ---------------------------------------------------------------------------------------------
// triggerName

TEST(TriggerName, NamesEachTriggerOnItsOwn) {
  EXPECT_EQ(triggerName(kTriggerStart), "start");
  EXPECT_EQ(triggerName(kTriggerConfig), "config");
  EXPECT_EQ(triggerName(kTriggerManaged), "drift");
  EXPECT_EQ(triggerName(kTriggerReload), "reload");
}

TEST(TriggerName, TheMostDeliberateCauseNamesAPileOfTriggers) {
  // An operator's SIGHUP, then the daemon's start, then a config edit; drift only alone.
  EXPECT_EQ(triggerName(kTriggerReload | kTriggerStart | kTriggerConfig | kTriggerManaged),
            "reload");
  EXPECT_EQ(triggerName(kTriggerStart | kTriggerConfig | kTriggerManaged), "start");
  EXPECT_EQ(triggerName(kTriggerConfig | kTriggerManaged), "config");
}

// ---------------------------------------------------------------------------------------------
// decide

constexpr Duration kSplay = 30s;

// What prepare() found: something to change, with or without a restart of k3s.
Look changes(bool restart_needed) {
  Look look;
  look.plan_empty = false;
  look.restart_needed = restart_needed;
  return look;
}

// The same files as an apply that failed and was rolled back.
Look failedBefore(bool restart_needed) {
  Look look = changes(restart_needed);
  look.same_as_failed = true;
  return look;
}

Next decideCorrect(unsigned triggers, const Look& look) {
  return decide(triggers, look, DriftPolicy::kCorrect, /*splay_served=*/false, kSplay);
}

TEST(Decide, DoesNothingWhenTheNodeAlreadyMatchesTheConfig) {
  const Look matches;  // plan_empty
  for (unsigned triggers : {unsigned{kTriggerConfig}, unsigned{kTriggerManaged},
                            unsigned{kTriggerConfig | kTriggerManaged}}) {
    SCOPED_TRACE(triggerName(triggers));
    EXPECT_EQ(decideCorrect(triggers, matches), Next::kNothing);
    EXPECT_EQ(decide(triggers, matches, DriftPolicy::kReport, false, kSplay), Next::kNothing);
  }
  // Nothing to change is nothing to hold back either: a fix by hand needs no apply.
  Look fixed_by_hand;
  fixed_by_hand.same_as_failed = true;
  EXPECT_EQ(decideCorrect(kTriggerConfig, fixed_by_hand), Next::kNothing);
}

// The daemon applies at start (README.md, "The daemon"), and a SIGHUP is the operator asking for
// an apply. Both run the apply engine even when it has nothing to change, so status.json gets a
// last_apply (else STATUS= says "starting" for as long as the daemon runs on a node that was
// already right) and the log says "applied (reload): nothing to change" to the operator who asked.
TEST(Decide, StartAndReloadStillApplyWhenThePlanIsEmpty) {
  const Look matches;  // plan_empty
  EXPECT_EQ(decideCorrect(kTriggerStart, matches), Next::kApply);
  EXPECT_EQ(decideCorrect(kTriggerReload, matches), Next::kApply);
  EXPECT_EQ(decideCorrect(kTriggerStart | kTriggerManaged, matches), Next::kApply);
  EXPECT_EQ(decide(kTriggerReload, matches, DriftPolicy::kReport, false, kSplay), Next::kApply);
}

TEST(Decide, OnlyReportsAHandEditWhenDriftIsReport) {
  // Report means change nothing: not even a restart-free fix, nor a retry of a failure.
  for (const Look& look : {changes(false), changes(true), failedBefore(true)}) {
    EXPECT_EQ(decide(kTriggerManaged, look, DriftPolicy::kReport, false, kSplay),
              Next::kReportDrift);
    EXPECT_EQ(decide(kTriggerManaged, look, DriftPolicy::kReport, true, 0ms), Next::kReportDrift);
  }
}

TEST(Decide, ADriftReportDoesNotSwallowAConfigChangeInTheSameRound) {
  // The config edit must be applied; the hand edit goes with it.
  EXPECT_EQ(
      decide(kTriggerConfig | kTriggerManaged, changes(false), DriftPolicy::kReport, false, kSplay),
      Next::kApply);
  EXPECT_EQ(
      decide(kTriggerReload | kTriggerManaged, changes(false), DriftPolicy::kReport, false, kSplay),
      Next::kApply);
  EXPECT_EQ(
      decide(kTriggerStart | kTriggerManaged, changes(true), DriftPolicy::kReport, false, kSplay),
      Next::kApply);
}

TEST(Decide, PutsBackAHandEditWhenDriftIsCorrect) {
  EXPECT_EQ(decideCorrect(kTriggerManaged, changes(false)), Next::kApply);
  // Putting it back restarts k3s, so it waits the splay like any other restart.
  EXPECT_EQ(decideCorrect(kTriggerManaged, changes(true)), Next::kSplay);
}

TEST(Decide, HoldsBackTheSameFailedApplyOnAFileEvent) {
  // Applying it again would restart k3s into the same failure, over and over.
  EXPECT_EQ(decideCorrect(kTriggerConfig, failedBefore(true)), Next::kHoldBack);
  EXPECT_EQ(decideCorrect(kTriggerManaged, failedBefore(true)), Next::kHoldBack);
  EXPECT_EQ(decideCorrect(kTriggerConfig | kTriggerManaged, failedBefore(false)), Next::kHoldBack);
  // Holding back comes before the splay: there is nothing to wait for.
  EXPECT_EQ(decide(kTriggerConfig, failedBefore(true), DriftPolicy::kCorrect, true, kSplay),
            Next::kHoldBack);
}

TEST(Decide, AReloadRetriesTheFailedApply) {
  EXPECT_EQ(decideCorrect(kTriggerReload, failedBefore(false)), Next::kApply);
  EXPECT_EQ(decideCorrect(kTriggerReload | kTriggerConfig, failedBefore(false)), Next::kApply);
  // A retry that restarts k3s is still a restart: it waits the splay, then applies.
  EXPECT_EQ(decideCorrect(kTriggerReload, failedBefore(true)), Next::kSplay);
  EXPECT_EQ(decide(kTriggerReload, failedBefore(true), DriftPolicy::kCorrect, true, kSplay),
            Next::kApply);
}

TEST(Decide, WaitsTheSplayBeforeAChangeThatRestartsK3s) {
  EXPECT_EQ(decideCorrect(kTriggerConfig, changes(true)), Next::kSplay);
  EXPECT_EQ(decideCorrect(kTriggerReload, changes(true)), Next::kSplay);
  EXPECT_EQ(decide(kTriggerConfig, changes(true), DriftPolicy::kReport, false, 1ms), Next::kSplay);
}

TEST(Decide, AppliesOnceTheSplayHasBeenServed) {
  EXPECT_EQ(decide(kTriggerConfig, changes(true), DriftPolicy::kCorrect, true, kSplay),
            Next::kApply);
  EXPECT_EQ(decide(kTriggerManaged, changes(true), DriftPolicy::kCorrect, true, kSplay),
            Next::kApply);
}

TEST(Decide, TheDaemonsStartNeverWaitsTheSplay) {
  // It must be ready soon; a config edit that arrived during the start round rides along.
  EXPECT_EQ(decideCorrect(kTriggerStart, changes(true)), Next::kApply);
  EXPECT_EQ(decideCorrect(kTriggerStart | kTriggerConfig | kTriggerManaged, changes(true)),
            Next::kApply);
}

TEST(Decide, AZeroSplayAppliesAtOnce) {
  EXPECT_EQ(decide(kTriggerConfig, changes(true), DriftPolicy::kCorrect, false, 0ms), Next::kApply);
  EXPECT_EQ(decide(kTriggerManaged, changes(true), DriftPolicy::kCorrect, false, 0ms),
            Next::kApply);
}

TEST(Decide, AChangeWithoutARestartAppliesAtOnce) {
  EXPECT_EQ(decideCorrect(kTriggerConfig, changes(false)), Next::kApply);
  EXPECT_EQ(decideCorrect(kTriggerReload, changes(false)), Next::kApply);
  EXPECT_EQ(decideCorrect(kTriggerStart, changes(false)), Next::kApply);
}

// ---------------------------------------------------------------------------------------------
// watchPlan

constexpr const char* kConfigFile = "/etc/k3s-mirror-agent/config.yaml";
constexpr const char* kConfigPath = "/r/etc/k3s-mirror-agent/config.yaml";  // on this machine

Config parseValid(const std::string& yaml) {
  auto config = parseConfig({{kConfigFile, yaml}});
  if (!config) {
    ADD_FAILURE() << config.error().message;
    return Config{};
  }
  return config.value();
}

// The plan as directory -> "name (kind)" entries, sorted, so a test reads like the node's tree.
// An empty name is shown as "*.yaml". A directory listed twice fails the test: one inotify watch
// per directory.
std::map<std::string, std::vector<std::string>> describe(const std::vector<WatchDir>& plan) {
  std::map<std::string, std::vector<std::string>> out;
  for (const auto& dir : plan) {
    EXPECT_FALSE(out.contains(dir.path)) << dir.path << " is listed twice";
    auto& names = out[dir.path];
    for (const auto& rule : dir.rules) {
      names.push_back((rule.name.empty() ? "*.yaml" : rule.name) +
                      (rule.kind == WatchKind::kConfig ? " (config)" : " (managed)"));
    }
    std::sort(names.begin(), names.end());
  }
  return out;
}

using Tree = std::map<std::string, std::vector<std::string>>;

TEST(WatchPlan, WithoutAConfigWatchesTheConfigAndRegistriesYaml) {
  // Before a config loads there is no CA or password file to know of; the daemon still watches
  // what it will write, and the default distribution's registries.yaml.
  const Tree expected = {
      {"/r/etc/k3s-mirror-agent", {"config.d (config)", "config.yaml (config)"}},
      {"/r/etc/k3s-mirror-agent/config.d", {"*.yaml (config)"}},
      {"/r/etc/rancher/k3s", {"registries.yaml (managed)"}},
  };
  EXPECT_EQ(describe(watchPlan(kConfigPath, nullptr, Root("/r"))), expected);
}

TEST(WatchPlan, WatchesTheCaAndPasswordFilesAndTheInstalledCa) {
  const Config config = parseValid(R"(registry:
  url: https://harbor.home.lab:8443
  ca_file: /etc/pki/harbor/ca.pem
  auth:
    username: robot$k3s
    password_file: /etc/k3s-mirror-agent/secrets/registry-password
mirrors:
  docker.io: dockerhub-proxy
)");
  const Tree expected = {
      {"/r/etc/k3s-mirror-agent", {"config.d (config)", "config.yaml (config)"}},
      {"/r/etc/k3s-mirror-agent/config.d", {"*.yaml (config)"}},
      {"/r/etc/k3s-mirror-agent/secrets", {"registry-password (config)"}},
      {"/r/etc/pki/harbor", {"ca.pem (config)"}},
      {"/r/etc/rancher/k3s", {"registries.yaml (managed)"}},
      {"/r/usr/local/share/ca-certificates/k3s-mirror-agent",
       {"harbor.home.lab_8443.crt (managed)"}},
      // What a restart-free apply writes: the mirror's and the cache's own hosts.toml.
      {"/r/var/lib/rancher/k3s/agent/etc/containerd/certs.d/docker.io", {"hosts.toml (managed)"}},
      {"/r/var/lib/rancher/k3s/agent/etc/containerd/certs.d/harbor.home.lab:8443",
       {"hosts.toml (managed)"}},
  };
  EXPECT_EQ(describe(watchPlan(kConfigPath, &config, Root("/r"))), expected);
}

TEST(WatchPlan, WithoutCaOrAuthWatchesNeither) {
  const Config config = parseValid(R"(registry:
  url: https://harbor.home.lab
mirrors:
  docker.io: dockerhub-proxy
k3s:
  reload: restart
)");
  // k3s.reload: restart, so no hosts.toml either.
  EXPECT_EQ(describe(watchPlan(kConfigPath, &config, Root("/r"))),
            describe(watchPlan(kConfigPath, nullptr, Root("/r"))));
}

TEST(WatchPlan, Rke2WatchesRke2sRegistriesYaml) {
  const Config config = parseValid(R"(registry:
  url: https://harbor.home.lab
mirrors:
  docker.io: dockerhub-proxy
k3s:
  distribution: rke2
)");
  const Tree tree = describe(watchPlan(kConfigPath, &config, Root("/r")));
  ASSERT_TRUE(tree.contains("/r/etc/rancher/rke2"));
  EXPECT_EQ(tree.at("/r/etc/rancher/rke2"), std::vector<std::string>{"registries.yaml (managed)"});
  EXPECT_FALSE(tree.contains("/r/etc/rancher/k3s"));
}

TEST(WatchPlan, FilesInOneDirectoryShareOneWatch) {
  // The usual layout: the CA and the password next to config.yaml.
  const Config config = parseValid(R"(registry:
  url: https://harbor.home.lab
  ca_file: /etc/k3s-mirror-agent/harbor-ca.pem
  auth:
    username: robot$k3s
    password_file: /etc/k3s-mirror-agent/registry-password
mirrors:
  docker.io: dockerhub-proxy
)");
  const Tree tree = describe(watchPlan(kConfigPath, &config, Root("/r")));
  const std::vector<std::string> config_dir = {"config.d (config)", "config.yaml (config)",
                                               "harbor-ca.pem (config)",
                                               "registry-password (config)"};
  ASSERT_TRUE(tree.contains("/r/etc/k3s-mirror-agent"));
  EXPECT_EQ(tree.at("/r/etc/k3s-mirror-agent"), config_dir);
  // that, config.d, registries.yaml's, the installed CA's, and certs.d/docker.io and
  // certs.d/harbor.home.lab (the hosts.toml of a restart-free apply)
  EXPECT_EQ(tree.size(), 6u);
}

TEST(WatchPlan, TheConfigPathIsUsedAsGivenWithoutTheRoot) {
  // --config names a file on this machine; only the node paths the config names get the root.
  const Tree tree = describe(watchPlan("/home/me/agent.yaml", nullptr, Root("/r")));
  ASSERT_TRUE(tree.contains("/home/me"));
  EXPECT_EQ(tree.at("/home/me"),
            (std::vector<std::string>{"agent.yaml (config)", "config.d (config)"}));
  EXPECT_TRUE(tree.contains("/home/me/config.d"));
  EXPECT_TRUE(tree.contains("/r/etc/rancher/k3s"));
}

TEST(WatchPlan, TheRealRootWatchesTheNodesOwnPaths) {
  const Tree tree = describe(watchPlan(kConfigFile, nullptr, Root()));
  EXPECT_TRUE(tree.contains("/etc/k3s-mirror-agent"));
  EXPECT_TRUE(tree.contains("/etc/k3s-mirror-agent/config.d"));
  EXPECT_TRUE(tree.contains("/etc/rancher/k3s"));
}

// ---------------------------------------------------------------------------------------------
// classify

WatchDir findDir(const std::vector<WatchDir>& plan, const std::string& path) {
  for (const auto& dir : plan) {
    if (dir.path == path) {
      return dir;
    }
  }
  ADD_FAILURE() << path << " is not watched";
  return {};
}

class Classify : public ::testing::Test {
 protected:
  const std::vector<WatchDir> plan_ = watchPlan(kConfigPath, nullptr, Root("/r"));
  const WatchDir config_dir_ = findDir(plan_, "/r/etc/k3s-mirror-agent");
  const WatchDir drop_ins_ = findDir(plan_, "/r/etc/k3s-mirror-agent/config.d");
  const WatchDir registries_dir_ = findDir(plan_, "/r/etc/rancher/k3s");
};

TEST_F(Classify, ExactNamesAreTheirRulesKind) {
  EXPECT_EQ(classify(config_dir_, "config.yaml"), WatchKind::kConfig);
  EXPECT_EQ(classify(config_dir_, "config.d"), WatchKind::kConfig);
  EXPECT_EQ(classify(registries_dir_, "registries.yaml"), WatchKind::kManaged);
}

TEST_F(Classify, OtherNamesNextToAnExactNameAreNothing) {
  // k3s writes its kubeconfig next to registries.yaml; that is no drift.
  EXPECT_EQ(classify(registries_dir_, "k3s.yaml"), std::nullopt);
  EXPECT_EQ(classify(registries_dir_, "registries.yaml.swp"), std::nullopt);
  EXPECT_EQ(classify(registries_dir_, ".registries.yaml.swp"), std::nullopt);
  EXPECT_EQ(classify(config_dir_, "other.yaml"), std::nullopt);
  EXPECT_EQ(classify(config_dir_, "config.yaml~"), std::nullopt);
  EXPECT_EQ(classify(config_dir_, "Config.yaml"), std::nullopt);
}

TEST_F(Classify, AnyYamlDropInIsAConfigChange) {
  EXPECT_EQ(classify(drop_ins_, "10-mirrors.yaml"), WatchKind::kConfig);
  EXPECT_EQ(classify(drop_ins_, "a.yaml"), WatchKind::kConfig);
}

TEST_F(Classify, DotfilesSwapFilesAndOtherSuffixesInConfigDAreNothing) {
  // What editors and atomic writers leave around while saving a drop-in.
  EXPECT_EQ(classify(drop_ins_, ".10-mirrors.yaml"), std::nullopt);
  EXPECT_EQ(classify(drop_ins_, ".10-mirrors.yaml.swp"), std::nullopt);
  EXPECT_EQ(classify(drop_ins_, "10-mirrors.yaml.swp"), std::nullopt);
  EXPECT_EQ(classify(drop_ins_, "10-mirrors.yaml~"), std::nullopt);
  EXPECT_EQ(classify(drop_ins_, "10-mirrors.yml"), std::nullopt);
  EXPECT_EQ(classify(drop_ins_, "README"), std::nullopt);
  EXPECT_EQ(classify(drop_ins_, ".yaml"), std::nullopt);
  EXPECT_EQ(classify(drop_ins_, ""), std::nullopt);
}

TEST(ClassifyKinds, AConfigChangeOutranksDriftForTheSameName) {
  // Either order of rules: the config's CA kept where the agent installs it.
  const WatchDir managed_first = {
      "/d", {{"ca.crt", WatchKind::kManaged}, {"ca.crt", WatchKind::kConfig}}};
  const WatchDir config_first = {"/d",
                                 {{"ca.crt", WatchKind::kConfig}, {"ca.crt", WatchKind::kManaged}}};
  EXPECT_EQ(classify(managed_first, "ca.crt"), WatchKind::kConfig);
  EXPECT_EQ(classify(config_first, "ca.crt"), WatchKind::kConfig);
}

TEST(ClassifyKinds, ACaFileKeptWhereTheAgentInstallsItIsAConfigChange) {
  const Config config = parseValid(R"(registry:
  url: https://harbor.home.lab
  ca_file: /usr/local/share/ca-certificates/k3s-mirror-agent/harbor.home.lab.crt
mirrors:
  docker.io: dockerhub-proxy
)");
  const auto plan = watchPlan(kConfigPath, &config, Root("/r"));
  const WatchDir ca_dir = findDir(plan, "/r/usr/local/share/ca-certificates/k3s-mirror-agent");
  EXPECT_EQ(classify(ca_dir, "harbor.home.lab.crt"), WatchKind::kConfig);
  EXPECT_EQ(classify(ca_dir, "other.crt"), std::nullopt);
}

TEST(ClassifyKinds, AnEmptyDirectoryMatchesNothing) {
  EXPECT_EQ(classify(WatchDir{"/d", {}}, "config.yaml"), std::nullopt);
}

}  // namespace
}  // namespace k3sma
