// Finding the k3s unit and waiting for it to come back, over a fake systemd and a fake clock.
// The real sd-bus client is exercised against a booted systemd in tests/node/.
#include "agent/restart.h"

#include <gtest/gtest.h>

#include <functional>
#include <map>

#include "tests/support/fake_clock.h"

namespace k3sma {
namespace {

using namespace std::chrono_literals;
using TimePoint = std::chrono::steady_clock::time_point;

using testing::FakeClock;

class FakeSystemd final : public Systemd {
 public:
  std::map<std::string, std::string> load_states;  // unit -> LoadState; absent: not-found
  std::string job_result = "done";
  // ActiveState as a function of the fake time since the restart.
  std::function<std::string(std::chrono::milliseconds)> active_state = [](auto) {
    return std::string("active");
  };
  FakeClock* clock = nullptr;
  int restarts = 0;

  Result<UnitState> unitState(const std::string& unit) override {
    auto it = load_states.find(unit);
    UnitState s;
    s.load_state = it == load_states.end() ? "not-found" : it->second;
    s.active_state = active_state(
        std::chrono::duration_cast<std::chrono::milliseconds>(clock->now() - clock->start()));
    s.sub_state = s.active_state == "active" ? "running" : "start";
    return s;
  }
  Result<RestartJob> tryRestart(const std::string&, TimePoint) override {
    if (job_result == "refused") {
      return Error{"restart k3s.service: Access denied", ErrorKind::kApply};
    }
    ++restarts;
    return RestartJob{job_result, job_result == "lost" ? "wait for the job: bus gone" : ""};
  }
};

class Restart : public ::testing::Test {
 protected:
  void SetUp() override { systemd_.clock = &clock_; }
  FakeClock clock_;
  FakeSystemd systemd_;
  K3sSettings k3s_;
};

TEST_F(Restart, AutoPicksK3sServiceOnAServer) {
  systemd_.load_states = {{"k3s.service", "loaded"}};
  auto unit = resolveUnit(systemd_, k3s_);
  ASSERT_TRUE(unit.ok());
  EXPECT_EQ(unit.value(), "k3s.service");
}

TEST_F(Restart, AutoPicksK3sAgentServiceOnAnAgent) {
  systemd_.load_states = {{"k3s-agent.service", "loaded"}};
  EXPECT_EQ(resolveUnit(systemd_, k3s_).value(), "k3s-agent.service");
}

TEST_F(Restart, AutoUsesRke2UnitsForRke2) {
  k3s_.distribution = Distribution::kRke2;
  systemd_.load_states = {{"rke2-agent.service", "loaded"}, {"k3s.service", "loaded"}};
  EXPECT_EQ(resolveUnit(systemd_, k3s_).value(), "rke2-agent.service");
}

TEST_F(Restart, NoUnitInstalledMeansNothingToRestart) {
  auto unit = resolveUnit(systemd_, k3s_);
  ASSERT_TRUE(unit.ok());
  EXPECT_FALSE(unit.value().has_value());
}

TEST_F(Restart, BothUnitsInstalledIsAnErrorSayingToSetTheUnit) {
  systemd_.load_states = {{"k3s.service", "loaded"}, {"k3s-agent.service", "loaded"}};
  auto unit = resolveUnit(systemd_, k3s_);
  ASSERT_FALSE(unit.ok());
  EXPECT_EQ(unit.error().kind, ErrorKind::kConfig);
  EXPECT_NE(unit.error().message.find("set k3s.unit"), std::string::npos);
}

TEST_F(Restart, AnExplicitUnitIsUsedAsGiven) {
  k3s_.unit = "k3s-edge.service";
  systemd_.load_states = {{"k3s.service", "loaded"}, {"k3s-edge.service", "loaded"}};
  EXPECT_EQ(resolveUnit(systemd_, k3s_).value(), "k3s-edge.service");
}

TEST_F(Restart, AMaskedUnitDoesNotCountAsInstalled) {
  systemd_.load_states = {{"k3s.service", "masked"}};
  EXPECT_FALSE(resolveUnit(systemd_, k3s_).value().has_value());
}

TEST_F(Restart, HealthyWhenActiveForTheSettleTime) {
  EXPECT_TRUE(restartUntilHealthy(systemd_, clock_, "k3s.service", clock_.now() + 60s).status.ok());
  EXPECT_EQ(systemd_.restarts, 1);
  EXPECT_GE(clock_.now() - clock_.start(), kSettle);
}

TEST_F(Restart, AFailedJobIsAnErrorNamingTheResult) {
  systemd_.job_result = "failed";
  auto done = restartUntilHealthy(systemd_, clock_, "k3s.service", clock_.now() + 60s).status;
  ASSERT_FALSE(done.ok());
  EXPECT_NE(done.error().message.find("ended with \"failed\""), std::string::npos);
}

TEST_F(Restart, AJobStillRunningAtOurDeadlineIsAnError) {
  systemd_.job_result = "deadline";  // what tryRestart says when our deadline passed first
  auto done = restartUntilHealthy(systemd_, clock_, "k3s.service", clock_.now() + 60s).status;
  ASSERT_FALSE(done.ok());
  EXPECT_NE(done.error().message.find("did not finish within restart_timeout"), std::string::npos);
}

TEST_F(Restart, ACrashLoopAfterReadyIsAnErrorAtTheDeadline) {
  // Ready at once, then down after 500 ms and restarted by Restart=always, and again.
  systemd_.active_state = [](std::chrono::milliseconds t) {
    return (t.count() / 500) % 2 == 0 ? std::string("active") : std::string("activating");
  };
  auto done = restartUntilHealthy(systemd_, clock_, "k3s.service", clock_.now() + 10s).status;
  ASSERT_FALSE(done.ok());
  EXPECT_NE(done.error().message.find("did not stay active"), std::string::npos);
  EXPECT_GE(clock_.now() - clock_.start(), 10s);
}

TEST_F(Restart, AUnitThatFailsIsReportedWithoutWaitingOutTheDeadline) {
  systemd_.active_state = [](std::chrono::milliseconds t) {
    return t < 300ms ? std::string("active") : std::string("failed");
  };
  auto done = restartUntilHealthy(systemd_, clock_, "k3s.service", clock_.now() + 120s).status;
  ASSERT_FALSE(done.ok());
  EXPECT_NE(done.error().message.find("now failed"), std::string::npos) << done.error().message;
  EXPECT_LT(clock_.now() - clock_.start(), 1s);
}

TEST_F(Restart, ARefusedRestartLeavesTheUnitUntouched) {
  systemd_.job_result = "refused";
  const auto attempt = restartUntilHealthy(systemd_, clock_, "k3s.service", clock_.now() + 60s);
  ASSERT_FALSE(attempt.status.ok());
  EXPECT_FALSE(attempt.touched);
  EXPECT_NE(attempt.status.error().message.find("Access denied"), std::string::npos);
}

TEST_F(Restart, AJobLostAfterItWasQueuedCountsAsTouched) {
  systemd_.job_result = "lost";
  const auto attempt = restartUntilHealthy(systemd_, clock_, "k3s.service", clock_.now() + 60s);
  ASSERT_FALSE(attempt.status.ok());
  EXPECT_TRUE(attempt.touched);
  EXPECT_NE(attempt.status.error().message.find("bus gone"), std::string::npos);
}

TEST(ExpectedHostsToml, OnePerMirrorUnderK3sDataDirNamingTheEndpoint) {
  Config config;
  config.registry.url = "https://harbor.home.lab";
  config.mirrors = {{"docker.io", "dockerhub-proxy"}};
  const auto expected = expectedHostsToml(config);
  ASSERT_EQ(expected.size(), 1u);
  EXPECT_EQ(expected[0].path,
            "/var/lib/rancher/k3s/agent/etc/containerd/certs.d/docker.io/hosts.toml");
  EXPECT_EQ(expected[0].endpoint, "https://harbor.home.lab/v2/dockerhub-proxy");
}

}  // namespace
}  // namespace k3sma
